"""The invitation's life: made after agreeing to plain words, accepted once by
someone else within 24 hours, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.link.codes import code_hash, normalised
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.link.conftest import ALICE, BOB, here, invite, link_up, to

# What both people agree to, in the flows `link` and `link_accept`.
SHARES = (
    "a few set messages, one tap each, only when you choose: taking space"
    " and when you'll be back, wanting to talk, pausing but not leaving."
)
NEVER = (
    "Nothing else: never your answers, ratings or words, when you use me, or where you are."
    " Either of you can /unlink any time."
)


async def test_link_says_what_it_shares_in_plain_words_before_anything_is_made(
    alice: Chat, store: SqlStore
) -> None:
    out = await alice.command("link")
    said = texts(out)
    assert SHARES in said and NEVER in said
    assert [c.label for c in alice.buttons()] == [
        "Make an invitation",
        "How it stays safe",
        "Not now",
    ]
    # Nothing exists until they agree.
    async with store.session() as s:
        assert await s.links_of(_key(alice)) == []
    safe = texts(await alice.press("How it stays safe"))
    assert "At most three messages a day and one an hour" in safe
    assert "Nothing arrives in the other's quiet hours" in safe
    assert "If either of you may not be safe, the link pauses." in safe
    assert "no link" not in texts(await alice.press("Not now")).casefold()


async def test_both_agree_to_the_same_words_and_both_are_told(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    code = await invite(alice)
    opened = texts(await bob.command("link", code))
    assert opened.startswith("Your partner invited you.")
    assert SHARES in opened and NEVER in opened
    out = await bob.press("Agree and link")
    assert here(out) == [lcopy.linked]
    assert to(out, ALICE) == [lcopy.linked]
    assert texts(await bob.command("link")) == lcopy.status_active
    assert texts(await alice.command("link")) == lcopy.status_active


async def test_the_code_is_typed_any_way(alice: Chat, bob: Chat, lcopy: Any) -> None:
    code = await invite(alice)
    out = await bob.command("link", *code.lower().split("-"))
    assert "Your partner invited you." in texts(out)


async def test_an_invitation_expires_at_24_hours_on_the_clock(
    alice: Chat, bob: Chat, clock: ManualClock, lcopy: Any
) -> None:
    code = await invite(alice)
    clock.advance(timedelta(hours=24))
    # (After a day away, a not-a-person reminder comes first.)
    assert here(await bob.command("link", code))[-1] == lcopy.code_unknown


async def test_an_invitation_works_until_just_before_24_hours(
    alice: Chat, bob: Chat, clock: ManualClock
) -> None:
    code = await invite(alice)
    clock.advance(timedelta(hours=23, minutes=59))
    await bob.command("link", code)
    clock.advance(timedelta(seconds=30))
    assert to(await bob.press("Agree and link"), ALICE)


async def test_agreeing_after_24_hours_links_nothing(
    alice: Chat, bob: Chat, clock: ManualClock, lcopy: Any
) -> None:
    code = await invite(alice)
    await bob.command("link", code)
    clock.advance(timedelta(hours=24))
    out = await bob.press("Agree and link")
    assert here(out)[-1] == lcopy.code_unknown and not to(out, ALICE)


async def test_a_code_opens_once(alice: Chat, bob: Chat, carol: Chat, lcopy: Any) -> None:
    code = await invite(alice)
    await bob.command("link", code)
    # Opened by Bob: nobody else can use it, before or after he agrees.
    assert texts(await carol.command("link", code)) == lcopy.code_unknown
    await bob.press("Agree and link")
    assert texts(await carol.command("link", code)) == lcopy.code_unknown


async def test_a_forged_or_garbled_code_gets_the_same_kind_answer(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    await invite(alice)
    for typed in ("ABCD-EFGH-JKLM", "hello", "pl_ZZZZZZZZZZZZ", "0000-1111-OOOO"):
        assert texts(await bob.command("link", typed)) == lcopy.code_unknown


async def test_nobody_links_to_themselves(alice: Chat, lcopy: Any) -> None:
    code = await invite(alice)
    assert texts(await alice.command("link", code)) == lcopy.own_code


async def test_one_link_per_person(alice: Chat, bob: Chat, carol: Chat, lcopy: Any) -> None:
    await link_up(alice, bob)
    code = await invite(carol)
    # Linked people can neither accept another code nor make a new invitation.
    assert texts(await bob.command("link", code)) == lcopy.already_linked
    assert texts(await alice.command("link")) == lcopy.status_active
    assert await _live_links(bob) == 1


async def test_a_new_invitation_replaces_the_old_one(alice: Chat, bob: Chat, lcopy: Any) -> None:
    first = await invite(alice)
    second = await invite(alice)
    assert texts(await bob.command("link", first)) == lcopy.code_unknown
    assert "Your partner invited you." in texts(await bob.command("link", second))


async def test_declining_uses_the_invitation_up_and_tells_nobody(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    code = await invite(alice)
    await bob.command("link", code)
    out = await bob.press("No thanks")
    assert here(out) == [lcopy.declined] and not to(out, ALICE)
    assert texts(await bob.command("link", code)) == lcopy.code_unknown


async def test_only_the_code_hash_is_stored(alice: Chat, store: SqlStore) -> None:
    code = await invite(alice)
    async with store.engine.connect() as connection:
        dump = repr(
            [tuple(r) for r in await connection.exec_driver_sql("SELECT * FROM partner_links")]
        )
    normal = normalised(code)
    assert normal is not None
    assert normal not in dump and code not in dump
    assert code_hash(normal) in dump


async def test_telegram_gets_a_deep_link_that_opens_the_invitation(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> None:
    engine = Engine(
        content,
        store,
        clock,
        safety_screen,
        lambda signal, country: resource_text(resources, signal, country),
        timezone=ZoneInfo("Europe/London"),
        invite_link=lambda code: f"https://t.me/pausecheck_bot?start=pl_{code}",
    )
    alice, bob = Chat(engine, address=ALICE, clock=clock), Chat(engine, address=BOB, clock=clock)
    for chat in (alice, bob):
        await onboard(store, clock, chat.address)
    await alice.command("link")
    said = texts(await alice.press("Make an invitation"))
    link = next(word for word in said.split() if word.startswith("https://t.me/"))
    payload = link.split("start=")[1]
    assert payload.startswith("pl_") and len(payload) == 15
    assert "/link " in said  # and the code, for a partner on Discord or the console
    assert "Your partner invited you." in texts(await bob.command("start", payload))


async def test_a_person_never_screened_answers_the_safety_screen_first(
    alice: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    code = await invite(alice)
    dana = Chat(engine, address=BOB, clock=clock)
    await onboard(store, clock, dana.address, screened=False)
    out = texts(await dana.command("link", code))
    assert "four quick yes-or-no questions" in out and "invited" not in out
    for _ in range(4):
        out = texts(await dana.press("No"))
    assert "Your partner invited you." in out


def _key(chat: Chat) -> UserKey:
    return UserKey(chat.address.platform, chat.address.user_id)


async def _live_links(chat: Chat) -> int:
    async with chat.engine._store.session() as s:
        return len(await s.links_of(_key(chat)))


async def test_a_code_that_reads_as_a_safety_signal_is_never_given(
    alice: Chat, bob: Chat, monkeypatch: Any
) -> None:
    """KMS5 reads as 'kill myself' to the screen, which reads command arguments first:
    such a code, typed by the partner, would start the crisis flow instead of the
    invitation (a real draw once made the suite fail, about one code in 16,000)."""
    draws = iter(["ABCDKMS5EFGH", "ABCDEFGHJKLM"])
    monkeypatch.setattr("dialogs.link.codes.random_code", lambda: next(draws))
    code = await invite(alice)
    assert code == "ABCD-EFGH-JKLM"
    assert texts(await bob.command("link", code)).startswith("Your partner invited you.")
    # The code drawn first really is read as a signal: had it been given, Bob typing
    # it would have been asked whether he is safe, not invited.
    assert "Are you safe right now?" in texts(await bob.command("link", "ABCD-KMS5-EFGH"))
