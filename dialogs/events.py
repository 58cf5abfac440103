"""The neutral vocabulary every adapter speaks: inbound events and outbound actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialogs.insights.chart import Chart


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
    # The platform says this person may run group reflections in this chat (Discord:
    # Manage Server, Manage Messages or the configured role; Telegram: a group admin).
    facilitator: bool = False

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
    # Where a platform cannot answer a press in a group privately (Telegram: a bot
    # cannot write first to someone), the button instead opens a private chat with
    # the guide, which then receives `/start <start_payload>`.
    start_payload: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send with a message, such as a data export. An image (`media_type`
    image/...) is shown as a picture where the platform can (a Telegram photo, a
    Discord image); anything else goes as a document."""

    filename: str
    data: bytes
    media_type: str
    # What an image shows, for whoever cannot see it (alt text, where the platform
    # takes one).
    description: str | None = None

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to show. `private_only` marks personal content no group may see.

    `to` sends it somewhere other than the chat being answered: a group post
    (`to.is_private` False, seen by everyone there) or one person's private chat.
    Delivery to another address is best effort: one recipient who cannot be reached
    does not stop the others.
    """

    text: str
    choices: tuple[Choice, ...] = field(default=())
    private_only: bool = False
    # A picture by its https URL (Discord embeds it).
    image: str | None = None
    attachment: Attachment | None = None
    # A chart to draw once the turn has committed (dialogs.insights.drawing.drawn):
    # adapters receive it drawn, as an image `attachment`. Unlike a file, it is
    # stored (what it shows, not the picture) and drawn again if sent again.
    chart: Chart | None = None
    to: Address | None = None
    # A group post that may open a thread of this name (Discord): the adapter posts
    # it, opens the thread, tells the engine (`Engine.move_reflection`), and sends
    # what follows for that group into the thread.
    thread: str | None = None
