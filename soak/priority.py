"""The harness's loop ahead of everything else on a busy machine, where it may be.

The harness is the measuring instrument: its event loop is Telegram (the fake) and
the people. On a loaded machine that loop, ready to run, waited for a CPU for 100 ms
and more at a time (stalls.jsonl: nearly all of the stall time of a run beside
another, "waiting for a CPU"), and calls queued meanwhile were stamped together when
it ran again. Telegram does not wait for the bot's machine, so the loop's thread is
given a higher priority than the rest of the machine, guide and PostgreSQL included,
for the run; the workers it starts go back to the usual priority (`usual`), so the
guide runs as it would without the harness.

Raising a priority needs the right to (root, or CAP_SYS_NICE); without it nothing
changes. On Linux a nice value belongs to a thread: only the loop's thread (and the
threads and processes it starts meanwhile) is raised.
"""

from __future__ import annotations

import contextlib
import os
import shutil

# How far ahead, in nice steps: each is about a quarter more of a CPU under contention.
AHEAD = 5


class LoopAhead:
    """From `raise_()` until `restore()`, the calling thread runs `AHEAD` nice steps
    ahead, where allowed."""

    def __init__(self) -> None:
        self.raised = 0
        self._was: int | None = None

    def raise_(self) -> None:
        nice = shutil.which("nice")
        if nice is None or not hasattr(os, "setpriority"):
            return
        was = os.getpriority(os.PRIO_PROCESS, 0)
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, was - AHEAD)
            self._was, self.raised = was, AHEAD

    def restore(self) -> None:
        if self._was is not None:
            os.setpriority(os.PRIO_PROCESS, 0, self._was)
            self._was, self.raised = None, 0

    def usual(self, command: list[str]) -> list[str]:
        """`command` to start at the priority the harness had before it was raised."""
        return ["nice", "-n", str(self.raised), *command] if self.raised else command
