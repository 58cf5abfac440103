"""What the engine tells whoever counts (the metrics at /metrics), without knowing them."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def event(self, platform: str, outcome: str) -> None:
        """One inbound event: "handled", "duplicate" (a redelivery) or "failed"."""

    def followup(self, platform: str, outcome: str, late_seconds: float | None) -> None:
        """One due follow-up: a `DueStatus` value; for "delivered", how long after its
        due time it was rendered for sending."""
