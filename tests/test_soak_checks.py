"""The soak's verdict rules on hand-made records (soak/checks.py): each finds what it
is for and nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from soak.checks import Verdict, opening_arrivals, order
from soak.records import Post
from soak.run import Options, Soak, ports_of
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, Call, FakeBotAPI

CHAT = 5013
FORGET_DONE = "Done. Everything I kept about you is del"


def post(text: str, *turns: int) -> Post:
    data = tuple(f"talk:opener:fits:{t:x}" for t in turns)
    return Post(CHAT, text, data, "sendMessage", 0, 0.0)


def test_a_question_of_an_earlier_turn_after_a_later_one_is_out_of_order() -> None:
    v = Verdict()
    order(v, {CHAT: [post("first", 2), post("second", 5), post("late", 3)]}, FORGET_DONE)
    assert v.violations == [f"[order] chat {CHAT}: a question of turn 3 arrived after turn 5"]


def test_after_forget_the_turns_start_again_even_where_the_words_repeat() -> None:
    # The fresh conversation's first question repeats the first one of the last,
    # turn and all, so it looks like a question asked again.
    first = post("I keep your place", 1)
    ps = [first, post("later", 2), post("much later", 32), post(FORGET_DONE + "eted."), first]
    v = Verdict()
    order(v, {CHAT: [*ps, post("the next", 2)]}, FORGET_DONE)
    assert v.violations == []


def test_an_opening_without_buttons_sent_twice_is_two_arrivals() -> None:
    # talk_reminder's opening carries no buttons: the same text each time it is sent
    # (the three-worker soak, seed 1, counted two as one).
    opener = post("Here's the opener you asked me to keep.")
    assert opening_arrivals([opener, post("other", 3), opener], "the opener", 2, 0) is None
    assert opening_arrivals([opener], "the opener", 2, 0) == (
        "2 follow-up(s) marked sent, 1 arrived"
    )
    # One more than sent: a duplicate only where a crash window or lost answer allows.
    assert opening_arrivals([opener, opener], "the opener", 1, 1) is None
    assert opening_arrivals([opener, opener], "the opener", 1, 0) is not None


def test_an_opening_with_buttons_counts_distinct_turns_exactly() -> None:
    asked, again, next_one = post("Checking in", 4), post("Checking in", 4), post("Checking in", 9)
    assert opening_arrivals([asked, again], "Checking in", 1, 0) is None
    assert opening_arrivals([asked, again, next_one], "Checking in", 1, 5) is not None


class OwedRows:
    """The run's database as the kill sees it: the dead worker's pending rows, until a
    live worker takes them over."""

    def __init__(self, chat: int, text: str, written: datetime) -> None:
        self.pending = [
            {"chat_id": str(chat), "created_at": written, "message": json.dumps({"text": text})}
        ]

    def take_over(self) -> None:
        self.pending = []

    def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        assert "status = 'pending'" in query and params == {"worker": "dead"}
        return self.pending


async def test_a_kill_s_window_holds_what_the_dead_worker_owed_though_taken_over_since() -> None:
    # A live worker takes a dead one's rows over once its liveness lease lapses: 5 s
    # after its last renewal, so sooner after the kill when that renewal came late,
    # and possibly before the slow requests have landed and the window is measured.
    # Read then, the row was gone, and its second post counted as a duplicate beyond
    # every crash window.
    text = "How loud is it inside right now?"
    db = OwedRows(CHAT, text, datetime.now(UTC))
    fake = FakeBotAPI()
    fake.calls.append(Call("sendMessage", {"chat_id": CHAT, "text": text}, 200, time.monotonic()))

    async def killed() -> None:
        asyncio.get_running_loop().call_later(0.1, db.take_over)

    async def restart(guide: Any) -> None:
        return None

    victim = SimpleNamespace(worker_id="dead", kill=killed)
    soak: Any = Soak.__new__(Soak)
    soak.o = Options(postgres="postgresql://unused", workers=2)
    soak.o.chaos.slow_seconds = 0.0
    soak.fake, soak.db, soak.guides = fake, db, [victim]
    soak.kills, soak.restarts = [], set()
    soak.clock_offset = time.time() - time.monotonic()
    soak._restart = restart

    async def chosen(until: float) -> Any:
        return victim

    soak._victim = chosen
    await Soak._kill_once(soak, in_window=False)
    await asyncio.gather(*soak.restarts)
    assert db.pending == []  # taken over before the window was measured
    assert [k.window for k in soak.kills] == [{CHAT: [text]}]


async def test_the_record_says_which_worker_made_each_call() -> None:
    # Another process plays the worker: its connection's port is the fake's record of
    # who called; the port this process's fake serves on is not its.
    fake = FakeBotAPI()
    await fake.start()
    url = f"{fake.base_url}{DEFAULT_TOKEN}/getMe"
    seen: list[tuple[int, str]] = []
    try:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys, httpx\nwith httpx.Client() as c:\n"
            "    c.post(sys.argv[1]); sys.stdin.readline(); c.post(sys.argv[1])",
            url,
            stdin=asyncio.subprocess.PIPE,
        )
        await fake.wait_for(lambda: fake.calls, within=30)
        seen = await asyncio.to_thread(ports_of, [("0:w1", worker.pid), ("1:me", os.getpid())])
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        assert await asyncio.wait_for(worker.wait(), 30) == 0
    finally:
        await fake.stop()
    [port] = {call.peer for call in fake.calls}
    assert len(fake.calls) == 2 and port is not None
    assert (port, "0:w1") in seen
    assert (fake.port, "1:me") in seen and (port, "1:me") not in seen
