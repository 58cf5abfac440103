"""/insights on Discord: the words, and the chart as an image attachment with alt text."""

from __future__ import annotations

import struct
from datetime import timedelta

from dialogs.content import load_content
from tests.conftest import CONTENT_DIR
from tests.discord_tests.conftest import SIMULATED, World, texts, user_key

pytestmark = SIMULATED
WORDS = load_content(CONTENT_DIR).insights


async def two_pauses(world: World) -> None:
    now = world.clock.now()
    async with world.guide.store.session() as s:
        user = user_key(world.alice)
        await s.append_journal(user, now - timedelta(days=2), "pause", "rate", "rating", "8")
        await s.append_journal(user, now - timedelta(days=1), "pause", "rate", "rating", "6")


async def test_the_chart_is_an_image_attachment_seen_only_by_its_owner(world: World) -> None:
    await two_pauses(world)
    said = await world.slash(world.alice, "insights")
    assert "Pauses: 2" in texts(said)
    files = [(m, a) for m in said for a in m.attachments]
    assert len(files) == 1
    message, picture = files[0]
    assert message.ephemeral
    assert "Pauses: 2" in message.content  # the words and the picture in one message
    assert picture.filename.endswith(".png")
    assert picture.content_type == "image/png"
    assert WORDS is not None and picture.description == WORDS.chart_description
    data = await picture.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (960, 1200)
    assert world.channel.history() == []


async def test_no_pauses_no_attachment(world: World) -> None:
    said = await world.slash(world.alice, "insights")
    assert "Nothing to show yet" in texts(said)
    assert not [a for m in said for a in m.attachments]
