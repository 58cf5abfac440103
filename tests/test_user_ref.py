"""User references in logs cannot be reversed without the deployment's secret
(issue 16, item 7), and stay the same across starts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import dialogs.user_ref as user_ref_module
from bot.app import open_guide
from bot.config import Settings
from dialogs.clock import ManualClock
from dialogs.user_ref import ref_for, set_user_ref_secret, user_ref


@pytest.fixture(autouse=True)
def restore_secret() -> Iterator[None]:
    saved = user_ref_module._secret
    yield
    user_ref_module._secret = saved


def test_a_reference_is_an_hmac_under_the_secret() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert ref_for(a, "telegram", "123") == ref_for(a, "telegram", "123")
    assert ref_for(a, "telegram", "123") != ref_for(b, "telegram", "123")
    assert ref_for(a, "telegram", "123") != ref_for(a, "discord", "123")
    assert len(ref_for(a, "telegram", "123")) == 16


def test_trying_every_id_does_not_find_the_person() -> None:
    """The review recovered an id from an unsalted SHA-256 in 1.3 s by hashing every
    candidate. The same search against today's references finds nothing."""
    set_user_ref_secret(b"deployment-secret-nobody-outside-knows")
    target = user_ref("telegram", "48213")
    for candidate in range(100_000):
        unsalted = hashlib.sha256(f"telegram:{candidate}".encode()).hexdigest()
        assert not target.startswith(unsalted[:12])
        assert target != ref_for(b"", "telegram", str(candidate))


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        set_user_ref_secret(b"short")


async def test_the_secret_is_made_once_and_stored_or_taken_from_the_setting(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}"
    settings = Settings(_env_file=None, database_url=url, timezone="UTC")
    refs = []
    for _ in range(2):
        guide = await open_guide(settings, ManualClock())
        refs.append(user_ref("telegram", "48213"))
        await guide.close()
    # Stable across restarts (the operator can follow one person's lines)...
    assert refs[0] == refs[1]
    # ...and different in another deployment, or with a configured secret.
    configured = settings.model_copy(update={"user_ref_secret": SecretStr("x" * 32)})
    guide = await open_guide(configured, ManualClock())
    await guide.close()
    assert user_ref("telegram", "48213") == ref_for(b"x" * 32, "telegram", "48213")
    assert user_ref("telegram", "48213") != refs[0]
