"""Configuration names others will script against."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_CONTENT_DIR, Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "PAUSECHECK_DATABASE_URL",
        "PAUSECHECK_LOG_LEVEL",
        "TELEGRAM_BOT_TOKEN",
        "DISCORD_BOT_TOKEN",
        "PAUSECHECK_CONTENT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./data/pausecheck.db"
    assert settings.log_level == "WARNING"
    assert settings.content_dir == DEFAULT_CONTENT_DIR
    assert settings.telegram_bot_token is None and settings.discord_bot_token is None


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "PAUSECHECK_LOG_LEVEL=DEBUG\nTELEGRAM_BOT_TOKEN=123:abc\n", encoding="utf-8"
    )
    monkeypatch.setenv("PAUSECHECK_DATABASE_URL", "sqlite+aiosqlite:///elsewhere.db")
    monkeypatch.delenv("PAUSECHECK_LOG_LEVEL", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///elsewhere.db"
    assert settings.log_level == "DEBUG"
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(settings)


def test_rate_limits_default_to_the_platform_caps_and_are_configurable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.app import limits_for
    from bot.outbox import TELEGRAM_REPLIES_PER_SECOND

    monkeypatch.chdir(tmp_path)
    defaults = Settings()
    assert limits_for("telegram", defaults).rate_per_second == 30
    assert limits_for("telegram", defaults).per_chat_per_second == 1
    # The settings' default and the outbox's constant are one budget (README's table).
    assert limits_for("telegram", defaults).replies_per_second == TELEGRAM_REPLIES_PER_SECOND
    assert TELEGRAM_REPLIES_PER_SECOND == 200
    assert limits_for("discord", defaults).rate_per_second == 50
    assert limits_for("console", defaults).rate_per_second is None
    monkeypatch.setenv("PAUSECHECK_TELEGRAM_RATE", "12.5")
    assert limits_for("telegram", Settings()).rate_per_second == 12.5
