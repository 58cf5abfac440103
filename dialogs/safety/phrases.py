"""Whole-phrase matching on normalised text, for small lists kept in content."""

from __future__ import annotations

from collections.abc import Iterable

from dialogs.safety.normalise import normalise


class PhraseList:
    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = tuple(f" {normalise(p)} " for p in phrases if normalise(p))

    def found_in(self, text: str) -> bool:
        padded = f" {normalise(text)} "
        return any(p in padded for p in self._phrases)
