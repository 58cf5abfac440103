"""The Caddyfile of docs/deploy.md, run by a real Caddy in front of two real webhook
workers (`pausecheck run`, tests/telegram/test_webhook_workers.py's `Worker`) on the
real PostgreSQL: Telegram updates posted through it are handled by both workers in
turn, and nothing but the webhook path reaches a worker.

The Caddyfile is the doc's, changed only where a test must: the site address is
`http://127.0.0.1:PORT` (plain HTTP on a free loopback port, so Caddy asks no one for a
certificate; `auto_https off` too), the upstreams are the two workers' loopback
ports, and a global block turns off the admin endpoint and keeps Caddy's files in the
test's directory. Nothing leaves 127.0.0.1. Skipped where `caddy` is not installed
(`.ci/run` installs it: `apt-get install caddy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops_http import HEALTH_PATH, METRICS_PATH
from dialogs.store import Profile, UserKey
from storage import open_store
from tests.postgres import postgres_schema_url
from tests.telegram.conftest import fake, free_port
from tests.telegram.fake_bot_api import FakeBotAPI
from tests.telegram.test_webhook_workers import HEADER, SECRET, START_WITHIN, Worker, answered
from tests.test_deploy_doc import blocks, common, worker_listens

__all__ = ["fake"]  # the fixture

CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(
    CADDY is None, reason="caddy is not installed (apt-get install caddy); .ci/run installs it"
)

PEOPLE = list(range(6101, 6107))
HOOK = "/telegram/hook"


def caddyfile_for_test(caddy_port: int, worker_ports: list[int]) -> str:
    """The doc's Caddyfile with a loopback HTTP site and loopback upstreams."""
    [doc] = blocks("caddy")
    site = common()["PAUSECHECK_TELEGRAM_WEBHOOK_URL"].split("/")[2]
    port = common()["PAUSECHECK_TELEGRAM_WEBHOOK_PORT"]
    assert doc.startswith(f"{site} {{"), "the doc's site address is the webhook's host"
    adapted = f"http://127.0.0.1:{caddy_port} {{" + doc[len(site) + 2 :]
    upstreams = " ".join(f"{host}:{port}" for host in worker_listens())
    assert adapted.count(f"reverse_proxy {upstreams} ") == 1
    loopback = " ".join(f"127.0.0.1:{p}" for p in worker_ports)
    adapted = adapted.replace(f"reverse_proxy {upstreams} ", f"reverse_proxy {loopback} ")
    # Everything else is the doc's, word for word.
    assert re.sub(r"\s+", " ", adapted.replace(loopback, upstreams)).replace(
        f"http://127.0.0.1:{caddy_port}", site
    ) == re.sub(r"\s+", " ", doc)
    return "{\n\tadmin off\n\tauto_https off\n}\n\n" + adapted


@contextlib.contextmanager
def running_caddy(config: Path, home: Path) -> Iterator[subprocess.Popen[bytes]]:
    assert CADDY is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Caddy's data and config directories (certificates, autosave): the test's own.
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    with (home / "caddy.log").open("wb") as log:
        process = subprocess.Popen(
            [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    async with asyncio.timeout(30):
        while True:
            if process.poll() is not None:
                raise AssertionError(await asyncio.to_thread(log.read_text, errors="replace"))
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)


async def handled_by(http: aiohttp.ClientSession, worker: Worker) -> float:
    """Updates this worker handled, from its own /metrics (asked directly)."""
    async with http.get(f"http://127.0.0.1:{worker.port}{METRICS_PATH}") as response:
        assert response.status == 200
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pausecheck_events_total" and sample.labels == {
                "platform": "telegram",
                "outcome": "handled",
            }:
                return sample.value
    return 0.0


def refusals(workers: list[Worker]) -> dict[int, int]:
    """Requests the workers refused, by status, from their logs."""
    found: dict[int, int] = {}
    for worker in workers:
        for status in re.findall(
            r"webhook request refused status=(\d+)", worker.logs.read_text(errors="replace")
        ):
            found[int(status)] = found.get(int(status), 0) + 1
    return found


@pytest.fixture
async def workers(fake: FakeBotAPI, tmp_path: Path) -> AsyncIterator[list[Worker]]:
    with postgres_schema_url() as url:
        store = await open_store(url)  # migrates; the workers start on it
        now = datetime.now(UTC)
        async with store.session() as session:
            for person in PEOPLE:
                await session.save_profile(
                    UserKey("telegram", str(person)),
                    Profile(consent_at=now, adult=True, country="GB", zone="Europe/London",
                            screened=True, session_started_at=now, last_active_at=now,
                            reminded_at=now),
                )  # fmt: skip
        await store.close()
        started = [Worker(fake, url, tmp_path / f"worker{n}.log") for n in range(2)]
        try:
            await asyncio.gather(*(worker.start() for worker in started))
            await fake.wait_for(lambda: len(fake.ok_calls("setWebhook")) >= 2, within=START_WITHIN)
            yield started
        finally:
            await asyncio.gather(*(worker.stop() for worker in started))


async def test_the_doc_caddyfile_sends_updates_to_both_workers_and_nothing_else(
    fake: FakeBotAPI, workers: list[Worker], tmp_path: Path
) -> None:
    caddy_port = free_port()
    config = tmp_path / "Caddyfile"
    config.write_text(caddyfile_for_test(caddy_port, [w.port for w in workers]), encoding="utf-8")
    proxy = f"http://127.0.0.1:{caddy_port}"
    async with aiohttp.ClientSession() as http:
        for worker in workers:  # both up before the proxy's first health check
            async with http.get(f"http://127.0.0.1:{worker.port}{HEALTH_PATH}") as response:
                assert response.status == 200
        with running_caddy(config, tmp_path) as caddy:
            await until_listening(caddy_port, caddy, tmp_path / "caddy.log")

            # The webhook path: every update reaches a worker and is answered.
            for n, person in enumerate(PEOPLE, start=1):
                update = {"update_id": n, **fake.message_update(person, "/help")}
                async with http.post(
                    f"{proxy}{HOOK}", json=update, headers={HEADER: SECRET}
                ) as response:
                    assert response.status == 200, await response.text()
            await fake.wait_for(
                lambda: all(answered(fake, p) == ["/help"] for p in PEOPLE), within=30
            )
            counts = [await handled_by(http, worker) for worker in workers]
            # Round robin: each worker took its share.
            assert sum(counts) == len(PEOPLE) and min(counts) > 0, counts

            # The worker, not the proxy, checks the secret: a post without it is
            # forwarded and refused there.
            stray = {"update_id": 99, **fake.message_update(PEOPLE[0], "/about")}
            async with http.post(f"{proxy}{HOOK}", json=stray) as response:
                assert response.status == 403

            # A body over the doc's limit is refused: Caddy 2.6 cuts it off while
            # forwarding it and answers 502 (newer versions 413); no worker handles it.
            big = {"update_id": 100, "padding": "x" * (1024 * 1024 + 1)}
            async with http.post(f"{proxy}{HOOK}", json=big, headers={HEADER: SECRET}) as r:
                assert r.status in (413, 502)

            # Nothing else is forwarded: what a worker serves on its own port (health,
            # metrics, the hook's neighbours) is a 404 through the proxy.
            forwarded_before = refusals(workers)
            for method, path in [
                ("GET", METRICS_PATH),
                ("GET", HEALTH_PATH),
                ("POST", f"{HOOK}/extra"),
                ("POST", f"{HOOK}x"),
                ("POST", "/"),
            ]:
                async with http.request(
                    method, f"{proxy}{path}", json=stray, headers={HEADER: SECRET}
                ) as response:
                    assert response.status == 404, (method, path)
                    assert await response.read() == b"", "Caddy's own empty 404"
            await asyncio.sleep(0.5)
            # No worker saw any of them (each logs every request it refuses).
            assert refusals(workers) == forwarded_before
            assert forwarded_before.get(403) == 1, forwarded_before
            assert sum([await handled_by(http, w) for w in workers]) == len(PEOPLE)
            assert answered(fake, PEOPLE[0]) == ["/help"]
