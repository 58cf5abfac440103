"""Follow-ups and free text by DM; closed DMs; files."""

from __future__ import annotations

import json
from datetime import timedelta

import discord
import pytest
import simcord
from sqlalchemy import text as sql

from bot.discord.adapter import CANNOT_MESSAGE_USER
from bot.discord.dms import OPENING_DMS_TOO_FAST, OpeningDmsTooFast
from bot.discord.dms import PAUSE as DM_PAUSE
from dialogs.content import load_content
from dialogs.events import Address, Outbound
from dialogs.store import FollowUpStatus
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import (
    SIMULATED,
    World,
    labels,
    sent_by,
    texts,
    user_key,
    walk_pause,
    with_buttons,
)

pytestmark = SIMULATED
DMS_CLOSED = load_content(CONTENT_DIR).copy.discord_dms_closed


def dms(who: simcord.MemberActor) -> list[discord.Message]:
    """The bot's messages in a person's DMs, oldest first."""
    return [m for m in who.user.dm_channel.history() if m.author.bot]


async def test_a_due_followup_arrives_by_dm_and_its_buttons_work_there(world: World) -> None:
    await walk_pause(world)
    world.clock.advance(timedelta(minutes=21))

    assert await world.guide.dispatcher.run_due() == 1
    await world.env.settle()

    arrived = dms(world.alice)
    assert "checking in like you asked" in texts(arrived)
    assert labels(with_buttons(arrived)) == ["Better", "About the same", "Harder"]
    assert world.channel.history() == []  # nothing in the server channel
    async with world.guide.store.session() as s:
        assert await s.pending_followups(user_key(world.alice)) == []

    said = await world.click(world.alice.user, with_buttons(arrived), "Better")
    assert "How loud is it inside now" in texts(said)
    assert not any(m.ephemeral for m in said)  # a DM is private already


async def test_closed_dms_mark_the_person_unreachable_and_the_round_goes_on(
    world: World,
) -> None:
    await walk_pause(world, world.alice)
    await walk_pause(world, world.bob)
    alice_dm = world.alice.user.dm_channel.id
    world.env.inject_error(
        "POST",
        f"/channels/{alice_dm}/messages",
        status=403,
        code=CANNOT_MESSAGE_USER,
        message="Cannot send messages to this user",
        times=None,
    )
    world.clock.advance(timedelta(minutes=21))

    assert await world.guide.dispatcher.run_due() == 2
    await world.env.settle()

    assert (await world.profile(world.alice)).unreachable_at == world.clock.now()
    assert "checking in like you asked" in texts(dms(world.bob))
    assert (await world.profile(world.bob)).unreachable_at is None

    # Next time alice uses a command in the server, she hears once how to fix it.
    told = await world.slash(world.alice, "help")
    assert told[0].content == DMS_CLOSED and told[0].ephemeral
    assert (await world.profile(world.alice)).unreachable_at is None
    again = await world.slash(world.alice, "help")
    assert DMS_CLOSED not in texts(again)
    assert world.channel.history() == []


async def test_free_text_in_dms_is_answered_by_dm(world: World) -> None:
    await world.alice.send_dm("/pause")
    assert "pause for a minute" in texts(dms(world.alice))
    await world.alice.send_dm("done")
    assert "How loud is it inside right now?" in texts(dms(world.alice)[-1:])
    await world.alice.send_dm("7")
    assert "What set it off?" in texts(dms(world.alice)[-1:])
    assert (await world.state(world.alice)).node_id == "what_happened"


async def test_a_slash_command_in_dms_answers_in_the_open(world: World) -> None:
    result = await world.alice.user.slash("pause")
    assert not result.ephemeral
    assert "pause for a minute" in texts(sent_by(result))


async def test_export_sends_the_json_file_ephemerally(world: World) -> None:
    said = await world.slash(world.alice, "export")
    files = [(m, a) for m in said for a in m.attachments]
    assert len(files) == 1
    message, attachment = files[0]
    assert message.ephemeral
    assert attachment.filename == "pausecheck-export.json"
    data = json.loads(await attachment.read())
    assert data
    assert world.channel.history() == []


async def test_a_long_message_is_split_between_sentences(world: World) -> None:
    sentence = "This sentence is part of a long message that needs more than one post. "
    long_text = sentence * 60  # about 4300 characters
    address = Address("discord", str(world.alice.id), str(world.channel.id))
    await world.adapter.send(address, [Outbound(long_text.strip())])
    await world.env.settle()

    posts = [m.content for m in dms(world.alice)]
    assert len(posts) == 3
    assert all(len(p) <= 2000 and p.endswith("post.") for p in posts)
    assert " ".join(posts) == long_text.strip()


async def test_an_account_that_is_gone_counts_as_unreachable(world: World) -> None:
    await walk_pause(world)
    async with world.guide.store.session() as s:
        [planned] = await s.pending_followups(user_key(world.alice))
    world.env.inject_error(
        "POST", "/users/@me/channels", status=404, code=10013, message="Unknown User", times=None
    )
    world.clock.advance(timedelta(minutes=21))

    await world.guide.dispatcher.run_due()

    assert (await world.profile(world.alice)).unreachable_at is not None
    async with world.guide.store.session() as s:
        row = await s.get_followup(planned.id)
    # The follow-up ran; its message is recorded as dropped, never retried.
    assert row is not None and row.status is FollowUpStatus.SENT
    async with world.guide.store.engine.connect() as connection:
        fate = await connection.execute(
            sql("select status, reason from outbound where kind = 'scheduled'")
        )
        assert [tuple(r) for r in fate] == [("dropped", "unreachable")]


async def test_a_reply_left_unsent_in_a_server_goes_to_dms_never_to_the_channel(
    world: World,
) -> None:
    """A server interaction's reply is ephemeral. Should one be left owed (the process
    died before the interaction's follow-up went out), the outbox re-sends it by DM:
    never as a post everyone in the channel would read."""
    alice = world.alice
    in_channel = Address("discord", str(alice.id), str(world.channel.id), is_private=False)
    async with world.guide.store.session() as s:
        rows = await s.enqueue_outbound(
            user_key(alice), in_channel, [Outbound("something personal")], world.clock.now()
        )
    report = await world.guide.delivery.send(rows)
    await world.env.settle()
    assert report.sent == 1
    assert texts(dms(alice)) == "something personal"
    assert world.channel.history() == []


def opened_dms(world: World) -> int:
    """Requests to open a DM channel so far."""
    return sum(
        1 for r in world.env.http_requests if (r.method, r.path) == ("POST", "/users/@me/channels")
    )


def too_fast(world: World) -> None:
    world.env.inject_error(
        "POST",
        "/users/@me/channels",
        status=403,
        code=OPENING_DMS_TOO_FAST,
        message="You are opening direct messages too fast",
        times=1,
    )


async def test_opening_dms_too_fast_leaves_the_checkin_pending_for_a_later_round(
    world: World,
) -> None:
    await walk_pause(world)
    async with world.guide.store.session() as s:
        [planned] = await s.pending_followups(user_key(world.alice))
    too_fast(world)
    world.clock.advance(timedelta(minutes=21))

    assert await world.guide.dispatcher.run_due() == 1
    await world.env.settle()
    # Not sent, not dropped, and alice is not taken for someone who closed her DMs.
    assert dms_or_none(world.alice) == []
    assert (await world.profile(world.alice)).unreachable_at is None
    async with world.guide.store.engine.connect() as connection:
        fate = await connection.execute(
            sql("select status, reason from outbound where kind = 'scheduled'")
        )
        assert [tuple(r) for r in fate] == [("pending", None)]

    # A sweep within the pause makes no request; one after it delivers, once.
    world.clock.advance(timedelta(seconds=31))
    requests = opened_dms(world)
    await world.guide.dispatcher.run_due()
    assert opened_dms(world) == requests and dms_or_none(world.alice) == []
    world.clock.advance(DM_PAUSE)
    await world.guide.dispatcher.run_due()
    await world.env.settle()
    assert texts(dms(world.alice)).count("checking in like you asked") == 1
    async with world.guide.store.session() as s:
        row = await s.get_followup(planned.id)
    assert row is not None and row.status is FollowUpStatus.SENT


async def test_while_paused_only_new_dms_wait(world: World) -> None:
    await world.alice.send_dm("/help")  # alice's DM is open now
    alice = Address("discord", str(world.alice.id), str(world.alice.id), is_private=True)
    bob = Address("discord", str(world.bob.id), str(world.bob.id), is_private=True)
    too_fast(world)
    with pytest.raises(OpeningDmsTooFast):
        await world.adapter.send(bob, [Outbound("first try")])
    requests = opened_dms(world)

    with pytest.raises(OpeningDmsTooFast):
        await world.adapter.send(bob, [Outbound("second try")])
    await world.adapter.send(alice, [Outbound("for alice")])
    assert opened_dms(world) == requests  # neither asked Discord to open a DM

    world.clock.advance(DM_PAUSE)
    await world.adapter.send(bob, [Outbound("third try")])
    await world.env.settle()
    assert texts(dms(world.bob)) == "third try"
    assert "for alice" in texts(dms(world.alice))


def dms_or_none(who: simcord.MemberActor) -> list[discord.Message]:
    return dms(who) if who.user.dm_channel is not None else []


async def test_the_requests_a_send_makes_are_counted_for_the_global_limit(world: World) -> None:
    # What the outbox charges to Discord's global limit (bot/outbox.py `weigh`): a
    # DM channel discord.py does not hold yet costs one request to open, and a long
    # text one request per part.
    assert world.guide.outboxes["discord"].weigh == world.adapter.requests_for
    alice = Address("discord", str(world.alice.id), str(world.alice.id), is_private=True)
    assert world.adapter.requests_for(alice, [Outbound("a check-in")]) == 2
    await world.adapter.send(alice, [Outbound("a check-in")])
    await world.env.settle()
    assert world.adapter.requests_for(alice, [Outbound("a check-in")]) == 1
    long_text = "This sentence is part of a long message that needs more than one post. " * 60
    assert world.adapter.requests_for(alice, [Outbound(long_text.strip()), Outbound("ok")]) == 4
    # A post in a group channel, which asks for a thread: the post and the thread.
    group = Address("discord", "", str(world.channel.id))
    assert world.adapter.requests_for(group, [Outbound("Join?", thread="Reflection")]) == 2
