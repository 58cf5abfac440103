"""Optional encryption at rest, with keys that can rotate.

With keys set (`PAUSECHECK_ENCRYPTION_KEYS`, comma-separated), what would say the most
about a person is written as one Fernet token, `{"_enc": "<token>"}`: conversation
variables (free-text answers), the rendered messages of a delivery in progress, the
crisis time and danger flag (storage.sealed_profile), who joined which group
reflection and their answers (storage.membership, storage.reflection_rows).

Several keys: the first encrypts, every one decrypts (`MultiFernet`), so a new key
goes first, the old one stays behind it until `pausecheck keys rotate` has
re-encrypted everything under the new one, and then can be dropped. A token no key
opens raises `UnreadableData`; the store's callers reset such a value and go on (a
person in crisis is answered whatever happened to a key), and `storage.keys` stops
the guide at start when the configured keys open nothing stored at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from dialogs.store import VarValue
from storage.errors import StorageError

log = logging.getLogger(__name__)

ENCRYPTED_KEY = "_enc"
KEY_VARIABLE = "PAUSECHECK_ENCRYPTION_KEYS"

_MAKE_A_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
_WRONG_OR_MISSING_KEY = (
    f"stored data is encrypted and none of the keys opens it; set {KEY_VARIABLE} to the "
    "key it was written with"
)


class UnreadableData(StorageError):
    """A sealed value that no configured key opens (or no key is configured)."""

    def __init__(self, message: str = _WRONG_OR_MISSING_KEY) -> None:
        super().__init__(message)


class VariableCipher:
    """Seals with the first of its Fernet keys and opens with any of them."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        given = [keys] if isinstance(keys, str) else list(keys)
        if not given:
            raise StorageError(f"{KEY_VARIABLE} holds no key; make one with: {_MAKE_A_KEY}")
        fernets = []
        for position, key in enumerate(given, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                which = "" if len(given) == 1 else f" (key {position} of {len(given)})"
                raise StorageError(
                    f"{KEY_VARIABLE}{which} is not a valid Fernet key (32 url-safe "
                    f"base64-encoded bytes); make one with: {_MAKE_A_KEY}"
                ) from exc
        self._fernet = MultiFernet(fernets)
        self._primary = fernets[0]
        self.key_count = len(fernets)

    def seal(self, variables: Mapping[str, VarValue]) -> dict[str, str]:
        return self.seal_json(dict(variables))

    def open(self, token: str) -> dict[str, VarValue]:
        variables: dict[str, VarValue] = self.open_json(token)
        return variables

    def seal_json(self, value: Any) -> dict[str, str]:
        """Any JSON-ready value as `{"_enc": "<token>"}`, under the first key."""
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return {ENCRYPTED_KEY: self._primary.encrypt(payload.encode("utf-8")).decode("ascii")}

    def open_json(self, token: str) -> Any:
        """The value sealed in `token` by `seal_json`, under any of the keys."""
        try:
            payload = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise UnreadableData() from exc
        return json.loads(payload)

    def is_current(self, token: str) -> bool:
        """Whether the first key opens `token` (else `keys rotate` has work to do)."""
        try:
            self._primary.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True


def is_sealed(stored: Any) -> bool:
    return isinstance(stored, Mapping) and isinstance(stored.get(ENCRYPTED_KEY), str)


def seal_value(value: Any, cipher: VariableCipher | None) -> Any:
    """`value` sealed with a cipher, as is without (the plain form must not be a dict
    with `_enc`, which every caller's shape rules out)."""
    return value if cipher is None else cipher.seal_json(value)


def open_value(stored: Any, cipher: VariableCipher | None) -> Any:
    """The value behind `seal_value`'s result; `UnreadableData` when sealed and no key
    opens it."""
    if not is_sealed(stored):
        return stored
    if cipher is None:
        raise UnreadableData()
    return cipher.open_json(stored[ENCRYPTED_KEY])


def encode_variables(
    variables: Mapping[str, VarValue], cipher: VariableCipher | None
) -> dict[str, Any]:
    """The JSON to store for `variables`: sealed with a cipher, as is without."""
    if ENCRYPTED_KEY in variables:
        # Stored as is, it would later be taken for an encrypted value.
        raise ValueError(f"variable name {ENCRYPTED_KEY!r} is reserved by the store")
    if cipher is None:
        return dict(variables)
    return cipher.seal(variables)


def decode_variables(
    stored: Mapping[str, Any], cipher: VariableCipher | None
) -> dict[str, VarValue]:
    """Variables from stored JSON. Plain values are read even with a cipher, so a key
    can be introduced on an existing database; they are sealed on their next save.
    Raises `UnreadableData` when they are sealed and no key opens them."""
    token = stored.get(ENCRYPTED_KEY)
    if token is None:
        return dict(stored)
    if not isinstance(token, str):
        raise StorageError(f"stored conversation variables have a non-text {ENCRYPTED_KEY!r}")
    if cipher is None:
        raise UnreadableData()
    return cipher.open(token)


def readable_variables(
    stored: Mapping[str, Any], cipher: VariableCipher | None
) -> dict[str, VarValue] | None:
    """`decode_variables`, or None when no key opens them: the caller resets the
    conversation (the person starts afresh, and is answered) and logs it."""
    try:
        return decode_variables(stored, cipher)
    except UnreadableData:
        log.warning("unreadable conversation variables: the conversation is reset")
        return None
