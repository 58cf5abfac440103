"""Durations as authors write them: `90s`, `20m`, `1h`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"^\s*(\d+\s*[dhms]\s*)+$")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    if not _WHOLE.match(text):
        raise ValueError(f"{text!r} is not a duration like '20m', '1h30m' or '2d'")
    seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return timedelta(seconds=seconds)
