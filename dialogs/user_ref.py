"""A stable, non-reversible reference to a person for logs: never log raw ids.

A reference is an HMAC-SHA256 of "platform:user id" under a per-deployment secret, cut
to 16 hex digits. Without the secret, a reference cannot be tied back to an id, even
by trying every plausible id (a plain hash of something as small as a Telegram user
id was reversed in about a second). With it, the operator can still find a person's
lines: `user_ref(platform, id)` gives the same reference on every start.

`ref_for` is the pure function. The secret is injected once at start
(`set_user_ref_secret`, from the setting or the one stored in the database); until
then a random secret of this process stands in, so a reference is never reversible,
only not comparable across restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

REF_HEX_DIGITS = 16

_secret: bytes = secrets.token_bytes(32)


def ref_for(secret: bytes, platform: str, user_id: str) -> str:
    """The reference of one person under `secret`."""
    digest = hmac.new(secret, f"{platform}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:REF_HEX_DIGITS]


def user_ref(platform: str, user_id: str) -> str:
    """The reference of one person under this deployment's secret."""
    return ref_for(_secret, platform, user_id)


def set_user_ref_secret(secret: bytes | str) -> None:
    """Called once at start, before any person is talked to."""
    global _secret
    value = secret.encode() if isinstance(secret, str) else secret
    if len(value) < 16:
        raise ValueError("the user reference secret needs at least 16 bytes")
    _secret = value
