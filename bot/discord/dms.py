"""Opening a person's DMs, and Discord's "You are opening direct messages too fast"
(error 40003).

A check-in goes to the person's DMs, and a DM channel the bot has not used yet must
first be opened. Discord limits how fast a bot opens new ones and answers beyond that
with 403 code 40003, which says nothing about the person: their DMs are not closed,
so it must not count as unreachable (50007), nor be dropped. It is raised as
`OpeningDmsTooFast`, which leaves the outbox row pending: the resend sweep tries it
again after the lease, in order with that person's later messages.

Meanwhile, for `PAUSE` on the injected clock, no new DM is opened at all: the
attempt fails at once, without a request. Every refused request counts towards
Discord's limit of invalid requests (exceeding it bars the bot's address for a
while), and a wave of check-ins would otherwise try every person in turn. DMs that
are already open (discord.py keeps the recent ones) are not held back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import discord

from dialogs.clock import Clock

log = logging.getLogger(__name__)

OPENING_DMS_TOO_FAST = 40003
# Discord gives no retry_after for it; a minute keeps a wave from trying again in a
# burst, and is about two resend sweeps.
PAUSE = timedelta(seconds=60)


class OpeningDmsTooFast(Exception):
    """Discord will not open another DM channel just now: try again later."""


class DmOpener:
    def __init__(self, clock: Clock, *, pause: timedelta = PAUSE) -> None:
        self._clock = clock
        self._pause = pause
        self._paused_until: datetime | None = None

    async def open(self, client: discord.Client, user_id: int) -> discord.DMChannel:
        if self._paused_until is not None and self._clock.now() < self._paused_until:
            # discord.py's own cache of open DMs: no request needed for those.
            known = client._connection._get_private_channel_by_user(user_id)
            if known is not None:
                return known
            raise OpeningDmsTooFast("paused after Discord's 40003")
        try:
            return await client.create_dm(discord.Object(id=user_id))
        except discord.Forbidden as exc:
            if exc.code != OPENING_DMS_TOO_FAST:
                raise
            self._paused_until = self._clock.now() + self._pause
            log.warning(
                "Discord says DMs are being opened too fast (code %d); no new DM for %d s, "
                "the messages wait in the outbox",
                exc.code,
                self._pause.total_seconds(),
            )
            raise OpeningDmsTooFast(f"code {exc.code}") from exc
