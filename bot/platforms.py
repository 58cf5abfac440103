"""Which platform adapters `pausecheck run` starts: those whose tokens are set."""

from __future__ import annotations

from bot.app import Guide
from bot.config import Settings
from bot.platform import PlatformAdapter


def build_adapters(guide: Guide, settings: Settings) -> list[PlatformAdapter]:
    adapters: list[PlatformAdapter] = []
    if settings.telegram_bot_token is not None:
        from bot.telegram_adapter import TelegramAdapter

        adapters.append(TelegramAdapter(guide, settings))
    if settings.discord_bot_token is not None:
        from bot.discord_adapter import DiscordAdapter

        adapters.append(DiscordAdapter(guide, settings))
    return adapters
