"""What the link keeps: /export shows it from the person's side, and signals are
deleted after their retention (30 days by default) by the daily purge."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from bot.scheduler import Retention
from dialogs.clock import ManualClock
from storage import SqlStore
from storage.models import PartnerLinkRow, PartnerSignalRow
from tests.conftest import Chat
from tests.link.conftest import ALICE, BOB, key, link_up, tap

RETENTION = Retention(timedelta(days=365), timedelta(days=7))


async def _pause_signal(chat: Chat) -> None:
    await chat.command("pause")
    await chat.press("Done")
    await tap(chat, "Send it")


async def test_export_shows_the_link_and_signals_from_each_side(
    alice: Chat, bob: Chat, store: SqlStore
) -> None:
    await link_up(alice, bob)
    await _pause_signal(alice)
    # Offered to Bob and not sent: his alone.
    await bob.command("pause")
    await bob.press("Done")
    async with store.session() as s:
        mine = await s.export_user(key(ALICE))
        his = await s.export_user(key(BOB))
    assert [
        (link["you_invited"], link["partner_platform"], link["status"])
        for link in mine["partner_links"]
    ] == [(True, "discord", "active")]
    assert his["partner_links"][0]["you_invited"] is False
    assert his["partner_links"][0]["partner_platform"] == "telegram"
    assert [(s["direction"], s["words"], s["status"]) for s in mine["partner_signals"]] == [
        ("sent", "I'm taking a pause, not leaving.", "sent")
    ]
    assert [(s["direction"], s["status"]) for s in his["partner_signals"]] == [
        ("received", "sent"),
        ("sent", "offered"),
    ]
    # The link's records name neither the partner's id nor a code.
    text = json.dumps([mine["partner_links"], mine["partner_signals"]])
    assert BOB.user_id not in text and "code" not in text


async def test_signals_are_purged_after_their_retention(
    alice: Chat, bob: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await link_up(alice, bob)
    await _pause_signal(alice)
    clock.advance(timedelta(days=29))
    await _pause_signal(bob)
    clock.advance(timedelta(days=1, seconds=1))
    assert await store.purge_links(clock.now(), RETENTION.partner_signals) == 1
    async with store.session() as s:
        left = await s.export_user(key(BOB))
    assert [sig["direction"] for sig in left["partner_signals"]] == ["sent"]
    # The link itself lives on while it is active.
    assert await _count(store, PartnerLinkRow) == 1


async def test_ended_links_and_unused_invitations_go_too(
    alice: Chat, bob: Chat, carol: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await link_up(alice, bob)
    await _pause_signal(alice)
    await bob.command("unlink")
    await carol.command("link")
    await carol.press("Make an invitation")
    clock.advance(timedelta(days=31, hours=1))
    await store.purge_links(clock.now(), RETENTION.partner_signals)
    assert await _count(store, PartnerLinkRow) == 0
    assert await _count(store, PartnerSignalRow) == 0


async def test_the_daily_purge_runs_it(store: SqlStore, clock: ManualClock) -> None:
    from bot.scheduler import DispatchScheduler
    from dialogs.followups.dispatcher import Dispatcher

    calls: list[timedelta] = []
    real = store.purge_links

    async def spy(now, max_age):  # type: ignore[no-untyped-def]
        calls.append(max_age)
        return await real(now, max_age)

    store.purge_links = spy  # type: ignore[method-assign]
    scheduler = DispatchScheduler(
        Dispatcher(store, None, {}, clock),  # type: ignore[arg-type]
        store,
        sweep_seconds=30,
        clock=clock,
        retention=RETENTION,
    )
    await scheduler.purge()
    assert calls == [timedelta(days=30)]


async def _count(store: SqlStore, table: type) -> int:
    async with store.engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(table)) or 0
