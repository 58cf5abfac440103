"""The crisis state: for a day after a crisis signal the guide stays careful."""

from __future__ import annotations

from datetime import datetime, timedelta

from dialogs.store import FollowUp, Profile

CAREFUL_FOR = timedelta(hours=24)


def crisis_active(profile: Profile, now: datetime) -> bool:
    return profile.crisis_at is not None and now - profile.crisis_at < CAREFUL_FOR


def hold_back(followup: FollowUp, profile: Profile, now: datetime) -> bool:
    """True for a follow-up planned before a recent crisis signal: a cheerful check-in
    the day someone said they might hurt themselves would be careless. One the person
    asked for after the signal still goes out."""
    return crisis_active(profile, now) and followup.created_at < (profile.crisis_at or now)
