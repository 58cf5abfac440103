"""Settings from the environment (and an optional `.env`), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository's own content directory; an installed copy can point elsewhere.
DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAUSECHECK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite+aiosqlite:///./data/pausecheck.db",
        description="SQLAlchemy async URL; the default is a SQLite file under ./data",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    content_dir: Path = DEFAULT_CONTENT_DIR
    timezone: str | None = Field(
        default=None, description="IANA zone for 'this evening' style times; default: the machine's"
    )
    sweep_seconds: float = Field(default=30.0, gt=0)
    journal_retention_days: int = Field(
        default=365, ge=1, description="journal rows older than this are deleted daily"
    )
    reflection_retention_days: int = Field(
        default=7, ge=1, description="days a group reflection's unsaved answers are kept"
    )
    event_retention_days: int = Field(
        default=7, ge=1, description="processed event ids older than this are deleted daily"
    )
    encryption_key: SecretStr | None = Field(
        default=None, description="Fernet key; when set, stored conversation answers are encrypted"
    )

    # Sending rates, at the platforms' documented caps by default.
    telegram_rate: float | None = Field(default=30.0, gt=0, description="messages/s overall")
    telegram_rate_per_chat: float | None = Field(
        default=1.0, gt=0, description="messages/s per chat"
    )
    telegram_group_messages_per_minute: float | None = Field(
        default=20.0, gt=0, description="messages/minute per group chat"
    )
    discord_rate: float | None = Field(default=50.0, gt=0, description="requests/s overall")

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN")
    )
    # A self-hosted Bot API server (or the local fake in tests): "http://host:port/bot".
    telegram_api_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_API_BASE_URL", "PAUSECHECK_TELEGRAM_API_BASE_URL"),
    )
    # Webhook mode when set (the public HTTPS URL Telegram should call); else polling.
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, gt=0, lt=65536)
    telegram_webhook_secret: SecretStr | None = None
    # Sync slash commands to one guild (instant, for development) instead of globally.
    discord_guild_id: int | None = None
    # A role id whose members may run group reflections (/reflect), besides members
    # with Manage Server or Manage Messages in the channel.
    discord_facilitator_role: int | None = None
    discord_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_BOT_TOKEN")
    )
