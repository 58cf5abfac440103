"""/about: what the guide is and is not, and privacy in one message; before consent too."""

from __future__ import annotations

from dialogs.clock import ManualClock
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, texts


async def test_about_for_someone_new_needs_no_consent_and_keeps_nothing_new(
    newcomer: Chat, store: SqlStore, clock: ManualClock
) -> None:
    out = await newcomer.command("about")
    shown = texts(out)
    assert "automated guide" in shown
    assert "I'm a program: not a person, not a therapist" in shown
    assert "not for emergencies" in shown and "/sos" in shown
    # What it keeps is one tap away, not in the first screen.
    assert out[-1].text == "Want to know what I keep?"
    assert "Okay?" not in shown  # no consent step first
    out = await newcomer.press("Tell me more")
    privacy = out[0].text
    for command in ("/privacy", "/export", "/forget"):
        assert command in privacy
    assert "/help" in out[-1].text and not out[-1].choices
    assert not any(m.private_only for m in out)  # fine to show in a group
    async with store.session() as s:
        profile = await s.load_profile(UserKey("test", "new1"))
        assert (await s.load_state(UserKey("test", "new1"), clock.now())).flow_id is None
    assert profile.consent_at is None


async def test_about_for_someone_onboarded(chat: Chat) -> None:
    out = texts(await chat.command("about"))
    assert "not a therapist" in out
    assert "/forget" in texts(await chat.press("Tell me more"))
