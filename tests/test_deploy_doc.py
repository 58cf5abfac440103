"""docs/deploy.md agrees with the code: its commands run (on SQLite and the real
PostgreSQL), every variable it names is a setting and its example values are accepted,
the unit, the proxy and the scrape job agree with the workers' settings, and the metrics
it lists are exactly those /metrics serves."""

from __future__ import annotations

import asyncio
import configparser
import os
import re
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from bot.app import SHUTDOWN_GRACE
from bot.cli import app
from bot.config import Settings, load_settings, variable_name
from bot.discord.intake import EVENT_GRACE
from bot.metrics import METRICS
from bot.ops_http import HEALTH_PATH, METRICS_PATH
from dialogs.store import UserKey
from storage import open_store
from tests.postgres import postgres_schema_url

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
NAME = re.compile(r"\b((?:PAUSECHECK|TELEGRAM|DISCORD)_[A-Z0-9_]+)\b")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)


def settings_in(block: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in block.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def common() -> dict[str, str]:
    return settings_in(blocks("ini")[0])


def worker_listens() -> list[str]:
    first = settings_in(blocks("ini")[1])["PAUSECHECK_TELEGRAM_WEBHOOK_LISTEN"]
    second = re.search(r"worker 2 says `([0-9.]+)`", DOC)
    assert second, "the doc names worker 2's address"
    return [first, second.group(1)]


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(blocks("ini")[2])
    return parser


def commands() -> Iterator[list[str]]:
    """Each `pausecheck` line of the shell blocks, in order."""
    for block in blocks("sh"):
        for line in block.splitlines():
            if line.startswith("pausecheck "):
                yield shlex.split(line)


def test_every_variable_named_is_a_setting() -> None:
    known = {variable_name(field) for field in Settings.model_fields}
    named = set(NAME.findall(DOC))
    assert named, "the doc names its settings"
    assert named - known == set()


def test_the_example_values_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Those that are not placeholders for a secret (<...>)."""
    given = {**common(), **settings_in(blocks("ini")[1])}
    concrete = {key: value for key, value in given.items() if "<" not in value}
    assert "PAUSECHECK_TELEGRAM_WEBHOOK_URL" in concrete
    for key in list(os.environ):
        if NAME.fullmatch(key):
            monkeypatch.delenv(key)
    for key, value in concrete.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT / "docs")  # no .env here
    settings = load_settings()
    assert settings.telegram_webhook_listen == worker_listens()[0]
    # Placeholders only where a value is a secret or someone's own.
    secret = {"TOKEN", "SECRET", "KEYS", "DATABASE_URL"}
    for key in given.keys() - concrete.keys():
        assert any(word in key for word in secret), key


def test_the_shown_commands_run_and_move_a_database_to_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = list(commands())
    assert [line[:3] for line in lines] == [
        ["pausecheck", "db", "upgrade"],
        ["pausecheck", "db", "check"],
        ["pausecheck", "db", "copy"],
        ["pausecheck", "db", "check"],
    ]
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "data" / "pausecheck.db"

    async def someone_on_sqlite() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{source}")
        async with store.session() as s:
            await s.load_state(UserKey("telegram", "42"), datetime.now(UTC))
        await store.close()

    asyncio.run(someone_on_sqlite())
    with postgres_schema_url() as url:
        env = {"PAUSECHECK_DATABASE_URL": url, "PAUSECHECK_TIMEZONE": "Europe/London"}
        monkeypatch.setenv("PAUSECHECK_DATABASE_URL", url)
        for line in lines:
            args = [os.path.expandvars(word) for word in line[1:]]
            result = CliRunner().invoke(app, args, env=env)
            assert result.exit_code == 0, (line, result.output)

        async def read_back() -> bool:
            store = await open_store(url)
            try:
                async with store.session() as s:
                    state = await s.load_state(UserKey("telegram", "42"), datetime.now(UTC))
                return state is not None
            finally:
                await store.close()

        assert asyncio.run(read_back())


def test_the_unit_waits_for_the_graceful_stop_and_checks_readiness() -> None:
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    # The events in hand (Discord's bound), then the sends in flight.
    assert int(service["TimeoutStopSec"]) > EVENT_GRACE + SHUTDOWN_GRACE
    assert service["ExecStart"].endswith("pausecheck run")
    assert service["ExecStartPre"].endswith("pausecheck db check")
    # The env files it reads are those the doc shows.
    assert "/etc/pausecheck/common.env" in DOC and "/etc/pausecheck/worker-1.env" in DOC
    assert "EnvironmentFile=/etc/pausecheck/worker-%i.env" in blocks("ini")[2]


def test_the_proxy_forwards_the_webhook_path_to_each_worker_and_checks_health() -> None:
    [caddy] = blocks("caddy")
    webhook = urlsplit(common()["PAUSECHECK_TELEGRAM_WEBHOOK_URL"])
    assert caddy.startswith(f"{webhook.hostname} {{")
    handled = re.findall(r"handle (/\S*) \{", caddy)
    assert handled == [webhook.path]
    port = common()["PAUSECHECK_TELEGRAM_WEBHOOK_PORT"]
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddy)
    assert upstreams is not None
    assert upstreams.group(1).split() == [f"{host}:{port}" for host in worker_listens()]
    assert re.search(rf"health_uri {re.escape(HEALTH_PATH)}\n", caddy)
    # Caddy's sizes: MiB is 1024 * 1024, the workers' own limit.
    size = re.search(r"max_size (\d+)MiB", caddy)
    assert size is not None
    assert (
        int(size.group(1)) * 1024 * 1024
        == Settings.model_fields["telegram_webhook_max_bytes"].default
    )
    assert METRICS_PATH not in caddy


def test_the_scrape_job_reads_each_worker() -> None:
    [job] = yaml.safe_load(blocks("yaml")[0])["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH
    port = common()["PAUSECHECK_TELEGRAM_WEBHOOK_PORT"]
    [targets] = job["static_configs"]
    assert targets["targets"] == [f"{host}:{port}" for host in worker_listens()]


def test_the_metrics_listed_are_those_served() -> None:
    rows = re.findall(r"^\| `(pausecheck_[a-z_]+)` \| (\w+) \|", DOC, flags=re.MULTILINE)
    assert dict(rows) == METRICS
    assert len(rows) == len(METRICS)


def test_the_readme_links_it() -> None:
    assert "docs/deploy.md" in (ROOT / "README.md").read_text(encoding="utf-8")
