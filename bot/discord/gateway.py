"""discord.py's gateway connection, opened and closed on its own, apart from the
client's REST side.

The client logs in once (REST: commands, DMs, channel posts all work from then on);
the gateway, which receives slash commands, button presses and DMs, is opened only
while this worker holds the lease (`bot.discord.lease`) and closed the moment it does
not. Closing cancels the task that reads the socket first, so no event is handled
after that, then closes the socket itself within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.app import SetupError
from bot.discord.client import GuideClient

log = logging.getLogger(__name__)

# Closing the socket waits for Discord's answer; a cut-off network must not hold the
# worker. Nothing is read from it any more by then.
CLOSE_TIMEOUT = 1.0


class ClientGateway:
    """The gateway of one logged-in `GuideClient` (see `bot.discord.lease.Gateway`)."""

    def __init__(self, client: GuideClient, *, ready_timeout: float) -> None:
        self._client = client
        self._ready_timeout = ready_timeout
        self._connection: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect (IDENTIFY) and return once Discord says the bot is ready; raise
        `SetupError` if it refuses or does not answer in time."""
        client = self._client
        client.gateway_ready.clear()
        gate = client.identify_gate
        if gate is not None:
            gate.expect(client.shard)
        connection = self._connection = asyncio.create_task(
            client.connect(), name="discord-gateway"
        )
        connection.add_done_callback(_connection_ended)
        ready = asyncio.create_task(client.gateway_ready.wait(), name="discord-ready")
        try:
            done, _ = await asyncio.wait(
                {connection, ready},
                timeout=self._ready_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if gate is not None:
                # Identified by now, or failed before: either way no longer ahead
                # of the higher shards at the gate.
                gate.forget(client.shard)
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        if ready in done:
            return
        if connection in done:
            failure = None if connection.cancelled() else connection.exception()
            raise SetupError(f"could not connect to Discord: {failure}") from failure
        raise SetupError(f"Discord was not ready within {self._ready_timeout:g} s")

    def running(self) -> bool:
        """The connection is open, or discord.py is reconnecting it; False once it gave
        up (a revoked token, intents not allowed) or was closed."""
        return self._connection is not None and not self._connection.done()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # First: from here on no event from the socket is handled.
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connection
        ws = self._client.ws
        if ws is not None and ws.open:
            # Code 1000 ends the session: the next holder IDENTIFYs afresh.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1000), timeout=CLOSE_TIMEOUT)
        self._client.gateway_ready.clear()


def _connection_ended(task: asyncio.Task[None]) -> None:
    # discord.py reconnects by itself; it gives up only on what a restart cannot fix
    # (a revoked token, intents not allowed), which must not pass silently.
    if not task.cancelled() and task.exception() is not None:
        log.error("the Discord connection ended", exc_info=task.exception())
