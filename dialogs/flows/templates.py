"""Text templates: `{name}` is replaced by a variable, `{{` is a literal brace.

Deliberately tiny: no attribute access, indexing, format specs or conversions,
so content can never reach into Python objects.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_formatter = string.Formatter()


class TemplateError(ValueError):
    pass


def template_fields(text: str) -> list[str]:
    """Variable names used in `text`; raises TemplateError on anything but `{name}`."""
    try:
        parts = list(_formatter.parse(text))
    except ValueError as exc:
        raise TemplateError(f"unbalanced braces in text: {exc}") from exc
    names: list[str] = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if spec or conversion or not _NAME.match(name):
            raise TemplateError(
                f"template field {{{name}}} must be a plain lower-case variable name"
            )
        names.append(name)
    return names


def render(text: str, variables: Mapping[str, object]) -> str:
    out: list[str] = []
    for literal, name, _spec, _conv in _formatter.parse(text):
        out.append(literal)
        if name is not None:
            out.append(str(variables.get(name, "")))
    return "".join(out)
