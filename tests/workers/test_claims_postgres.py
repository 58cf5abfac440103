"""Claiming on PostgreSQL by several workers: follow-ups (`claim_due`) and outbox rows
(`claim_unsent`) taken with `FOR UPDATE SKIP LOCKED`, by separate processes at once.

Each row is claimed once and none is lost; and a claimer never waits for rows another
transaction holds locked: it takes the others (checked with `lock_timeout` set on the
claimer's connections, so waiting would be an error rather than a slow test)."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dialogs.events import Address, Outbound
from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore, open_store
from tests.postgres import postgres_schema_url
from tests.workers.due_people import plant_due_followups

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 30
PER_PERSON = 10
CLAIMERS = 3


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema_url() as schema_url:
        yield schema_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(url)
    yield opened
    await opened.close()


def _people() -> list[UserKey]:
    return [UserKey("test", f"p{n}") for n in range(PEOPLE)]


async def _schedule_all(store: SqlStore, now: datetime) -> None:
    async with store.session() as session:
        for user in _people():
            for n in range(PER_PERSON):
                await session.schedule_followup(
                    user,
                    FollowUpRequest(
                        "followup",
                        user.user_id,
                        now - timedelta(seconds=n + 1),
                        now + timedelta(hours=1),
                        f"k-{user.user_id}-{n}",
                    ),
                )


async def _enqueue_all_released(store: SqlStore, now: datetime) -> None:
    """Pending outbox rows no process holds (as after `release_outbound`)."""
    ids: list[int] = []
    async with store.session() as session:
        for user in _people():
            address = Address("test", user.user_id, user.user_id)
            messages = [Outbound(f"message {n}") for n in range(PER_PERSON)]
            rows = await session.enqueue_outbound(user, address, messages, now)
            ids += [row.id for row in rows]
    await store.release_outbound(ids, "for anyone", now)


async def _run_together(module: str, args: list[str], outs: list[Path], go: Path) -> None:
    """One process of `module` per file in `outs` (`module URL... OUT GO`), started
    together: each waits for `go`, so they really compete for the same rows."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            str(out),
            str(go),
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
        )
        for out in outs
    ]
    for _ in range(6000):
        if all(out.with_suffix(".ready").exists() for out in outs):
            break
        await asyncio.sleep(0.01)
    go.write_text("go")  # noqa: ASYNC240 - one tiny file, nothing else runs
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0] * len(outs), [
        r[1].decode()[-2000:] for r in results
    ]


async def _run_claimers(url: str, kind: str, tmp_path: Path) -> list[Counter[str]]:
    outs = [tmp_path / f"claimer{n}.txt" for n in range(CLAIMERS)]
    await _run_together("tests.workers.claim_worker", [url, kind], outs, tmp_path / "go")
    return [Counter(out.read_text().split()) if out.exists() else Counter() for out in outs]


async def _all_ids(store: SqlStore, table: str) -> set[str]:
    async with store.engine.connect() as connection:
        return {str(row[0]) for row in await connection.execute(text(f"select id from {table}"))}


@pytest.mark.parametrize("kind", ["followups", "outbox"])
async def test_several_claimer_processes_take_each_row_once_and_lose_none(
    url: str, store: SqlStore, kind: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    if kind == "followups":
        await _schedule_all(store, now)
        table = "followups"
    else:
        await _enqueue_all_released(store, now)
        table = "outbound"
    every = await _all_ids(store, table)
    assert len(every) == PEOPLE * PER_PERSON

    per_claimer = await _run_claimers(url, kind, tmp_path)

    claimed = sum(per_claimer, Counter())
    assert claimed == Counter(dict.fromkeys(every, 1))  # once each, none lost
    # More than one process took part, or this proved nothing about several workers.
    assert sum(1 for c in per_claimer if c) >= 2, [sum(c.values()) for c in per_claimer]


def _with_lock_timeout(url: str) -> str:
    """The same schema, on connections where waiting for a row lock is an error."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    assert isinstance(options, str)
    return parsed.update_query_dict({"options": f"{options} -clock_timeout=2000"}).render_as_string(
        hide_password=False
    )


@pytest.mark.parametrize("kind", ["followups", "outbox"])
async def test_a_claimer_takes_other_rows_instead_of_waiting_for_locked_ones(
    url: str, store: SqlStore, kind: str
) -> None:
    now = datetime.now(UTC)
    if kind == "followups":
        await _schedule_all(store, now)
        table, order = "followups", "due_at, id"
    else:
        await _enqueue_all_released(store, now)
        table, order = "outbound", "platform, chat_id, seq"
    other = await open_store(_with_lock_timeout(url))
    try:
        # Another worker's transaction holds the first rows in claiming order.
        async with store.engine.connect() as holder, holder.begin():
            locked = {
                str(row[0])
                for row in await holder.execute(
                    text(f"select id from {table} order by {order} limit 20 for update")
                )
            }
            if kind == "followups":
                taken = [f.id for f in await other.claim_due(now, 50, ["test"])]
            else:
                rows = await other.claim_unsent(now, timedelta(minutes=5), ["test"], limit=50)
                taken = [row.id for row in rows]
        assert len(taken) == 50
        assert not locked & {str(id_) for id_ in taken}
    finally:
        await other.close()


async def test_three_dispatcher_processes_deliver_each_followup_once(
    url: str, store: SqlStore, tmp_path: Path
) -> None:
    """The real engine and dispatcher (tests/workers/dispatch_worker.py) in three
    processes on one PostgreSQL database."""
    now = datetime.now(UTC)
    people = await plant_due_followups(store, "d", 60, now)
    outs = [tmp_path / f"worker{n}.txt" for n in range(CLAIMERS)]
    await _run_together("tests.workers.dispatch_worker", [url], outs, tmp_path / "go")
    sent = Counter(line for out in outs if out.exists() for line in out.read_text().split())
    assert sent == Counter({user.user_id: 1 for user in people})
    assert sum(1 for out in outs if out.exists() and out.read_text()) >= 2
