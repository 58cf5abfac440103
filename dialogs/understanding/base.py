"""What understanding a message means to the rest of Pausecheck, and nothing more.

The engine asks "what is this person asking for?" only after the safety screen has
run, and it must not care whether the answer comes from a trained model, a phrase
table or a test fake. So the seam is one method, `Reader.read`, returning a plain
frozen `Reading`; the intent ids are the fixed list below, shared by the example
files, the classifier and the fallback rules, so a typo in any of them is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["INTENTS", "SAFETY_INTENTS", "Reader", "Reading"]

SAFETY_INTENTS: tuple[str, ...] = ("crisis", "danger")

INTENTS: tuple[str, ...] = (
    *SAFETY_INTENTS,
    "pause",
    "space",
    "talk",
    "role",
    "cycle",
    "support",
    "checkin",
    "stop",
    "greeting",
    "thanks",
    "bot",
    "out_of_scope",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One message understood: the likeliest intent and every intent's probability.

    `ranking` is best first and covers every intent the reader knows, so callers can
    look below the top (a safety intent in second place still matters) without
    asking the reader again.
    """

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]

    def probability(self, intent: str) -> float:
        """The probability given to `intent`; 0.0 for an intent the reader does not know."""
        for name, probability in self.ranking:
            if name == intent:
                return probability
        return 0.0


class Reader(Protocol):
    """Anything that can tell what a message is asking for.

    Contract: `read` returns None for text with nothing in it (empty or only
    whitespace), since no intent can honestly be claimed for it; otherwise a
    `Reading` whose `intent` and `confidence` equal the first entry of `ranking`.
    It must not raise for any other string and must not keep the text.
    """

    def read(self, text: str) -> Reading | None: ...
