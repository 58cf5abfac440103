"""One dispatcher process, for the two-process delivery test.

Usage: python -m tests.workers.dispatch_worker DB_URL OUT_FILE GO_FILE
Sets up, writes OUT_FILE.ready, waits (30 s at most) for GO_FILE so both workers start
together, then runs the real engine and dispatcher against the shared database until
nothing is due, appending the user id to OUT_FILE for every message batch sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from dialogs.clock import SystemClock
from dialogs.content import load_content
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from storage import open_store

CONTENT = Path(__file__).resolve().parents[2] / "content"


class FileSender:
    def __init__(self, path: Path) -> None:
        self._path = path

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        with self._path.open("a", encoding="utf-8") as out:
            out.write(f"{address.user_id}\n")
        # A real send takes a network round trip; without one, a single SQLite writer
        # re-takes the lock back to back and the other process only gets in at the end.
        # (The dispatcher renders its next batch while one is sent, then waits for it.)
        await asyncio.sleep(0.2)


async def main(url: str, out: Path, go: Path) -> None:
    content = load_content(CONTENT)
    screen = SafetyScreen.from_file(CONTENT / "safety" / "signals.yaml")
    resources = SafetyResources.from_file(CONTENT / "safety" / "resources.yaml")
    clock = SystemClock()
    store = await open_store(url, clock=clock)
    engine = Engine(content, store, clock, screen, lambda s, c: resource_text(resources, s, c))
    dispatcher = Dispatcher(store, engine, {"test": FileSender(out)}, clock, batch_size=7)
    out.with_suffix(".ready").write_text("ready")
    for _ in range(3000):
        if go.exists():  # noqa: ASYNC240 - a tiny stat while waiting, nothing else runs
            break
        await asyncio.sleep(0.01)
    try:
        while await dispatcher.run_due():
            pass
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
