"""A flow as a diagram: Mermaid for anywhere that renders it, DOT for Graphviz.

Both come from one small graph, so they always show the same nodes and edges.
Node ids are prefixed (`s_` for steps, `to_` for flows handed off to) because step
ids are free to be Mermaid keywords such as `end`, and a step called `to_export`
must not merge with the node of the flow `export`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dialogs.flows.model import (
    ActionStep,
    BranchStep,
    ChoiceStep,
    Condition,
    Flow,
    HandoffStep,
    RememberStep,
    ScheduleStep,
    Step,
    is_terminal,
)

EXCERPT_CHARS = 40
Shape = Literal["box", "decision", "stadium", "flow"]


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    title: str  # "ground · choice", or a flow id
    excerpt: str
    shape: Shape


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str


def graph(flow: Flow) -> tuple[list[Node], list[Edge]]:
    """Nodes (steps in file order, then flows handed off to) and edges (in step order)."""
    nodes = [Node(_key(s.id), f"{s.id} · {s.kind}", _excerpt(s), _shape(s)) for s in flow.steps]
    edges: list[Edge] = []
    flows: list[str] = []
    for s in flow.steps:
        edges += [Edge(_key(s.id), _key(target), label) for target, label in _exits(s)]
        if isinstance(s, HandoffStep):
            edges.append(Edge(_key(s.id), _flow_key(s.flow), ""))
            if s.flow not in flows:
                flows.append(s.flow)
    nodes += [Node(_flow_key(f), f, "", "flow") for f in flows]
    return nodes, edges


def mermaid(flow: Flow) -> str:
    nodes, edges = graph(flow)
    lines = ["flowchart TD"]
    for n in nodes:
        text = _mermaid_escape(n.title)
        if n.excerpt:
            text += "<br/>" + _mermaid_escape(n.excerpt)
        open_, close = {
            "box": ('["', '"]'),
            "decision": ('{"', '"}'),
            "stadium": ('(["', '"])'),
            "flow": ('[["', '"]]'),
        }[n.shape]
        lines.append(f"    {n.key}{open_}{text}{close}")
    for e in edges:
        arrow = f'-->|"{_mermaid_escape(e.label)}"|' if e.label else "-->"
        lines.append(f"    {e.source} {arrow} {e.target}")
    return "\n".join(lines) + "\n"


def dot(flow: Flow) -> str:
    nodes, edges = graph(flow)
    lines = [
        f"digraph {_dot_quote(flow.id)} {{",
        "    rankdir=TB;",
        '    node [fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for n in nodes:
        label = n.title + (f"\n{n.excerpt}" if n.excerpt else "")
        attrs = {
            "box": "shape=box",
            "decision": "shape=diamond",
            "stadium": 'shape=box, style="rounded"',
            "flow": "shape=box, peripheries=2",
        }[n.shape]
        lines.append(f"    {n.key} [label={_dot_quote(label)}, {attrs}];")
    for e in edges:
        label = f" [label={_dot_quote(e.label)}]" if e.label else ""
        lines.append(f"    {e.source} -> {e.target}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def condition_text(cond: Condition) -> str:
    """A branch condition as an author would say it: `urge = reach`."""
    if cond.equals is not None:
        return f"{cond.var} = {cond.equals}"
    if cond.one_of is not None:
        return f"{cond.var} is one of {', '.join(str(v) for v in cond.one_of)}"
    if cond.at_least is not None:
        return f"{cond.var} ≥ {cond.at_least}"
    if cond.below is not None:
        return f"{cond.var} < {cond.below}"
    return f"{cond.var} is {'set' if cond.is_set else 'not set'}"


def _exits(step: Step) -> list[tuple[str, str]]:
    """(target step, edge label) for every way out of `step` within the flow."""
    if isinstance(step, ChoiceStep):
        return [(o.next, o.label) for o in step.options]
    if isinstance(step, BranchStep):
        cases = [(c.next, condition_text(c.when)) for c in step.cases]
        return [*cases, (step.otherwise, "otherwise")]
    return [(t, "") for t in step.targets()]


def _shape(step: Step) -> Shape:
    if isinstance(step, BranchStep):
        return "decision"
    if is_terminal(step) and not isinstance(step, HandoffStep):
        return "stadium"
    return "box"


def _excerpt(step: Step) -> str:
    """What the step does when that is the point (a follow-up, a profile write...),
    else the start of its first text."""
    if isinstance(step, ScheduleStep):
        text = f"follow-up: {step.flow} {step.described()}"
    elif step.text:
        text = " ".join(step.text[0].split())
    elif isinstance(step, RememberStep):
        text = "remembers: " + ", ".join(step.set)
    elif isinstance(step, ActionStep):
        text = f"do: {step.do}"
    else:
        text = ""
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 1].rstrip() + "…"
    return text


def _key(step_id: str) -> str:
    return f"s_{step_id}"


def _flow_key(flow_id: str) -> str:
    return f"to_{flow_id}"


# Mermaid reads `#name;` or `#123;` as an entity, so `#` goes first; the others would
# end a label or start a shape, and `<`/`>` could pass for HTML.
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "[": "#91;",
    "]": "#93;",
    "(": "#40;",
    ")": "#41;",
    "{": "#123;",
    "}": "#125;",
    "<": "#60;",
    ">": "#62;",
    "|": "#124;",
    "&": "#38;",
}
_MERMAID_SPECIAL = re.compile("[" + re.escape("".join(_MERMAID_ENTITIES)) + "]")


def _mermaid_escape(text: str) -> str:
    flat = " ".join(text.split())
    return _MERMAID_SPECIAL.sub(lambda m: _MERMAID_ENTITIES[m.group(0)], flat)


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
