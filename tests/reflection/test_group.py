"""Group reflection in the engine: what the group sees, what each person sees, the
timer, the facilitator's controls, safety on sharing, retention and /forget.

The adapters' own tests (tests/telegram, tests/discord_tests) check the same
guarantees through the platforms' fakes; these pin the engine's side of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

import pytest
from sqlalchemy import Table, func, select

from dialogs.clock import ManualClock
from dialogs.engine import Engine
from dialogs.events import Address, Choice, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher, RecipientUnreachable
from dialogs.reflection.store import ReflectionStatus
from dialogs.store import FollowUpStatus, UserKey
from storage import SqlStore
from storage.models import ReflectionAnswerRow
from tests.conftest import make_engine, onboard

PLATFORM = "test"
_ids = itertools.count(1)


@dataclass
class Room:
    """Everyone in one or more groups, and every message the engine produced, with
    where each would appear."""

    engine: Engine
    store: SqlStore
    clock: ManualClock
    # (where it appears, message): "group:<chat>" or "private:<user>".
    shown: list[tuple[str, Outbound]] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)

    def _record(self, origin: Address, messages: Sequence[Outbound]) -> None:
        for message in messages:
            where = message.to or origin
            if where.is_private:
                self.shown.append((f"private:{where.user_id}", message))
            elif not message.private_only:
                # An adapter never shows private_only content in a group.
                self.shown.append((f"group:{where.chat_id}", message))

    async def act(
        self,
        user: str,
        *,
        group: str | None = None,
        facilitator: bool = False,
        **kind: object,
    ) -> list[Outbound]:
        address = (
            Address(PLATFORM, user, group, is_private=False)
            if group
            else Address(PLATFORM, user, f"dm-{user}", is_private=True)
        )
        inbound = Inbound(
            address,
            f"r{next(_ids)}",
            self.clock.now(),
            facilitator=facilitator,
            **kind,  # type: ignore[arg-type]
        )
        out = await self.engine.handle(inbound)
        self._record(address, out)
        return out

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """The dispatcher's sender."""
        if address.is_private and address.user_id in self.unreachable:
            raise RecipientUnreachable("blocked")
        self._record(address, messages)

    def seen_by(self, where: str) -> list[Outbound]:
        return [m for w, m in self.shown if w == where]

    def text_of(self, where: str) -> str:
        return "\n".join(m.text for m in self.seen_by(where))

    def button(self, where: str, label: str) -> Choice:
        for message in reversed(self.seen_by(where)):
            for choice in message.choices:
                if choice.label == label:
                    return choice
        raise AssertionError(f"no {label!r} button in {where}")

    async def tick(self, minutes: float) -> int:
        self.clock.advance(timedelta(minutes=minutes))
        return await Dispatcher(self.store, self.engine, {PLATFORM: self}, self.clock).run_due()


@pytest.fixture
async def room(engine: Engine, store: SqlStore, clock: ManualClock) -> Room:
    for person in ("ana", "ben", "cai", "dee", "fac", "other"):
        await onboard(store, clock, Address(PLATFORM, person, f"dm-{person}"))
    return Room(engine, store, clock)


async def _start(room: Room, group: str = "g1", name: str = "noticing", minutes: int = 3) -> str:
    out = await room.act(
        "fac",
        group=group,
        facilitator=True,
        command=Command("reflect", ("start", name, str(minutes))),
    )
    join = room.button(f"group:{group}", "Join")
    assert join.start_payload is not None and join.id.startswith("rf:"), out
    return join.start_payload


async def _join(room: Room, user: str, link: str) -> list[Outbound]:
    # As Telegram delivers it: the deep link opens the private chat with /start.
    return await room.act(user, command=Command("start", (link,)))


async def _answer_everything(room: Room, link: str, people: Sequence[str]) -> None:
    for person in people:
        await _join(room, person, link)
        await room.act(
            person, choice=room.button(f"private:{person}", "I reached out, texted or asked").id
        )
    await room.act(
        "fac", group="g1", facilitator=True, choice=room.button("group:g1", "Next step").id
    )
    for person in people:
        await room.act(person, text=f"secret alarm of {person}")


async def test_a_whole_reflection_keeps_every_answer_out_of_the_group(room: Room) -> None:
    link = await _start(room)
    group = room.text_of("group:g1")
    assert "Noticing my move" in group and "Step 1 of 4" in group
    await _answer_everything(room, link, ["ana", "ben", "cai"])
    # Each prompt reached each person privately, numbered.
    for person in ("ana", "ben", "cai"):
        assert "step 2 of 4" in room.text_of(f"private:{person}")
    # Ana shares hers; the others keep theirs.
    await room.act("ana", choice=room.button("private:ana", "Share anonymously").id)
    for _ in range(2):
        await room.act(
            "fac", group="g1", facilitator=True, choice=room.button("group:g1", "Next step").id
        )
    await room.act("fac", group="g1", facilitator=True, choice=room.button("group:g1", "End").id)

    group = room.text_of("group:g1")
    assert group.count("secret alarm of ana") == 1
    assert "secret alarm of ben" not in group and "secret alarm of cai" not in group
    for name in ("ana", "ben", "cai"):
        # No name is ever posted in the group, not even with the shared answer.
        assert name not in group.replace("secret alarm of ana", "")
    assert "3 people took part" in group
    assert "3 toward contact, 0 toward space" in group
    assert "1 answers were shared" in group
    # Everyone got the closing and the follow-up offer privately.
    for person in ("ana", "ben", "cai"):
        assert "Would you like me to check on you tomorrow" in room.text_of(f"private:{person}")


async def test_no_summary_below_three(room: Room) -> None:
    link = await _start(room)
    await _join(room, "ana", link)
    await _join(room, "ben", link)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("end",)))
    group = room.text_of("group:g1")
    assert "Fewer than three people took part" in group
    assert "took part. First moves" not in group


async def test_the_timer_moves_steps_on_and_survives_a_restart(
    room: Room, content: object, safety_screen: object, resources: object
) -> None:
    link = await _start(room, minutes=5)
    await _join(room, "ana", link)
    assert await room.tick(4) == 0  # not yet
    # A restart: a new engine over the same store resumes the same step and timer.
    room.engine = make_engine(content, room.store, room.clock, safety_screen, resources)  # type: ignore[arg-type]
    assert await room.tick(1) == 1
    assert "Step 2 of 4" in room.text_of("group:g1")
    assert "step 2 of 4" in room.text_of("private:ana")
    async with room.store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
    assert session is not None and session.step_index == 1
    assert session.step_due_at == room.clock.now() + timedelta(minutes=5)
    # Three more steps' worth of time ends it, with the summary (too few here).
    for _ in range(3):
        assert await room.tick(5) == 1
    assert "Fewer than three" in room.text_of("group:g1")
    assert await room.tick(60) == 0


async def test_pause_resume_and_extend_keep_the_time_left(room: Room) -> None:
    await _start(room, minutes=5)
    room.clock.advance(timedelta(minutes=2))
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("pause",)))
    assert "paused" in room.text_of("group:g1")
    assert await room.tick(30) == 0  # a paused step never ends by itself
    await room.act("fac", group="g1", facilitator=True, choice=room.button("group:g1", "Resume").id)
    assert "3 min left" in room.text_of("group:g1")
    await room.act(
        "fac", group="g1", facilitator=True, choice=room.button("group:g1", "Two more minutes").id
    )
    assert await room.tick(4.9) == 0
    assert await room.tick(0.2) == 1  # 3 + 2 minutes after resuming
    assert "Step 2 of 4" in room.text_of("group:g1")


async def test_only_facilitators_start_and_control(room: Room) -> None:
    out = await room.act("ana", group="g1", command=Command("reflect", ("start", "noticing")))
    assert "Only the person running this reflection" in out[0].text
    async with room.store.session() as s:
        assert await s.open_reflection_in(PLATFORM, "g1") is None
    await _start(room)
    nxt = room.button("group:g1", "Next step")
    for attempt in (
        {"choice": nxt.id},
        {"command": Command("reflect", ("end",))},
        {"command": Command("reflect", ("next",))},
    ):
        out = await room.act("ana", group="g1", **attempt)
        assert "Only the person running this reflection" in out[0].text
    async with room.store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
    assert session is not None and session.step_index == 0
    assert session.status is ReflectionStatus.RUNNING
    # Another group's admin is not this group's facilitator, even with the button.
    out = await room.act("dee", group="g2", facilitator=True, choice=nxt.id)
    assert "Only the person running this reflection" in out[0].text
    # A group admin who did not start it may run it in its own group.
    out = await room.act("dee", group="g1", facilitator=True, choice=nxt.id)
    assert "Step 2 of 4" in room.text_of("group:g1")


async def test_forged_and_stale_buttons_change_nothing(room: Room) -> None:
    link = await _start(room)
    await _join(room, "ana", link)
    token = link.removeprefix("rf_")
    for forged in (
        "rf:nosuchtoken:join",
        f"rf:{token}:a:0:not_an_option",
        f"rf:{token}:a:7:contact",
        f"rf:{token}:share:9",
        f"rf:{token}:delete",
        f"rf:{token}",
    ):
        await room.act("ana", choice=forged)
    async with room.store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
        assert session is not None
        assert await s.answers(session.id) == []
    # Someone who never joined cannot answer with a copied button.
    answer = room.button("private:ana", "I went quiet or stepped away")
    out = await room.act("ben", choice=answer.id)
    assert "haven't joined" in out[0].text


async def test_two_groups_never_mix_and_one_person_in_both_is_kept_apart(room: Room) -> None:
    link1 = await _start(room, "g1", "noticing")
    link2 = await _start(room, "g2", "stages")
    await _join(room, "ana", link1)
    await _join(room, "ana", link2)
    await _join(room, "ben", link2)
    ana = room.seen_by("private:ana")
    # Each prompt carries its own session's buttons.
    noticing = [m for m in ana if "Noticing my move" in m.text and m.choices]
    stages = [m for m in ana if "five stages" in m.text and m.choices]
    token1, token2 = link1.removeprefix("rf_"), link2.removeprefix("rf_")
    assert noticing and all(c.id.startswith(f"rf:{token1}:") for c in noticing[-1].choices)
    assert stages and all(c.id.startswith(f"rf:{token2}:") for c in stages[-1].choices)
    await room.act("ana", choice=noticing[-1].choices[1].id)
    await room.act("ana", choice=room.button("private:ana", "Share anonymously").id)
    assert "I went quiet or stepped away" in room.text_of("group:g1")
    assert "I went quiet or stepped away" not in room.text_of("group:g2")
    assert "Noticing" not in room.text_of("group:g2")
    assert "five stages" not in room.text_of("group:g1")
    # Moving one group on does not move the other.
    await room.act("fac", group="g2", facilitator=True, command=Command("reflect", ("next",)))
    async with room.store.session() as s:
        one = await s.open_reflection_in(PLATFORM, "g1")
        two = await s.open_reflection_in(PLATFORM, "g2")
    assert one is not None and two is not None
    assert (one.step_index, two.step_index) == (0, 1)
    assert "Step 2 of 4" not in room.text_of("group:g1")


async def test_a_crisis_in_a_shared_answer_is_never_posted(room: Room) -> None:
    link = await _start(room)
    await _join(room, "ana", link)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("next",)))
    # Typed into the answer, a crisis signal is answered at once and not kept.
    out = await room.act("ana", text="honestly I want to kill myself")
    assert "988" in "\n".join(m.text for m in out)
    async with room.store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
        assert session is not None
        assert await s.answers(session.id) == []
    assert "kill myself" not in room.text_of("group:g1")


async def test_a_share_is_screened_again_before_posting(
    room: Room, store: SqlStore, clock: ManualClock
) -> None:
    # An answer kept before the screen knew a phrase (content changed since, say)
    # is screened again when shared.
    link = await _start(room)
    await _join(room, "ana", link)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("next",)))
    await room.act("ana", text="the usual alarm")
    async with store.engine.begin() as connection:
        from storage.crypto import encode_variables

        # SQLAlchemy types a mapped class's __table__ as any FromClause; this one is a Table.
        await connection.execute(
            cast(Table, ReflectionAnswerRow.__table__)
            .update()
            .values(text=encode_variables({"text": "I don't want to be alive anymore"}, None))
        )
    out = await room.act("ana", choice=room.button("private:ana", "Share anonymously").id)
    assert "haven't shared that" in out[0].text
    assert "988" in "\n".join(m.text for m in out)
    assert "alive" not in room.text_of("group:g1")


async def test_unreachable_participants_do_not_stop_the_step(room: Room) -> None:
    link = await _start(room)
    for person in ("ana", "ben", "cai"):
        await _join(room, person, link)
    room.unreachable.add("ben")
    assert await room.tick(3) == 1
    assert "step 2 of 4" in room.text_of("private:ana")
    assert "step 2 of 4" in room.text_of("private:cai")
    assert "Step 2 of 4" in room.text_of("group:g1")


async def test_joining_needs_consent_first(room: Room) -> None:
    link = await _start(room)
    out = await _join(room, "stranger", link)
    text = "\n".join(m.text for m in out)
    assert "press Join again" in text or "Join again" in text
    async with room.store.session() as s:
        session = await s.open_reflection_in(PLATFORM, "g1")
        assert session is not None
        assert await s.participants(session.id) == []


async def test_answers_are_deleted_after_retention_unless_saved(
    room: Room, store: SqlStore, clock: ManualClock
) -> None:
    link = await _start(room)
    for person in ("ana", "ben"):
        await _join(room, person, link)
        await room.act(person, choice=room.button(f"private:{person}", "A bit of both").id)
    await room.act("ana", choice=room.button("private:ana", "Save to my journal").id)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("end",)))
    assert await store.purge_reflections(clock.now() + timedelta(days=6), timedelta(days=7)) == 0
    assert await store.purge_reflections(clock.now() + timedelta(days=8), timedelta(days=7)) == 1
    async with store.session() as s:
        kept = await s.export_user(UserKey(PLATFORM, "ana"))
        gone = await s.export_user(UserKey(PLATFORM, "ben"))
    assert [a["choice"] for a in kept["reflection_answers"]] == ["both"]
    assert gone["reflection_answers"] == [] and gone["reflections_joined"] == []


async def test_forget_removes_a_participant_and_their_answers_from_the_summary(
    room: Room, store: SqlStore
) -> None:
    link = await _start(room)
    for person in ("ana", "ben", "cai", "dee"):
        await _join(room, person, link)
        await room.act(
            person, choice=room.button(f"private:{person}", "I went quiet or stepped away").id
        )
    await room.act("dee", command=Command("forget"))
    await room.act("dee", choice=room.button("private:dee", "Yes, delete everything").id)
    async with store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(ReflectionAnswerRow)) == 3
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("end",)))
    assert "3 people took part" in room.text_of("group:g1")
    assert "0 toward contact, 3 toward space" in room.text_of("group:g1")


async def test_the_follow_up_offer_schedules_a_check_in(room: Room, store: SqlStore) -> None:
    link = await _start(room)
    await _join(room, "ana", link)
    await room.act("fac", group="g1", facilitator=True, command=Command("reflect", ("end",)))
    await room.act("ana", choice=room.button("private:ana", "Yes, tomorrow").id)
    async with store.session() as s:
        planned = await s.pending_followups(UserKey(PLATFORM, "ana"))
    assert [(f.flow_id, f.status) for f in planned] == [("checkin", FollowUpStatus.PENDING)]
    assert planned[0].due_at >= room.clock.now() + timedelta(days=1)


async def test_reflect_in_a_private_chat_explains_where_it_works(room: Room) -> None:
    out = await room.act("ana", facilitator=True, command=Command("reflect", ("start",)))
    assert "run in a group" in out[0].text


async def test_the_picker_lists_every_reflection(room: Room, content: object) -> None:
    out = await room.act("fac", group="g1", facilitator=True, command=Command("reflect"))
    labels = [c.label for c in out[-1].choices]
    assert labels == [r.title for r in content.reflections.values()]  # type: ignore[attr-defined]
    await room.act("fac", group="g1", facilitator=True, choice=out[-1].choices[2].id)
    assert "Step 1 of" in room.text_of("group:g1")
