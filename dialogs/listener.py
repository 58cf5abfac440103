"""Typed text, understood: the second safety net, stop words, and kind answers to
whatever does not fit the step a person is at.

The phrase screen (`dialogs.safety.screen`) has already run when this is asked. Here:
- the concern tier: when a reader finds danger or crisis likely but not certain, one
  gentle, direct question, with the helplines already in it. "Yes" goes to the
  danger or crisis flow; "no" resumes the step the person was at, untouched.
- stop words mid-flow ("cancel", "never mind"): one tap to confirm, and nothing that
  was planned is cancelled by it; `/stop` ends the flow at once and asks before
  cancelling anything planned, naming each;
- typed text at a choice step that matches no option: the likeliest options as
  buttons ("Is it one of these?") plus "Something else", never "didn't catch";
- typed text outside a flow: a line fitted to what it seems to be, with the offer
  that matches (a pause, space, a talk plan, support).

A question waiting for its answer is a marker in the conversation's variables
(`ASKING`), so a restart between question and answer loses nothing. The person is
asked, never labelled: nothing here sets a flag without their "yes".
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

from dialogs.content import Content
from dialogs.events import Choice, Outbound
from dialogs.flows.model import AskStep, ChoiceStep, Option, ScaleStep, Step
from dialogs.flows.replies import IntentReplies
from dialogs.flows.templates import render
from dialogs.followups.spoken import spoken_plans, spoken_time
from dialogs.matching import match_option, parse_number, simplify
from dialogs.payloads import Payload, encode_payload
from dialogs.runner import FlowRunner, ResourceText
from dialogs.store import Profile
from dialogs.turn import Turn
from dialogs.understanding.base import Reader, Reading
from dialogs.understanding.fallback import Confident, FallbackPolicy

log = logging.getLogger(__name__)

# The variable holding a question waiting for a yes or no: "danger", "crisis", "stop",
# or CANCEL_PLANNED (after /stop), whose follow-up ids wait in CANCEL_IDS.
ASKING = "_asking"
CANCEL_PLANNED = "cancel_planned"
CANCEL_IDS = "_cancel_ids"
CHECKIN = "checkin"
ANSWER_PREFIX = "q:"
SAID_PREFIX = "said:"
# The option id of "Something else" under "Is it one of these?": shows every option.
ALL_OPTIONS = "_all"
# Typed words that mean "stop this", whatever the step; matched whole, after the
# usual tidying, so "stop" ends a flow but "stop texting him" is an answer.
STOP_WORDS = frozenset(
    simplify(w)
    for w in (
        "stop",
        "cancel",
        "quit",
        "exit",
        "never mind",
        "nevermind",
        "nvm",
        "forget it",
        "leave it",
        "stop this",
        "cancel this",
        "i want to stop",
        "end this",
        "not now",
    )
)
# Fewer words than this are too little context for the model's safety concern.
CONCERN_MIN_WORDS = 3
# A message this long is someone telling their story, not picking an option.
TELLING_WORDS = 12
YES_WORDS = ["yes", "y", "yeah", "yep", "i am", "it does", "yes i am"]
NO_WORDS = ["no", "n", "nope", "not really", "no im not"]

SignalStart = Callable[[Turn, str], Awaitable[None]]


class Listener:
    def __init__(
        self,
        content: Content,
        runner: FlowRunner,
        resource_text: ResourceText,
        *,
        reader: Reader | None,
        policy: FallbackPolicy | None = None,
        start_signal: SignalStart,
        zone_of: Callable[[Profile], ZoneInfo],
    ) -> None:
        self._content = content
        self._runner = runner
        self._resource_text = resource_text
        self._reader = reader
        self._policy = policy or FallbackPolicy()
        self._start_signal = start_signal
        self._zone_of = zone_of

    @property
    def _replies(self) -> IntentReplies | None:
        return self._content.replies

    # ------------------------------------------------------------- reading

    async def read(self, turn: Turn, text: str) -> Reading | None:
        """The reader's view of `text`; the journal keeps only the label and confidence."""
        if self._reader is None or not text:
            return None
        reading = self._reader.read(text)
        # Kept only with the person's agreement, and only where the flow keeps answers.
        if (
            reading is not None
            and turn.flow_id is not None
            and turn.profile.consent_at is not None
            and self._runner.flow(turn).journal
        ):
            await turn.session.append_journal(
                turn.user,
                turn.at,
                turn.flow_id,
                turn.step_id or "",
                "intent",
                f"{reading.intent}:{reading.confidence:.2f}",
            )
        return reading

    # ------------------------------------------------------------- the concern tier

    def concern(self, turn: Turn, text: str, reading: Reading | None) -> str | None:
        """Danger or crisis, when one is likely and not already being answered.

        Not for an answer to the step the person is at ("reach out", "8/10"): a word
        or two out of context is where the model is least sure of anything, and the
        phrase rules have already read it."""
        if reading is None or len(text.split()) < CONCERN_MIN_WORDS:
            return None
        if self._answers_step(turn, text):
            return None
        signal = self._policy.safety_concern(reading)
        if signal == "danger" and turn.profile.unsafe:
            return None
        if signal == "crisis" and turn.flow_id in ("crisis", "crisis_check", "crisis_again"):
            return None
        return signal

    def _answers_step(self, turn: Turn, text: str) -> bool:
        step = self._runner.current_step(turn)
        if isinstance(step, ChoiceStep):
            return self._runner.match_choice(turn, step, text) is not None
        if isinstance(step, ScaleStep):
            number = parse_number(text)
            return number is not None and 0 <= number <= 10
        return False

    def ask_concern(self, turn: Turn, signal: str) -> None:
        copy = self._content.copy
        text = copy.concern_danger if signal == "danger" else copy.concern_crisis
        variables = {
            "resources": self._resource_text(signal, turn.profile.country),
            "emergency": self._resource_text("emergency", turn.profile.country),
        }
        log.info("safety concern asked signal=%s user=%s", signal, turn.who)
        self._ask(turn, signal, render(text, variables), copy.concern_yes, copy.concern_no)

    # ------------------------------------------------------------- stop words

    def wants_stop(self, turn: Turn, step: Step, text: str, reading: Reading | None) -> bool:
        """A stop word typed mid-flow, unless the step has an option that says it."""
        if turn.flow_id is None:
            return False
        if isinstance(step, ChoiceStep) and self._runner.match_choice(turn, step, text) is not None:
            return False
        if simplify(text) in STOP_WORDS:
            return True
        if isinstance(step, AskStep) and step.expect == "text":
            # Free text is theirs to write: only the plain stop words count there.
            return False
        short = len(text.split()) <= 4
        return short and reading is not None and self._policy.decide(reading) == Confident("stop")

    def confirm_stop(self, turn: Turn) -> None:
        copy = self._content.copy
        self._ask(turn, "stop", copy.stop_confirm, copy.stop_yes, copy.stop_no)

    async def stop_command(self, turn: Turn, args: tuple[str, ...] = ()) -> None:
        """`/stop` ends what is running, then asks before cancelling anything planned,
        naming each; `/stop checkins` stops only the recurring check-ins."""
        copy = self._content.copy
        if args and args[0].casefold() in ("checkins", "checkin", "check-ins"):
            cancelled = await turn.session.cancel_followups(turn.user, kind="checkin")
            turn.profile = replace(turn.profile, checkin_cadence=None)
            turn.out.append(Outbound(copy.checkins_stopped, private_only=True))
            log.info("check-ins stopped cancelled=%d", cancelled)
            return
        was_running = turn.flow_id is not None
        turn.idle()
        pending = await turn.session.pending_followups(turn.user)
        once = [f for f in pending if f.kind != CHECKIN]
        recurring = [f for f in pending if f.kind == CHECKIN]
        # What someone had planned is theirs alone: never for a group to read.
        if not pending:
            text = copy.stopped if was_running else copy.nothing_to_stop
            turn.out.append(Outbound(text, private_only=True))
            return
        zone = self._zone_of(turn.profile)
        lines = [copy.stop_lead if was_running else copy.stop_lead_idle]
        if once:
            # A promise to a partner ("I'll be back at 21:40") is not cancelled by
            # stopping a flow: the person says so, about exactly these.
            planned = spoken_plans(once, self._content.flows, turn.at, zone)
            lines.append(render(copy.stop_also_cancel, {"planned": planned}))
        if recurring:
            when = spoken_time(recurring[0].due_at, turn.at, zone)
            lines.append(render(copy.stop_checkin_stays, {"when": when}))
        choices: list[Choice] = []
        if once:
            turn.variables[ASKING] = CANCEL_PLANNED
            turn.variables[CANCEL_IDS] = ",".join(str(f.id) for f in once)
            choices += [
                Choice(f"{ANSWER_PREFIX}yes:{turn.turn}", copy.stop_cancel_yes),
                Choice(f"{ANSWER_PREFIX}no:{turn.turn}", copy.stop_cancel_no),
            ]
        if recurring:
            choices.append(Choice("/stop checkins", copy.stop_checkins_label))
        turn.out.append(Outbound(" ".join(lines), choices=tuple(choices), private_only=True))

    async def _cancel_planned(self, turn: Turn, yes: bool) -> None:
        """The answer to /stop's question: cancel exactly what it named, or keep it."""
        copy = self._content.copy
        ids = {int(i) for i in str(turn.variables.pop(CANCEL_IDS, "")).split(",") if i.isdigit()}
        if not yes:
            turn.out.append(Outbound(copy.stop_kept, private_only=True))
            return
        named = [f for f in await turn.session.pending_followups(turn.user) if f.id in ids]
        cancelled = [f for f in named if await turn.session.cancel_followup(turn.user, f.id)]
        if not cancelled:
            turn.out.append(Outbound(copy.schedule_gone, private_only=True))
            return
        zone = self._zone_of(turn.profile)
        planned = spoken_plans(cancelled, self._content.flows, turn.at, zone)
        text = render(copy.stop_cancelled, {"planned": planned})
        turn.out.append(Outbound(text, private_only=True))
        log.info("planned messages cancelled after /stop count=%d", len(cancelled))

    # ------------------------------------------------------------- answers to questions

    async def answer(self, turn: Turn, raw: str) -> bool:
        """A press on a yes/no question; True when it was one (valid or stale)."""
        if not raw.startswith(ANSWER_PREFIX):
            return False
        _, answer, at_turn = [*raw.split(":"), "", ""][:3]
        asking = turn.variables.get(ASKING)
        if asking is None or at_turn != str(turn.turn) or answer not in ("yes", "no"):
            turn.out.append(Outbound(self._content.copy.stale_button))
            self._runner.reprompt(turn)
            return True
        await self._settle(turn, str(asking), answer == "yes")
        return True

    async def typed_answer(self, turn: Turn, text: str) -> bool:
        """Typed text while a question waits: a yes or no settles it; anything else
        drops the question (they moved on) and is handled as usual."""
        asking = turn.variables.pop(ASKING, None)
        if asking is None:
            return False
        index = match_option(text, [YES_WORDS, NO_WORDS])
        if index is None:
            return False
        await self._settle(turn, str(asking), index == 0)
        return True

    async def _settle(self, turn: Turn, asking: str, yes: bool) -> None:
        turn.variables.pop(ASKING, None)
        if asking in ("danger", "crisis") and yes:
            await self._start_signal(turn, asking)
            return
        if asking == CANCEL_PLANNED:
            await self._cancel_planned(turn, yes)
            return
        if asking == "stop" and yes:
            planned = len(await turn.session.pending_followups(turn.user))
            turn.idle()
            copy = self._content.copy
            text = render(copy.stopped_keeping, {"count": planned}) if planned else copy.stopped
            turn.out.append(Outbound(text, private_only=True))
            return
        if asking in ("danger", "crisis"):
            turn.out.append(Outbound(self._content.copy.concern_cleared))
        # "No": back to exactly where they were.
        self._runner.reprompt(turn)

    def _ask(self, turn: Turn, asking: str, text: str, yes: str, no: str) -> None:
        turn.variables[ASKING] = asking
        choices = (
            Choice(f"{ANSWER_PREFIX}yes:{turn.turn}", yes),
            Choice(f"{ANSWER_PREFIX}no:{turn.turn}", no),
        )
        # A question about someone's safety is theirs alone: never for a group to read.
        turn.out.append(Outbound(text, choices=choices, private_only=True))

    # ------------------------------------------------------------- not an option

    async def unmatched_choice(self, turn: Turn, step: ChoiceStep, text: str) -> None:
        """Typed text at a choice step that names no option."""
        copy = self._content.copy
        if len(text.split()) >= TELLING_WORDS:
            turn.out.append(Outbound(copy.heard_you))
            self._runner.reprompt(turn)
            return
        shown = [step.options[i] for i in self._runner.shown_options(turn, step)]
        likely = _likeliest_options(shown, text)
        if not likely:
            turn.out.append(Outbound(copy.didnt_catch))
            self._runner.reprompt(turn)
            return
        assert turn.flow_id is not None
        choices = [
            Choice(encode_payload(Payload(turn.flow_id, step.id, o.id, turn.turn)), label)
            for o, label in likely
        ]
        choices.append(
            Choice(
                encode_payload(Payload(turn.flow_id, step.id, ALL_OPTIONS, turn.turn)),
                copy.more_options,
            )
        )
        question = self._replies.did_you_mean if self._replies else copy.didnt_catch
        turn.out.append(Outbound(question, choices=tuple(choices)))

    # ------------------------------------------------------------- outside a flow

    async def idle_text(self, turn: Turn, reading: Reading | None) -> None:
        replies = self._replies
        if reading is None or replies is None:
            self._runner.idle_menu(turn)
            return
        decision = self._policy.decide(reading)
        if isinstance(decision, Confident):
            self.say_intent(turn, decision.intent)
            return
        choices = [
            Choice(f"{SAID_PREFIX}{intent}", replies.offer_labels[intent])
            for intent in decision.candidates
            if intent in replies.offer_labels
        ]
        if len(choices) < 2:
            self._runner.idle_menu(turn)
            return
        choices.append(Choice("/help", replies.something_else))
        turn.out.append(Outbound(replies.did_you_mean, choices=tuple(choices)))

    def say_intent(self, turn: Turn, intent: str) -> None:
        """The reply fitted to one intent, with its offers; the idle menu without one."""
        reply = self._replies.replies.get(intent) if self._replies else None
        if reply is None:
            self._runner.idle_menu(turn)
            return
        choices = tuple(Choice(o.command, o.label) for o in reply.offers)
        turn.out.append(Outbound(reply.text, choices=choices))


def _likeliest_options(options: list[Option], text: str) -> list[tuple[Option, str]]:
    """Up to three of the offered options whose words look most like `text`, best first."""
    said = simplify(text)
    scored: list[tuple[float, Option]] = []
    for option in options:
        names = [option.label, option.id.replace("_", " "), *option.aliases]
        score = max(_likeness(said, simplify(n)) for n in names)
        if score >= 0.5:
            scored.append((score, option))
    scored.sort(key=lambda pair: -pair[0])
    return [(o, o.label) for _, o in scored[:3]]


def _likeness(said: str, name: str) -> float:
    if not said or not name:
        return 0.0
    words, name_words = _content_words(said), _content_words(name)
    if not words or not name_words:
        return 0.0
    overlap = len(words & name_words) / min(len(words), len(name_words))
    # Spelling close to the whole name counts ("tomorow morning"); loose letter
    # overlap does not ("purple elephant" is not "pull back").
    ratio = difflib.SequenceMatcher(None, said, name).ratio()
    return max(overlap, ratio if ratio >= 0.7 else 0.0)


_FILLER = frozenset(
    {
        "the",
        "and",
        "but",
        "for",
        "you",
        "your",
        "with",
        "this",
        "that",
        "then",
        "what",
        "when",
        "just",
        "maybe",
        "some",
        "like",
    }
)


def _content_words(text: str) -> set[str]:
    return {w for w in text.split() if len(w) > 2 and w not in _FILLER}
