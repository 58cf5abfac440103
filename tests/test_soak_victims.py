"""Whom the soak kills with several workers (soak/run.py): the service stays up, so a
worker is killed only while another one serves; one still starting after its own
kill takes no calls yet and does not count."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

from soak.run import Soak


def worker(*, serving: bool, up_for: float = 60.0) -> Any:
    started_at = time.monotonic() - up_for if serving else float("inf")
    return SimpleNamespace(serving=serving, started_at=started_at)


def soak_with(*guides: Any) -> Any:
    return SimpleNamespace(guides=list(guides), rng=random.Random(1))


async def test_the_last_serving_worker_is_not_killed_while_another_is_still_starting() -> None:
    # One look (`_victim` waits in steps of half a second until five before `until`).
    until = time.monotonic() + 5.1
    assert await Soak._victim(soak_with(worker(serving=True), worker(serving=False)), until) is None


async def test_with_another_serving_a_worker_up_long_enough_is_killed() -> None:
    up, fresh = worker(serving=True), worker(serving=True, up_for=1.0)
    until = time.monotonic() + 5.1
    assert await Soak._victim(soak_with(up, fresh, worker(serving=False)), until) is up
