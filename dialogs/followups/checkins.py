"""Planning follow-ups in a person's own time: one-off follow-ups asked for by a
flow step, recurring check-ins, and the `/schedule` list with its cancel buttons.

Every due time is computed in the person's zone and moved out of their quiet hours,
then shrunk by the demo clock scale (only the wait shrinks, so stored times stay
real). Whoever owns the wake-up (the scheduler) is told through `on_scheduled`, a
plain callable, so this object needs neither the engine nor the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialogs.content import Content
from dialogs.events import Choice, Outbound
from dialogs.flows.model import ScheduleStep
from dialogs.flows.typed_values import parse_time_of_day
from dialogs.followups.spoken import spoken_time
from dialogs.followups.times import (
    DEFAULT_QUIET,
    after_quiet_hours,
    next_local_time,
    next_weekly_time,
)
from dialogs.followups.weekly_insight import INSIGHT_FLOW, INSIGHT_KIND, next_insight_time
from dialogs.store import FollowUp, FollowUpRequest, Profile, StoreSession, UserKey
from dialogs.turn import Turn

log = logging.getLogger(__name__)

CHECKIN_LATE_LIMIT = timedelta(hours=24)
# Set by a schedule step for the confirmation after it: when the follow-up will come,
# in words ("at 08:00", "tomorrow at 08:00"), and "yes" when quiet hours moved it.
PLANNED_AT = "planned_at"
PLANNED_QUIET = "planned_quiet"


def quiet_hours(profile: Profile) -> tuple[time, time]:
    """The person's quiet hours, or the default window when they set none."""
    start = parse_time_of_day(profile.quiet_start or "")
    end = parse_time_of_day(profile.quiet_end or "")
    if start is None or end is None:
        return DEFAULT_QUIET
    return start, end


class Checkins:
    def __init__(
        self,
        content: Content,
        *,
        timezone: ZoneInfo,
        delay_scale: float = 1.0,
        on_scheduled: Callable[[datetime], None] | None = None,
        postpone_by: timedelta = timedelta(minutes=10),
    ) -> None:
        if not 0 < delay_scale < float("inf"):
            raise ValueError("delay_scale must be a positive, finite number")
        self._content = content
        self._timezone = timezone
        self._delay_scale = delay_scale
        self._on_scheduled = on_scheduled
        self._postpone_by = postpone_by

    # ------------------------------------------------------------- time rules

    def zone_of(self, profile: Profile) -> ZoneInfo:
        if profile.zone:
            try:
                return ZoneInfo(profile.zone)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("stored zone is not known; using the default")
        return self._timezone

    def scaled(self, now: datetime, target: datetime) -> datetime:
        # Demo mode shrinks only the wait, so stored times stay real times.
        return now + (target - now) / self._delay_scale

    def not_now(self, profile: Profile, now: datetime, *, busy: bool) -> datetime | None:
        """When a due follow-up should come instead of now, or None to send it now.

        Someone mid-flow gets it `postpone_by` later, and that later time, like every
        due time, is moved out of their quiet hours: due 21:50, busy at 21:55, it
        comes at 08:00, not at 22:05. A follow-up that comes due inside quiet hours
        anyway (the guide was down, a crashed claim was taken back late) waits for
        their end too. Not in demo mode: there due times were moved out of quiet
        hours before the wait was shrunk, so the moment of sending says nothing
        about the person's night."""
        zone = self.zone_of(profile)
        window = quiet_hours(profile)
        if busy:
            return self.scaled(now, after_quiet_hours(now + self._postpone_by, zone, *window))
        if self._delay_scale != 1.0:
            return None
        later = after_quiet_hours(now, zone, *window)
        return later if later != now else None

    def announce(self, due_times: list[datetime]) -> None:
        """Tell the scheduler about rows committed with these due times."""
        if self._on_scheduled is not None:
            for due in due_times:
                self._on_scheduled(due)

    # ------------------------------------------------------------- one-off

    async def schedule_step(self, turn: Turn, step: ScheduleStep) -> None:
        """A flow's `schedule` step: one follow-up row, in this turn's transaction."""
        if turn.profile.unreachable_at is not None:
            return
        now = turn.at
        zone = self.zone_of(turn.profile)
        delay = step.delay()
        if delay is not None:
            target = now + delay
        else:
            local, weekday = step.local_time(), step.weekday()
            assert local is not None
            if weekday is None:
                target = next_local_time(now, local, zone)
            else:
                target = next_weekly_time(now, weekday, local, zone)
        asked = target
        target = after_quiet_hours(target, zone, *quiet_hours(turn.profile))
        # The confirmation says when it will really come, and why when quiet hours
        # moved it: a flow declaring these variables can say so.
        turn.variables[PLANNED_AT] = spoken_time(target, now, zone)
        turn.variables[PLANNED_QUIET] = "yes" if target != asked else "no"
        due = self.scaled(now, target)
        request = FollowUpRequest(
            flow_id=step.flow,
            chat_id=turn.chat_id,
            due_at=due,
            expires_at=due + step.expiry() / self._delay_scale,
            dedupe_key=f"{turn.event_key}:{turn.flow_id}:{step.id}",
        )
        if await turn.session.schedule_followup(turn.user, request):
            turn.scheduled.append(due)

    # ------------------------------------------------------------- recurring

    def occurrence(self, profile: Profile, after: datetime) -> datetime | None:
        """The next recurring check-in after `after` (and after any pause), with quiet
        hours applied; None when no check-in is set."""
        if profile.checkin_cadence not in ("daily", "weekly") or not profile.checkin_time:
            return None
        at = time.fromisoformat(profile.checkin_time)
        zone = self.zone_of(profile)
        start = max(after, profile.checkin_paused_until or after)
        if profile.checkin_cadence == "weekly":
            when = next_weekly_time(start, profile.checkin_weekday or 0, at, zone)
        else:
            when = next_local_time(start, at, zone)
        return after_quiet_hours(when, zone, *quiet_hours(profile))

    async def insert(
        self, session: StoreSession, user: UserKey, chat_id: str, profile: Profile, now: datetime
    ) -> None:
        occurrence = self.occurrence(profile, now)
        if occurrence is None or profile.unreachable_at is not None:
            return
        due = self.scaled(now, occurrence)
        request = FollowUpRequest(
            flow_id="checkin_due",
            chat_id=chat_id,
            due_at=due,
            expires_at=due + CHECKIN_LATE_LIMIT / self._delay_scale,
            # One row per occurrence, however often it is computed.
            dedupe_key=f"checkin:{user.platform}:{user.user_id}:{occurrence.isoformat()}",
            kind="checkin",
        )
        if await session.schedule_followup(user, request):
            self.announce([due])

    async def after_handled(
        self, session: StoreSession, done: FollowUp, profile: Profile, now: datetime
    ) -> None:
        """After an occurrence is handled (sent, missed or held back), plan the next."""
        after = max(now, done.due_at)
        if done.kind == "checkin":
            await self.insert(session, done.user, done.chat_id, profile, after)
        elif done.kind == INSIGHT_KIND:
            origin = f"after:{done.id}"
            await self.insert_insight(session, done.user, done.chat_id, profile, after, origin)

    async def reschedule(self, turn: Turn) -> None:
        """The settings changed: replace the pending occurrence with the new one, and
        move a weekly insight to the new check-in time."""
        await turn.session.cancel_followups(turn.user, kind="checkin")
        await self.insert(turn.session, turn.user, turn.chat_id, turn.profile, turn.at)
        if await turn.session.cancel_followups(turn.user, kind=INSIGHT_KIND):
            await self.start_weekly_insight(turn)

    # ------------------------------------------------------------- weekly insight

    async def insert_insight(
        self,
        session: StoreSession,
        user: UserKey,
        chat_id: str,
        profile: Profile,
        now: datetime,
        origin: str,
    ) -> bool:
        """Plan the next weekly insight (dialogs.followups.weekly_insight), unless one
        is pending already. `origin` (the turn's event, or the row just handled) is
        part of the row's key, so opting in again after opting out plans afresh,
        while one origin handled twice (a recovery) plans once."""
        if profile.unreachable_at is not None:
            return False
        pending = await session.pending_followups(user)
        if any(f.kind == INSIGHT_KIND for f in pending):
            return False
        occurrence = next_insight_time(profile, now, self.zone_of(profile), quiet_hours(profile))
        due = self.scaled(now, occurrence)
        request = FollowUpRequest(
            flow_id=INSIGHT_FLOW,
            chat_id=chat_id,
            due_at=due,
            expires_at=due + CHECKIN_LATE_LIMIT / self._delay_scale,
            dedupe_key=f"insight:{user.platform}:{user.user_id}:{occurrence.isoformat()}:{origin}",
            kind=INSIGHT_KIND,
        )
        if await session.schedule_followup(user, request):
            self.announce([due])
            return True
        return False

    async def weekly_insight_on(self, turn: Turn) -> bool:
        pending = await turn.session.pending_followups(turn.user)
        return any(f.kind == INSIGHT_KIND for f in pending)

    async def start_weekly_insight(self, turn: Turn) -> None:
        await self.insert_insight(
            turn.session, turn.user, turn.chat_id, turn.profile, turn.at, turn.event_key
        )

    async def stop_weekly_insight(self, turn: Turn) -> None:
        await turn.session.cancel_followups(turn.user, kind=INSIGHT_KIND)

    # ------------------------------------------------------------- /schedule

    async def list_planned(self, turn: Turn) -> None:
        copy = self._content.copy
        pending = await turn.session.pending_followups(turn.user)
        if not pending:
            turn.out.append(Outbound(copy.schedule_empty, private_only=True))
            return
        zone = self.zone_of(turn.profile)
        lines, buttons = [], []
        for f in pending:
            flow = self._content.flows.get(f.flow_id)
            title = flow.title if flow else f.flow_id
            when = f.due_at.astimezone(zone).strftime("%a %d %b, %H:%M")
            lines.append(f"• {when}: {title}")
            label = f"Cancel {when}"[:64]
            buttons.append(Choice(f"cancel:{f.id}", label))
        text = copy.schedule_header + "\n" + "\n".join(lines)
        turn.out.append(Outbound(text, choices=tuple(buttons[:10]), private_only=True))

    async def cancel_one(self, turn: Turn, raw_id: str) -> None:
        copy = self._content.copy
        ok = raw_id.isdigit() and await turn.session.cancel_followup(turn.user, int(raw_id))
        text = copy.schedule_cancelled if ok else copy.schedule_gone
        turn.out.append(Outbound(text, private_only=True))
