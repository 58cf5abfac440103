"""`PartnerLinks`: invitations, consent, unlinking and the signals themselves.

A collaborator the engine holds, built with only what it needs: the content, a
person's zone and quiet hours, where a Telegram deep link for a code can come from,
and (once the flow runner exists) how to start a flow through its gates. It never
sees the engine.

The safety rules live here, on every path:
- nobody who may be unsafe (the danger flag, set by a danger signal or by any answer
  but "no" on the safety screen) can make or accept a link: the `link` and
  `link_accept` flows are gated like every flow about the partner, and accepting
  checks both people again;
- a link works only while both people have agreed to the guide and neither carries
  the danger flag; otherwise it is paused, and the other side learns only that,
  when they next try to use it (never told when or why it paused, which could
  tell a controlling partner that something was disclosed);
- signals are offered, never sent unasked; the limits in `dialogs.link.signals`;
  nothing arrives in the receiver's quiet hours: it waits as a follow-up row, and
  the sender is told when it will arrive;
- unlinking needs nobody's agreement, and the other side hears only that it ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialogs.content import Content
from dialogs.events import Address, Choice, Outbound
from dialogs.flows.commands import Action
from dialogs.flows.model import ActionStep
from dialogs.flows.templates import render
from dialogs.followups.times import after_quiet_hours
from dialogs.link.codes import START_PREFIX, code_hash, new_code, normalised, shown
from dialogs.link.copy import LinkCopy
from dialogs.link.signals import (
    ANSWER_TTL,
    ANSWERS,
    DAY,
    MORE_TIME,
    OFFER_TTL,
    RETURNS,
    Kind,
    Limit,
    blocked,
    ceil_minutes,
    clock_time,
    return_time,
)
from dialogs.link.store import (
    PARTNER_SIGNAL,
    LinkStatus,
    PartnerLink,
    PartnerSignal,
    SignalStatus,
)
from dialogs.steps import Continue, End, StepResult
from dialogs.store import FollowUp, FollowUpRequest, FollowUpStatus, Profile, StoreSession, UserKey
from dialogs.turn import Turn

log = logging.getLogger(__name__)

INVITATION_TTL = timedelta(hours=24)
# A signal waiting for quiet hours to end is still sent this long after.
WAITING_LIMIT = timedelta(hours=12)
# Button payloads: pl:send:<id>, pl:skip:<id>, pl:ans:<id>:<kind>.
# "Later tonight" is offered from 05:00 until 22:00 where the partner is, like the flows'
# evening choices: after that, "tonight" is the small hours. A button already shown
# still works (it is only words to the sender).
TONIGHT_FROM, TONIGHT_UNTIL = 5, 22
PAYLOAD_PREFIX = "pl:"

StartFlow = Callable[[Turn, str], Awaitable[None]]
ZoneOf = Callable[[Profile], ZoneInfo]
QuietHoursOf = Callable[[Profile], tuple[time, time]]
# A code -> the Telegram deep link that opens it, where the deployment runs Telegram.
InviteLink = Callable[[str], str | None]


def is_link_payload(raw: str) -> bool:
    return raw.startswith(PAYLOAD_PREFIX)


def is_link_start(args: Sequence[str]) -> bool:
    """`/start pl_<code>`: Telegram's deep link of an invitation."""
    return bool(args) and args[0].startswith(START_PREFIX)


class PartnerLinks:
    def __init__(
        self,
        content: Content,
        zone_of: ZoneOf,
        quiet_hours_of: QuietHoursOf,
        invite_link: InviteLink | None = None,
        plain: Callable[[str], bool] = lambda text: True,
    ) -> None:
        copy = content.link_copy
        assert copy is not None, "content without link_copy.yaml does not load"
        self._copy: LinkCopy = copy
        self._start_flow: StartFlow | None = None
        self._zone_of = zone_of
        self._quiet_hours_of = quiet_hours_of
        self._invite_link = invite_link
        # Whether text reads as no safety signal: codes are drawn until it does.
        self._plain = plain

    def starts_flows_with(self, start_flow: StartFlow) -> None:
        """How to start a flow through its gates (the flow runner's `start`, which is
        built after this object, since it runs this object's steps)."""
        self._start_flow = start_flow

    async def _start(self, turn: Turn, flow_id: str) -> None:
        assert self._start_flow is not None, "starts_flows_with() was never called"
        await self._start_flow(turn, flow_id)

    # ------------------------------------------------------------- commands

    async def command(self, turn: Turn, action: Action, args: Sequence[str]) -> None:
        """`/link` (status, or the `link` flow), `/link CODE`, `/unlink`."""
        if action is Action.UNLINK:
            await self.unlink(turn)
        elif args:
            await self.open_code(turn, "".join(args))
        else:
            await self._link_command(turn)

    async def _link_command(self, turn: Turn) -> None:
        link = await self._active(turn)
        if link is None:
            await self._start(turn, "link")
            return
        paused = not await self._usable(turn, link)
        self._say(turn, self._copy.status_paused if paused else self._copy.status_active)

    async def open_code(self, turn: Turn, typed: str) -> None:
        """Someone typed or opened an invitation code. Every way it can fail (mistyped,
        forged, used, expired) gets the same kind answer: which one it was would
        help a guesser."""
        code = normalised(typed)
        link = await turn.session.link_by_code(code_hash(code)) if code else None
        if link is None or turn.at - link.created_at >= INVITATION_TTL:
            self._say(turn, self._copy.code_unknown)
            return
        if link.inviter == turn.user:
            self._say(turn, self._copy.own_code)
            return
        if await self._active(turn) is not None:
            self._say(turn, self._copy.already_linked)
            return
        # Single use: from here the code opens nothing for anyone else, and the
        # invitation waits for this person through the gates (consent, the screen).
        opened = replace(
            link, status=LinkStatus.OPENED, partner=turn.user, partner_chat=_chat(turn)
        )
        await turn.session.update_link(opened)
        log.info("partner invitation opened user=%s", turn.who)
        turn.idle()
        await self._start(turn, "link_accept")

    async def unlink(self, turn: Turn) -> None:
        async def notify(user: UserKey, address: Address) -> None:
            self._say(turn, self._copy.link_ended, to=address)

        ended = await self._end_all(turn, notify=notify)
        self._say(turn, self._copy.unlinked if ended else self._copy.not_linked)

    async def forgetting(self, turn: Turn) -> None:
        """Before /forget deletes everything: end the person's links. The partner's
        notice is theirs (it survives the deletion) and goes by the resend sweep."""

        async def notify(user: UserKey, address: Address) -> None:
            notice = Outbound(self._copy.link_ended, private_only=True)
            await turn.session.enqueue_outbound(user, address, [notice], turn.at)

        await self._end_all(turn, notify=notify)

    async def _end_all(
        self, turn: Turn, *, notify: Callable[[UserKey, Address], Awaitable[None]]
    ) -> bool:
        """End every link of the person; whether one was active or waiting."""
        found = False
        for link in await turn.session.links_of(turn.user):
            found = found or _live(link, turn.at)
            other = link.other(turn.user)
            if link.status is LinkStatus.ACTIVE and other is not None:
                await notify(other[0], _address(*other))
            await turn.session.update_link(replace(link, status=LinkStatus.ENDED, ended_at=turn.at))
            await turn.session.withdraw_waiting(link.id, turn.at)
        if found:
            await turn.session.cancel_followups(turn.user, kind=PARTNER_SIGNAL)
            log.info("partner link ended user=%s", turn.who)
        return found

    # ------------------------------------------------------------- flow steps

    async def step(self, turn: Turn, step: ActionStep) -> StepResult:
        """The link's action steps: invite_partner, accept_partner, decline_partner,
        offer_signal. Each goes on to the step's `next`."""
        assert step.next is not None
        if step.do == "invite_partner":
            await self._invite(turn)
        elif step.do == "accept_partner":
            await self._accept(turn)
        elif step.do == "decline_partner":
            await self._decline(turn)
        elif step.do == "offer_signal" and step.signal is not None:
            await self._offer(turn, Kind(step.signal))
        else:
            return End()
        return Continue(step.next)

    async def _invite(self, turn: Turn) -> None:
        if await self._active(turn) is not None:
            self._say(turn, self._copy.already_linked)
            return
        # One invitation at a time: a new one replaces any still waiting.
        for link in await turn.session.links_of(turn.user):
            if link.inviter == turn.user and link.status is not LinkStatus.ACTIVE:
                await turn.session.update_link(
                    replace(link, status=LinkStatus.ENDED, ended_at=turn.at)
                )
        code = new_code(self._plain)
        await turn.session.create_link(turn.user, _chat(turn), code_hash(code), turn.at)
        hours = int(INVITATION_TTL.total_seconds() // 3600)
        deep_link = self._invite_link(code) if self._invite_link else None
        if deep_link:
            text = render(
                self._copy.invitation_telegram,
                {"code": shown(code), "link": deep_link, "hours": hours},
            )
        else:
            text = render(self._copy.invitation, {"code": shown(code), "hours": hours})
        self._say(turn, text)
        log.info("partner invitation made user=%s", turn.who)

    async def _opened(self, turn: Turn) -> PartnerLink | None:
        for link in await turn.session.links_of(turn.user):
            if link.status is LinkStatus.OPENED and link.partner == turn.user:
                return link
        return None

    async def _accept(self, turn: Turn) -> None:
        link = await self._opened(turn)
        if link is None or turn.at - link.created_at >= INVITATION_TTL:
            self._say(turn, self._copy.code_unknown)
            return
        if await self._active(turn) is not None:
            self._say(turn, self._copy.already_linked)
            return
        inviter = await turn.session.load_profile(link.inviter)
        inviter_links = await turn.session.links_of(link.inviter)
        if any(other.status is LinkStatus.ACTIVE for other in inviter_links):
            self._say(turn, self._copy.code_unknown)
            return
        if not (_may_link(turn.profile) and _may_link(inviter)):
            # Either of them may be unsafe: no link, and nothing says which or why.
            await turn.session.update_link(replace(link, status=LinkStatus.ENDED, ended_at=turn.at))
            self._say(turn, self._copy.link_paused)
            return
        for own in await turn.session.links_of(turn.user):
            if own.inviter == turn.user:
                await turn.session.update_link(
                    replace(own, status=LinkStatus.ENDED, ended_at=turn.at)
                )
        await turn.session.update_link(replace(link, status=LinkStatus.ACTIVE, accepted_at=turn.at))
        self._say(turn, self._copy.linked)
        self._say(turn, self._copy.linked, to=_address(link.inviter, link.inviter_chat))
        log.info("partner link made user=%s", turn.who)

    async def _decline(self, turn: Turn) -> None:
        link = await self._opened(turn)
        if link is not None:
            await turn.session.update_link(replace(link, status=LinkStatus.ENDED, ended_at=turn.at))
        self._say(turn, self._copy.declined)

    # ------------------------------------------------------------- offering

    async def _offer(self, turn: Turn, kind: Kind) -> None:
        """Show the signal's exact words with Send it / Not now, when the person has a
        link that works; otherwise say nothing (a flow reads the same unlinked)."""
        link = await self._active(turn)
        if link is None or not await self._usable(turn, link):
            return
        other = link.other(turn.user)
        assert other is not None
        theirs = await turn.session.load_profile(other[0])
        my_zone, their_zone = self._zone_of(turn.profile), self._zone_of(theirs)
        at: datetime | None = None
        if kind is Kind.SPACE:
            at = return_time(str(turn.variables.get("when", "")), turn.at, my_zone)
            if at is None:
                return  # a time typed in words: the link never carries typed text
        elif kind is Kind.MORE_TIME:
            at = ceil_minutes(turn.at + MORE_TIME, 10)
        words = self._words(kind, at, turn.at, their_zone)
        signal = await turn.session.add_signal(link.id, turn.user, kind, words, turn.at)
        parts = [render(self._copy.offer, {"words": words})]
        if at is not None:
            yours = clock_time(at, turn.at, my_zone, self._copy.tomorrow)
            time_there = clock_time(at, turn.at, their_zone, self._copy.tomorrow)
            if yours != time_there:
                parts.append(render(self._copy.their_time, {"time": time_there, "yours": yours}))
        due = self._due(turn.at, theirs)
        if due > turn.at:
            when = clock_time(due, turn.at, my_zone, self._copy.tomorrow)
            parts.append(render(self._copy.would_wait, {"when": when}))
        buttons = (
            Choice(f"{PAYLOAD_PREFIX}send:{signal.id}", self._copy.send_label),
            Choice(f"{PAYLOAD_PREFIX}skip:{signal.id}", self._copy.skip_label),
        )
        turn.out.append(Outbound("\n\n".join(parts), choices=buttons, private_only=True))

    def _words(self, kind: Kind, at: datetime | None, now: datetime, zone: ZoneInfo) -> str:
        copy = self._copy
        if kind is Kind.SPACE or kind is Kind.MORE_TIME:
            assert at is not None
            template = copy.words_space if kind is Kind.SPACE else copy.words_more_time
            return render(template, {"time": clock_time(at, now, zone, copy.tomorrow)})
        fixed = {
            Kind.BACK: copy.words_back,
            Kind.TALK: copy.words_talk,
            Kind.PAUSE: copy.words_pause,
            **self._answers(),
        }
        return fixed[kind]

    def _answers(self) -> dict[Kind, str]:
        copy = self._copy
        return {
            Kind.READY_NOW: copy.answer_ready_now,
            Kind.LATER_TONIGHT: copy.answer_later_tonight,
            Kind.TOMORROW: copy.answer_tomorrow,
        }

    # ------------------------------------------------------------- taps

    async def press(self, turn: Turn, raw: str) -> None:
        parts = raw.removeprefix(PAYLOAD_PREFIX).split(":")
        if len(parts) >= 2 and parts[1].isdigit():
            verb, signal_id = parts[0], int(parts[1])
            if verb == "send" and len(parts) == 2:
                await self._send(turn, signal_id)
                return
            if verb == "skip" and len(parts) == 2:
                await self._skip(turn, signal_id)
                return
            if verb == "ans" and len(parts) == 3 and parts[2] in {k.value for k in ANSWERS}:
                await self._answer(turn, signal_id, Kind(parts[2]))
                return
        self._say(turn, self._copy.offer_gone)

    async def _mine(self, turn: Turn, signal_id: int) -> PartnerSignal | None:
        """The person's own signal still on offer, or None (someone else's, sent,
        declined, or offered too long ago)."""
        signal = await turn.session.signal_by_id(signal_id)
        if (
            signal is None
            or signal.sender != turn.user
            or signal.status is not SignalStatus.OFFERED
            or turn.at - signal.created_at > OFFER_TTL
        ):
            return None
        return signal

    async def _skip(self, turn: Turn, signal_id: int) -> None:
        signal = await self._mine(turn, signal_id)
        if signal is not None:
            await turn.session.update_signal(replace(signal, status=SignalStatus.DECLINED))
        self._say(turn, self._copy.skipped)

    async def _send(self, turn: Turn, signal_id: int) -> None:
        signal = await self._mine(turn, signal_id)
        link = await turn.session.link_by_id(signal.link_id) if signal else None
        if signal is None or link is None or link.status is not LinkStatus.ACTIVE:
            self._say(turn, self._copy.offer_gone)
            return
        if not await self._usable(turn, link):
            await turn.session.update_signal(replace(signal, status=SignalStatus.WITHDRAWN))
            self._say(turn, self._copy.link_paused)
            return
        history = await turn.session.signals_sent_since(turn.user, turn.at - DAY)
        reply_to = None
        if signal.kind in RETURNS:
            reply_to = await self._own_space_signal(turn, link, history)
        stop = blocked(Kind(signal.kind), history, turn.at, keeps_word=reply_to is not None)
        if stop is not None:
            await turn.session.update_signal(replace(signal, status=SignalStatus.DECLINED))
            if stop.limit is Limit.DAY:
                self._say(turn, self._copy.limit_day)
            else:
                zone = self._zone_of(turn.profile)
                when = clock_time(stop.until, turn.at, zone, self._copy.tomorrow)
                self._say(turn, render(self._copy.limit_hour, {"when": when}))
            log.info("partner signal over the limit user=%s limit=%s", turn.who, stop.limit)
            return
        await self._deliver(turn, link, replace(signal, reply_to=reply_to))

    async def _own_space_signal(
        self, turn: Turn, link: PartnerLink, history: Sequence[PartnerSignal]
    ) -> int | None:
        """The person's latest space signal in this link not yet followed by a
        return, which an "I'm back" or "I need until..." now answers."""
        for earlier in reversed(history):
            if earlier.link_id == link.id and earlier.kind == Kind.SPACE:
                return None if await turn.session.replies_to(earlier.id) else earlier.id
        return None

    async def _answer(self, turn: Turn, talk_id: int, kind: Kind) -> None:
        talk = await turn.session.signal_by_id(talk_id)
        link = await turn.session.link_by_id(talk.link_id) if talk else None
        if (
            talk is None
            or link is None
            or talk.kind != Kind.TALK
            or talk.status is not SignalStatus.SENT
            or talk.sender == turn.user
            or not link.has(turn.user)
            or link.status is not LinkStatus.ACTIVE
            or talk.sent_at is None
            or turn.at - talk.sent_at > ANSWER_TTL
            or await turn.session.replies_to(talk.id)
        ):
            self._say(turn, self._copy.answer_gone)
            return
        if not await self._usable(turn, link):
            self._say(turn, self._copy.link_paused)
            return
        theirs = await turn.session.load_profile(talk.sender)
        words = self._words(kind, None, turn.at, self._zone_of(theirs))
        answer = await turn.session.add_signal(
            link.id, turn.user, kind, words, turn.at, reply_to=talk.id
        )
        await self._deliver(turn, link, answer)

    async def _deliver(self, turn: Turn, link: PartnerLink, signal: PartnerSignal) -> None:
        """Send now, or, in the receiver's quiet hours, wait as a follow-up row and
        tell the sender when it will arrive."""
        other = link.other(turn.user)
        assert other is not None
        theirs = await turn.session.load_profile(other[0])
        due = self._due(turn.at, theirs)
        if due > turn.at:
            await turn.session.update_signal(
                replace(signal, status=SignalStatus.WAITING, due_at=due)
            )
            request = FollowUpRequest(
                flow_id="link",
                chat_id=turn.chat_id,
                due_at=due,
                expires_at=due + WAITING_LIMIT,
                dedupe_key=f"{PARTNER_SIGNAL}:{signal.id}",
                kind=PARTNER_SIGNAL,
            )
            if await turn.session.schedule_followup(turn.user, request):
                turn.scheduled.append(due)
            when = clock_time(due, turn.at, self._zone_of(turn.profile), self._copy.tomorrow)
            self._say(turn, render(self._copy.waiting, {"when": when}))
            log.info("partner signal waits for quiet hours user=%s", turn.who)
            return
        await turn.session.update_signal(
            replace(signal, status=SignalStatus.SENT, due_at=turn.at, sent_at=turn.at)
        )
        turn.out.append(self._received(signal, _address(*other), self._zone_of(theirs), turn.at))
        self._say(turn, self._copy.sent)
        log.info("partner signal sent user=%s kind=%s", turn.who, signal.kind)

    def _received(
        self, signal: PartnerSignal, to: Address, zone: ZoneInfo, now: datetime
    ) -> Outbound:
        """What the partner gets; a talk request carries the one-tap answers that fit
        the hour where they are (no "Later tonight" in the small hours)."""
        answer = signal.kind in {k.value for k in ANSWERS}
        template = self._copy.received_answer if answer else self._copy.received
        choices: tuple[Choice, ...] = ()
        if signal.kind == Kind.TALK:
            tonight_fits = TONIGHT_FROM <= now.astimezone(zone).hour < TONIGHT_UNTIL
            choices = tuple(
                Choice(f"{PAYLOAD_PREFIX}ans:{signal.id}:{kind.value}", label)
                for kind, label in self._answers().items()
                if kind is not Kind.LATER_TONIGHT or tonight_fits
            )
        return Outbound(
            render(template, {"words": signal.words}), choices=choices, private_only=True, to=to
        )

    # ------------------------------------------------------------- due

    async def due(self, session: StoreSession, followup: FollowUp, now: datetime) -> list[Outbound]:
        """A signal's wait is over (the follow-up row of kind `signal`): what goes to
        the partner now. Checked again: the link must still work."""
        posts: list[Outbound] = []
        sender = await session.load_profile(followup.user)
        for signal in await session.signals_waiting(followup.user):
            if signal.due_at != followup.due_at:
                continue
            link = await session.link_by_id(signal.link_id)
            other = link.other(followup.user) if link else None
            receiver = await session.load_profile(other[0]) if other is not None else None
            usable = (
                link is not None
                and link.status is LinkStatus.ACTIVE
                and _may_link(sender)
                and receiver is not None
                and _may_link(receiver)
            )
            if not usable or other is None or receiver is None:
                await session.update_signal(replace(signal, status=SignalStatus.WITHDRAWN))
                continue
            await session.update_signal(replace(signal, status=SignalStatus.SENT, sent_at=now))
            posts.append(self._received(signal, _address(*other), self._zone_of(receiver), now))
        if not posts:
            await session.set_followup_status(followup.id, FollowUpStatus.CANCELLED, now)
        return posts

    # ------------------------------------------------------------- helpers

    async def _active(self, turn: Turn) -> PartnerLink | None:
        for link in await turn.session.links_of(turn.user):
            if link.status is LinkStatus.ACTIVE:
                return link
        return None

    async def _usable(self, turn: Turn, link: PartnerLink) -> bool:
        """Both people agreed to the guide and neither may be unsafe."""
        other = link.other(turn.user)
        if link.status is not LinkStatus.ACTIVE or other is None:
            return False
        return _may_link(turn.profile) and _may_link(await turn.session.load_profile(other[0]))

    def _due(self, now: datetime, receiver: Profile) -> datetime:
        return after_quiet_hours(now, self._zone_of(receiver), *self._quiet_hours_of(receiver))

    def _say(self, turn: Turn, text: str, *, to: Address | None = None) -> None:
        turn.out.append(Outbound(text, private_only=True, to=to))


def _may_link(profile: Profile) -> bool:
    return profile.consent_at is not None and not profile.unsafe and profile.adult is not False


def _live(link: PartnerLink, now: datetime) -> bool:
    if link.status is LinkStatus.ACTIVE:
        return True
    return link.status is not LinkStatus.ENDED and now - link.created_at < INVITATION_TTL


def _chat(turn: Turn) -> str:
    """The person's private chat with the guide: where the partner's signals go. On
    Telegram and Discord a private chat is reached by the person's own id."""
    return turn.chat_id if turn.private else turn.user.user_id


def _address(user: UserKey, chat_id: str) -> Address:
    return Address(user.platform, user.user_id, chat_id, True)
