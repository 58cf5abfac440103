"""Claim-and-mark throughput on PostgreSQL: the guide's own claiming of due follow-ups
(`SqlStore.claim_due`, `FOR UPDATE SKIP LOCKED`, a batch per statement) against
procrastinate's (`procrastinate_fetch_job_v2`, one job per call), on the same
server, the same number of rows, with 1 and 3 concurrent claimers.

procrastinate is not a dependency of the guide (docs/architecture.md, "Several
workers", says why); install it to run this: `pip install procrastinate==3.10.0`.

    PYTHONPATH=. python -m bench.claims_vs_procrastinate [--rows 1000] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from dialogs.store import FollowUpRequest, UserKey
from storage import SqlStore, open_store
from tests.postgres import postgres_schema_url

CHATS = 300


async def _seed_ours(store: SqlStore, rows: int) -> None:
    now = datetime.now(UTC)
    async with store.session() as session:
        for n in range(rows):
            user = UserKey("test", f"p{n % CHATS}")
            request = FollowUpRequest(
                "followup",
                user.user_id,
                now - timedelta(seconds=1),
                now + timedelta(hours=1),
                f"k{n}",
            )
            await session.schedule_followup(user, request)


async def _analyze(store: SqlStore) -> None:
    """Table statistics, as autovacuum would gather them in a while: on fresh tables
    the planner guesses one row and joins by nested loop (tens of ms at 1,000 rows)."""
    async with store.engine.begin() as connection:
        await connection.execute(text("analyze"))


async def _claim_ours(store: SqlStore, batch: int) -> int:
    done = 0
    mark = text("update followups set status = 'sent', sent_at = now() where id = any(:ids)")
    while claimed := await store.claim_due(datetime.now(UTC), batch, ["test"]):
        async with store.engine.begin() as connection:
            await connection.execute(mark, {"ids": [f.id for f in claimed]})
        done += len(claimed)
    return done


async def ours(rows: int, batch: int, claimers: int) -> float:
    with postgres_schema_url() as url:
        stores = [await open_store(url) for _ in range(claimers)]
        try:
            await _seed_ours(stores[0], rows)
            await _analyze(stores[0])
            began = time.perf_counter()
            counts = await asyncio.gather(*(_claim_ours(s, batch) for s in stores))
            elapsed = time.perf_counter() - began
        finally:
            for store in stores:
                await store.close()
    assert sum(counts) == rows, counts
    return rows / elapsed


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _claim_procrastinate(app: Any, status: Any) -> int:
    worker = await app.job_manager.register_worker()
    done = 0
    while (job := await app.job_manager.fetch_job(None, worker)) is not None:
        await app.job_manager.finish_job(job, status.SUCCEEDED, delete_job=False)
        done += 1
    return done


async def theirs(rows: int, claimers: int, *, per_chat_lock: bool) -> float:
    import logging

    import procrastinate
    from procrastinate.jobs import Status

    # It warns that the App is made in __main__; here that is on purpose.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)

    with postgres_schema_url() as url:
        apps = [
            procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=_conninfo(url)))
            for _ in range(claimers)
        ]
        for app in apps:
            await app.open_async()
        try:
            await apps[0].schema_manager.apply_schema_async()

            @apps[0].task(name="followup")  # type: ignore[untyped-decorator]
            async def followup(n: int) -> None:
                return None

            if per_chat_lock:
                # A lock per chat: procrastinate's way to keep one chat's jobs in order.
                for n in range(rows):
                    await followup.configure(lock=f"chat{n % CHATS}").defer_async(n=n)
            else:
                await followup.batch_defer_async(*({"n": n} for n in range(rows)))
            await apps[0].connector.execute_query_async("analyze")
            began = time.perf_counter()
            counts = await asyncio.gather(*(_claim_procrastinate(a, Status) for a in apps))
            elapsed = time.perf_counter() - began
        finally:
            for app in apps:
                await app.close_async()
    assert sum(counts) == rows, counts
    return rows / elapsed


async def main(rows: int, batch: int) -> None:
    print(f"rows={rows} batch={batch} (claim + mark done, rows a second)")
    for claimers in (1, 3):
        print(f"claimers={claimers}")
        print(f"  ours (claim_due, batch {batch}):   {await ours(rows, batch, claimers):8.0f}")
        print(f"  ours (claim_due, batch 1):     {await ours(rows, 1, claimers):8.0f}")
        plain = await theirs(rows, claimers, per_chat_lock=False)
        print(f"  procrastinate (no lock):        {plain:8.0f}")
        locked = await theirs(rows, claimers, per_chat_lock=True)
        print(f"  procrastinate (lock per chat):  {locked:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch))
