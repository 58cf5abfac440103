"""Wall-clock times in a person's own timezone, turned into UTC instants."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_local_time(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The next moment after `now` when the clock in `zone` reads `at`, in UTC.

    Built from the local date and wall time (not by adding 24 hours), so it stays at
    the same local hour across daylight-saving changes. A wall time that does not
    exist that day (skipped by a spring-forward) resolves to the instant after the gap.
    """
    local_now = now.astimezone(zone)
    for days in range(0, 3):
        day = local_now.date() + timedelta(days=days)
        candidate = datetime.combine(day, at, tzinfo=zone)
        # Round-trip through UTC to normalise a non-existent wall time forward.
        instant = candidate.astimezone(UTC)
        if instant > now:
            return instant
    raise AssertionError("unreachable: a wall time recurs within two days")


DEFAULT_QUIET = (time(22, 0), time(8, 0))


def after_quiet_hours(due: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """`due`, or the end of the quiet hours it lands in (local `start` to `end`,
    possibly across midnight), in UTC. Equal start and end means no quiet hours."""
    if start == end:
        return due
    local = due.astimezone(zone).time().replace(tzinfo=None)
    inside = start <= local < end if start < end else (local >= start or local < end)
    if not inside:
        return due
    return next_local_time(due, end, zone)


def next_weekly_time(now: datetime, weekday: int, at: time, zone: ZoneInfo) -> datetime:
    """The next moment after `now` when it is `weekday` (0 = Monday) at `at` in `zone`."""
    candidate = next_local_time(now, at, zone)
    for _ in range(8):
        if candidate.astimezone(zone).weekday() == weekday:
            return candidate
        candidate = next_local_time(candidate, at, zone)
    raise AssertionError("unreachable: every weekday comes within a week")
