"""The process under test: `pausecheck run --clock-scale N` in a subprocess of its
own, on a database file that outlives it, polling the fake Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parents[1]
# Loading the content and the intent model takes a few seconds; on a loaded machine more.
START_WITHIN = 90.0


class GuideProcess:
    def __init__(
        self, fake: FakeBotAPI, database_url: str, log: Path, *, clock_scale: float, zone: str
    ) -> None:
        self.fake = fake
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
        return env

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        polling = len(self.fake.ok_calls("deleteWebhook"))
        command = [sys.executable, "-m", "bot", "run", "--clock-scale", str(self.clock_scale)]
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=self.env(), stdout=log, stderr=log
            )
        self.starts += 1
        # Polling has begun once the webhook is cleared.
        assert self.process is not None
        began = asyncio.ensure_future(
            self.fake.wait_for(
                lambda: len(self.fake.ok_calls("deleteWebhook")) > polling, within=START_WITHIN
            )
        )
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait({began, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not began.done():
            began.cancel()
            raise RuntimeError(f"the guide exited at start; see {self.log}")
        exited.cancel()
        if began.exception() is not None:
            raise RuntimeError(f"the guide did not start within {START_WITHIN:.0f} s")

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
