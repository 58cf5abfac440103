"""Safety and privacy through the engine: gates, flags, the crisis window, every entry
path through the screen, data rights, not-a-human reminders, and what logs hold."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy import text as sql
from sqlalchemy.engine import Connection

from dialogs.clock import ManualClock
from dialogs.content import Content
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.store import FollowUpStatus, Profile, UserKey
from storage import SqlStore
from tests.conftest import Chat, onboard, texts
from tests.test_engine import RecordingSender, ask_for_followup_in_20_minutes, walk_pause_to_move

CRISIS_TEXT = "honestly i just want to kill myself"


async def profile_of(store: SqlStore, chat: Chat) -> Profile:
    async with store.session() as s:
        return await s.load_profile(UserKey(chat.address.platform, chat.address.user_id))


async def set_profile(store: SqlStore, chat: Chat, **changes: object) -> None:
    user = UserKey(chat.address.platform, chat.address.user_id)
    async with store.session() as s:
        current = await s.load_profile(user)
        await s.save_profile(user, replace(current, **changes))  # type: ignore[arg-type]


def table_columns(connection: Connection) -> dict[str, list[str]]:
    """Every table of the store but Alembic's, with its columns' names, on either backend."""
    schema = inspect(connection)
    return {
        table: [column["name"] for column in schema.get_columns(table)]
        for table in schema.get_table_names()
        if table != "alembic_version"
    }


async def rows_about(store: SqlStore, chat: Chat) -> dict[str, int]:
    """Rows in every table that mention the person, by table."""
    found: dict[str, int] = {}
    async with store.engine.connect() as conn:
        uid = (
            await conn.execute(
                sql("select id from users where platform = :p and platform_user_id = :u"),
                {"p": chat.address.platform, "u": chat.address.user_id},
            )
        ).scalar()
        columns_of = await conn.run_sync(table_columns)
        for table, columns in columns_of.items():
            if table == "users":
                count = 1 if uid is not None else 0
            elif "user_id" in columns and uid is not None:
                count = (
                    await conn.execute(
                        sql(f"select count(*) from {table} where user_id = :u"), {"u": uid}
                    )
                ).scalar() or 0
            else:
                count = 0
            if count:
                found[table] = count
    return found


# ----------------------------------------------------------------- consent and age


async def to_the_screen(newcomer: Chat, country: str = "United Kingdom") -> list[Outbound]:
    """A first /pause: the breath, the agreement, the pause's first questions, then
    "look closer" at the first next move; the safety questions come right before the
    check."""
    await newcomer.command("pause")
    await newcomer.press("Done")
    await newcomer.press("I agree, and I'm 18+")
    await newcomer.press(country)
    for label in ("5", "Silence", "Reach out more"):
        await newcomer.press(label)
    return await newcomer.press("Look at what's going on")


async def test_first_contact_breathes_then_agrees_and_screens_right_before_the_check(
    newcomer: Chat, store: SqlStore
) -> None:
    out = await newcomer.command("pause")
    shown = texts(out)
    # What the guide is, then help: the breathing, before any agreement.
    assert "automated guide" in shown and "/sos" in shown
    assert "Breathe in through your nose" in shown
    assert "I keep your place" not in shown
    assert (await profile_of(store, newcomer)).consent_at is None
    out = await newcomer.press("Done")
    shown = texts(out)
    assert "automated guide, not a person" in shown and "Not therapy" in shown
    assert "I keep your place" in shown and "/sos" in shown
    await newcomer.press("I agree, and I'm 18+")
    out = await newcomer.press("United Kingdom")
    # Not yet the safety questions: nothing reframes push-pull until the check.
    assert "How loud is it inside" in texts(out) and "four quick" not in texts(out)
    await newcomer.press("5")
    await newcomer.press("Silence")
    out = await newcomer.press("Reach out more")
    # A next move that needs no questions is offered first; looking closer asks them.
    assert "four quick" not in texts(out)
    out = await newcomer.press("Look at what's going on")
    assert "four quick yes-or-no questions" in texts(out)
    assert "activation" not in texts(newcomer.seen)
    for _ in range(3):
        await newcomer.press("No")
    out = await newcomer.press("No")
    # The pause goes on where it was, with what it knew (the urge to reach).
    assert "their activation, not their intention" in texts(out)
    note = await newcomer.press("It fits")
    assert "safety through closeness" in texts(note)
    profile = await profile_of(store, newcomer)
    assert profile.consent_at is not None and profile.adult is True
    assert (profile.country, profile.screened, profile.unsafe) == ("GB", True, False)


async def test_screen_answers_are_never_kept(newcomer: Chat, store: SqlStore) -> None:
    await to_the_screen(newcomer, "Somewhere else")
    for _ in range(4):
        await newcomer.press("No")
    async with store.engine.connect() as conn:
        flows = [r[0] for r in await conn.execute(sql("select flow_id from journal"))]
    assert "screen" not in flows
    assert (await profile_of(store, newcomer)).country is None


async def test_declining_consent_keeps_the_guide_closed(newcomer: Chat, store: SqlStore) -> None:
    await newcomer.command("pause")
    await newcomer.press("Done")
    out = await newcomer.press("No thanks")
    assert "won't go on without it" in texts(out)
    await newcomer.command("pause")
    out = await newcomer.press("Done")
    assert "I keep your place" in texts(out)
    assert (await profile_of(store, newcomer)).consent_at is None


async def test_under_18_gets_resources_only(newcomer: Chat) -> None:
    await newcomer.command("pause")
    await newcomer.press("Done")
    out = await newcomer.press("I'm under 18")
    shown = texts(out)
    assert "made for adults" in shown and "988" in shown
    out = await newcomer.command("pause")
    assert "made for adults" in texts(out)
    assert "activation" not in texts(newcomer.seen)


# ----------------------------------------------------------------- danger


async def test_a_yes_on_the_screen_routes_to_danger_and_holds_back_reframes(
    newcomer: Chat, store: SqlStore
) -> None:
    await to_the_screen(newcomer, "United States")
    await newcomer.press("No")
    out = await newcomer.press("Yes")  # afraid of a partner
    assert "Is it safe to keep chatting here?" in texts(out)
    assert (await profile_of(store, newcomer)).unsafe is True
    out = await newcomer.command("pause")
    assert "leaving out the relationship suggestions" in texts(out)
    assert "activation" not in texts(out)
    await newcomer.press("I'm safe now")
    out = await newcomer.press("That's right, I'm safe")
    assert "pause for a minute" in texts(out)
    assert (await profile_of(store, newcomer)).unsafe is False


async def test_danger_text_sets_the_flag(chat: Chat, store: SqlStore) -> None:
    await chat.say("he hit me and I'm scared of him")
    assert (await profile_of(store, chat)).unsafe is True
    out = await chat.command("pause")
    assert "leaving out the relationship suggestions" in texts(out)


async def test_danger_flag_suppresses_every_reframing_flow_on_every_start(
    engine: Engine, store: SqlStore, clock: ManualClock, content: Content, chat: Chat
) -> None:
    await set_profile(store, chat, unsafe=True)
    reframing = [f.id for f in content.flows.values() if f.reframes]
    assert reframing, "no flow is marked as reframing"
    commands = {c.flow: c.name for c in content.commands.commands if c.flow}
    for flow_id in reframing:
        if flow_id in commands:
            out = await chat.command(commands[flow_id])
            assert "leaving out the relationship suggestions" in texts(out), flow_id
            assert "activation" not in texts(out)
        # Handed off from another flow (help -> pause).
        await chat.command("help")
        out = await chat.press("Yes, pause now")
        assert "leaving out the relationship suggestions" in texts(out)
        # And as a follow-up, once the person is no longer mid-flow.
        from dialogs.store import FollowUpRequest

        await chat.command("stop")
        async with store.session() as s:
            await s.schedule_followup(
                UserKey("test", "u1"),
                FollowUpRequest(
                    flow_id, "c1", clock.now(), clock.now() + timedelta(hours=1), flow_id
                ),
            )
        # A reminder that arrives unasked is cancelled quietly: nothing on the screen.
        sender = RecordingSender()
        assert await Dispatcher(store, engine, {"test": sender}, clock).run_due() == 1
        assert sender.sent == [], flow_id


# ----------------------------------------------------------------- crisis


async def test_crisis_state_survives_start_and_a_retraction(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.say(CRISIS_TEXT)
    crisis_at = (await profile_of(store, chat)).crisis_at
    assert crisis_at == clock.now()
    clock.advance(timedelta(hours=2))
    out = await chat.command("start")
    assert "rather check twice" in texts(out) and "988" in texts(out)
    out = await chat.say("you misunderstood me, I was joking")
    assert "rather check twice" in texts(out) and "988" in texts(out)
    assert "How are you right now?" in texts(out)
    assert (await profile_of(store, chat)).crisis_at == crisis_at
    clock.advance(timedelta(hours=23))
    out = await chat.command("start")
    assert "rather check twice" not in texts(out)
    out = await chat.say("you misunderstood")
    assert "rather check twice" not in texts(out)


async def test_crisis_holds_back_earlier_followups_but_not_later_ones(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=5))
    await chat.say(CRISIS_TEXT)
    await chat.press("I'm safe right now")
    await chat.press("Not now")
    clock.advance(timedelta(minutes=20))
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    assert await dispatcher.run_due() == 1
    assert sender.sent == []
    async with store.engine.connect() as conn:
        statuses = [r[0] for r in await conn.execute(sql("select status from followups"))]
    assert statuses == [FollowUpStatus.CANCELLED.value]
    # One the person asks for after the signal still comes.
    await ask_for_followup_in_20_minutes(chat)
    clock.advance(timedelta(minutes=20))
    assert await dispatcher.run_due() == 1
    assert "checking in" in texts(sender.sent[0][1])


async def test_referrals_are_counted_by_day_and_country_only(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    await chat.say(CRISIS_TEXT)
    await chat.command("sos")
    await chat.press("Thoughts of suicide or self-harm")
    await chat.say("she threatened to kill me")
    async with store.engine.connect() as conn:
        rows = sorted(
            tuple(r)
            for r in await conn.execute(sql("select day, country, signal, count from referrals"))
        )
        columns = (await conn.run_sync(table_columns))["referrals"]
    # A date on PostgreSQL, its ISO text on SQLite.
    rows = sorted((str(day), *rest) for day, *rest in rows)
    day = clock.now().date().isoformat()
    assert rows == [(day, "US", "crisis", 2), (day, "US", "danger", 1)]
    assert sorted(columns) == ["count", "country", "day", "signal"]


async def test_resources_follow_the_persons_country(chat: Chat, store: SqlStore) -> None:
    await set_profile(store, chat, country="GB")
    out = await chat.command("sos")
    assert "call 999" in texts(out) and "911" not in texts(out)
    out = await chat.press("Thoughts of suicide or self-harm")
    assert "116 123" in texts(out) and "741741" not in texts(out)


CRISIS = "i want to kill myself"


@pytest.mark.parametrize(
    "path",
    [
        "idle text",
        "choice step",
        "scale step",
        "ask step",
        "command args",
        "check-in reply",
        "group message",
        "before consent",
    ],
)
async def test_screen_runs_first_on_every_entry_path(
    path: str, chat: Chat, newcomer: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    if path == "before consent":
        out = await newcomer.say(CRISIS)
    elif path == "group message":
        group = Address("test", "u1", "group-7", is_private=False)
        out = await engine.handle(Inbound(group, "g1", clock.now(), text=f"@pausecheck {CRISIS}"))
    elif path == "command args":
        out = await chat.send(command=Command("pause", tuple(CRISIS.split())))
    elif path == "check-in reply":
        await ask_for_followup_in_20_minutes(chat)
        clock.advance(timedelta(minutes=20))
        sender = RecordingSender()
        await Dispatcher(store, engine, {"test": sender}, clock).run_due()
        out = await chat.say(CRISIS)
    else:
        await chat.command("pause")
        if path in ("scale step", "ask step"):
            await chat.press("Done")
        if path == "ask step":
            await chat.press("7")
            await chat.press("Silence")
            await chat.press("Reach out more")
            await chat.press("It fits")
            await chat.press("Write a message to send later")
        if path == "idle text":
            await chat.command("stop")
        out = await chat.say(CRISIS)
    shown = texts(out)
    assert "Are you safe right now?" in shown, path
    assert "activation" not in shown


# ----------------------------------------------------------------- not a human


async def test_asking_if_it_is_a_bot_gets_a_plain_answer_and_the_question_again(
    chat: Chat,
) -> None:
    await chat.command("pause")
    out = await chat.say("wait, are you a real person??")
    assert "I'm a program" in out[0].text
    assert [c.label for c in out[-1].choices] == ["Done", "Skip the breathing"]


async def test_reminders_after_a_week_away_daily_at_most_and_after_three_hours(
    chat: Chat, clock: ManualClock
) -> None:
    reminder = "A quick reminder: I'm an automated guide"
    clock.advance(timedelta(days=8))
    out = await chat.command("help")
    assert out[0].text.startswith(reminder)
    clock.advance(timedelta(hours=1))
    out = await chat.say("hi")
    assert not out[0].text.startswith(reminder)  # a new session, but reminded today
    for _ in range(7):  # gaps under 30 minutes keep one session going: 175 minutes
        clock.advance(timedelta(minutes=25))
        out = await chat.say("still here")
        assert not out[0].text.startswith(reminder)
    clock.advance(timedelta(minutes=25))  # 200 minutes: over three hours of continuous use
    out = await chat.say("still here")
    assert out[0].text.startswith(reminder)


# ----------------------------------------------------------------- data rights


async def test_privacy_shows_the_policy(chat: Chat) -> None:
    out = await chat.command("privacy")
    assert "What I keep" in texts(out)
    assert [c.label for c in out[-1].choices][:4] == [
        "Why, and who can see it",
        "How long it's kept",
        "Get a copy of my data",
        "Delete everything",
    ]
    assert "for a year" in texts(await chat.press("How long it's kept"))
    assert "Nothing is sold or shared" in texts(await chat.press("Why, and who can see it"))


async def test_export_returns_everything_as_json(chat: Chat) -> None:
    await walk_pause_to_move(chat)
    out = await chat.command("export")
    files = [m.attachment for m in out if m.attachment is not None]
    assert len(files) == 1
    assert files[0].filename.endswith(".json") and files[0].media_type == "application/json"
    data = json.loads(files[0].data)
    assert data["user"]["platform_user_id"] == "u1"
    assert ("rating", "7") in {(j["kind"], j["value"]) for j in data["journal"]}
    assert data["processed_events"]


async def test_forget_deletes_every_row_about_the_person(
    chat: Chat, store: SqlStore, clock: ManualClock
) -> None:
    other = Chat(chat.engine, clock=clock, address=Address("test", "u2", "c2"))
    await onboard(store, clock, other.address)
    await other.command("pause")
    await ask_for_followup_in_20_minutes(chat)
    assert set(await rows_about(store, chat)) >= {"users", "conversations", "journal", "followups"}
    await chat.command("forget")
    out = await chat.press("Yes, delete everything")
    assert "Everything I kept about you is deleted" in texts(out)
    assert await rows_about(store, chat) == {}
    assert await rows_about(store, other) != {}
    await chat.command("pause")
    out = await chat.press("Done")
    assert "I keep your place" in texts(out)


async def test_forget_can_be_cancelled(chat: Chat, store: SqlStore) -> None:
    await chat.command("forget")
    out = await chat.press("No, keep it")
    assert "nothing was deleted" in texts(out)
    assert "users" in await rows_about(store, chat)


async def test_withdrawing_consent_stops_scheduled_messages(
    chat: Chat, store: SqlStore, engine: Engine, clock: ManualClock
) -> None:
    await ask_for_followup_in_20_minutes(chat)
    await chat.command("privacy")
    out = await chat.press("Withdraw my consent")
    assert "cancelled every planned message" in texts(out)
    clock.advance(timedelta(hours=1))
    sender = RecordingSender()
    await Dispatcher(store, engine, {"test": sender}, clock).run_due()
    assert sender.sent == []
    await chat.command("pause")
    out = await chat.press("Done")
    assert "I keep your place" in texts(out)


# ----------------------------------------------------------------- logs


async def test_logs_hold_no_typed_text_at_debug(
    newcomer: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    typed = ["my-unique-draft-zebra", "she-said-unique-walrus", CRISIS]
    # The guide's own loggers too: a test that configured logging may have left them
    # at WARNING, and the root level alone would not open them.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="dialogs"):
        await newcomer.command("pause")
        await newcomer.press("Done")
        await newcomer.press("I agree, and I'm 18+")
        await newcomer.press("United States")
        await newcomer.say("7")
        await newcomer.say(typed[1])
        await newcomer.say("reach out")
        await newcomer.say("look")
        for _ in range(4):
            await newcomer.press("No")
        await newcomer.say("yes")
        await newcomer.say("write a message")
        await newcomer.say(typed[0])
        await newcomer.say(typed[2])
    assert caplog.records, "nothing was logged at DEBUG"
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for text in typed:
        assert text not in everything
    assert "u1" not in everything and "new1" not in everything


async def test_crisis_state_survives_a_restart(
    chat: Chat,
    store: SqlStore,
    clock: ManualClock,
    content: Content,
    safety_screen: object,
    resources: object,
) -> None:
    from tests.conftest import make_engine

    await chat.say(CRISIS)
    restarted = Chat(
        make_engine(content, store, clock, safety_screen, resources),  # type: ignore[arg-type]
        clock=clock,
    )
    clock.advance(timedelta(hours=1))
    out = await restarted.command("start")
    assert "rather check twice" in texts(out)


def test_the_guide_never_calls_itself_therapy(content: Content) -> None:
    import re

    # Saying what it is not, and naming approaches so a person can search for them.
    allowed = re.compile(
        r"\bnot (a therapist|therapy)\b|Emotionally Focused Therapy|somatic \(body-based\) therapy",
        re.IGNORECASE,
    )
    offenders = []
    for flow in content.flows.values():
        for step in flow.steps:
            for text in step.templated():
                for m in re.finditer(r"therap\w*", text, re.IGNORECASE):
                    window = text[max(0, m.start() - 30) : m.end()]
                    if not allowed.search(window):
                        offenders.append(f"{flow.id}/{step.id}: {window}")
    for name, value in content.copy.model_dump().items():
        for m in re.finditer(r"therap\w*", str(value), re.IGNORECASE):
            window = str(value)[max(0, m.start() - 30) : m.end()]
            if not allowed.search(window):
                offenders.append(f"copy.{name}: {window}")
    assert offenders == []


async def test_sos_leads_someone_afraid_of_a_partner_to_domestic_violence_services(
    chat: Chat, store: SqlStore
) -> None:
    await chat.command("sos")
    out = await chat.press("Afraid of a partner or someone at home")
    # Who to call comes in the same reply as the safe-to-chat question, not after it.
    assert "1-800-799-7233" in texts(out) and "call 911" in texts(out)
    assert "Is it safe to keep chatting here?" in texts(out)
    assert (await profile_of(store, chat)).unsafe is True


async def test_a_bare_sos_names_the_emergency_number_and_asks_what_is_happening(
    chat: Chat,
) -> None:
    out = await chat.command("sos")
    assert "call 911" in texts(out)
    assert [c.label for c in out[-1].choices] == [
        "Thoughts of suicide or self-harm",
        "Afraid of a partner or someone at home",
        "Another emergency",
    ]
    # Nothing was written, so nothing is thanked for or called "what you wrote".
    assert "thank you" not in texts(out).lower() and "you wrote" not in texts(out).lower()
    out = await chat.press("Thoughts of suicide or self-harm")
    assert "988" in texts(out) and "you wrote" not in texts(out).lower()


async def test_sos_another_emergency_says_to_call_the_emergency_number(chat: Chat) -> None:
    await chat.command("sos")
    out = await chat.press("Another emergency")
    assert "call 911 now" in texts(out)


async def test_after_not_safe_nothing_planned_arrives_until_they_say_they_are_safe(
    chat: Chat, engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    """The danger flow promises "I won't message you first": a daily check-in and a
    one-off follow-up pending before the signal never arrive after it."""
    await chat.command("checkin")
    await chat.press("Every day")
    await chat.press("09:00")
    await ask_for_followup_in_20_minutes(chat)
    out = await chat.say("he smashed the tv last night and i'm scared")
    out = await chat.press("Not safe right now")
    assert "won't message you first" in texts(out)
    sender = RecordingSender()
    dispatcher = Dispatcher(store, engine, {"test": sender}, clock)
    for step in (timedelta(minutes=25), *[timedelta(hours=6)] * 12):
        clock.advance(step)
        await dispatcher.run_due()
    assert sender.sent == []
    async with store.engine.connect() as conn:
        pending = (
            await conn.execute(sql("select count(*) from followups where status = 'pending'"))
        ).scalar_one()
    assert pending == 0
    # Saying they are safe brings the daily check-in back.
    await chat.command("pause")
    await chat.press("I'm safe now")
    await chat.press("That's right, I'm safe")
    async with store.engine.connect() as conn:
        kinds = [
            r[0]
            for r in await conn.execute(sql("select kind from followups where status = 'pending'"))
        ]
    assert kinds == ["checkin"]
