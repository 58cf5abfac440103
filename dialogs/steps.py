"""What running one flow step leads to, as a value: go on to another step, wait for
the person, or stop. Each step kind's handler returns one of these, so the loop in
`dialogs.runner` is the only place that decides what happens next."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Continue:
    """Run this step next, in the same turn."""

    next: str


@dataclass(frozen=True, slots=True)
class Wait:
    """The step is shown; the person's answer continues the flow."""


@dataclass(frozen=True, slots=True)
class End:
    """The flow is over (or handed to another flow, which is already running)."""


StepResult = Continue | Wait | End
