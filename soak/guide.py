"""The process under test: `pausecheck run --clock-scale N` in a subprocess of its
own, on a database that outlives it: polling the fake Bot API (one process, SQLite),
or, given a webhook port, one of several webhook workers the fake posts updates to
(PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from soak.priority import LoopAhead
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parents[1]
# Loading the content and the intent model takes a few seconds; on a loaded machine more.
START_WITHIN = 90.0
# What the fake's webhook posts carry, and the workers expect.
WEBHOOK_SECRET = "soak-webhook-secret"


class GuideProcess:
    def __init__(
        self,
        fake: FakeBotAPI,
        database_url: str,
        log: Path,
        *,
        clock_scale: float,
        zone: str,
        webhook_port: int | None = None,
        priority: LoopAhead | None = None,
    ) -> None:
        self.fake = fake
        # Started at the usual priority, the harness's loop running ahead (priority.py).
        self.priority = priority or LoopAhead()
        # A webhook worker serves on this port; None: long polling.
        self.webhook_port = webhook_port
        # The id this process's claims carry (outbox rows, inbox rows), once started.
        self.worker_id: str | None = None
        self.started_at = 0.0
        self.database_url = database_url
        self.log = log
        self.clock_scale = clock_scale
        self.zone = zone
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
            "TELEGRAM_API_BASE_URL": self.fake.base_url,
            "PAUSECHECK_DATABASE_URL": self.database_url,
            "PAUSECHECK_TIMEZONE": self.zone,
            # The most the guide ever logs, so that the check for message text in the
            # logs sees everything; the libraries stay at their default (they log
            # whole messages at DEBUG, which the settings table says).
            "PAUSECHECK_LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("DISCORD_BOT_TOKEN", None)
        env.pop("PAUSECHECK_TELEGRAM_WEBHOOK_URL", None)
        if self.webhook_port is not None:
            env |= {
                "PAUSECHECK_TELEGRAM_WEBHOOK_URL": "https://guide.example/telegram/hook",
                "PAUSECHECK_TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
                "PAUSECHECK_TELEGRAM_WEBHOOK_PORT": str(self.webhook_port),
                "PAUSECHECK_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
        return env

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/telegram/hook"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        polling = len(self.fake.ok_calls("deleteWebhook"))
        logged = self.log.stat().st_size if self.log.exists() else 0
        # Not up yet: no kill picks a process still starting.
        self.started_at = float("inf")
        command = self.priority.usual(
            [sys.executable, "-m", "bot", "run", "--clock-scale", str(self.clock_scale)]
        )
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=self.env(), stdout=log, stderr=log
            )
        self.starts += 1
        assert self.process is not None
        began: asyncio.Future[Any]
        if self.webhook_port is None:
            # Polling has begun once the webhook is cleared.
            began = asyncio.ensure_future(
                self.fake.wait_for(
                    lambda: len(self.fake.ok_calls("deleteWebhook")) > polling,
                    within=START_WITHIN,
                )
            )
        else:
            began = asyncio.ensure_future(self._serving(logged))
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait({began, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not began.done():
            began.cancel()
            raise RuntimeError(f"the guide exited at start; see {self.log}")
        exited.cancel()
        if began.exception() is not None:
            raise RuntimeError(f"the guide did not start within {START_WITHIN:.0f} s")
        self.started_at = time.monotonic()

    async def _serving(self, logged: int) -> None:
        """Until this worker answers on its webhook port and has logged the id its
        claims carry (read from what this start wrote to the log)."""
        deadline = time.monotonic() + START_WITHIN
        async with aiohttp.ClientSession() as http:
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                found = re.search(rb"webhook inbox worker=(\w+)", self.log.read_bytes()[logged:])
                if found:
                    url = f"http://127.0.0.1:{self.webhook_port}/healthz"
                    try:
                        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                            if r.status == 200:
                                self.worker_id = found.group(1).decode()
                                return
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                await asyncio.sleep(0.2)

    @property
    def serving(self) -> bool:
        """Running and started (a worker still starting takes no webhook calls and runs
        no follow-ups)."""
        return self.running and self.started_at != float("inf")

    def _exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int | None:
        """SIGTERM, as an operator would; its exit status (None if it had to be killed)."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None
