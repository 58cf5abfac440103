"""When to remind a person that they are talking to a program, not a human."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from dialogs.store import Profile

# A gap this long starts a new session.
SESSION_GAP = timedelta(minutes=30)
AT_MOST_EVERY = timedelta(days=1)
LONG_SESSION = timedelta(hours=3)
LONG_ABSENCE = timedelta(days=7)


def note_activity(profile: Profile, now: datetime) -> tuple[Profile, bool]:
    """The profile updated for activity at `now`, and whether to remind now."""
    last = profile.last_active_at
    new_session = last is None or now - last >= SESSION_GAP
    started = (
        now if new_session or profile.session_started_at is None else profile.session_started_at
    )
    reminded = profile.reminded_at
    back_after_long_absence = last is not None and now - last >= LONG_ABSENCE
    first_session_today = new_session and (reminded is None or now - reminded >= AT_MOST_EVERY)
    long_session = now - started >= LONG_SESSION and (
        reminded is None or reminded < started + LONG_SESSION
    )
    remind = back_after_long_absence or first_session_today or long_session
    updated = replace(
        profile,
        last_active_at=now,
        session_started_at=started,
        reminded_at=now if remind else reminded,
    )
    return updated, remind
