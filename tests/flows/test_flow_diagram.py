"""Flow diagrams: a node per step, an edge per way on, labels that cannot break the syntax."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from dialogs.content import Content
from dialogs.flows.diagram import dot, graph, mermaid
from dialogs.flows.model import BranchStep, ChoiceStep, Flow, HandoffStep

runner = CliRunner()

AWKWARD = 'She said "stop" [now] (really) | #1 <b> & {x}'
FLOW = Flow.model_validate(
    {
        "id": "diagram",
        "title": "Diagram fixture",
        "steps": [
            {
                "id": "ask",
                "kind": "choice",
                "text": AWKWARD.replace("{x}", "{{x}}"),
                "save_as": "urge",
                "options": [
                    {"id": "reach", "label": 'Reach "out" [more]', "next": "by_urge"},
                    {"id": "wait", "label": "Wait | (later)", "next": "by_urge"},
                ],
            },
            {
                "id": "by_urge",
                "kind": "branch",
                "cases": [
                    {"when": {"var": "urge", "equals": "reach"}, "next": "later"},
                    {"when": {"var": "urge", "at_least": 7}, "next": "end"},
                ],
                "otherwise": "to_pause",
            },
            {"id": "later", "kind": "schedule", "flow": "followup", "after": "20m", "next": "end"},
            {"id": "to_pause", "kind": "handoff", "flow": "pause"},
            # `end` is a Mermaid keyword: the node ids must not be bare step ids.
            {"id": "end", "kind": "end", "text": "Bye [for now]."},
        ],
    }
)

# What Mermaid accepts for our shapes, with nothing inside a label that could end it.
MERMAID_NODE = re.compile(
    r'^    (\w+)(\["[^"\[\]]*"\]|\{"[^"{}]*"\}|\(\["[^"\[\]()]*"\]\)|\[\["[^"\[\]]*"\]\])$'
)
MERMAID_EDGE = re.compile(r'^    (\w+) -->(?:\|"([^"|\[\]]*)"\|)? (\w+)$')


def _expected_edges(flow: Flow) -> int:
    count = 0
    for s in flow.steps:
        if isinstance(s, ChoiceStep):
            count += len(s.options)
        elif isinstance(s, BranchStep):
            count += len(s.cases) + 1
        elif isinstance(s, HandoffStep):
            count += 1
        else:
            count += len(s.targets())
    return count


def _parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        node, edge = MERMAID_NODE.match(line), MERMAID_EDGE.match(line)
        assert node or edge, f"not valid for Mermaid: {line!r}"
        if node:
            nodes[node.group(1)] = node.group(2)
        elif edge:
            edges.append((edge.group(1), edge.group(3), edge.group(2) or ""))
    assert all(a in nodes and b in nodes for a, b, _ in edges), "an edge to an undeclared node"
    return nodes, edges


def test_mermaid_has_a_node_per_step_and_an_edge_per_way_on() -> None:
    nodes, edges = _parse_mermaid(mermaid(FLOW))
    assert {f"s_{s.id}" for s in FLOW.steps} | {"to_pause"} == set(nodes)
    assert len(edges) == _expected_edges(FLOW)
    labels = [label for _, _, label in edges]
    assert "urge = reach" in labels and "urge ≥ 7" in labels and "otherwise" in labels
    assert ("s_to_pause", "to_pause", "") in edges
    assert nodes["to_pause"] == '[["pause"]]'
    assert nodes["s_end"].startswith('(["end · end')
    assert nodes["s_by_urge"].startswith('{"by_urge · branch')
    assert "follow-up: followup in 20m" in nodes["s_later"]


def test_mermaid_escapes_quotes_and_brackets() -> None:
    text = mermaid(FLOW)
    nodes, edges = _parse_mermaid(text)
    assert "She said #quot;stop#quot; #91;now#93; #40;really#41; #124; #35;1" in nodes["s_ask"]
    assert any(label == "Reach #quot;out#quot; #91;more#93;" for _, _, label in edges)
    assert any(label == "Wait #124; #40;later#41;" for _, _, label in edges)


def test_excerpts_are_short() -> None:
    nodes, _ = graph(FLOW)
    assert all(len(n.excerpt) <= 40 for n in nodes)
    ask = next(n for n in nodes if n.key == "s_ask")
    assert ask.excerpt.endswith("…")


def test_every_real_flow_draws(content: Content) -> None:
    for flow in content.flows.values():
        nodes, edges = _parse_mermaid(mermaid(flow))
        assert {f"s_{s.id}" for s in flow.steps} <= set(nodes), flow.id
        assert len(edges) == _expected_edges(flow), flow.id


def test_dot_has_the_same_graph() -> None:
    text = dot(FLOW)
    assert text.startswith('digraph "diagram" {') and text.rstrip().endswith("}")
    for s in FLOW.steps:
        assert re.search(rf"^    s_{s.id} \[label=", text, re.M), s.id
    assert len(re.findall(r"^    \w+ -> \w+", text, re.M)) == _expected_edges(FLOW)
    assert 'She said \\"stop\\" [now]' in text
    assert '[label="Reach \\"out\\" [more]"]' in text
    assert "s_to_pause -> to_pause;" in text
    assert 'to_pause [label="pause", shape=box, peripheries=2];' in text
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_graph_prints_mermaid() -> None:
    result = runner.invoke(app, ["content", "graph", "pause"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart TD\n")
    assert "s_ground" in result.stdout


def test_graph_unknown_flow() -> None:
    result = runner.invoke(app, ["content", "graph", "no_such_flow"])
    assert result.exit_code == 1
    assert "no flow called 'no_such_flow'" in result.output


def test_graph_svg_without_graphviz_says_how_to_get_it(tmp_path: Path) -> None:
    svg = tmp_path / "pause.svg"
    result = runner.invoke(app, ["content", "graph", "pause", "--svg", str(svg)], env={"PATH": ""})
    assert result.exit_code == 1
    assert result.stdout.startswith("flowchart TD\n")
    assert (
        "Graphviz is not installed (apt-get install graphviz); "
        "the Mermaid text above works in any Mermaid viewer"
    ) in result.output
    assert not svg.exists()


def test_graph_svg_with_graphviz(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip(
            "Graphviz's `dot` is not on PATH, so no real SVG can be drawn here "
            "(.ci/run installs it); the no-Graphviz error is tested regardless"
        )
    svg = tmp_path / "pause.svg"
    result = runner.invoke(app, ["content", "graph", "pause", "--svg", str(svg)])
    assert result.exit_code == 0, result.output
    drawn = svg.read_text()
    assert drawn.startswith("<?xml") or "<svg" in drawn
    assert "ground · choice" in drawn
