"""A content problem, located precisely enough for an author to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, order=True)
class ContentError:
    file: Path
    line: int
    message: str
    flow: str | None = None
    node: str | None = None

    def __str__(self) -> str:
        where = "/".join(x for x in (self.flow, self.node) if x)
        prefix = f"{self.file}:{self.line}: "
        return prefix + (f"[{where}] " if where else "") + self.message


class ContentInvalid(Exception):
    """Raised at start when the content directory has errors; carries all of them."""

    def __init__(self, errors: list[ContentError]) -> None:
        self.errors = sorted(errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"{len(self.errors)} content error(s):\n{lines}")
