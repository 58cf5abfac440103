"""Understanding a typed time of day or a place/offset as a timezone."""

from __future__ import annotations

import re
from datetime import time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_TIME = re.compile(
    r"^\s*(?:at\s+)?(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\s*$", re.IGNORECASE
)
_WORD_TIMES = {"noon": time(12, 0), "midday": time(12, 0), "midnight": time(0, 0)}
_OFFSET = re.compile(r"^\s*(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?\s*$", re.IGNORECASE)
# Etc/GMT zones only cover whole hours; the few places on other offsets get a
# representative zone.
_ODD_OFFSETS = {
    (1, 3, 30): "Asia/Tehran",
    (1, 4, 30): "Asia/Kabul",
    (1, 5, 30): "Asia/Kolkata",
    (1, 5, 45): "Asia/Kathmandu",
    (1, 6, 30): "Asia/Yangon",
    (1, 9, 30): "Australia/Darwin",
    (1, 10, 30): "Australia/Adelaide",
    (-1, 3, 30): "America/St_Johns",
    (-1, 9, 30): "Pacific/Marquesas",
}
_ALIASES = {
    "utc": "UTC",
    "gmt": "UTC",
    "uk": "Europe/London",
    "england": "Europe/London",
    "nyc": "America/New_York",
    "la": "America/Los_Angeles",
    "sf": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "boston": "America/New_York",
    "washington": "America/New_York",
    "miami": "America/New_York",
    "atlanta": "America/New_York",
    "dallas": "America/Chicago",
    "houston": "America/Chicago",
    "austin": "America/Chicago",
    "montreal": "America/Toronto",
    "ottawa": "America/Toronto",
    "dublin": "Europe/Dublin",
    "edinburgh": "Europe/London",
    "manchester": "Europe/London",
    "melbourne": "Australia/Melbourne",
    "canberra": "Australia/Sydney",
    "wellington": "Pacific/Auckland",
    "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "new delhi": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata",
    "beijing": "Asia/Shanghai",
}


def parse_time_of_day(text: str) -> time | None:
    """`9`, `9am`, `9:30 pm`, `21:30`, `21.30`, `noon` -> a time; otherwise None."""
    cleaned = text.strip().lower()
    if cleaned in _WORD_TIMES:
        return _WORD_TIMES[cleaned]
    m = _TIME.match(cleaned)
    if not m:
        return None
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    suffix = (m.group(3) or "").replace(".", "")
    if suffix:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def parse_zone(text: str) -> str | None:
    """A city, an IANA name or a UTC offset -> an IANA zone name; otherwise None."""
    cleaned = " ".join(text.strip().split())
    if not cleaned:
        return None
    key = cleaned.lower()
    if key in _ALIASES:
        return _ALIASES[key]
    offset = _OFFSET.match(cleaned)
    if offset:
        return _zone_for_offset(offset.group(1), int(offset.group(2)), int(offset.group(3) or 0))
    direct = _by_name().get(key) or _by_city().get(key.replace(" ", "_"))
    return direct


def _zone_for_offset(sign: str, hours: int, minutes: int) -> str | None:
    if minutes:
        return _ODD_OFFSETS.get((1 if sign == "+" else -1, hours, minutes))
    if hours == 0:
        return "UTC"
    if hours > 14:
        return None
    # The Etc/GMT zones have POSIX signs: UTC+2 is "Etc/GMT-2".
    name = f"Etc/GMT{'-' if sign == '+' else '+'}{hours}"
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover - depends on tzdata
        return None
    return name


@cache
def _by_name() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


@cache
def _by_city() -> dict[str, str]:
    cities: dict[str, str] = {}
    for zone in sorted(available_timezones()):
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/")):
            cities.setdefault(zone.rsplit("/", 1)[1].lower(), zone)
    return cities
