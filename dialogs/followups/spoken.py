"""Planned messages in words a person reads at a glance: "at 21:40", "tomorrow at
08:00", "your reminder to go back at 21:40", always in their own timezone.

The guide says when something will come wherever it plans or cancels one (the
confirmation after a schedule step, /stop's question), so the words and the stored
due time cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from dialogs.flows.model import Flow
from dialogs.store import FollowUp


def spoken_time(due: datetime, now: datetime, zone: ZoneInfo) -> str:
    """`due` as the person's clock shows it, relative to their today."""
    local, today = due.astimezone(zone), now.astimezone(zone).date()
    clock = local.strftime("%H:%M")
    days = (local.date() - today).days
    if days <= 0:
        return f"at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    return f"on {local.strftime('%a %d %b')} at {clock}"


def planned_name(followup: FollowUp, flows: Mapping[str, Flow]) -> str:
    flow = flows.get(followup.flow_id)
    if flow is None:
        return "a planned message"
    return flow.planned_as or flow.title[:1].lower() + flow.title[1:]


def spoken_plans(
    followups: Sequence[FollowUp], flows: Mapping[str, Flow], now: datetime, zone: ZoneInfo
) -> str:
    """ "your reminder to go back at 21:40 and my check on how you're doing tomorrow
    at 08:00": each named, in the order they come."""
    parts = [
        f"{planned_name(f, flows)} {spoken_time(f.due_at, now, zone)}"
        for f in sorted(followups, key=lambda f: f.due_at)
    ]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
