"""Copying a whole database to another one: SQLite to PostgreSQL, or back.

What `pausecheck db copy` does, in order:
1. the source must be at the newest migration (it is read, never changed);
2. the target is migrated to the newest migration, and refused if it holds any row
   (unless `replace`, which empties it first, in the copy's transaction); the
   deployment's secrets that `db upgrade` or a first start made there do not count,
   and are replaced by the source's;
3. every table of `storage.models` is copied in foreign-key order, in batches, in one
   transaction on the target (a failure leaves it as it was), read from one snapshot
   of the source. Values go through the models' column types, so a sealed value
   ({"_enc": token}) is copied as it is: the same keys open it afterwards;
4. the counters that give out ids are set past every id the source ever gave
   (PostgreSQL sequences; SQLite's `sqlite_sequence`), so no id is used twice;
5. the rows of each table are counted on both sides, in the same transactions.

The guide must not be running on the source meanwhile: a SQLite source is read under
its write lock (writers wait), a PostgreSQL source from a repeatable-read snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import JSON, Table, Text, bindparam, cast, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.engine import create_engine_for
from storage.errors import StorageError
from storage.migrate import upgrade_database
from storage.models import Base, DeploymentSecretRow
from storage.readiness import check_database, shown

BATCH = 1000


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


@dataclass(slots=True)
class CopyReport:
    counts: list[TableCount] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(count.target for count in self.counts)

    @property
    def mismatched(self) -> list[TableCount]:
        return [count for count in self.counts if not count.matches]


def tables() -> list[Table]:
    """Every table of the schema, parents before children (foreign-key order)."""
    return list(Base.metadata.sorted_tables)


async def copy_database(
    source_url: str, target_url: str, *, replace: bool = False, batch: int = BATCH
) -> CopyReport:
    if _same(source_url, target_url):
        raise StorageError("--from and --to name the same database")
    readiness = await check_database(source_url)
    if readiness.problem is not None:
        raise StorageError(f"the source: {readiness.problem}")
    source = create_engine_for(source_url)
    target = create_engine_for(target_url)
    try:
        try:
            await upgrade_database(target)
        except DBAPIError as exc:
            raise StorageError(f"cannot migrate {shown(target_url)}: {exc.orig}") from exc
        async with _snapshot(source) as reading, target.begin() as writing:
            held = await _counts(writing)
            # What `db upgrade` or a first start makes on its own (the deployment's
            # secrets) is no one's data: replaced by the source's, no flag needed.
            held.pop(DeploymentSecretRow.__tablename__, None)
            if any(held.values()) and not replace:
                listed = ", ".join(f"{name} {n}" for name, n in held.items() if n)
                raise StorageError(
                    f"{shown(target_url)} is not empty ({listed}): copy into an empty "
                    "database, or pass --replace to delete what it holds first"
                )
            for table in reversed(tables()):
                await writing.execute(delete(table))
            for table in tables():
                await _copy_table(reading, writing, table, batch)
            await _set_id_counters(writing, await _highest_ids(reading))
            before, after = await _counts(reading), await _counts(writing)
            report = CopyReport([TableCount(name, before[name], after[name]) for name in before])
            if report.mismatched:
                wrong = ", ".join(f"{c.table} {c.source} -> {c.target}" for c in report.mismatched)
                # Raising rolls the target's transaction back: nothing half-copied.
                raise StorageError(f"row counts differ after the copy ({wrong}); nothing kept")
        return report
    except DBAPIError as exc:
        raise StorageError(f"the copy failed: {exc.orig}") from exc
    finally:
        await source.dispose()
        await target.dispose()


def _same(first: str, second: str) -> bool:
    return make_url(first).render_as_string(False) == make_url(second).render_as_string(False)


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One consistent view of the source for the whole copy."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    async with engine.connect() as connection, connection.begin():
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET TRANSACTION READ ONLY"))
        yield connection


async def _counts(connection: AsyncConnection) -> dict[str, int]:
    counted: dict[str, int] = {}
    for table in tables():
        counted[table.name] = int(
            await connection.scalar(select(func.count()).select_from(table)) or 0
        )
    return counted


async def _copy_table(
    reading: AsyncConnection, writing: AsyncConnection, table: Table, batch: int
) -> None:
    # JSON columns go across as their text, so a value is what it was to the byte:
    # SQL NULL stays NULL and the JSON value null stays null (parsed and written
    # again, both would come back as None, and `IS NULL` tells them apart).
    json = [column.name for column in table.columns if isinstance(column.type, JSON)]
    read = [cast(c, Text).label(c.name) if c.name in json else c for c in table.columns]
    as_text = writing.dialect.name != "postgresql"
    values = {
        name: bindparam(name, type_=Text) if as_text else cast(bindparam(name, type_=Text), JSON)
        for name in json
    }
    statement = insert(table).values(values) if values else insert(table)
    order = list(table.primary_key.columns) or list(table.columns)
    result = await reading.stream(select(*read).order_by(*order))
    async for rows in result.partitions(batch):
        await writing.execute(statement, [dict(row._mapping) for row in rows])


def _counted_ids(table: Table) -> str | None:
    """The column whose values the database gives out (an integer primary key)."""
    column = table.autoincrement_column
    return None if column is None else column.name


async def _highest_ids(connection: AsyncConnection) -> dict[str, int]:
    """Per table, the highest id ever given out: a deleted row's id included, as
    AUTOINCREMENT and sequences promise never to give it again."""
    highest: dict[str, int] = {}
    given: Mapping[str, int] = await _counters(connection)
    for table in tables():
        column = _counted_ids(table)
        if column is None:
            continue
        largest = await connection.scalar(select(func.max(table.c[column])))
        highest[table.name] = max(int(largest or 0), given.get(table.name, 0))
    return highest


async def _counters(connection: AsyncConnection) -> dict[str, int]:
    if connection.dialect.name == "sqlite":
        exists = await connection.scalar(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
        )
        if not exists:
            return {}
        rows = await connection.execute(text("SELECT name, seq FROM sqlite_sequence"))
        return {str(name): int(seq) for name, seq in rows}
    found: dict[str, int] = {}
    for table in _id_tables():
        column = _counted_ids(table)
        sequence = await connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": table.name, "column": column},
        )
        if sequence is None:
            continue
        row = (
            await connection.execute(text(f"SELECT last_value, is_called FROM {sequence}"))
        ).one()
        found[table.name] = int(row[0]) if row[1] else int(row[0]) - 1
    return found


def _id_tables() -> Iterable[Table]:
    return (table for table in tables() if _counted_ids(table) is not None)


async def _set_id_counters(connection: AsyncConnection, highest: Mapping[str, int]) -> None:
    for table in _id_tables():
        last = highest.get(table.name, 0)
        if connection.dialect.name == "sqlite":
            # Inserting explicit ids already moved it to the largest copied; a
            # deleted row's higher id is written here.
            await connection.execute(
                text("DELETE FROM sqlite_sequence WHERE name = :name"), {"name": table.name}
            )
            if last:
                await connection.execute(
                    text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
                    {"name": table.name, "seq": last},
                )
            continue
        sequence = await connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": table.name, "column": _counted_ids(table)},
        )
        if sequence is None:
            continue
        # setval(s, n, true): the next id is n + 1; a sequence cannot be set to 0.
        await connection.execute(
            text("SELECT setval(CAST(:sequence AS regclass), :value, :called)"),
            {"sequence": sequence, "value": max(last, 1), "called": last > 0},
        )


def count_lines(report: CopyReport) -> list[tuple[str, str, str, str]]:
    """(table, source rows, target rows, "ok" or "DIFFERS"), for printing."""
    return [
        (c.table, str(c.source), str(c.target), "ok" if c.matches else "DIFFERS")
        for c in report.counts
    ]
