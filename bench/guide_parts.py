"""The real guide's parts the benchmarks build the same way: the engine on the real
content and safety screen, and a person ready for follow-ups at any hour."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dialogs.clock import SystemClock
from dialogs.content import load_content
from dialogs.engine import Engine
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import Profile, Store

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"


def make_engine(store: Store) -> Engine:
    """The real engine on the real content and safety screen."""
    resources = SafetyResources.from_file(CONTENT / "safety" / "resources.yaml")
    return Engine(
        load_content(CONTENT),
        store,
        SystemClock(),
        SafetyScreen.from_file(CONTENT / "safety" / "signals.yaml"),
        lambda signal, country: resource_text(resources, signal, country),
    )


def adult_profile(now: datetime) -> Profile:
    return Profile(
        consent_at=now,
        adult=True,
        screened=True,
        last_active_at=now,
        session_started_at=now,
        reminded_at=now,
        # Quiet hours off ("/quiet off"): otherwise a run at night postpones the whole
        # wave to the morning, sends nothing, and measures only postponing.
        quiet_start="00:00",
        quiet_end="00:00",
    )
