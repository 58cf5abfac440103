"""The engine under random event sequences (hypothesis, stateful): two people send
commands, press offered, stale and forged buttons, type anything (empty, huge, emoji,
a crisis phrase), while time jumps, due follow-ups are dispatched and the guide
restarts (a new store and Engine on the same SQLite file). After every step:
- nothing raised;
- what one person did changed nothing of the other's (conversation, profile), and
  every message it produced is addressed to them;
- each conversation is idle or at a real step of a real flow;
- after a dispatch round, no follow-up is left due and unhandled (pending, claimed).
The real content, the real store, a manual clock. Kept to well under a minute."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dialogs.clock import ManualClock
from dialogs.content import load_content
from dialogs.engine import Engine
from dialogs.events import Address, Command, Inbound, Outbound
from dialogs.followups.dispatcher import Dispatcher
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from storage import SqlStore, open_store
from tests.conftest import CONTENT_DIR, onboard

T = TypeVar("T")

CONTENT = load_content(CONTENT_DIR)
SCREEN = SafetyScreen.from_file(CONTENT_DIR / "safety" / "signals.yaml")
RESOURCES = SafetyResources.from_file(CONTENT_DIR / "safety" / "resources.yaml")
COMMANDS = sorted(c.name for c in CONTENT.commands.commands)
PEOPLE = (Address("test", "ana", "ana", True), Address("test", "ben", "ben", True))
TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            "   ",
            "0",
            "7",
            "11",
            "-3",
            "yes",
            "no",
            "stop",
            "tomorrow at 9",
            "Europe/London",
            "Mars/Olympus",
            "🌊💙🫶🏽" * 30,
            "word " * 1200,
            "\x00\x01",
            "i want to end my life",
            "are you a bot?",
        ]
    ),
    st.text(max_size=40),
)
FORGED = st.one_of(
    st.text(max_size=64),
    st.builds(
        lambda flow, turn: f"{flow}:start:yes:{turn}",
        st.sampled_from(sorted(CONTENT.flows)),
        st.integers(0, 10**6).map(lambda n: format(n, "x")),
    ),
    st.sampled_from([f"/{name}" for name in COMMANDS]),
)


@functools.cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pausecheck-stateful-"))
    path = folder / "template.db"

    async def migrate() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{path}")
        await store.close()

    asyncio.run(migrate())
    return path


class Sender:
    """Records what a dispatch round sends, by address."""

    def __init__(self) -> None:
        self.sent: list[tuple[Address, Outbound]] = []

    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        self.sent.extend((address, m) for m in messages)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # In memory-backed storage where there is some: a synced commit per event
        # would cost most of the time budget.
        shm = Path("/dev/shm")
        self.dir = tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None)
        self.db = Path(self.dir.name) / "guide.db"
        # A migrated empty database, copied: migrating afresh for each example costs
        # a second or more.
        shutil.copyfile(_template(), self.db)
        self.clock = ManualClock()
        self.events = 0
        self.seen: dict[Address, list[Outbound]] = {p: [] for p in PEOPLE}
        self.store: SqlStore = self.run(
            open_store(f"sqlite+aiosqlite:///{self.db}", clock=self.clock)
        )
        self._build()
        # Ana has agreed and passed the screen, so her flows run at once (and reach
        # the steps that plan follow-ups); Ben meets the gates.
        self.run(onboard(self.store, self.clock, PEOPLE[0]))

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def _build(self) -> None:
        self.engine = Engine(
            CONTENT,
            self.store,
            self.clock,
            SCREEN,
            lambda signal, country: resource_text(RESOURCES, signal, country),
            timezone=ZoneInfo("Europe/London"),
        )
        self.sender = Sender()
        self.dispatcher = Dispatcher(self.store, self.engine, {"test": self.sender}, self.clock)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.dir.cleanup()

    # ------------------------------------------------------------------ acting

    def _snapshot(self, address: Address) -> list[tuple[object, ...]]:
        """Everything stored about a person, read as another process would (reading
        through the store would create them)."""
        mine = "(select id from users where platform = ? and platform_user_id = ?)"
        key = (address.platform, address.user_id)
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            return [
                *db.execute("select * from users where platform = ? and platform_user_id = ?", key),
                *db.execute(f"select * from conversations where user_id = {mine}", key),
                *db.execute(f"select * from followups where user_id = {mine} order by id", key),
                *db.execute(f"select * from outbound where user_id = {mine} order by id", key),
                *db.execute(f"select * from journal where user_id = {mine} order by id", key),
            ]

    def act(self, who: int, **kind: object) -> None:
        me, other = PEOPLE[who], PEOPLE[1 - who]
        before = self._snapshot(other)
        self.events += 1
        inbound = Inbound(me, f"e{self.events}", self.clock.now(), **kind)  # type: ignore[arg-type]
        out = self.run(self.engine.handle(inbound))
        for message in out:
            assert message.to in (None, me), f"a reply to {me.user_id} went to {message.to}"
        self.seen[me].extend(out)
        assert self._snapshot(other) == before, "one person's event changed another's"

    def offered(self, who: int, stale: bool) -> list[str]:
        with_buttons = [m for m in self.seen[PEOPLE[who]] if m.choices]
        if not with_buttons:
            return []
        messages = with_buttons[:-1] if stale else with_buttons[-1:]
        return [c.id for m in messages for c in m.choices]

    @rule(
        who=st.integers(0, 1),
        name=st.sampled_from(COMMANDS),
        arg=st.sampled_from(["", "checkins", "start", "x"]),
    )
    def command(self, who: int, name: str, arg: str) -> None:
        self.act(who, command=Command(name, (arg,) if arg else ()))

    @rule(who=st.integers(0, 1), pick=st.integers(0, 50))
    def press_offered(self, who: int, pick: int) -> None:
        choices = self.offered(who, stale=False)
        if choices:
            self.act(who, choice=choices[pick % len(choices)])

    @rule(
        who=st.integers(0, 1),
        name=st.sampled_from(["pause", "space", "talk", "checkin"]),
        picks=st.lists(st.integers(0, 50), min_size=3, max_size=12),
    )
    def plan_something(self, who: int, name: str, picks: list[int]) -> None:
        """A flow that plans a message for later, walked by its offered buttons."""
        self.act(who, command=Command(name))
        for pick in picks:
            self.press_offered(who, pick)

    @rule(who=st.integers(0, 1), picks=st.lists(st.integers(0, 50), min_size=2, max_size=8))
    def walk_a_flow(self, who: int, picks: list[int]) -> None:
        """Several offered buttons in a row: how a flow reaches its later steps."""
        for pick in picks:
            self.press_offered(who, pick)

    @rule(who=st.integers(0, 1), pick=st.integers(0, 500))
    def press_stale(self, who: int, pick: int) -> None:
        choices = self.offered(who, stale=True)
        if choices:
            self.act(who, choice=choices[pick % len(choices)])

    @rule(who=st.integers(0, 1), data=FORGED)
    def press_forged(self, who: int, data: str) -> None:
        self.act(who, choice=data)

    @rule(who=st.integers(0, 1), pick=st.integers(0, 50))
    def press_the_others_button(self, who: int, pick: int) -> None:
        choices = self.offered(1 - who, stale=False)
        if choices:
            self.act(who, choice=choices[pick % len(choices)])

    @rule(who=st.integers(0, 1), text=TEXTS)
    def type_text(self, who: int, text: str) -> None:
        self.act(who, text=text)

    @rule(who=st.integers(0, 1), pick=st.integers(0, 50))
    def type_a_label(self, who: int, pick: int) -> None:
        with_buttons = [m for m in self.seen[PEOPLE[who]] if m.choices]
        if with_buttons:
            labels = [c.label for c in with_buttons[-1].choices]
            self.act(who, text=labels[pick % len(labels)])

    @rule(minutes=st.integers(1, 60 * 50))
    def time_passes(self, minutes: int) -> None:
        """Time jumps, and the dispatcher wakes as a running guide's would."""
        self.clock.advance(timedelta(minutes=minutes))
        self.dispatch()

    @rule()
    def dispatch(self) -> None:
        self.sender.sent.clear()
        self.run(self.dispatcher.run_due())
        for address, message in self.sender.sent:
            assert address in PEOPLE and message.to in (None, address)
            self.seen[address].append(message)
        now = self.clock.now().replace(tzinfo=None).isoformat(sep=" ")
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            left = db.execute(
                "select id, flow_id, status from followups "
                "where status in ('pending', 'claimed', 'delivering') and due_at <= ?",
                (now,),
            ).fetchall()
        assert left == [], f"due follow-ups left unhandled after a dispatch round: {left}"
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            statuses = sorted({r[0] for r in db.execute("select status from followups")})
        event(f"follow-ups at a dispatch round: {', '.join(statuses) or 'none'}")

    @precondition(lambda self: self.events > 0)
    @rule()
    def restart(self) -> None:
        self.run(self.store.close())
        self.store = self.run(open_store(f"sqlite+aiosqlite:///{self.db}", clock=self.clock))
        self._build()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def at_a_real_step(self) -> None:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            states = db.execute("select flow_id, node_id from conversations").fetchall()
        for flow_id, node_id in states:
            if flow_id is None:
                continue
            flow = CONTENT.flows.get(flow_id)
            assert flow is not None, f"a conversation is in an unknown flow {flow_id}"
            assert node_id in {s.id for s in flow.steps}, f"{flow_id} has no step {node_id}"


EngineMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineUnderRandomEvents = EngineMachine.TestCase
