"""What each signal says, and whether it may go now.

A signal is one of a few set messages; its words come from `content/link_copy.yaml`
and only a time of day is ever filled in, written in the receiver's own zone. Nothing
the person typed can reach their partner.

The limits keep the link from becoming a way to pursue: at most three signals in
24 hours and one an hour. Two kinds of answer are exempt: the reply to a talk
request (one tap, once per request), and the first "I'm back" or "I need until..."
after one's own space signal, which keeps a promise rather than chasing; it still
counts toward the three a day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dialogs.followups.times import next_local_time
from dialogs.link.store import PartnerSignal

PER_DAY = 3
PER_HOUR = 1
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
# How long a signal shown to its sender can still be sent with one tap.
OFFER_TTL = timedelta(hours=1)
# How long a talk request can be answered.
ANSWER_TTL = timedelta(hours=24)
# "I need until ...": this much more time, rounded up to the next ten minutes.
MORE_TIME = timedelta(minutes=30)


class Kind(StrEnum):
    SPACE = "space"
    BACK = "back"
    MORE_TIME = "more_time"
    TALK = "talk"
    PAUSE = "pause"
    # The receiver's one-tap answers to a talk request.
    READY_NOW = "ready_now"
    LATER_TONIGHT = "later_tonight"
    TOMORROW = "tomorrow"


# What a flow's `offer_signal` step may offer.
OFFERED = (Kind.SPACE, Kind.BACK, Kind.MORE_TIME, Kind.TALK, Kind.PAUSE)
ANSWERS = (Kind.READY_NOW, Kind.LATER_TONIGHT, Kind.TOMORROW)
# Kinds that keep the sender's own word after a space signal.
RETURNS = (Kind.BACK, Kind.MORE_TIME)


class Limit(StrEnum):
    DAY = "day"
    HOUR = "hour"


@dataclass(frozen=True, slots=True)
class Blocked:
    limit: Limit
    # When the next signal could go.
    until: datetime


def blocked(
    kind: Kind, history: Sequence[PartnerSignal], now: datetime, *, keeps_word: bool
) -> Blocked | None:
    """Whether a signal of `kind` from someone whose signals of the last 24 hours
    are `history` must wait; `keeps_word` for a return answering their own space
    signal."""
    if kind in ANSWERS:
        return None
    counted = [s for s in history if s.kind not in ANSWERS and now - s.created_at < DAY]
    if len(counted) >= PER_DAY:
        oldest = sorted(s.created_at for s in counted)[len(counted) - PER_DAY]
        return Blocked(Limit.DAY, oldest + DAY)
    if keeps_word:
        return None
    hourly = [s for s in counted if now - s.created_at < HOUR and not _kept_word(s)]
    if len(hourly) >= PER_HOUR:
        return Blocked(Limit.HOUR, min(s.created_at for s in hourly) + HOUR)
    return None


def _kept_word(signal: PartnerSignal) -> bool:
    return signal.kind in RETURNS and signal.reply_to is not None


def ceil_minutes(at: datetime, step: int) -> datetime:
    """`at` rounded up to a whole multiple of `step` minutes (a time people say)."""
    base = at.replace(second=0, microsecond=0)
    if base < at:
        base += timedelta(minutes=1)
    minutes = base.hour * 60 + base.minute
    rounded = math.ceil(minutes / step) * step
    return base + timedelta(minutes=rounded - minutes)


def clock_time(at: datetime, now: datetime, zone: ZoneInfo, tomorrow: str) -> str:
    """`at` as the receiver says it: "21:40", or "09:00 tomorrow" when it falls on
    their next day, or with the weekday when later still."""
    local, today = at.astimezone(zone), now.astimezone(zone).date()
    text = local.strftime("%H:%M")
    if local.date() == today:
        return text
    if (local.date() - today).days == 1:
        return f"{text} {tomorrow}"
    return f"{text} on {local.strftime('%A')}"


def return_time(when: str, now: datetime, sender_zone: ZoneInfo) -> datetime | None:
    """The moment a /space "when" answer names (None for a time typed in words,
    which the link never carries)."""
    if when == "in_30m":
        return ceil_minutes(now + timedelta(minutes=30), 5)
    if when == "in_1h":
        return ceil_minutes(now + timedelta(hours=1), 5)
    if when == "tomorrow":
        return ceil_minutes(now + timedelta(days=1), 5)
    if when == "evening":
        # The space flow's "this evening, at 8", in the sender's own zone.
        return next_local_time(now, time(20, 0), sender_zone)
    if when == "morning":
        # Its late-night "tomorrow morning": the next 09:00, as its reminder.
        return next_local_time(now, time(9, 0), sender_zone)
    return None
