"""What became of a due follow-up (`Engine.start_due`), for the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialogs.events import Address, Outbound
from dialogs.store import OutboundRow


class DueStatus(StrEnum):
    DELIVERED = "delivered"
    POSTPONED = "postponed"
    MISSED = "missed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DueOutcome:
    status: DueStatus
    address: Address | None = None
    messages: tuple[Outbound, ...] = ()
    # The messages as outbox rows, committed with the outcome: the dispatcher sends them.
    rows: tuple[OutboundRow, ...] = ()
