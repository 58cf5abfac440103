"""Words a person types at a step that needs them are readable from no file of the
database once their flow is over (issue 15, item 5): not the database file, not
SQLite's write-ahead log (-wal), not its index (-shm), while the guide runs and
after it is killed without warning right after. The real console, as a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# First contact with /space: agree (and 18 or older), the United States, then "No"
# to the four safety questions that come before a push-pull suggestion.
ONBOARD = "1\n1\n2\n2\n2\n2\n"
# Typed at the space flow's "another time" step, which the ready-to-send message
# repeats: so it is in the conversation's variables and in an outbox row's message.
WORDS = "at nine, once the zebra film ends"
UNIQUE = b"zebra film"


def database_files(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.glob("pc.db*"))}


def holding(data: Path) -> list[str]:
    return [name for name, raw in database_files(data).items() if UNIQUE in raw]


class Console:
    """`pausecheck console` reading lines from a pipe, one answer at a time."""

    def __init__(self, tmp_path: Path) -> None:
        env = {
            **os.environ,
            "PAUSECHECK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pc.db'}",
            "PAUSECHECK_TIMEZONE": "Europe/London",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "console"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        self.seen = ""
        # Read on a thread, so that waiting for words that never come times out.
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def say(self, lines: str, until: str) -> None:
        assert self.proc.stdin is not None
        # Only what comes after these lines counts: the same words said earlier (the
        # guide introduces itself on first contact) must not end the wait too soon.
        start = len(self.seen)
        self.proc.stdin.write(lines)
        self.proc.stdin.flush()
        deadline = time.monotonic() + 60
        while until not in self.seen[start:] and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self.seen += self._lines.get(timeout=0.5)
        assert until in self.seen[start:], self.seen[-2000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def walk_to_the_typed_time(console: Console) -> None:
    console.say("/space\n" + ONBOARD, "When will you come back?")
    console.say("Another time\n", "How would you say the time")
    console.say(WORDS + "\n", "How would you like it to sound?")


def test_typed_words_leave_no_file_of_the_database_once_the_flow_ends(tmp_path: Path) -> None:
    data = tmp_path / "data"
    console = Console(tmp_path)
    try:
        walk_to_the_typed_time(console)
        # The step still needs them (the message will repeat them): kept, somewhere.
        assert holding(data)
        console.say("1\n", "a phone alarm can help")  # the message, then the flow ends
        # Something after, so the message's outbox row has surely been marked sent.
        console.say("/about\n", "I'm Pausecheck")
        assert holding(data) == []
        assert {"pc.db", "pc.db-wal", "pc.db-shm"} >= set(database_files(data)) >= {"pc.db"}
    finally:
        console.kill()
    assert holding(data) == []


def test_killed_right_after_the_flow_ends_nothing_of_the_words_remains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    console = Console(tmp_path)
    try:
        walk_to_the_typed_time(console)
        console.say("1\n", "a phone alarm can help")
        console.say("/about\n", "I'm Pausecheck")
    finally:
        console.kill()  # no clean shutdown: no last checkpoint, the -wal stays
    assert holding(data) == []
    # And a later start, which replays the -wal, finds nothing either.
    again = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="",
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PAUSECHECK_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'pc.db'}",
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert WORDS not in again.stdout
    assert holding(data) == []
