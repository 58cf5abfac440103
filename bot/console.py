"""The terminal adapter: the guide in a shell, no token needed.

Like the other adapters it holds no conversation state: it turns typed lines into
inbound events and prints outbound messages. The one thing it remembers is the
buttons it printed last, so typing `2` presses the second one, the way a tap would.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from dialogs.clock import Clock
from dialogs.delivery import Delivery, Misaddressed, Reply
from dialogs.engine import Engine
from dialogs.events import Address, Attachment, Choice, Command, Inbound, Outbound

PLATFORM = "console"


def parse_line(line: str) -> tuple[str | None, Command | None]:
    """A typed line as either text or a command (`/stop checkins`)."""
    stripped = line.strip()
    if stripped.startswith("/") and len(stripped) > 1 and not stripped[1].isspace():
        name, *args = stripped[1:].split()
        return None, Command(name.casefold(), tuple(args))
    return line, None


class ConsoleAdapter:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        console: Console,
        *,
        user_id: str,
        files_dir: Path = Path("data/exports"),
        images_dir: Path = Path("data/charts"),
        delivery: Delivery | None = None,
    ) -> None:
        self._files_dir = files_dir
        self._images_dir = images_dir
        # Sends the engine's stored replies (through this adapter's `send`) and marks
        # them; without one, replies are printed and their rows left as they are.
        self._delivery = delivery
        self._engine = engine
        self._clock = clock
        self._console = console
        self._address = Address(PLATFORM, user_id, user_id, is_private=True)
        self._last_choices: tuple[Choice, ...] = ()

    @property
    def address(self) -> Address:
        return self._address

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """The dispatcher's way in: a follow-up arriving while the console runs.

        Only this console's own person sees anything. Several consoles (other
        `--user`s) may share a database, and any of their dispatchers may run anyone's
        follow-up: a message for someone else raises `Misaddressed`, and its rows wait
        for that person's console."""
        if any((message.to or address) != self._address for message in messages):
            raise Misaddressed("not this console's person")
        self.show(messages)

    def show(self, messages: Sequence[Outbound]) -> None:
        for message in messages:
            self._console.print(f"[bold cyan]guide ›[/] {escape(message.text)}")
            if message.attachment is not None:
                # A terminal cannot show a picture either: it is saved, and its path
                # printed, to open in any image viewer.
                image = message.attachment.is_image
                saved = self._save(message.attachment)
                what = "picture saved as" if image else "saved as"
                self._console.print(f"        [dim]({what} {escape(str(saved))})[/]")
            if message.choices:
                self._last_choices = message.choices
                self._print_choices(message.choices)

    def _save(self, attachment: Attachment) -> Path:
        # A terminal cannot show a file, so it lands beside the database, never
        # overwriting an earlier one.
        folder = self._images_dir if attachment.is_image else self._files_dir
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        stem, dot, ext = attachment.filename.rpartition(".")
        stamp = self._clock.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stem or ext}-{stamp}{dot}{ext if stem else ''}"
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(f"{stem or ext}-{stamp}-{n}{dot}{ext if stem else ''}")
        # An export holds everything kept about a person, and a chart what their
        # journal says: for the guide's user only.
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(attachment.data)
        return path

    def _print_choices(self, choices: tuple[Choice, ...]) -> None:
        labels = [c.label for c in choices]
        if all(label.isdigit() for label in labels):
            self._console.print(f"        [dim](type a number from {labels[0]} to {labels[-1]})[/]")
            return
        for n, label in enumerate(labels, start=1):
            self._console.print(f"        [bold]{n}.[/] {escape(label)}")

    def to_inbound(self, line: str) -> Inbound:
        text, command = parse_line(line)
        event_id = uuid.uuid4().hex
        at = self._clock.now()
        if command is not None:
            return Inbound(self._address, event_id, at, command=command)
        choice = self._pressed(line.strip())
        if choice is not None:
            return Inbound(self._address, event_id, at, choice=choice.id)
        return Inbound(self._address, event_id, at, text=text)

    def _pressed(self, typed: str) -> Choice | None:
        """A typed number or exact label that names one of the last buttons."""
        if not self._last_choices or not typed:
            return None
        for choice in self._last_choices:
            if choice.label.casefold() == typed.casefold():
                return choice
        numeric_labels = all(c.label.isdigit() for c in self._last_choices)
        if typed.isdigit() and not numeric_labels and 1 <= int(typed) <= len(self._last_choices):
            return self._last_choices[int(typed) - 1]
        return None

    async def run(self, lines: AsyncIterator[str], *, echo: bool) -> None:
        self.show(await self._engine.greet(self._address))
        async for line in lines:
            if echo:
                self._console.print(f"[bold green]you ›[/] {escape(line)}")
            inbound = self.to_inbound(line)
            # Buttons are single-use, as on the chat platforms.
            self._last_choices = ()
            await self._reply(await self._engine.handle(inbound))

    async def _reply(self, reply: Reply) -> None:
        if self._delivery is not None and reply.rows:
            await self._delivery.send(reply.rows)
        else:
            self.show(reply)


async def piped_lines() -> AsyncIterator[str]:
    """Lines from a non-interactive stdin, ending at end of input."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\r\n")


async def prompt_lines() -> AsyncIterator[str]:
    """Lines from an interactive prompt; follow-ups print above it while it waits."""
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    while True:
        try:
            yield await session.prompt_async("you › ")
        except (EOFError, KeyboardInterrupt):
            return
