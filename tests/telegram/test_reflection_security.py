"""A hostile group member on Telegram (issue 16, item 5): a forwarded join link does
not let an outsider in, no link preview is ever shown, and links are not shared."""

from __future__ import annotations

import json

from tests.telegram.conftest import Harness
from tests.telegram.test_reflection import GROUP, NOBODY, PEOPLE, join, setup, start


async def test_an_outsider_with_a_forwarded_link_cannot_join(tg: Harness) -> None:
    fac = await setup(tg)
    tg.fake.outsiders[GROUP] = {NOBODY}
    payload = await start(tg, fac)
    outsider = tg.person(NOBODY)
    said = await outsider.say(f"/start {payload}", until="couldn't confirm")
    assert not any("step 1 of 4" in m.get("text", "") for m in said)
    asked = [c.params["user_id"] for c in tg.fake.ok_calls("getChatMember")]
    assert NOBODY in asked
    # A member opening the same link joins.
    await join(tg, PEOPLE[0], payload)


async def test_no_message_ever_shows_a_link_preview(tg: Harness) -> None:
    fac = await setup(tg)
    payload = await start(tg, fac)
    await join(tg, PEOPLE[0], payload)
    sends = tg.fake.ok_calls("sendMessage")
    assert sends
    for call in sends:
        options = call.params.get("link_preview_options")
        if isinstance(options, str):
            options = json.loads(options)
        assert options == {"is_disabled": True}, call.params


async def test_a_shared_link_never_reaches_the_group(tg: Harness) -> None:
    fac = await setup(tg)
    payload = await start(tg, fac)
    person = await join(tg, PEOPLE[0], payload)
    await person.press("I reached out, texted or asked", until="Kept, and private")
    await fac.press("Next step", until="Step 2 of 4")
    await person.say("see evil.example/login for help", until="Kept, and private")
    await person.press("Share anonymously", until="can't contain links")
    for call in tg.fake.calls:
        if call.chat_id == GROUP:
            assert "evil.example" not in json.dumps(call.params)
