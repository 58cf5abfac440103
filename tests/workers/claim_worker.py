"""One claimer process, for the PostgreSQL claiming tests (tests/workers/test_claims_postgres.py).

Usage: python -m tests.workers.claim_worker DB_URL followups|outbox OUT_FILE GO_FILE
Opens its own store (its own engine and connections), writes OUT_FILE.ready, waits
(30 s at most) for GO_FILE so every claimer starts together, then claims small
batches until nothing is left, appending each claimed row's id to OUT_FILE.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage import open_store

# Small batches, so that the claimers interleave many times over the rows.
BATCH = 5
LEASE = timedelta(minutes=5)


async def main(url: str, kind: str, out: Path, go: Path) -> None:
    store = await open_store(url)
    out.with_suffix(".ready").write_text("ready")
    for _ in range(3000):
        if go.exists():  # noqa: ASYNC240 - a tiny stat while waiting, nothing else runs
            break
        await asyncio.sleep(0.01)
    try:
        while True:
            now = datetime.now(UTC)
            if kind == "followups":
                ids = [f.id for f in await store.claim_due(now, BATCH, ["test"])]
            else:
                rows = await store.claim_unsent(now, LEASE, ["test"], limit=BATCH)
                ids = [row.id for row in rows]
            if not ids:
                break
            with out.open("a", encoding="utf-8") as file:
                file.write("".join(f"{id_}\n" for id_ in ids))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
