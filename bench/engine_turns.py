"""How fast the engine handles events, against the least any event must cost.

Simulated people walk the pause flow on a SQLite file database (WAL), through the
real engine, content, safety screen and store. The baseline, measured in the same
run on a fresh database, is a bare transaction per event doing only what every event
must: claim the event id, load the conversation, save it. The ratio says what the
engine adds on top of its storage floor.

Run: `python -m bench.engine_turns` (or `make bench`). Not a test: nothing asserts.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dialogs.clock import SystemClock
from dialogs.content import load_content
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import ConversationState, Profile, UserKey
from storage import SqlStore, open_store

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"
# The pause flow's main path, as typed and tapped answers.
WALK: list[str | Command] = [
    Command("pause"),
    "done",
    "7",
    "silence",
    "reach out",
    "it fits",
    "settle and wait",
    "no thanks",
]
USERS = 150
CONCURRENCY = 10


async def _store(tmp: Path, name: str) -> SqlStore:
    return await open_store(f"sqlite+aiosqlite:///{tmp / name}.db")


async def _onboard(store: SqlStore, users: list[UserKey]) -> None:
    now = SystemClock().now()
    async with store.session() as s:
        for user in users:
            await s.save_profile(
                user,
                Profile(
                    consent_at=now,
                    adult=True,
                    screened=True,
                    last_active_at=now,
                    session_started_at=now,
                    reminded_at=now,
                ),
            )


async def _run(
    users: list[UserKey],
    step: Callable[[UserKey, int, int], Awaitable[None]],
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def walk(user: UserKey) -> None:
        for i in range(len(WALK)):
            async with semaphore:
                started = time.perf_counter()
                await step(user, i, len(latencies))
                latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(walk(u) for u in users))
    return time.perf_counter() - began, latencies


async def measure() -> list[tuple[str, float, float, float]]:
    content = load_content(CONTENT)
    screen = SafetyScreen.from_file(CONTENT / "safety" / "signals.yaml")
    resources = SafetyResources.from_file(CONTENT / "safety" / "resources.yaml")
    clock = SystemClock()
    users = [UserKey("bench", f"u{n}") for n in range(USERS)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = await _store(Path(tmp), "baseline")
        await _onboard(base, users)

        async def bare(user: UserKey, i: int, n: int) -> None:
            at = clock.now()
            async with base.session() as s:
                await s.claim_event(f"bench:b{user.user_id}-{i}", at, user)
                state = await s.load_state(user, at)
                await s.save_state(user, ConversationState("pause", "x", {}, state.turn + 1), at)

        elapsed, lat = await _run(users, bare)
        results.append(("bare transaction", elapsed, *_p50_p99(lat)))
        await base.close()

        store = await _store(Path(tmp), "engine")
        await _onboard(store, users)
        engine = Engine(
            content,
            store,
            clock,
            screen,
            lambda signal, country: resource_text(resources, signal, country),
        )

        async def full(user: UserKey, i: int, n: int) -> None:
            address = Address("bench", user.user_id, user.user_id)
            what = WALK[i]
            event = f"e{user.user_id}-{i}"
            if isinstance(what, Command):
                inbound = Inbound(address, event, clock.now(), command=what)
            else:
                inbound = Inbound(address, event, clock.now(), text=what)
            replies = await engine.handle(inbound)
            if not replies or "went wrong" in replies[0].text:
                raise RuntimeError(f"engine failed at step {i}: {replies}")

        elapsed, lat = await _run(users, full)
        results.append(("engine.handle", elapsed, *_p50_p99(lat)))
        await store.close()
    return results


def _p50_p99(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def main() -> None:
    results = asyncio.run(measure())
    events = USERS * len(WALK)
    base_rate = events / results[0][1]
    print(
        f"{USERS} people x {len(WALK)} events of the pause flow = {events} events, "
        f"{CONCURRENCY} at a time, SQLite file (WAL)\n"
    )
    print(f"{'path':<18}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}")
    print("-" * 55)
    for name, elapsed, p50, p99 in results:
        rate = events / elapsed
        print(
            f"{name:<18}{rate:>10,.0f}{p50 * 1000:>9.2f}{p99 * 1000:>9.2f}{rate / base_rate:>9.2f}"
        )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this run: {rss_mb:.0f} MB (python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
