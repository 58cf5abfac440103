"""A message goes only to its address (issue 15, item 1): the Discord adapter sends
nothing for another platform's address, rather than read its ids as Discord's."""

from __future__ import annotations

import pytest

from bot.app import Guide
from bot.discord.adapter import DiscordAdapter
from dialogs.delivery import Misaddressed
from dialogs.events import Address, Outbound


@pytest.mark.parametrize(
    "address",
    [Address("telegram", "1", "1", True), Address("console", "1", "1", True)],
)
async def test_another_platforms_address_is_refused_before_anything_else(
    guide: Guide, address: Address
) -> None:
    adapter = DiscordAdapter(guide, guide.settings)
    # Refused as another's even before the client runs (which would say NotSent).
    with pytest.raises(Misaddressed):
        await adapter.send(address, [Outbound("for someone on another platform")])
    with pytest.raises(Misaddressed):
        await adapter.send(Address("discord", "1", "1"), [Outbound("psst", to=address)])
