"""Text normalisation for the safety screen.

People in distress rarely type cleanly: they misspell, stretch words ("diiiie"),
swap digits for letters to slip past filters ("k1ll mys3lf"), drop apostrophes and
mix in emoji. The screen matches phrases, so every message is first reduced to a
plain form: lower case, letters and digits only, single spaces.

Two levels are exposed:

* `normalise(text)` - the readable form: repeated letters are capped at two, so
  "soooo" becomes "soo" and "kill" keeps its double "l".
* `match_variants(text)` - what the screen actually searches. Every run of a
  repeated letter is squeezed to one ("kiiill", "kill" and "kil" all become
  "kil"). Rule phrases go through the same squeeze when they are compiled, so a
  stretched word, a double letter and a dropped letter all meet in one spelling.
  A second variant is produced when a "1" stood in for a letter, because "1"
  means "i" in "k1ll" but "l" in "ki11".

Everything here is pure and deterministic; the regexes are compiled once at import.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["candidates", "match_variants", "normalise", "squeeze"]

# Apostrophes are joined rather than turned into spaces: people type both "don't"
# and "dont", and "i'm" and "im", and those must meet in one spelling. Rule
# phrases are normalised the same way, so a rule written as "don't" still matches.
_APOSTROPHES = "'\u2019\u2018\u02bc\u00b4`\u2032"

# Lookalike letters from other scripts, lower case (casefold has already run).
# Kept to the handful that are visually identical to Latin letters, since the
# screen is English-only and anything more would just be noise.
_CONFUSABLES = str.maketrans(
    {
        "\u0430": "a",  # Cyrillic a
        "\u0435": "e",  # Cyrillic ie
        "\u0456": "i",  # Cyrillic i (Ukrainian)
        "\u0458": "j",  # Cyrillic je
        "\u043e": "o",  # Cyrillic o
        "\u0440": "p",  # Cyrillic er
        "\u0441": "c",  # Cyrillic es
        "\u0455": "s",  # Cyrillic dze
        "\u0443": "y",  # Cyrillic u
        "\u0445": "x",  # Cyrillic ha
        "\u03bf": "o",  # Greek omicron
        "\u03b1": "a",  # Greek alpha
        "\u03b9": "i",  # Greek iota
        "\u0131": "i",  # dotless i
    }
)

_LEET_COMMON = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
_LEET_ONE_AS_I = str.maketrans({**_LEET_COMMON, "1": "i"})
_LEET_ONE_AS_L = str.maketrans({**_LEET_COMMON, "1": "l"})

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# A "word" for digit swapping may contain the stand-in symbols as well.
_WORDISH = re.compile(r"[\w@$]+")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_NOT_WORD = re.compile(r"[\W_]+")
_LONG_RUN = re.compile(r"([^\W\d_])\1{2,}")
_ANY_RUN = re.compile(r"([^\W\d_])\1+")
_SPACES = re.compile(r"\s+")
# Three or more single letters in a row ("k i l l", "k.m.s") are most likely a
# word spelled out to dodge a filter.
_SPELLED_OUT = re.compile(r"(?<!\S)(?:[^\W\d_] ){2,}[^\W\d_](?!\S)")


def _strip_unicode_noise(text: str) -> str:
    """Drop marks and zero-width characters; turn other controls into spaces."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        cat = unicodedata.category(ch)
        if cat in ("Mn", "Me", "Cf"):
            # Accents, variation selectors, zero-width joiners and soft hyphens sit
            # inside words; removing them rejoins the word ("k\u200bill" -> "kill").
            continue
        out.append(" " if cat in ("Cc", "Zl", "Zp") else ch)
    return unicodedata.normalize("NFC", "".join(out))


def _prepare(text: str) -> str:
    """Everything before the digit swap: shared by both "1" readings."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        text = _ASCII_CONTROL.sub(" ", text)
    else:
        # Marks first: an accented lookalike ("ἰ") is only its base letter after.
        text = _strip_unicode_noise(text).translate(_CONFUSABLES)
    for mark in _APOSTROPHES:
        if mark in text:
            text = text.replace(mark, "")
    return text


def _finish(text: str, leet: dict[int, str], long_run: str) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        # A bare number ("3 hours", "24") stays a number; only words that already
        # hold letters are read as leetspeak.
        return word.translate(leet) if _HAS_LETTER.search(word) else word

    text = _WORDISH.sub(swap, text)
    # Punctuation, symbols and emoji all become word breaks.
    text = _NOT_WORD.sub(" ", text)
    text = _LONG_RUN.sub(long_run, text)
    return _SPACES.sub(" ", text).strip()


def normalise(text: str) -> str:
    """Reduce `text` to lower-case words separated by single spaces.

    NFKC, casefold, control characters and emoji/symbols removed, digit-for-letter
    swaps inside words that contain letters ("1" read as "i"), apostrophes joined,
    other punctuation turned into spaces, runs of three or more of the same letter
    cut to two.
    """
    return _finish(_prepare(text), _LEET_ONE_AS_I, r"\1\1")


def squeeze(text: str) -> str:
    """Collapse every run of a repeated letter to one ("kiiill" -> "kil")."""
    return _ANY_RUN.sub(r"\1", text)


def _join_spelled_out(text: str) -> str:
    return _SPELLED_OUT.sub(lambda m: m.group(0).replace(" ", ""), text)


def candidates(text: str) -> tuple[str, ...]:
    """Readable spellings worth trying for `text`, `normalise(text)` first.

    Adds, only where they differ: runs of three or more letters cut to one instead
    of two ("kiiill" -> "kill"), "1" read as "l" instead of "i" ("ki11" -> "kill"),
    and words spelled out letter by letter joined up ("k m s" -> "kms").
    """
    prepared = _prepare(text)
    leets = [_LEET_ONE_AS_I, _LEET_ONE_AS_L] if "1" in prepared else [_LEET_ONE_AS_I]
    forms: list[str] = []
    for leet in leets:
        for long_run in (r"\1\1", r"\1"):
            form = _finish(prepared, leet, long_run)
            forms.append(form)
            forms.append(_join_spelled_out(form))
    return tuple(dict.fromkeys(forms))


def match_variants(text: str) -> tuple[str, ...]:
    """The squeezed forms of `text` that the safety screen searches, best first.

    Equal to the squeezed `candidates`, minus duplicates; usually a single string,
    because squeezing already erases the difference between cutting long runs to
    two or to one. Built directly rather than via `candidates` because it runs on
    every message.
    """
    prepared = _prepare(text)
    leets = [_LEET_ONE_AS_I, _LEET_ONE_AS_L] if "1" in prepared else [_LEET_ONE_AS_I]
    out: list[str] = []
    for leet in leets:
        form = _finish(prepared, leet, r"\1")
        for variant in (form, _join_spelled_out(form)):
            squeezed = squeeze(variant)
            if squeezed not in out:
                out.append(squeezed)
    return tuple(out)
