"""Text rules of the Bot API: message length, and how a chosen answer is shown.

Telegram counts a message's length in UTF-16 code units (an emoji outside the Basic
Multilingual Plane counts twice), so that is what is measured here; counting Python
characters would let an emoji-heavy text slip past 4096 and be refused.
"""

from __future__ import annotations

import re

MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64  # bytes of UTF-8
CALLBACK_ANSWER_LIMIT = 200

# The end of a sentence: its punctuation and any closing quotes or brackets, followed by
# whitespace; or a line break, which ends a paragraph or a list item.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")
_WHITESPACE = re.compile(r"\s")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fits(text: str, limit: int) -> int:
    """How many leading characters of `text` fit in `limit` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def _cut(text: str, window: int) -> int:
    """Where to end the first piece: after the last sentence end inside the window,
    else at its last whitespace, else (one unbroken word) at the window itself."""
    # One character more than fits, so a sentence ending right at the limit is seen
    # to be followed by whitespace.
    head = text[: window + 1]
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(head) if 0 < m.end() <= window]
    if sentence_ends:
        return sentence_ends[-1]
    spaces = [m.start() for m in _WHITESPACE.finditer(head) if 0 < m.start() <= window]
    if spaces:
        return spaces[-1]
    return window


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`text` as pieces of at most `limit` UTF-16 units, cut on sentence boundaries
    where possible, so no message ends mid-sentence. Whitespace at the cuts is dropped."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _cut(rest, _fits(rest, limit))
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if piece:
            pieces.append(piece)
    if rest.strip():
        pieces.append(rest)
    return pieces


def with_choice(text: str, label: str, limit: int = MESSAGE_LIMIT) -> str | None:
    """The message as it reads once a button was chosen, or None if that would be too
    long to edit in (the caller then only removes the buttons)."""
    shown = f"{text}\n\n→ {label}"
    return shown if utf16_len(shown) <= limit else None


def first_sentence(text: str, limit: int = CALLBACK_ANSWER_LIMIT) -> str:
    """The first sentence of `text`, within `limit` (for a callback's short toast)."""
    match = _SENTENCE_END.search(text)
    sentence = text[: match.end()] if match else text
    sentence = " ".join(sentence.split())
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def fits_callback_data(data: str) -> bool:
    return 0 < len(data.encode()) <= CALLBACK_DATA_LIMIT
