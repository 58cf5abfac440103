"""Group reflections on Telegram, end to end: the real PTB Application polls the fake
Bot API, the real engine runs the reflection, and every call the bot makes is there
to check that nothing private reached the group."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dialogs.events import Address, Outbound
from dialogs.reflection.store import ReflectionSession
from tests.telegram.conftest import Harness, Person
from tests.telegram.fake_bot_api import BOT_USERNAME, Call

GROUP = -100888
FAC = 5101
PEOPLE = (5201, 5202, 5203)
NOBODY = 5301
ANONYMOUS_ADMIN = 1087968824
NOT_FACILITATOR = "Only the person running this reflection"


# What each person types privately; none contains their id, so the checks for ids
# and for answers in the group stay apart.
SECRETS = dict(
    zip(PEOPLE, ("amber kettle whistling", "violet lantern", "cobalt tide"), strict=True)
)


def secret(user_id: int) -> str:
    return f"my alarm says {SECRETS[user_id]}"


def group_calls(h: Harness) -> list[Call]:
    """Every call that puts something in the group. Asking Telegram who is in it
    (getChatMember: is this person an admin, a member?) shows the group nothing."""
    return [c for c in h.fake.calls if c.chat_id == GROUP and c.method != "getChatMember"]


def said_in(calls: list[Call]) -> str:
    return "\n".join(json.dumps(c.params, default=str) for c in calls)


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text", "")) for m in messages)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button for row in rows for button in row]


def join_button(h: Harness) -> dict[str, Any]:
    for message in reversed(h.fake.bot_messages(GROUP)):
        for button in buttons(message):
            if button["text"] == "Join":
                return button
    raise AssertionError("no Join button in the group")


def start_payload(h: Harness) -> str:
    url: str = join_button(h)["url"]
    [payload] = parse_qs(urlsplit(url).query)["start"]
    return payload


async def session_here(h: Harness) -> ReflectionSession | None:
    async with h.guide.store.session() as s:
        return await s.open_reflection_in("telegram", str(GROUP))


async def arrives(person: Person, text: str) -> None:
    await person.fake.wait_for(lambda: text in texts(person.seen()))


async def setup(tg: Harness) -> Person:
    """Everyone has agreed and is screened; FAC administers the group."""
    tg.fake.admins[GROUP] = {FAC}
    for user_id in (FAC, *PEOPLE, NOBODY):
        await tg.onboard(user_id)
    return tg.person(FAC, GROUP)


async def start(tg: Harness, fac: Person) -> str:
    await fac.say("/reflect start noticing 3", until="You're facilitating", chat_type="supergroup")
    return start_payload(tg)


async def join(tg: Harness, user_id: int, payload: str) -> Person:
    person = tg.person(user_id)
    await person.say(f"/start {payload}", until="step 1 of 4")
    return person


async def test_a_whole_reflection_shows_the_group_only_what_was_shared(tg: Harness) -> None:
    fac = await setup(tg)
    payload = await start(tg, fac)
    assert payload.startswith("rf_")
    # Only the /reflect command asked Telegram who the person is in the group.
    assert [c.params["user_id"] for c in tg.fake.ok_calls("getChatMember")] == [FAC]

    people = [await join(tg, user_id, payload) for user_id in PEOPLE]
    step_one = ("I reached out, texted or asked", "I went quiet or stepped away", "A bit of both")
    for person, label in zip(people, step_one, strict=True):
        await person.press(label, until="Kept, and private")

    await fac.press("Next step", until="Step 2 of 4")
    for person in people:
        await arrives(person, "step 2 of 4")
        await person.say(secret(person.user_id), until="Kept, and private")
    sharer = people[1]
    await sharer.press("Share anonymously", until="Shared with the group")
    await arrives(fac, secret(sharer.user_id))

    await fac.press("Next step", until="Step 3 of 4")
    # Step 3 ends on its timer: the dispatcher posts step 4 in the group and the
    # prompts privately, as after a restart.
    tg.clock.advance(timedelta(minutes=3, seconds=1))
    assert await tg.guide.dispatcher.run_due() == 1
    await arrives(fac, "Step 4 of 4")
    for person in people:
        await arrives(person, "step 4 of 4")
    await fac.press("End", until="3 people took part")
    for person in people:
        await arrives(person, "check on you tomorrow")
    assert await session_here(tg) is None

    group = said_in(group_calls(tg))
    # Every answer typed privately stays out of every call about the group...
    for person in people:
        if person is not sharer:
            assert secret(person.user_id) not in group
    # ...and so does everything personal, however it was answered.
    for person in people:
        assert str(person.user_id) not in group
        assert f"Person{person.user_id}" not in group
    for private_words in ("I went quiet", "Think of a recent moment", "Kept, and private"):
        assert private_words not in group
    # The shared answer shows once, as a post of its own, without a name.
    assert group.count(secret(sharer.user_id)) == 1
    [shared] = [m for m in fac.seen() if secret(sharer.user_id) in m.get("text", "")]
    assert shared["text"].startswith("Someone shared, without their name")
    assert "3 people took part" in group
    # No toast about a group press said anything personal either.
    toasts = " ".join(
        str(c.params.get("text", "")) for c in tg.fake.ok_calls("answerCallbackQuery")
    )
    assert all(secret(user_id) not in toasts for user_id in PEOPLE)

    # Each prompt went to the person's own private chat, and only there.
    for person in people:
        private = tg.fake.ok_calls("sendMessage", person.user_id)
        for number in range(1, 5):
            assert any(f"step {number} of 4" in c.params["text"] for c in private)
        assert not any(secret(p.user_id) in said_in(private) for p in people if p is not person)
    assert "Kept, and private" not in texts(tg.person(FAC).seen())


async def test_the_join_button_is_a_deep_link_not_a_callback(tg: Harness) -> None:
    fac = await setup(tg)
    await start(tg, fac)
    button = join_button(tg)
    assert "callback_data" not in button
    assert button["url"].startswith(f"https://t.me/{BOT_USERNAME}?start=rf_")
    # The facilitator's panel is ordinary buttons, pressed in the group.
    _, data = fac.button("Next step")
    assert data.startswith("rf:") and data.endswith(":next")


async def test_someone_not_an_admin_cannot_start_or_steer_a_reflection(tg: Harness) -> None:
    fac = await setup(tg)
    nobody = tg.person(NOBODY, GROUP)
    out = await nobody.say(
        f"/reflect@{BOT_USERNAME} start noticing 3", until=NOT_FACILITATOR, chat_type="group"
    )
    assert len(out) == 1 and not buttons(out[0])
    assert await session_here(tg) is None

    await start(tg, fac)
    before = await session_here(tg)
    assert before is not None and before.step_index == 0
    panel, data = fac.button("Next step")
    sent = len(tg.fake.ok_calls("sendMessage"))
    answers = len(tg.fake.ok_calls("answerCallbackQuery"))
    tg.fake.push_callback(NOBODY, panel["message_id"], data, chat_id=GROUP)
    [toast] = await tg.fake.wait_for(lambda: tg.fake.ok_calls("answerCallbackQuery")[answers:])
    assert toast.params["text"].startswith(NOT_FACILITATOR)

    assert await session_here(tg) == before
    # Nothing was posted, and the facilitator's buttons are still there to press.
    assert len(tg.fake.ok_calls("sendMessage")) == sent
    assert buttons(tg.fake.messages[GROUP][panel["message_id"]])
    await fac.press("Next step", until="Step 2 of 4")
    after = await session_here(tg)
    assert after is not None and after.step_index == 1


async def test_an_admin_picks_a_reflection_with_the_picker_buttons(tg: Harness) -> None:
    fac = await setup(tg)
    await fac.say("/reflect", until="Which reflection", chat_type="supergroup")
    _, data = fac.button("Noticing my move")
    assert data == "/reflect start noticing 3"
    await fac.press("Noticing my move", until="You're facilitating")
    assert start_payload(tg).startswith("rf_")
    # The press asked Telegram about the presser, as the command did.
    assert len(tg.fake.ok_calls("getChatMember")) == 2


async def test_a_participant_who_blocked_the_bot_does_not_stop_the_step(tg: Harness) -> None:
    fac = await setup(tg)
    payload = await start(tg, fac)
    people = [await join(tg, user_id, payload) for user_id in PEOPLE]
    blocked, *others = people
    tg.fake.block(blocked.user_id)

    await fac.press("Next step", until="Step 2 of 4")
    for person in others:
        await arrives(person, "step 2 of 4")
    refused = [c for c in tg.fake.calls if c.chat_id == blocked.user_id and not c.ok]
    assert refused and {c.status for c in refused} == {403}
    assert "step 2 of 4" not in texts(blocked.seen())

    # The timer's round goes on past them too.
    tg.clock.advance(timedelta(minutes=3, seconds=1))
    assert await tg.guide.dispatcher.run_due() == 1
    for person in others:
        await arrives(person, "step 3 of 4")
    await arrives(fac, "Step 3 of 4")


async def test_an_anonymous_admin_is_told_to_post_as_themselves(tg: Harness) -> None:
    fac = await setup(tg)
    body = tg.fake.message_update(
        ANONYMOUS_ADMIN, "/reflect start noticing", chat_id=GROUP, chat_type="supergroup"
    )
    body["message"]["from"] = {
        "id": ANONYMOUS_ADMIN,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    body["message"]["sender_chat"] = tg.fake.chat(GROUP)
    tg.fake.push_update(body)
    await tg.fake.wait_for(lambda: "Remain anonymous" in texts(fac.seen()))
    assert await session_here(tg) is None
    assert not tg.fake.ok_calls("getChatMember")
    # The guide goes on working for everyone else.
    await start(tg, fac)


async def test_send_routes_each_message_by_its_own_address(tg: Harness) -> None:
    """The dispatcher may hand over a step's messages with the group's address: each
    goes where its `to` says, and a blocked person costs only their own copy."""
    await setup(tg)
    tg.fake.block(PEOPLE[0])
    group = Address("telegram", "", str(GROUP), is_private=False)
    messages = [
        Outbound("Step 9 of 9: for everyone", to=group),
        *(
            Outbound(f"a prompt for {user_id}", private_only=True, to=_private(user_id))
            for user_id in PEOPLE
        ),
    ]
    await tg.adapter.send(group, messages)
    assert texts(tg.fake.bot_messages(GROUP)) == "Step 9 of 9: for everyone"
    assert tg.fake.bot_messages(PEOPLE[0]) == []
    for user_id in PEOPLE[1:]:
        assert texts(tg.fake.bot_messages(user_id)) == f"a prompt for {user_id}"


def _private(user_id: int) -> Address:
    return Address("telegram", str(user_id), str(user_id), is_private=True)


async def test_when_telegram_cannot_say_who_is_admin_nobody_is(tg: Harness) -> None:
    fac = await setup(tg)
    tg.fake.fail(400, methods=["getChatMember"])
    await fac.say("/reflect start noticing 3", until=NOT_FACILITATOR, chat_type="supergroup")
    assert await session_here(tg) is None
    await start(tg, fac)  # the next try asks again, and Telegram answers


def test_a_join_button_is_a_link_in_groups_and_a_button_in_private_chats() -> None:
    from bot.telegram.render import render
    from dialogs.events import Choice

    join = Outbound("Join?", choices=(Choice("rf:tok:join", "Join", start_payload="rf_tok"),))

    def shown(private: bool, username: str | None) -> dict[str, Any]:
        [post] = render([join], private=private, bot_username=username)
        assert post.keyboard is not None
        [[button]] = post.keyboard.to_dict()["inline_keyboard"]
        return dict(button)

    assert shown(False, BOT_USERNAME) == {
        "text": "Join",
        "url": f"https://t.me/{BOT_USERNAME}?start=rf_tok",
    }
    # In a private chat the press reaches the guide directly, and so it does where the
    # bot's username is unknown (no link can be made).
    assert shown(True, BOT_USERNAME) == {"text": "Join", "callback_data": "rf:tok:join"}
    assert shown(False, None) == {"text": "Join", "callback_data": "rf:tok:join"}
