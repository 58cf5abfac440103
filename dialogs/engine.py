"""The dialog engine: one inbound event in, the replies out, one transaction between.

The story of every inbound event, on every path:
1. open: de-duplicate by event id (a redelivered event changes nothing) and load
   the person's conversation and profile;
2. screen: the safety screen reads any typed text before any flow step (a crisis or
   danger signal is answered by its own flow, and the running flow stops);
3. dispatch: a command, a button press or typed text goes to whoever owns it: the
   flow runner, group reflections or check-ins;
4. save: state, journal, follow-ups and the processed event id commit together.

The engine holds its collaborators and passes each only what it needs; none of them
holds the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialogs.clock import Clock
from dialogs.content import Content
from dialogs.delivery import Reply, store_reply
from dialogs.due import DueOutcome, DueStatus
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.flows.commands import Action
from dialogs.flows.model import ChoiceStep, ScaleStep
from dialogs.flows.templates import render
from dialogs.followups.checkins import Checkins, quiet_hours
from dialogs.insights.drawing import drawn
from dialogs.link.partner import InviteLink, PartnerLinks, is_link_payload, is_link_start
from dialogs.link.store import PARTNER_SIGNAL
from dialogs.listener import ALL_OPTIONS, ASKING, SAID_PREFIX, Listener
from dialogs.matching import clean_input
from dialogs.observer import Observer
from dialogs.payloads import Payload, decode_payload
from dialogs.reflection.group import (
    GroupReflections,
    MemberCheck,
    is_reflection_payload,
    is_reflection_start,
)
from dialogs.runner import SCALE_LABELS, FlowRunner, ResourceText
from dialogs.safety.crisis_state import crisis_active, hold_back
from dialogs.safety.disclosure import note_activity
from dialogs.safety.phrases import PhraseList
from dialogs.safety.screen import SafetyScreen, SafetySignal
from dialogs.store import (
    REFLECTION_TIMER,
    ConversationState,
    FollowUp,
    FollowUpStatus,
    Store,
    StoreSession,
    UserKey,
)
from dialogs.turn import Turn
from dialogs.understanding.base import Reader
from dialogs.understanding.fallback import FallbackPolicy
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        content: Content,
        store: Store,
        clock: Clock,
        safety: SafetyScreen,
        resource_text: ResourceText,
        *,
        timezone: ZoneInfo | None = None,
        delay_scale: float = 1.0,
        postpone_by: timedelta = timedelta(minutes=10),
        abandoned_after: timedelta = timedelta(minutes=30),
        on_followup_scheduled: Callable[[datetime], None] | None = None,
        group_member: MemberCheck | None = None,
        reader: Reader | None = None,
        policy: FallbackPolicy | None = None,
        invite_link: InviteLink | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._content = content
        self._observer = observer
        self._store = store
        self._clock = clock
        self._safety = safety
        self._abandoned_after = abandoned_after
        self._retraction = PhraseList(content.checks.retraction)
        self._asks_if_bot = PhraseList(content.checks.asks_if_bot)
        self._checkins = Checkins(
            content,
            timezone=timezone or ZoneInfo("UTC"),
            delay_scale=delay_scale,
            on_scheduled=on_followup_scheduled,
            postpone_by=postpone_by,
        )
        self._links = PartnerLinks(
            content,
            self._checkins.zone_of,
            quiet_hours,
            invite_link,
            plain=lambda text: safety.screen(text) is None,
        )
        self._flows = FlowRunner(content, resource_text, self._checkins, self._links)
        self._links.starts_flows_with(self._flows.start)
        self._reflections = GroupReflections(
            content,
            store,
            clock,
            safety,
            start_flow=self._flows.start,
            zone_of=self._checkins.zone_of,
            quiet_hours_of=quiet_hours,
            is_member=group_member,
        )
        self._listener = Listener(
            content,
            self._flows,
            resource_text,
            reader=reader,
            policy=policy,
            start_signal=self._signal,
            zone_of=self._checkins.zone_of,
        )

    @property
    def content(self) -> Content:
        return self._content

    # ----------------------------------------------------------------- entry points

    async def handle(self, inbound: Inbound) -> Reply:
        """Handle one inbound event; returns the messages to show, stored as outbox
        rows in the same transaction as the state (`Reply.rows`): send them after."""
        addr = inbound.address
        user = UserKey(addr.platform, addr.user_id)
        kind = "command" if inbound.command else "choice" if inbound.choice else "text"
        event_key = f"{addr.platform}:{inbound.event_id}"
        try:
            async with self._store.session() as session:
                opened = await session.open_event(event_key, inbound.at, user)
                if opened is None:
                    log.info("duplicate event ignored kind=%s user=%s", kind, _ref(user))
                    self._observe(addr.platform, "duplicate")
                    return Reply()
                turn = Turn.opened(session, user, addr.chat_id, inbound.at, event_key, *opened)
                consented = turn.profile.consent_at is not None
                remind = self._note_activity(turn)
                if turn.profile.unreachable_at is not None:
                    # They wrote to us, so they can be reached again.
                    turn.profile = replace(turn.profile, unreachable_at=None)
                await self._dispatch(turn, inbound)
                # The consent text says it all on first contact; a safety reply says it too.
                if remind and consented and not turn.safety_fired and not turn.forgotten:
                    turn.out.insert(0, Outbound(self._content.copy.not_human_reminder))
                reply = await store_reply(
                    session,
                    user,
                    addr,
                    turn.out,
                    turn.at,
                    forgotten=turn.forgotten,
                    turn=turn.turn,
                )
                await self._save(turn)
        except Exception:
            log.exception("event failed kind=%s user=%s", kind, _ref(user))
            self._observe(addr.platform, "failed")
            return Reply([Outbound(self._content.copy.error_apology)])
        self._observe(addr.platform, "handled")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event handled kind=%s user=%s replies=%d", kind, turn.who, len(turn.out))
        self._checkins.announce(turn.scheduled)
        return await drawn(reply)  # a chart is drawn only once the turn has committed

    async def greet(self, address: Address) -> list[Outbound]:
        """What to show when a person opens a session (the console starting): the
        question they left off at, the welcome on first contact, else the idle menu."""
        user = UserKey(address.platform, address.user_id)
        now = self._clock.now()
        async with self._store.session() as session:
            turn = await self._open(session, user, address.chat_id, now, "")
            consented = turn.profile.consent_at is not None
            remind = self._note_activity(turn)
            if turn.flow_id is not None and self._flows.current_step(turn) is not None:
                turn.out.append(Outbound(self._content.copy.welcome_back))
                self._flows.reprompt(turn)
            elif turn.flow_id is not None:
                await self._flows.recover(turn)
            elif turn.turn == 0 or not consented:
                await self._flows.start(turn, self._start_or_check(turn))
            else:
                self._flows.idle_menu(turn)
            await self._save(turn)
        if remind and consented:
            return [Outbound(self._content.copy.not_human_reminder), *turn.out]
        return turn.out

    def _observe(self, platform: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer.event(platform, outcome)

    async def start_due(self, followup: FollowUp) -> DueOutcome:
        """Start a claimed follow-up's flow, unless it is late, held back after a
        crisis, no longer consented to, or the person is busy."""
        outcome = await self._start_due(followup)
        if self._observer is not None:
            late = None
            if outcome.status is DueStatus.DELIVERED:
                late = max(0.0, (self._clock.now() - followup.due_at).total_seconds())
            self._observer.followup(followup.user.platform, outcome.status.value, late)
        return outcome

    async def _start_due(self, followup: FollowUp) -> DueOutcome:
        now = self._clock.now()
        address = Address(followup.user.platform, followup.user.user_id, followup.chat_id, True)
        async with self._store.session() as session:
            # The row again, under the owner's lock: still ours to run? With it, in
            # the same read, their profile (and for the store, their conversation).
            opened = await session.open_followup(followup.id)
            if opened is None or opened[0].status is not FollowUpStatus.CLAIMED:
                return DueOutcome(DueStatus.SKIPPED)
            current, profile = opened
            if current.kind in (REFLECTION_TIMER, PARTNER_SIGNAL):
                # A group's clock, or a signal after quiet hours: their own rules apply.
                if current.kind == PARTNER_SIGNAL:
                    posts = await self._links.due(session, current, now)
                else:
                    posts = await self._reflections.timer_due(session, current)
                    address = Address(followup.user.platform, "", followup.chat_id, False)
                if not posts:
                    return DueOutcome(DueStatus.SKIPPED)
                rows = await session.queue_followup(current.id, address, posts, now)
                return DueOutcome(DueStatus.DELIVERED, address, tuple(posts), tuple(rows))
            flow = self._content.flows.get(current.flow_id)
            # A push-pull reminder arriving unasked for someone who may be unsafe
            # could be read over their shoulder, and only nudges toward the partner:
            # cancel it quietly, as after a crisis signal.
            unsafe_now = profile.unsafe and (flow is None or flow.reframes)
            if (
                profile.consent_at is None
                or profile.unreachable_at is not None
                or unsafe_now
                or hold_back(current, profile, now)
            ):
                await session.set_followup_status(current.id, FollowUpStatus.CANCELLED, now)
                log.info("follow-up held back id=%d flow=%s", current.id, current.flow_id)
                if profile.consent_at is not None and profile.unreachable_at is None:
                    await self._checkins.after_handled(session, current, profile, now)
                return DueOutcome(DueStatus.SKIPPED)
            turn = await self._open(
                session, current.user, current.chat_id, now, f"followup:{current.id}"
            )
            busy = self._is_busy(turn.state(), turn.updated_at, now)
            # Never interrupt someone mid-flow, never in their quiet hours.
            later = self._checkins.not_now(profile, now, busy=busy)
            if max(now, later or now) > current.expires_at:
                await session.set_followup_status(current.id, FollowUpStatus.MISSED, now)
                log.info("follow-up missed id=%d flow=%s", current.id, current.flow_id)
                await self._checkins.after_handled(session, current, profile, now)
                return DueOutcome(DueStatus.MISSED)
            if later is not None:
                await session.postpone_followup(current.id, later)
                return DueOutcome(DueStatus.POSTPONED)
            turn.idle()
            await self._flows.start(turn, current.flow_id)
            await self._save(turn)
            # The messages become outbox rows in this transaction, and the follow-up is
            # done: the outbox owes them now, and re-sends them after a crash.
            rows = await session.queue_followup(current.id, address, turn.out, now, turn=turn.turn)
            await self._checkins.after_handled(session, current, turn.profile, now)
        self._checkins.announce(turn.scheduled)
        return DueOutcome(DueStatus.DELIVERED, address, tuple(turn.out), tuple(rows))

    async def move_reflection(self, platform: str, from_chat: str, to_chat: str) -> bool:
        """The adapter opened a thread for the reflection running in `from_chat`:
        from now on its group posts go to `to_chat`. False if none is running."""
        return await self._reflections.move(platform, from_chat, to_chat)

    # ----------------------------------------------------------------- open and save

    async def _open(
        self, session: StoreSession, user: UserKey, chat_id: str, at: datetime, event_key: str
    ) -> Turn:
        state = await session.load_state(user, at)
        profile = await session.load_profile(user)
        return Turn.opened(session, user, chat_id, at, event_key, state, profile)

    async def _save(self, turn: Turn) -> None:
        if turn.forgotten:
            return
        await turn.session.save_turn(turn.user, turn.state(), turn.profile, turn.at)

    def _note_activity(self, turn: Turn) -> bool:
        turn.profile, remind = note_activity(turn.profile, turn.at)
        return remind

    def _start_or_check(self, turn: Turn) -> str:
        # For a day after a crisis signal, /start checks on the person first.
        return "crisis_again" if crisis_active(turn.profile, turn.at) else "start"

    # ----------------------------------------------------------------- screen and dispatch

    async def _dispatch(self, turn: Turn, inbound: Inbound) -> None:
        turn.private = inbound.address.is_private
        turn.facilitator = inbound.facilitator
        said = ""
        if inbound.text is not None:
            said = clean_input(inbound.text)
        elif inbound.command is not None:
            said = " ".join(inbound.command.args)
        if said and await self._screen(turn, said, typed=inbound.text is not None):
            return
        if inbound.command is not None:
            await self._command(turn, inbound.command)
        elif inbound.choice is not None:
            await self._press(turn, inbound.choice)
        else:
            await self._typed(turn, said)

    async def _screen(self, turn: Turn, said: str, *, typed: bool) -> bool:
        """The safety screen, before any flow step. True when it answered.

        Two tiers: phrase rules act at once; for typed text, a reader that finds
        danger or crisis likely but not certain makes the guide ask one question."""
        finding = self._safety.screen(said)
        if finding is not None:
            await self._signal(turn, str(finding.signal))
            return True
        if not typed:
            return False
        if crisis_active(turn.profile, turn.at) and self._retraction.found_in(said):
            # "You got me wrong" does not clear a crisis signal: check gently again.
            turn.safety_fired = True
            turn.idle()
            await self._flows.start(turn, "crisis_again")
            return True
        if self._asks_if_bot.found_in(said):
            turn.out.append(Outbound(self._content.copy.not_human_answer))
            self._flows.reprompt(turn)
            return True
        turn.reading = await self._listener.read(turn, said)
        concern = self._listener.concern(turn, said, turn.reading)
        if concern is not None and ASKING not in turn.variables:
            turn.safety_fired = True
            self._listener.ask_concern(turn, concern)
            return True
        return False

    async def _signal(self, turn: Turn, signal: str) -> None:
        """A crisis or danger signal: the running flow stops and its own flow starts."""
        log.info("safety signal=%s user=%s", signal, turn.who)
        turn.safety_fired = True
        if signal == SafetySignal.CRISIS:
            turn.profile = replace(turn.profile, crisis_at=turn.at)
        else:
            turn.profile = replace(turn.profile, unsafe=True)
        turn.idle()
        await self._flows.start(turn, signal)

    async def _command(self, turn: Turn, command: Command) -> None:
        turn.variables.pop(ASKING, None)
        if is_reflection_start(command):
            await self._reflections.start_link(turn, command.args[0])
            return
        if command.name == "start" and is_link_start(command.args):
            await self._links.open_code(turn, command.args[0])
            return
        spec = self._content.commands.get(command.name.casefold())
        if spec is None:
            turn.out.append(
                Outbound(render(self._content.copy.unknown_command, {"command": command.name}))
            )
            self._flows.reprompt(turn)
            return
        if spec.action is Action.STOP:
            await self._listener.stop_command(turn, command.args)
        elif spec.action is Action.SCHEDULE:
            await self._checkins.list_planned(turn)
        elif spec.action is Action.REFLECT:
            await self._reflections.command(turn, command.args)
        elif spec.action in (Action.LINK, Action.UNLINK):
            await self._links.command(turn, spec.action, command.args)
        elif spec.flow == "start":
            await self._flows.start(turn, self._start_or_check(turn))
        elif spec.flow is not None:
            await self._flows.start(turn, spec.flow)

    async def _press(self, turn: Turn, raw: str) -> None:
        if raw.startswith("/") and len(raw) > 1:
            # Shortcut buttons outside flows (the idle menu, the reflection picker)
            # carry a command.
            name, *args = raw[1:].split()
            await self._command(turn, Command(name, tuple(args)))
            return
        if await self._listener.answer(turn, raw):
            return
        turn.variables.pop(ASKING, None)
        if raw.startswith(SAID_PREFIX):
            self._listener.say_intent(turn, raw.removeprefix(SAID_PREFIX))
            return
        if is_reflection_payload(raw):
            await self._reflections.press(turn, raw)
            return
        if is_link_payload(raw):
            await self._links.press(turn, raw)
            return
        if raw.startswith("cancel:"):
            await self._checkins.cancel_one(turn, raw.removeprefix("cancel:"))
            return
        payload = decode_payload(raw)
        step = self._flows.current_step(turn)
        if payload is not None and step is not None and _same_step(payload, turn):
            if payload.option == ALL_OPTIONS:
                self._flows.reprompt(turn)
                return
            if isinstance(step, ChoiceStep):
                index = self._flows.pressed(turn, step, payload.option)
                if index is not None:
                    await self._flows.choose(turn, step, index)
                    return
            elif isinstance(step, ScaleStep) and payload.option in SCALE_LABELS:
                await self._flows.rate(turn, step, int(payload.option))
                return
        turn.out.append(Outbound(self._content.copy.stale_button))
        self._flows.reprompt(turn)

    async def _typed(self, turn: Turn, text: str) -> None:
        copy = self._content.copy
        if await self._listener.typed_answer(turn, text):
            return
        if await self._reflections.typed(turn, text):
            return
        if turn.flow_id is None:
            if not text:
                turn.out.append(Outbound(copy.empty_message))
                self._flows.idle_menu(turn)
                return
            await self._listener.idle_text(turn, turn.reading)
            return
        step = self._flows.current_step(turn)
        if step is None:
            await self._flows.recover(turn)
            return
        if not text:
            turn.out.append(Outbound(copy.empty_message))
            self._flows.reprompt(turn)
            return
        if self._listener.wants_stop(turn, step, text, turn.reading):
            self._listener.confirm_stop(turn)
            return
        if (
            isinstance(step, ChoiceStep)
            and step.other is None
            and self._flows.match_choice(turn, step, text) is None
        ):
            await self._listener.unmatched_choice(turn, step, text)
            return
        await self._flows.answer_text(turn, step, text)

    def _is_busy(self, state: ConversationState, updated: datetime | None, now: datetime) -> bool:
        if state.flow_id is None:
            return False
        return updated is None or now - updated < self._abandoned_after


def _ref(user: UserKey) -> str:
    return user_ref(user.platform, user.user_id)


def _same_step(payload: Payload, turn: Turn) -> bool:
    return (payload.flow, payload.step, payload.turn) == (turn.flow_id, turn.step_id, turn.turn)
