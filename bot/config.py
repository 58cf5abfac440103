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
    # The libraries' loggers (python-telegram-bot, httpx, discord.py...) stay here
    # whatever log_level says: at DEBUG they log tokens and people's messages.
    library_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    content_dir: Path = DEFAULT_CONTENT_DIR
    # The trained intent model, keyed by a hash of the examples: built on first start
    # (a few seconds), loaded from here afterwards. Unset: data/cache of this checkout.
    cache_dir: Path | None = None
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
    signal_retention_days: int = Field(
        default=30, ge=1, description="partner link signals older than this are deleted daily"
    )
    event_retention_days: int = Field(
        default=7, ge=1, description="processed event ids older than this are deleted daily"
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys, comma-separated: the first encrypts, all decrypt (rotation)",
    )
    # The one-key setting of earlier versions; read after encryption_keys.
    encryption_key: SecretStr | None = Field(
        default=None, description="a single Fernet key (older name of encryption_keys)"
    )
    # The HMAC key behind the user references in logs; generated and stored in the
    # database on first start when unset.
    user_ref_secret: SecretStr | None = None
    # One person's burst: more than this many messages within flood_seconds are not
    # processed one by one (one notice, the rest dropped); safety signals and /sos
    # are always taken, ahead of that person's queue.
    flood_messages: int = Field(default=20, ge=1)
    flood_seconds: float = Field(default=10.0, gt=0)

    # Sending rates, at the platforms' documented caps by default (bot.outbox).
    telegram_rate: float | None = Field(
        default=30.0, gt=0, description="messages/s overall, for waves and group posts"
    )
    telegram_rate_per_chat: float | None = Field(
        default=1.0, gt=0, description="messages/s per chat, sustained"
    )
    telegram_chat_burst: int = Field(
        default=5, ge=1, description="messages one chat may get at once before its rate applies"
    )
    telegram_reply_rate: float | None = Field(
        default=100.0, gt=0, description="messages/s of replies in private chats"
    )
    telegram_group_messages_per_minute: float | None = Field(
        default=20.0, gt=0, description="messages/minute per group chat"
    )
    discord_rate: float | None = Field(default=50.0, gt=0, description="requests/s overall")
    # How old an unsent outbox row may get before it is dropped instead of sent late.
    outbox_reply_ttl_seconds: float = Field(default=600.0, gt=0)
    outbox_scheduled_ttl_seconds: float = Field(default=3600.0, gt=0)

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
    # Bodies larger than this are refused before they are read (Telegram's updates
    # are a few kilobytes).
    telegram_webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Sync slash commands to one guild (instant, for development) instead of globally.
    discord_guild_id: int | None = None
    # A role id whose members may run group reflections (/reflect), besides members
    # with Manage Server or Manage Messages in the channel.
    discord_facilitator_role: int | None = None
    discord_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_BOT_TOKEN")
    )

    def encryption_key_list(self) -> list[str]:
        """The configured Fernet keys, newest (the one that encrypts) first."""
        for setting in (self.encryption_keys, self.encryption_key):
            if setting is not None:
                keys = [k.strip() for k in setting.get_secret_value().split(",")]
                return [k for k in keys if k]
        return []

    def secret_values(self) -> list[str]:
        """Every secret in the settings, for the log filter to redact."""
        found = [
            s.get_secret_value()
            for s in (
                self.telegram_bot_token,
                self.discord_bot_token,
                self.telegram_webhook_secret,
                self.user_ref_secret,
            )
            if s is not None
        ]
        found += self.encryption_key_list()
        try:
            from sqlalchemy.engine import make_url

            password = make_url(self.database_url).password
        except Exception:
            password = None
        if password:
            found.append(str(password))
        return found
