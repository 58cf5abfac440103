"""The brevity budget: what a person reads before they can tap or answer.

Someone mid-conflict, often on a phone late at night, reads one screen at most. So the
content check counts, along every way through the flows, the texts shown in a row
without a chance to answer: from a flow's start, or from any answer to a waiting step
(choice, scale, ask), up to and including the next waiting step's question, or the end.
A handoff carries the count into the next flow's start, because the person sees one
unbroken run of messages. More than `MAX_WORDS` words or `MAX_MESSAGES` messages is an
error at the step where the run crosses the budget.

One exemption, and only one: in the safety flows, a text that is exactly the helpline
list (`{resources}`) is not counted, since those numbers are what the person came for.
Every other word in a safety flow counts like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dialogs.flows.errors import ContentError
from dialogs.flows.model import WAITING_KINDS, Flow, HandoffStep, Step, is_terminal
from dialogs.flows.yaml_source import SourceMap

MAX_WORDS = 60
MAX_MESSAGES = 2
# Flows that may show the helpline list on top of the budget.
# crisis_again is the crisis flow for a second signal in one conversation.
SAFETY_FLOWS = frozenset(
    {"crisis", "crisis_again", "crisis_check", "danger", "unsafe", "sos", "minor"}
)
HELPLINES = "{resources}"


@dataclass(frozen=True, slots=True)
class _Run:
    origin: str  # "flow/step" the run starts from, for the error message
    words: int = 0
    messages: int = 0


def counted(flow_id: str, step: Step) -> tuple[int, int]:
    """Words and messages of a step that count toward the budget; of a step with
    `variants`, the most of any wording, since any of them may be the one shown."""
    exempt = flow_id in SAFETY_FLOWS
    words, messages = 0, 0
    for wording in step.wordings():
        texts = [t for t in wording if not (exempt and t.strip() == HELPLINES)]
        words = max(words, sum(len(t.split()) for t in texts))
        messages = max(messages, len(texts))
    return words, messages


def check_brevity(
    flows: Mapping[str, Flow], sources: Mapping[str, SourceMap]
) -> list[ContentError]:
    """Every step where a run of texts without a chance to answer exceeds the budget."""
    worst: dict[tuple[str, str], tuple[int, int, str]] = {}
    for flow_id, flow in flows.items():
        starts = [flow.start_id] + [
            t for s in flow.steps if isinstance(s, WAITING_KINDS) for t in s.targets()
        ]
        for step_id in dict.fromkeys(starts):
            _walk(flows, flow_id, step_id, _Run(f"{flow_id}/{step_id}"), set(), worst)
    errors = []
    for (flow_id, step_id), (words, messages, origin) in sorted(worst.items()):
        flow = flows[flow_id]
        index = next(i for i, s in enumerate(flow.steps) if s.id == step_id)
        line = sources[flow_id].line_for(("steps", index, "text"))
        errors.append(
            ContentError(
                sources[flow_id].file,
                line,
                f"{words} words in {messages} message(s) before the person can tap or answer "
                f"(counting from {origin}); the budget is {MAX_WORDS} words and "
                f"{MAX_MESSAGES} messages: shorten it, or put the rest behind a "
                f"'Tell me more' choice",
                flow_id,
                step_id,
            )
        )
    return errors


def _walk(
    flows: Mapping[str, Flow],
    flow_id: str,
    step_id: str,
    run: _Run,
    seen: set[tuple[str, str]],
    worst: dict[tuple[str, str], tuple[int, int, str]],
) -> None:
    flow = flows.get(flow_id)
    step = flow.step(step_id) if flow is not None else None
    if step is None or (flow_id, step_id) in seen:
        return  # a dangling target or a silent loop: other checks report those
    words, messages = counted(flow_id, step)
    run = _Run(run.origin, run.words + words, run.messages + messages)
    key = (flow_id, step_id)
    if run.words > MAX_WORDS or run.messages > MAX_MESSAGES:
        if key not in worst or (run.words, run.messages) > worst[key][:2]:
            worst[key] = (run.words, run.messages, run.origin)
        return  # one error per run, where it crosses: the fix there shortens the rest
    if isinstance(step, WAITING_KINDS):
        return
    if isinstance(step, HandoffStep):
        target = flows.get(step.flow)
        if target is not None:
            _walk(flows, step.flow, target.start_id, run, seen | {key}, worst)
        return
    if is_terminal(step):
        return
    for target_id in dict.fromkeys(step.targets()):
        _walk(flows, flow_id, target_id, run, seen | {key}, worst)
