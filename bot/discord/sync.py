"""Registering the slash commands with Discord, only when they changed, and never at
the cost of starting.

Discord keeps an application's commands between starts, so putting the whole list
again on every start only spends requests from a tightly rate-limited route (and a
refusal there used to stop `pausecheck run`, though the commands Discord already had
kept working). At start the list Discord has is fetched and compared with ours by
what a person sees and types (`shape`): names, types, descriptions, options and
their choices. Only if they differ is the list synced. Any failure is logged with
what to check, and the guide starts anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

Shape = tuple[Any, ...]


def shape(payload: Mapping[str, Any]) -> Shape:
    """A command (or an option) as Discord would show it, from either side's dict:
    ours (`Command.to_dict`) or Discord's (`AppCommand.to_dict`), which differ in
    the keys that do not matter here."""
    permissions = payload.get("default_member_permissions")
    return (
        payload.get("type"),
        payload.get("name"),
        payload.get("description"),
        bool(payload.get("required", False)),
        tuple((c["name"], c["value"]) for c in payload.get("choices") or ()),
        tuple(sorted(shape(o) for o in payload.get("options") or ())),
        bool(payload.get("nsfw", False)),
        None if permissions is None else int(permissions),
    )


def same_commands(ours: Iterable[Mapping[str, Any]], theirs: Iterable[Mapping[str, Any]]) -> bool:
    return sorted(map(shape, ours)) == sorted(map(shape, theirs))


def _remote(command: app_commands.AppCommand) -> dict[str, Any]:
    payload = dict(command.to_dict())
    payload["nsfw"] = command.nsfw
    permissions = command.default_member_permissions
    payload["default_member_permissions"] = None if permissions is None else permissions.value
    return payload


async def sync_if_changed(
    tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None
) -> bool | None:
    """Sync `tree` (for `guild`, or globally) if Discord's list differs from it.
    True if synced, False if it was already the same, None if Discord could not be
    asked or refused: the guide starts either way."""
    where = "globally" if guild is None else f"to guild {guild.id}"
    ours = [command.to_dict(tree) for command in tree.get_commands(guild=guild)]
    try:
        theirs: Sequence[app_commands.AppCommand] | None = await tree.fetch_commands(guild=guild)
    except Exception as exc:
        # Not knowing what Discord has, sync: the list is then right for sure.
        log.warning("could not fetch the slash commands (%s); syncing them %s", _why(exc), where)
        theirs = None
    if theirs is not None and same_commands(ours, map(_remote, theirs)):
        log.info("slash commands unchanged, not synced (%d, %s)", len(ours), where)
        return False
    try:
        synced = await tree.sync(guild=guild)
    except Exception as exc:
        hint = (
            " Is the bot in that server, invited with the applications.commands scope?"
            if guild is not None
            else ""
        )
        log.warning(
            "could not sync the slash commands %s (%s); starting with those Discord already has.%s",
            where,
            _why(exc),
            hint,
            exc_info=not isinstance(exc, discord.HTTPException),
        )
        return None
    log.info("synced %d slash commands %s", len(synced), where)
    return True


def _why(exc: Exception) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"{exc.status} code {exc.code}: {exc.text}"
    return type(exc).__name__
