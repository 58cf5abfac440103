"""Discord's message limits, applied to the engine's `Outbound` messages.

Pure functions (no client, no network): what one `Outbound` becomes on Discord, as
one or more `Part`s, each of which is one message send. The buttons and the file ride
on the last part, under the text that explains them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dialogs.events import Attachment, Choice, Outbound

# Discord rejects message content longer than this.
MAX_CONTENT = 2000
# A button label may be at most this long.
MAX_LABEL = 80
# Five action rows of five buttons.
MAX_BUTTONS = 25

# A sentence ends at . ! ? or … followed by white space, or at a line break; the white
# space stays with the sentence before it, so joining the pieces gives the text back.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[ \t]+|\n\s*")
_WORD_BREAK = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Part:
    """One Discord message: text, and on the last part of an `Outbound` its buttons,
    file and image."""

    content: str
    choices: tuple[Choice, ...] = ()
    attachment: Attachment | None = None
    image: str | None = None


def split_text(text: str, limit: int = MAX_CONTENT) -> list[str]:
    """`text` in pieces of at most `limit` characters, broken between sentences where
    possible, else between words, and only as a last resort inside a word."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, _SENTENCE_BREAK):
        if len(piece.rstrip()) > limit:
            # One sentence longer than a message: fall back to words for it alone.
            chunks.extend(_flush(current))
            current = ""
            for word in _pieces(piece, _WORD_BREAK):
                current = _add(current, word, limit, chunks)
            continue
        current = _add(current, piece, limit, chunks)
    chunks.extend(_flush(current))
    return chunks


def _pieces(text: str, breaks: re.Pattern[str]) -> list[str]:
    """`text` cut after every break, each piece keeping its trailing white space."""
    pieces: list[str] = []
    start = 0
    for match in breaks.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _add(current: str, piece: str, limit: int, chunks: list[str]) -> str:
    """Append `piece` to the chunk being built, starting a new one when it would not
    fit; a piece too long even alone (one enormous word) is cut hard."""
    if len((current + piece).rstrip()) <= limit:
        return current + piece
    chunks.extend(_flush(current))
    while len(piece.rstrip()) > limit:
        chunks.append(piece[:limit])
        piece = piece[limit:]
    return piece


def _flush(current: str) -> list[str]:
    stripped = current.strip()
    return [stripped] if stripped else []


def button_label(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def parts(message: Outbound) -> list[Part]:
    """The Discord messages one `Outbound` becomes."""
    texts = split_text(message.text) or [""]
    choices = message.choices[:MAX_BUTTONS]
    last = Part(texts[-1], choices, message.attachment, message.image)
    return [*(Part(text) for text in texts[:-1]), last]
