"""Turning typed text into an answer: which option, or which number."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

_WORDS = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")
_NUMBER_WORDS = {
    "zero": 0,
    "none": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_INT = re.compile(r"^(?:#|no\.?\s*)?(\d{1,3})(?:\s*(?:/|out of|of)\s*10)?[.!)]?$")
_CUTOFF = 0.78
# Longer than this, text is someone writing, not someone picking an option.
MAX_ANSWER_LENGTH = 200


def simplify(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form for comparing answers."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", _WORDS.sub(" ", no_marks)).strip()


def parse_number(text: str) -> int | None:
    """`7`, `7/10`, `7 out of 10`, `#2`, `seven` -> the number; anything else -> None."""
    cleaned = text.strip().casefold()
    m = _INT.match(cleaned)
    if m:
        return int(m.group(1))
    return _NUMBER_WORDS.get(simplify(cleaned))


def match_option(text: str, labels: Sequence[Sequence[str]]) -> int | None:
    """Index of the option `text` names, or None when it names none or several.

    `labels[i]` holds option i's label, id and aliases. Tries, in order: its
    number as shown (1-based), an exact name, a name the text starts or ends with
    as whole words, then close spelling of a whole name.
    """
    if len(text) > MAX_ANSWER_LENGTH:
        return None
    number = parse_number(text)
    if number is not None and 1 <= number <= len(labels):
        return number - 1
    said = simplify(text)
    if not said:
        return None
    names = [[simplify(n) for n in group if simplify(n)] for group in labels]
    exact = [i for i, group in enumerate(names) if said in group]
    if len(exact) == 1:
        return exact[0]
    padded = f" {said} "
    contained = [
        i
        for i, group in enumerate(names)
        if any(len(n) >= 3 and (f" {n} " in padded or padded.startswith(f" {n} ")) for n in group)
        or any(len(said) >= 4 and f" {n} ".startswith(f" {said} ") for n in group)
    ]
    if len(contained) == 1:
        return contained[0]
    flat = [(n, i) for i, group in enumerate(names) for n in group]
    close = difflib.get_close_matches(said, [n for n, _ in flat], n=3, cutoff=_CUTOFF)
    hits = {i for n, i in flat if n in close}
    if len(hits) == 1:
        return hits.pop()
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def clean_input(text: str) -> str:
    """Typed text with control and invisible formatting characters removed, trimmed.

    Newlines and tabs survive; emoji survive (they are how some people answer).
    """
    return _CONTROL.sub("", text).strip()
