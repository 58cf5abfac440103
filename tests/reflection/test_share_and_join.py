"""A hostile group member (issue 16, item 5): no links in anonymous shares, and only
members of the group may join its reflection."""

from __future__ import annotations

import asyncio

import pytest

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Command
from dialogs.reflection.group import has_link
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from storage import SqlStore
from tests.reflection.test_group import PLATFORM, Room, _join, _start, room  # noqa: F401

LINKS = [
    "[Call this helpline](https://evil.example/login)",
    "call them: https://example.org/help",
    "www.example.com has it",
    "go to evil.example/login now",
    "bit.ly/3xYz",
    "join t.me/somegroup",
    "discord.gg/abcd",
]
NOT_LINKS = ["I felt ok.so I went out", "e.g. when he goes quiet", "back at 10.30", "Mr. Lee"]


@pytest.mark.parametrize("text", LINKS)
def test_links_in_every_shape_are_found(text: str) -> None:
    assert has_link(text)


@pytest.mark.parametrize("text", NOT_LINKS)
def test_ordinary_sentences_are_not_links(text: str) -> None:
    assert not has_link(text)


async def test_a_share_with_a_link_is_refused_and_never_posted(room: Room) -> None:  # noqa: F811
    link = await _start(room)
    await _join(room, "ana", link)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("next",)))
    await room.act("ana", text="[Call this helpline](https://evil.example/login)")
    out = await room.act("ana", choice=room.button("private:ana", "Share anonymously").id)
    assert "can't contain links" in out[0].text
    assert "evil.example" not in room.text_of("group:g1")
    assert "helpline" not in room.text_of("group:g1")
    # Still theirs, privately: they may save it.
    assert room.button("private:ana", "Save to my journal")


def engine_with(
    members: dict[str, set[str]] | None,
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    screen: SafetyScreen,
    resources: SafetyResources,
    *,
    slow: bool = False,
) -> Engine:
    async def is_member(platform: str, chat: str, user: str) -> bool:
        if slow:
            await asyncio.sleep(60)
        if members is None:
            raise RuntimeError("the platform did not answer")
        return user in members.get(chat, set())

    return Engine(
        content,
        store,
        clock,
        screen,
        lambda signal, country: resource_text(resources, signal, country),
        group_member=is_member,
    )


@pytest.mark.parametrize("members", [{"g1": {"fac", "ana"}}, None])
async def test_only_members_of_the_group_may_join(
    room: Room,  # noqa: F811
    members: dict[str, set[str]] | None,
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    room.engine = engine_with(members, content, store, clock, safety_screen, resources)
    link = await _start(room)
    # A forwarded link, opened by someone outside the group (or the platform could
    # not say): refused, and nothing is recorded.
    out = await _join(room, "other", link)
    assert "couldn't confirm you're one of them" in out[0].text
    async with store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
        assert session is not None
        assert await s.participants(session.id) == []
    # A member joins through the same link; a press inside the group needs no asking.
    if members is not None:
        out = await _join(room, "ana", link)
        assert "You're in" in out[0].text
    join = room.button("group:g1", "Join")
    out = await room.act("ben", group="g1", choice=join.id)
    assert any("You're in" in m.text for m in out)


async def test_a_platform_that_does_not_answer_in_time_means_no(
    room: Room,  # noqa: F811
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dialogs.reflection import group

    monkeypatch.setattr(group, "MEMBER_CHECK_TIMEOUT", 0.05)
    room.engine = engine_with({}, content, store, clock, safety_screen, resources, slow=True)
    link = await _start(room)
    out = await _join(room, "ana", link)
    assert "couldn't confirm" in out[0].text
