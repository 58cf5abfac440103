"""Guided group reflection: `GroupReflections`, a collaborator the engine holds.

A facilitator starts a reflection in a group; the guide posts its title and a Join
button there. Each participant gets every step's prompt privately and answers
privately; an answer reaches the group only when its author presses "share
anonymously", and only after the safety screen. Steps end on a timer, which is a
follow-up row of kind REFLECTION_TIMER (so a restart resumes the same step with the
same time left), or when the facilitator moves them on.

What the group sees carries `Outbound.to` = the group's address and never a name
or an answer that was not shared; everything for one person is `private_only` and
goes to their private chat. The Telegram and Discord adapters route both.

A share is refused when it holds a link or a web address (`has_link`), and only a
member of the group may join (`is_member`, asked of the platform through a callable
the adapters provide; a press inside the group itself proves membership already).

Payloads (all under 64 bytes): `rf:<token>:join`, `rf:<token>:<control>`,
`rf:<token>:a:<step>:<option>`, `rf:<token>:share:<step>`, `rf:<token>:save:<step>`,
`rf:<token>:fu:yes|no`. Telegram's deep link carries `rf_<token>` to `/start`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialogs.clock import Clock
from dialogs.content import Content
from dialogs.events import Address, Choice, Command, Outbound
from dialogs.flows.templates import render
from dialogs.followups.times import after_quiet_hours
from dialogs.matching import match_option, parse_number
from dialogs.reflection.content import Reflection, ReflectionCopy, ReflectionStep
from dialogs.reflection.store import ReflectionAnswer, ReflectionSession, ReflectionStatus
from dialogs.safety.gates import gate_before
from dialogs.safety.screen import SafetyScreen, SafetySignal
from dialogs.store import (
    REFLECTION_TIMER,
    FollowUp,
    FollowUpRequest,
    FollowUpStatus,
    Profile,
    Store,
    StoreSession,
    UserKey,
)
from dialogs.turn import Turn
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

PREFIX = "rf:"
START_PREFIX = "rf_"
DEFAULT_MINUTES = 3
MAX_MINUTES = 30
EXTEND_MINUTES = 2
# An answer is a few words for a reflection, not a journal entry; longer is refused
# (the person still has their message) rather than cut.
MAX_ANSWER = 500
# Fewer than this and counts could single someone out.
MIN_FOR_SUMMARY = 3
# A flow that runs the gates a participant must pass (consent, adults only, the
# danger route, the safety screen) and then says "press Join again".
READY_FLOW = "reflection_ready"
# A timer found this long after its due time (the guide was down) ends the session.
TIMER_LIFETIME = timedelta(hours=12)
CONTROLS = ("next", "pause", "resume", "extend", "end")
# How long the platform may take to say whether a joiner is in the group (this runs
# inside the event's transaction).
MEMBER_CHECK_TIMEOUT = 5.0

# platform, group chat id, user id -> whether they are a member of that group.
MemberCheck = Callable[[str, str, str], Awaitable[bool]]

# Links and web addresses, in every shape a chat shows as one: a scheme, "www.",
# a Markdown link, an invite, a domain with a path, or a bare domain on a common TLD.
_LINK = re.compile(
    r"""(?ix)
    [a-z][a-z0-9+.-]*://            # https://, ftp://, tg://
    | \bwww\.
    | \]\s*\(                        # [text](target)
    | \bt\.me/ | \bdiscord(?:app)?\.(?:gg|com)/
    | \b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}/\S   # host.tld/path
    | \b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|me|ly|gg|app|info|biz|xyz|ru
        |cn|uk|de|fr|link|site|online|top|click|example|sh|to|tk|ml|ga|cf|zip|mov)\b
    """
)


def has_link(text: str) -> bool:
    """Whether a shared answer holds a link or web address (refused, not stripped:
    the person decides what to share instead)."""
    return _LINK.search(text) is not None


class GroupReflections:
    """Everything about group reflections, for the engine to call with a turn.

    Built by the engine with only what it needs: the content, the store (for the
    adapter's thread move, outside any turn), the clock, the safety screen (a shared
    answer is screened again), and three small callables: how to start a flow (a
    joiner's gates, a crisis typed as an answer), a person's zone and quiet hours.
    """

    def __init__(
        self,
        content: Content,
        store: Store,
        clock: Clock,
        safety: SafetyScreen,
        *,
        start_flow: Callable[[Turn, str], Awaitable[None]],
        zone_of: Callable[[Profile], ZoneInfo],
        quiet_hours_of: Callable[[Profile], tuple[time, time]],
        is_member: MemberCheck | None = None,
    ) -> None:
        self._content = content
        self._store = store
        self._clock = clock
        self._safety = safety
        self._start_flow = start_flow
        self._zone = zone_of
        self._quiet_hours = quiet_hours_of
        self._is_member = is_member

    @property
    def _rcopy(self) -> ReflectionCopy:
        copy = self._content.reflection_copy
        assert copy is not None, "content without reflection_copy.yaml does not load"
        return copy

    # ------------------------------------------------------------- entry points

    async def command(self, turn: Turn, args: tuple[str, ...]) -> None:
        """`/reflect [start NAME MINUTES | next | pause | resume | extend | end]`."""
        sub = args[0].casefold() if args else "start"
        if turn.private:
            turn.out.append(Outbound(self._rcopy.only_in_groups))
            return
        session = await turn.session.open_reflection_in(turn.user.platform, turn.chat_id)
        if sub in CONTROLS:
            if session is None:
                turn.out.append(Outbound(self._rcopy.none_running))
                return
            await self._control(turn, session, sub)
            return
        if not turn.facilitator:
            turn.out.append(Outbound(self._rcopy.not_facilitator))
            return
        if session is not None:
            turn.out.append(Outbound(self._rcopy.already_running))
            self._controls(turn, session)
            return
        await self._start(turn, args[1:] if sub == "start" else args)

    async def press(self, turn: Turn, raw: str) -> None:
        parts = raw.removeprefix(PREFIX).split(":")
        session = await turn.session.reflection_by_token(parts[0]) if parts[0] else None
        if session is None or len(parts) < 2:
            turn.out.append(Outbound(self._content.copy.stale_button))
            return
        action = parts[1]
        if action == "join" and len(parts) == 2:
            await self._join(turn, session)
        elif action in CONTROLS and len(parts) == 2:
            await self._control(turn, session, action)
        elif action == "a" and len(parts) == 4:
            await self._answer_choice(turn, session, parts[2], parts[3])
        elif action in ("share", "save") and len(parts) == 3:
            await self._keep_or_share(turn, session, action, parts[2])
        elif action == "fu" and len(parts) == 3 and parts[2] in ("yes", "no"):
            await self._followup_choice(turn, session, parts[2] == "yes")
        else:
            turn.out.append(Outbound(self._content.copy.stale_button))

    async def move(self, platform: str, from_chat: str, to_chat: str) -> bool:
        """The adapter opened a thread for the reflection running in `from_chat`:
        from now on its group posts go to `to_chat`. False if none is running."""
        async with self._store.session() as store:
            session = await store.open_reflection_in(platform, from_chat)
            if session is None:
                return False
            # The timer row keeps the old chat id; nothing reads it, since every
            # post carries the session's address as it is when the step ends.
            await store.update_reflection(replace(session, chat_id=to_chat))
        return True

    async def start_link(self, turn: Turn, payload: str) -> None:
        """`/start rf_<token>`: someone opened the Join link in a private chat."""
        session = await turn.session.reflection_by_token(payload.removeprefix(START_PREFIX))
        if session is None:
            turn.out.append(Outbound(self._rcopy.ended))
            return
        await self._join(turn, session)

    async def typed(self, turn: Turn, text: str) -> bool:
        """A private message may be the answer to the current step of a reflection
        the person joined. True when it was (and is now handled)."""
        if not turn.private or turn.flow_id is not None:
            return False
        for session in await turn.session.reflections_joined(turn.user):
            step = self._step(session)
            if step is None or session.status is not ReflectionStatus.RUNNING:
                continue
            if await turn.session.get_answer(session.id, turn.user, step.id) is not None:
                continue
            if step.kind == "choice":
                index = match_option(
                    text, [[o.label, o.id.replace("_", " ")] for o in step.options]
                )
                if index is None:
                    continue
                await self._save_choice(turn, session, step, step.options[index].id)
                return True
            if not text:
                turn.out.append(Outbound(self._rcopy.empty_answer, private_only=True))
            elif len(text) > MAX_ANSWER:
                copy = render(self._rcopy.too_long, {"limit": MAX_ANSWER})
                turn.out.append(Outbound(copy, private_only=True))
            else:
                await self._save(turn, session, step, None, text, None)
            return True
        return False

    async def timer_due(self, session: StoreSession, followup: FollowUp) -> list[Outbound]:
        """A step's time is up. Returns what to send (every message carries `to`); an
        outdated timer (the facilitator moved on, paused or extended) does nothing."""
        now = self._clock.now()
        reflection = await session.reflection_by_token(_timer_token(followup.flow_id))
        if (
            reflection is None
            or reflection.status is not ReflectionStatus.RUNNING
            or reflection.timer != followup.flow_id
        ):
            await session.set_followup_status(followup.id, FollowUpStatus.CANCELLED, now)
            return []
        out: list[Outbound] = []
        if now > followup.due_at + TIMER_LIFETIME:
            log.info("reflection timer found long after due; ending session=%d", reflection.id)
            await self._end(session, reflection, now, out)
        else:
            await self._advance(session, reflection, now, out)
        return out

    # ------------------------------------------------------------- starting

    async def _start(self, turn: Turn, args: tuple[str, ...]) -> None:
        reflections = self._content.reflections
        minutes = DEFAULT_MINUTES
        words: list[str] = []
        for word in args:
            number = parse_number(word)
            if number is not None and word.strip().isdigit():
                minutes = max(1, min(MAX_MINUTES, number))
            else:
                words.append(word)
        chosen: Reflection | None = None
        if words:
            ordered = list(reflections.values())
            index = match_option(
                " ".join(words), [[r.id, r.title, r.id.replace("_", " ")] for r in ordered]
            )
            if index is None:
                turn.out.append(Outbound(self._rcopy.unknown_reflection))
            else:
                chosen = ordered[index]
        if chosen is None:
            turn.out.append(
                Outbound(
                    render(self._rcopy.picker, {"minutes": minutes}),
                    choices=tuple(
                        Choice(f"/reflect start {r.id} {minutes}", r.title)
                        for r in reflections.values()
                    ),
                )
            )
            return
        session = await turn.session.create_reflection(
            token=secrets.token_urlsafe(6),
            platform=turn.user.platform,
            chat_id=turn.chat_id,
            reflection_id=chosen.id,
            facilitator=turn.user,
            minutes=minutes,
            at=turn.at,
        )
        log.info("reflection started session=%d reflection=%s", session.id, chosen.id)
        copy = self._rcopy
        group = _group(session)
        opened = render(
            copy.opened,
            {
                "title": chosen.title,
                "intro": chosen.intro,
                "steps": len(chosen.steps),
                "minutes": minutes,
            },
        )
        join = Choice(
            f"{PREFIX}{session.token}:join",
            copy.join_label,
            start_payload=f"{START_PREFIX}{session.token}",
        )
        turn.out.append(Outbound(opened, choices=(join,), to=group, thread=chosen.title))
        session = await self._begin_step(turn.session, session, 0, turn.at, turn.out)
        self._controls(turn, session)

    def _controls(self, turn: Turn, session: ReflectionSession) -> None:
        copy = self._rcopy
        labels = {
            "next": copy.next_label,
            "pause": copy.pause_label,
            "resume": copy.resume_label,
            "extend": copy.extend_label,
            "end": copy.end_label,
        }
        shown = ["next", "resume" if session.status is ReflectionStatus.PAUSED else "pause"]
        shown += ["extend", "end"]
        turn.out.append(
            Outbound(
                copy.controls,
                choices=tuple(Choice(f"{PREFIX}{session.token}:{c}", labels[c]) for c in shown),
            )
        )

    # ------------------------------------------------------------- joining

    async def _join(self, turn: Turn, session: ReflectionSession) -> None:
        copy = self._rcopy
        if session.status is ReflectionStatus.ENDED:
            turn.out.append(Outbound(copy.ended, private_only=True))
            return
        reflection = self._content.reflections.get(session.reflection_id)
        if reflection is None:
            turn.out.append(Outbound(copy.ended, private_only=True))
            return
        # Consent, adults only, the danger route and the safety screen come first,
        # as before any reframe: the gates' own flow runs them.
        if gate_before(self._content.flows[READY_FLOW], turn.profile) is not None:
            join = Choice(
                f"{PREFIX}{session.token}:join",
                copy.join_label,
                start_payload=f"{START_PREFIX}{session.token}",
            )
            turn.out.append(Outbound(copy.join_needs_consent, choices=(join,), private_only=True))
            await self._start_flow(turn, READY_FLOW)
            return
        if not await self._member_of_group(turn, session):
            log.info("reflection join refused, not a member session=%d", session.id)
            turn.out.append(Outbound(copy.not_member, private_only=True))
            return
        private_chat = turn.chat_id if turn.private else turn.user.user_id
        added = await turn.session.add_participant(session.id, turn.user, private_chat, turn.at)
        if added:
            log.info("reflection joined session=%d user=%s", session.id, _ref(turn.user))
            turn.out.append(
                Outbound(render(copy.joined, {"title": reflection.title}), private_only=True)
            )
        else:
            turn.out.append(Outbound(copy.already_joined, private_only=True))
        step = self._step(session)
        if step is not None:
            turn.out.append(self._prompt(session, reflection, step))

    # ------------------------------------------------------------- answers

    async def _answer_choice(
        self, turn: Turn, session: ReflectionSession, index: str, option_id: str
    ) -> None:
        step = await self._answerable(turn, session, index)
        if step is None:
            return
        if option_id not in {o.id for o in step.options}:
            turn.out.append(Outbound(self._content.copy.stale_button, private_only=True))
            return
        await self._save_choice(turn, session, step, option_id)

    async def _save_choice(
        self, turn: Turn, session: ReflectionSession, step: ReflectionStep, option_id: str
    ) -> None:
        option = next(o for o in step.options if o.id == option_id)
        await self._save(turn, session, step, option.id, None, option.tally)

    async def _save(
        self,
        turn: Turn,
        session: ReflectionSession,
        step: ReflectionStep,
        choice: str | None,
        text: str | None,
        tally: str | None,
    ) -> None:
        answer = ReflectionAnswer(turn.user, step.id, choice, text, tally, False, False, turn.at)
        await turn.session.save_answer(session.id, answer)
        index = session.step_index
        copy = self._rcopy
        turn.out.append(
            Outbound(
                copy.kept,
                choices=(
                    Choice(f"{PREFIX}{session.token}:share:{index}", copy.share_label),
                    Choice(f"{PREFIX}{session.token}:save:{index}", copy.save_label),
                ),
                private_only=True,
            )
        )

    async def _answerable(
        self, turn: Turn, session: ReflectionSession, index: str
    ) -> ReflectionStep | None:
        """The step a press answers, if the person may still answer it."""
        copy = self._rcopy
        if session.status is ReflectionStatus.ENDED:
            turn.out.append(Outbound(copy.ended, private_only=True))
            return None
        if not await self._is_participant(turn, session):
            turn.out.append(Outbound(copy.not_joined, private_only=True))
            return None
        if index != str(session.step_index):
            turn.out.append(Outbound(copy.moved_on, private_only=True))
            return None
        return self._step(session)

    async def _keep_or_share(
        self, turn: Turn, session: ReflectionSession, action: str, index: str
    ) -> None:
        copy = self._rcopy
        reflection = self._content.reflections.get(session.reflection_id)
        if not index.isdigit() or reflection is None or int(index) >= len(reflection.steps):
            turn.out.append(Outbound(self._content.copy.stale_button, private_only=True))
            return
        step = reflection.steps[int(index)]
        answer = await turn.session.get_answer(session.id, turn.user, step.id)
        if answer is None:
            turn.out.append(Outbound(self._content.copy.stale_button, private_only=True))
            return
        if action == "save":
            await turn.session.mark_answer(session.id, turn.user, step.id, saved=True)
            turn.out.append(Outbound(copy.saved, private_only=True))
            return
        if session.status is ReflectionStatus.ENDED:
            turn.out.append(Outbound(copy.ended, private_only=True))
            return
        if answer.shared:
            turn.out.append(Outbound(copy.already_shared, private_only=True))
            return
        said = answer.text
        if said is None:
            said = next((o.label for o in step.options if o.id == answer.choice), "")
        if answer.text is not None and has_link(said):
            log.info("share refused, it holds a link session=%d", session.id)
            turn.out.append(Outbound(copy.share_has_link, private_only=True))
            return
        finding = self._safety.screen(said)
        if finding is not None:
            # Never posted. The author is answered privately, as for any signal.
            log.info("share held back signal=%s user=%s", finding.signal, _ref(turn.user))
            turn.out.append(Outbound(copy.share_held_back, private_only=True))
            turn.safety_fired = True
            if finding.signal is SafetySignal.CRISIS:
                turn.profile = replace(turn.profile, crisis_at=turn.at)
            else:
                turn.profile = replace(turn.profile, unsafe=True)
            await self._start_flow(turn, str(finding.signal))
            return
        await turn.session.mark_answer(session.id, turn.user, step.id, shared=True)
        log.info("answer shared session=%d", session.id)
        turn.out.append(Outbound(render(copy.shared_group, {"answer": said}), to=_group(session)))
        turn.out.append(Outbound(copy.shared, private_only=True))

    async def _followup_choice(self, turn: Turn, session: ReflectionSession, wanted: bool) -> None:
        copy = self._rcopy
        if not await self._is_participant(turn, session):
            turn.out.append(Outbound(copy.not_joined, private_only=True))
            return
        if not wanted:
            turn.out.append(Outbound(copy.followup_declined, private_only=True))
            return
        zone = self._zone(turn.profile)
        start, end = self._quiet_hours(turn.profile)
        due = after_quiet_hours(turn.at + timedelta(days=1), zone, start, end)
        private_chat = turn.chat_id if turn.private else turn.user.user_id
        await turn.session.schedule_followup(
            turn.user,
            FollowUpRequest(
                flow_id="checkin",
                chat_id=private_chat,
                due_at=due,
                expires_at=due + timedelta(hours=24),
                dedupe_key=f"reflect:{session.token}:followup:{turn.user.user_id}",
            ),
        )
        turn.out.append(Outbound(copy.followup_set, private_only=True))

    # ------------------------------------------------------------- the facilitator

    async def _control(self, turn: Turn, session: ReflectionSession, action: str) -> None:
        copy = self._rcopy
        # The facilitator flag speaks for this chat only: a button or command naming
        # another group's session needs the person who started that one.
        allowed = session.facilitator == turn.user or (
            turn.facilitator and not turn.private and session.chat_id == turn.chat_id
        )
        if not allowed:
            log.info("reflection control refused session=%d action=%s", session.id, action)
            turn.out.append(Outbound(copy.not_facilitator))
            return
        if session.status is ReflectionStatus.ENDED:
            turn.out.append(Outbound(copy.ended))
            return
        store, now, out = turn.session, turn.at, turn.out
        if action == "next":
            session = await self._advance(store, session, now, out)
        elif action == "end":
            session = await self._end(store, session, now, out)
        elif action == "pause":
            session = await self._pause(store, session, now, out)
        elif action == "resume":
            session = await self._resume(store, session, now, out)
        else:
            session = await self._extend(store, session, now, out)
        if session.status is not ReflectionStatus.ENDED:
            self._controls(turn, session)

    async def _pause(
        self, store: StoreSession, session: ReflectionSession, now: datetime, out: list[Outbound]
    ) -> ReflectionSession:
        if session.status is ReflectionStatus.PAUSED:
            out.append(Outbound(self._rcopy.already_paused))
            return session
        await _cancel_timer(store, session)
        remaining = max(0, int(((session.step_due_at or now) - now).total_seconds()))
        session = replace(
            session,
            status=ReflectionStatus.PAUSED,
            step_due_at=None,
            remaining_seconds=remaining,
            timer=None,
        )
        await store.update_reflection(session)
        out.append(Outbound(self._rcopy.paused_group, to=_group(session)))
        return session

    async def _resume(
        self, store: StoreSession, session: ReflectionSession, now: datetime, out: list[Outbound]
    ) -> ReflectionSession:
        if session.status is not ReflectionStatus.PAUSED:
            out.append(Outbound(self._rcopy.not_paused))
            return session
        remaining = session.remaining_seconds or 0
        session = replace(session, status=ReflectionStatus.RUNNING, remaining_seconds=None)
        session = await _set_timer(store, session, now + timedelta(seconds=remaining))
        minutes = max(1, math.ceil(remaining / 60))
        text = render(self._rcopy.resumed_group, {"minutes": minutes})
        out.append(Outbound(text, to=_group(session)))
        return session

    async def _extend(
        self, store: StoreSession, session: ReflectionSession, now: datetime, out: list[Outbound]
    ) -> ReflectionSession:
        more = timedelta(minutes=EXTEND_MINUTES)
        if session.status is ReflectionStatus.PAUSED:
            remaining = (session.remaining_seconds or 0) + int(more.total_seconds())
            session = replace(session, remaining_seconds=remaining)
            await store.update_reflection(session)
        else:
            await _cancel_timer(store, session)
            session = await _set_timer(store, session, max(session.step_due_at or now, now) + more)
        text = render(self._rcopy.extended_group, {"minutes": EXTEND_MINUTES})
        out.append(Outbound(text, to=_group(session)))
        return session

    async def _advance(
        self, store: StoreSession, session: ReflectionSession, now: datetime, out: list[Outbound]
    ) -> ReflectionSession:
        reflection = self._content.reflections.get(session.reflection_id)
        await _cancel_timer(store, session)
        following = session.step_index + 1
        if reflection is None or following >= len(reflection.steps):
            return await self._end(store, session, now, out)
        session = replace(session, status=ReflectionStatus.RUNNING, remaining_seconds=None)
        return await self._begin_step(store, session, following, now, out)

    async def _begin_step(
        self,
        store: StoreSession,
        session: ReflectionSession,
        index: int,
        now: datetime,
        out: list[Outbound],
    ) -> ReflectionSession:
        reflection = self._content.reflections[session.reflection_id]
        step = reflection.steps[index]
        session = replace(session, step_index=index)
        session = await _set_timer(store, session, now + timedelta(minutes=session.minutes))
        text = render(
            self._rcopy.step_group,
            {
                "number": index + 1,
                "steps": len(reflection.steps),
                "group_text": step.group_text,
                "minutes": session.minutes,
            },
        )
        out.append(Outbound(text, to=_group(session)))
        prompt = self._prompt(session, reflection, step)
        for person in await store.participants(session.id):
            out.append(replace(prompt, to=_private(person.user, person.chat_id)))
        return session

    async def _end(
        self, store: StoreSession, session: ReflectionSession, now: datetime, out: list[Outbound]
    ) -> ReflectionSession:
        await _cancel_timer(store, session)
        session = replace(
            session,
            status=ReflectionStatus.ENDED,
            ended_at=now,
            step_due_at=None,
            remaining_seconds=None,
            timer=None,
        )
        await store.update_reflection(session)
        log.info("reflection ended session=%d", session.id)
        copy = self._rcopy
        people = await store.participants(session.id)
        out.append(Outbound(await self._summary(store, session, len(people)), to=_group(session)))
        reflection = self._content.reflections.get(session.reflection_id)
        offer = (
            Choice(f"{PREFIX}{session.token}:fu:yes", copy.followup_yes_label),
            Choice(f"{PREFIX}{session.token}:fu:no", copy.followup_no_label),
        )
        for person in people:
            to = _private(person.user, person.chat_id)
            if reflection is not None:
                out.append(Outbound(reflection.closing, private_only=True, to=to))
            out.append(Outbound(copy.followup_offer, choices=offer, private_only=True, to=to))
        return session

    async def _summary(self, store: StoreSession, session: ReflectionSession, joined: int) -> str:
        copy = self._rcopy
        if joined < MIN_FOR_SUMMARY:
            return copy.summary_too_few
        reflection = self._content.reflections.get(session.reflection_id)
        order = {s.id: i for i, s in enumerate(reflection.steps)} if reflection else {}
        answers = await store.answers(session.id)
        # Each person counts once, by the first tallied step they answered.
        first: dict[UserKey, tuple[int, str]] = {}
        for answer in answers:
            if answer.tally is None:
                continue
            position = order.get(answer.step_id, len(order))
            if answer.user not in first or position < first[answer.user][0]:
                first[answer.user] = (position, answer.tally)
        tallies = [tally for _, tally in first.values()]
        return render(
            copy.summary_group,
            {
                "joined": joined,
                "contact": tallies.count("contact"),
                "space": tallies.count("space"),
                "shared": sum(1 for a in answers if a.shared),
            },
        )

    # ------------------------------------------------------------- helpers

    def _step(self, session: ReflectionSession) -> ReflectionStep | None:
        reflection = self._content.reflections.get(session.reflection_id)
        if reflection is None or not 0 <= session.step_index < len(reflection.steps):
            return None
        return reflection.steps[session.step_index]

    def _prompt(
        self, session: ReflectionSession, reflection: Reflection, step: ReflectionStep
    ) -> Outbound:
        text = render(
            self._rcopy.step_private,
            {
                "title": reflection.title,
                "number": session.step_index + 1,
                "steps": len(reflection.steps),
                "prompt": step.prompt,
            },
        )
        choices = tuple(
            Choice(f"{PREFIX}{session.token}:a:{session.step_index}:{o.id}", o.label)
            for o in step.options
        )
        return Outbound(text, choices=choices, private_only=True)

    async def _member_of_group(self, turn: Turn, session: ReflectionSession) -> bool:
        """A press in the group's own chat comes from a member (the platform delivered
        it from there); anywhere else (Telegram's deep link opens a private chat, a
        forwarded link, a DM on Discord) the platform is asked. Unknown counts as no."""
        if not turn.private and turn.chat_id == session.chat_id:
            return True
        if self._is_member is None:
            return True  # nothing to ask (the console, engine-only tests)
        try:
            async with asyncio.timeout(MEMBER_CHECK_TIMEOUT):
                return await self._is_member(session.platform, session.chat_id, turn.user.user_id)
        except Exception as exc:
            log.warning("membership not confirmed error=%s", type(exc).__name__)
            return False

    async def _is_participant(self, turn: Turn, session: ReflectionSession) -> bool:
        # By the session's own list, so an ended one (whose participants may still
        # answer the follow-up offer) counts too.
        people = await turn.session.participants(session.id)
        return any(p.user == turn.user for p in people)


def is_reflection_payload(raw: str) -> bool:
    return raw.startswith(PREFIX)


def is_reflection_start(command: Command) -> bool:
    return (
        command.name == "start" and bool(command.args) and command.args[0].startswith(START_PREFIX)
    )


def _timer_token(key: str) -> str:
    parts = key.split(":")
    return parts[1] if len(parts) == 3 else ""


async def _set_timer(
    store: StoreSession, session: ReflectionSession, due: datetime
) -> ReflectionSession:
    """Plan the end of the current step at `due` as a follow-up row, replacing any
    earlier timer, and save the session."""
    await _cancel_timer(store, session)
    # Dedupe keys stay taken after a row is cancelled, so every timer gets a new one.
    key = f"reflect:{session.token}:{secrets.token_hex(4)}"
    await store.schedule_followup(
        session.facilitator,
        FollowUpRequest(
            flow_id=key,
            chat_id=session.chat_id,
            due_at=due,
            expires_at=due + TIMER_LIFETIME,
            dedupe_key=key,
            kind=REFLECTION_TIMER,
        ),
    )
    session = replace(session, step_due_at=due, timer=key)
    await store.update_reflection(session)
    return session


async def _cancel_timer(store: StoreSession, session: ReflectionSession) -> None:
    if session.timer is not None:
        await store.cancel_timer(session.timer)


def _group(session: ReflectionSession) -> Address:
    return Address(session.platform, "", session.chat_id, is_private=False)


def _private(user: UserKey, chat_id: str) -> Address:
    return Address(user.platform, user.user_id, chat_id, is_private=True)


def _ref(user: UserKey) -> str:
    return user_ref(user.platform, user.user_id)
