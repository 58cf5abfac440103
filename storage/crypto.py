"""Optional encryption at rest of conversation variables.

Variables may hold a person's free-text answers, the most sensitive thing stored,
so with a key they are written as one Fernet token: `{"_enc": "<token>"}`. The
rendered messages of a follow-up being delivered can quote those answers, so they
are sealed the same way (see storage.outbound_json).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from dialogs.store import VarValue
from storage.errors import StorageError

ENCRYPTED_KEY = "_enc"
KEY_VARIABLE = "PAUSECHECK_ENCRYPTION_KEY"

_MAKE_A_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
_WRONG_OR_MISSING_KEY = (
    f"conversation data is encrypted; set {KEY_VARIABLE} to the key it was written with"
)


class VariableCipher:
    """Seals and opens conversation variables with one Fernet key."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise StorageError(
                f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64-encoded "
                f"bytes); make one with: {_MAKE_A_KEY}"
            ) from exc

    def seal(self, variables: Mapping[str, VarValue]) -> dict[str, str]:
        return self.seal_json(dict(variables))

    def open(self, token: str) -> dict[str, VarValue]:
        variables: dict[str, VarValue] = self.open_json(token)
        return variables

    def seal_json(self, value: Any) -> dict[str, str]:
        """Any JSON-ready value as `{"_enc": "<token>"}`."""
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return {ENCRYPTED_KEY: self._fernet.encrypt(payload.encode("utf-8")).decode("ascii")}

    def open_json(self, token: str) -> Any:
        """The value sealed in `token` by `seal_json`."""
        try:
            payload = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise StorageError(_WRONG_OR_MISSING_KEY) from exc
        return json.loads(payload)


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
    can be introduced on an existing database; they are sealed on their next save."""
    token = stored.get(ENCRYPTED_KEY)
    if token is None:
        return dict(stored)
    if not isinstance(token, str):
        raise StorageError(f"stored conversation variables have a non-text {ENCRYPTED_KEY!r}")
    if cipher is None:
        raise StorageError(_WRONG_OR_MISSING_KEY)
    return cipher.open(token)
