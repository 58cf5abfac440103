"""What `pausecheck run` needs from a chat platform adapter.

An adapter turns the platform's updates into `Inbound` events for the engine and
renders `Outbound` messages; it holds no conversation state. Its `send` is the raw
platform call (raising `dialogs.followups.dispatcher.RecipientUnreachable` when the person
blocked the bot or closed DMs); the guide wraps it in a rate-limited outbox, and the
adapter sends its own replies through `guide.outboxes[name].interactive`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dialogs.events import Address, Outbound


class PlatformAdapter(Protocol):
    name: str

    async def start(self) -> None:
        """Connect, register commands/menus, and begin receiving updates."""
        ...

    async def stop(self) -> None:
        """Stop receiving and disconnect; safe to call after a failed start."""
        ...

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """Deliver messages to a chat (used for follow-ups, through the outbox)."""
        ...
