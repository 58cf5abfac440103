"""The soak's verdict rules on hand-made records (soak/checks.py): each finds what it
is for and nothing else."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from soak.checks import (
    STAMP_SLACK,
    Verdict,
    cap,
    joined,
    most_in_any_second,
    opening_arrivals,
    order,
    probe_answered,
    seconds_judged,
)
from soak.priority import AHEAD, LoopAhead
from soak.records import Post
from soak.run import NEVER, Options, Soak, ports_of
from soak.stalls import LoopLag, Stall
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


# The 5,000-follow-up run's record (docs/reliability.md, Open): the fake took no call
# from 7437.104 to 7437.621, then stamped 15 wave messages within 2 ms.
SILENT_FROM, SILENT_TO = 7437.104, 7437.621
WAVE_CHAT = 9000


def wave_at(times: list[float]) -> tuple[FakeBotAPI, dict[int, datetime]]:
    """A fake whose record holds one wave message per moment, each to its own chat."""
    fake = FakeBotAPI()
    due = datetime.now(UTC)
    for n, at in enumerate(times):
        fake.calls.append(Call("sendMessage", {"chat_id": WAVE_CHAT + n, "text": "w"}, 200, at))
    return fake, {WAVE_CHAT + n: due for n in range(len(times))}


def judged(times: list[float], stalls: list[Stall]) -> Verdict:
    fake, due = wave_at(times)
    v = Verdict()
    cap(v, fake, due, 30, 0.0, stalls)
    return v


def stream(first: float, last: float, gaps: tuple[float, ...]) -> list[float]:
    """Moments from `first` up to `last`, the gaps taken in turn."""
    out, at, n = [], first, 0
    while at <= last + 1e-9:
        out.append(round(at, 4))
        at += gaps[n % len(gaps)]
        n += 1
    return out


def burst(at: float, count: int, within: float = 0.002) -> list[float]:
    return [at + within * n / (count - 1) for n in range(count)]


# The loop lag monitor's stall around that silence: its last tick before, its late
# tick after (the stamps came right after it).
RECORDED_STALL = Stall(SILENT_FROM + 0.004, SILENT_TO - 0.001)


def recorded(after_gaps: tuple[float, ...]) -> list[float]:
    """A stream 30 to 40 ms apart up to the silence, the 15 the kernel queued during
    it stamped within 2 ms, then the stream again (`after_gaps` apart)."""
    before = stream(SILENT_FROM - 4.0, SILENT_FROM, (0.030, 0.040))
    before = [round(t + SILENT_FROM - before[-1], 4) for t in before]  # the last at SILENT_FROM
    after = stream(SILENT_TO + 0.002 + after_gaps[0], SILENT_TO + 4.0, after_gaps)
    return [*before, *burst(SILENT_TO, 15), *after]


def test_the_recorded_burst_after_a_loop_stall_is_within_what_the_stall_explains() -> None:
    # As the run recorded it: the burst and the 18 that followed in its second made 33
    # in one second, the cap being 30. Those 15 may have arrived at any moment of the
    # 517 ms: judged as the 1.5 s they may have come in, 45 are allowed.
    times = recorded((0.055,))
    assert most_in_any_second(times) == 33
    v = judged(times, [RECORDED_STALL])
    assert v.violations == []
    assert v.figures["wave busiest second"] == 33
    [burst_second] = [s for s in seconds_judged(times, [RECORDED_STALL], 30) if s.count == 33]
    assert (burst_second.start, burst_second.allowed) == (SILENT_TO, 45)
    # Without the stall, the same record is over the cap.
    assert judged(times, []).violations == [
        "[cap] 33 wave messages in one second at the fake, over the cap of 30"
    ]
    # Had the stream gone on at its pace (30 to 40 ms), the burst's second would hold
    # 43, still what the stall explains.
    steady = recorded((0.030, 0.040))
    assert most_in_any_second(steady) == 43
    assert judged(steady, [RECORDED_STALL]).violations == []


def test_33_in_a_second_with_no_stall_near_is_over_the_cap() -> None:
    # 33 evenly in one second: the guide's, whatever stalls the harness had elsewhere.
    times = [100.0 + n / 33 for n in range(33)]
    far = Stall(95.0, 95.517)
    late = Stall(101.5, 102.0)  # after the second: its queued calls come later still
    for stalls in ([], [far], [late], [far, late]):
        v = judged(times, stalls)
        assert v.violations == [
            "[cap] 33 wave messages in one second at the fake, over the cap of 30"
        ], stalls
        assert v.figures["wave seconds widened by a stall"] == "0 of 33"


def test_a_stall_inside_the_second_widens_nothing() -> None:
    # What arrived during a stall lying wholly in the window was stamped in it anyway.
    times = [*stream(200.0, 200.3, (0.02,)), *burst(200.6, 20)]
    assert most_in_any_second(times) == 36
    v = judged(times, [Stall(200.3, 200.6)])
    assert any(x.startswith("[cap] 36 wave messages") for x in v.violations), v.violations


def test_more_than_a_stall_explains_is_over_the_cap() -> None:
    # 50 stamped at once after a 517 ms stall (the monitor saw 513 ms: its ticks): at
    # the cap's pace, 45 at most could have come in the 1.513 s they may have come in.
    v = judged(burst(SILENT_TO, 50), [RECORDED_STALL])
    assert v.violations == [
        "[cap] 50 wave messages in one second at the fake, over the 45 a loop stall 513 ms "
        "before it can explain (the cap is 30)"
    ]
    assert judged(burst(SILENT_TO, 45), [RECORDED_STALL]).violations == []
    assert judged(burst(SILENT_TO, 46), [RECORDED_STALL]).violations != []


async def test_the_monitor_records_a_blocked_loop_as_one_stall_of_its_length() -> None:
    lag = LoopLag()
    lag.start()
    await asyncio.sleep(0.05)
    blocked = time.monotonic()
    time.sleep(0.2)  # noqa: ASYNC251 - the loop held, on purpose: what the monitor measures
    resumed = time.monotonic()
    await asyncio.sleep(0.05)
    stalls = await lag.stop()
    # The machine may be loaded (other short stalls); one stall covers the block.
    [stall] = [s for s in stalls if s.start <= blocked and s.end >= resumed]
    assert 0.2 <= stall.length < 0.2 + lag.tick + 0.05, stall
    # Asleep, not running: the loop's thread used next to no CPU meanwhile.
    assert stall.loop_cpu < 0.05, stall
    # Where the loop stood: this test's own line (time.sleep has no Python frame).
    assert "test_soak_checks.py" in stall.where and "blocked_loop" in stall.where, stall.where
    assert lag.figures().startswith(f"{len(stalls)}, longest")


async def test_calls_the_kernel_queued_during_a_stall_are_stamped_just_after_it() -> None:
    # Workers in other threads call while the loop serving the fake stands still: the
    # kernel takes their requests, and the fake stamps them (time.monotonic(), the
    # monitor's clock) once the loop runs again, within STAMP_SLACK of the stall's end
    # (as the cap check takes it: stalls that close together are one).
    fake = FakeBotAPI()
    await fake.start()
    lag = LoopLag()
    lag.start()
    request = (
        f"POST /bot{DEFAULT_TOKEN}/getMe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    written: list[float] = []

    def worker(at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        with socket.create_connection(("127.0.0.1", fake.port), timeout=30) as conn:
            conn.sendall(request)
            written.append(time.monotonic())  # in the kernel's hands from here
            while conn.recv(4096):
                pass

    try:
        await asyncio.sleep(0.05)
        start = time.monotonic()
        workers = [
            threading.Thread(target=worker, args=(start + 0.05 + 0.03 * n,)) for n in range(8)
        ]
        for w in workers:
            w.start()
        time.sleep(0.4)  # noqa: ASYNC251 - the harness's loop held, on purpose
        for w in workers:
            await asyncio.to_thread(w.join)
    finally:
        stalls = await lag.stop()
        await fake.stop()
    [stall] = [s for s in joined(stalls, STAMP_SLACK) if s.length >= 0.4]
    queued = [at for at in written if stall.start <= at <= stall.end]
    stamps = sorted(c.at for c in fake.calls)
    assert len(queued) >= 3 and len(stamps) == len(written) == 8
    for at in stamps[-len(queued) :]:
        assert stall.end - 0.005 <= at <= stall.end + STAMP_SLACK, (stall, at)


async def test_a_run_has_no_full_garbage_collection_and_restores_the_collector() -> None:
    # Collecting the harness's whole heap held its loop 100 ms and more (stalls.jsonl):
    # none during the run; the collector as it was afterwards, a failed run too. So
    # the loop's priority, raised for the run where allowed (soak/priority.py).
    before = gc.get_threshold()
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    during: list[tuple[tuple[int, int, int], int]] = []

    async def start() -> None:
        during.append((gc.get_threshold(), os.getpriority(os.PRIO_PROCESS, 0)))
        raise RuntimeError("the fake did not start")

    soak: Any = Soak.__new__(Soak)
    soak.o, soak.schema, soak.priority = Options(), None, LoopAhead()
    soak.fake = SimpleNamespace(start=start)
    soak.db = SimpleNamespace(close=lambda: None)
    with pytest.raises(RuntimeError):
        await Soak.run(soak)
    [(collector, raised)] = during
    assert collector == (before[0], before[1], NEVER)
    assert raised in (niceness, niceness - AHEAD)  # ahead where this user may
    assert gc.get_threshold() == before
    assert os.getpriority(os.PRIO_PROCESS, 0) == niceness


def test_workers_start_at_the_usual_priority_while_the_loop_runs_ahead() -> None:
    ahead = LoopAhead()
    command = [sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"]
    usual = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    ahead.raise_()
    try:
        started = subprocess.run(
            ahead.usual(command), capture_output=True, text=True, check=True
        ).stdout
    finally:
        ahead.restore()
    assert started == usual
    assert ahead.usual(command) == command  # restored: nothing to undo


def test_an_answer_missing_is_excused_only_by_a_reply_superseded_in_its_chat() -> None:
    # /privacy typed 3 times, answered twice: a worker died holding the answer and
    # the person typed on before it was sent again, so it was superseded.
    assert probe_answered(typed=3, answers=2, extra=0, moved_on=1) == (True, 1)
    # No such row in the chat: an answer was lost.
    assert probe_answered(typed=3, answers=2, extra=0, moved_on=0) == (False, 0)
    # One such row stands for one answer, never two.
    assert probe_answered(typed=3, answers=1, extra=0, moved_on=1)[0] is False
    # Answers over the typed count still need a crash window or a lost answer each.
    assert probe_answered(typed=2, answers=3, extra=0, moved_on=5) == (False, 0)
    assert probe_answered(typed=2, answers=3, extra=1, moved_on=0) == (True, 0)
