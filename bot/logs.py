"""Logging for the guide: its own level for its own code, the libraries kept quiet, and a
redacting filter on every handler.

Two rules, because a log is the thing most likely to leak (copied into a ticket,
shipped to a log service, read by whoever runs the server):

1. `PAUSECHECK_LOG_LEVEL` sets the level of the guide's own loggers (`bot`, `dialogs`,
   `storage`) only. The libraries (python-telegram-bot, httpx, discord.py, aiohttp,
   SQLAlchemy, aiosqlite, APScheduler...) stay at `PAUSECHECK_LIBRARY_LOG_LEVEL`
   (WARNING unless asked): at DEBUG, PTB logs the token in every API URL and whole
   updates with people's messages, and discord.py logs request bodies and DMs.
2. Whatever the levels, `RedactingFilter`, installed on every handler of the root
   logger, rewrites each record before it is written: known secrets (bot tokens, the
   webhook secret, encryption keys, a database password) and anything shaped like a
   Telegram or Discord token become `[secret]`, and the values of message-text fields
   (`text`, `content`, `caption`, names...) in the dicts, JSON and reprs that the
   libraries log become `[text]`. It also redacts the traceback text, where a
   library's exception message may repeat a token.

The guide's own log lines carry event kinds and `user_ref`s, never text; the filter is
the net under that rule, not a reason to relax it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

OWN_LOGGERS = ("bot", "dialogs", "storage", "bench")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SECRET = "[secret]"
TEXT = "[text]"

# Telegram: "<bot id>:<35 url-safe characters>", also inside ".../bot<token>/getMe".
_TELEGRAM_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
# Discord: three base64url parts separated by dots (user id, timestamp, HMAC).
_DISCORD_TOKEN = re.compile(r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}")
# Fields whose values are words a person typed, or names that identify them.
_TEXT_FIELDS = r"text|content|caption|first_name|last_name|username|title|question|bio"
# 'text': '...'  "text": "..."  (dict reprs and JSON; escapes inside the string kept whole)
_QUOTED_FIELD = re.compile(
    rf"""(?P<key>(?P<kq>['"])(?:{_TEXT_FIELDS})(?P=kq)\s*:\s*)"""
    r"""(?P<q>['"])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)""",
    re.DOTALL,
)
# text='...'  content="..."  (reprs of TelegramObject and discord.py objects)
_KEYWORD_FIELD = re.compile(
    rf"""(?P<key>\b(?:{_TEXT_FIELDS})=)(?P<q>['"])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)""",
    re.DOTALL,
)
# text=hello%20there in a URL query or a form body.
_FORM_FIELD = re.compile(rf"(?P<key>(?:^|[?&])(?:{_TEXT_FIELDS})=)(?P<value>[^&\s]+)")

_LIBRARY_LEVEL_DEFAULT = "WARNING"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets, token-shaped strings and message-text values."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, SECRET)
    text = _TELEGRAM_TOKEN.sub(SECRET, text)
    text = _DISCORD_TOKEN.sub(SECRET, text)
    text = _QUOTED_FIELD.sub(lambda m: f"{m['key']}{m['q']}{TEXT}{m['q']}", text)
    text = _KEYWORD_FIELD.sub(lambda m: f"{m['key']}{m['q']}{TEXT}{m['q']}", text)
    return _FORM_FIELD.sub(lambda m: f"{m['key']}{TEXT}", text)


class RedactingFilter(logging.Filter):
    """Rewrites every record it sees (message, arguments, traceback, stack) through
    `redact`; never drops one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add_secret(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the template only
            message = str(record.msg)
        record.msg = redact(message, self._secrets)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse exc_text when it is set, so this is what gets written.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted, self._secrets)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def configure_logging(
    level: str,
    *,
    library_level: str | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    force: bool = False,
) -> RedactingFilter | None:
    """Set up the root handler and levels; returns the filter (to add secrets later).

    Like `logging.basicConfig`, it leaves alone a process whose logging someone else
    set up already (a host application, a test runner running the CLI in-process)
    and returns None, unless `force`. Safe to call more than once: the handler this
    installs replaces the previous one, and every handler on the root logger gets
    the filter.
    """
    root = logging.getLogger()
    foreign = [h for h in root.handlers if not getattr(h, "_pausecheck", False)]
    if foreign and not force:
        return None
    for handler in list(root.handlers):
        if getattr(handler, "_pausecheck", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._pausecheck = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # The root level governs every library logger that sets none of its own.
    root.setLevel(library_level or _LIBRARY_LEVEL_DEFAULT)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    redacting = RedactingFilter(secrets)
    for each in root.handlers:
        for old in [f for f in each.filters if isinstance(f, RedactingFilter)]:
            each.removeFilter(old)
        each.addFilter(redacting)
    return redacting
