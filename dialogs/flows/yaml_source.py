"""YAML loading that remembers where every value came from.

PyYAML's plain loaders forget line numbers and silently keep the last of two
duplicate keys; an author needs both reported. We compose the node tree ourselves
and build plain Python values alongside a map from value path to line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialogs.flows.errors import ContentError

PathKey = tuple[str | int, ...]


class _ContentLoader(yaml.SafeLoader):
    """SafeLoader where only `true`/`false` are booleans.

    YAML 1.1 also reads yes/no/on/off as booleans, so an option with `id: yes`
    would silently become `True`; authors write those words as plain answers.
    """


_ContentLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ContentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass(slots=True)
class SourceMap:
    file: Path
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_for(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest part of `loc` that exists in the document.

        Validation errors may carry path elements that are not in the data (pydantic
        adds the union tag); those are skipped rather than ending the walk.
        """
        best = self.lines.get((), 1)
        prefix: PathKey = ()
        for part in loc:
            candidate = (*prefix, part)
            if candidate in self.lines:
                prefix = candidate
                best = self.lines[candidate]
        return best


@dataclass(slots=True)
class LoadedYaml:
    data: Any
    source: SourceMap
    errors: list[ContentError]


def load_yaml(path: Path) -> LoadedYaml:
    source = SourceMap(file=path)
    errors: list[ContentError] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        errors.append(ContentError(path, 1, f"not valid UTF-8 ({exc.reason})"))
        return LoadedYaml(None, source, errors)
    except OSError as exc:
        errors.append(ContentError(path, 1, f"cannot read file: {exc.strerror}"))
        return LoadedYaml(None, source, errors)
    try:
        root = yaml.compose(text, Loader=_ContentLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if exc.context_mark is not None and (mark is None or mark.index >= len(text.rstrip())):
            # "Unexpected end of stream" points past the last line; where the
            # unfinished quote or bracket began is what an author needs.
            mark = exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        errors.append(ContentError(path, line, f"not valid YAML: {problem}"))
        return LoadedYaml(None, source, errors)
    if root is None:
        errors.append(ContentError(path, 1, "file is empty"))
        return LoadedYaml(None, source, errors)
    constructor = _ContentLoader("")
    data = _build(root, (), source, errors, constructor)
    return LoadedYaml(data, source, errors)


def _build(
    node: yaml.Node,
    path: PathKey,
    source: SourceMap,
    errors: list[ContentError],
    constructor: _ContentLoader,
) -> Any:
    source.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int) or isinstance(key, bool):
                errors.append(
                    ContentError(
                        source.file,
                        key_node.start_mark.line + 1,
                        f"the key {key_node.value!r} must be text; put it in quotes",
                    )
                )
                continue
            if key in result:
                errors.append(
                    ContentError(
                        source.file,
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r} (first at line {source.lines[(*path, key)]})",
                    )
                )
                continue
            result[key] = _build(value_node, (*path, key), source, errors, constructor)
            # A key's own line is more useful than its value's for block values.
            source.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, i), source, errors, constructor)
            for i, item in enumerate(node.value)
        ]
    return constructor.construct_object(node, deep=True)
