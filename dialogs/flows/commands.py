"""The one list of commands: what each does and its one-line description.

Adapters build their command menus from this list (Telegram setMyCommands,
Discord slash commands), so the limits of both apply here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The most commands /help's short list may show.
MAX_BRIEF = 6


class Action(StrEnum):
    """Commands the engine carries out itself instead of starting a flow."""

    STOP = "stop"
    SCHEDULE = "schedule"
    # Group reflection: `/reflect start|next|pause|resume|extend|end` (dialogs.reflection.group).
    REFLECT = "reflect"
    # The partner link (dialogs.link): `/link` invites, `/link CODE` accepts.
    LINK = "link"
    UNLINK = "unlink"


class CommandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Telegram: 1-32 of a-z, 0-9, _; Discord is the same or looser.
    name: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    # Telegram wants 3-256 characters, Discord at most 100.
    description: str = Field(min_length=3, max_length=100)
    flow: str | None = None
    action: Action | None = None
    # Hidden commands work but stay out of the menus (for example /start on Discord).
    in_menu: bool = True
    # A few words for the short list /help shows first: the commands that matter at a
    # hard moment. None keeps a command to the full list behind "All commands".
    brief: str | None = Field(default=None, min_length=3, max_length=60)

    @model_validator(mode="after")
    def _one_target(self) -> CommandSpec:
        if (self.flow is None) == (self.action is None):
            raise ValueError("a command needs exactly one of 'flow' or 'action'")
        return self


class CommandList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    commands: tuple[CommandSpec, ...] = Field(min_length=1)

    def get(self, name: str) -> CommandSpec | None:
        for c in self.commands:
            if c.name == name:
                return c
        return None

    @model_validator(mode="after")
    def _short_list_is_short(self) -> CommandList:
        # Someone reading /help at a hard moment takes in a handful, not a page.
        if len(self.hard_moment()) > MAX_BRIEF:
            raise ValueError(f"at most {MAX_BRIEF} commands may have a 'brief'")
        return self

    def menu(self) -> list[CommandSpec]:
        return [c for c in self.commands if c.in_menu]

    def hard_moment(self) -> list[CommandSpec]:
        """The commands /help shows first, in the list's order."""
        return [c for c in self.commands if c.brief is not None]

    def listing(self) -> str:
        """Every menu command with its description, one a line (help's `{commands}`)."""
        return "\n".join(f"/{c.name}: {c.description}" for c in self.menu())

    def short_listing(self) -> str:
        """The hard-moment commands in a few words each (help's `{key_commands}`)."""
        return "\n".join(f"/{c.name}: {c.brief}" for c in self.hard_moment())
