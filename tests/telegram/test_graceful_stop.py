"""SIGTERM (issue 19, item 3): the real `pausecheck run` on PostgreSQL stops taking new
events and follow-ups, lets the sends in flight finish and be marked, gives back every
claim it holds (follow-ups CLAIMED by it back to PENDING, its pending outbox rows
released), and exits 0. Another worker can then take all of it at once, without
waiting out a lease.

The fake Bot API holds sendMessage at a gate: the first few follow-ups' sends (so the
dispatcher is mid-wave, holding claimed follow-ups it has not rendered yet), then a
person's reply. SIGTERM comes while they are held; the reply is let through once the
process says it is stopping, the wave once it says it is finishing its sends. Its
health port answers /healthz and /metrics meanwhile.

On a loaded machine the steps take longer than the guide's HTTP timeout (5 s): a held
send is given up on and tried again, and the first try, let through later, reaches
the chat with its answer lost. The fake counts those apart (`unanswered`); every other
message it took must be marked. Whether the stop finds follow-ups claimed and not yet
rendered depends on the machine's speed (50 unloaded, none with the cores busy);
tests/storage/test_release_claims.py gives those back on both backends.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from dialogs.store import FollowUpRequest, Profile, UserKey
from storage import open_store
from storage.engine import create_engine_for
from storage.models import FollowUpRow
from storage.outbound_rows import OUTBOUND
from tests.postgres import postgres_schema_url
from tests.telegram.conftest import free_port
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]
PERSON = 4701
# Follow-ups due at once, for as many people: more than a batch renders in its
# quarter of a second, so claimed ones wait their turn when the stop comes.
WAVE = 200
FIRST_OF_WAVE = 900_000
START_WITHIN = 90.0
STOPPING = "stopping: no new events"
FINISHING = "finishing the sends in flight"


@dataclass
class GatedBotAPI(FakeBotAPI):
    """Holds each sendMessage to the first `hold_first` chats, and to `PERSON`, until
    its chat is let through (`open`, or `open()` for all); `entered` lists the chats
    of the calls held. The rest of the wave passes: held sends fill the guide's HTTP
    slots, and with all of the wave held a loaded machine kept the person's reply
    waiting for a slot past the test's minute."""

    hold_first: int = 4
    entered: list[int] = field(default_factory=list)
    opened: set[int] = field(default_factory=set)
    all_open: bool = False
    _gate: asyncio.Condition = field(default_factory=asyncio.Condition)

    def _holds(self, chat: int) -> bool:
        if self.all_open or chat in self.opened:
            return False
        return chat == PERSON or chat in self.entered or len(set(self.entered)) < self.hold_first

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat = int(params["chat_id"])
        if self._holds(chat):
            self.entered.append(chat)
            self._notify()
            async with self._gate:
                await self._gate.wait_for(lambda: self.all_open or chat in self.opened)
        return await super()._api_sendMessage(params)

    async def open(self, chat: int | None = None) -> None:
        async with self._gate:
            if chat is None:
                self.all_open = True
            else:
                self.opened.add(chat)
            self._gate.notify_all()


@pytest.fixture
async def gated() -> AsyncIterator[GatedBotAPI]:
    server = GatedBotAPI()
    await server.start()
    yield server
    await server.open()
    await server.stop()


def profile(now: datetime) -> Profile:
    return Profile(
        consent_at=now,
        adult=True,
        country="GB",
        zone="Europe/London",
        screened=True,
        session_started_at=now - timedelta(hours=2),
        last_active_at=now - timedelta(hours=2),
        reminded_at=now - timedelta(hours=2),
        # No quiet hours: the wave goes out whatever the time of the run.
        quiet_start="00:00",
        quiet_end="00:00",
    )


async def prepare(url: str) -> None:
    store = await open_store(url)
    now = datetime.now(UTC)
    try:
        async with store.session() as s:
            await s.save_profile(UserKey("telegram", str(PERSON)), profile(now))
            for n in range(WAVE):
                await s.save_profile(UserKey("telegram", str(FIRST_OF_WAVE + n)), profile(now))
    finally:
        await store.close()


async def plan_wave(url: str) -> None:
    store = await open_store(url)
    now = datetime.now(UTC)
    try:
        async with store.session() as s:
            for n in range(WAVE):
                user = str(FIRST_OF_WAVE + n)
                request = FollowUpRequest(
                    "followup", user, now, now + timedelta(hours=1), f"wave-{n}"
                )
                await s.schedule_followup(UserKey("telegram", user), request)
    finally:
        await store.close()


async def count(url: str, query: Any) -> int:
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(query) or 0)
    finally:
        await engine.dispose()


def claimed_followups() -> Any:
    return select(func.count()).select_from(FollowUpRow).where(FollowUpRow.status == "claimed")


def held_outbox_rows() -> Any:
    return (
        select(func.count())
        .select_from(OUTBOUND)
        .where(OUTBOUND.c.status == "pending", OUTBOUND.c.claimed_by != "")
    )


def sent_rows() -> Any:
    return select(func.count()).select_from(OUTBOUND).where(OUTBOUND.c.status == "sent")


async def wait_until(check: Any, within: float, what: str) -> None:
    """Polls: the database and the log file have no event to wait on."""
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {within:.0f} s: {what}") from None


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_sigterm_finishes_sends_in_flight_releases_claims_and_exits_0(
    gated: GatedBotAPI, tmp_path: Path
) -> None:
    fake = gated
    log_path = tmp_path / "guide.log"
    health_port = free_port()
    with postgres_schema_url() as url:
        await prepare(url)
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
            "TELEGRAM_API_BASE_URL": fake.base_url,
            "PAUSECHECK_DATABASE_URL": url,
            "PAUSECHECK_TIMEZONE": "Europe/London",
            "PAUSECHECK_LOG_LEVEL": "INFO",
            "PAUSECHECK_SWEEP_SECONDS": "0.5",
            # A slow wave, so the person's reply finds room among the sends held.
            "PAUSECHECK_TELEGRAM_RATE": "5",
            "PAUSECHECK_HEALTH_PORT": str(health_port),
            "PYTHONPATH": str(ROOT),
        }
        for unset in ("DISCORD_BOT_TOKEN", "PAUSECHECK_TELEGRAM_WEBHOOK_URL"):
            env.pop(unset, None)
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=log, stderr=log
            )
        try:
            await fake.wait_for(lambda: fake.ok_calls("deleteWebhook"), within=START_WITHIN)
            assert (await get(health_port, "/healthz")) == (200, "ok\n")

            # The wave comes due; its first sends are held, the process holds claims:
            # outbox rows it is sending or about to, and follow-ups it claimed and has
            # not rendered yet where a batch was cut short (whether one is depends on
            # the machine's speed; waiting for one kept a loaded machine waiting for
            # the held sends' timeouts, and once past the minute).
            await plan_wave(url)

            async def mid_wave() -> bool:
                scheduled = [chat for chat in fake.entered if chat != PERSON]
                if not scheduled:
                    return False
                return (
                    await count(url, claimed_followups()) + await count(url, held_outbox_rows()) > 0
                )

            await wait_until(mid_wave, 60, "the wave held mid-way")
            # Then the person writes; their reply's send is held too.
            fake.push_message(PERSON, "/help")
            await fake.wait_for(lambda: PERSON in fake.entered, within=30)
            status, metrics = await get(health_port, "/metrics")
            assert status == 200 and "pausecheck_events_total{" in metrics

            process.send_signal(signal.SIGTERM)

            async def stopping() -> bool:
                return STOPPING in log_path.read_text(errors="replace")

            await wait_until(stopping, 30, "the process said it is stopping")
            # It finishes the event it took: the reply's send is still held.
            assert process.returncode is None
            await fake.open(PERSON)

            async def finishing() -> bool:
                return FINISHING in log_path.read_text(errors="replace")

            # Events done, it waits for the wave's sends still in flight.
            await wait_until(finishing, 30, "the process finishes its sends")
            assert process.returncode is None
            await fake.open()
            assert await asyncio.wait_for(process.wait(), 60) == 0, log_path.read_text()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        # Every message Telegram accepted and answered is marked sent: the next worker
        # sends none of them again. A send held past the guide's HTTP timeout (a loaded
        # machine) was given up on and tried again: Telegram took it, its answer was
        # lost, and sending it again is the documented duplicate after a lost answer.
        lost = {id(call) for call in fake.unanswered}
        answered = [c for c in fake.ok_calls("sendMessage") if id(c) not in lost]
        assert answered
        assert await count(url, sent_rows()) == len(answered)
        # The person's reply went out whole, once.
        assert fake.bot_messages(PERSON), "the reply in flight was finished"
        # Nothing is left claimed by the stopped process.
        assert await count(url, claimed_followups()) == 0
        assert await count(url, held_outbox_rows()) == 0
        logged = log_path.read_text(errors="replace")
        released = re.search(r"released claims followups=(\d+) outbox_rows=(\d+)", logged)
        assert released is not None, logged
        assert int(released[1]) + int(released[2]) > 0, "the stop had claims to give back"
        assert "Traceback" not in logged
