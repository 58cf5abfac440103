"""Shared fixtures: the real content, the real store, a manual clock.

The store runs on both backends: every test that takes `store` (directly, or through
`engine`, `chat`, `newcomer`) or `store_url` runs once on SQLite and once on PostgreSQL
(a schema of its own, see tests/postgres.py), except where `ONE_BACKEND` below says
why SQLite alone is enough. PostgreSQL cases skip where the server is not reachable,
and fail instead with PAUSECHECK_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialogs.clock import Clock, ManualClock
from dialogs.content import Content, load_content
from dialogs.delivery import Reply
from dialogs.engine import Engine
from dialogs.events import Address, Choice, Command, Inbound, Outbound
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.store import OutboundStatus, Profile, UserKey
from storage import SqlStore, open_store
from tests.postgres import drop_made_schemas, postgres_migrated_schema_url

ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIR = ROOT / "content"


@pytest.fixture(scope="session", autouse=True)
def _intent_model_built_once() -> None:
    """Train the intent model into the shared cache before any guide starts, so no
    test's start-up pays for training (a few seconds) inside its own time limit."""
    from bot.app import default_cache_dir
    from dialogs.understanding.classifier import load_or_train

    load_or_train(CONTENT_DIR / "understanding" / "examples", default_cache_dir())


MEMORY_URL = "sqlite+aiosqlite:///:memory:"
BACKENDS = ("sqlite", "postgresql")

# Where SQLite alone is enough, and why. Everything else that takes the store runs on
# both backends: whatever touches transactions, locking, claiming, dedupe, follow-ups,
# partner links, reflection, delivery or deletion. README's "Tests and checks" says the same.
ONE_BACKEND = {
    "tests/flows/": "walks the content; the store only carries a step from turn to turn",
    "tests/safety/test_not_sure.py": "walks the safety screen's answers through the flows",
    "tests/safety/test_before_the_screen.py": "walks what comes before the safety questions",
    "tests/test_listener.py": "understanding typed text; the store only carries the step",
    "tests/test_engine_stateful.py": "reads the SQLite file itself to check what is at rest",
    "tests/test_scheduler.py": "APScheduler's wake-ups on the real clock, not the store",
}


def _backends(definition: pytest.Function) -> list[str]:
    marker = definition.get_closest_marker("backends")
    if marker is not None:
        return list(marker.args)
    where = definition.path.relative_to(ROOT).as_posix()
    if any(where.startswith(prefix) for prefix in ONE_BACKEND):
        return ["sqlite"]
    return list(BACKENDS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run this test's store only on these backends"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _backends(metafunc.definition), indirect=True)


# The longest test files (`--durations` names them), started first: `make test` hands
# tests to two processes in collection order (--dist loadgroup), and a minute-long test
# begun last keeps one process busy while the other has nothing left.
LONGEST_FIRST = (
    "tests/test_soak.py",
    "tests/flows/test_flow_walker.py",
    "tests/storage/test_keys.py",
    "tests/telegram/test_webhook_workers.py",
    "tests/test_console.py",
    "tests/test_cli_postgres.py",
    "tests/test_engine_stateful.py",
    "tests/discord_tests/test_gateway_failover.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        where = item.path.relative_to(ROOT).as_posix()
        return LONGEST_FIRST.index(where) if where in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the rest, is kept


def pytest_sessionfinish(session: pytest.Session) -> None:
    drop_made_schemas()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql" (set per test by pytest_generate_tests)."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(CONTENT_DIR)


@pytest.fixture(scope="session")
def safety_screen() -> SafetyScreen:
    return SafetyScreen.from_file(CONTENT_DIR / "safety" / "signals.yaml")


@pytest.fixture(scope="session")
def resources() -> SafetyResources:
    return SafetyResources.from_file(CONTENT_DIR / "safety" / "resources.yaml")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of a migrated database with no rows, that every store opened on it shares
    (two of them play two processes): an SQLite file, or a PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pc.db'}"
        return
    with postgres_migrated_schema_url() as url:
        yield url


@pytest.fixture
async def store(backend: str, clock: ManualClock) -> AsyncIterator[SqlStore]:
    """The real store: in-memory SQLite, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        s = await open_store(MEMORY_URL, clock=clock)
        yield s
        await s.close()
        return
    with postgres_migrated_schema_url() as url:
        s = await open_store(url, clock=clock)
        try:
            yield s
        finally:
            await s.close()


def make_engine(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    screen: SafetyScreen,
    resources: SafetyResources,
) -> Engine:
    return Engine(
        content,
        store,
        clock,
        screen,
        lambda signal, country: resource_text(resources, signal, country),
        timezone=ZoneInfo("Europe/London"),
    )


@pytest.fixture
def engine(
    content: Content,
    store: SqlStore,
    clock: ManualClock,
    safety_screen: SafetyScreen,
    resources: SafetyResources,
) -> Engine:
    return make_engine(content, store, clock, safety_screen, resources)


_event_ids = itertools.count(1)


@dataclass
class Chat:
    """One person talking to the engine, the way an adapter would drive it."""

    engine: Engine
    address: Address = field(default_factory=lambda: Address("test", "u1", "c1", True))
    seen: list[Outbound] = field(default_factory=list)
    clock: ManualClock | None = None

    def _at(self) -> object:
        return self.clock.now() if self.clock else self.engine._clock.now()

    async def send(self, **kind: object) -> Reply:
        inbound = Inbound(self.address, f"e{next(_event_ids)}", self._at(), **kind)  # type: ignore[arg-type]
        out = await self.engine.handle(inbound)
        self.seen.extend(out)
        if out.rows:
            # Seen: as an adapter would after sending them, so no sweep sends them again.
            marks = [(row.id, OutboundStatus.SENT, None) for row in out.rows]
            await self.engine._store.mark_outbound(marks, inbound.at)
        return out

    async def say(self, text: str) -> Reply:
        return await self.send(text=text)

    async def command(self, name: str, *args: str) -> Reply:
        return await self.send(command=Command(name, args))

    async def press(self, label: str) -> Reply:
        return await self.send(choice=self.button(label).id)

    def buttons(self) -> tuple[Choice, ...]:
        for message in reversed(self.seen):
            if message.choices:
                return message.choices
        return ()

    def button(self, label: str) -> Choice:
        for choice in self.buttons():
            if choice.label == label:
                return choice
        raise AssertionError(
            f"no button {label!r}; buttons are {[c.label for c in self.buttons()]}"
        )


def texts(messages: Sequence[Outbound]) -> str:
    return "\n".join(m.text for m in messages)


def onboarded(now: datetime, **changes: object) -> Profile:
    """A consented, screened adult in the US who was active at `now`, as if they had
    been through the consent flow and the safety screen already."""
    profile = Profile(
        consent_at=now,
        adult=True,
        country="US",
        zone="Europe/London",
        screened=True,
        session_started_at=now,
        last_active_at=now,
        reminded_at=now,
    )
    return replace(profile, **changes)  # type: ignore[arg-type]


async def onboard(store: SqlStore, clock: Clock, address: Address, **changes: object) -> None:
    """Make the person `onboarded` (see there), just now."""
    async with store.session() as s:
        await s.save_profile(
            UserKey(address.platform, address.user_id), onboarded(clock.now(), **changes)
        )


@pytest.fixture
async def chat(engine: Engine, clock: ManualClock, store: SqlStore) -> Chat:
    """A person who has already agreed, is an adult, and passed the safety screen."""
    c = Chat(engine, clock=clock)
    await onboard(store, clock, c.address)
    return c


@pytest.fixture
def newcomer(engine: Engine, clock: ManualClock) -> Chat:
    """A person the guide has never met."""
    return Chat(engine, clock=clock, address=Address("test", "new1", "new1", True))
