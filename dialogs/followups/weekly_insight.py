"""When the weekly insight is offered: once a week, at the person's check-in time.

Opting in is one pending follow-up row of kind `INSIGHT_KIND` (flow `insights_due`),
like a recurring check-in's: whenever one is handled, the next is planned, and
cancelling the row (`/stop`, `/schedule`, "stop these" in the offer) is opting out.
So the opt-in can be listed, exported and deleted like every other planned message.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from dialogs.followups.times import after_quiet_hours, next_weekly_time
from dialogs.store import Profile

INSIGHT_KIND = "insight"
INSIGHT_FLOW = "insights_due"
# Without a regular check-in to go by: Sunday evening.
DEFAULT_WEEKDAY = 6
DEFAULT_TIME = time(18, 0)


def next_insight_time(
    profile: Profile, after: datetime, zone: ZoneInfo, quiet: tuple[time, time]
) -> datetime:
    """The next weekly insight after `after`, in UTC: at the check-in time (on the
    check-in's weekday when it is weekly), else Sunday 18:00; out of quiet hours."""
    at = DEFAULT_TIME
    if profile.checkin_cadence in ("daily", "weekly") and profile.checkin_time:
        at = time.fromisoformat(profile.checkin_time)
    weekday = DEFAULT_WEEKDAY
    if profile.checkin_cadence == "weekly" and profile.checkin_weekday is not None:
        weekday = profile.checkin_weekday
    return after_quiet_hours(next_weekly_time(after, weekday, at, zone), zone, *quiet)
