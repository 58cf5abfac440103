"""One Discord worker, offline, for the gateway failover test and bench.

Usage: python -m tests.workers.gateway_worker DB_URL EVENTS_FILE [SHARDS]

Opens the guide on DB_URL and starts the real `DiscordAdapter`, with discord.py's own
login and gateway handshake against tests/discord_tests/fake_gateway.py (the only
fake: no socket), and the real lease keepers, one per shard (SHARDS, default 1), on
the real database. Appends one line per event to EVENTS_FILE: `started PID T 0` once
`start` returned, `ready PID T SHARD` each time a shard's gateway is ready, `closed PID
T SHARD` each time it is closed; T is time.monotonic(), one clock for every process of
the machine. Runs until killed, or until SIGTERM (then it stops cleanly, releasing its
leases).

`Swarm` starts, watches and kills such workers, for the test and the bench.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import open_guide
from bot.config import Settings
from bot.discord.adapter import DiscordAdapter
from bot.discord.client import GuideClient
from dialogs.clock import SystemClock
from tests.discord_tests.fake_gateway import Script, install

ROOT = Path(__file__).resolve().parents[2]


class OfflineAdapter(DiscordAdapter):
    def make_client(self, shard: int = 0) -> GuideClient:
        client = super().make_client(shard)
        install(client, Script())
        return client


def _note(events: Path, what: str, shard: int = 0) -> None:
    with events.open("a", encoding="utf-8") as out:
        out.write(f"{what} {os.getpid()} {time.monotonic():.6f} {shard}\n")


async def _watch(adapter: DiscordAdapter, events: Path) -> None:
    # Polled, always sleeping: a keeper says it holds its shard's gateway once
    # Discord's READY has come and the lease is still its own.
    holding: set[int] = set()
    while True:
        now = set(adapter.held_shards())
        for shard in sorted(now - holding):
            _note(events, "ready", shard)
        for shard in sorted(holding - now):
            _note(events, "closed", shard)
        holding = now
        await asyncio.sleep(0.002)


async def main(url: str, events: Path, shards: int = 1) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        timezone="Europe/London",
        discord_bot_token="never-used-offline",
        discord_guild_id=None,
        discord_rate=None,
        discord_shards=shards,
    )
    guide = await open_guide(settings, SystemClock())
    adapter = OfflineAdapter(guide, settings, client_options={"guild_ready_timeout": 0.01})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await guide.add_platform(adapter.name, adapter)
    try:
        await adapter.start()
        watcher = asyncio.create_task(_watch(adapter, events))
        _note(events, "started")
        await stop.wait()
        watcher.cancel()
    finally:
        await adapter.stop()
        await guide.close()


@dataclass
class Swarm:
    """Worker processes on one database, and what they said."""

    url: str
    events: Path
    shards: int = 1
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self) -> int:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PAUSECHECK_LOG_LEVEL": "WARNING"}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.workers.gateway_worker",
                self.url,
                str(self.events),
                str(self.shards),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.processes[process.pid] = process
        return process.pid

    def lines(self) -> list[tuple[str, int, float, int]]:
        """(what, pid, time, shard) per note."""
        if not self.events.exists():
            return []
        found = []
        for line in self.events.read_text(encoding="utf-8").splitlines():
            what, pid, at, shard = line.split()
            found.append((what, int(pid), float(at), int(shard)))
        return found

    def wait_for(
        self,
        what: str,
        *,
        pid: int | None = None,
        after: float = 0.0,
        timeout: float = 120.0,
        shard: int | None = None,
    ) -> tuple[int, float]:
        """The first `what` (from `pid`, for `shard`, if given) noted after `after`:
        (pid, time)."""
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            for seen, who, at, on in self.lines():
                if (
                    seen == what
                    and at > after
                    and (pid is None or who == pid)
                    and (shard is None or on == shard)
                ):
                    return who, at
            for who, process in self.processes.items():
                if process.poll() not in (None, -signal.SIGKILL):
                    raise RuntimeError(f"worker {who} exited with {process.returncode}")
            time.sleep(0.01)
        raise TimeoutError(f"no {what!r} within {timeout} s")

    def holder(self, shard: int = 0) -> int | None:
        """The worker whose gateway of `shard` is open now, from the notes."""
        state: dict[int, bool] = {}
        for what, who, _, on in self.lines():
            if what in ("ready", "closed") and on == shard:
                state[who] = what == "ready"
        alive = [who for who, is_open in state.items() if is_open and self.alive(who)]
        if len(alive) > 1:
            raise AssertionError(f"two holders of shard {shard} at once: {alive}")
        return alive[0] if alive else None

    def alive(self, pid: int) -> bool:
        return self.processes[pid].poll() is None

    def kill(self, pid: int) -> float:
        """kill -9; returns when it was sent."""
        at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self.processes[pid].wait()
        return at

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:4])))
