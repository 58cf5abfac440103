"""Slash commands built from the one command list (`content/commands.yaml`).

Every command only hands `Command(name, args)` to the adapter; what it does is the
engine's business, so adding a command to the list is all it takes to get it here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import discord
from discord import app_commands

from dialogs.events import Command
from dialogs.flows.commands import Action, CommandSpec

RunCommand = Callable[[discord.Interaction, Command], Awaitable[None]]
SlashCommand = app_commands.Command[Any, ..., None]
Callback = Callable[..., Coroutine[Any, Any, None]]

# The option of commands that take words after them (`/stop checkins`).
OPTION_NAME = "what"
OPTION_DESCRIPTIONS: dict[Action, str] = {
    Action.STOP: "Leave empty to stop everything, or write checkins to stop only check-ins",
    Action.REFLECT: "start [reflection] [minutes], next, pause, resume, extend or end",
    Action.LINK: "Leave empty to invite your partner, or paste the code they sent you",
}


def takes_argument(spec: CommandSpec) -> bool:
    return spec.action in OPTION_DESCRIPTIONS


def build_commands(specs: Sequence[CommandSpec], run: RunCommand) -> list[SlashCommand]:
    return [
        app_commands.Command(
            name=spec.name,
            description=spec.description,
            callback=_with_option(spec, run) if takes_argument(spec) else _plain(spec.name, run),
        )
        for spec in specs
    ]


def _plain(name: str, run: RunCommand) -> Callback:
    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, Command(name))

    return callback


def _with_option(spec: CommandSpec, run: RunCommand) -> Callback:
    name = spec.name

    # discord.py reads the option's name and type from this signature (OPTION_NAME).
    async def callback(interaction: discord.Interaction, what: str | None = None) -> None:
        args = tuple(what.split()) if what else ()
        await run(interaction, Command(name, args))

    assert spec.action is not None
    return app_commands.describe(**{OPTION_NAME: OPTION_DESCRIPTIONS[spec.action]})(callback)
