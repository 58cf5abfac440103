"""Discord's limits on what one `Outbound` becomes (pure, no client)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.discord.client import MAX_CUSTOM_ID, ChoiceButton, custom_id
from bot.discord.render import MAX_CONTENT, MAX_LABEL, button_label, parts, split_text
from dialogs.events import Attachment, Choice, Outbound


def test_a_short_text_is_one_message() -> None:
    assert split_text("Take a breath. I'll wait.") == ["Take a breath. I'll wait."]


def test_a_long_text_breaks_between_sentences() -> None:
    sentences = [f"Sentence number {n} says something calm and short." for n in range(120)]
    text = " ".join(sentences)
    chunks = split_text(text)
    assert len(chunks) > 1
    assert all(len(c) <= MAX_CONTENT for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert " ".join(chunks) == text


def test_line_breaks_count_as_boundaries_and_are_kept_inside_a_message() -> None:
    text = "\n".join(f"- line {n} of a list without full stops" for n in range(200))
    chunks = split_text(text, limit=500)
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.startswith("- line") for c in chunks)
    assert "\n".join(chunks) == text


def test_a_sentence_longer_than_a_message_breaks_between_words() -> None:
    text = "word " * 500 + "end."
    chunks = split_text(text.strip(), limit=100)
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def test_a_word_longer_than_a_message_is_cut() -> None:
    assert split_text("x" * 250, limit=100) == ["x" * 100, "x" * 100, "x" * 50]


@given(st.text(alphabet=st.sampled_from("ab .!?\n…"), max_size=600), st.integers(5, 80))
def test_nothing_is_lost_and_nothing_is_too_long(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_buttons_and_the_file_ride_on_the_last_part() -> None:
    file = Attachment("export.json", b"{}", "application/json")
    message = Outbound("A. " * 1000, choices=(Choice("a:b:c:1", "Yes"),), attachment=file)
    *first, last = parts(message)
    assert first and all(p.choices == () and p.attachment is None for p in first)
    assert last.choices == message.choices and last.attachment is file


def test_long_labels_are_shortened_to_discords_limit() -> None:
    assert button_label("x" * 200) == "x" * (MAX_LABEL - 1) + "…"
    assert button_label("Done") == "Done"


def test_custom_ids_name_their_person_and_fit_discords_limit() -> None:
    longest_choice = "f" * 20 + ":" + "s" * 20 + ":" + "o" * 14 + ":" + "z" * 7
    assert len(longest_choice.encode()) == 64
    value = custom_id(18446744073709551615, longest_choice)
    assert len(value) <= MAX_CUSTOM_ID
    template = ChoiceButton.__discord_ui_compiled_template__
    match = template.fullmatch(value)
    assert match and match["user"] == "18446744073709551615"
    assert match["choice"] == longest_choice
    assert re.fullmatch(template, custom_id(1, "/pause"))
    with pytest.raises(ValueError):
        custom_id(1, "x" * 200)
