"""Runs flows: starts one (through its gates), takes steps until one waits for the
person, and applies their answer to the step they are at.

Each step kind has its own `_run_<kind>`, which returns a `StepResult` (continue
with a step, wait, or end); `run` is the only loop. Typed text and button presses
reach a step through `choose`, `rate` and `answer_text`; what is unclear is asked
again here, so the engine only routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dialogs.actions import Actions
from dialogs.content import Content
from dialogs.events import Choice, Outbound
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
    RememberStep,
    ScaleStep,
    ScheduleStep,
    Step,
)
from dialogs.flows.templates import render, template_fields
from dialogs.flows.typed_values import parse_time_of_day, parse_zone
from dialogs.followups.checkins import Checkins
from dialogs.insights.report import InsightsReport
from dialogs.matching import match_option, parse_number
from dialogs.memory import Memory
from dialogs.payloads import Payload, encode_payload
from dialogs.profile_updates import profile_variables
from dialogs.safety.gates import consent_gate, gate_at_start, screen_gate
from dialogs.steps import Continue, End, StepResult, Wait
from dialogs.store import VarValue
from dialogs.turn import Turn

if TYPE_CHECKING:
    from dialogs.link.partner import PartnerLinks

# A flow that runs this many steps without waiting is broken; the content check
# rejects silent loops, so this only guards against a bug in the engine itself.
MAX_STEPS_PER_TURN = 200
SCALE_LABELS = tuple(str(n) for n in range(11))

# Formats the helplines for a signal ("crisis" or "danger") and a country code (or
# None when unknown) as one message.
ResourceText = Callable[[str, str | None], str]
# Flows whose {resources} the runner fills in, and with which helplines.
RESOURCE_FLOWS = {
    "crisis": "crisis",
    "crisis_again": "crisis",
    "minor": "crisis",
    "danger": "danger",
    "unsafe": "danger",
}
# Variables the runner fills for any flow that declares them: the person's
# emergency number (or the common ones), and helplines by kind.
HELP_VARIABLES = {"emergency": "emergency", "crisis_lines": "crisis", "danger_lines": "danger"}
# Starting one of these is a safety referral, counted anonymously.
REFERRAL_FLOWS = ("crisis", "crisis_again", "danger")
# Carried through a gate flow, so the flow it interrupted midway resumes at that step,
# with what it knew.
THEN_STEP = "then_step"
HELD = "_held"
WAITING_STEPS = ChoiceStep | ScaleStep | AskStep


class FlowRunner:
    def __init__(
        self,
        content: Content,
        resource_text: ResourceText,
        checkins: Checkins,
        links: PartnerLinks | None = None,
    ) -> None:
        self._content = content
        self._resource_text = resource_text
        self._checkins = checkins
        insights = InsightsReport(content, checkins)
        self._actions = Actions(checkins, content.copy.export_ready, insights, links)
        self._memory = Memory()

    # ------------------------------------------------------------- starting and running

    async def start(
        self,
        turn: Turn,
        flow_id: str,
        given: Mapping[str, VarValue] | None = None,
        *,
        at_step: str | None = None,
        held: Mapping[str, VarValue] | None = None,
    ) -> None:
        """Start `flow_id`, or first the gate it needs (consent, the safety screen...),
        which resumes `flow_id` when it is through. `given` are starting values (a
        handoff's `set`) for variables `flow_id` declares. `at_step` and `held` resume
        a flow a gate interrupted midway, where it was and with what it knew."""
        flow = self._content.flows[flow_id]
        variables: dict[str, VarValue] = dict(flow.variables)
        variables.update({k: v for k, v in (given or {}).items() if k in flow.variables})
        variables.update(held or {})
        if at_step is not None and flow.step(at_step) is None:
            at_step, variables = None, dict(flow.variables)  # the flow changed meanwhile
        if at_step is None:
            gate = gate_at_start(flow, turn.profile)
        else:
            gate = consent_gate(flow, turn.profile)
        if gate is not None:
            await self._hold(turn, gate, flow_id, at_step, variables if at_step else None)
            return
        if flow.before_gates and at_step is None and turn.profile.consent_at is None:
            # Help comes before the agreement, but what the guide is comes first.
            turn.out.append(Outbound(self._content.copy.before_agreement))
        await self._open(turn, flow, variables, at_step or flow.start_id)

    async def _hold(
        self,
        turn: Turn,
        gate: str,
        flow_id: str,
        at_step: str | None,
        held: Mapping[str, VarValue] | None,
    ) -> None:
        """Run the gate flow `gate`; its `resume` goes back to `flow_id` (at `at_step`
        with `held`, when it stopped midway)."""
        flow = self._content.flows[gate]
        variables: dict[str, VarValue] = {**flow.variables, "then": flow_id}
        if at_step is not None:
            variables[THEN_STEP] = at_step
            variables[HELD] = json.dumps(dict(held or {}))
        await self._open(turn, flow, variables, flow.start_id)

    async def _open(
        self, turn: Turn, flow: Flow, variables: dict[str, VarValue], step_id: str
    ) -> None:
        # Help lists the commands from the one list the menus use, so it cannot drift.
        if "commands" in flow.variables:
            variables["commands"] = self._content.commands.listing()
        if "key_commands" in flow.variables:
            variables["key_commands"] = self._content.commands.short_listing()
        variables.update(profile_variables(flow.variables, turn.profile))
        await self._memory.recall(turn, flow, variables)
        signal = RESOURCE_FLOWS.get(flow.id)
        if signal is not None:
            variables["resources"] = self._resource_text(signal, turn.profile.country)
        # Any flow may name helplines or the emergency number by declaring them.
        for name, kind in HELP_VARIABLES.items():
            if name in flow.variables:
                variables[name] = self._resource_text(kind, turn.profile.country)
        if flow.id in REFERRAL_FLOWS and signal is not None:
            await turn.session.count_referral(turn.at.date(), turn.profile.country, signal)
        turn.flow_id = flow.id
        turn.variables = variables
        turn.version = self._content.versions[flow.id]
        await self.run(turn, step_id)

    async def run(self, turn: Turn, step_id: str) -> None:
        for _ in range(MAX_STEPS_PER_TURN):
            flow = self.flow(turn)
            step = flow.step(step_id)
            if step is None:
                raise RuntimeError(f"flow {flow.id!r} has no step {step_id!r}")
            if flow.before_gates and step.id not in flow.before_gates:
                # Leaving the opening: the agreement (and adults only) before anything else.
                gate = consent_gate(flow, turn.profile)
                if gate is not None:
                    await self._hold(turn, gate, flow.id, step.id, turn.variables)
                    return
            result = await self._run_step(turn, flow, step)
            if not isinstance(result, Continue):
                return
            step_id = result.next
        raise RuntimeError(f"flow {turn.flow_id!r} ran {MAX_STEPS_PER_TURN} steps without waiting")

    async def _run_step(self, turn: Turn, flow: Flow, step: Step) -> StepResult:
        wording = await self._memory.wording(turn, flow, step)
        texts = step.messages([render(t, turn.variables) for t in wording])
        if isinstance(step, WAITING_STEPS):
            return self._run_waiting(turn, step, texts, flow.private)
        if isinstance(step, ActionStep) and step.do == "export":
            return await self._actions.run(turn, step, texts)
        turn.out.extend(Outbound(t, private_only=flow.private) for t in texts)
        if isinstance(step, MessageStep):
            return Continue(step.next)
        if isinstance(step, BranchStep):
            return Continue(choose_branch(step, turn.variables))
        if isinstance(step, ScheduleStep):
            await self._checkins.schedule_step(turn, step)
            return Continue(step.next)
        if isinstance(step, HandoffStep):
            await self.start(turn, step.flow, step.set)
            return End()
        if isinstance(step, EndStep):
            turn.idle()
            return End()
        if isinstance(step, RememberStep):
            return await self._actions.remember(turn, step)
        if isinstance(step, ActionStep) and step.do == "resume":
            return await self._run_resume(turn)
        if isinstance(step, ActionStep) and step.do == "screen":
            return await self._run_screen(turn, flow, step)
        assert isinstance(step, ActionStep)
        return await self._actions.run(turn, step, texts)

    def _run_waiting(self, turn: Turn, step: Step, texts: list[str], private: bool) -> Wait:
        turn.turn += 1
        turn.step_id = step.id
        self.present(turn, step, texts, private)
        return Wait()

    async def _run_resume(self, turn: Turn) -> End:
        then = str(turn.variables.get("then", ""))
        at_step = turn.variables.get(THEN_STEP)
        held = _held(turn.variables.get(HELD))
        turn.idle()
        if then in self._content.flows:
            await self.start(turn, then, at_step=str(at_step) if at_step else None, held=held)
        return End()

    async def _run_screen(self, turn: Turn, flow: Flow, step: ActionStep) -> StepResult:
        """Right before a reframe: the safety screen once, or the danger route."""
        gate = screen_gate(flow, turn.profile)
        if gate is None:
            assert step.next is not None
            return Continue(step.next)
        await self._hold(turn, gate, flow.id, step.next, turn.variables)
        return End()

    # ------------------------------------------------------------- answers

    async def choose(self, turn: Turn, step: ChoiceStep, index: int) -> None:
        option = step.options[index]
        if step.save_as:
            turn.variables[step.save_as] = option.id
        turn.variables.update(option.assigned(turn.variables))
        await self._journal(turn, step.id, "choice", option.id)
        await self.run(turn, option.next)

    async def rate(self, turn: Turn, step: ScaleStep, value: int) -> None:
        turn.variables[step.save_as] = value
        await self._journal(turn, step.id, "rating", str(value))
        await self.run(turn, step.next)

    async def answer_text(self, turn: Turn, step: Step, text: str) -> None:
        """Typed text at the step the person is at (never empty here)."""
        copy = self._content.copy
        if isinstance(step, ChoiceStep):
            index = self.match_choice(turn, step, text)
            if index is None and step.other is not None:
                index = [o.id for o in step.options].index(step.other)
            if index is None:
                turn.out.append(Outbound(copy.didnt_catch))
                self.reprompt(turn)
                return
            await self.choose(turn, step, index)
        elif isinstance(step, ScaleStep):
            number = parse_number(text)
            if number is None or not 0 <= number <= 10:
                turn.out.append(Outbound(copy.scale_reprompt))
                self.reprompt(turn)
                return
            await self.rate(turn, step, number)
        elif isinstance(step, AskStep) and step.expect != "text":
            value = _understood(step.expect, text)
            if value is None:
                key = "expect_time" if step.expect == "time" else "expect_zone"
                turn.out.append(Outbound(getattr(copy, key)))
                self.reprompt(turn)
                return
            turn.variables[step.save_as] = value
            await self.run(turn, step.next)
        elif isinstance(step, AskStep):
            if len(text) > step.max_length:
                turn.out.append(Outbound(render(copy.trimmed_answer, {"limit": step.max_length})))
                text = text[: step.max_length]
            # Free text is kept only when this flow uses it; an answer written just to
            # get it out of one's head (an unsent draft) never reaches the store.
            if step.save_as in self.flow(turn).read_variables:
                turn.variables[step.save_as] = text
            await self.run(turn, step.next)
        else:
            await self.recover(turn)

    def match_choice(self, turn: Turn, step: ChoiceStep, text: str) -> int | None:
        """The offered option `text` names by number (as shown), label, id or alias; its
        index in the step, or None if none or several."""
        shown = self.shown_options(turn, step)
        options = [step.options[i] for i in shown]
        index = match_option(text, [[o.label, o.id.replace("_", " "), *o.aliases] for o in options])
        return None if index is None else shown[index]

    def shown_options(self, turn: Turn, step: ChoiceStep) -> list[int]:
        """The indexes of the options offered now: those that fit the person's local hour
        and day of the week."""
        local = turn.at.astimezone(self._checkins.zone_of(turn.profile))
        return [i for i, o in enumerate(step.options) if o.shown_at(local.hour, local.weekday())]

    def pressed(self, turn: Turn, step: ChoiceStep, option_id: str) -> int | None:
        """The index of a pressed option, if it is offered now (a button shown before
        midnight for "This evening" is stale after it)."""
        for i in self.shown_options(turn, step):
            if step.options[i].id == option_id:
                return i
        return None

    async def _journal(self, turn: Turn, step_id: str, kind: str, value: str) -> None:
        # Some answers must never be kept (the safety screen's): their flow says so.
        # And nothing is kept before the person agrees (the breathing step comes first).
        flow = self.flow(turn)
        if flow.journal and turn.profile.consent_at is not None:
            await turn.session.append_journal(turn.user, turn.at, flow.id, step_id, kind, value)

    # ------------------------------------------------------------- showing

    def present(self, turn: Turn, step: Step, texts: list[str], private: bool) -> None:
        """Show a waiting step: its texts, the last carrying the buttons."""
        assert turn.flow_id is not None
        labels: list[tuple[str, str]]
        if isinstance(step, ChoiceStep):
            labels = [
                (step.options[i].id, render(step.options[i].label, turn.variables))
                for i in self.shown_options(turn, step)
            ]
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

    def reprompt(self, turn: Turn) -> None:
        """Show the current question again, with the same buttons still valid."""
        step = self.current_step(turn)
        if step is None or not isinstance(step, WAITING_STEPS):
            if turn.flow_id is None:
                self.idle_menu(turn)
            return
        texts = [render(t, turn.variables) for t in step.text]
        self.present(turn, step, texts[-1:], self.flow(turn).private)

    def idle_menu(self, turn: Turn) -> None:
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

    async def recover(self, turn: Turn) -> None:
        """The stored step no longer exists (content changed): restart that flow."""
        flow_id = turn.flow_id
        turn.out.append(Outbound(self._content.copy.content_changed))
        turn.idle()
        if flow_id is not None and flow_id in self._content.flows:
            await self.start(turn, flow_id)
        else:
            self.idle_menu(turn)

    # ------------------------------------------------------------- where the person is

    def flow(self, turn: Turn) -> Flow:
        assert turn.flow_id is not None
        return self._content.flows[turn.flow_id]

    def current_step(self, turn: Turn) -> Step | None:
        """The step the person is answering, or None when no flow runs or the flow
        changed under them in a way that strands the stored step."""
        if turn.flow_id is None or turn.step_id is None:
            return None
        flow = self._content.flows.get(turn.flow_id)
        if flow is None:
            return None
        step = flow.step(turn.step_id)
        if step is None or not isinstance(step, WAITING_STEPS):
            return None
        if turn.version != self._content.versions[flow.id]:
            # The flow was edited since this step was shown. Keep going only if the
            # step still exists and everything its text needs is already known.
            needed = {n for t in step.text for n in template_fields(t)}
            if not needed <= set(turn.variables):
                return None
            turn.version = self._content.versions[flow.id]
        return step


def _held(raw: VarValue | None) -> dict[str, VarValue]:
    """The variables a gate carried for the flow it interrupted."""
    try:
        held = json.loads(str(raw)) if raw else {}
    except ValueError:
        return {}
    if not isinstance(held, dict):
        return {}
    return {str(k): v for k, v in held.items() if isinstance(v, str | int)}


def _understood(expect: str, text: str) -> str | None:
    if expect == "time":
        parsed = parse_time_of_day(text)
        return parsed.strftime("%H:%M") if parsed else None
    return parse_zone(text)
