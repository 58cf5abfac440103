"""Which platform adapters `pausecheck run` starts: those whose tokens are set."""

from __future__ import annotations

import importlib

from bot.app import Guide, SetupError
from bot.config import Settings
from bot.platform import PlatformAdapter

# Imported by name, so a checkout without one adapter still runs the others.
_ADAPTERS = {
    "telegram": ("bot.telegram.adapter", "TelegramAdapter"),
    "discord": ("bot.discord.adapter", "DiscordAdapter"),
}


def build_adapters(guide: Guide, settings: Settings) -> list[PlatformAdapter]:
    wanted = []
    if settings.telegram_bot_token is not None:
        wanted.append("telegram")
    if settings.discord_bot_token is not None:
        wanted.append("discord")
    adapters: list[PlatformAdapter] = []
    for name in wanted:
        module_name, class_name = _ADAPTERS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise SetupError(f"the {name} adapter is not available here ({exc.name})") from exc
        adapters.append(getattr(module, class_name)(guide, settings))
    return adapters
