"""A fixture-friendly way to run `bot.logs.configure_logging` inside a test and put
the root logger back afterwards."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bot.logs import OWN_LOGGERS

# Loggers whose levels a test run may change (ours, and the libraries').
_TOUCHED = (*OWN_LOGGERS, "telegram", "httpx", "httpcore", "discord", "aiohttp", "aiosqlite")


@contextmanager
def restored_logging() -> Iterator[io.StringIO]:
    """A buffer for the test's log output; logging is as before when it closes."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {h: list(h.filters) for h in handlers}
    level = root.level
    levels = {name: logging.getLogger(name).level for name in _TOUCHED}
    try:
        yield io.StringIO()
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler, kept in filters.items():
            handler.filters[:] = kept
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
