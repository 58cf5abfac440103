"""A message goes only to its address (issue 15, item 1). Two consoles with different
`--user` on one database, each with its own store, engine, dispatcher and delivery
as two processes would have: whichever dispatcher takes a follow-up, only its
owner's console shows it. A console asked to show someone else's message refuses;
the outbox row stays pending, says why, and the owner's console delivers it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from rich.console import Console
from sqlalchemy import text as sql

from bot.console import PLATFORM, ConsoleAdapter
from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.delivery import Delivery, Misaddressed, Sender
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore, open_store
from tests.conftest import make_engine, onboard

CHECKING_IN = "checking in like you asked"


@dataclass
class Terminal:
    """One `pausecheck console --user NAME` process on the shared database."""

    user: str
    store: SqlStore
    engine: Engine
    adapter: ConsoleAdapter
    delivery: Delivery
    dispatcher: Dispatcher
    screen: io.StringIO
    senders: dict[str, Sender] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        return self.screen.getvalue()


async def terminal(
    user: str,
    url: str,
    clock: ManualClock,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> Terminal:
    store = await open_store(url, clock=clock)
    engine = make_engine(content, store, clock, safety_screen, resources)
    screen = io.StringIO()
    out = Console(file=screen, width=200, highlight=False, color_system=None)
    senders: dict[str, Sender] = {}
    delivery = Delivery(store, clock, interactive=senders, scheduled=senders)
    adapter = ConsoleAdapter(engine, clock, out, user_id=user, delivery=delivery)
    senders[PLATFORM] = adapter
    dispatcher = Dispatcher(store, engine, senders, clock, delivery=delivery)
    await onboard(store, clock, adapter.address)
    return Terminal(user, store, engine, adapter, delivery, dispatcher, screen, senders)


@pytest.fixture
async def ann_and_bob(
    store_url: str,
    clock: ManualClock,
    content: Content,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> AsyncIterator[tuple[Terminal, Terminal]]:
    url = store_url
    ann = await terminal("ann", url, clock, content, safety_screen, resources)
    bob = await terminal("bob", url, clock, content, safety_screen, resources)
    yield ann, bob
    for each in (ann, bob):
        await each.delivery.close()
        await each.store.close()


async def plan_followup_for(who: Terminal, clock: ManualClock) -> None:
    now = clock.now()
    async with who.store.session() as s:
        await s.schedule_followup(
            UserKey(PLATFORM, who.user),
            FollowUpRequest("followup", who.user, now, now + timedelta(hours=1), f"k-{who.user}"),
        )


async def outbox_rows(store: SqlStore) -> list[tuple[str, str, str | None]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sql("select recipient, status, reason from outbound order by id"))
        return [(r[0], r[1], r[2]) for r in rows]


async def test_another_users_console_never_shows_a_followup(
    ann_and_bob: tuple[Terminal, Terminal], clock: ManualClock
) -> None:
    ann, bob = ann_and_bob
    await plan_followup_for(ann, clock)
    # Bob's dispatcher gets there first: it runs Ann's follow-up, but cannot show it.
    assert await bob.dispatcher.run_due() == 1
    assert CHECKING_IN not in bob.shown
    rows = await outbox_rows(ann.store)
    assert rows and all(r == ("ann", "pending", "not this sender's address") for r in rows)
    # Bob's next rounds leave it alone; Ann's console takes it at once and shows it.
    await bob.dispatcher.run_due()
    assert CHECKING_IN not in bob.shown
    await ann.dispatcher.run_due()
    assert CHECKING_IN in ann.shown
    assert all(r == ("ann", "sent", None) for r in await outbox_rows(ann.store))
    assert CHECKING_IN not in bob.shown


async def test_each_console_shows_its_own_followup_whoever_claims_it(
    ann_and_bob: tuple[Terminal, Terminal], clock: ManualClock
) -> None:
    ann, bob = ann_and_bob
    await plan_followup_for(ann, clock)
    await plan_followup_for(bob, clock)
    await bob.dispatcher.run_due()
    await ann.dispatcher.run_due()
    await bob.dispatcher.run_due()
    assert ann.shown.count(CHECKING_IN) == 1
    assert bob.shown.count(CHECKING_IN) == 1
    assert {(r[0], r[1]) for r in await outbox_rows(ann.store)} == {
        ("ann", "sent"),
        ("bob", "sent"),
    }


@pytest.mark.parametrize(
    "elsewhere",
    [
        Address(PLATFORM, "bob", "bob", True),  # another person's terminal
        Address(PLATFORM, "ann", "bob", True),  # Ann, but in Bob's chat
        Address("telegram", "ann", "ann", True),  # another platform
    ],
)
async def test_the_console_refuses_a_message_for_another_address(
    ann_and_bob: tuple[Terminal, Terminal], elsewhere: Address
) -> None:
    ann, _ = ann_and_bob
    with pytest.raises(Misaddressed):
        await ann.adapter.send(elsewhere, [Outbound("for someone else")])
    # A message whose own `to` is elsewhere is refused too, even sent to Ann.
    with pytest.raises(Misaddressed):
        await ann.adapter.send(ann.adapter.address, [Outbound("psst", to=elsewhere)])
    assert "for someone else" not in ann.shown and "psst" not in ann.shown
    await ann.adapter.send(ann.adapter.address, [Outbound("for ann")])
    assert "for ann" in ann.shown
