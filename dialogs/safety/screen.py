"""The safety screen: does a message suggest a crisis or danger?

Runs on every message before any flow step. Rules are phrases kept as data in
`content/safety/signals.yaml` so that people who are not programmers can review
and extend them; the format is described at the top of that file. Each pattern is
compiled to a regex once, at load time, and indexed under words it cannot match
without, so a message only runs the handful of patterns that could fire on it.

Matching happens on the squeezed text from `text_normalise.match_variants`, and
every literal word in a rule is normalised and squeezed the same way, so spelling
noise on either side meets in one form.

The screen leans towards recall: a false alarm costs one gentle extra message, a
miss can cost far more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from dialogs.flows.yaml_source import SourceMap, load_yaml
from dialogs.safety.normalise import match_variants, normalise, squeeze

__all__ = [
    "SafetyContentError",
    "SafetyFinding",
    "SafetyScreen",
    "SafetySignal",
    "load_validated",
]


class SafetySignal(StrEnum):
    CRISIS = "crisis"
    DANGER = "danger"


@dataclass(frozen=True, slots=True)
class SafetyFinding:
    signal: SafetySignal
    rule_id: str


class SafetyContentError(ValueError):
    """A safety content file could not be loaded; the message names file and line."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


# --------------------------------------------------------------------------------
# YAML with line numbers (dialogs.flows.yaml_source), shared with safety_resources.
# Safety files fail on their first problem: they are short, and a screen that
# half-loads is worse than one that refuses to start.

_ModelT = TypeVar("_ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Document:
    path: Path
    data: Any
    source: SourceMap

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest node on `loc` that exists in the file."""
        return self.source.line_for(loc)

    def has(self, loc: Sequence[str | int]) -> bool:
        return tuple(loc) in self.source.lines

    def error(self, loc: Sequence[str | int], problem: str) -> SafetyContentError:
        return SafetyContentError(self.path, self.line_of(loc), problem)


def _read_document(path: Path) -> _Document:
    loaded = load_yaml(path)
    if loaded.errors:
        first = min(loaded.errors, key=lambda e: e.line)
        raise SafetyContentError(path, first.line, first.message)
    return _Document(path, loaded.data, loaded.source)


def _describe(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def load_validated(path: Path, model: type[_ModelT]) -> tuple[_ModelT, _Document]:
    """Read `path` and validate it as `model`; errors name the file and the line."""
    document = _read_document(path)
    try:
        return model.model_validate(document.data), document
    except ValidationError as exc:
        # Errors about a node that is in the file come first: a misspelt key is
        # reported both as "missing" (pointing at its parent) and as "extra"
        # (pointing at the typo itself), and the typo is what needs fixing.
        errors = sorted(
            exc.errors(include_url=False),
            key=lambda e: not document.has(e["loc"]),
        )
        problems = "; ".join(f"{_describe(e['loc'])}: {e['msg']}" for e in errors[:5])
        raise document.error(errors[0]["loc"], problems) from exc


# --------------------------------------------------------------------------------
# signals.yaml schema

_RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
_SlotName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _RuleId
    signal: SafetySignal
    patterns: list[str] = Field(min_length=1)
    note: str | None = None


class _SignalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    slots: dict[_SlotName, list[str]] = Field(default_factory=dict)
    rules: list[_Rule] = Field(min_length=1)


# --------------------------------------------------------------------------------
# Pattern language (see the top of signals.yaml):
#   word       a literal word or phrase      {slot}     any phrase from a slot
#   (a|b c)    one of the choices            [a|b]      optionally one of the choices
#   *          exactly one word of any kind  word*      a word starting with "word"
#   !(a|b)     the next words are not a or b; !word is the one-word form;
#              !{slot} is "not any phrase from slot"; !* means no word follows
#              (the end of the message)
#
# Each compiled fragment consumes a leading space before every word it matches,
# and the text is searched with a space added at both ends, which makes every
# fragment start and stop on word boundaries without \b (digits and letters are
# both word characters, and only spaces separate words after normalising).


class _PatternError(ValueError):
    def __init__(self, problem: str, slot_entry: tuple[str, int] | None = None) -> None:
        super().__init__(problem)
        # Set when the fault sits inside a slot, so the error can point there.
        self.slot_entry = slot_entry


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class _AnyWord:
    pass


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str


@dataclass(frozen=True, slots=True)
class _Choice:
    options: tuple[tuple[_Node, ...], ...]
    optional: bool


@dataclass(frozen=True, slots=True)
class _Not:
    options: tuple[tuple[_Node, ...], ...]


_Node = _Word | _AnyWord | _Slot | _Choice | _Not
_Seq = tuple[_Node, ...]

_LEXER = re.compile(r"(?P<space>\s+)|(?P<punct>[{}\[\]()|!*])|(?P<word>[^\s{}\[\]()|!*]+)")
_CLOSERS = {"(": ")", "[": "]"}


class _Parser:
    def __init__(self, source: str) -> None:
        self._tokens: list[tuple[str, str]] = [
            (m.lastgroup or "", m.group()) for m in _LEXER.finditer(source)
        ]
        self._pos = 0

    def parse(self) -> _Seq:
        seq = self._sequence(closers=())
        if self._pos < len(self._tokens):
            raise _PatternError(f"unexpected {self._tokens[self._pos][1]!r}")
        if not seq:
            raise _PatternError("the pattern is empty")
        return seq

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _sequence(self, closers: tuple[str, ...]) -> _Seq:
        nodes: list[_Node] = []
        while (token := self._peek()) is not None:
            kind, text = token
            if kind == "punct" and text in (*closers, "|"):
                break
            self._take()
            if kind == "space":
                continue
            if kind == "word":
                prefix = self._peek() == ("punct", "*")
                if prefix:
                    self._take()
                nodes.append(_Word(text, prefix))
            elif text == "*":
                nodes.append(_AnyWord())
            elif text == "{":
                nodes.append(self._slot())
            elif text in _CLOSERS:
                nodes.append(_Choice(self._options(_CLOSERS[text]), optional=text == "["))
            elif text == "!":
                nodes.append(self._negation())
            else:
                raise _PatternError(f"unexpected {text!r}")
        return tuple(nodes)

    def _slot(self) -> _Slot:
        name = self._peek()
        if name is None or name[0] != "word" or not re.fullmatch(r"[a-z][a-z0-9_]*", name[1]):
            raise _PatternError("a slot needs a lower-case name, like {person}")
        self._take()
        if self._peek() != ("punct", "}"):
            raise _PatternError(f"missing '}}' after {{{name[1]}")
        self._take()
        return _Slot(name[1])

    def _negation(self) -> _Not:
        token = self._peek()
        if token == ("punct", "("):
            self._take()
            return _Not(self._options(")"))
        if token is not None and token[0] == "word":
            self._take()
            return _Not(((_Word(token[1], prefix=False),),))
        if token == ("punct", "*"):
            self._take()
            return _Not(((_AnyWord(),),))
        if token == ("punct", "{"):
            self._take()
            return _Not(((self._slot(),),))
        raise _PatternError("'!' must be followed by a word, (choices), {slot} or *")

    def _options(self, closer: str) -> tuple[_Seq, ...]:
        options: list[_Seq] = []
        while True:
            seq = self._sequence(closers=(closer,))
            if not seq:
                raise _PatternError(f"empty choice before {self._describe_next(closer)}")
            options.append(seq)
            token = self._peek()
            if token is None:
                raise _PatternError(f"missing {closer!r}")
            self._take()
            if token[1] == closer:
                return tuple(options)

    def _describe_next(self, closer: str) -> str:
        token = self._peek()
        return repr(token[1]) if token is not None else f"the missing {closer!r}"


# An anchor is a word that must appear in any text a pattern matches; the flag
# says it may be only the start of that word ("suicid*").
_Anchor = tuple[str, bool]

# Words so frequent that indexing a pattern under them would make it run on almost
# every message. Only a cost hint for choosing anchors; correctness does not depend
# on it.
_COMMON_TEXT = """
    i me my im a an the to of in on at for and or but so is it its was be am are
    he she they hes shes theyre him her them you your we our this that with not
    dont just really want wana like all have had has do did
"""
_COMMON_WORDS = frozenset(_COMMON_TEXT.split())


def _anchor_cost(anchors: frozenset[_Anchor]) -> int:
    common = sum(word in _COMMON_WORDS or len(word) < 3 for word, _ in anchors)
    return len(anchors) + 100 * common


class _Compiler:
    """Turns parsed patterns into regex source and anchors, expanding slots once each."""

    def __init__(self, slots: Mapping[str, Sequence[str]]) -> None:
        self._slot_sources = slots
        self._slot_regex: dict[str, str] = {}
        self._slot_anchors: dict[str, frozenset[_Anchor] | None] = {}
        self._in_progress: list[str] = []

    def slot(self, name: str) -> str:
        if name not in self._slot_sources:
            raise _PatternError(f"unknown slot {{{name}}}")
        if name in self._in_progress:
            chain = " -> ".join([*self._in_progress, name])
            raise _PatternError(f"slot refers back to itself: {chain}")
        if name not in self._slot_regex:
            entries = self._slot_sources[name]
            if not entries:
                raise _PatternError(f"slot {{{name}}} is empty", (name, 0))
            self._in_progress.append(name)
            sources: list[str] = []
            anchors: set[_Anchor] | None = set()
            try:
                for index, entry in enumerate(entries):
                    try:
                        parsed = _Parser(entry).parse()
                        sources.append(self.sequence(parsed))
                        entry_anchors = self.anchors(parsed)
                    except _PatternError as exc:
                        if exc.slot_entry is None:
                            exc.slot_entry = (name, index)
                        raise
                    if anchors is not None and entry_anchors is not None:
                        anchors |= entry_anchors
                    else:
                        anchors = None
            finally:
                self._in_progress.pop()
            self._slot_regex[name] = "(?:" + "|".join(sources) + ")"
            self._slot_anchors[name] = frozenset(anchors) if anchors is not None else None
        return self._slot_regex[name]

    def sequence(self, seq: _Seq) -> str:
        return "".join(self._node(node) for node in seq)

    @staticmethod
    def _words(node: _Word) -> list[str]:
        words = squeeze(normalise(node.text)).split()
        if not words:
            hint = "; write optional words as [word]" if "?" in node.text else ""
            raise _PatternError(f"{node.text!r} has no letters or digits{hint}")
        return words

    def _node(self, node: _Node) -> str:
        if isinstance(node, _Word):
            source = "".join(" " + re.escape(word) for word in self._words(node))
            return source + r"\S*" if node.prefix else source
        if isinstance(node, _AnyWord):
            return r" \S+"
        if isinstance(node, _Slot):
            return self.slot(node.name)
        if isinstance(node, _Choice):
            inner = "|".join(self.sequence(option) for option in node.options)
            return f"(?:{inner})" + ("?" if node.optional else "")
        inner = "|".join(self.sequence(option) for option in node.options)
        return f"(?!(?:{inner})(?= ))"

    def anchors(self, seq: _Seq) -> frozenset[_Anchor] | None:
        """Words of which every match of `seq` must contain at least one.

        None when there is no such set: the sequence could match without any
        literal word, like "[just] *", which would fire on any message.
        """
        best: frozenset[_Anchor] | None = None
        for node in seq:
            found = self._node_anchors(node)
            if found is not None and (best is None or _anchor_cost(found) < _anchor_cost(best)):
                best = found
        return best

    def _node_anchors(self, node: _Node) -> frozenset[_Anchor] | None:
        if isinstance(node, _Word):
            words = self._words(node)
            options = [(word, False) for word in words[:-1]]
            options.append((words[-1], node.prefix))
            return min((frozenset([o]) for o in options), key=_anchor_cost)
        if isinstance(node, _Slot):
            self.slot(node.name)
            return self._slot_anchors[node.name]
        if isinstance(node, _Choice) and not node.optional:
            union: set[_Anchor] = set()
            for option in node.options:
                found = self.anchors(option)
                if found is None:
                    return None
                union |= found
            return frozenset(union)
        return None


# --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledPattern:
    finding: SafetyFinding
    regex: re.Pattern[str]


class SafetyScreen:
    """Phrase rules for crisis and danger, compiled once; `screen` is the hot path.

    Each pattern is its own regex, indexed under its anchor words, so a message
    only runs the few patterns that could possibly match it. Patterns are kept in
    priority order - every crisis pattern before any danger one, then file order -
    and the first one that matches decides the finding.
    """

    __slots__ = ("_by_prefix", "_by_word", "_patterns", "_prefix_lengths", "rule_ids")

    def __init__(self, patterns: Sequence[tuple[SafetyFinding, str, frozenset[_Anchor]]]):
        ranked = sorted(
            enumerate(patterns),
            key=lambda item: (item[1][0].signal != SafetySignal.CRISIS, item[0]),
        )
        self._patterns: tuple[_CompiledPattern, ...] = tuple(
            _CompiledPattern(finding, re.compile(source + "(?= )"))
            for _, (finding, source, _) in ranked
        )
        by_word: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        for index, (_, (_, _, anchors)) in enumerate(ranked):
            for word, is_prefix in anchors:
                (by_prefix if is_prefix else by_word).setdefault(word, []).append(index)
        self._by_word = {word: tuple(ids) for word, ids in by_word.items()}
        self._by_prefix = {word: tuple(ids) for word, ids in by_prefix.items()}
        self._prefix_lengths = tuple(sorted({len(word) for word in by_prefix}))
        self.rule_ids: frozenset[str] = frozenset(p.finding.rule_id for p in self._patterns)

    @classmethod
    def from_file(cls, path: Path) -> SafetyScreen:
        spec, document = load_validated(path, _SignalsFile)
        compiler = _Compiler(spec.slots)
        for name in spec.slots:
            try:
                compiler.slot(name)
            except _PatternError as exc:
                entry = exc.slot_entry or (name,)
                raise document.error(("slots", *entry), f"slot {{{name}}}: {exc}") from exc

        seen: dict[str, int] = {}
        patterns: list[tuple[SafetyFinding, str, frozenset[_Anchor]]] = []
        for rule_index, rule in enumerate(spec.rules):
            if rule.id in seen:
                raise document.error(
                    ("rules", rule_index, "id"),
                    f"rule id {rule.id!r} is already used by rule number {seen[rule.id] + 1}",
                )
            seen[rule.id] = rule_index
            finding = SafetyFinding(rule.signal, rule.id)
            for pattern_index, pattern in enumerate(rule.patterns):
                loc = ("rules", rule_index, "patterns", pattern_index)
                try:
                    parsed = _Parser(pattern).parse()
                    anchors = compiler.anchors(parsed)
                    if anchors is None:
                        raise _PatternError(
                            "the pattern needs at least one word that is not optional"
                        )
                    source = compiler.sequence(parsed)
                except _PatternError as exc:
                    raise document.error(loc, f"pattern {pattern!r}: {exc}") from exc
                patterns.append((finding, source, anchors))
        return cls(patterns)

    def _candidates(self, words: set[str]) -> list[int]:
        found: set[int] = set()
        for word in words:
            hit = self._by_word.get(word)
            if hit is not None:
                found.update(hit)
            for length in self._prefix_lengths:
                if length > len(word):
                    break
                hit = self._by_prefix.get(word[:length])
                if hit is not None:
                    found.update(hit)
        return sorted(found)

    def screen(self, text: str) -> SafetyFinding | None:
        """The strongest signal in `text`, or None. CRISIS wins over DANGER."""
        best = len(self._patterns)
        for variant in match_variants(text):
            padded = f" {variant} "
            for index in self._candidates(set(variant.split())):
                if index >= best:
                    break
                if self._patterns[index].regex.search(padded) is not None:
                    best = index
                    break
        return self._patterns[best].finding if best < len(self._patterns) else None

    def explain(self, text: str) -> list[tuple[SafetyFinding, str]]:
        """Every pattern that fires on `text`, with the words it matched.

        For reviewing rules and false alarms; the first entry is what `screen`
        reports.
        """
        hits: dict[int, str] = {}
        for variant in match_variants(text):
            padded = f" {variant} "
            for index in self._candidates(set(variant.split())):
                match = self._patterns[index].regex.search(padded)
                if match is not None and index not in hits:
                    hits[index] = match.group().strip()
        return [(self._patterns[i].finding, hits[i]) for i in sorted(hits)]
