"""Who joined which group reflection, kept so the table alone does not say, and the
deployment's own secrets.

A participant row and an answer row name their person by `member`, an HMAC-SHA256 of
"platform:user id" under the deployment's member secret. The store computes it to find
a person's rows (to answer, to export, to forget: no decryption involved), but without
the secret nobody can tie a row to a user, even by trying every id. The participant's
platform, id and private chat are kept in `sealed` (a token with a key set, plain
JSON without), because prompts must reach them.

`deployment_secrets` holds what this deployment made for itself on first start:
"member" (sealed with the store's cipher when a key is set, so a copy of the database
without the key cannot compute tags) and "user_ref" (the key of the user references
in logs, when `PAUSECHECK_USER_REF_SECRET` is not set; plain: it protects logs, not the
database, which holds the ids anyway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.store import UserKey
from storage.crypto import UnreadableData, VariableCipher, is_sealed, open_value, seal_value
from storage.dialect_insert import insert_for
from storage.models import DeploymentSecretRow

MEMBER_SECRET = "member"
USER_REF_SECRET = "user_ref"
# The key of the member secret in `AsyncSession.info` (see `storage.open`).
SESSION_INFO_KEY = "pausecheck.member_secret"


def member_tag(secret: bytes, user: UserKey) -> str:
    return hmac.new(secret, f"{user.platform}:{user.user_id}".encode(), hashlib.sha256).hexdigest()


async def session_member_tag(
    session: AsyncSession, user: UserKey, cipher: VariableCipher | None
) -> str:
    """The person's tag. `open_store` puts the secret in every session's `info`; a
    store built by hand reads (or makes) it once per session."""
    secret = session.info.get(SESSION_INFO_KEY)
    if not isinstance(secret, bytes):
        secret = await deployment_secret(
            session, MEMBER_SECRET, cipher, datetime.now(UTC), sealed=True
        )
        session.info[SESSION_INFO_KEY] = secret
    return member_tag(secret, user)


def seal_member(user: UserKey, chat_id: str, cipher: VariableCipher | None) -> Any:
    return seal_value(
        {"platform": user.platform, "user_id": user.user_id, "chat_id": chat_id}, cipher
    )


def open_member(stored: Any, cipher: VariableCipher | None) -> tuple[UserKey, str] | None:
    """The participant behind a sealed row; None when no key opens it."""
    try:
        data = open_value(stored, cipher)
        return UserKey(str(data["platform"]), str(data["user_id"])), str(data["chat_id"])
    except (UnreadableData, KeyError, TypeError):
        return None


async def deployment_secret(
    session: AsyncSession,
    name: str,
    cipher: VariableCipher | None,
    at: datetime,
    *,
    sealed: bool,
) -> bytes:
    """The named secret, made (32 random bytes) and stored the first time. Raises
    `UnreadableData` when it is sealed and no key opens it: the start-up check."""
    row = await session.get(DeploymentSecretRow, name, populate_existing=True)
    if row is None:
        fresh = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        value = seal_value({"value": fresh}, cipher if sealed else None)
        await session.execute(
            insert_for(session.get_bind().dialect.name, DeploymentSecretRow)
            .values(name=name, value=value, created_at=at)
            .on_conflict_do_nothing(index_elements=[DeploymentSecretRow.name])
        )
        # Another process may have made it first: read back whichever won.
        row = await session.get(DeploymentSecretRow, name, populate_existing=True)
        assert row is not None
    opened = open_value(row.value, cipher)
    if sealed and cipher is not None and not is_sealed(row.value):
        # A key was set since the secret was made: seal it now.
        row.value = seal_value(opened, cipher)
    return base64.b64decode(opened["value"])


async def stored_secret_names(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(DeploymentSecretRow.name))).all())
