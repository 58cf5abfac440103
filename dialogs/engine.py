"""The dialog engine: one inbound event in, the replies out, one transaction between.

Order of work for every inbound event, on every path:
1. de-duplicate by event id (a redelivered event changes nothing);
2. the safety screen, before any flow step (a crisis or danger signal is answered
   by its own flow, and the running flow stops);
3. a command, a button press or typed text moves the conversation;
4. state, journal, follow-ups and the processed event id commit together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialogs.clock import Clock
from dialogs.content import Content
from dialogs.events import Address, Attachment, Choice, Command, Inbound, Outbound
from dialogs.flows.branching import choose_branch
from dialogs.flows.commands import Action
from dialogs.flows.model import (
    PROFILE_VARIABLES,
    ROLES,
    ActionStep,
    AskStep,
    BranchStep,
    ChoiceStep,
    EndStep,
    Flow,
    HandoffStep,
    MessageStep,
    RememberStep,
    ScaleStep,
    ScheduleStep,
    Step,
)
from dialogs.flows.templates import render, template_fields
from dialogs.flows.typed_values import parse_time_of_day, parse_zone
from dialogs.followups.times import (
    DEFAULT_QUIET,
    after_quiet_hours,
    next_local_time,
    next_weekly_time,
)
from dialogs.matching import clean_input, match_option, parse_number
from dialogs.payloads import Payload, decode_payload, encode_payload
from dialogs.reflection.group import (
    Reflections,
    ReflectionTurn,
    is_reflection_payload,
    is_reflection_start,
)
from dialogs.safety.crisis_state import crisis_active, hold_back
from dialogs.safety.disclosure import note_activity
from dialogs.safety.gates import gate_before
from dialogs.safety.phrases import PhraseList
from dialogs.safety.screen import SafetyScreen, SafetySignal
from dialogs.store import (
    REFLECTION_TIMER,
    ConversationState,
    FollowUp,
    FollowUpRequest,
    FollowUpStatus,
    Profile,
    Store,
    StoreSession,
    UserKey,
    VarValue,
)
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

# A flow that runs this many steps without waiting is broken; the content check
# rejects silent loops, so this only guards against a bug in the engine itself.
_MAX_STEPS_PER_TURN = 200
SCALE_LABELS = tuple(str(n) for n in range(11))


class DueStatus(StrEnum):
    DELIVERED = "delivered"
    POSTPONED = "postponed"
    MISSED = "missed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DueOutcome:
    status: DueStatus
    address: Address | None = None
    messages: tuple[Outbound, ...] = ()


@dataclass(slots=True)
class _Turn:
    """The working copy of one person's conversation while an event is handled."""

    session: StoreSession
    user: UserKey
    chat_id: str
    at: datetime
    event_key: str
    flow_id: str | None
    step_id: str | None
    variables: dict[str, VarValue]
    turn: int
    version: str
    profile: Profile = field(default_factory=Profile)
    updated_at: datetime | None = None
    out: list[Outbound] = field(default_factory=list)
    scheduled: list[datetime] = field(default_factory=list)
    # Set once everything about the person is deleted: nothing may be written back.
    forgotten: bool = False
    safety_fired: bool = False
    # Where the event happened: a private chat or a group, and whether the platform
    # says the person may run group reflections there.
    private: bool = True
    facilitator: bool = False

    def state(self) -> ConversationState:
        return ConversationState(
            flow_id=self.flow_id,
            node_id=self.step_id,
            variables=dict(self.variables),
            turn=self.turn,
            content_version=self.version,
            chat_id=self.chat_id,
        )

    def idle(self) -> None:
        # Dropping the variables is what keeps free-text answers out of the store
        # once a flow is over.
        self.flow_id = None
        self.step_id = None
        self.variables = {}
        self.version = ""


# Formats the helplines for a signal ("crisis" or "danger") and a country code (or
# None when unknown) as one message.
ResourceText = Callable[[str, str | None], str]
# Flows whose {resources} the engine fills in, and with which helplines.
RESOURCE_FLOWS = {
    "crisis": "crisis",
    "crisis_again": "crisis",
    "minor": "crisis",
    "danger": "danger",
    "unsafe": "danger",
}
# Starting one of these is a safety referral, counted anonymously.
REFERRAL_FLOWS = ("crisis", "crisis_again", "danger")


class Engine(Reflections):
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
    ) -> None:
        if delay_scale <= 0:
            raise ValueError("delay_scale must be positive")
        self._content = content
        self._store = store
        self._clock = clock
        self._safety = safety
        self._resource_text = resource_text
        self._timezone = timezone or ZoneInfo("UTC")
        self._delay_scale = delay_scale
        self._postpone_by = postpone_by
        self._abandoned_after = abandoned_after
        self._on_scheduled = on_followup_scheduled
        self._retraction = PhraseList(content.checks.retraction)
        self._asks_if_bot = PhraseList(content.checks.asks_if_bot)

    @property
    def content(self) -> Content:
        return self._content

    # ----------------------------------------------------------------- entry points

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """Handle one inbound event; returns the messages to show in its chat."""
        addr = inbound.address
        user = UserKey(addr.platform, addr.user_id)
        kind = "command" if inbound.command else "choice" if inbound.choice else "text"
        event_key = f"{addr.platform}:{inbound.event_id}"
        try:
            async with self._store.session() as session:
                opened = await session.open_event(event_key, inbound.at, user)
                if opened is None:
                    log.info("duplicate event ignored kind=%s user=%s", kind, user_ref(*_k(user)))
                    return []
                turn = _turn_of(session, user, addr.chat_id, inbound.at, event_key, *opened)
                consented = turn.profile.consent_at is not None
                remind = self._note_activity(turn)
                if turn.profile.unreachable_at is not None:
                    # They wrote to us, so they can be reached again.
                    turn.profile = replace(turn.profile, unreachable_at=None)
                await self._dispatch(turn, inbound)
                await self._close_turn(turn)
        except Exception:
            log.exception("event failed kind=%s user=%s", kind, user_ref(*_k(user)))
            return [Outbound(self._content.copy.error_apology)]
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "event handled kind=%s user=%s replies=%d", kind, user_ref(*_k(user)), len(turn.out)
            )
        self._announce(turn)
        # The consent text says it all on first contact; a safety reply says it too.
        if remind and consented and not turn.safety_fired and not turn.forgotten:
            return [Outbound(self._content.copy.not_human_reminder), *turn.out]
        return turn.out

    async def greet(self, address: Address) -> list[Outbound]:
        """What to show when a person opens a session (the console starting): the
        question they left off at, the welcome on first contact, else the idle menu."""
        user = UserKey(address.platform, address.user_id)
        now = self._clock.now()
        async with self._store.session() as session:
            turn = await self._open_turn(session, user, address.chat_id, now, "")
            consented = turn.profile.consent_at is not None
            remind = self._note_activity(turn)
            if turn.flow_id is not None and self._current_step(turn) is not None:
                turn.out.append(Outbound(self._content.copy.welcome_back))
                self._reprompt(turn)
            elif turn.flow_id is not None:
                await self._recover(turn)
            elif turn.turn == 0 or not consented:
                await self._start_flow(turn, self._start_or_check(turn))
            else:
                self._idle_menu(turn)
            await self._close_turn(turn)
        if remind and consented:
            return [Outbound(self._content.copy.not_human_reminder), *turn.out]
        return turn.out

    async def start_due(self, followup: FollowUp) -> DueOutcome:
        """Start a claimed follow-up's flow, unless it is late, held back after a
        crisis, no longer consented to, or the person is busy."""
        now = self._clock.now()
        address = Address(followup.user.platform, followup.user.user_id, followup.chat_id, True)
        async with self._store.session() as session:
            current = await session.get_followup(followup.id)
            if current is None or current.status is not FollowUpStatus.CLAIMED:
                return DueOutcome(DueStatus.SKIPPED)
            if current.kind == REFLECTION_TIMER:
                # The group's clock, not a message for the facilitator: none of the
                # personal checks below apply.
                posts = await self._reflection_timer(session, current)
                if not posts:
                    return DueOutcome(DueStatus.SKIPPED)
                await session.mark_delivering(current.id, posts, now)
                group = Address(followup.user.platform, "", followup.chat_id, False)
                return DueOutcome(DueStatus.DELIVERED, group, tuple(posts))
            profile = await session.load_profile(current.user)
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
                    await self._next_checkin(session, current, profile, now)
                return DueOutcome(DueStatus.SKIPPED)
            if now > current.expires_at:
                await session.set_followup_status(current.id, FollowUpStatus.MISSED, now)
                log.info("follow-up missed id=%d flow=%s", current.id, current.flow_id)
                await self._next_checkin(session, current, profile, now)
                return DueOutcome(DueStatus.MISSED)
            turn = await self._open_turn(
                session, current.user, current.chat_id, now, f"followup:{current.id}"
            )
            if self._is_busy(turn.state(), turn.updated_at, now):
                # Never interrupt someone mid-flow: try again a little later.
                await session.postpone_followup(current.id, now + self._postpone_by)
                return DueOutcome(DueStatus.POSTPONED)
            turn.idle()
            await self._start_flow(turn, current.flow_id)
            await self._close_turn(turn)
            # Not SENT yet: the dispatcher marks that after the platform accepted the
            # messages. Stored here, they can be re-sent if we crash before then.
            await session.mark_delivering(current.id, turn.out, now)
            await self._next_checkin(session, current, turn.profile, now)
        self._announce(turn)
        return DueOutcome(DueStatus.DELIVERED, address, tuple(turn.out))

    # ----------------------------------------------------------------- turns

    async def _open_turn(
        self, session: StoreSession, user: UserKey, chat_id: str, at: datetime, event_key: str
    ) -> _Turn:
        state = await session.load_state(user, at)
        profile = await session.load_profile(user)
        return _turn_of(session, user, chat_id, at, event_key, state, profile)

    async def _close_turn(self, turn: _Turn) -> None:
        if turn.forgotten:
            return
        await turn.session.save_turn(turn.user, turn.state(), turn.profile, turn.at)

    def _note_activity(self, turn: _Turn) -> bool:
        turn.profile, remind = note_activity(turn.profile, turn.at)
        return remind

    def _start_or_check(self, turn: _Turn) -> str:
        # For a day after a crisis signal, /start checks on the person first.
        return "crisis_again" if crisis_active(turn.profile, turn.at) else "start"

    # ----------------------------------------------------------------- routing

    async def _dispatch(self, turn: _Turn, inbound: Inbound) -> None:
        turn.private = inbound.address.is_private
        turn.facilitator = inbound.facilitator
        said = ""
        if inbound.text is not None:
            said = clean_input(inbound.text)
        elif inbound.command is not None:
            said = " ".join(inbound.command.args)
        finding = self._safety.screen(said) if said else None
        if finding is not None:
            log.info("safety signal=%s user=%s", finding.signal, user_ref(*_k(turn.user)))
            turn.safety_fired = True
            if finding.signal is SafetySignal.CRISIS:
                turn.profile = replace(turn.profile, crisis_at=turn.at)
            else:
                turn.profile = replace(turn.profile, unsafe=True)
            turn.idle()
            await self._start_flow(turn, str(finding.signal))
            return
        if inbound.text is not None and said:
            if crisis_active(turn.profile, turn.at) and self._retraction.found_in(said):
                # "You got me wrong" does not clear a crisis signal: check gently again.
                turn.safety_fired = True
                turn.idle()
                await self._start_flow(turn, "crisis_again")
                return
            if self._asks_if_bot.found_in(said):
                turn.out.append(Outbound(self._content.copy.not_human_answer))
                self._reprompt(turn)
                return
        if inbound.command is not None:
            await self._command(turn, inbound.command)
        elif inbound.choice is not None:
            await self._press(turn, inbound.choice)
        else:
            await self._typed(turn, said)

    async def _command(self, turn: _Turn, command: Command) -> None:
        if is_reflection_start(command):
            await self._reflect_start_link(turn, command.args[0])
            return
        spec = self._content.commands.get(command.name.casefold())
        if spec is None:
            turn.out.append(
                Outbound(render(self._content.copy.unknown_command, {"command": command.name}))
            )
            self._reprompt(turn)
            return
        if spec.action is Action.STOP:
            await self._stop(turn, command.args)
        elif spec.action is Action.SCHEDULE:
            await self._list_schedule(turn)
        elif spec.action is Action.REFLECT:
            await self._reflect_command(turn, command.args)
        elif spec.flow == "start":
            await self._start_flow(turn, self._start_or_check(turn))
        elif spec.flow is not None:
            await self._start_flow(turn, spec.flow)

    async def _stop(self, turn: _Turn, args: tuple[str, ...] = ()) -> None:
        copy = self._content.copy
        if args and args[0].casefold() in ("checkins", "checkin", "check-ins"):
            cancelled = await turn.session.cancel_followups(turn.user, kind="checkin")
            turn.profile = replace(turn.profile, checkin_cadence=None)
            turn.out.append(Outbound(copy.checkins_stopped, private_only=True))
            log.info("check-ins stopped cancelled=%d", cancelled)
            return
        was_running = turn.flow_id is not None
        cancelled = await turn.session.cancel_followups(turn.user)
        turn.idle()
        # What someone had planned is theirs alone: never for a group to read.
        if cancelled:
            text = render(copy.stopped_with_followups, {"count": cancelled})
            turn.out.append(Outbound(text, private_only=True))
        elif was_running:
            turn.out.append(Outbound(copy.stopped, private_only=True))
        else:
            turn.out.append(Outbound(copy.nothing_to_stop, private_only=True))

    async def _press(self, turn: _Turn, raw: str) -> None:
        if raw.startswith("/") and len(raw) > 1:
            # Shortcut buttons outside flows (the idle menu, the reflection picker)
            # carry a command.
            name, *args = raw[1:].split()
            await self._command(turn, Command(name, tuple(args)))
            return
        if is_reflection_payload(raw):
            await self._reflect_press(turn, raw)
            return
        if raw.startswith("cancel:"):
            await self._cancel_one(turn, raw.removeprefix("cancel:"))
            return
        payload = decode_payload(raw)
        step = self._current_step(turn)
        if payload is None or step is None or not _same_step(payload, turn):
            turn.out.append(Outbound(self._content.copy.stale_button))
            self._reprompt(turn)
            return
        if isinstance(step, ChoiceStep):
            option = next((o for o in step.options if o.id == payload.option), None)
            if option is not None:
                await self._choose(turn, step, step.options.index(option))
                return
        elif isinstance(step, ScaleStep) and payload.option in SCALE_LABELS:
            await self._rate(turn, step, int(payload.option))
            return
        turn.out.append(Outbound(self._content.copy.stale_button))
        self._reprompt(turn)

    async def _typed(self, turn: _Turn, text: str) -> None:
        copy = self._content.copy
        if await self._reflect_typed(turn, text):
            return
        if turn.flow_id is None:
            if not text:
                turn.out.append(Outbound(copy.empty_message))
            self._idle_menu(turn)
            return
        step = self._current_step(turn)
        if step is None:
            await self._recover(turn)
            return
        if not text:
            turn.out.append(Outbound(copy.empty_message))
            self._reprompt(turn)
            return
        if isinstance(step, ChoiceStep):
            index = match_option(
                text, [[o.label, o.id.replace("_", " "), *o.aliases] for o in step.options]
            )
            if index is None and step.other is not None:
                index = [o.id for o in step.options].index(step.other)
            if index is None:
                turn.out.append(Outbound(copy.didnt_catch))
                self._reprompt(turn)
                return
            await self._choose(turn, step, index)
        elif isinstance(step, ScaleStep):
            number = parse_number(text)
            if number is None or not 0 <= number <= 10:
                turn.out.append(Outbound(copy.scale_reprompt))
                self._reprompt(turn)
                return
            await self._rate(turn, step, number)
        elif isinstance(step, AskStep) and step.expect != "text":
            value = _understood(step.expect, text)
            if value is None:
                key = "expect_time" if step.expect == "time" else "expect_zone"
                turn.out.append(Outbound(getattr(copy, key)))
                self._reprompt(turn)
                return
            turn.variables[step.save_as] = value
            await self._run(turn, step.next)
        elif isinstance(step, AskStep):
            if len(text) > step.max_length:
                turn.out.append(Outbound(render(copy.trimmed_answer, {"limit": step.max_length})))
                text = text[: step.max_length]
            # Free text is kept only when this flow uses it; an answer written just to
            # get it out of one's head (an unsent draft) never reaches the store.
            if step.save_as in self._flow(turn).read_variables:
                turn.variables[step.save_as] = text
            await self._run(turn, step.next)
        else:
            await self._recover(turn)

    # ----------------------------------------------------------------- answers

    async def _choose(self, turn: _Turn, step: ChoiceStep, index: int) -> None:
        option = step.options[index]
        if step.save_as:
            turn.variables[step.save_as] = option.id
        turn.variables.update(option.set)
        await self._journal(turn, step.id, "choice", option.id)
        await self._run(turn, option.next)

    async def _rate(self, turn: _Turn, step: ScaleStep, value: int) -> None:
        turn.variables[step.save_as] = value
        await self._journal(turn, step.id, "rating", str(value))
        await self._run(turn, step.next)

    async def _journal(self, turn: _Turn, step_id: str, kind: str, value: str) -> None:
        # Some answers must never be kept (the safety screen's): their flow says so.
        flow = self._flow(turn)
        if flow.journal:
            await turn.session.append_journal(turn.user, turn.at, flow.id, step_id, kind, value)

    # ----------------------------------------------------------------- running flows

    async def _start_flow(self, turn: _Turn, flow_id: str) -> None:
        """Start `flow_id`, or first the gate it needs (consent, the safety screen...),
        which resumes `flow_id` when it is through."""
        flow = self._content.flows[flow_id]
        variables: dict[str, VarValue] = dict(flow.variables)
        gate = gate_before(flow, turn.profile)
        if gate is not None:
            flow = self._content.flows[gate]
            variables = {**flow.variables, "then": flow_id}
        if "commands" in flow.variables:
            # Help lists the commands from the one list the menus use, so it cannot drift.
            variables["commands"] = "\n".join(
                f"/{c.name}: {c.description}" for c in self._content.commands.menu()
            )
        for name in PROFILE_VARIABLES:
            known = getattr(turn.profile, name)
            if name in flow.variables and known is not None:
                variables[name] = known
        signal = RESOURCE_FLOWS.get(flow.id)
        if signal is not None:
            variables["resources"] = self._resource_text(signal, turn.profile.country)
        if flow.id in REFERRAL_FLOWS and signal is not None:
            await turn.session.count_referral(turn.at.date(), turn.profile.country, signal)
        turn.flow_id = flow.id
        turn.variables = variables
        turn.version = self._content.versions[flow.id]
        await self._run(turn, flow.start_id)

    async def _run(self, turn: _Turn, step_id: str) -> None:
        for _ in range(_MAX_STEPS_PER_TURN):
            flow = self._flow(turn)
            step = flow.step(step_id)
            if step is None:
                raise RuntimeError(f"flow {flow.id!r} has no step {step_id!r}")
            texts = [render(t, turn.variables) for t in step.text]
            private = flow.private
            if isinstance(step, ChoiceStep | ScaleStep | AskStep):
                turn.turn += 1
                turn.step_id = step.id
                self._present(turn, step, texts, private)
                return
            if isinstance(step, ActionStep) and step.do == "export":
                await self._export(turn, texts)
                assert step.next is not None
                step_id = step.next
                continue
            turn.out.extend(Outbound(t, private_only=private) for t in texts)
            if isinstance(step, MessageStep):
                step_id = step.next
            elif isinstance(step, BranchStep):
                step_id = choose_branch(step, turn.variables)
            elif isinstance(step, ScheduleStep):
                await self._schedule(turn, step)
                step_id = step.next
            elif isinstance(step, HandoffStep):
                await self._start_flow(turn, step.flow)
                return
            elif isinstance(step, EndStep):
                turn.idle()
                return
            elif isinstance(step, RememberStep):
                await self._remember(turn, step)
                step_id = step.next
            elif isinstance(step, ActionStep) and step.do == "reschedule_checkins":
                await self._reschedule_checkins(turn)
                assert step.next is not None
                step_id = step.next
            elif isinstance(step, ActionStep) and step.do == "forget":
                await turn.session.forget_user(turn.user)
                log.info("user forgotten user=%s", user_ref(*_k(turn.user)))
                turn.forgotten = True
                turn.idle()
                return
            elif isinstance(step, ActionStep):  # resume
                then = str(turn.variables.get("then", ""))
                turn.idle()
                if then in self._content.flows:
                    await self._start_flow(turn, then)
                return
        raise RuntimeError(f"flow {turn.flow_id!r} ran {_MAX_STEPS_PER_TURN} steps without waiting")

    async def _remember(self, turn: _Turn, step: RememberStep) -> None:
        profile = turn.profile
        for name, value in step.set.items():
            if name == "country":
                code = render(str(value), turn.variables).strip().upper()
                profile = replace(profile, country=None if code in ("", "OTHER") else code)
            elif name == "consent":
                profile = replace(profile, consent_at=turn.at if value is True else None)
                if value is not True:
                    # Withdrawing consent stops every planned message at once.
                    await turn.session.cancel_followups(turn.user)
            elif name == "adult":
                profile = replace(profile, adult=value is True)
            elif name == "unsafe":
                profile = replace(profile, unsafe=value is True)
            elif name == "screened":
                profile = replace(profile, screened=value is True)
            elif name == "role":
                role = render(str(value), turn.variables).strip().lower()
                profile = replace(profile, role=role if role in ROLES else None)
            else:
                profile = _remember_schedule(
                    profile, name, render(str(value), turn.variables), turn.at
                )
        turn.profile = profile

    async def _export(self, turn: _Turn, texts: list[str]) -> None:
        # Save first, so the export holds this very moment too.
        await turn.session.save_profile(turn.user, turn.profile)
        data = await turn.session.export_user(turn.user)
        body = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True).encode()
        text = texts[-1] if texts else self._content.copy.export_ready
        turn.out.extend(Outbound(t, private_only=True) for t in texts[:-1])
        turn.out.append(
            Outbound(
                text,
                private_only=True,
                attachment=Attachment("pausecheck-export.json", body, "application/json"),
            )
        )

    def _present(self, turn: _Turn, step: Step, texts: list[str], private: bool) -> None:
        """Show a waiting step: its texts, the last carrying the buttons."""
        assert turn.flow_id is not None
        labels: list[tuple[str, str]]
        if isinstance(step, ChoiceStep):
            labels = [(o.id, render(o.label, turn.variables)) for o in step.options]
        elif isinstance(step, ScaleStep):
            labels = [(n, n) for n in SCALE_LABELS]
        else:
            labels = []
        choices = tuple(
            Choice(encode_payload(Payload(turn.flow_id, step.id, oid, turn.turn)), label)
            for oid, label in labels
        )
        for text in texts[:-1]:
            turn.out.append(Outbound(text, private_only=private))
        turn.out.append(Outbound(texts[-1], choices=choices, private_only=private))

    def _reprompt(self, turn: _Turn) -> None:
        """Show the current question again, with the same buttons still valid."""
        step = self._current_step(turn)
        if step is None or not isinstance(step, ChoiceStep | ScaleStep | AskStep):
            if turn.flow_id is None:
                self._idle_menu(turn)
            return
        texts = [render(t, turn.variables) for t in step.text]
        self._present(turn, step, texts[-1:], self._flow(turn).private)

    def _idle_menu(self, turn: _Turn) -> None:
        copy = self._content.copy
        turn.out.append(
            Outbound(
                copy.idle,
                choices=(
                    Choice("/pause", copy.idle_pause_label),
                    Choice("/help", copy.idle_help_label),
                ),
            )
        )

    async def _recover(self, turn: _Turn) -> None:
        """The stored step no longer exists (content changed): restart that flow."""
        flow_id = turn.flow_id
        turn.out.append(Outbound(self._content.copy.content_changed))
        turn.idle()
        if flow_id is not None and flow_id in self._content.flows:
            await self._start_flow(turn, flow_id)
        else:
            self._idle_menu(turn)

    async def _schedule(self, turn: _Turn, step: ScheduleStep) -> None:
        if turn.profile.unreachable_at is not None:
            return
        now = turn.at
        zone = self._zone(turn.profile)
        delay = step.delay()
        if delay is not None:
            target = now + delay
        else:
            local = step.local_time()
            assert local is not None
            target = next_local_time(now, local, zone)
        target = after_quiet_hours(target, zone, *_quiet(turn.profile))
        due = self._scaled(now, target)
        request = FollowUpRequest(
            flow_id=step.flow,
            chat_id=turn.chat_id,
            due_at=due,
            expires_at=due + step.expiry() / self._delay_scale,
            dedupe_key=f"{turn.event_key}:{turn.flow_id}:{step.id}",
        )
        if await turn.session.schedule_followup(turn.user, request):
            turn.scheduled.append(due)

    # ----------------------------------------------------------------- check-ins

    def _checkin_occurrence(self, profile: Profile, after: datetime) -> datetime | None:
        """The next recurring check-in after `after` (and after any pause), with quiet
        hours applied; None when no check-in is set."""
        if profile.checkin_cadence not in ("daily", "weekly") or not profile.checkin_time:
            return None
        at = time.fromisoformat(profile.checkin_time)
        zone = self._zone(profile)
        start = max(after, profile.checkin_paused_until or after)
        if profile.checkin_cadence == "weekly":
            occurrence = next_weekly_time(start, profile.checkin_weekday or 0, at, zone)
        else:
            occurrence = next_local_time(start, at, zone)
        return after_quiet_hours(occurrence, zone, *_quiet(profile))

    async def _insert_checkin(
        self, session: StoreSession, user: UserKey, chat_id: str, profile: Profile, now: datetime
    ) -> None:
        occurrence = self._checkin_occurrence(profile, now)
        if occurrence is None or profile.unreachable_at is not None:
            return
        due = self._scaled(now, occurrence)
        request = FollowUpRequest(
            flow_id="checkin_due",
            chat_id=chat_id,
            due_at=due,
            expires_at=due + CHECKIN_LATE_LIMIT / self._delay_scale,
            # One row per occurrence, however often it is computed.
            dedupe_key=f"checkin:{user.platform}:{user.user_id}:{occurrence.isoformat()}",
            kind="checkin",
        )
        if await session.schedule_followup(user, request) and self._on_scheduled is not None:
            self._on_scheduled(due)

    async def _next_checkin(
        self, session: StoreSession, done: FollowUp, profile: Profile, now: datetime
    ) -> None:
        """After an occurrence is handled (sent, missed or held back), plan the next."""
        if done.kind == "checkin":
            await self._insert_checkin(
                session, done.user, done.chat_id, profile, max(now, done.due_at)
            )

    async def _reschedule_checkins(self, turn: _Turn) -> None:
        await turn.session.cancel_followups(turn.user, kind="checkin")
        await self._insert_checkin(turn.session, turn.user, turn.chat_id, turn.profile, turn.at)

    # ----------------------------------------------------------------- /schedule

    async def _list_schedule(self, turn: _Turn) -> None:
        copy = self._content.copy
        pending = await turn.session.pending_followups(turn.user)
        if not pending:
            turn.out.append(Outbound(copy.schedule_empty, private_only=True))
            return
        zone = self._zone(turn.profile)
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

    async def _cancel_one(self, turn: _Turn, raw_id: str) -> None:
        copy = self._content.copy
        ok = raw_id.isdigit() and await turn.session.cancel_followup(turn.user, int(raw_id))
        text = copy.schedule_cancelled if ok else copy.schedule_gone
        turn.out.append(Outbound(text, private_only=True))

    # ----------------------------------------------------------------- helpers

    async def _start_flow_for(self, turn: ReflectionTurn, flow_id: str) -> None:
        assert isinstance(turn, _Turn)
        await self._start_flow(turn, flow_id)

    def _quiet_hours(self, profile: Profile) -> tuple[time, time]:
        return _quiet(profile)

    def _zone(self, profile: Profile) -> ZoneInfo:
        if profile.zone:
            try:
                return ZoneInfo(profile.zone)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("stored zone is not known; using the default")
        return self._timezone

    def _scaled(self, now: datetime, target: datetime) -> datetime:
        # Demo mode shrinks only the wait, so stored times stay real times.
        return now + (target - now) / self._delay_scale

    def _flow(self, turn: _Turn) -> Flow:
        assert turn.flow_id is not None
        return self._content.flows[turn.flow_id]

    def _current_step(self, turn: _Turn) -> Step | None:
        """The step the person is answering, or None when no flow runs or the flow
        changed under them in a way that strands the stored step."""
        if turn.flow_id is None or turn.step_id is None:
            return None
        flow = self._content.flows.get(turn.flow_id)
        if flow is None:
            return None
        step = flow.step(turn.step_id)
        if step is None or not isinstance(step, ChoiceStep | ScaleStep | AskStep):
            return None
        if turn.version != self._content.versions[flow.id]:
            # The flow was edited since this step was shown. Keep going only if the
            # step still exists and everything its text needs is already known.
            needed = {n for t in step.text for n in template_fields(t)}
            if not needed <= set(turn.variables):
                return None
            turn.version = self._content.versions[flow.id]
        return step

    def _is_busy(self, state: ConversationState, updated: datetime | None, now: datetime) -> bool:
        if state.flow_id is None:
            return False
        return updated is None or now - updated < self._abandoned_after

    def _announce(self, turn: _Turn) -> None:
        if self._on_scheduled is not None:
            for due in turn.scheduled:
                self._on_scheduled(due)


CHECKIN_LATE_LIMIT = timedelta(hours=24)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _quiet(profile: Profile) -> tuple[time, time]:
    start = parse_time_of_day(profile.quiet_start or "")
    end = parse_time_of_day(profile.quiet_end or "")
    if start is None or end is None:
        return DEFAULT_QUIET
    return start, end


def _understood(expect: str, text: str) -> str | None:
    if expect == "time":
        parsed = parse_time_of_day(text)
        return parsed.strftime("%H:%M") if parsed else None
    return parse_zone(text)


def _remember_schedule(profile: Profile, name: str, value: str, at: datetime) -> Profile:
    """Profile fields about time: values arrive as text from a flow and are checked
    here, so a bad value leaves the profile as it was."""
    value = value.strip()
    if name == "zone":
        zone = parse_zone(value)
        return replace(profile, zone=zone) if zone else profile
    if name in ("quiet_start", "quiet_end"):
        if value.lower() == "off":
            return replace(profile, quiet_start="00:00", quiet_end="00:00")
        parsed = parse_time_of_day(value)
        if parsed is None:
            return profile
        hhmm = parsed.strftime("%H:%M")
        if name == "quiet_start":
            return replace(profile, quiet_start=hhmm)
        return replace(profile, quiet_end=hhmm)
    if name == "checkin_cadence":
        cadence = value.lower()
        return replace(profile, checkin_cadence=cadence if cadence in ("daily", "weekly") else None)
    if name == "checkin_time":
        parsed = parse_time_of_day(value)
        return replace(profile, checkin_time=parsed.strftime("%H:%M")) if parsed else profile
    if name == "checkin_weekday":
        day = value.lower()
        index = _WEEKDAYS.index(day) if day in _WEEKDAYS else (int(day) if day.isdigit() else -1)
        return replace(profile, checkin_weekday=index) if 0 <= index <= 6 else profile
    if name == "checkin_pause_days":
        days = int(value) if value.isdigit() else 0
        return replace(profile, checkin_paused_until=at + timedelta(days=days) if days else None)
    return profile


def _k(user: UserKey) -> tuple[str, str]:
    return user.platform, user.user_id


def _same_step(payload: Payload, turn: _Turn) -> bool:
    return (payload.flow, payload.step, payload.turn) == (turn.flow_id, turn.step_id, turn.turn)


def _turn_of(
    session: StoreSession,
    user: UserKey,
    chat_id: str,
    at: datetime,
    event_key: str,
    state: ConversationState,
    profile: Profile,
) -> _Turn:
    return _Turn(
        session,
        user,
        chat_id,
        at,
        event_key,
        state.flow_id,
        state.node_id,
        dict(state.variables),
        state.turn,
        state.content_version,
        profile,
        updated_at=state.updated_at,
    )
