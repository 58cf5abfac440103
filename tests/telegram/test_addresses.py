"""A message goes only to its address (issue 15, item 1): the Telegram adapter sends
nothing for another platform's address, rather than read its ids as Telegram's."""

from __future__ import annotations

import pytest

from dialogs.delivery import Misaddressed
from dialogs.events import Address, Outbound
from tests.telegram.conftest import Harness


@pytest.mark.parametrize(
    "address",
    [Address("discord", "4701", "4701", True), Address("console", "4701", "4701", True)],
)
async def test_another_platforms_address_is_refused_and_nothing_is_sent(
    tg: Harness, address: Address
) -> None:
    with pytest.raises(Misaddressed):
        await tg.adapter.send(address, [Outbound("for someone on another platform")])
    here = Address("telegram", "4701", "4701", True)
    with pytest.raises(Misaddressed):
        await tg.adapter.send(here, [Outbound("hello"), Outbound("psst", to=address)])
    assert tg.fake.ok_calls("sendMessage") == []
    await tg.adapter.send(here, [Outbound("hello")])
    assert [c.params["text"] for c in tg.fake.ok_calls("sendMessage")] == ["hello"]
