"""A stable, non-reversible reference to a person for logs: never log raw ids."""

from __future__ import annotations

import hashlib


def user_ref(platform: str, user_id: str) -> str:
    return hashlib.sha256(f"{platform}:{user_id}".encode()).hexdigest()[:12]
