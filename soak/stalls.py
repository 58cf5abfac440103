"""The harness's own event loop, watched: every stall, so a check can tell the loop
standing still from the guide misbehaving.

The fake Bot API runs on the harness's loop, beside the people, the kills and the
scan naming each call's worker. While that loop is held up (a slow synchronous call,
a garbage collection, a machine that does not run it), the kernel queues the
workers' requests and the fake stamps them only when it runs again: a stream sent
evenly arrives, as the fake records it, as a silence and then a burst. `LoopLag`
ticks every `tick` seconds on the loop and records each tick that came more than
`threshold` late as a `Stall`: from the last tick before the silence to the late
tick itself, in `time.monotonic()` seconds (the loop's own clock, and the clock the
fake stamps its calls with).

A stall so recorded is a little longer than the loop's real standstill (by up to one
tick), never shorter, so what a check excuses by it is bounded by what was seen.

What held the loop, for each stall: where its thread stood (`Stall.where`, sampled
once from a thread of the monitor's own while the loop is late: the innermost frames
of the harness's code and the innermost of all; a call that holds the interpreter's
lock shows where it was when it let go), how much of the stall its thread ran (the
harness's own work), waited for a CPU (the machine's), and the garbage collector's
time (which holds every thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

# How often the loop is asked to run the watcher; how late a tick must be to count.
TICK = 0.01
THRESHOLD = 0.05
# Frames of these directories are the harness's own (where a stall came from).
OWN = (f"{Path(__file__).parent.name}/", "tests/")


@dataclass(frozen=True, slots=True)
class Stall:
    start: float  # the last tick before the silence (time.monotonic())
    end: float  # the late tick: the loop ran again by then
    where: str = ""  # the loop thread's frames, sampled during the stall
    # What the loop's thread did meanwhile, in seconds: ran (CPU time: the harness's
    # own work held the loop), waited for a CPU while ready to run (the machine did
    # not run it; Linux's schedstat, 0 elsewhere), or neither (blocked in a call, or
    # waiting for the interpreter's lock). Of the harness's process: the CPU it used,
    # and the time its garbage collector ran (which holds every thread).
    loop_cpu: float = 0.0
    waiting: float = 0.0
    process_cpu: float = 0.0
    gc: float = 0.0

    @property
    def length(self) -> float:
        return self.end - self.start


class LoopLag:
    """Watches the running loop from `start()` until `stop()` (see the module)."""

    def __init__(self, tick: float = TICK, threshold: float = THRESHOLD) -> None:
        self.tick = tick
        self.threshold = threshold
        self.stalls: list[Stall] = []
        self._task: asyncio.Task[None] | None = None
        self._sampler: threading.Thread | None = None
        self._stopping = threading.Event()
        # The latest tick, shared with the sampler; and what it saw, by that tick.
        self._last = 0.0
        self._cpu = (0.0, 0.0, 0.0, 0.0)
        # The collector's time so far, and when the collection under way began.
        self._gc = 0.0
        self._gc_began = 0.0
        self._where: dict[float, str] = {}

    def start(self) -> None:
        self._last = time.monotonic()
        gc.callbacks.append(self._collecting)
        self._cpu = self._times()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop lag")
        self._sampler = threading.Thread(
            target=self._sample, args=(threading.get_ident(),), name="loop lag", daemon=True
        )
        self._sampler.start()

    async def stop(self) -> list[Stall]:
        self._stopping.set()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collecting)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sampler is not None:
            await asyncio.to_thread(self._sampler.join)
            self._sampler = None
        return self.stalls

    def figures(self) -> str:
        """The stalls in one line: how many, the longest, all of them together."""
        if not self.stalls:
            return "0"
        longest = max(s.length for s in self.stalls)
        total = sum(s.length for s in self.stalls)
        busy = sum(s.loop_cpu for s in self.stalls)
        waiting = sum(s.waiting for s in self.stalls)
        collecting = sum(s.gc for s in self.stalls)
        return (
            f"{len(self.stalls)}, longest {longest * 1000:.0f} ms, total {total:.2f} s (the "
            f"loop running {busy:.2f} s of it, waiting for a CPU {waiting:.2f} s, "
            f"garbage collection {collecting:.2f} s)"
        )

    async def _watch(self) -> None:
        while True:
            # asyncio.sleep is timed by loop.time(), which is time.monotonic().
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            cpu = self._times()
            last = self._last
            if now - last - self.tick > self.threshold:
                spent = (b - a for a, b in zip(self._cpu, cpu, strict=True))
                self.stalls.append(Stall(last, now, self._where.pop(last, ""), *spent))
            self._last, self._cpu = now, cpu

    def _times(self) -> tuple[float, float, float, float]:
        """The loop thread's CPU time and time ready to run but not running (Linux), the
        process's CPU time, the collector's time (seconds, each from its own zero)."""
        waiting = 0.0
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open("/proc/thread-self/schedstat") as stat,
        ):
            waiting = int(stat.read().split()[1]) / 1e9
        return time.thread_time(), waiting, time.process_time(), self._gc

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self._gc += time.perf_counter() - self._gc_began

    def _sample(self, loop_thread: int) -> None:
        while not self._stopping.wait(self.tick):
            last = self._last
            if time.monotonic() - last - self.tick <= self.threshold or last in self._where:
                continue
            frame = sys._current_frames().get(loop_thread)
            if frame is not None:
                self._where[last] = where(traceback.extract_stack(frame))


def where(stack: traceback.StackSummary) -> str:
    """The innermost frames of the harness's own code (at most three), then the
    innermost frame of all, innermost first."""
    own = [f for f in stack if any(part in f.filename for part in OWN)]
    picked = [*reversed(own[-3:])]
    if stack and (not picked or stack[-1] is not own[-1]):
        picked.insert(0, stack[-1])
    return " < ".join(f"{_short(f.filename)}:{f.lineno} {f.name}" for f in picked)


def _short(filename: str) -> str:
    for part in ("site-packages/", "/lib/python"):
        if part in filename:
            return filename.split(part, 1)[1]
    parts = Path(filename).parts
    return "/".join(parts[-2:])
