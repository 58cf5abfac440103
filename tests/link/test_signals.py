"""Each signal: offered with its exact words, sent with one tap, read by the partner
as exactly those words, with times in the partner's own zone; the limits; quiet
hours; unlinking and forgetting."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Outbound
from dialogs.flows.model import ChoiceStep
from dialogs.link.signals import return_time
from dialogs.link.store import PARTNER_SIGNAL
from dialogs.store import FollowUpStatus
from storage import SqlStore
from tests.conftest import Chat, texts
from tests.link.conftest import ALICE, BOB, here, key, link_up, tap, to


def offer_of(out: list[Outbound]) -> str:
    offers = [m.text for m in out if m.text.startswith("Want your partner to get this?")]
    assert len(offers) == 1, [m.text for m in out]
    return offers[0]


async def space(alice: Chat, when: str = "In 30 minutes") -> list[Outbound]:
    await alice.command("space")
    await alice.press(when)
    await alice.press("Simple and clear")
    return await alice.press("Yes, remind me")


async def pause_offer(chat: Chat) -> list[Outbound]:
    await chat.command("pause")
    return await chat.press("Done")


async def test_space_offers_the_return_time_in_the_partners_zone(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    await link_up(alice, bob)
    out = await space(alice)
    # 17:00 in London is 12:00 in New York; back at 17:30, which Bob reads as 12:30.
    assert offer_of(out) == (
        "Want your partner to get this? They'd read exactly:\n\n"
        "\"I'm taking some space. I'll be back at 12:30.\"\n\n"
        "(12:30 is their time; it's 17:30 for you.)"
    )
    assert [c.label for c in alice.buttons()] == ["Send it", "Not now"]
    sent = await tap(alice, "Send it")
    assert to(sent, BOB) == ["From your partner: \"I'm taking some space. I'll be back at 12:30.\""]
    assert here(sent) == [lcopy.sent]


async def test_nothing_goes_without_the_tap(alice: Chat, bob: Chat, lcopy: Any) -> None:
    await link_up(alice, bob)
    out = await space(alice)
    assert not to(out, BOB)
    skipped = await tap(alice, "Not now")
    assert here(skipped) == [lcopy.skipped] and not to(skipped, BOB)
    # The Send button of a declined offer does nothing.
    again = await alice.send(choice=next(c.id for c in out[-1].choices if c.label == "Send it"))
    assert here(again) == [lcopy.offer_gone] and not to(again, BOB)


async def test_a_time_typed_in_words_is_never_offered(alice: Chat, bob: Chat) -> None:
    await link_up(alice, bob)
    await alice.command("space")
    await alice.press("Another time")
    await alice.say("after dinner")
    out = await alice.press("Simple and clear")
    assert not [m for m in out if m.text.startswith("Want your partner")]


async def test_unlinked_flows_read_as_before(alice: Chat) -> None:
    out = await space(alice)
    assert not [m for m in out if m.text.startswith("Want your partner")]
    assert "Send it" not in [c.label for m in alice.seen for c in m.choices]


async def test_pause_offers_its_words(alice: Chat, bob: Chat) -> None:
    await link_up(alice, bob)
    out = await pause_offer(alice)
    assert '"I\'m taking a pause, not leaving."' in offer_of(out)
    # The pause goes on: its next question is there too.
    assert "How loud is it inside right now?" in texts(out)
    sent = await tap(alice, "Send it")
    assert to(sent, BOB) == ['From your partner: "I\'m taking a pause, not leaving."']


async def test_talk_and_the_partners_one_tap_answer(alice: Chat, bob: Chat, lcopy: Any) -> None:
    await link_up(alice, bob)
    await alice.command("talk")
    await alice.press("That works for me")
    await alice.press("Got it")
    await alice.press("Tonight")
    out = await alice.press("No thanks")
    assert "\"I'd like to talk when you're ready.\"" in offer_of(out)
    sent = await tap(alice, "Send it")
    (request,) = [m for m in sent if m.to == BOB]
    assert request.text == "From your partner: \"I'd like to talk when you're ready.\""
    assert [c.label for c in request.choices] == ["Ready now", "Later tonight", "Tomorrow"]
    bob.seen.append(request)
    answer = await bob.press("Later tonight")
    assert to(answer, ALICE) == ['Your partner answered: "Later tonight"']
    # Once per request.
    bob.seen.append(request)
    assert here(await bob.press("Ready now")) == [lcopy.answer_gone]


async def test_at_most_one_an_hour_and_three_a_day(
    alice: Chat, bob: Chat, clock: ManualClock, lcopy: Any
) -> None:
    await link_up(alice, bob)
    await pause_offer(alice)
    assert to(await tap(alice, "Send it"), BOB)
    clock.advance(timedelta(minutes=20))
    await pause_offer(alice)
    held = await tap(alice, "Send it")
    assert not to(held, BOB)
    # The next can go an hour after the first: 18:00 in London.
    assert here(held) == [lcopy.limit_hour.replace("{when}", "18:00")]
    for wait in (41, 61):  # 18:01, then 19:02
        clock.advance(timedelta(minutes=wait))
        await pause_offer(alice)
        assert to(await tap(alice, "Send it"), BOB)
    clock.advance(timedelta(minutes=61))
    await pause_offer(alice)
    fourth = await tap(alice, "Send it")
    assert here(fourth) == [lcopy.limit_day] and not to(fourth, BOB)
    # A day after the first, one can go again.
    clock.advance(timedelta(hours=24) - timedelta(minutes=20 + 41 + 61 + 61))
    await pause_offer(alice)
    assert to(await tap(alice, "Send it"), BOB)


async def test_limits_are_per_sender(alice: Chat, bob: Chat) -> None:
    await link_up(alice, bob)
    await pause_offer(alice)
    assert to(await tap(alice, "Send it"), BOB)
    await pause_offer(bob)
    assert to(await tap(bob, "Send it"), ALICE)


async def test_im_back_keeps_the_promise_within_the_hour(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine, lcopy: Any
) -> None:
    await link_up(alice, bob)
    await space(alice)
    await tap(alice, "Send it")
    out = await _return_reminder(alice, clock, store, engine)
    assert "Hi. It's the time you said you'd come back." in texts(out)
    back = await alice.press("8")
    assert '"I\'m back."' in offer_of(back)
    sent = await tap(alice, "Send it")
    assert to(sent, BOB) == ['From your partner: "I\'m back."']
    # Only the first return is exempt from the hourly limit.
    await pause_offer(alice)
    assert not to(await tap(alice, "Send it"), BOB)


async def test_i_need_until_names_a_time_in_the_partners_zone(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine
) -> None:
    await link_up(alice, bob)
    await space(alice)
    await tap(alice, "Send it")
    await _return_reminder(alice, clock, store, engine)
    # 17:30 London when the reminder comes: 30 more minutes, rounded up, is 18:00 there,
    # 13:00 in New York.
    more = await alice.press("2")
    assert '"I need until 13:00."' in offer_of(more)
    assert to(await tap(alice, "Send it"), BOB) == ['From your partner: "I need until 13:00."']


async def test_in_quiet_hours_it_waits_and_the_sender_is_told_when(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine, lcopy: Any
) -> None:
    await link_up(alice, bob)
    # 04:00 in London is 23:00 in New York: Bob's quiet hours until 08:00 his time.
    clock.advance(timedelta(hours=11))
    out = await pause_offer(alice)
    assert "It's quiet hours for them, so it would wait until 13:00 your time." in offer_of(out)
    sent = await tap(alice, "Send it")
    assert not to(sent, BOB)
    assert here(sent) == [lcopy.waiting.replace("{when}", "13:00")]
    # It is planned like a follow-up: listed, and sent when the quiet hours end.
    async with store.session() as s:
        (planned,) = await s.pending_followups(key(ALICE))
    assert planned.kind == PARTNER_SIGNAL
    clock.advance(timedelta(hours=9) - timedelta(minutes=1))
    assert await store.claim_due(clock.now(), 10) == []
    clock.advance(timedelta(minutes=1))
    (due,) = await store.claim_due(clock.now(), 10)
    outcome = await engine.start_due(due)
    assert [(m.text, m.to) for m in outcome.messages] == [
        ('From your partner: "I\'m taking a pause, not leaving."', BOB)
    ]
    assert {row.address for row in outcome.rows} == {BOB}


async def test_a_waiting_signal_is_withdrawn_when_the_link_ends(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine
) -> None:
    await link_up(alice, bob)
    clock.advance(timedelta(hours=11))
    await pause_offer(alice)
    await tap(alice, "Send it")
    await bob.command("unlink")
    clock.advance(timedelta(hours=9))
    for due in await store.claim_due(clock.now(), 10):
        assert (await engine.start_due(due)).messages == ()


async def test_a_waiting_signal_is_held_when_the_link_pauses(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine
) -> None:
    await link_up(alice, bob)
    clock.advance(timedelta(hours=11))
    await pause_offer(alice)
    await tap(alice, "Send it")
    await bob.say("I'm scared of how he'll react")
    clock.advance(timedelta(hours=9))
    (due,) = await store.claim_due(clock.now(), 10)
    assert (await engine.start_due(due)).messages == ()
    async with store.session() as s:
        assert (await s.get_followup(due.id)).status is FollowUpStatus.CANCELLED  # type: ignore[union-attr]


async def test_an_offer_shown_before_a_pause_sends_nothing(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    await link_up(alice, bob)
    await pause_offer(alice)
    await bob.say("I'm scared of how he'll react")
    out = await tap(alice, "Send it")
    assert here(out) == [lcopy.link_paused] and not to(out, BOB)


async def test_unlinking_needs_nobody_and_says_only_that_it_ended(
    alice: Chat, bob: Chat, lcopy: Any
) -> None:
    await link_up(alice, bob)
    out: list[Outbound] = await bob.command("unlink")
    assert here(out) == [lcopy.unlinked]
    assert to(out, ALICE) == [lcopy.link_ended]
    assert texts(await bob.command("unlink")) == lcopy.not_linked
    out = await pause_offer(alice)
    assert not [m for m in out if m.text.startswith("Want your partner")]


async def test_forget_unlinks_and_the_partner_hears_only_that(
    alice: Chat, bob: Chat, store: SqlStore, lcopy: Any
) -> None:
    await link_up(alice, bob)
    await pause_offer(alice)
    await tap(alice, "Send it")
    await alice.command("forget")
    await alice.press("Yes, delete everything")
    async with store.session() as s:
        assert await s.links_of(key(BOB)) == []
        exported = await s.export_user(key(BOB))
    assert exported["partner_links"] == [] and exported["partner_signals"] == []
    # Owed to Bob, by the resend sweep: the one notice, nothing else.
    owed = [row["message"]["text"] for row in exported["outbound"] if row["status"] == "pending"]
    assert owed == [lcopy.link_ended]


async def _return_reminder(
    alice: Chat, clock: ManualClock, store: SqlStore, engine: Engine
) -> list[Outbound]:
    """The space_return reminder /space planned, 30 minutes on, as Alice sees it."""
    clock.advance(timedelta(minutes=30))
    (due,) = await store.claim_due(clock.now(), 10)
    outcome = await engine.start_due(due)
    alice.seen.extend(outcome.messages)
    return list(outcome.messages)


async def test_this_evening_at_8_is_the_senders_8_told_in_the_partners_time(
    alice: Chat, bob: Chat
) -> None:
    await link_up(alice, bob)
    out = await space(alice, "This evening, at 8")
    # 20:00 in London is 15:00 in New York.
    assert "\"I'm taking some space. I'll be back at 15:00.\"" in offer_of(out)
    assert "(15:00 is their time; it's 20:00 for you.)" in offer_of(out)


async def test_a_waiting_signal_is_listed_and_can_be_cancelled(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore, engine: Engine
) -> None:
    await link_up(alice, bob)
    clock.advance(timedelta(hours=11))
    await pause_offer(alice)
    await tap(alice, "Send it")
    listed = await alice.command("schedule")
    assert "13:00: Partner link" in texts(listed)
    cancelled = await tap(alice, "Cancel Tue 06 Jan, 13:00")
    assert not to(cancelled, BOB)
    clock.advance(timedelta(hours=9))
    assert await store.claim_due(clock.now(), 10) == []


async def test_stop_names_a_waiting_signal_and_cancels_it_only_when_asked(
    alice: Chat, bob: Chat, clock: ManualClock, store: SqlStore
) -> None:
    await link_up(alice, bob)
    clock.advance(timedelta(hours=11))
    await pause_offer(alice)
    await tap(alice, "Send it")
    asked = texts(await alice.command("stop"))
    assert "Also cancel your message to your partner at 13:00?" in asked
    await alice.press("No, keep")
    assert len(await _pending(store)) == 1
    await alice.command("stop")
    await alice.press("Yes, cancel")
    assert await _pending(store) == []


async def _pending(store: SqlStore) -> list[object]:
    async with store.session() as s:
        return list(await s.pending_followups(key(ALICE)))


async def test_tomorrow_morning_late_at_night_is_the_senders_9_told_in_the_partners_time(
    alice: Chat, bob: Chat, clock: ManualClock
) -> None:
    await link_up(alice, bob)
    clock.set(clock.now().replace(hour=23, minute=30))  # 23:30 in London
    out = await space(alice, "Tomorrow morning")
    # 09:00 in London is 04:00 in New York: the morning /space promised, not a day on.
    assert "\"I'm taking some space. I'll be back at 04:00 tomorrow.\"" in offer_of(out)
    assert "(04:00 tomorrow is their time; it's 09:00 tomorrow for you.)" in offer_of(out)


def test_every_return_time_space_offers_can_be_told_to_a_partner(content: Content) -> None:
    # A /space time the link cannot place is silently left out of the offer: each
    # option that names a time (it sets when_label) must have a return time.
    step = content.flows["space"].step("when")
    assert isinstance(step, ChoiceStep)
    now = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
    timed = [o.id for o in step.options if "when_label" in o.set]
    assert "morning" in timed
    assert [t for t in timed if return_time(t, now, ZoneInfo("Europe/London")) is None] == []


async def test_later_tonight_is_not_offered_in_the_partners_small_hours(
    alice: Chat, bob: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await link_up(alice, bob)
    # Bob keeps no quiet hours at night (02:00 to 03:00 only), so a talk request can
    # reach him at 01:00 his time (06:00 in London): "Later tonight" would mean nothing.
    async with store.session() as s:
        profile = await s.load_profile(key(BOB))
        await s.save_profile(key(BOB), replace(profile, quiet_start="02:00", quiet_end="03:00"))
    clock.advance(timedelta(hours=13))
    await alice.command("talk")
    await alice.press("That works for me")
    await alice.press("Got it")
    await alice.press("Tonight")
    await alice.press("No thanks")
    sent = await tap(alice, "Send it")
    (request,) = [m for m in sent if m.to == BOB]
    assert [c.label for c in request.choices] == ["Ready now", "Tomorrow"]
