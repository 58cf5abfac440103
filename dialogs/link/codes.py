"""Invitation codes: unguessable, typed by hand on Discord and the console, carried
by Telegram's deep link.

Twelve characters from 32 that cannot be mistaken for each other (no I, O, 0 or 1)
make 60 random bits from `secrets`: a guesser who tried a thousand codes a second
for the whole day a code lives would hit a live one with odds of about one in
13 billion per live code. Only the code's SHA-256 is stored, so someone reading the
database cannot use a live invitation; once opened, even the hash is gone.

A code is drawn again when it would read as words (`plain` says no): a group such as
KMS5 or RAPE is a safety signal to the screen, which reads every message and command
argument first, so the partner typing `/link ABCD-KMS5-EFGH` would be answered with
the crisis flow instead of the invitation. About one code in 16,000 is drawn again
(22 of the 32**4 groups of four), which costs the code no meaningful randomness.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 12
# What Telegram's deep link carries to /start: `pl_<code>`.
START_PREFIX = "pl_"


def new_code(plain: Callable[[str], bool] = lambda text: True) -> str:
    """A random code that `plain` accepts in every form a person may send it (as
    shown, run together, or Telegram's deep-link payload)."""
    while True:
        code = random_code()
        if all(plain(form) for form in (shown(code), code, START_PREFIX + code)):
            return code


def random_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def shown(code: str) -> str:
    """The code in groups of four, easier to read aloud and type: ABCD-EFGH-JKLM."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalised(typed: str) -> str | None:
    """The code someone typed or pasted (any case, with or without dashes and
    spaces, or the deep link's payload), or None when it cannot be a code."""
    text = typed.strip().removeprefix(START_PREFIX)
    code = "".join(ch for ch in text.upper() if ch not in "- ")
    if len(code) != LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
