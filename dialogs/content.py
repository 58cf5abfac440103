"""Loading the whole content directory: flows, commands, copy and safety data.

Two passes, like a compiler: every file is parsed and schema-checked first, then
the graph pass runs over whatever parsed, and every error from both is returned
together, each with its file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogs.flows.brevity import check_brevity
from dialogs.flows.commands import CommandList
from dialogs.flows.copy import ALLOWED_FIELDS, EngineCopy
from dialogs.flows.errors import ContentError, ContentInvalid
from dialogs.flows.graph import check_flow, check_handoff_values
from dialogs.flows.model import Flow
from dialogs.flows.replies import IntentReplies
from dialogs.flows.templates import TemplateError, template_fields
from dialogs.flows.yaml_source import SourceMap, load_yaml
from dialogs.insights.signals import signal_problems
from dialogs.insights.words import INSIGHTS_FIELDS, InsightsCopy
from dialogs.link.copy import LINK_COPY_FIELDS, LinkCopy
from dialogs.reflection.content import REFLECTION_COPY_FIELDS, Reflection, ReflectionCopy
from dialogs.understanding.base import INTENTS
from dialogs.understanding.examples import ExamplesError, check_examples, load_examples

M = TypeVar("M", bound=BaseModel)

# Flows the engine starts by name, and the variables it fills in when it does.
REQUIRED_FLOWS: dict[str, set[str]] = {
    "start": set(),
    "help": set(),
    "pause": set(),
    "crisis": {"resources"},
    "danger": {"resources"},
    "crisis_again": {"resources"},
    "minor": {"resources"},
    "consent": {"then"},
    "screen": {"then"},
    "unsafe": {"then", "resources"},
    "privacy": set(),
    "export": set(),
    "forget": set(),
    "timezone": {"then"},
    "checkin_due": set(),
    "insights_due": set(),
    "link": set(),
    "link_accept": set(),
}


class CheckPhrases(BaseModel):
    """Phrase lists from `content/safety/check_phrases.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retraction: tuple[Annotated[str, Field(min_length=2)], ...] = Field(min_length=1)
    asks_if_bot: tuple[Annotated[str, Field(min_length=2)], ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Content:
    directory: Path
    flows: Mapping[str, Flow]
    versions: Mapping[str, str]
    commands: CommandList
    copy: EngineCopy
    checks: CheckPhrases
    files: Mapping[str, Path] = field(default_factory=dict)
    reflections: Mapping[str, Reflection] = field(default_factory=dict)
    reflection_copy: ReflectionCopy | None = None
    # What the guide says to typed text outside a flow; None in content without it.
    replies: IntentReplies | None = None
    # The words of /insights (content/insights.yaml).
    insights: InsightsCopy | None = None
    # The partner link's words (content/link_copy.yaml).
    link_copy: LinkCopy | None = None

    @property
    def examples_dir(self) -> Path:
        """Where the intent classifier's training examples live."""
        return self.directory / "understanding" / "examples"


def check_content(directory: Path) -> tuple[Content | None, list[ContentError]]:
    """Load and validate everything; returns the content only when there are no errors."""
    errors: list[ContentError] = []
    if not directory.is_dir():
        return None, [ContentError(directory, 1, "content directory not found")]
    flows: dict[str, Flow] = {}
    sources: dict[str, SourceMap] = {}
    versions: dict[str, str] = {}
    files: dict[str, Path] = {}
    flow_dir = directory / "flows"
    flow_files = sorted(flow_dir.glob("*.yaml")) if flow_dir.is_dir() else []
    if not flow_files:
        errors.append(ContentError(flow_dir, 1, "no flow files (*.yaml) found"))
    for path in flow_files:
        flow, source = _parse(path, Flow, errors)
        if flow is None or source is None:
            continue
        if not _named_as_file(flow.id, "flow", path, source, errors):
            continue
        flows[flow.id] = flow
        sources[flow.id] = source
        files[flow.id] = path
        versions[flow.id] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    # A flow whose file exists but failed its schema pass is already reported;
    # references to it should not pile up as "missing flow" errors too.
    known = set(flows) | {p.stem for p in flow_files}
    for flow_id, flow in flows.items():
        errors.extend(check_flow(flow, sources[flow_id], known))
    if flow_files:
        _check_required(flows, sources, flow_dir, known, errors)
    errors.extend(check_handoff_values(flows, sources))
    errors.extend(check_brevity(flows, sources))
    for flow_id, step_id, problem in signal_problems(flows):
        # A flow that failed its own checks is reported already.
        if flow_id in flows:
            errors.append(
                _step_error(files[flow_id], sources[flow_id], flows[flow_id], step_id, problem)
            )
        elif flow_id not in known:
            errors.append(ContentError(flow_dir, 1, f"{flow_id}/{step_id}: {problem}"))

    commands, cmd_source = _parse(directory / "commands.yaml", CommandList, errors)
    if commands is not None and cmd_source is not None:
        _check_commands(commands, cmd_source, known, errors)
    copy, copy_source = _parse(directory / "copy.yaml", EngineCopy, errors)
    if copy is not None and copy_source is not None:
        _check_copy(copy, copy_source, errors)

    checks, _ = _parse(directory / "safety" / "check_phrases.yaml", CheckPhrases, errors)
    reflections = _load_reflections(directory / "reflections", errors)
    reflection_copy, rc_source = _parse(directory / "reflection_copy.yaml", ReflectionCopy, errors)
    if reflection_copy is not None and rc_source is not None:
        _check_copy(reflection_copy, rc_source, errors, REFLECTION_COPY_FIELDS)
    link_copy, lc_source = _parse(directory / "link_copy.yaml", LinkCopy, errors)
    if link_copy is not None and lc_source is not None:
        _check_copy(link_copy, lc_source, errors, LINK_COPY_FIELDS)

    insights, insights_source = _parse(directory / "insights.yaml", InsightsCopy, errors)
    if insights is not None and insights_source is not None:
        _check_copy(insights, insights_source, errors, INSIGHTS_FIELDS)

    replies = None
    understanding = directory / "understanding"
    if (understanding / "replies.yaml").exists():
        replies, replies_source = _parse(understanding / "replies.yaml", IntentReplies, errors)
        if replies is not None and replies_source is not None and commands is not None:
            _check_replies(replies, replies_source, {c.name for c in commands.commands}, errors)
    if (understanding / "examples").is_dir():
        _check_examples(understanding / "examples", errors)

    if errors or commands is None or copy is None or checks is None:
        return None, sorted(errors)
    return (
        Content(
            directory,
            flows,
            versions,
            commands,
            copy,
            checks,
            files,
            reflections,
            reflection_copy,
            replies,
            insights,
            link_copy,
        ),
        [],
    )


def _load_reflections(folder: Path, errors: list[ContentError]) -> dict[str, Reflection]:
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        errors.append(ContentError(folder, 1, "no reflection files (*.yaml) found"))
    found: dict[str, Reflection] = {}
    for path in files:
        reflection, source = _parse(path, Reflection, errors)
        if reflection is None or source is None:
            continue
        if not _named_as_file(reflection.id, "reflection", path, source, errors):
            continue
        found[reflection.id] = reflection
    return found


def _named_as_file(
    item_id: str, kind: str, path: Path, source: SourceMap, errors: list[ContentError]
) -> bool:
    if item_id == path.stem:
        return True
    errors.append(
        ContentError(
            path,
            source.line_for(("id",)),
            f"{kind} id {item_id!r} must match the file name {path.stem!r}",
            item_id,
        )
    )
    return False


def load_content(directory: Path) -> Content:
    content, errors = check_content(directory)
    if content is None:
        raise ContentInvalid(errors)
    return content


def _parse(
    path: Path, model: type[M], errors: list[ContentError]
) -> tuple[M | None, SourceMap | None]:
    if not path.exists():
        errors.append(ContentError(path, 1, "file not found"))
        return None, None
    loaded = load_yaml(path)
    errors.extend(loaded.errors)
    if loaded.data is None:
        return None, None
    try:
        return model.model_validate(loaded.data), loaded.source
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                # Point at the `kind:` line itself, not the start of the step.
                loc = (*loc, "kind")
            errors.append(
                ContentError(
                    path,
                    loaded.source.line_for(loc),
                    _describe(err),
                    *_flow_and_step(loaded.data, err["loc"]),
                )
            )
        return None, loaded.source


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _flow_and_step(data: Any, loc: tuple[Any, ...]) -> tuple[str | None, str | None]:
    flow = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    step = None
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(data, dict):
        steps = data.get("steps")
        if isinstance(steps, list) and 0 <= loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            raw = steps[loc[1]].get("id")
            step = raw if isinstance(raw, str) else None
    return flow, step


def _check_required(
    flows: Mapping[str, Flow],
    sources: Mapping[str, SourceMap],
    flow_dir: Path,
    known: set[str],
    errors: list[ContentError],
) -> None:
    for flow_id, needed in REQUIRED_FLOWS.items():
        flow = flows.get(flow_id)
        if flow is None and flow_id in known:
            continue
        if flow is None:
            errors.append(
                ContentError(
                    flow_dir / f"{flow_id}.yaml", 1, f"the engine needs a flow called {flow_id!r}"
                )
            )
            continue
        missing = needed - set(flow.variables)
        if missing:
            errors.append(
                ContentError(
                    sources[flow_id].file,
                    sources[flow_id].line_for(("variables",)),
                    f"must declare variable(s) {sorted(missing)}, which the engine fills in",
                    flow_id,
                )
            )


def _check_commands(
    commands: CommandList, source: SourceMap, flows: set[str], errors: list[ContentError]
) -> None:
    seen: set[str] = set()
    for i, c in enumerate(commands.commands):
        if c.name in seen:
            errors.append(
                ContentError(
                    source.file,
                    source.line_for(("commands", i, "name")),
                    f"duplicate command /{c.name}",
                )
            )
        seen.add(c.name)
        if c.flow is not None and c.flow not in flows:
            errors.append(
                ContentError(
                    source.file,
                    source.line_for(("commands", i, "flow")),
                    f"/{c.name} names flow {c.flow!r}, which does not exist",
                )
            )


def _check_copy(
    copy: BaseModel,
    source: SourceMap,
    errors: list[ContentError],
    allowed: Mapping[str, set[str]] = ALLOWED_FIELDS,
) -> None:
    for name, value in copy.model_dump().items():
        texts = value if isinstance(value, list | tuple) else [value]
        for i, text in enumerate(texts):
            loc = (name, i) if isinstance(value, list | tuple) else (name,)
            try:
                used = set(template_fields(text))
            except TemplateError as exc:
                errors.append(ContentError(source.file, source.line_for(loc), f"{name}: {exc}"))
                continue
            extra = used - allowed.get(name, set())
            if extra:
                errors.append(
                    ContentError(
                        source.file,
                        source.line_for(loc),
                        f"{name}: unknown template variable(s) {sorted(extra)}",
                    )
                )


def _check_replies(
    replies: IntentReplies, source: SourceMap, commands: set[str], errors: list[ContentError]
) -> None:
    for section in ("replies", "offer_labels"):
        for intent in getattr(replies, section):
            if intent not in INTENTS:
                errors.append(
                    ContentError(
                        source.file,
                        source.line_for((section, intent)),
                        f"{section}: unknown intent {intent!r}; known: {', '.join(INTENTS)}",
                    )
                )
    for intent, reply in replies.replies.items():
        for i, offer in enumerate(reply.offers):
            name = offer.command[1:].split()[0]
            if name not in commands:
                errors.append(
                    ContentError(
                        source.file,
                        source.line_for(("replies", intent, "offers", i, "command")),
                        f"replies: {intent} offers {offer.command}, which is not a command",
                    )
                )


def _check_examples(folder: Path, errors: list[ContentError]) -> None:
    """The classifier's examples: unknown intents, too few, the same in two intents."""
    try:
        examples = load_examples(folder)
    except ExamplesError as exc:
        errors.append(ContentError(exc.file, exc.line or 1, exc.problem))
        return
    for problem in check_examples(examples):
        errors.append(ContentError(problem.file, problem.line or 1, problem.message))


def _step_error(
    path: Path, source: SourceMap, flow: Flow, step_id: str, problem: str
) -> ContentError:
    ids = [step.id for step in flow.steps]
    line = source.line_for(("steps", ids.index(step_id))) if step_id in ids else 1
    return ContentError(path, line, problem, flow.id, step_id)
