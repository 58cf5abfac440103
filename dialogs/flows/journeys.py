"""Taps to help: how many taps a person needs before the first breath and before a
first next step, for a new and a returning person. Printed by `make transcripts` and
written to `docs/transcripts/journeys.md`.

A static walk, like the transcripts, but across flows the way the runner goes: the
gates (`dialogs.safety.gates`, the same functions the runner asks), handoffs,
`resume`, the profile that `remember` steps write. Each journey answers with the
first option at every choice (a safe person's "No" on the safety questions) and one
number on every scale. The engine's own tests walk the same journeys through the real
engine and check that they count the same taps (tests/flows/test_journeys.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dialogs.content import Content
from dialogs.flows.branching import choose_branch
from dialogs.flows.model import (
    ActionStep,
    AskStep,
    BranchStep,
    ChoiceStep,
    EndStep,
    Flow,
    HandoffStep,
    MessageStep,
    Option,
    RememberStep,
    ScaleStep,
    ScheduleStep,
)
from dialogs.profile_updates import profile_variables, remembered
from dialogs.safety.gates import consent_gate, gate_at_start, screen_gate
from dialogs.store import Profile, VarValue

# Where help is, as "flow/step": the breathing prompt, and the choice of a next move
# (counted with its tap: the next step is on screen after it). A tap that leads into
# the safety questions (first_move's "Look at what's going on") is not a next step.
FIRST_BREATH = ("pause/ground",)
NEXT_STEP = ("pause/move", "pause/loud_next", "pause/first_move")
# The goals for a new person.
GOAL_BREATH = 2
GOAL_NEXT_STEP = 8
MAX_TAPS = 60
AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NEW = Profile()
RETURNING = Profile(consent_at=AT, adult=True, country="GB", screened=True)


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    command: str  # the flow the person's first command starts
    profile: Profile
    rating: int = 5
    # Option ids chosen instead of the first, by flow: a safe person on the screen.
    prefer: tuple[tuple[str, str], ...] = (("screen", "no"),)
    # Held to the goals: the quickest way offered. A journey that chooses a longer
    # way (looking closer first) is counted, not held to them.
    goal: bool = True

    @property
    def new(self) -> bool:
        return self.profile.consent_at is None


JOURNEYS = (
    Journey("New person, /start", "start", NEW),
    Journey("New person, /pause", "pause", NEW),
    Journey("New person, /pause, very loud (9 of 10)", "pause", NEW, rating=9),
    Journey(
        "New person, /pause, looking closer first",
        "pause",
        NEW,
        prefer=(("screen", "no"), ("pause", "look")),
        goal=False,
    ),
    Journey("Returning person, /pause", "pause", RETURNING),
)


@dataclass
class Walked:
    journey: Journey
    taps: list[str] = field(default_factory=list)  # what was tapped, as "flow/step: label"
    to_breath: int | None = None
    to_next_step: int | None = None


class _Walk:
    def __init__(self, content: Content, journey: Journey) -> None:
        self.content = content
        self.journey = journey
        self.profile = journey.profile
        self.flow: Flow = content.flows[journey.command]
        self.variables: dict[str, VarValue] = {}
        self.done = Walked(journey)

    def walk(self) -> Walked:
        step_id: str | None = self.start(self.journey.command)
        while step_id is not None and len(self.done.taps) <= MAX_TAPS:
            if self.done.to_next_step is not None:
                break
            step_id = self.step(step_id)
        return self.done

    def start(
        self,
        flow_id: str,
        given: dict[str, VarValue] | None = None,
        at_step: str | None = None,
        held: dict[str, VarValue] | None = None,
    ) -> str:
        flow = self.content.flows[flow_id]
        variables = {**flow.variables, **{k: v for k, v in (given or {}).items()}}
        variables.update(held or {})
        gate = (
            gate_at_start(flow, self.profile)
            if at_step is None
            else consent_gate(flow, self.profile)
        )
        if gate is not None:
            return self.hold(gate, flow_id, at_step, variables)
        # Like the runner: what the profile knows now wins over what a gate held.
        variables.update(profile_variables(flow.variables, self.profile))
        self.flow, self.variables = flow, variables
        return at_step or flow.start_id

    def hold(self, gate: str, flow_id: str, at_step: str | None, held: dict[str, VarValue]) -> str:
        flow = self.content.flows[gate]
        self.variables = {**flow.variables, "then": flow_id}
        if at_step is not None:
            self.variables.update({"then_step": at_step, "_held": json.dumps(held)})
        self.flow = flow
        return flow.start_id

    def step(self, step_id: str) -> str | None:
        flow = self.flow
        step = flow.step(step_id)
        if step is None:
            return None
        if flow.before_gates and step.id not in flow.before_gates:
            gate = consent_gate(flow, self.profile)
            if gate is not None:
                return self.hold(gate, flow.id, step.id, dict(self.variables))
        where = f"{flow.id}/{step.id}"
        if where in FIRST_BREATH and self.done.to_breath is None:
            self.done.to_breath = len(self.done.taps)
        if isinstance(step, ChoiceStep):
            option = self.pick(flow, step)
            self.tap(where, option.label)
            if step.save_as:
                self.variables[step.save_as] = option.id
            self.variables.update(option.assigned(self.variables))
            if where in NEXT_STEP and not leads_to_screen(flow, option):
                self.done.to_next_step = len(self.done.taps)
            return option.next
        if isinstance(step, ScaleStep):
            self.tap(where, str(self.journey.rating))
            self.variables[step.save_as] = self.journey.rating
            return step.next
        if isinstance(step, AskStep):
            self.tap(where, "(a few words)")
            self.variables[step.save_as] = "a few words"
            return step.next
        if isinstance(step, BranchStep):
            return choose_branch(step, self.variables)
        if isinstance(step, RememberStep):
            self.profile = remembered(self.profile, step.set, self.variables, AT)
            return step.next
        if isinstance(step, HandoffStep):
            return self.start(step.flow, dict(step.set))
        if isinstance(step, ActionStep):
            return self.action(flow, step)
        if isinstance(step, MessageStep | ScheduleStep):
            return step.next
        assert isinstance(step, EndStep)
        return None

    def action(self, flow: Flow, step: ActionStep) -> str | None:
        if step.do == "resume":
            then = str(self.variables.get("then", ""))
            at_step = self.variables.get("then_step")
            held = json.loads(str(self.variables.get("_held") or "{}"))
            if then not in self.content.flows:
                return None
            return self.start(then, at_step=str(at_step) if at_step else None, held=held)
        if step.do == "screen":
            gate = screen_gate(flow, self.profile)
            if gate is not None:
                assert step.next is not None
                return self.hold(gate, flow.id, step.next, dict(self.variables))
        if step.do == "forget":
            return None
        return step.next

    def pick(self, flow: Flow, step: ChoiceStep) -> Option:
        return pick(self.journey, flow, step)

    def tap(self, where: str, label: str) -> None:
        self.done.taps.append(f"{where}: {label}")


def pick(journey: Journey, flow: Flow, step: ChoiceStep) -> Option:
    """The option `journey` takes at `step`: its preferred one for the flow, if the
    step has it, else the first."""
    wanted = dict(journey.prefer).get(flow.id)
    for option in step.options:
        if option.id == wanted:
            return option
    return step.options[0]


def leads_to_screen(flow: Flow, option: Option) -> bool:
    """Whether `option` goes on to the safety questions rather than to a next move."""
    target = flow.step(option.next)
    return isinstance(target, ActionStep) and target.do == "screen"


def walk(content: Content, journey: Journey) -> Walked:
    return _Walk(content, journey).walk()


def walk_all(content: Content) -> list[Walked]:
    return [walk(content, j) for j in JOURNEYS]


def table(walked: list[Walked]) -> list[str]:
    """The counts as a Markdown table (also what `make transcripts` prints)."""
    lines = [
        "| journey | taps to the first breath | taps to a first next step |",
        "|---|---|---|",
    ]
    for w in walked:
        lines.append(f"| {w.journey.name} | {_count(w.to_breath)} | {_count(w.to_next_step)} |")
    return lines


def markdown(content: Content) -> str:
    walked = walk_all(content)
    out = [
        "# Taps to help",
        "",
        "How many taps a person needs before the breathing prompt appears, and before a "
        "first next step is on screen (the tap on a next move counts). Walked like the "
        'runner goes, through the agreement, the safety questions (answered "No") and '
        "every handoff, with the first option at every other choice (but one journey: "
        "someone who chooses to look closer before a next step). A person never screened "
        "is offered a next move that needs no safety questions first; the questions come "
        "only on the way to the first push-pull reframe (docs/architecture.md, how an "
        "inbound event travels, item 7).",
        "",
        f"Goals for a new person taking the quickest way offered: the first breath within "
        f"{GOAL_BREATH} taps, a next step within {GOAL_NEXT_STEP}.",
        "",
        *table(walked),
        "",
    ]
    for w in walked:
        out += [f"## {w.journey.name}", ""]
        out += [f"{n}. {tap}" for n, tap in enumerate(w.taps, start=1)] or ["(no taps)"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _count(n: int | None) -> str:
    return "not reached" if n is None else str(n)
