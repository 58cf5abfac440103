"""Helplines and emergency numbers, per country, from `content/safety/resources.yaml`.

The numbers live in a data file so that they can be checked and corrected without
touching code. Loading validates everything up front: a safety message is the worst
place to discover a missing number, so a bad file fails at start-up, naming the
file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from dialogs.safety.screen import SafetyContentError, load_validated

__all__ = [
    "FALLBACK_CODE",
    "CountryResources",
    "HelpLine",
    "SafetyContentError",
    "SafetyResources",
]

FALLBACK_CODE = "INTL"

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Code = Annotated[str, StringConstraints(pattern=r"^(?:[A-Z]{2}|INTL)$")]
_Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+\.[^\s]+$")]
_SCHEME = re.compile(r"^https?://(?:www\.)?")


class HelpLine(BaseModel):
    """One way to reach one service: a call, a text or a website."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Text
    how: Literal["call", "text", "web"]
    number: _Text | None = None
    keyword: _Text | None = None
    url: _Url | None = None
    note: _Text | None = None

    @model_validator(mode="after")
    def _complete(self) -> HelpLine:
        if self.how in ("call", "text") and self.number is None:
            raise ValueError(f"a {self.how} line needs a number")
        if self.how == "web" and self.url is None:
            raise ValueError("a web line needs a url")
        if self.keyword is not None and self.how != "text":
            raise ValueError("only a text line can have a keyword")
        return self

    @property
    def instruction(self) -> str:
        """A short imperative: "Call 988", "Text HOME to 741741", "Visit ..."."""
        if self.how == "call":
            return f"Call {self.number}"
        if self.how == "text":
            if self.keyword is not None:
                return f"Text {self.keyword} to {self.number}"
            return f"Text {self.number}"
        # The scheme and "www." only add noise in a chat message.
        return f"Visit {_SCHEME.sub('', self.url or '').rstrip('/')}"


class _CountryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Text
    aliases: tuple[_Code, ...] = ()
    emergency: _Text
    emergency_also: tuple[_Text, ...] = ()
    crisis_lines: tuple[HelpLine, ...] = Field(min_length=1)
    dv_lines: tuple[HelpLine, ...] = Field(min_length=1)


class CountryResources(_CountryEntry):
    """Everything to offer someone in one country; `code` is the key it was filed under."""

    code: _Code


class _ResourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    countries: dict[_Code, _CountryEntry]

    @field_validator("countries")
    @classmethod
    def _has_fallback(cls, countries: dict[str, _CountryEntry]) -> dict[str, _CountryEntry]:
        if FALLBACK_CODE not in countries:
            raise ValueError(f"{FALLBACK_CODE} is missing; it is used for every other country")
        return countries


class SafetyResources:
    """Helplines by country, with INTL as the answer for anywhere else."""

    __slots__ = ("_by_code",)

    def __init__(self, countries: Mapping[str, CountryResources]) -> None:
        if FALLBACK_CODE not in countries:
            raise ValueError(f"resources must include {FALLBACK_CODE}")
        self._by_code = dict(countries)

    @classmethod
    def from_file(cls, path: Path) -> SafetyResources:
        spec, document = load_validated(path, _ResourcesFile)
        by_code: dict[str, CountryResources] = {}
        for code, entry in spec.countries.items():
            country = CountryResources(code=code, **dict(entry))
            for index, name in enumerate((code, *entry.aliases)):
                if name in by_code:
                    loc = ("countries", code) if index == 0 else ("countries", code, "aliases")
                    raise SafetyContentError(
                        path,
                        document.line_of(loc),
                        f"{name} is already used by {by_code[name].code}",
                    )
                by_code[name] = country
        return cls(by_code)

    @property
    def codes(self) -> frozenset[str]:
        """Every code that has its own entry, aliases included."""
        return frozenset(self._by_code)

    def for_country(self, code: str | None) -> CountryResources:
        """The resources for `code` (any case); INTL when unknown or None."""
        if code is not None:
            found = self._by_code.get(code.strip().upper())
            if found is not None:
                return found
        return self._by_code[FALLBACK_CODE]
