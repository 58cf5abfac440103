"""Two people and one engine: Alice in London on Telegram, Bob in New York on
Discord, both consented, adult and screened. The clock starts at 17:00 London,
12:00 New York: outside both people's quiet hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address, Outbound
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard

ALICE = Address("telegram", "1001", "1001", True)
BOB = Address("discord", "2002", "2002", True)
CAROL = Address("console", "carol", "console", True)
START = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
CODE = re.compile(r"/link ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def lcopy(content: Content):  # type: ignore[no-untyped-def]
    assert content.link_copy is not None
    return content.link_copy


@pytest.fixture
async def alice(engine: Engine, clock: ManualClock, store: SqlStore) -> Chat:
    await onboard(store, clock, ALICE, zone="Europe/London")
    return Chat(engine, address=ALICE, clock=clock)


@pytest.fixture
async def bob(engine: Engine, clock: ManualClock, store: SqlStore) -> Chat:
    await onboard(store, clock, BOB, zone="America/New_York")
    return Chat(engine, address=BOB, clock=clock)


@pytest.fixture
async def carol(engine: Engine, clock: ManualClock, store: SqlStore) -> Chat:
    await onboard(store, clock, CAROL, zone="Europe/London")
    return Chat(engine, address=CAROL, clock=clock)


def key(address: Address) -> UserKey:
    return UserKey(address.platform, address.user_id)


def to(messages: list[Outbound], address: Address) -> list[str]:
    """The texts in a reply addressed to someone else."""
    return [m.text for m in messages if m.to == address]


def here(messages: list[Outbound]) -> list[str]:
    """The texts for the person who acted."""
    return [m.text for m in messages if m.to is None]


async def invite(chat: Chat) -> str:
    """/link and "Make an invitation": the code, as shown."""
    await chat.command("link")
    out = await chat.press("Make an invitation")
    found = CODE.search("\n".join(m.text for m in out))
    assert found, [m.text for m in out]
    return found.group(1)


async def link_up(inviter: Chat, partner: Chat) -> list[Outbound]:
    code = await invite(inviter)
    await partner.command("link", code)
    return await partner.press("Agree and link")


async def tap(chat: Chat, label: str) -> list[Outbound]:
    """Press the newest button labelled `label`, wherever it is: an offer's Send
    button comes before the flow's own next question."""
    for message in reversed(chat.seen):
        for choice in message.choices:
            if choice.label == label:
                return await chat.send(choice=choice.id)
    raise AssertionError(f"no button {label!r}")
