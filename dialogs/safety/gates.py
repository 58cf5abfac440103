"""Which flow has to run before the one a person asked for.

Order matters: consent before anything personal; adults only; while someone may be
unsafe, no push-pull reframes at all; and before the first reframe a person ever
gets, the short safety screen.
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
    if flow.before_consent or flow.id in (CONSENT, MINOR, UNSAFE, SCREEN):
        return None
    if profile.adult is False:
        return MINOR
    if profile.consent_at is None:
        return CONSENT
    if flow.reframes and profile.unsafe:
        return UNSAFE
    if flow.reframes and not profile.screened:
        return SCREEN
    if flow.needs_zone and profile.zone is None:
        return TIMEZONE
    return None
