"""/insights on Telegram: the words as a message, the chart as a photo (sendPhoto)."""

from __future__ import annotations

import struct
from datetime import timedelta

from dialogs.store import UserKey
from tests.telegram.conftest import Harness

ME = 4301
GROUP = -100777


async def two_pauses(tg: Harness) -> None:
    now = tg.clock.now()
    async with tg.guide.store.session() as s:
        user = UserKey("telegram", str(ME))
        await s.append_journal(user, now - timedelta(days=2), "pause", "rate", "rating", "8")
        await s.append_journal(user, now - timedelta(days=1), "pause", "rate", "rating", "6")


async def test_the_chart_goes_as_a_photo_after_the_words(tg: Harness) -> None:
    await tg.onboard(ME)
    await two_pauses(tg)
    me = tg.person(ME)
    await me.say("/insights", until="once a week")
    [photo] = tg.fake.ok_calls("sendPhoto", ME)
    upload = photo.params["photo"]
    assert upload["content_type"] == "image/png"
    assert upload["filename"].endswith(".png")
    data = upload["data"]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (960, 1200)
    assert not tg.fake.ok_calls("sendDocument")
    # In the chat: the words, then the picture, then the offer.
    seen = me.seen()
    words = next(i for i, m in enumerate(seen) if "Pauses: 2" in m.get("text", ""))
    assert "photo" in seen[words + 1]
    assert "once a week" in seen[words + 2]["text"]


async def test_no_pauses_no_photo(tg: Harness) -> None:
    await tg.onboard(ME)
    me = tg.person(ME)
    await me.say("/insights", until="Nothing to show yet")
    assert not tg.fake.ok_calls("sendPhoto")


async def test_in_a_group_no_chart_and_no_figures_are_shown(tg: Harness) -> None:
    await tg.onboard(ME)
    await two_pauses(tg)
    me = tg.person(ME, GROUP)
    await me.say("/insights", until="private chat", chat_type="group")
    assert not tg.fake.ok_calls("sendPhoto")
    assert not any("Pauses:" in str(c.params) for c in tg.fake.ok_calls("sendMessage", GROUP))
