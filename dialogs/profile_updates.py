"""What a flow's `remember` step may write on the profile, checked on the way in.

Values arrive as text from a flow (a template filled from the conversation), so
each field is parsed here and a bad value leaves the profile as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from dialogs.flows.model import PROFILE_VARIABLES, ROLES, ProfileField
from dialogs.flows.templates import render
from dialogs.flows.typed_values import parse_time_of_day, parse_zone
from dialogs.store import Profile, VarValue

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def profile_variables(declared: Iterable[str], profile: Profile) -> dict[str, VarValue]:
    """The profile values a flow reads: those of `PROFILE_VARIABLES` it declares and the
    profile knows, a yes-or-no field as "yes" or "no" (what a branch can test)."""
    names = set(declared)
    values: dict[str, VarValue] = {}
    for name in PROFILE_VARIABLES:
        known = getattr(profile, name)
        if name not in names or known is None:
            continue
        values[name] = ("yes" if known else "no") if isinstance(known, bool) else known
    return values


def remembered(
    profile: Profile,
    fields: Mapping[ProfileField, bool | str],
    variables: Mapping[str, VarValue],
    at: datetime,
) -> Profile:
    """The profile with `fields` (a remember step's `set`) written on it."""
    for name, value in fields.items():
        if name == "country":
            code = render(str(value), dict(variables)).strip().upper()
            profile = replace(profile, country=None if code in ("", "OTHER") else code)
        elif name == "consent":
            profile = replace(profile, consent_at=at if value is True else None)
        elif name == "adult":
            profile = replace(profile, adult=value is True)
        elif name == "unsafe":
            profile = replace(profile, unsafe=value is True)
        elif name == "screened":
            profile = replace(profile, screened=value is True)
        elif name == "role":
            role = render(str(value), dict(variables)).strip().lower()
            profile = replace(profile, role=role if role in ROLES else None)
        else:
            profile = _time_setting(profile, name, render(str(value), dict(variables)), at)
    return profile


def _time_setting(profile: Profile, name: str, value: str, at: datetime) -> Profile:
    value = value.strip()
    if name == "zone":
        zone = parse_zone(value)
        return replace(profile, zone=zone) if zone else profile
    if name in ("quiet_start", "quiet_end"):
        if value.lower() == "off":
            return replace(profile, quiet_start="00:00", quiet_end="00:00")
        parsed = parse_time_of_day(value)
        if parsed is None:
            return profile
        hhmm = parsed.strftime("%H:%M")
        if name == "quiet_start":
            return replace(profile, quiet_start=hhmm)
        return replace(profile, quiet_end=hhmm)
    if name == "checkin_cadence":
        cadence = value.lower()
        return replace(profile, checkin_cadence=cadence if cadence in ("daily", "weekly") else None)
    if name == "checkin_time":
        parsed = parse_time_of_day(value)
        return replace(profile, checkin_time=parsed.strftime("%H:%M")) if parsed else profile
    if name == "checkin_weekday":
        day = value.lower()
        index = _WEEKDAYS.index(day) if day in _WEEKDAYS else (int(day) if day.isdigit() else -1)
        return replace(profile, checkin_weekday=index) if 0 <= index <= 6 else profile
    if name == "checkin_pause_days":
        days = int(value) if value.isdigit() else 0
        return replace(profile, checkin_paused_until=at + timedelta(days=days) if days else None)
    return profile
