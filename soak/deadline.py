"""When the people stop acting: a moment that can move later."""

from __future__ import annotations

import time


class Deadline:
    """The end of a run's minutes of service. A polling guide serves no one while it
    restarts after a kill, and on a loaded machine a restart took long enough that the
    last of a one-minute run's kills no longer fit (CI: 2 kills of 3). Each restart's
    delay moves the end later by as much, so every run gets its minutes and its kills."""

    def __init__(self, at: float) -> None:
        self.at = at

    def later_by(self, seconds: float) -> None:
        self.at += max(0.0, seconds)

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())
