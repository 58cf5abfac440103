"""Which journal rows mean what, for insights.

The journal stores (flow, step, kind, value) for every tap and number. These are
the steps whose answers the insights read; the content check (`signal_problems`)
fails when one of them is renamed, changes kind or loses an option read, so a content
edit cannot silently empty a chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from dialogs.flows.model import ChoiceStep, Flow, ScaleStep

Where = tuple[str, str]

# A pause counts once the person has said how loud it was (0 calm, 10 loudest).
PAUSE_BEFORE: Where = ("pause", "rate")
# Later ratings on the same scale: one more breathing round, the re-rating after the
# body-first step of a loud pause (8 or more), and the follow-up the pause offers
# ("How loud is it inside now?").
PAUSE_AFTER: tuple[Where, ...] = (
    ("pause", "breathe_again"),
    ("pause", "loud_rerate"),
    ("followup", "rerate"),
)
# A later rating belongs to the last pause before it, within this long.
EPISODE = timedelta(hours=24)
# Settled: a later rating at or below this. Settling time is only measured for a
# pause that started above it.
SETTLED_AT = 3

# "What helped, if anything?" in the follow-up; "nothing" is not a thing that helped.
HELPED: Where = ("followup", "helped")
NOT_HELPED = frozenset({"nothing"})

# Space with a promised return: the time chosen, whether a reminder was asked for,
# and the answer to that reminder (its first question, asked at the promised time).
SPACE_WHEN: Where = ("space", "when")
SPACE_REMIND: Where = ("space", "offer")
SPACE_REMIND_YES = "yes"
SPACE_BACK: Where = ("space_return", "settled")
# How long after the promised time an answer to the reminder still counts as kept.
SPACE_GRACE = timedelta(minutes=30)
# The promised delay of each return time, and the return times at a local clock time
# ("this evening" is the next 20:00; "tomorrow morning", offered late at night, 09:00).
SPACE_DELAYS = {
    "in_30m": timedelta(minutes=30),
    "in_1h": timedelta(hours=1),
    "tomorrow": timedelta(days=1),
}
SPACE_AT = {"evening": "20:00", "morning": "09:00"}

# A check-in counts as answered once its first question is.
CHECKIN_ANSWERED: Where = ("checkin", "settled")

# Every step read, with the kind of journal row it gives: the content test's list.
READ_STEPS: dict[Where, str] = {
    PAUSE_BEFORE: "rating",
    **dict.fromkeys(PAUSE_AFTER, "rating"),
    HELPED: "choice",
    SPACE_WHEN: "choice",
    SPACE_REMIND: "choice",
    SPACE_BACK: "rating",
    CHECKIN_ANSWERED: "rating",
}


def signal_problems(flows: Mapping[str, Flow]) -> list[tuple[str, str, str]]:
    """(flow id, step id, problem) for every step the insights read that is missing,
    of another kind, in a flow that keeps no journal, or without an option read."""
    kinds = {"rating": ScaleStep, "choice": ChoiceStep}
    options_read = {
        HELPED: NOT_HELPED,
        SPACE_REMIND: {SPACE_REMIND_YES},
        SPACE_WHEN: {*SPACE_DELAYS, *SPACE_AT},
    }
    problems: list[tuple[str, str, str]] = []
    for (flow_id, step_id), kind in READ_STEPS.items():
        flow = flows.get(flow_id)
        step = flow.step(step_id) if flow is not None else None
        if flow is None or step is None:
            problems.append((flow_id, step_id, "insights read this step, and it is gone"))
            continue
        if not isinstance(step, kinds[kind]):
            problems.append((flow_id, step_id, f"insights read this step as a {kind} step"))
            continue
        if not flow.journal:
            problems.append((flow_id, step_id, "insights read this step; keep its journal"))
        if isinstance(step, ChoiceStep):
            missing = options_read.get((flow_id, step_id), set()) - {o.id for o in step.options}
            if missing:
                problems.append(
                    (flow_id, step_id, f"insights read option(s) {sorted(missing)}; keep them")
                )
    return problems
