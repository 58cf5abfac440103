"""When the soak kills a polling guide (soak/run.py): every kill asked for is made, even
where each restart is slow, and the people's end moves later by the time the guide was
down (CI once made 2 kills of 3 in a one-minute run on a loaded machine)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from types import SimpleNamespace
from typing import Any

import pytest

import soak.run
from soak.deadline import Deadline
from soak.run import Soak

RESTART = 0.3


@pytest.fixture
def short_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The run's shape in tenths of a second instead of seconds.
    monkeypatch.setattr(soak.run, "FIRST_KILL_AFTER", 0.1)
    monkeypatch.setattr(soak.run, "LAST_KILL_BEFORE_END", 0.5)
    monkeypatch.setattr(soak.run, "MIN_UPTIME", 0.2)


def polling_soak(kills: int, restarts: list[tuple[float, float]]) -> Any:
    async def kill_once(*, in_window: bool) -> None:
        down = time.monotonic()
        await asyncio.sleep(RESTART)
        restarts.append((down, time.monotonic()))

    return SimpleNamespace(
        o=SimpleNamespace(kill_count=kills, webhook=False),
        rng=random.Random(15),
        _kill_once=kill_once,
    )


@pytest.mark.usefixtures("short_run")
async def test_slow_restarts_still_get_every_kill_and_move_the_end_later() -> None:
    restarts: list[tuple[float, float]] = []
    asked = time.monotonic() + 1.0
    until = Deadline(asked)
    # Three restarts of 0.3 s and 0.2 s up between them do not fit in the 0.4 s the
    # moments are spread over, so the end has to move.
    await Soak._kill_until(polling_soak(3, restarts), until)
    assert len(restarts) == 3
    for (_, up), (down, _) in itertools.pairwise(restarts):
        assert down - up >= soak.run.MIN_UPTIME
    assert until.at >= asked + 3 * RESTART
    assert until.passed()
