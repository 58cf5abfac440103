"""A hostile group member on Discord (issue 16, item 5): shared answers are posted as
plain text (Markdown escaped, no embeds), links are not shared, and a token carried
out of the server does not let an outsider join."""

from __future__ import annotations

import json
from typing import Any

import discord

from dialogs.content import load_content
from tests.conftest import CONTENT_DIR, onboard
from tests.discord_tests.conftest import SIMULATED, World, texts, with_buttons
from tests.discord_tests.test_reflection import dms, join_all, make_group, start

pytestmark = SIMULATED
_CONTENT = load_content(CONTENT_DIR)
assert _CONTENT.reflection_copy is not None
RCOPY = _CONTENT.reflection_copy


def posts_to(world: World, channel_id: int) -> list[dict[str, Any]]:
    """The bodies of the messages the bot posted in a channel or thread."""
    return [
        entry.json
        for entry in world.env.http_requests
        if entry.method == "POST"
        and entry.path.rstrip("/").endswith(f"/channels/{channel_id}/messages")
        and entry.json
    ]


async def step_two(world: World, name: str) -> tuple[Any, Any, Any]:
    group = await make_group(world, name)
    controls = with_buttons(await start(world, group, "start noticing 3"))
    prompts = await join_all(group)
    ann = group.people[0]
    await ann.click(prompts[0], label="I reached out, texted or asked")
    await group.mod.click(controls, label=RCOPY.next_label)
    [thread] = group.channel.threads
    return group, ann, thread


async def test_a_shared_answer_is_posted_as_plain_text_without_embeds(world: World) -> None:
    _, ann, thread = await step_two(world, "east")
    await ann.send_dm("I went **really** quiet and ~~hid~~")
    shared = await world.click(ann.user, with_buttons(dms(ann)), RCOPY.share_label)
    assert RCOPY.shared in texts(shared)
    [body] = [p for p in posts_to(world, thread.id) if "quiet" in p.get("content", "")]
    assert "\\*\\*really\\*\\*" in body["content"] and "\\~\\~hid\\~\\~" in body["content"]
    assert body.get("flags", 0) & discord.MessageFlags.suppress_embeds.flag
    # Every post for the group is made the same way.
    for post in posts_to(world, thread.id):
        assert post.get("flags", 0) & discord.MessageFlags.suppress_embeds.flag


async def test_a_masked_link_is_never_shared(world: World) -> None:
    group, ann, thread = await step_two(world, "west")
    await ann.send_dm("[Call this helpline](https://evil.example/login)")
    said = await world.click(ann.user, with_buttons(dms(ann)), RCOPY.share_label)
    assert RCOPY.share_has_link in texts(said)
    for place in (group.channel.id, thread.id):
        assert "evil.example" not in json.dumps(posts_to(world, place))


async def test_an_outsider_with_the_token_cannot_join_by_dm(world: World) -> None:
    group, _, _ = await step_two(world, "south")
    async with world.guide.store.session() as s:
        [session] = [
            r
            for r in [
                await s.open_reflection_in("discord", str(t.id)) for t in group.channel.threads
            ]
            if r is not None
        ]
    stranger = world.env.create_user("stranger")
    await onboard(world.guide.store, world.clock, _dm_address(stranger))
    await stranger.send_dm(f"/start rf_{session.token}")
    said = [m for m in stranger.dm_channel.history() if m.author.bot]
    assert RCOPY.not_member in texts(said)
    async with world.guide.store.session() as s:
        people = await s.participants(session.id)
    assert str(stranger.id) not in {p.user.user_id for p in people}


def _dm_address(user: Any) -> Any:
    from dialogs.events import Address

    return Address("discord", str(user.id), str(user.id))
