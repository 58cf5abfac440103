"""The graph pass: checks that need the whole flow (and the other flows) to see.

Every check appends to one list, so an author sees all problems at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from dialogs.flows.errors import ContentError
from dialogs.flows.model import (
    MAX_LABEL,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT,
    WAITING_KINDS,
    AskStep,
    BranchStep,
    ChoiceStep,
    Flow,
    HandoffStep,
    ScaleStep,
    ScheduleStep,
    Step,
    is_terminal,
)
from dialogs.flows.templates import TemplateError, template_fields
from dialogs.flows.yaml_source import SourceMap
from dialogs.payloads import PAYLOAD_TURN_RESERVE, payload_prefix

Report = Callable[[str, str | None, tuple[str | int, ...]], None]


@dataclass(frozen=True, slots=True)
class Edge:
    target: str
    sets: frozenset[str]


def edges_of(step: Step) -> list[Edge]:
    """Where a step can go, and which variables are certainly set on the way."""
    if isinstance(step, ChoiceStep):
        base = {step.save_as} if step.save_as else set()
        return [Edge(o.next, frozenset(base | set(o.set) | set(o.add))) for o in step.options]
    if isinstance(step, ScaleStep | AskStep):
        return [Edge(step.next, frozenset({step.save_as}))]
    return [Edge(t, frozenset()) for t in step.targets()]


def check_flow(flow: Flow, source: SourceMap, known_flows: Iterable[str]) -> list[ContentError]:
    errors: list[ContentError] = []
    index = {s.id: i for i, s in enumerate(flow.steps)}

    def report(message: str, step_id: str | None, loc: tuple[str | int, ...]) -> None:
        errors.append(ContentError(source.file, source.line_for(loc), message, flow.id, step_id))

    def step_loc(step_id: str, *rest: str | int) -> tuple[str | int, ...]:
        return ("steps", index.get(step_id, -1), *rest)

    _check_ids(flow, report)
    if flow.start is not None and flow.start not in index:
        report(f"start names step {flow.start!r}, which does not exist", None, ("start",))
        return errors
    _check_targets(flow, index, known_flows, report, step_loc)
    if any(e.message.startswith("'next'") for e in errors):
        # Reachability is meaningless over dangling edges; those errors say enough.
        _check_limits(flow, report, step_loc)
        return errors
    reachable = _reachable(flow)
    for step in flow.steps:
        if step.id not in reachable:
            report(
                f"step {step.id!r} can never be reached from the start", step.id, step_loc(step.id)
            )
    _check_endings(flow, reachable, report, step_loc)
    _check_variables(flow, reachable, report, step_loc)
    _check_limits(flow, report, step_loc)
    return errors


def _check_ids(flow: Flow, report: Report) -> None:
    seen: dict[str, int] = {}
    for i, step in enumerate(flow.steps):
        if step.id in seen:
            report(
                f"duplicate step id {step.id!r} (also step #{seen[step.id] + 1})",
                step.id,
                ("steps", i, "id"),
            )
        else:
            seen[step.id] = i
        if isinstance(step, ChoiceStep):
            ids: set[str] = set()
            for j, o in enumerate(step.options):
                if o.id in ids:
                    report(
                        f"duplicate option id {o.id!r}", step.id, ("steps", i, "options", j, "id")
                    )
                ids.add(o.id)


def _check_targets(
    flow: Flow,
    index: dict[str, int],
    known_flows: Iterable[str],
    report: Report,
    step_loc: Callable[..., tuple[str | int, ...]],
) -> None:
    flows = set(known_flows)
    for step in flow.steps:
        if isinstance(step, ChoiceStep):
            for j, o in enumerate(step.options):
                if o.next not in index:
                    report(
                        f"'next' of option {o.id!r} names missing step {o.next!r}",
                        step.id,
                        step_loc(step.id, "options", j, "next"),
                    )
        elif isinstance(step, BranchStep):
            for j, c in enumerate(step.cases):
                if c.next not in index:
                    report(
                        f"'next' of case {j + 1} names missing step {c.next!r}",
                        step.id,
                        step_loc(step.id, "cases", j, "next"),
                    )
            if step.otherwise not in index:
                report(
                    f"'next' ('otherwise') names missing step {step.otherwise!r}",
                    step.id,
                    step_loc(step.id, "otherwise"),
                )
        else:
            for t in step.targets():
                if t not in index:
                    report(f"'next' names missing step {t!r}", step.id, step_loc(step.id, "next"))
        if isinstance(step, ScheduleStep | HandoffStep) and step.flow not in flows:
            report(
                f"names flow {step.flow!r}, which does not exist",
                step.id,
                step_loc(step.id, "flow"),
            )


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start_id]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        step = flow.step(current)
        if step is not None:
            todo.extend(step.targets())
    return seen


def _check_endings(
    flow: Flow, reachable: set[str], report: Report, step_loc: Callable[..., tuple[str | int, ...]]
) -> None:
    # Backwards search from terminal steps finds every step that can still end.
    preds: dict[str, set[str]] = {s.id: set() for s in flow.steps}
    for s in flow.steps:
        for t in s.targets():
            preds.setdefault(t, set()).add(s.id)
    can_end = {s.id for s in flow.steps if is_terminal(s)}
    todo = list(can_end)
    while todo:
        for p in preds.get(todo.pop(), ()):
            if p not in can_end:
                can_end.add(p)
                todo.append(p)
    for s in flow.steps:
        if s.id in reachable and s.id not in can_end:
            report(f"from step {s.id!r} no path ever reaches an end", s.id, step_loc(s.id))
    # A loop with no question in it would spin forever without waiting for the person.
    silent = {s.id for s in flow.steps if not isinstance(s, WAITING_KINDS) and not is_terminal(s)}
    for s in flow.steps:
        if s.id in silent and s.id in reachable and _on_silent_cycle(flow, s.id, silent):
            report(
                f"step {s.id!r} is on a loop that never waits for an answer", s.id, step_loc(s.id)
            )


def _on_silent_cycle(flow: Flow, start: str, silent: set[str]) -> bool:
    first = flow.step(start)
    todo = [t for t in first.targets() if t in silent] if first is not None else []
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current == start:
            return True
        if current in seen:
            continue
        seen.add(current)
        step = flow.step(current)
        if step is not None:
            todo.extend(t for t in step.targets() if t in silent)
    return False


def _check_variables(
    flow: Flow, reachable: set[str], report: Report, step_loc: Callable[..., tuple[str | int, ...]]
) -> None:
    """Must-be-set analysis: a template may only use a variable that is set on every
    path to its step (or declared with a default), so rendering never falls back to
    an empty string in front of a person."""
    declared = frozenset(flow.variables)
    everything = frozenset(_all_vars(flow)) | declared
    must: dict[str, frozenset[str]] = {s.id: everything for s in flow.steps}
    must[flow.start_id] = declared
    changed = True
    while changed:
        changed = False
        incoming: dict[str, frozenset[str] | None] = {s.id: None for s in flow.steps}
        incoming[flow.start_id] = declared
        for s in flow.steps:
            if s.id not in reachable:
                continue
            for e in edges_of(s):
                out = must[s.id] | e.sets
                prev = incoming.get(e.target)
                incoming[e.target] = out if prev is None else prev & out
        for sid, value in incoming.items():
            if value is not None and value != must[sid]:
                must[sid] = value
                changed = True
    may = everything
    for s in flow.steps:
        if s.id not in reachable:
            continue
        for text, where in _templated_with_place(s):
            try:
                names = template_fields(text)
            except TemplateError as exc:
                report(str(exc), s.id, step_loc(s.id, *where))
                continue
            for name in names:
                if name not in must[s.id]:
                    hint = "" if name in may else " (nothing in this flow sets it)"
                    report(
                        f"template variable {{{name}}} may not be set here{hint}",
                        s.id,
                        step_loc(s.id, *where),
                    )
        if isinstance(s, BranchStep):
            for j, c in enumerate(s.cases):
                tested = {
                    "var": c.when.var,
                    "below_var": c.when.below_var,
                    "above_var": c.when.above_var,
                }
                for key, var in tested.items():
                    if var is None or var in may:
                        continue
                    report(
                        f"branch tests variable {var!r}, which nothing sets",
                        s.id,
                        step_loc(s.id, "cases", j, "when", key),
                    )
        if isinstance(s, ChoiceStep):
            for j, o in enumerate(s.options):
                for name in o.add:
                    if not isinstance(flow.variables.get(name), int):
                        report(
                            f"option {o.id!r} adds to {name!r}, which is not declared with a"
                            " number under 'variables' (say `"
                            f"{name}: 0`)",
                            s.id,
                            step_loc(s.id, "options", j, "add"),
                        )


def _templated_with_place(step: Step) -> list[tuple[str, tuple[str | int, ...]]]:
    """Each templated string of a step with where it is in the file: a variant's
    texts under `variants`, everything else counted along `text` as before."""
    placed: list[tuple[str, tuple[str | int, ...]]] = []
    for w, wording in enumerate(step.wordings()[1:]):
        for j, text in enumerate(wording):
            placed.append((text, ("variants", w) if len(wording) == 1 else ("variants", w, j)))
    variant_texts = len(placed)
    others = step.templated()
    if variant_texts:
        # `templated()` lists `text` first, then the variants' texts.
        others = step.text
    return [(t, ("text", j)) for j, t in enumerate(others)] + placed


def _all_vars(flow: Flow) -> set[str]:
    names: set[str] = set()
    for s in flow.steps:
        for e in edges_of(s):
            names |= e.sets
    return names


def _check_limits(
    flow: Flow, report: Report, step_loc: Callable[..., tuple[str | int, ...]]
) -> None:
    for s in flow.steps:
        for w, wording in enumerate(s.wordings()):
            # The first wording is `text`; the others are `variants`, reported there.
            where: tuple[str | int, ...] = ("text",) if w == 0 else ("variants", w - 1)
            for j, text in enumerate(wording):
                one_line = len(wording) == 1 and w > 0
                at = step_loc(s.id, *where) if one_line else step_loc(s.id, *where, j)
                if len(text) > MAX_TEXT:
                    report(
                        f"text is {len(text)} characters; the limit is {MAX_TEXT} (Discord)",
                        s.id,
                        at,
                    )
                if not text.strip():
                    report("text is empty", s.id, at)
            joined = s.messages(wording)
            if len(joined) == 1 and len(wording) > 1 and len(joined[0]) > MAX_TEXT:
                report(
                    f"the step's texts go out as one message of {len(joined[0])} characters; "
                    f"the limit is {MAX_TEXT} (Discord): shorten them, or set pause_between: true",
                    s.id,
                    step_loc(s.id, *where),
                )
        if s.pause_between and len(s.text) < 2:
            report(
                "pause_between needs two or more texts to pause between",
                s.id,
                step_loc(s.id, "pause_between"),
            )
        if isinstance(s, ChoiceStep):
            for j, o in enumerate(s.options):
                if len(o.label) > MAX_LABEL:
                    report(
                        f"label of option {o.id!r} is {len(o.label)} characters; "
                        f"the limit is {MAX_LABEL}",
                        s.id,
                        step_loc(s.id, "options", j, "label"),
                    )
                size = len(payload_prefix(flow.id, s.id, o.id).encode()) + PAYLOAD_TURN_RESERVE
                if size > MAX_PAYLOAD_BYTES:
                    report(
                        f"button payload for option {o.id!r} needs {size} bytes; Telegram allows "
                        f"{MAX_PAYLOAD_BYTES}: shorten the flow, step or option id",
                        s.id,
                        step_loc(s.id, "options", j, "id"),
                    )


def check_handoff_values(
    flows: Mapping[str, Flow], sources: Mapping[str, SourceMap]
) -> list[ContentError]:
    """A handoff's `set` may only give values the next flow declares under
    `variables`: anything else would be dropped without a word."""
    errors: list[ContentError] = []
    for flow_id, flow in flows.items():
        for i, step in enumerate(flow.steps):
            if not isinstance(step, HandoffStep) or step.flow not in flows:
                continue
            declared = flows[step.flow].variables
            for name in step.set:
                if name not in declared:
                    errors.append(
                        ContentError(
                            sources[flow_id].file,
                            sources[flow_id].line_for(("steps", i, "set")),
                            f"hands {name!r} to flow {step.flow!r}, which does not declare it"
                            " under 'variables'",
                            flow_id,
                            step.id,
                        )
                    )
    return errors
