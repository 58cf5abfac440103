"""The console adapter through the real CLI, as a person at a terminal would use it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from bot.console import ConsoleAdapter, parse_line
from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.events import Choice, Command, Outbound

ROOT = Path(__file__).resolve().parent.parent
# First contact with /pause: the breathing comes first ("done"), then the agreement
# (which says 18 or older too) and the United States. The safety questions come later,
# right before the check.
ONBOARD = "done\n1\n1\n"


def run_cli(
    args: list[str], stdin: str, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PAUSECHECK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pc.db'}",
        "PAUSECHECK_TIMEZONE": "Europe/London",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
    )


def test_piped_conversation_prints_and_exits_zero(tmp_path: Path) -> None:
    result = run_cli(["console"], "/pause\n" + ONBOARD + "7\n", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "you › /pause" in out
    assert "pause for a minute" in out
    assert "1. Done" in out
    assert "(type a number from 0 to 10)" in out
    assert "What set it off?" in out
    assert "Traceback" not in out + result.stderr
    assert (tmp_path / "data" / "pc.db").exists()


def test_second_run_continues_the_first_conversation(tmp_path: Path) -> None:
    run_cli(["console"], "/pause\n" + ONBOARD + "7\n", tmp_path)
    second = run_cli(["console"], "silence\n", tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Here's where we left off" in second.stdout
    assert "What set it off?" in second.stdout
    assert "What does it want to do?" in second.stdout


def test_killed_mid_flow_resumes_at_the_same_step(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PAUSECHECK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("/pause\n" + ONBOARD)
    proc.stdin.flush()
    # Wait until the rating question has been shown, then kill without warning.
    deadline = time.monotonic() + 30
    seen = ""
    while "0 is calm" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    assert "0 is calm" in seen
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    again = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "Here's where we left off" in again.stdout
    assert "0 is calm" in again.stdout


def test_corrupt_database_is_a_clear_start_up_error(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not a database" * 100)
    result = run_cli(
        ["console"], "/pause\n", tmp_path, PAUSECHECK_DATABASE_URL=f"sqlite+aiosqlite:///{db}"
    )
    assert result.returncode == 1
    assert str(db) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_content_directory_is_named_at_start(tmp_path: Path) -> None:
    result = run_cli(["console"], "", tmp_path, PAUSECHECK_CONTENT_DIR=str(tmp_path / "nowhere"))
    assert result.returncode == 2  # a wrong setting
    assert "nowhere" in result.stderr
    assert "content directory not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_tokens_names_the_variables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "DISCORD_BOT_TOKEN" in result.stderr


def test_content_check_command(tmp_path: Path) -> None:
    ok = run_cli(["content", "check"], "", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "content ok" in ok.stdout
    import shutil

    broken = tmp_path / "content"
    shutil.copytree(ROOT / "content", broken)
    shutil.copy(
        ROOT / "tests" / "fixtures" / "broken_flows" / "dangling_next.yaml", broken / "flows"
    )
    bad = run_cli(["content", "check", str(broken)], "", tmp_path)
    assert bad.returncode == 1
    assert "dangling_next.yaml:9: [dangling_next/hello] 'next' names missing step" in bad.stderr


def test_parse_line() -> None:
    assert parse_line("/stop checkins") == (None, Command("stop", ("checkins",)))
    assert parse_line("/PAUSE") == (None, Command("pause", ()))
    assert parse_line("hello") == ("hello", None)
    assert parse_line("/ not a command") == ("/ not a command", None)


def _adapter(engine: Engine, clock: ManualClock) -> ConsoleAdapter:
    return ConsoleAdapter(engine, clock, Console(file=io.StringIO()), user_id="me")


def test_typed_numbers_press_the_shown_buttons(engine: Engine, clock: ManualClock) -> None:
    adapter = _adapter(engine, clock)
    adapter.show(
        [Outbound("Pick", choices=(Choice("p:s:a:1", "Alpha"), Choice("p:s:b:1", "Beta")))]
    )
    assert adapter.to_inbound("2").choice == "p:s:b:1"
    assert adapter.to_inbound("beta").choice == "p:s:b:1"
    assert adapter.to_inbound("3").text == "3"
    adapter.show([Outbound("Rate", choices=tuple(Choice(f"p:r:{n}:2", str(n)) for n in range(11)))])
    # On a 0-10 scale, "2" means the rating 2, not the second button.
    assert adapter.to_inbound("2").choice == "p:r:2:2"


@pytest.mark.parametrize("line", ["", "🙂", "x" * 10_000])
def test_odd_lines_become_text(engine: Engine, clock: ManualClock, line: str) -> None:
    adapter = _adapter(engine, clock)
    assert adapter.to_inbound(line).text == line


def test_encryption_key_encrypts_stored_answers(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    result = run_cli(["console"], "/pause\n" + ONBOARD, tmp_path, PAUSECHECK_ENCRYPTION_KEY=key)
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "pc.db") as db:
        [(raw,)] = db.execute("select variables from conversations").fetchall()
    assert "_enc" in raw
    wrong = run_cli(
        ["console"], "", tmp_path, PAUSECHECK_ENCRYPTION_KEY=Fernet.generate_key().decode()
    )
    assert wrong.returncode == 1
    assert "PAUSECHECK_ENCRYPTION_KEY" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_export_is_saved_as_a_file(tmp_path: Path) -> None:
    result = run_cli(["console"], "/pause\n" + ONBOARD + "/export\n", tmp_path)
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / "data" / "exports").glob("pausecheck-export-*.json"))
    assert len(files) == 1
    import json

    data = json.loads(files[0].read_text())
    assert data["user"]["platform"] == "console"
    assert "saved as" in result.stdout


def test_the_data_directory_and_exports_are_private(tmp_path: Path) -> None:
    import stat

    # With no umask to help (the process inherits it), only the guide's own modes
    # keep these private: a regression to 0644 fails here whatever the CI's umask.
    before = os.umask(0)
    try:
        result = run_cli(["console"], "/pause\n" + ONBOARD + "/export\n", tmp_path)
    finally:
        os.umask(before)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "exports").stat().st_mode) == 0o700
    [export] = (data / "exports").glob("pausecheck-export-*.json")
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "pc.db").stat().st_mode) == 0o600


def test_insights_chart_is_saved_privately_and_its_path_printed(tmp_path: Path) -> None:
    import re
    import stat
    import struct

    # A pause rated 7, then (never screened, so the first moves need no safety
    # questions) one more breathing round (3) rated 2, then /insights (which asks for
    # the timezone first: 1 is UK and Ireland).
    pause = "7\n1\n1\n3\n2\n"
    result = run_cli(["console"], "/pause\n" + ONBOARD + pause + "/insights\n1\n", tmp_path)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "How loud, 0 to 10: 7 before a pause, 2 after." in out
    found = re.search(r"picture saved as (data/charts/pausecheck-insights-[\d-]+\.png)", out)
    assert found, out
    chart = tmp_path / found.group(1)
    assert stat.S_IMODE(chart.stat().st_mode) == 0o600
    assert stat.S_IMODE(chart.parent.stat().st_mode) == 0o700
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (960, 1200)
