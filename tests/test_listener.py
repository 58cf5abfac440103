"""Typed text, understood (`dialogs/listener.py`): the gentle question of the concern
tier, stop words, "Is it one of these?", and replies fitted to what was said.

Most tests use a scripted reader, so each decision is pinned; the last ones use the
real model trained on `content/understanding/examples/`, as the guide runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text as sql

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import Profile, UserKey
from dialogs.understanding.base import INTENTS, Reader, Reading
from dialogs.understanding.classifier import IntentClassifier, load_or_train
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.test_engine import ask_for_followup_in_20_minutes, state_of

ROOT = Path(__file__).resolve().parent.parent


class ScriptedReader:
    """A real `Reader` whose readings are written in the test: text -> {intent: p}."""

    def __init__(self, script: Mapping[str, Mapping[str, float]]) -> None:
        self._script = script

    def read(self, text: str) -> Reading | None:
        if not text.strip():
            return None
        probabilities = dict.fromkeys(INTENTS, 0.0)
        probabilities.update(self._script.get(text, {"out_of_scope": 0.9}))
        ranking = tuple(sorted(probabilities.items(), key=lambda kv: -kv[1]))
        return Reading(ranking[0][0], ranking[0][1], ranking)


SCRIPT = {
    "he gets so intense when he drinks": {"danger": 0.40, "pause": 0.45},
    "i don't see a way forward at all anymore": {"crisis": 0.45, "pause": 0.5},
    "i need him to give me some room": {"space": 0.9},
    "ugh whatever": {"pause": 0.35, "space": 0.30, "talk": 0.2},
    "please stop now": {"stop": 0.9},
}


def _engine(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    screen: SafetyScreen,
    resources: SafetyResources,
    reader: Reader,
) -> Engine:
    return Engine(
        content,
        store,
        clock,
        screen,
        lambda signal, country: resource_text(resources, signal, country),
        timezone=ZoneInfo("Europe/London"),
        reader=reader,
    )


@pytest.fixture
async def heard(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> Chat:
    engine = _engine(content, store, clock, safety_screen, resources, ScriptedReader(SCRIPT))
    chat = Chat(engine, clock=clock)
    await onboard(store, clock, chat.address)
    return chat


async def _where(store: SqlStore) -> tuple[str | None, str | None]:
    state = await state_of(store, ManualClock())
    return state.flow_id, state.node_id


async def _profile(store: SqlStore) -> Profile:
    async with store.session() as session:
        return await session.load_profile(UserKey("test", "u1"))


# ----------------------------------------------------------------- the concern tier


async def test_likely_danger_is_asked_about_gently_with_the_helpline_in_the_question(
    heard: Chat, store: SqlStore
) -> None:
    await heard.command("pause")
    await heard.press("Done")
    before = await _where(store)
    out = await heard.say("he gets so intense when he drinks")
    shown = texts(out)
    assert "Does any of this make you afraid of them?" in shown
    assert "1-800-799-7233" in shown and "call 911" in shown
    assert [c.label for c in out[-1].choices] == ["Yes", "No"]
    # Asked, not labelled: nothing is flagged and the flow is where it was.
    assert (await _profile(store)).unsafe is False
    assert await _where(store) == before


async def test_no_resumes_the_step_the_person_was_at(heard: Chat, store: SqlStore) -> None:
    await heard.command("pause")
    await heard.press("Done")
    before = await _where(store)
    await heard.say("he gets so intense when he drinks")
    out = await heard.press("No")
    assert "Thank you for answering" in texts(out)
    assert [c.label for c in out[-1].choices] == [str(n) for n in range(11)]
    assert await _where(store) == before
    out = await heard.press("7")
    assert (await _where(store)) != before


async def test_yes_goes_to_the_danger_flow_and_holds_back_reframes(
    heard: Chat, store: SqlStore
) -> None:
    await heard.command("pause")
    await heard.say("he gets so intense when he drinks")
    out = await heard.press("Yes")
    assert "1-800-799-7233" in texts(out) and "Is it safe to keep chatting here?" in texts(out)
    assert (await _profile(store)).unsafe is True
    out = await heard.command("talk")
    assert "relationship suggestions" in texts(out)


async def test_a_typed_yes_to_the_crisis_question_starts_the_crisis_flow(
    heard: Chat, store: SqlStore
) -> None:
    out = await heard.say("i don't see a way forward at all anymore")
    assert "thoughts of ending your life" in texts(out) and "988" in texts(out)
    out = await heard.say("yes")
    assert "988" in texts(out) and "Are you safe right now?" in texts(out)
    assert (await _profile(store)).crisis_at is not None


async def test_an_old_question_button_changes_nothing(heard: Chat, store: SqlStore) -> None:
    await heard.command("pause")
    await heard.say("he gets so intense when he drinks")
    stale = heard.button("Yes")
    await heard.press("No")
    await heard.press("Done")
    out = await heard.send(choice=stale.id)
    assert "earlier step" in texts(out)
    assert (await _profile(store)).unsafe is False


# ----------------------------------------------------------------- stop words


@pytest.mark.parametrize(
    "word", ["cancel", "stop", "quit", "exit", "never mind", "please stop now"]
)
async def test_stop_words_mid_flow_ask_once_and_keep_what_is_planned(
    heard: Chat, store: SqlStore, word: str
) -> None:
    await ask_for_followup_in_20_minutes(heard)
    await heard.command("pause")
    await heard.press("Done")
    out = await heard.say(word)
    assert "Stop here?" in texts(out)
    out = await heard.press("Yes, stop")
    assert "You still have 1 planned message" in texts(out)
    assert (await _where(store))[0] is None
    async with store.engine.connect() as conn:
        pending = (
            await conn.execute(sql("select count(*) from followups where status = 'pending'"))
        ).scalar_one()
    assert pending == 1


async def test_keep_going_after_a_stop_word_shows_the_same_question(heard: Chat) -> None:
    await heard.command("pause")
    await heard.press("Done")
    await heard.say("cancel")
    out = await heard.press("No, keep going")
    assert [c.label for c in out[-1].choices] == [str(n) for n in range(11)]


# ----------------------------------------------------------------- not an option


async def test_text_near_an_option_offers_the_likeliest_ones(heard: Chat, store: SqlStore) -> None:
    await heard.command("pause")
    await heard.press("Done")
    await heard.press("6")
    await heard.press("Distance")
    at = await _where(store)
    out = await heard.say("kind of pulling away i guess")
    assert "Is it one of these?" in texts(out) and "didn't" not in texts(out)
    labels = [c.label for c in out[-1].choices]
    assert labels[0] == "Pull away" and labels[-1] == "Something else"
    assert await _where(store) == at
    out = await heard.press("Something else")
    assert [c.label for c in out[-1].choices] == [
        "Reach out more",
        "Pull away",
        "Both at once",
        "Not sure",
    ]
    await heard.say("kind of pulling away i guess")
    await heard.press("Pull away")
    assert await _where(store) != at


# ----------------------------------------------------------------- outside a flow


async def test_typed_text_outside_a_flow_gets_a_fitted_reply_and_offer(heard: Chat) -> None:
    out = await heard.say("i need him to give me some room")
    assert "Needing some space is fair" in out[0].text
    assert [c.id for c in out[0].choices] == ["/space", "/pause"]


async def test_unsure_outside_a_flow_asks_which_was_meant(heard: Chat) -> None:
    out = await heard.say("ugh whatever")
    assert "Is it one of these?" in texts(out)
    assert [c.id for c in out[-1].choices] == ["said:pause", "said:space", "said:talk", "/help"]
    out = await heard.press("Ask for space")
    assert "Needing some space is fair" in texts(out)


# ----------------------------------------------------------------- the real model


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> IntentClassifier:
    examples = ROOT / "content" / "understanding" / "examples"
    return load_or_train(examples, tmp_path_factory.mktemp("model-cache"))


@pytest.fixture
async def person(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
    model: IntentClassifier,
) -> Chat:
    engine = _engine(content, store, clock, safety_screen, resources, model)
    chat = Chat(engine, clock=clock)
    await onboard(store, clock, chat.address)
    return chat


async def test_the_withdrawer_followed_from_room_to_room_is_not_told_it_is_unsafe(
    person: Chat, store: SqlStore
) -> None:
    out = await person.say(
        "She keeps following me from room to room wanting to talk it through and I just"
        " need a bit of quiet. I don't want her to think I'm leaving her"
    )
    assert "isn't a push-pull pattern" not in texts(out)
    assert (await _profile(store)).unsafe is False
    out = await person.command("talk")
    assert "relationship suggestions" not in texts(out)


async def test_different_distress_gets_different_answers(person: Chat) -> None:
    said = [
        "what should i do, he hasn't replied all night and i keep checking",
        "how do i tell her i need an hour to myself without her panicking",
        "can you check on me later tonight",
        "should we see a couples therapist about this",
    ]
    answers = [texts(await person.say(s)) for s in said]
    assert len(set(answers)) == len(answers)


@pytest.mark.parametrize(
    "text",
    [
        "he gets so angry he punches walls",
        "he's really controlling and jealous",
        "he says if I leave he'll make sure I never see the kids again",
        "I'm scared of how he'll react",
        "smashed the tv",
        "I have to tell him where I am all the time",
        "says it's my fault he loses his temper",
    ],
)
async def test_everyday_danger_in_talk_is_answered_first_with_someone_to_call(
    person: Chat, text: str
) -> None:
    await person.command("talk")
    out = await person.say(text)
    assert "1-800-799-7233" in texts(out) and "call 911" in texts(out)
    assert "While your partner speaks" not in texts(out)


async def test_thats_me_in_support_shows_domestic_violence_services(person: Chat) -> None:
    await person.command("support")
    await person.press("Skip")  # to the step that names the exception
    out = await person.say("that's me")
    assert "1-800-799-7233" in texts(out)


async def test_a_sixty_word_first_message_is_heard_not_misunderstood(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
    model: IntentClassifier,
) -> None:
    chat = Chat(_engine(content, store, clock, safety_screen, resources, model), clock=clock)
    chat.address = Address("test", "new", "new", True)
    out = await chat.say(
        "so we had another fight tonight and he walked out again and now he is not"
        " answering and I keep writing long messages and deleting them and I know I"
        " should stop but I can't, it's always the same, I reach and he disappears and"
        " then he comes back sweet and I forget, I don't know what I'm doing anymore"
        " and I just need something to help right now please"
    )
    assert "didn't" not in texts(out)


async def test_typed_text_reaches_neither_the_logs_nor_the_store_only_the_intent_label(
    person: Chat, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    said = [
        "my-own-words-heron he went quiet again and I keep checking",
        "my-own-words-otter cancel",
        "my-own-words-lynx honestly i am scared of what he might do tonight",
    ]
    # The guide's own loggers too: a test that configured logging may have left them
    # at WARNING, and the root level alone would not open them.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="dialogs"):
        await person.command("pause")
        for text in said:
            await person.say(text)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "nothing was logged at DEBUG"
    assert "my-own-words" not in logged
    async with store.engine.connect() as conn:
        for table in ("journal", "conversations", "users", "followups", "processed_events"):
            rows = (await conn.execute(sql(f"select * from {table}"))).all()
            assert "my-own-words" not in repr(rows), table
        kinds = (await conn.execute(sql("select kind, value from journal"))).all()
    intents = [value for kind, value in kinds if kind == "intent"]
    assert intents and all(v.count(":") == 1 and " " not in v for v in intents)
