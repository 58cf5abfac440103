"""The seam: intent lists and the reading's helpers."""

from __future__ import annotations

from dialogs.understanding import INTENTS, SAFETY_INTENTS, Reading


def test_safety_intents_are_intents_and_listed_first() -> None:
    assert SAFETY_INTENTS == ("crisis", "danger")
    assert INTENTS[: len(SAFETY_INTENTS)] == SAFETY_INTENTS
    assert len(set(INTENTS)) == len(INTENTS) == 14


def test_probability_looks_through_the_whole_ranking() -> None:
    reading = Reading("pause", 0.6, (("pause", 0.6), ("crisis", 0.3), ("thanks", 0.1)))
    assert reading.probability("crisis") == 0.3
    assert reading.probability("danger") == 0.0
