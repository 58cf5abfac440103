"""/healthz and /metrics (bot/ops_http.py) on a real port on 127.0.0.1: the guide's own
wiring feeds the metrics (events, messages sent, follow-ups and their lateness, the
database's backlog), the health answer follows the database, and the Telegram webhook
server serves both beside its webhook without weakening it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Guide, open_guide
from bot.config import Settings
from bot.metrics import METRICS, Metrics
from bot.ops_http import OpsRoutes, OpsServer, ops_routes
from bot.telegram.webhook import SECRET_HEADER, WebhookServer
from dialogs.clock import ManualClock
from dialogs.events import Address, Command, Inbound
from dialogs.store import FollowUpRequest, UserKey
from storage.engine import create_engine_for
from tests.conftest import onboard
from tests.postgres import postgres_schema_url
from tests.test_engine import RecordingSender

PERSON = Address("test", "u1", "c1", True)


@pytest.fixture
async def guide(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Guide]:
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}")
    monkeypatch.setenv("PAUSECHECK_TIMEZONE", "Europe/London")
    opened = await open_guide(Settings(), clock)
    try:
        yield opened
    finally:
        await opened.close()


async def serve(routes: OpsRoutes) -> OpsServer:
    server = OpsServer(routes, listen="127.0.0.1", port=0)
    await server.start()
    return server


async def get(port: int, path: str, **headers: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def families(text: str) -> dict[str, str]:
    """Metric name (as METRICS spells it) -> type."""
    found = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = family.type
    return found


async def test_metrics_count_what_the_guide_did(guide: Guide, clock: ManualClock) -> None:
    await onboard(guide.store, clock, PERSON)
    sender = RecordingSender()
    await guide.add_platform("test", sender)
    pause = Inbound(PERSON, "ev1", clock.now(), command=Command("pause", ()))
    assert await guide.engine.handle(pause)
    await guide.engine.handle(pause)  # Telegram delivering it again
    now = clock.now()
    async with guide.store.session() as s:
        # One for this person, due now; one for a platform this process does not
        # serve, overdue and left pending.
        await s.schedule_followup(
            UserKey("test", "u1"),
            FollowUpRequest("followup", "c1", now, now + timedelta(hours=1), "k1"),
        )
        await s.schedule_followup(
            UserKey("elsewhere", "u2"),
            FollowUpRequest("followup", "c2", now, now + timedelta(hours=1), "k2"),
        )
    await guide.engine.handle(Inbound(PERSON, "ev2", clock.now(), command=Command("stop", ())))
    clock.advance(timedelta(minutes=31))  # no longer busy mid-flow; 31 min late
    assert await guide.dispatcher.run_due() == 1
    assert sender.sent, "the follow-up went out through the outbox"
    # A reply stored and not yet sent (nobody sends it here): the outbox's depth.
    await guide.engine.handle(Inbound(PERSON, "ev3", clock.now(), command=Command("help", ())))

    server = await serve(ops_routes(guide))
    try:
        status, kind, text = await get(server.port, "/metrics")
    finally:
        await server.stop()
    assert status == 200
    assert kind.startswith("text/plain") and "version=" in kind
    seen = samples(text)
    test = ("platform", "test")
    assert seen[("pausecheck_events_total", (("outcome", "handled"), test))] == 3
    assert seen[("pausecheck_events_total", (("outcome", "duplicate"), test))] == 1
    assert seen[("pausecheck_followups_total", (("outcome", "delivered"), test))] == 1
    assert seen[("pausecheck_messages_sent_total", (("lane", "scheduled"), test))] == len(
        [m for _, messages in sender.sent for m in messages]
    )
    # 31 minutes late: above the 30-minute bucket's bound only in +Inf.
    assert seen[("pausecheck_followup_lateness_seconds_count", ())] == 1
    assert seen[("pausecheck_followup_lateness_seconds_bucket", (("le", "1800.0"),))] == 0
    assert seen[("pausecheck_followup_lateness_seconds_bucket", (("le", "+Inf"),))] == 1
    assert seen[("pausecheck_followups_due", ())] == 1
    assert seen[("pausecheck_outbox_pending", ())] >= 1
    assert seen[("pausecheck_outbox_queued", (test,))] == 0
    assert seen[("pausecheck_database_up", ())] == 1
    assert families(text) == METRICS


async def test_health_follows_the_database(guide: Guide, clock: ManualClock) -> None:
    server = await serve(ops_routes(guide))
    try:
        assert await get(server.port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    finally:
        await server.stop()
    # Nothing listens on port 1: the database is unreachable.
    gone = create_engine_for("postgresql+psycopg://guide:pw@127.0.0.1:1/pausecheck")
    metrics = Metrics()
    server = await serve(OpsRoutes(gone, metrics, clock.now))
    try:
        status, _, text = await get(server.port, "/healthz")
        assert (status, text) == (503, "database unreachable\n")
        status, _, text = await get(server.port, "/metrics")
        assert status == 200
        assert samples(text)[("pausecheck_database_up", ())] == 0
    finally:
        await server.stop()
        await gone.dispose()


async def test_health_on_postgresql(clock: ManualClock) -> None:
    with postgres_schema_url() as url:
        engine = create_engine_for(url)
        server = await serve(OpsRoutes(engine, Metrics(), clock.now))
        try:
            assert (await get(server.port, "/healthz"))[0] == 200
            assert (await get(server.port, "/metrics"))[0] == 200
        finally:
            await server.stop()
            await engine.dispose()


async def test_a_port_in_use_is_one_line_naming_the_setting(guide: Guide) -> None:
    from bot.app import SetupError

    first = await serve(ops_routes(guide))
    try:
        second = OpsServer(ops_routes(guide), listen="127.0.0.1", port=first.port)
        with pytest.raises(SetupError, match="PAUSECHECK_HEALTH_PORT"):
            await second.start()
    finally:
        await first.stop()


async def test_the_webhook_server_serves_both_and_still_guards_its_path(guide: Guide) -> None:
    class Application:
        bot: Any = None

    server = WebhookServer(
        Application(),
        listen="127.0.0.1",
        port=0,
        path="/hook",
        secret="s3cret",
        routes=ops_routes(guide).routes(),
    )
    await server.start()
    try:
        assert (await get(server.port, "/healthz"))[0] == 200
        status, _, text = await get(server.port, "/metrics")
        assert status == 200 and "pausecheck_database_up 1.0" in text
        # The webhook's own rules are unchanged: other paths 404, no secret 403.
        assert (await get(server.port, "/elsewhere"))[0] == 404
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{server.port}/hook", data=b"{}") as response,
        ):
            assert response.status == 403
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{server.port}/hook",
                data=b"[]",
                headers={SECRET_HEADER: "s3cret"},
            ) as response,
        ):
            assert response.status == 400
    finally:
        await server.stop()
