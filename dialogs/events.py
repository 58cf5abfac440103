"""The neutral vocabulary every adapter speaks: inbound events and outbound actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """Who is talking and where: enough for any adapter to send a reply back."""

    platform: str
    user_id: str
    chat_id: str
    is_private: bool = True


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command such as `/pause` or `/stop checkins`; name without the slash."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a person did: typed text, pressed a choice, or sent a command.

    Exactly one of `text`, `choice` and `command` is set. `event_id` is the platform's
    own id for the event (update id, interaction id) so a redelivery is handled once.
    `at` is timezone-aware UTC.
    """

    address: Address
    event_id: str
    at: datetime
    text: str | None = None
    choice: str | None = None
    command: Command | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.text, self.choice, self.command))
        if given != 1:
            raise ValueError("an Inbound carries exactly one of text, choice or command")
        if self.at.tzinfo is None:
            raise ValueError("Inbound.at must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class Choice:
    """A button: `id` is the opaque payload the adapter sends back, `label` is shown."""

    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send with a message, such as a data export."""

    filename: str
    data: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to show. `private_only` marks personal content no group may see."""

    text: str
    choices: tuple[Choice, ...] = field(default=())
    private_only: bool = False
    image: str | None = None
    attachment: Attachment | None = None
