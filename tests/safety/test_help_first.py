"""Help first, safety never traded: a first-time person gets the breathing before the
agreement, and it stores nothing; the safety questions wait for the first push-pull
reframe; and typed crisis or danger words, or /sos, are answered first on every path,
agreement or not."""

from __future__ import annotations

from sqlalchemy import text as sql

from storage import SqlStore
from tests.conftest import Chat, texts
from tests.safety.test_paths import profile_of, rows_about, to_the_screen


async def journal_rows(store: SqlStore) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(sql("select count(*) from journal"))).scalar() or 0


async def test_the_breath_comes_first_and_stores_nothing(newcomer: Chat, store: SqlStore) -> None:
    out = await newcomer.command("pause")
    assert "automated guide" in out[0].text  # what it is, before anything else
    assert "Breathe in through your nose" in texts(out)
    await newcomer.press("Done")
    # The tap on the breath, and the person's place before agreeing, are all there is.
    assert await journal_rows(store) == 0
    assert "journal" not in await rows_about(store, newcomer)
    profile = await profile_of(store, newcomer)
    assert (profile.consent_at, profile.adult, profile.country) == (None, None, None)
    # Typed words before the agreement are not kept either (not even what they seemed).
    await newcomer.say("we had a fight and now it is all quiet")
    assert await journal_rows(store) == 0
    # After the agreement, taps are kept as the consent text says.
    await newcomer.press("I agree, and I'm 18+")
    await newcomer.press("United States")
    await newcomer.press("6")
    assert await journal_rows(store) > 0


async def test_one_tap_from_start_to_the_breath(newcomer: Chat) -> None:
    out = await newcomer.command("start")
    assert "automated guide" in texts(out)
    out = await newcomer.press("Take a pause now")
    assert "Breathe in through your nose" in texts(out)
    assert "I keep your place" not in texts(newcomer.seen)


async def test_just_looking_asks_for_nothing(newcomer: Chat, store: SqlStore) -> None:
    await newcomer.command("start")
    out = await newcomer.press("Just looking")
    assert "/pause" in texts(out)
    shown = texts(newcomer.seen)
    assert "I keep your place" not in shown and "four quick" not in shown
    assert (await profile_of(store, newcomer)).consent_at is None


async def test_crisis_words_at_the_breath_are_answered_first(
    newcomer: Chat, store: SqlStore
) -> None:
    await newcomer.command("pause")
    out = await newcomer.say("honestly i just want to kill myself")
    shown = texts(out)
    assert "988" in shown  # the first reply names someone to call
    assert "I keep your place" not in shown and "Breathe in" not in shown
    assert (await profile_of(store, newcomer)).crisis_at is not None


async def test_danger_words_mid_agreement_are_answered_first(
    newcomer: Chat, store: SqlStore
) -> None:
    await newcomer.command("pause")
    await newcomer.press("Done")  # the agreement is on screen now
    out = await newcomer.say("he hit me and I'm scared of him")
    assert "Is it safe to keep chatting here?" in texts(out)
    assert (await profile_of(store, newcomer)).unsafe is True
    # From then on, no push-pull reframes: the pause opens on the danger route.
    out = await newcomer.command("pause")
    assert "leaving out the relationship suggestions" in texts(out)


async def test_sos_works_before_any_agreement(newcomer: Chat, store: SqlStore) -> None:
    await newcomer.command("pause")
    out = await newcomer.command("sos")
    assert "911" in texts(out) or "emergency" in texts(out)
    out = await newcomer.press("Thoughts of suicide or self-harm")
    assert "988" in texts(out)
    assert (await profile_of(store, newcomer)).consent_at is None


async def test_a_yes_on_the_screen_mid_pause_never_reaches_the_check(
    newcomer: Chat, store: SqlStore
) -> None:
    out = await to_the_screen(newcomer, "United States")
    assert "four quick" in texts(out)
    out = await newcomer.press("Yes")
    assert "Is it safe to keep chatting here?" in texts(out)
    assert "activation" not in texts(newcomer.seen)
    assert (await profile_of(store, newcomer)).unsafe is True


async def test_the_screen_is_asked_once(newcomer: Chat, store: SqlStore) -> None:
    await to_the_screen(newcomer)
    for _ in range(4):
        await newcomer.press("No")
    await newcomer.command("pause")
    for label in ("Done", "5", "Silence"):
        await newcomer.press(label)
    out = await newcomer.press("Reach out more")
    assert "four quick" not in texts(out)
    # A second pause says the check in other words (dialogs/memory.py), same idea.
    assert "activation, not" in texts(out).lower() and "intention" in texts(out)
