"""Which flow has to run before the one a person asked for, and when.

Order matters: consent before anything personal; adults only; while someone may be
unsafe, no push-pull reframes at all; and before the first reframe a person ever
gets, the short safety screen.

Help comes first, though. A flow with `before_gates` (the pause's breathing step) shows
those steps before any gate: they store nothing and reframe nothing. Leaving the
opening asks for the agreement (`consent_gate`), and the safety screen waits for the
flow's own `action: screen` step, placed right before its first reframe
(`screen_gate`). What never waits: a known minor, and the danger route, which still
take over at the start (`gate_at_start`).
"""

from __future__ import annotations

from dialogs.flows.model import Flow
from dialogs.store import Profile

CONSENT = "consent"
MINOR = "minor"
UNSAFE = "unsafe"
SCREEN = "screen"
TIMEZONE = "timezone"
GATE_FLOWS = (CONSENT, MINOR, UNSAFE, SCREEN, TIMEZONE)


def gate_before(flow: Flow, profile: Profile) -> str | None:
    """The gate flow to run before `flow`, or None when `flow` may start now."""
    if _exempt(flow):
        return None
    return consent_gate(flow, profile) or screen_gate(flow, profile) or _zone_gate(flow, profile)


def gate_at_start(flow: Flow, profile: Profile) -> str | None:
    """The gate to run before `flow` starts at its first step: all of them, except that
    a flow with an opening defers the agreement and the safety screen."""
    if not flow.before_gates:
        return gate_before(flow, profile)
    if _exempt(flow):
        return None
    if profile.adult is False:
        return MINOR
    if flow.reframes and profile.unsafe:
        return UNSAFE
    return _zone_gate(flow, profile)


def consent_gate(flow: Flow, profile: Profile) -> str | None:
    """Adults only, and the agreement, before anything personal."""
    if _exempt(flow):
        return None
    if profile.adult is False:
        return MINOR
    if profile.consent_at is None:
        return CONSENT
    return None


def screen_gate(flow: Flow, profile: Profile) -> str | None:
    """Before a push-pull reframe: the danger route, or the safety screen once."""
    if _exempt(flow) or not flow.reframes:
        return None
    if profile.unsafe:
        return UNSAFE
    if not profile.screened:
        return SCREEN
    return None


def _zone_gate(flow: Flow, profile: Profile) -> str | None:
    return TIMEZONE if flow.needs_zone and profile.zone is None else None


def _exempt(flow: Flow) -> bool:
    return flow.before_consent or flow.id in (CONSENT, MINOR, UNSAFE, SCREEN)
