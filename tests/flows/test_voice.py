"""Voice rules from the content brief that a machine can check."""

from __future__ import annotations

import re

from dialogs.content import Content

# "About 300 characters a message": a little slack, but a wall of text fails.
MAX_MESSAGE = 320
# Diagnosing or blaming words the guide never uses about anyone.
FORBIDDEN = re.compile(
    r"\byou(?: are|'re) (?:an? )?(?:avoidant|anxious|clingy|needy|cold|codependent)\b"
    r"|\b(?:he|she|they|your partner) (?:is|are) (?:an? )?(?:avoidant|anxious|narcissist\w*)\b"
    r"|\bnarcissis\w*|\btoxic\b|\bcrazy\b|\bhysterical\b",
    re.IGNORECASE,
)


def _all_texts(content: Content) -> list[tuple[str, str]]:
    found = []
    for flow in content.flows.values():
        for step in flow.steps:
            for text in step.templated():
                found.append((f"{flow.id}/{step.id}", text))
    for name, value in content.copy.model_dump().items():
        found.append((f"copy.{name}", str(value)))
    assert content.reflection_copy is not None
    for name, value in content.reflection_copy.model_dump().items():
        found.append((f"reflection_copy.{name}", str(value)))
    for reflection in content.reflections.values():
        found += [(f"{reflection.id}/intro", reflection.intro)]
        found += [(f"{reflection.id}/closing", reflection.closing)]
        for part in reflection.steps:
            found += [(f"{reflection.id}/{part.id}", part.prompt)]
            found += [(f"{reflection.id}/{part.id}", part.group_text)]
            found += [(f"{reflection.id}/{part.id}", o.label) for o in part.options]
    return found


def test_messages_are_short(content: Content) -> None:
    long = [(where, len(t)) for where, t in _all_texts(content) if len(t) > MAX_MESSAGE]
    assert long == []


def test_no_diagnosis_or_blame(content: Content) -> None:
    hits = [(where, m.group(0)) for where, t in _all_texts(content) for m in FORBIDDEN.finditer(t)]
    assert hits == []


def test_the_forbidden_list_would_catch_a_diagnosis() -> None:
    assert FORBIDDEN.search("Honestly, you're avoidant.")
    assert FORBIDDEN.search("Your partner is a narcissist")
    assert not FORBIDDEN.search("Your first move leans toward space.")


# Flows that start on their own (a follow-up, a safety signal, a gate) rather than
# when a person asks; everything else must have a command, and so appear in /help.
STARTED_BY_THE_GUIDE = {
    "followup",
    "space_return",
    "talk_reminder",
    "consent",
    "screen",
    "unsafe",
    "minor",
    "crisis_again",
    # After the helplines of `crisis`, which the safety screen starts.
    "crisis_check",
    "danger",
    "checkin_due",
    # The weekly look, at the check-in time, for those who asked in /insights.
    "insights_due",
    "timezone",
    # Pressing Join on a group reflection before the gates are through.
    "reflection_ready",
    # /link and /link CODE (actions, not flows, so they can answer a linked person or
    # a code first).
    "link",
    "link_accept",
}


def test_every_flow_a_person_starts_has_a_command(content: Content) -> None:
    from dialogs.flows.model import HandoffStep

    commanded = {c.flow for c in content.commands.commands if c.flow}
    # A flow one tap away from a commanded one (/checkin -> "Check in now") counts.
    reachable = set(commanded)
    for flow_id in commanded:
        flow = content.flows[flow_id]
        reachable |= {s.flow for s in flow.steps if isinstance(s, HandoffStep)}
    assert set(content.flows) - reachable - STARTED_BY_THE_GUIDE == set()
    assert set(content.flows) >= STARTED_BY_THE_GUIDE
    assert {c.flow for c in content.commands.menu()} >= commanded - {None}
