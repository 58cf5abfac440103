"""Typed models of a flow file: one small model per step kind.

These are the schema pass of validation; graph checks live in `flow_graph`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import time, timedelta
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialogs.flows.durations import parse_duration
from dialogs.flows.templates import template_fields

Ident = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=32)]
VarValue = str | int
# Days of the week as options name them, Monday first (index = `datetime.weekday()`).
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Discord's message limit is the tighter of the two platforms.
MAX_TEXT = 2000
# Between a step's texts when they go out as one message.
PARAGRAPH = "\n\n"
MAX_LABEL = 64
# Telegram's callback_data limit, in bytes.
MAX_PAYLOAD_BYTES = 64


def _as_texts(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Strict):
    id: Ident
    text: tuple[str, ...] = ()
    # By default a step's texts go out as one message, in paragraphs: one call to the
    # platform, and the whole thought arrives at once. True sends each text as its
    # own message, for a deliberate pause between them.
    pause_between: bool = False

    _normalise_text = field_validator("text", mode="before")(_as_texts)

    def messages(self, rendered: Sequence[str]) -> list[str]:
        """The messages this step's (rendered) texts make: one, in paragraphs, unless
        the flow marks a pause between them."""
        if self.pause_between or len(rendered) < 2:
            return list(rendered)
        return [PARAGRAPH.join(rendered)]

    def targets(self) -> list[str]:
        """Node ids this step can move to, in the same flow."""
        return []

    def templated(self) -> tuple[str, ...]:
        """Every string of this step that is rendered with variables."""
        return self.text

    def wordings(self) -> tuple[tuple[str, ...], ...]:
        """Every way this step may be said: its `text`, then any `variants`."""
        return (self.text,)


def _as_wordings(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_as_texts(v) for v in value)
    return value


class _Varied(_Step):
    """A step that may say the same thing in other words: `variants` are further
    wordings of `text`, each one text or a list like `text`. Which one a person
    sees is chosen from their journal (dialogs/memory.py), so the same person does
    not get the same wording twice in a row."""

    variants: tuple[tuple[str, ...], ...] = ()

    _normalise_variants = field_validator("variants", mode="before")(_as_wordings)

    @model_validator(mode="after")
    def _variants_need_text(self) -> _Varied:
        if self.variants and not self.text:
            raise ValueError("'variants' are other wordings of 'text', which is missing")
        if any(not v for v in self.variants):
            raise ValueError("a variant needs at least one text")
        return self

    def wordings(self) -> tuple[tuple[str, ...], ...]:
        return (self.text, *self.variants)

    def templated(self) -> tuple[str, ...]:
        return tuple(t for w in self.wordings() for t in w)


class MessageStep(_Varied):
    """Says something and moves on."""

    kind: Literal["message"]
    text: tuple[str, ...] = Field(min_length=1)
    next: Ident

    def targets(self) -> list[str]:
        return [self.next]


class Option(_Strict):
    id: Ident
    label: str = Field(min_length=1)
    next: Ident
    aliases: tuple[str, ...] = ()
    set: dict[Ident, VarValue] = Field(default_factory=dict)
    # Adds to whole-number variables (declared with a number under `variables`), so a
    # flow can tally answers across questions, as the role self-check does.
    add: dict[Ident, int] = Field(default_factory=dict)
    # Offered only while the person's local hour is from the first number up to (not
    # including) the second; [9, 5] wraps past midnight. For time words that stop
    # fitting the clock: no "This evening" after midnight.
    hours: tuple[int, int] | None = None
    # Offered only on these local days of the week (and within `hours`, if given too).
    # For words that depend on the weekday: no "This weekend" on a Sunday night.
    days: tuple[Day, ...] | None = Field(default=None, min_length=1)

    def assigned(self, variables: Mapping[str, VarValue]) -> dict[str, VarValue]:
        """What choosing this option writes: its `set`, then its `add` on the numbers
        the variables hold now (one rule, for the engine and for transcripts)."""
        out: dict[str, VarValue] = dict(self.set)
        for name, amount in self.add.items():
            current = variables.get(name, 0)
            out[name] = (current if isinstance(current, int) else 0) + amount
        return out

    @model_validator(mode="after")
    def _hours_are_hours(self) -> Option:
        if self.hours is not None:
            start, end = self.hours
            if not (0 <= start <= 23 and 1 <= end <= 24) or start == end:
                raise ValueError("'hours' is [from, to]: from 0 to 23, to 1 to 24, not equal")
        return self

    @field_validator("days")
    @classmethod
    def _each_day_once(cls, days: tuple[Day, ...] | None) -> tuple[Day, ...] | None:
        if days is not None and len(set(days)) != len(days):
            raise ValueError("'days' names a day twice")
        return days

    def shown_at(self, hour: int, weekday: int) -> bool:
        """Whether the option is offered at this local hour (0 to 23) on this local
        weekday (0 is Monday, as `datetime.weekday`)."""
        if self.days is not None and DAYS[weekday] not in self.days:
            return False
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= hour < end if start < end else (hour >= start or hour < end)


class ChoiceStep(_Step):
    """Offers buttons. Typed text is matched to an option by number, label or close
    spelling; `other` names the option that unmatched text chooses, if any."""

    kind: Literal["choice"]
    text: tuple[str, ...] = Field(min_length=1)
    options: tuple[Option, ...] = Field(min_length=1, max_length=12)
    save_as: Ident | None = None
    other: Ident | None = None

    @model_validator(mode="after")
    def _other_is_an_option(self) -> ChoiceStep:
        if self.other is not None and self.other not in {o.id for o in self.options}:
            raise ValueError(f"'other' names {self.other!r}, which is not one of the options")
        return self

    @model_validator(mode="after")
    def _something_to_tap_at_every_hour(self) -> ChoiceStep:
        bare = [
            (d, h)
            for d in range(7)
            for h in range(24)
            if not any(o.shown_at(h, d) for o in self.options)
        ]
        if bare:
            day, hour = bare[0]
            # An hour bare on every day is a matter of `hours`: no day to name.
            every_day = all((d, hour) in bare for d in range(7))
            on = "" if every_day else f"on {DAY_NAMES[day]} "
            raise ValueError(f"no option is offered {on}at {hour:02d}:00 (see 'hours', 'days')")
        other = next((o for o in self.options if o.id == self.other), None)
        if other is not None and (other.hours is not None or other.days is not None):
            raise ValueError("the 'other' option takes any text, so it must be offered always")
        return self

    def targets(self) -> list[str]:
        return [o.next for o in self.options]

    def templated(self) -> tuple[str, ...]:
        return (*self.text, *(o.label for o in self.options))


class ScaleStep(_Step):
    """Asks for a number from 0 to 10."""

    kind: Literal["scale"]
    text: tuple[str, ...] = Field(min_length=1)
    save_as: Ident
    next: Ident

    def targets(self) -> list[str]:
        return [self.next]


class AskStep(_Step):
    """Takes a free-text answer into a variable. The answer lives only in the running
    conversation and is dropped when the flow ends; it is never journaled."""

    kind: Literal["ask"]
    text: tuple[str, ...] = Field(min_length=1)
    save_as: Ident
    next: Ident
    max_length: int = Field(default=300, ge=1, le=1000)
    # "time" (a time of day, kept as "HH:MM") or "zone" (a city or UTC offset, kept
    # as an IANA name): the engine asks again, kindly, until it understands.
    expect: Literal["text", "time", "zone"] = "text"

    def targets(self) -> list[str]:
        return [self.next]


class Condition(_Strict):
    var: Ident
    equals: VarValue | None = None
    one_of: tuple[VarValue, ...] | None = None
    at_least: int | None = None
    below: int | None = None
    is_set: bool | None = None
    # Compare two numbers the person gave (a rating before and after breathing, two
    # tallies): true when `var` is below, or above, the variable named here.
    below_var: Ident | None = None
    above_var: Ident | None = None

    @model_validator(mode="after")
    def _exactly_one_test(self) -> Condition:
        tests = [
            self.equals,
            self.one_of,
            self.at_least,
            self.below,
            self.is_set,
            self.below_var,
            self.above_var,
        ]
        if sum(t is not None for t in tests) != 1:
            raise ValueError(
                "a condition needs exactly one of equals, one_of, at_least, below, is_set,"
                " below_var, above_var"
            )
        return self

    @property
    def other_var(self) -> str | None:
        """The variable compared with `var`, if this condition compares two."""
        return self.below_var or self.above_var


class Case(_Strict):
    when: Condition
    next: Ident


class BranchStep(_Step):
    """Chooses the next step from variables; the first matching case wins."""

    kind: Literal["branch"]
    cases: tuple[Case, ...] = Field(min_length=1)
    otherwise: Ident

    def targets(self) -> list[str]:
        return [c.next for c in self.cases] + [self.otherwise]


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ScheduleStep(_Step):
    """Asks for `flow` to start later: `after` a duration, or at the next `at` local time
    (on the next day `on`, if given: "sat" with "09:00" is Saturday morning).
    Past `expires_after` beyond its due time, a late follow-up is recorded as missed."""

    kind: Literal["schedule"]
    flow: Ident
    after: str | None = None
    at: str | None = None
    on: Day | None = None
    expires_after: str = "6h"
    next: Ident

    @model_validator(mode="after")
    def _when(self) -> ScheduleStep:
        if (self.after is None) == (self.at is None):
            raise ValueError("a schedule step needs exactly one of 'after' or 'at'")
        if self.on is not None and self.at is None:
            raise ValueError("'on' names the day of an 'at' time, which is missing")
        if self.after is not None:
            parse_duration(self.after)
        if self.at is not None and not _HHMM.match(self.at):
            raise ValueError(f"'at' must be a 24-hour time like '19:00', not {self.at!r}")
        parse_duration(self.expires_after)
        return self

    def delay(self) -> timedelta | None:
        return parse_duration(self.after) if self.after else None

    def local_time(self) -> time | None:
        return time.fromisoformat(self.at) if self.at else None

    def weekday(self) -> int | None:
        """The `on` day as `datetime.weekday` counts it (0 is Monday), if given."""
        return DAYS.index(self.on) if self.on is not None else None

    def described(self) -> str:
        """When, for authors' views (transcripts, diagrams): "in 1h", "at 09:00 on Saturday"."""
        if self.after is not None:
            return f"in {self.after}"
        weekday = self.weekday()
        return f"at {self.at}" + ("" if weekday is None else f" on {DAY_NAMES[weekday]}")

    def expiry(self) -> timedelta:
        return parse_duration(self.expires_after)

    def targets(self) -> list[str]:
        return [self.next]


class HandoffStep(_Step):
    """Ends this flow and starts another from its beginning.

    `set` gives the next flow starting values for variables it declares (the safety
    screen tells the danger flow the answer was "not sure", so it can speak gently);
    nothing else of this flow goes along."""

    kind: Literal["handoff"]
    flow: Ident
    set: dict[Ident, VarValue] = Field(default_factory=dict)


class EndStep(_Varied):
    kind: Literal["end"]


ProfileField = Literal[
    "consent",
    "adult",
    "country",
    "unsafe",
    "screened",
    "role",
    "zone",
    "quiet_start",
    "quiet_end",
    "checkin_cadence",
    "checkin_time",
    "checkin_weekday",
    "checkin_pause_days",
]
_BOOL_FIELDS = ("consent", "adult", "unsafe", "screened")
# Profile values a flow may read: declare the variable (with a default for when the
# profile has none) and the engine fills it in when the flow starts. `screened` is
# "yes" or "no" (has the person had the safety questions?): the pause offers someone
# never screened a next move that needs none before its first reframe. It steers
# wording and order only; the `screen` action still asks the questions by the profile.
PROFILE_VARIABLES = ("role", "country", "zone", "checkin_cadence", "checkin_time", "screened")
# Values a flow may read from the person's journal (taps, never free text), filled in
# the same way when declared: `last_helped`, the latest answer to "What helped?" after
# a pause (an option id of followup/helped), unless it was "nothing".
MEMORY_VARIABLES = ("last_helped",)
ROLES = ("contact", "space", "both", "unsure")


class RememberStep(_Step):
    """Writes to the person's profile (not the conversation), then moves on.

    `consent: false` withdraws consent, which also cancels every planned message.
    Values may use templates, such as `country: "{country}"`.
    """

    kind: Literal["remember"]
    set: dict[ProfileField, bool | str] = Field(min_length=1)
    next: Ident

    @model_validator(mode="after")
    def _value_types(self) -> RememberStep:
        for name, value in self.set.items():
            wants_text = name not in _BOOL_FIELDS
            if wants_text != isinstance(value, str):
                kind = 'text such as "{country}"' if wants_text else "true or false"
                raise ValueError(f"'{name}' must be {kind}")
        return self

    def targets(self) -> list[str]:
        return [self.next]

    def templated(self) -> tuple[str, ...]:
        return (*self.text, *(v for v in self.set.values() if isinstance(v, str)))


class ActionStep(_Step):
    """Something only the engine can do.

    `resume` starts the flow a gate (consent, screen) interrupted, and ends this one;
    `export` sends everything stored about the person as a JSON file, then `next`;
    `forget` deletes everything about them and ends the conversation;
    `reschedule_checkins` replaces the pending check-in after its settings change;
    `hold_messages` cancels every planned message, so nothing arrives unasked on a
    screen someone else may see (after a danger signal or "not safe right now");
    `insights` shows what the journal says, with a chart, and sets `has_pauses` and
    `weekly`; `insights_week` sets `news` and `week_line` for the weekly offer;
    `weekly_insights_on` and `_off` opt in to it and out;
    `screen` runs the safety screen (or the danger route) here, right before a flow's
    first reframe, when the flow defers it (`before_gates`), then goes on to `next`.
    The partner link's (dialogs/link): `invite_partner` makes an invitation,
    `accept_partner` and `decline_partner` answer the one the person opened, and
    `offer_signal` shows the `signal` it names with its exact words and a Send
    button, when the person has a link (otherwise it says nothing).
    """

    kind: Literal["action"]
    do: Literal[
        "resume",
        "export",
        "forget",
        "reschedule_checkins",
        "hold_messages",
        "insights",
        "insights_week",
        "weekly_insights_on",
        "weekly_insights_off",
        "invite_partner",
        "accept_partner",
        "decline_partner",
        "offer_signal",
        "screen",
    ]
    next: Ident | None = None
    # For `offer_signal`: space, back, more_time, talk or pause (dialogs.link.signals).
    signal: Literal["space", "back", "more_time", "talk", "pause"] | None = None

    @model_validator(mode="after")
    def _next_only_for_export(self) -> ActionStep:
        if (self.do == "offer_signal") != (self.signal is not None):
            raise ValueError("'offer_signal' needs a 'signal', and only it takes one")
        goes_on = self.do not in ("resume", "forget")
        if goes_on != (self.next is not None):
            raise ValueError("every action but 'resume' and 'forget' needs a 'next'")
        return self

    def targets(self) -> list[str]:
        return [self.next] if self.next else []


Step = Annotated[
    MessageStep
    | ChoiceStep
    | ScaleStep
    | AskStep
    | BranchStep
    | ScheduleStep
    | HandoffStep
    | EndStep
    | RememberStep
    | ActionStep,
    Field(discriminator="kind"),
]
WAITING_KINDS = (ChoiceStep, ScaleStep, AskStep)
TERMINAL_KINDS = (HandoffStep, EndStep)


def is_terminal(step: object) -> bool:
    return isinstance(step, TERMINAL_KINDS) or (
        isinstance(step, ActionStep) and step.do in ("resume", "forget")
    )


class Flow(_Strict):
    id: Ident
    title: str = Field(min_length=1, max_length=80)
    description: str = ""
    # Personal flows are never shown in a group chat; adapters move them to private.
    private: bool = True
    # Push-pull reframes or "talk to your partner" suggestions: such a flow is held
    # back while the person may be unsafe, and the safety screen comes first.
    reframes: bool = False
    # May run before the person has agreed to the terms (welcome, privacy, safety).
    before_consent: bool = False
    # False for flows whose answers must never be kept (the safety screen).
    journal: bool = True
    # Needs the person's timezone (check-in times): the timezone flow runs first.
    needs_zone: bool = False
    # For a flow that is planned for later: how the guide names it to the person
    # ("your reminder to go back"), e.g. when /stop asks before cancelling it.
    planned_as: str = Field(default="", max_length=80)
    # Help first: these steps (the pause's breathing) may run before the agreement and
    # the safety screen. They store nothing and reframe nothing; leaving them asks for
    # the agreement, and the safety screen waits for an `action: screen` step.
    before_gates: tuple[Ident, ...] = ()
    start: Ident | None = None
    variables: dict[Ident, VarValue] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _opening_stores_and_reframes_nothing(self) -> Flow:
        if not self.before_gates:
            return self
        kinds = {s.id: s.kind for s in self.steps}
        for step_id in self.before_gates:
            if kinds.get(step_id) not in ("message", "choice", "branch"):
                raise ValueError(
                    f"before_gates: {step_id!r} must be a message, choice or branch step of "
                    "this flow: what runs before the agreement stores nothing"
                )
        if self.start_id not in self.before_gates:
            raise ValueError("before_gates must include the flow's first step")
        screens = any(isinstance(s, ActionStep) and s.do == "screen" for s in self.steps)
        if self.reframes and not screens:
            raise ValueError(
                "a reframing flow with before_gates needs an 'action: screen' step before "
                "its first reframe"
            )
        return self

    @property
    def start_id(self) -> str:
        return self.start or self.steps[0].id

    @cached_property
    def read_variables(self) -> frozenset[str]:
        """Variables some text or branch of this flow actually uses."""
        names = {n for s in self.steps for t in s.templated() for n in template_fields(t)}
        names |= {c.when.var for s in self.steps if isinstance(s, BranchStep) for c in s.cases}
        return frozenset(names)

    @cached_property
    def _steps_by_id(self) -> dict[str, Step]:
        # The engine looks a step up for every step it runs; the first of a duplicated
        # id wins, as before (the content check reports duplicates anyway).
        by_id: dict[str, Step] = {}
        for s in self.steps:
            by_id.setdefault(s.id, s)
        return by_id

    def step(self, step_id: str) -> Step | None:
        return self._steps_by_id.get(step_id)
