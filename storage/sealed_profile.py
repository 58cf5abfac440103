"""The crisis time and the danger flag, sealed at rest when a key is set.

With a cipher, `users.crisis_at` stays NULL and `users.unsafe` false, and both live
in `users.sealed` as one token: a copy of the database alone does not say who had a
crisis or who may be in danger. Without a cipher they are the plain columns, as
before (and a plain value is sealed on the person's next save once a key is set).

A sealed value no key opens never stops the guide from answering: the person's
profile is read fail-safe (`UNREADABLE_DEFAULTS`: the danger flag counts as set, so
push-pull suggestions wait until the person says they are safe, which the `unsafe`
flow asks and clears; no crisis time, so nothing is held back), the reset is logged,
and the next save seals the values anew under the current key.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from dialogs.store import Profile
from storage.crypto import UnreadableData, VariableCipher, is_sealed, open_value, seal_value

log = logging.getLogger(__name__)

SEALED_FIELDS = ("crisis_at", "unsafe")
UNREADABLE_DEFAULTS = {"crisis_at": None, "unsafe": True}


def open_profile(profile: Profile, sealed: Any, cipher: VariableCipher | None) -> Profile:
    """`profile` (as read from the plain columns) with the sealed fields filled in."""
    if sealed is None:
        return profile
    try:
        values = open_value(sealed, cipher)
        crisis = values.get("crisis_at")
        return replace(
            profile,
            crisis_at=None if crisis is None else datetime.fromisoformat(crisis),
            unsafe=bool(values.get("unsafe")),
        )
    except (UnreadableData, AttributeError, TypeError, ValueError):
        log.warning("unreadable safety fields reset to fail-safe defaults")
        return replace(profile, **UNREADABLE_DEFAULTS)  # type: ignore[arg-type]


def needs_sealing(sealed: Any, profile: Profile, cipher: VariableCipher | None) -> bool:
    """True when the stored form is not what a save would write now: plain values
    with a key set, or a token no key opens (rewritten under the current key)."""
    if cipher is None:
        return False
    if sealed is None:
        return profile.crisis_at is not None or profile.unsafe
    if not is_sealed(sealed):
        return True
    try:
        open_value(sealed, cipher)
    except UnreadableData:
        return True
    return False


def seal_profile_values(
    values: dict[str, Any], profile: Profile, cipher: VariableCipher | None
) -> dict[str, Any]:
    """Column values for an UPDATE of `users`: when any sealed field is among them and
    a key is set, all of them go into `sealed` and their plain columns are emptied."""
    if cipher is None or not any(name in values for name in SEALED_FIELDS):
        return values
    crisis = profile.crisis_at
    sealed = seal_value(
        {"crisis_at": None if crisis is None else crisis.isoformat(), "unsafe": profile.unsafe},
        cipher,
    )
    return {**values, "crisis_at": None, "unsafe": False, "sealed": sealed}


def exported_profile(data: dict[str, Any], sealed: Any, cipher: VariableCipher | None) -> None:
    """A user row's export, with the sealed fields opened in place of the columns."""
    data.pop("sealed", None)
    if sealed is None:
        return
    try:
        values = open_value(sealed, cipher)
        data["crisis_at"] = values.get("crisis_at")
        data["unsafe"] = bool(values.get("unsafe"))
    except UnreadableData:
        data["crisis_at"] = data["unsafe"] = "unreadable (encrypted with a key no longer set)"
