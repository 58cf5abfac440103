"""Splitting long texts at Telegram's 4096 limit, on sentence boundaries."""

from __future__ import annotations

import itertools
import re

import pytest

from bot.telegram.text import (
    MESSAGE_LIMIT,
    first_sentence,
    split_text,
    utf16_len,
    with_choice,
)


def test_short_text_is_one_piece() -> None:
    assert split_text("Hello. How are you?") == ["Hello. How are you?"]
    assert split_text("") == []


def test_long_text_is_cut_after_sentences_and_nothing_is_lost() -> None:
    sentences = [
        f"Sentence number {n} says something {'quite ' * (n % 7)}calm." for n in range(400)
    ]
    text = " ".join(sentences)
    assert len(text) > 3 * MESSAGE_LIMIT
    pieces = split_text(text)
    assert len(pieces) >= 4
    assert all(utf16_len(p) <= MESSAGE_LIMIT for p in pieces)
    assert all(p.endswith("calm.") for p in pieces)
    assert " ".join(pieces) == text
    # Each piece is as full as whole sentences allow: the next one would not have fit.
    for piece, following in itertools.pairwise(pieces):
        next_sentence = re.match(r".*?calm\.", following)
        assert next_sentence is not None
        assert utf16_len(piece + " " + next_sentence.group(0)) > MESSAGE_LIMIT


@pytest.mark.parametrize("end", ["?", "!", "…", '."', ".)"])
def test_other_sentence_ends_count(end: str) -> None:
    text = f"Is this one{end} " * 10
    pieces = split_text(text.strip(), limit=50)
    assert all(p.endswith(end) for p in pieces)


def test_paragraph_and_line_breaks_are_boundaries_too() -> None:
    text = "First line without a full stop\n" + "word " * 20
    pieces = split_text(text, limit=60)
    assert pieces[0] == "First line without a full stop"


def test_without_sentences_it_cuts_between_words_then_inside_one() -> None:
    words = split_text("alpha beta gamma delta epsilon", limit=12)
    assert words == ["alpha beta", "gamma delta", "epsilon"]
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_length_is_counted_as_telegram_does_in_utf16_units() -> None:
    emoji = "🙂"  # outside the BMP: two UTF-16 units
    assert utf16_len(emoji) == 2
    pieces = split_text(emoji * 3000)
    assert [utf16_len(p) for p in pieces] == [4096, 1904]


def test_the_chosen_answer_is_appended_when_it_fits() -> None:
    assert with_choice("How loud is it?", "7") == "How loud is it?\n\n→ 7"
    assert with_choice("x" * 4094, "7") is None


def test_first_sentence_makes_a_short_toast() -> None:
    assert first_sentence("That button is old. Here's where we are:") == "That button is old."
    assert len(first_sentence("word " * 100)) <= 200
