"""The per-person queue on Discord: every interaction and DM of one person goes
through `bot.person_queue.PersonQueue`, so one person's flood cannot slow anyone else.

discord.py runs each event in its own task, so without this a person's 300 DMs would
be 300 engine transactions racing everyone else's for the store; and their replies
could cross. Here, for each event:

1. Admission, before anything is sent: an event beyond the person's burst cap costs
   no Discord call at all (an interaction simply goes unanswered), except the first
   of a window, which is answered with one kind notice (ephemeral, or by DM).
2. An accepted interaction is acknowledged at once (Discord allows 3 seconds), then
   waits for its person's turn; its replies are follow-ups, which may come later.
3. A crisis or danger signal and /sos go ahead of that person's waiting events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import discord

from bot.person_queue import DEFAULT_BURST, DEFAULT_WINDOW, Admission, PersonQueue, urgent_event
from dialogs.events import Command
from dialogs.safety.screen import SafetyScreen
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[object]]


class DiscordQueue:
    def __init__(
        self,
        screen: SafetyScreen | None,
        notice: str,
        *,
        burst: int = DEFAULT_BURST,
        window: float = DEFAULT_WINDOW,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._screen = screen
        self._notice = notice
        self.people: PersonQueue[int] = PersonQueue(burst=burst, window=window, now=now)

    def urgent(
        self, *, command: Command | None = None, choice: str | None = None, text: str | None = None
    ) -> bool:
        return urgent_event(self._screen, command=command, choice=choice, text=text)

    async def interaction(
        self, interaction: discord.Interaction, *, ack: Work, work: Work, urgent: bool
    ) -> None:
        """`ack` (the interaction's response) at once, then `work` in the person's turn;
        or, over the cap, the notice once and otherwise nothing."""
        person = interaction.user.id
        admission = self.people.admit(person, urgent=urgent)
        if not admission.ran:
            self._dropped(person, admission)
            if admission is Admission.DROPPED_NOTICE:
                await interaction.response.send_message(self._notice, ephemeral=True)
            return
        try:
            await ack()
        except BaseException:
            # Admitted but never run: give the turn back.
            await self.people.run_admitted(person, _nothing, urgent=urgent)
            raise
        await self.people.run_admitted(person, work, urgent=urgent)

    async def direct_message(self, person: int, *, work: Work, notify: Work, urgent: bool) -> None:
        admission = self.people.admit(person, urgent=urgent)
        if admission.ran:
            await self.people.run_admitted(person, work, urgent=urgent)
            return
        self._dropped(person, admission)
        if admission is Admission.DROPPED_NOTICE:
            await notify()

    def _dropped(self, person: int, admission: Admission) -> None:
        if admission is Admission.DROPPED_NOTICE:
            log.info("burst dropped user=%s", user_ref("discord", str(person)))


async def _nothing() -> None:
    return None
