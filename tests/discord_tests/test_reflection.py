"""Group reflection on Discord: posts for the channel, everything personal private.

A facilitator runs /reflect in a server channel; the guide posts the reflection with
a Join button anyone may press, opens a thread for it, and from then on each step is
announced there while each participant's prompt and answers stay between them and
the guide (ephemeral replies, then DMs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import discord
import pytest
import simcord

from bot.discord.adapter import CANNOT_MESSAGE_USER, DiscordAdapter
from dialogs.content import load_content
from dialogs.events import Address, Outbound
from tests.conftest import CONTENT_DIR, onboard
from tests.discord_tests.conftest import (
    SIMULATED,
    Sent,
    World,
    components,
    discord_settings,
    labels,
    sent_by,
    texts,
    user_key,
    with_buttons,
)

pytestmark = SIMULATED
CONTENT = load_content(CONTENT_DIR)
assert CONTENT.reflection_copy is not None
RCOPY = CONTENT.reflection_copy
NOT_YOURS = CONTENT.copy.not_your_button
NOTICING = CONTENT.reflections["noticing"]
STAGES = CONTENT.reflections["stages"]
OPENER = CONTENT.reflections["opener"]


@dataclass
class Group:
    """One server channel with a facilitator (Manage Messages) and three members."""

    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    mod: simcord.MemberActor
    people: list[simcord.MemberActor]


async def make_group(world: World, name: str, guild: simcord.GuildHandle | None = None) -> Group:
    guild = guild or world.env.create_guild(name=name)
    channel = guild.create_text_channel(f"{name}-circle")
    moderators = guild.create_role(
        "Moderators", permissions=discord.Permissions(manage_messages=True)
    )
    mod = guild.add_member(world.env.create_user(f"{name}-mod"), roles=[moderators])
    people = [guild.add_member(world.env.create_user(f"{name}-{n}")) for n in ("ann", "ben", "cat")]
    for member in (mod, *people):
        await onboard(
            world.guide.store, world.clock, Address("discord", str(member.id), str(channel.id))
        )
    return Group(guild, channel, mod, people)


def dms(who: simcord.MemberActor) -> list[discord.Message]:
    return [m for m in who.user.dm_channel.history() if m.author.bot]


def group_channels(channel: simcord.ChannelHandle) -> list[simcord.ChannelHandle]:
    return [channel, *channel.threads]


def public_view(world: World, channel: simcord.ChannelHandle) -> list[str]:
    """Everything anyone could ever have seen in the channel and its threads: the
    messages as they are now (ephemeral ones are nobody's but their person's), and
    every message the bot posted or edited there, in any version."""
    places = group_channels(channel)
    ids = {str(c.id) for c in places}
    seen = [m.content for c in places for m in c.history()]
    for entry in world.env.http_requests:
        path = entry.path.strip("/").split("/")
        if len(path) >= 2 and path[0] == "channels" and path[1] in ids and entry.json:
            seen.append(json.dumps(entry.json))
    return seen


def all_ephemeral(results: Sequence[simcord.InteractionResult]) -> bool:
    """Every message these interactions showed (the pressed message as updated, and
    what followed) was for the person who acted alone."""
    return all(sent_by(r) and all(m.ephemeral for m in sent_by(r)) for r in results)


def opening_post(channel: simcord.ChannelHandle) -> discord.Message:
    [post] = [m for m in channel.history() if components(m)]
    return post


async def start(world: World, group: Group, what: str) -> list[simcord.ResponseMessage]:
    result = await group.mod.slash(group.channel, "reflect", what=what)
    assert result.ephemeral
    return sent_by(result)


async def join_all(group: Group) -> list[Sent]:
    """Everyone presses Join on the shared post; each one's step 1 prompt."""
    prompts: list[Sent] = []
    for person in group.people:
        result = await person.click(opening_post(group.channel), label=RCOPY.join_label)
        said = sent_by(result)
        assert result.ephemeral and all(m.ephemeral for m in said)
        assert "You're in" in texts(said) and "step 1 of" in texts(said)
        prompts.append(with_buttons(said))
    return prompts


async def test_a_whole_reflection_keeps_every_unshared_answer_private(world: World) -> None:
    group = await make_group(world, "north")
    ann, ben, cat = group.people
    interactions: list[simcord.InteractionResult] = []

    controls = with_buttons(await start(world, group, "start noticing 3"))
    assert labels(controls) == [
        RCOPY.next_label,
        RCOPY.pause_label,
        RCOPY.extend_label,
        RCOPY.end_label,
    ]
    post = opening_post(group.channel)
    assert NOTICING.title in post.content
    assert labels(post) == [RCOPY.join_label]
    [thread] = group.channel.threads
    assert thread.name == NOTICING.title
    assert "Step 1 of 4" in texts(thread.history())

    # Joining answers each person alone; the post keeps its Join button for the next.
    prompts = await join_all(group)
    assert labels(opening_post(group.channel)) == [RCOPY.join_label]

    # Step 1, by the buttons of the ephemeral prompt.
    step1 = [o.label for o in NOTICING.steps[0].options]
    for person, prompt, label in zip(group.people, prompts, step1, strict=True):
        result = await person.click(prompt, label=label)
        interactions.append(result)
        assert "Kept" in texts(result.followups)

    # Step 2 arrives by DM; each answers there in their own words.
    result = await group.mod.click(controls, label=RCOPY.next_label)
    interactions.append(result)
    controls = with_buttons(result.followups)
    secrets = {ann: "ann-alarm-7F3Q", ben: "ben-alarm-K2WX", cat: "cat-alarm-Q9ZD"}
    for person, secret in secrets.items():
        assert "step 2 of 4" in texts(dms(person)[-1:])
        await person.send_dm(f"It said {secret}")
        assert "Kept" in texts(dms(person)[-1:])
    # ben shares his, from his DMs.
    shared = await world.click(ben.user, with_buttons(dms(ben)), RCOPY.share_label)
    assert RCOPY.shared in texts(shared)
    assert "ben-alarm-K2WX" in texts(thread.history())

    # Step 3 by DM buttons.
    result = await group.mod.click(controls, label=RCOPY.next_label)
    interactions.append(result)
    controls = with_buttons(result.followups)
    for person in group.people:
        prompt = with_buttons(dms(person))
        assert "step 3 of 4" in prompt.content
        said = await world.click(person.user, prompt, NOTICING.steps[2].options[0].label)
        assert "Kept" in texts(said)

    # Step 4 starts when step 3's time is up, on the dispatcher's timer.
    world.clock.advance(timedelta(minutes=3, seconds=1))
    assert await world.guide.dispatcher.run_due() == 1
    await world.env.settle()
    lines = {ann: "ann-line-P4MV", ben: "ben-line-H8TR", cat: "cat-line-Z1NB"}
    for person, line in lines.items():
        assert "step 4 of 4" in texts(dms(person)[-1:])
        await person.send_dm(line)
    assert "Step 4 of 4" in texts(thread.history())

    # The facilitator ends it, from the panel still showing since step 3.
    result = await group.mod.click(controls, label=RCOPY.next_label)
    interactions.append(result)
    assert "3 people took part" in texts(thread.history()[-1:])
    for person in group.people:
        assert RCOPY.followup_offer in texts(dms(person))

    seen = "\n".join(public_view(world, group.channel))
    assert "ben-alarm-K2WX" in seen
    for secret in [*secrets.values(), *lines.values()]:
        if secret != "ben-alarm-K2WX":
            assert secret not in seen
    for person in (group.mod, *group.people):
        assert person.name not in seen and str(person.id) not in seen
    # No prompt was ever posted for the group, only announced.
    assert "step 1 of 4" not in seen and "step 2 of 4" not in seen
    assert all_ephemeral(interactions)
    # Step 1 came with the Join; every later prompt by DM, once each.
    for person in group.people:
        mine = texts(dms(person))
        assert "step 1 of 4" not in mine
        assert all(mine.count(f"step {n} of 4") == 1 for n in (2, 3, 4))


async def test_only_a_facilitator_can_start_or_move_a_reflection(world: World) -> None:
    group = await make_group(world, "south")
    ann, ben, _ = group.people

    said = sent_by(await ann.slash(group.channel, "reflect", what="start noticing"))
    assert texts(said) == RCOPY.not_facilitator
    assert public_view(world, group.channel) == []

    controls = with_buttons(await start(world, group, "start noticing 3"))
    [thread] = group.channel.threads
    before = len(thread.history())

    # The panel is the facilitator's: a copy of it refuses anyone else's press.
    copy = await _copy(world, group.channel, controls, prefix="pc")
    result = await ann.click(copy, label=RCOPY.next_label)
    assert result.ephemeral and result.response is not None
    assert result.response.content == NOT_YOURS
    # Even a button the whole channel could press is refused by the guide.
    open_copy = await _copy(world, group.channel, controls, prefix="pg")
    result = await ann.click(open_copy, label=RCOPY.next_label)
    assert result.ephemeral and RCOPY.not_facilitator in texts(sent_by(result))
    # And so is the command, in the reflection's thread.
    said = sent_by(await ben.slash(thread, "reflect", what="end"))
    assert texts(said) == RCOPY.not_facilitator
    assert len(thread.history()) == before
    assert "Step 2 of 4" not in texts(thread.history())

    # The facilitator's own panel still moves it on.
    result = await group.mod.click(controls, label=RCOPY.next_label)
    assert "Step 2 of 4" in texts(thread.history())
    # Typed in the channel it started in, /reflect finds it in its thread.
    said = sent_by(await group.mod.slash(group.channel, "reflect", what="start stages"))
    assert RCOPY.already_running in texts(said)
    await group.mod.slash(group.channel, "reflect", what="end")
    assert RCOPY.summary_too_few in texts(thread.history()[-1:])
    assert len(group.channel.threads) == 1


async def test_the_configured_role_makes_a_facilitator(world: World) -> None:
    group = await make_group(world, "east")
    guides = group.guild.create_role("Guides")
    lead = group.guild.add_member(world.env.create_user("east-lead"), roles=[guides])
    await onboard(
        world.guide.store, world.clock, Address("discord", str(lead.id), str(group.channel.id))
    )
    said = sent_by(await lead.slash(group.channel, "reflect", what="start noticing"))
    assert texts(said) == RCOPY.not_facilitator

    await _restart(world, discord_facilitator_role=guides.id)
    said = sent_by(await lead.slash(group.channel, "reflect", what="start noticing"))
    assert RCOPY.controls in texts(said)
    assert NOTICING.title in opening_post(group.channel).content
    # Someone without the role still cannot.
    said = sent_by(await group.people[0].slash(group.channel, "reflect", what="end"))
    assert texts(said) == RCOPY.not_facilitator


async def test_two_reflections_at_once_stay_in_their_own_groups(world: World) -> None:
    north = await make_group(world, "north")
    # The second in another channel of the same server, the third in another server.
    west = await make_group(world, "west", guild=north.guild)
    far = await make_group(world, "far")
    # Each group, its reflection, and the step where it first asks for words.
    runs = [(north, NOTICING, 2), (west, STAGES, 3), (far, OPENER, 3)]
    panels = {}
    for group, reflection, _ in runs:
        panels[group.channel.id] = with_buttons(
            await start(world, group, f"start {reflection.id} 3")
        )
    for group, _, _ in runs:
        await join_all(group)
    for step in (2, 3):
        for group, _, text_step in runs:
            if step <= text_step:
                result = await group.mod.click(panels[group.channel.id], label=RCOPY.next_label)
                panels[group.channel.id] = with_buttons(result.followups)

    # In each group, one person shares what they wrote.
    shared = {}
    for group, _, text_step in runs:
        person = group.people[0]
        assert f"step {text_step} of 4" in texts(dms(person)[-1:])
        shared[group.channel.id] = f"{group.channel.name}-shared-5Y8J"
        await person.send_dm(shared[group.channel.id])
        await world.click(person.user, with_buttons(dms(person)), RCOPY.share_label)

    for group, reflection, _ in runs:
        seen = "\n".join(public_view(world, group.channel))
        assert reflection.title in seen and shared[group.channel.id] in seen
        assert len(group.channel.threads) == 1
        others = [(g, r) for g, r, _ in runs if g is not group]
        for other, other_reflection in others:
            assert other_reflection.title not in seen
            assert shared[other.channel.id] not in seen
        # Each person heard only about their own reflection.
        for person in group.people:
            mine = texts(dms(person))
            assert reflection.title in mine
            assert all(r.title not in mine for _, r in others)


async def test_a_participant_with_closed_dms_does_not_hold_up_the_others(world: World) -> None:
    group = await make_group(world, "dmclosed")
    ann, ben, cat = group.people
    controls = with_buttons(await start(world, group, "start noticing 3"))
    await join_all(group)
    world.env.inject_error(
        "POST",
        f"/channels/{cat.user.dm_channel.id}/messages",
        status=403,
        code=CANNOT_MESSAGE_USER,
        message="Cannot send messages to this user",
        times=None,
    )
    [thread] = group.channel.threads

    # Pressed by the facilitator: the panel comes back and the others get step 2.
    result = await group.mod.click(controls, label=RCOPY.next_label)
    assert RCOPY.controls in texts(result.followups)
    assert "Step 2 of 4" in texts(thread.history())
    for person in (ann, ben):
        assert "step 2 of 4" in texts(dms(person))
    assert dms(cat) == []

    # On the step's timer too, and the timer counts as done.
    world.clock.advance(timedelta(minutes=3, seconds=1))
    assert await world.guide.dispatcher.run_due() == 1
    await world.env.settle()
    assert "Step 3 of 4" in texts(thread.history())
    for person in (ann, ben):
        assert "step 3 of 4" in texts(dms(person))
    async with world.guide.store.session() as s:
        reflection = await s.open_reflection_in("discord", str(thread.id))
    assert reflection is not None and reflection.step_index == 2


async def test_reflect_typed_in_the_channel_finds_it_when_its_thread_was_archived(
    world: World,
) -> None:
    group = await make_group(world, "archived")
    await start(world, group, "start noticing 3")
    await join_all(group)
    [thread] = group.channel.threads
    # Discord archives a quiet thread by itself; discord.py then drops it from the
    # channel's threads.
    seen_by_bot = world.env.bot.get_channel(thread.id)
    assert isinstance(seen_by_bot, discord.Thread)
    await seen_by_bot.edit(archived=True)
    await world.env.settle()
    assert world.env.bot.get_channel(group.channel.id).threads == []  # type: ignore[union-attr]

    said = sent_by(await group.mod.slash(group.channel, "reflect", what="next"))
    assert RCOPY.none_running not in texts(said)
    assert "Step 2 of 4" in texts(thread.history())
    said = sent_by(await group.mod.slash(group.channel, "reflect", what="end"))
    assert RCOPY.none_running not in texts(said)
    async with world.guide.store.session() as s:
        assert await s.open_reflection_in("discord", str(thread.id)) is None
        assert await s.open_reflection_in("discord", str(group.channel.id)) is None


@pytest.mark.parametrize(
    "denied",
    [
        discord.PermissionOverwrite(create_public_threads=False),
        # It could open the thread, but every later post there would be refused.
        discord.PermissionOverwrite(send_messages_in_threads=False),
    ],
    ids=["may-not-create-threads", "may-not-send-in-threads"],
)
async def test_without_thread_permission_the_posts_stay_in_the_channel(
    world: World, denied: discord.PermissionOverwrite
) -> None:
    group = await make_group(world, "nothreads")
    me = world.env.bot.get_guild(group.guild.id).me  # type: ignore[union-attr]
    channel = group.guild.create_text_channel("no-threads", overwrites={me: denied})
    group = Group(group.guild, channel, group.mod, group.people)
    controls = with_buttons(await start(world, group, "start noticing 3"))

    assert channel.threads == []
    assert "Step 1 of 4" in texts(channel.history())
    await join_all(group)
    await group.mod.click(controls, label=RCOPY.next_label)
    assert "Step 2 of 4" in texts(channel.history())
    assert all("step 2 of 4" in texts(dms(p)) for p in group.people)


async def test_posts_after_the_opening_follow_it_into_its_thread(world: World) -> None:
    """What the engine addresses to the channel after the post that opens a thread
    (later in the same batch) goes to the thread, as does all that follows."""
    group = await make_group(world, "batch")
    channel_id = str(group.channel.id)
    async with world.guide.store.session() as s:
        await s.create_reflection(
            token="batchtoken",
            platform="discord",
            chat_id=channel_id,
            reflection_id="noticing",
            facilitator=user_key(group.mod),
            minutes=3,
            at=world.clock.now(),
        )
    here = Address("discord", "", channel_id, is_private=False)
    ann = group.people[0]
    to_ann = Address("discord", str(ann.id), str(ann.id), is_private=True)
    await world.adapter.deliver(
        [
            (here, [Outbound("Opening", to=here, thread="Batch thread")]),
            (to_ann, [Outbound("For ann", to=to_ann)]),
            (here, [Outbound("Afterwards", to=here)]),
        ]
    )
    await world.env.settle()

    [thread] = group.channel.threads
    posts = [m for m in group.channel.history() if m.type is discord.MessageType.default]
    assert texts(posts) == "Opening"
    assert texts(thread.history()) == "Afterwards"
    assert texts(dms(ann)) == "For ann"
    async with world.guide.store.session() as s:
        moved = await s.reflection_by_token("batchtoken")
    assert moved is not None and moved.chat_id == str(thread.id)
    # A later post for the group, as a step timer sends it, lands there too.
    await world.adapter.send(replace(here, chat_id=moved.chat_id), [Outbound("Later")])
    await world.env.settle()
    assert texts(thread.history()[-1:]) == "Later"


async def _copy(
    world: World, channel: simcord.ChannelHandle, message: Sent, *, prefix: str
) -> discord.Message:
    """The same buttons on a message everyone in the channel sees, as `pc:` (one
    person's) or `pg:` (anyone's) buttons."""
    view = discord.ui.View(timeout=None)
    for row in components(message):
        for c in row["components"]:
            custom_id = c["custom_id"]
            if prefix == "pg":
                custom_id = "pg:" + custom_id.split(":", 2)[2]
            view.add_item(discord.ui.Button(label=c["label"], custom_id=custom_id))
    view.stop()
    sent = world.env.bot.get_channel(channel.id)
    assert isinstance(sent, discord.TextChannel)
    return await sent.send("(copy)", view=view)


async def _restart(world: World, **settings: object) -> DiscordAdapter:
    """A new process with other settings: a new adapter, client and outbox."""
    fresh = DiscordAdapter(world.guide, discord_settings(**settings), clock=world.clock)
    await world.guide.outboxes["discord"].close()
    await world.guide.add_platform("discord", fresh)
    await world.env.restart_bot(fresh.make_client())
    return fresh
