"""A job file into the ledger in bounded memory, all or nothing.

Rows are staged in a TEMP table of the ledger's own connection (SQLite keeps it on disk past
its small page cache, and writing it takes no lock on the ledger), which also finds a UUID
given twice.  Only when every row is good are the new jobs and their ``created`` events
copied into the ledger, in one write transaction by two INSERT ... SELECT statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from reconciler.clock import iso
from reconciler.jobs.validation import JobSpec
from reconciler.ledger import eventlog

CHUNK = 500  # rows per staging statement (SQLite host parameters per IN list)


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    added: int  # 0 on a dry run
    existing: int
    bad: int


def _sat(spec: JobSpec) -> tuple[str | None, str | None, str | None]:
    """What the SAT's status service needs, as the ledger stores it."""
    return spec.rfc_receptor, spec.total, spec.sello


def on_line(line: int) -> str:
    return f"on line {line}"


async def _stage(
    db: aiosqlite.Connection,
    rows: Iterable[tuple[int, JobSpec | str]],
    bad_row: Callable[[int, str], None],
    where: Callable[[int], str] = on_line,
) -> tuple[int, int]:
    """Stage every good row; report each bad one (a UUID given twice is one).  Returns (good, bad)."""
    await db.execute("DROP TABLE IF EXISTS temp.import_rows")
    await db.execute(
        "CREATE TEMP TABLE import_rows (uuid TEXT PRIMARY KEY, line INTEGER NOT NULL, rfc_emisor TEXT NOT NULL,"
        " motivo TEXT NOT NULL, folio_sustitucion TEXT, rfc_receptor TEXT, total TEXT, sello TEXT,"
        " new INTEGER NOT NULL DEFAULT 1)"
    )
    good = bad = 0
    chunk: list[tuple[int, JobSpec]] = []

    async def flush() -> None:
        nonlocal good, bad
        keys = [s.uuid for _, s in chunk]
        marks = ",".join("?" * len(keys))
        async with db.execute(f"SELECT uuid, line FROM temp.import_rows WHERE uuid IN ({marks})", keys) as cur:  # noqa: S608
            first = {r[0]: r[1] for r in await cur.fetchall()}
        fresh: list[tuple[Any, ...]] = []
        for line, spec in chunk:
            if spec.uuid in first:
                bad += 1
                bad_row(line, f"uuid {spec.uuid} already {where(first[spec.uuid])}")
                continue
            first[spec.uuid] = line
            fresh.append((spec.uuid, line, spec.rfc_emisor, spec.motivo, spec.folio_sustitucion, *_sat(spec)))
        await db.executemany(
            "INSERT INTO temp.import_rows (uuid, line, rfc_emisor, motivo, folio_sustitucion, rfc_receptor, total,"
            " sello) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            fresh,
        )
        good += len(fresh)
        chunk.clear()

    await db.execute("BEGIN")  # one transaction for the staging: no commit per statement
    try:
        for line, spec in rows:
            if isinstance(spec, str):
                bad += 1
                bad_row(line, spec)
                continue
            chunk.append((line, spec))
            if len(chunk) >= CHUNK:
                await flush()
        if chunk:
            await flush()
    finally:
        await db.execute("COMMIT")
    return good, bad


async def import_rows(
    db: aiosqlite.Connection,
    rows: Iterable[tuple[int, JobSpec | str]],
    bad_row: Callable[[int, str], None],
    *,
    now: datetime,
    source: str,
    has_jobs: bool = True,
    dry_run: bool = False,
    write: Callable[[], object] | None = None,
    where: Callable[[int], str] = on_line,
) -> ImportResult:
    """Stage ``rows``, then (unless a bad row or ``dry_run``) queue the new ones; ``write`` opens the write
    transaction (the ledger's ``transaction``).  ``has_jobs`` False: no ledger yet, every row is new.
    ``where`` names a row's first occurrence when a UUID comes again (``on line N``; another file's path)."""
    good, bad = await _stage(db, rows, bad_row, where)
    try:
        existing = 0
        if has_jobs:
            async with db.execute(
                "SELECT count(*) FROM temp.import_rows WHERE uuid IN (SELECT uuid FROM main.jobs)"
            ) as cur:
                row = await cur.fetchone()
            existing = int(row[0]) if row else 0
        if bad or dry_run or write is None:
            return ImportResult(good + bad, 0, existing, bad)
        at = iso(now)
        async with write() as tx:  # type: ignore[attr-defined]
            await tx.execute("UPDATE temp.import_rows SET new = (uuid NOT IN (SELECT uuid FROM main.jobs))")
            async with tx.execute(
                "INSERT INTO main.jobs (uuid, rfc_emisor, motivo, folio_sustitucion, state, created_at, updated_at,"
                " next_attempt_at, rfc_receptor, total, sello) SELECT uuid, rfc_emisor, motivo, folio_sustitucion,"
                " 'queued', ?1, ?1, ?1, rfc_receptor, total, sello"
                " FROM temp.import_rows WHERE new ORDER BY line",
                (at,),
            ) as cur:
                added = cur.rowcount
            # The created events go through the one event writer, a chunk at a time (bounded memory).
            async with tx.execute("SELECT uuid, motivo FROM temp.import_rows WHERE new ORDER BY line") as cur:
                while rows := await cur.fetchmany(eventlog.ROWS):
                    events = [(u, "created", source, {"state": "queued", "motivo": m}) for u, m in rows]
                    await eventlog.append(tx, at, events)
        return ImportResult(good, added, good - added, 0)
    finally:
        await db.execute("DROP TABLE IF EXISTS temp.import_rows")
