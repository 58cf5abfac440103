"""`normalise` and the variants the screen matches against, one transformation at a time."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogs.safety.normalise import candidates, match_variants, normalise, squeeze


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\uff4b\uff49\uff4c\uff4c", "kill"),  # full-width letters
        ("\ufb01ght", "fight"),  # the "fi" ligature
        ("x\u00b2", "x2"),  # superscript digit
    ],
)
def test_nfkc_folds_compatibility_characters(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_casefold_lowers_everything() -> None:
    assert normalise("I WANT To DIE") == "i want to die"
    assert normalise("STRASSE Straße") == "strasse strasse"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("kill\x00myself", "kill myself"),
        ("want\tto\ndie", "want to die"),
        ("end\r\nit\x7fall", "end it all"),
        ("k\u200bill myself", "kill myself"),  # zero-width space rejoins the word
        ("su\u00adicidal", "suicidal"),  # soft hyphen
        ("die\u2028now\u0085ok", "die now ok"),  # line separator, next-line control
    ],
)
def test_control_characters_are_removed(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("i want to die \U0001f62d\U0001f62d", "i want to die"),
        ("\u2665 he hit me \u2665", "he hit me"),
        ("die\U0001f480lol", "die lol"),
        ("ok \U0001f44d\U0001f3fd", "ok"),  # emoji with a skin-tone modifier
        ("sad \u2764\ufe0f", "sad"),  # emoji with a variation selector
        ("a \u00a9 \u00a7 \u00b0 \u2192 b", "a b"),
    ],
)
def test_emoji_and_symbols_are_removed(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("d0ne", "done"),
        ("k1ll", "kill"),
        ("h3ll0", "hello"),
        ("h4te", "hate"),
        ("5ad", "sad"),
        ("7ired", "tired"),
        ("h@te", "hate"),
        ("my$elf", "myself"),
        ("k1ll mys3lf", "kill myself"),
        ("su1c1d4l", "suicidal"),
    ],
)
def test_digits_and_symbols_inside_words_become_letters(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("raw", ["3 hours", "24 7", "0808 2000 247", "at 1 am", "5 0 7"])
def test_numbers_without_letters_stay_numbers(raw: str) -> None:
    assert normalise(raw) == raw


def test_one_can_also_be_read_as_l() -> None:
    # "1" is "i" in k1ll but "l" in ki11; the main form picks "i", a variant "l".
    assert normalise("ki11") == "kii"
    assert "kill" in candidates("ki11")
    assert "kil" in match_variants("ki11")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("i want to diiiie", "i want to diie"),
        ("soooo tired", "soo tired"),
        ("noooooo", "noo"),
        ("kill", "kill"),
        ("too", "too"),
        ("1000 kms", "1000 kms"),  # digits are never collapsed
    ],
)
def test_three_or_more_repeated_letters_become_two(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_candidates_also_cut_long_runs_to_one() -> None:
    assert candidates("kiiill") == ("kiill", "kill")
    assert candidates("i want to diiiie") == ("i want to diie", "i want to die")
    assert candidates("kill") == ("kill",)


def test_squeeze_collapses_every_repeated_letter() -> None:
    assert squeeze("kill") == "kil"
    assert squeeze("kiiill") == "kil"
    assert squeeze("kil") == "kil"
    assert squeeze("aa 11 bb") == "a 11 b"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("don't", "dont"),
        ("don\u2019t want to be here", "dont want to be here"),
        ("I'm", "im"),
        ("he'll", "hell"),
        ("self-harm", "self harm"),
        ("end.it...all", "end it all"),
        ("(help)", "help"),
        ("a/b\\c", "a b c"),
        ("snake_case", "snake case"),
        ('"no," she said.', "no she said"),
    ],
)
def test_apostrophes_join_and_other_punctuation_splits(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_whitespace_is_collapsed_and_trimmed() -> None:
    assert normalise("   want  \n\n to\t\tdie   ") == "want to die"
    assert normalise("") == ""
    assert normalise(" \n\t ") == ""
    assert normalise("\U0001f62d!!!") == ""


def test_accents_and_lookalike_letters_are_plain_letters() -> None:
    assert normalise("caf\u00e9 na\u00efve") == "cafe naive"
    assert normalise("k\u0456ll") == "kill"  # Cyrillic i
    assert normalise("\u0455ad") == "sad"  # Cyrillic dze
    assert normalise("su\u0131c\u0131dal") == "suicidal"  # dotless i


def test_spelled_out_words_are_joined_in_the_variants() -> None:
    assert normalise("k i l l myself") == "k i l l myself"
    assert "kill myself" in candidates("k i l l myself")
    assert "kms" in match_variants("k.m.s")


_CLEAN = re.compile(r"(?:[^\W_]+(?: [^\W_]+)*)?")


@given(st.text())
def test_normalise_output_is_words_and_single_spaces(text: str) -> None:
    assert _CLEAN.fullmatch(normalise(text))


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_match_variants_are_the_squeezed_candidates(text: str) -> None:
    expected = tuple(dict.fromkeys(squeeze(c) for c in candidates(text)))
    assert match_variants(text) == expected
    assert match_variants(text)[0] == squeeze(normalise(text))


def test_accented_lookalikes_normalise_in_one_pass() -> None:
    # Found by the idempotence property: marks must go before lookalikes are mapped.
    for text in ("ἰ", "ί", "ὸ", "ά"):
        once = normalise(text)
        assert normalise(once) == once
        assert once.isascii()
