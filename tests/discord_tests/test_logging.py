"""Discord at PAUSECHECK_LOG_LEVEL=DEBUG: neither the bot token nor a DM's text
reaches the log, even with discord.py's loggers opened too."""

from __future__ import annotations

import logging

import pytest

from bot.logs import configure_logging
from tests.discord_tests.conftest import SIMULATED, World, texts
from tests.logging_capture import restored_logging

pytestmark = SIMULATED
TOKEN = "never-used-offline"
TYPED = "she left the room again and I followed her out"


@pytest.mark.parametrize("library_level", ["WARNING", "DEBUG"])
async def test_debug_logs_hold_no_token_and_no_dm_text(world: World, library_level: str) -> None:
    with restored_logging() as buffer:
        configure_logging(
            "DEBUG", library_level=library_level, secrets=[TOKEN], stream=buffer, force=True
        )
        assert logging.getLogger("discord.gateway").getEffectiveLevel() == getattr(
            logging, library_level
        )
        await world.alice.send_dm("/pause")
        await world.alice.send_dm(TYPED)
        await world.slash(world.alice, "help")
        # What the client itself logs about a gateway event carrying the DM.
        logging.getLogger("discord.gateway").debug(
            "For Shard ID %s: WebSocket Event: %s",
            None,
            {"t": "MESSAGE_CREATE", "d": {"content": TYPED}},
        )
        log = buffer.getvalue()
    assert "pause for a minute" in texts(world.alice.user.dm_channel.history())
    assert "event handled" in log  # the guide's own DEBUG lines are there
    assert TOKEN not in log
    assert TYPED not in log
    assert "followed her" not in log
