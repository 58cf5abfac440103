"""Variation and memory in /pause, all from the journal (taps and numbers only): other
wordings of the check and the closing lines, never the same one twice in a row; a
shorter, body-first path for a rating of 8 or more; the change after breathing said
back in the person's own numbers; and the next pause starting with what helped."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address
from dialogs.flows.model import EndStep, MessageStep
from dialogs.followups.dispatcher import Dispatcher
from dialogs.memory import WORDING, Memory
from dialogs.store import ConversationState, FollowUpRequest, Profile, UserKey
from dialogs.turn import Turn
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.test_engine import RecordingSender

USER = UserKey("test", "u1")


def wordings(content: Content, step_id: str) -> list[str]:
    step = content.flows["pause"].step(step_id)
    assert isinstance(step, MessageStep | EndStep)
    return ["\n\n".join(w) for w in step.wordings()]


def shown_wording(content: Content, step_id: str, shown: str) -> int:
    """Which wording of a pause step is in `shown` (exactly one must be)."""
    found = [i for i, w in enumerate(wordings(content, step_id)) if w in shown]
    assert len(found) == 1, f"{step_id}: {found} in {shown!r}"
    return found[0]


async def one_pause(chat: Chat, rating: str = "6") -> str:
    """A whole pause to its closing lines; returns everything the guide said."""
    said = [await chat.command("pause")]
    for label in ("Done", rating, "A message", "Reach out more", "It fits"):
        said.append(await chat.press(label))
    said.append(await chat.press("Settle and wait a set time"))
    said.append(await chat.press("No thanks"))
    return "\n".join(texts(s) for s in said)


async def journal(store: SqlStore) -> list[tuple[str, str, str, str]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sql("select flow_id, node_id, kind, value from journal"))
        return [tuple(r) for r in rows]


async def remember(store: SqlStore, clock: ManualClock, *row: str) -> None:
    async with store.session() as s:
        await s.append_journal(USER, clock.now(), *row)


# ----------------------------------------------------------------- variation


def test_the_check_and_the_closing_have_other_wordings(content: Content) -> None:
    for step_id in ("check", "close"):
        said = wordings(content, step_id)
        assert len(said) >= 2 and len(set(said)) == len(said), step_id


async def test_two_pauses_by_one_person_show_different_check_wordings(
    chat: Chat, content: Content
) -> None:
    first = await one_pause(chat)
    second = await one_pause(chat)
    assert shown_wording(content, "check", first) == 0
    assert shown_wording(content, "check", second) == 1
    assert shown_wording(content, "close", first) != shown_wording(content, "close", second)


async def test_never_the_same_wording_twice_in_a_row(chat: Chat, content: Content) -> None:
    seen = [await one_pause(chat) for _ in range(len(wordings(content, "check")) + 2)]
    for step_id in ("check", "close"):
        order = [shown_wording(content, step_id, s) for s in seen]
        assert all(a != b for a, b in pairwise(order)), (step_id, order)
        assert set(order) == set(range(len(wordings(content, step_id)))), "each one comes round"


async def test_the_wording_follows_from_the_journal_alone(
    chat: Chat, store: SqlStore, clock: ManualClock, content: Content
) -> None:
    # Someone whose journal says they last saw the second check wording gets the third.
    await remember(store, clock, "pause", "check", WORDING, "1")
    assert shown_wording(content, "check", await one_pause(chat)) == 2
    # And the one shown is written down, as a number, for next time.
    rows = [r for r in await journal(store) if r[2] == WORDING and r[1] == "check"]
    assert rows[-1] == ("pause", "check", WORDING, "2")


async def test_another_person_starts_from_the_first_wording(
    engine: Engine, chat: Chat, content: Content, store: SqlStore, clock: ManualClock
) -> None:
    await one_pause(chat)
    other = Chat(engine, clock=clock, address=Address("test", "u2", "c2", True))
    await onboard(store, clock, other.address)
    assert shown_wording(content, "check", await one_pause(other)) == 0


# ----------------------------------------------------------------- high ratings


@pytest.mark.parametrize("rating", ["8", "9", "10"])
async def test_a_high_rating_takes_the_short_body_first_path(chat: Chat, rating: str) -> None:
    await chat.command("pause")
    await chat.press("Done")
    out = texts(await chat.press(rating))
    assert "body first, words later" in out and "Cold water" in out
    assert "What set it off?" not in out
    await chat.press("Done")
    out = texts(await chat.press("5"))
    assert f"From {rating} to 5" in out
    assert "What next?" in out
    assert [c.label for c in chat.buttons()] == [
        "Settle and wait a set time",
        "Ask for space, with a time",
        "Breathe a bit more",
    ]
    out = texts(await chat.press("Settle and wait a set time"))
    assert "Want me to check on you later?" in out
    # Never the reframe questions on the way: body first.
    said = texts(chat.seen)
    assert "What set it off?" not in said and "Does that fit" not in said


async def test_seven_still_takes_the_full_path(chat: Chat) -> None:
    await chat.command("pause")
    await chat.press("Done")
    out = texts(await chat.press("7"))
    assert "What set it off?" in out and "body first" not in out


async def test_the_short_path_is_shorter(chat: Chat) -> None:
    async def taps_to_the_next_move(rating: str) -> int:
        await chat.command("stop")
        await chat.command("pause")
        answers = {"9": ["Done", "9", "Done", "5"], "6": ["Done", "6"]}[rating]
        answers += {"9": [], "6": ["A message", "Reach out more", "It fits"]}[rating]
        for label in answers:
            await chat.press(label)
        assert "Settle and wait a set time" in [c.label for c in chat.buttons()]
        return len(answers)

    assert await taps_to_the_next_move("9") < await taps_to_the_next_move("6")


# ----------------------------------------------------------------- the change, named


@pytest.mark.parametrize(
    ("after", "said"),
    [("4", "From 6 to 4."), ("7", "From 6 to 7: louder for now"), ("6", "Still at 6.")],
)
async def test_the_change_after_breathing_is_named(chat: Chat, after: str, said: str) -> None:
    await chat.command("pause")
    for label in ("Done", "6", "A message", "Reach out more", "It fits"):
        await chat.press(label)
    out = texts(await chat.press("Just breathe a bit more"))
    assert "one more slow round" in out
    out = texts(await chat.press(after))
    assert said in out
    assert "What would help most right now?" in out


# ----------------------------------------------------------------- what helped last time


async def test_the_next_pause_starts_with_what_helped_last_time(
    chat: Chat, store: SqlStore, clock: ManualClock, engine: Engine
) -> None:
    # A follow-up after a pause asks what helped; the answer is a tap.
    async with store.session() as s:
        due = clock.now()
        await s.schedule_followup(
            USER, FollowUpRequest("followup", "c1", due, due + timedelta(hours=6), "f1")
        )
    sender = RecordingSender()
    assert await Dispatcher(store, engine, {"test": sender}, clock).run_due() == 1
    chat.seen.extend(sender.sent[0][1])
    await chat.press("Better")
    await chat.press("3")
    await chat.press("Moving my body")
    out = texts(await chat.command("pause"))
    assert "Last time, moving your body helped. Want to start there?" in out
    assert "pause for a minute" not in out
    out = texts(await chat.press("Yes, start there"))
    assert "brisk walk" in out
    out = texts(await chat.press("I'm back"))
    assert "How loud is it inside right now?" in out


async def test_breathe_first_goes_to_the_usual_start(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await remember(store, clock, "followup", "helped", "choice", "writing")
    out = texts(await chat.command("pause"))
    assert "Last time, writing it down helped" in out
    out = texts(await chat.press("Breathe first"))
    assert "Breathe in through your nose" in out


@pytest.mark.parametrize(
    ("helped", "opener"),
    [
        ("breathing", "Last time, breathing helped, so let's start there."),
        ("waiting", "Last time, waiting it out helped."),
        ("someone", "Last time, talking to someone helped."),
    ],
)
async def test_each_thing_that_helped_opens_its_own_way(
    chat: Chat, store: SqlStore, clock: ManualClock, helped: str, opener: str
) -> None:
    await remember(store, clock, "followup", "helped", "choice", helped)
    assert opener in texts(await chat.command("pause"))


async def test_only_the_latest_answer_counts_and_nothing_means_no_opener(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await remember(store, clock, "followup", "helped", "choice", "moving")
    await remember(store, clock, "followup", "helped", "choice", "nothing")
    out = texts(await chat.command("pause"))
    assert "Last time" not in out and "pause for a minute" in out


async def test_a_first_pause_has_no_opener(chat: Chat) -> None:
    out = texts(await chat.command("pause"))
    assert "Last time" not in out and "pause for a minute" in out


# ----------------------------------------------------------------- never free text


async def test_memory_reads_and_writes_taps_and_numbers_only(
    chat: Chat, store: SqlStore, content: Content
) -> None:
    draft = "you never answer me and I am done with it"
    await chat.command("pause")
    for label in ("Done", "6", "A message", "Reach out more", "It fits"):
        await chat.press(label)
    await chat.press("Write a message to send later")
    await chat.say(draft)
    await chat.press("No thanks")
    await one_pause(chat)
    rows = await journal(store)
    assert any(kind == WORDING for _, _, kind, _ in rows)
    for flow_id, node_id, kind, value in rows:
        assert kind in ("choice", "rating", WORDING), kind
        step = content.flows[flow_id].step(node_id)
        if kind == "choice":
            assert value in [o.id for o in step.options]  # type: ignore[union-attr]
        else:
            assert value.isdigit(), value
        assert draft not in value


@pytest.mark.parametrize(("latest", "recalled"), [("moving", "moving"), ("nothing", None)])
async def test_recall_fills_what_helped_unless_nothing_did(
    store: SqlStore, clock: ManualClock, content: Content, latest: str, recalled: str | None
) -> None:
    await remember(store, clock, "followup", "helped", "choice", "writing")
    await remember(store, clock, "followup", "helped", "choice", latest)
    variables: dict[str, str | int] = {}
    async with store.session() as s:
        turn = Turn.opened(s, USER, "c1", clock.now(), "", ConversationState(), Profile())
        await Memory().recall(turn, content.flows["pause"], variables)
        # A flow that does not declare it is not given it.
        other: dict[str, str | int] = {}
        await Memory().recall(turn, content.flows["cycle"], other)
    assert variables.get("last_helped") == recalled
    assert other == {}
