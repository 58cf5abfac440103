"""Settings from the environment (and an optional `.env`), read once at start.

A bad setting stops every command before anything starts, with one line per setting
that names the variable, says what is wrong with its value and how to fix it
(`load_settings`, `SettingsError`); the CLI exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository's own content directory; an installed copy can point elsewhere.
DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
ENV_PREFIX = "PAUSECHECK_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The async drivers the guide runs on, by database, and the package each comes from.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "psycopg"}
_PACKAGES = {"psycopg": '"psycopg[binary]"'}
_EXAMPLE_URLS = "sqlite+aiosqlite:///./data/pausecheck.db or postgresql+psycopg://user@host/db"


class SettingsError(Exception):
    """One or more settings are wrong: one line each, naming the variable."""


def check_database_url(url: str) -> str:
    """`url` if the guide can use it: an SQLAlchemy URL for SQLite or PostgreSQL with
    an asyncio driver that is installed. Otherwise ValueError saying what to change."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL; use for example {_EXAMPLE_URLS}") from None
    backend = parsed.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"the guide runs on SQLite or PostgreSQL, not {backend}: {_EXAMPLE_URLS}")
    wanted = f"{backend}+{ASYNC_DRIVERS[backend]}"
    try:
        # As create_async_engine picks it (psycopg has an async variant; pysqlite not).
        dialect = parsed.get_dialect(_is_async=True)
    except NoSuchModuleError:
        raise ValueError(f"SQLAlchemy has no driver {parsed.drivername!r}; use {wanted}") from None
    if not getattr(dialect, "is_async", False):
        raise ValueError(
            f"{parsed.drivername} is not an asyncio driver; write {wanted}:// instead of "
            f"{parsed.drivername}://"
        )
    driver = parsed.get_driver_name()
    try:
        dialect.import_dbapi()
    except ImportError:
        package = _PACKAGES.get(driver, driver)
        raise ValueError(
            f"its driver {driver} is not installed; install it with: pip install {package}"
        ) from None
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # An empty variable means "not set", as a shell's `X= cmd` suggests.
        env_ignore_empty=True,
        # An infinite or not-a-number rate or interval is never meant.
        allow_inf_nan=False,
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
        default=200.0, gt=0, description="messages/s of replies in private chats"
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
    # /healthz and /metrics on a port of their own (bot/ops_http.py), for a worker
    # without a Telegram webhook, whose server serves them anyway. Unset: none.
    health_port: int | None = Field(default=None, gt=0, lt=65536)
    health_listen: str = "127.0.0.1"
    # Bodies larger than this are refused before they are read (Telegram's updates
    # are a few kilobytes).
    telegram_webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How long a worker's claim on a person's stored webhook updates holds without
    # renewal (bot.telegram.inbox): after a worker dies, another takes them over then.
    telegram_webhook_lease_seconds: float = Field(default=10.0, gt=0)
    # Sync slash commands to one guild (instant, for development) instead of globally.
    discord_guild_id: int | None = None
    # Gateway shards (Discord requires one per 2,500 servers). Each is one connection,
    # held by whichever worker takes its lease (bot.discord.lease); DMs are on shard 0.
    discord_shards: int = Field(default=1, ge=1, le=64)
    # A role id whose members may run group reflections (/reflect), besides members
    # with Manage Server or Manage Messages in the channel.
    discord_facilitator_role: int | None = None
    discord_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_BOT_TOKEN")
    )

    @field_validator("log_level", "library_log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA zone name; use one such as Europe/London") from None
        return value

    @field_validator("content_dir")
    @classmethod
    def _existing_content(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(
                "content directory not found; point it at the content/ folder of a checkout"
            )
        return value

    @field_validator("user_ref_secret")
    @classmethod
    def _long_enough_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("shorter than 16 bytes; use a long random string, or unset it")
        return value

    @field_validator("encryption_keys", "encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from cryptography.fernet import Fernet

        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError(f"holds no key; make one with: {MAKE_A_KEY}")
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                which = "it" if len(keys) == 1 else f"key {position} of {len(keys)}"
                raise ValueError(
                    f"{which} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    f"make one with: {MAKE_A_KEY}"
                ) from None
        return value

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


MAKE_A_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


def load_settings() -> Settings:
    """The settings, or `SettingsError` with one line for each wrong one."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("\n".join(_explain(error) for error in exc.errors())) from None


def variable_name(field: str) -> str:
    """The environment variable a field is read from."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return ENV_PREFIX + field.upper()


def _explain(error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    name = variable_name(field)
    info = Settings.model_fields.get(field)
    secret = info is not None and "SecretStr" in str(info.annotation)
    given = error.get("input")
    shown = "" if secret or not isinstance(given, str) else f"={_shown(field, given)!r}"
    # Pydantic says what is wrong ("Input should be ..."); our checks also say the fix.
    problem = str(error["msg"]).removeprefix("Value error, ").replace("Input should", "it should")
    default = info.default if info is not None else None
    unset = "" if default is None else f" (or unset it: the default is {default})"
    return f"{name}{shown}: {problem}{unset}"


def _shown(field: str, given: str) -> str:
    if field != "database_url":
        return given
    from sqlalchemy.engine import make_url

    try:
        return make_url(given).render_as_string(hide_password=True)
    except Exception:
        # Not a URL: show it only if it cannot hold a password.
        return given if "@" not in given and ":" not in given else "(not shown)"
