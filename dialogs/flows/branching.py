"""Which way a branch step goes: one rule, used by the engine and by transcripts,
so an author's transcript takes the same turn the bot would."""

from __future__ import annotations

from collections.abc import Mapping

from dialogs.flows.model import BranchStep, Condition
from dialogs.matching import parse_number

BranchValue = str | int


def choose_branch(step: BranchStep, variables: Mapping[str, BranchValue]) -> str:
    for case in step.cases:
        if holds(case.when, variables):
            return case.next
    return step.otherwise


def holds(cond: Condition, variables: Mapping[str, BranchValue]) -> bool:
    value = variables.get(cond.var)
    if cond.is_set is not None:
        return (value is not None) == cond.is_set
    if value is None:
        return False
    if cond.equals is not None:
        return str(value) == str(cond.equals)
    if cond.one_of is not None:
        return str(value) in {str(v) for v in cond.one_of}
    number = _number(value)
    if number is None:
        return False
    if cond.other_var is not None:
        other = _number(variables.get(cond.other_var))
        if other is None:
            return False
        return number < other if cond.below_var is not None else number > other
    if cond.at_least is not None:
        return number >= cond.at_least
    return cond.below is not None and number < cond.below


def _number(value: BranchValue | None) -> int | None:
    if value is None:
        return None
    return value if isinstance(value, int) else parse_number(str(value))
