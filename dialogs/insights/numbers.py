"""The figures behind `/insights`, computed from journal rows alone.

Pure functions of the rows, the time and the person's zone and quiet hours, so a
test can script a journal and check every figure by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from dialogs.followups.times import after_quiet_hours, next_local_time
from dialogs.insights.signals import (
    CHECKIN_ANSWERED,
    EPISODE,
    HELPED,
    NOT_HELPED,
    PAUSE_AFTER,
    PAUSE_BEFORE,
    SETTLED_AT,
    SPACE_AT,
    SPACE_BACK,
    SPACE_DELAYS,
    SPACE_GRACE,
    SPACE_REMIND,
    SPACE_REMIND_YES,
    SPACE_WHEN,
)
from dialogs.store import JournalEntry

# A chart covers at most this many weeks (the journal keeps a year by default).
MAX_WEEKS = 52
# Below either of these, a line through weekly values would draw a trend that is
# not there yet: the chart and the words say "too early" instead.
MIN_PAUSES_FOR_TREND = 5
MIN_WEEKS_FOR_TREND = 3


@dataclass(frozen=True, slots=True)
class Pause:
    at: datetime
    before: int
    # The last rating on the same scale within the episode; None if none was given.
    after: int | None = None
    # From the first rating to the first later one at or below SETTLED_AT.
    settled_in: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Week:
    start: date  # the local Monday
    pauses: int
    before: float | None  # the median of the week's pauses
    after: float | None


@dataclass(frozen=True, slots=True)
class Insights:
    pauses: tuple[Pause, ...]
    weeks: tuple[Week, ...]
    # Option ids of "what helped" with how often each was chosen, most first.
    helped: tuple[tuple[str, int], ...]
    # Space taken with a reminder, whose promised time (and grace) has passed.
    space_asked: int
    space_kept: int
    checkins_answered: int

    @property
    def early(self) -> bool:
        """Too few pauses, or weeks with one, for a line to mean anything."""
        weeks = sum(1 for week in self.weeks if week.pauses)
        return len(self.pauses) < MIN_PAUSES_FOR_TREND or weeks < MIN_WEEKS_FOR_TREND

    @property
    def before(self) -> float | None:
        return _median([p.before for p in self.pauses])

    @property
    def after(self) -> float | None:
        return _median([p.after for p in self.pauses if p.after is not None])

    @property
    def settling(self) -> tuple[timedelta, int] | None:
        """The median settling time and how many pauses it is the middle of."""
        seconds = [p.settled_in.total_seconds() for p in self.pauses if p.settled_in is not None]
        return (timedelta(seconds=median(seconds)), len(seconds)) if seconds else None

    @property
    def has_anything(self) -> bool:
        return bool(self.pauses or self.checkins_answered or self.space_asked)


def compute(
    entries: Sequence[JournalEntry],
    now: datetime,
    zone: ZoneInfo,
    quiet: tuple[time, time],
) -> Insights:
    """The figures for `entries` (oldest first) as of `now`."""
    pauses = _pauses(entries)
    asked, kept = _space(entries, now, zone, quiet)
    helped = Counter(
        e.value for e in entries if (e.flow_id, e.step_id) == HELPED and e.value not in NOT_HELPED
    )
    return Insights(
        pauses=tuple(pauses),
        weeks=_weeks(pauses, now, zone),
        helped=tuple(helped.most_common()),
        space_asked=asked,
        space_kept=kept,
        checkins_answered=sum(1 for e in entries if _at(e, CHECKIN_ANSWERED, "rating")),
    )


def _at(entry: JournalEntry, where: tuple[str, str], kind: str) -> bool:
    return (entry.flow_id, entry.step_id) == where and entry.kind == kind


def _rating(entry: JournalEntry) -> int | None:
    return int(entry.value) if entry.value.isdigit() else None


def _pauses(entries: Sequence[JournalEntry]) -> list[Pause]:
    """Each pause with the ratings that followed it, up to the next pause."""
    starts = [
        (i, e)
        for i, e in enumerate(entries)
        if _at(e, PAUSE_BEFORE, "rating") and _rating(e) is not None
    ]
    pauses: list[Pause] = []
    for n, (index, start) in enumerate(starts):
        before = _rating(start)
        assert before is not None
        end = starts[n + 1][0] if n + 1 < len(starts) else len(entries)
        later = [
            (e.at, value)
            for e in entries[index + 1 : end]
            if (e.flow_id, e.step_id) in PAUSE_AFTER
            and e.kind == "rating"
            and e.at - start.at <= EPISODE
            and (value := _rating(e)) is not None
        ]
        after = later[-1][1] if later else None
        settled_in = None
        if before > SETTLED_AT:
            settled_in = next((at - start.at for at, v in later if v <= SETTLED_AT), None)
        pauses.append(Pause(start.at, before, after, settled_in))
    return pauses


def week_start(moment: datetime, zone: ZoneInfo) -> date:
    local = moment.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def _weeks(pauses: Sequence[Pause], now: datetime, zone: ZoneInfo) -> tuple[Week, ...]:
    if not pauses:
        return ()
    last = week_start(now, zone)
    first = max(week_start(pauses[0].at, zone), last - timedelta(weeks=MAX_WEEKS - 1))
    by_week: dict[date, list[Pause]] = {}
    for pause in pauses:
        by_week.setdefault(week_start(pause.at, zone), []).append(pause)
    weeks = []
    start = first
    while start <= last:
        these = by_week.get(start, [])
        weeks.append(
            Week(
                start,
                len(these),
                _median([p.before for p in these]),
                _median([p.after for p in these if p.after is not None]),
            )
        )
        start += timedelta(weeks=1)
    return tuple(weeks)


def _space(
    entries: Sequence[JournalEntry], now: datetime, zone: ZoneInfo, quiet: tuple[time, time]
) -> tuple[int, int]:
    """(asked, kept): reminders asked for whose promised time and grace are past, and
    those whose reminder was answered by then."""
    backs = [e.at for e in entries if _at(e, SPACE_BACK, "rating")]
    asked = kept = 0
    when: JournalEntry | None = None
    for entry in entries:
        if _at(entry, SPACE_WHEN, "choice"):
            when = entry
            continue
        if not _at(entry, SPACE_REMIND, "choice") or entry.value != SPACE_REMIND_YES:
            continue
        if when is None:
            continue
        promised = _promised(when.value, entry.at, zone, quiet)
        when = None
        if promised is None or promised + SPACE_GRACE > now:
            continue  # still to come, or a time the journal cannot place
        asked += 1
        if any(promised <= back <= promised + SPACE_GRACE for back in backs):
            kept += 1
    return asked, kept


def _promised(
    when: str, asked_at: datetime, zone: ZoneInfo, quiet: tuple[time, time]
) -> datetime | None:
    """When the reminder was due: as the space flow schedules it (from the turn the
    reminder was asked for in), moved out of quiet hours."""
    delay = SPACE_DELAYS.get(when)
    if delay is not None:
        target = asked_at + delay
    elif when in SPACE_AT:
        target = next_local_time(asked_at, time.fromisoformat(SPACE_AT[when]), zone)
    else:
        return None
    return after_quiet_hours(target, zone, *quiet)


def _median(values: Sequence[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(median(present)) if present else None
