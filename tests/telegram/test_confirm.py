"""Long polling confirms an update only once it is handled (bot.telegram.confirm): a
process killed while handling it leaves it with Telegram for the next one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.telegram.confirm import split_answer
from dialogs.delivery import Reply
from dialogs.events import Inbound
from tests.telegram.conftest import Harness

SLOW, QUICK = 4801, 4802


async def test_an_update_in_hand_is_not_confirmed_and_not_handled_twice(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tg.fake
    await tg.onboard(SLOW)
    await tg.onboard(QUICK)
    entered, release = asyncio.Event(), asyncio.Event()
    handled: list[str] = []
    real = tg.guide.engine.handle

    async def handle(inbound: Inbound) -> Reply:
        handled.append(inbound.event_id)
        if inbound.address.user_id == str(SLOW):
            entered.set()
            await release.wait()
        return await real(inbound)

    monkeypatch.setattr(tg.guide.engine, "handle", handle)
    slow_update = fake.push_message(SLOW, "/help")
    await asyncio.wait_for(entered.wait(), 5)
    asked_before = len(fake.ok_calls("getUpdates"))
    # While it is in hand, someone else is answered, and every ask keeps it unconfirmed.
    quick = tg.person(QUICK)
    await quick.say("/help", until="Tap a button")
    await fake.wait_for(lambda: len(fake.ok_calls("getUpdates")) > asked_before + 1)
    offsets = [c.params.get("offset") for c in fake.ok_calls("getUpdates")[asked_before:]]
    assert offsets and all(o is not None and o <= slow_update for o in offsets), offsets
    assert fake.handed_out[slow_update] >= 2  # asked for again, never handled again
    release.set()
    await tg.person(SLOW).replies_after(0, "Tap a button")
    # Handled now: a later ask confirms it.
    await fake.wait_for(
        lambda: any(c.params.get("offset", 0) > slow_update for c in fake.ok_calls("getUpdates"))
    )
    assert handled.count(str(slow_update)) == 1


def _update(update_id: int, text: str = "hello") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": 7, "type": "private"},
            "text": text,
        },
    }


def _answer(updates: list[dict[str, Any]], **dumps: Any) -> bytes:
    return json.dumps({"ok": True, "result": updates}, **dumps).encode()


def _decoded_whole(payload: bytes, newest: int) -> tuple[int, list[dict[str, Any]]]:
    """What ConfirmingRequest made of an answer before split_answer: decode it all."""
    result = json.loads(payload)["result"]
    return len(result), [u for u in result if u["update_id"] > newest]


@pytest.mark.parametrize(
    "payload",
    [
        _answer([_update(n) for n in range(10, 15)]),  # aiohttp's layout (the fake)
        _answer([_update(n) for n in range(10, 15)], separators=(",", ":")),  # Telegram's
        _answer([_update(n) for n in range(10, 15)], indent=2),
        # Text that names the key, even as JSON, is inside a string: not an update.
        _answer([_update(10), _update(12, '{"update_id": 99}, {"update_id": 13}')]),
        _answer([_update(12), _update(13, "]}"), _update(14, '\\"update_id\\": 1')]),
    ],
)
@pytest.mark.parametrize("newest", [9, 10, 12, 14, 20])
def test_an_answer_split_without_decoding_the_updates_in_hand_says_what_decoding_it_says(
    payload: bytes, newest: int
) -> None:
    split = split_answer(payload, newest)
    assert split is not None
    count, fresh, answer = split
    assert (count, fresh) == _decoded_whole(payload, newest)
    assert json.loads(answer) == {"ok": True, "result": fresh}


@pytest.mark.parametrize(
    "payload",
    [
        # An update whose id is not its first key: it would be passed over unseen.
        b'{"ok": true, "result": [{"update_id": 10, "message": {}}, '
        b'{"message": {"text": "new"}, "update_id": 11}]}',
        # Ids out of order: which are new cannot be told from where they begin.
        _answer([_update(11), _update(10)]),
        # Anything besides the list, or something other than an update in it.
        b'{"ok": true, "result": [{"update_id": 11}], "more": 1}',
        b'{"result": [{"update_id": 11}], "ok": true}',
        b'{"ok": true, "result": [1, 2]}',
        b'{"ok": true, "result": [{"update_id": 11}, 12]}',
        b'{"ok": true, "result": {"update_id": 11}}',
    ],
)
def test_an_answer_laid_out_otherwise_is_left_to_be_decoded_whole(payload: bytes) -> None:
    assert split_answer(payload, 10) is None


def test_an_empty_answer_is_understood_as_it_is() -> None:
    payload = _answer([])
    assert split_answer(payload, 10) == (0, [], payload)
