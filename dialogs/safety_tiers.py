"""Both safety tiers as one reader, for measuring the guide as a person meets it.

The engine runs the phrase rules first (they act at once) and asks the model only
when they found nothing. `TieredReader` reads text the same way, so an evaluation of
it counts a crisis as caught when either tier would have answered it, and a false
alarm when either would have raised one.
"""

from __future__ import annotations

from dialogs.safety.screen import SafetyScreen
from dialogs.understanding.base import INTENTS, Reader, Reading


class TieredReader:
    def __init__(self, screen: SafetyScreen, model: Reader) -> None:
        self._screen = screen
        self._model = model

    def read(self, text: str) -> Reading | None:
        finding = self._screen.screen(text)
        if finding is None:
            return self._model.read(text)
        signal = str(finding.signal)
        rest = tuple((i, 0.0) for i in INTENTS if i != signal)
        return Reading(signal, 1.0, ((signal, 1.0), *rest))
