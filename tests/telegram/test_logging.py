"""Telegram at PAUSECHECK_LOG_LEVEL=DEBUG: neither the bot token nor anything a person
typed reaches the log, even with the libraries' loggers opened too."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.app import SetupError
from bot.logs import configure_logging
from tests.logging_capture import restored_logging
from tests.telegram.conftest import start_harness, stop_harness
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI

TYPED = "my partner went silent after dinner and I keep texting"


@pytest.mark.parametrize("library_level", ["WARNING", "DEBUG"])
async def test_debug_logs_hold_no_token_and_no_typed_text(
    fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch, library_level: str
) -> None:
    with restored_logging() as buffer:
        configure_logging(
            "DEBUG", library_level=library_level, secrets=[DEFAULT_TOKEN], stream=buffer, force=True
        )
        # The guide's DEBUG leaves the libraries where library_level puts them.
        assert logging.getLogger("telegram.ext").getEffectiveLevel() == getattr(
            logging, library_level
        )
        assert logging.getLogger("bot.telegram").getEffectiveLevel() == logging.DEBUG
        h = await start_harness(fake, monkeypatch)
        try:
            await h.onboard(5101)
            person = h.person(5101)
            await person.say("/pause", until="pause for a minute")
            await person.say(TYPED, until="")
            # An update PTB cannot parse is logged at CRITICAL with the raw data.
            fake.push_update({"message": {"text": TYPED, "chat": "not a chat", "date": 1}})
            await fake.wait_for(lambda: "Error while parsing" in buffer.getvalue() or None)
        finally:
            fake._updates.clear()
            await stop_harness(h)
        log = buffer.getvalue()
    assert log  # something was logged at all
    if library_level == "DEBUG":
        # The libraries did log the calls, and the filter took the secrets out.
        assert "getUpdates" in log and "[secret]" in log and "[text]" in log
    assert DEFAULT_TOKEN not in log
    assert DEFAULT_TOKEN.split(":")[1] not in log
    assert TYPED not in log
    assert "partner went silent" not in log


async def test_a_refused_token_is_named_by_its_setting_never_printed(
    fake: FakeBotAPI, tmp_path: Path
) -> None:
    wrong = "7012345678:AAH3kd8sPq0xZl1mNq2rStUvWxYz0123456"
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": wrong,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "PAUSECHECK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}",
        "PAUSECHECK_LOG_LEVEL": "DEBUG",
        "PAUSECHECK_LIBRARY_LOG_LEVEL": "DEBUG",
    }
    env.pop("DISCORD_BOT_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    printed = (out + err).decode()
    assert process.returncode == 1, printed
    assert "Telegram refused TELEGRAM_BOT_TOKEN" in printed
    assert wrong not in printed
    assert wrong.split(":")[1] not in printed


async def test_the_start_up_error_itself_holds_no_token(
    fake: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's own message, before the command line's redaction net."""
    wrong = "7012345678:AAH3kd8sPq0xZl1mNq2rStUvWxYz0123456"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", wrong)
    with pytest.raises(SetupError) as raised:
        await start_harness(fake, monkeypatch, telegram_bot_token=SecretStr(wrong))
    assert "TELEGRAM_BOT_TOKEN" in str(raised.value)
    assert wrong not in str(raised.value)
    assert wrong.split(":")[1] not in str(raised.value)
