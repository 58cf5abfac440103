"""A slash command leading to buttons, through a whole pause, in a server channel."""

from __future__ import annotations

from datetime import timedelta

from dialogs.store import FollowUpStatus
from tests.discord_tests.conftest import (
    PAUSE_PATH,
    SIMULATED,
    World,
    labels,
    texts,
    user_key,
    walk_pause,
    with_buttons,
)

pytestmark = SIMULATED


async def test_slash_pause_leads_through_buttons_to_a_planned_followup(world: World) -> None:
    first = await world.slash(world.alice, "pause")
    assert "pause for a minute" in texts(first)
    assert labels(with_buttons(first)) == ["Done", "Skip the breathing"]

    rating = await world.click(world.alice, with_buttons(first), "Done")
    assert labels(with_buttons(rating)) == [str(n) for n in range(11)]
    said = rating
    for label, expected in PAUSE_PATH[1:]:
        said = await world.click(world.alice, with_buttons(said), label)
        assert expected in texts(said)

    state = await world.state(world.alice)
    assert state.flow_id is None
    async with world.guide.store.session() as s:
        pending = await s.pending_followups(user_key(world.alice))
    assert [(f.flow_id, f.status, f.due_at - world.clock.now()) for f in pending] == [
        ("followup", FollowUpStatus.PENDING, timedelta(minutes=20))
    ]


async def test_a_pressed_message_loses_its_buttons(world: World) -> None:
    first = await world.slash(world.alice, "pause")
    question = with_buttons(first)
    assert question.components
    await world.click(world.alice, question, "Done")
    assert question.components == []  # SimCord shows the message as it is now


async def test_every_reply_in_a_server_channel_is_ephemeral(world: World) -> None:
    seen = await walk_pause(world)
    await world.slash(world.alice, "role")
    await world.slash(world.alice, "privacy")
    await world.slash(world.alice, "stop")

    # What anyone in the channel can see, and what bob can see, holds none of it.
    public = world.channel.history()
    as_bob = world.channel.history(viewer=world.bob)
    assert public == [] and as_bob == []
    # alice herself saw her conversation.
    assert any("Done, I'll check in at" in t for t in seen)
    mine = world.channel.history(viewer=world.alice)
    assert mine and all(m.flags.ephemeral for m in mine)
