"""The SQLite ledger: jobs, their append-only event log, mailbox checkpoints, health facts.

One file, WAL, ``synchronous=FULL``, numbered migrations at open, created
0600.  Every state change and its event are written in one transaction; the
decisions themselves come from the pure modules :mod:`reconciler.jobs.states` and
:mod:`reconciler.mailbox.reconcile`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from reconciler.clock import iso
from reconciler.errors import JobNotFoundError, LedgerError
from reconciler.jobs.notices import SeenMessage
from reconciler.jobs.records import AddResult, Change, Event, Job, dumps
from reconciler.jobs.states import TERMINAL, State, Step, step
from reconciler.jobs.validation import JobSpec
from reconciler.ledger import contention, eventlog, files, mailbatch, opening, sat
from reconciler.ledger.eventlog import EventRow
from reconciler.ledger.opening import BUSY_TIMEOUT_MS, select_in
from reconciler.ledger.schema import MIGRATIONS, sha256_hex

log = logging.getLogger(__name__)

# What a Job is read from, by name (Job.from_row): the table's columns and one computed.
_JOB_COLUMNS = ", ".join({"has_acuse": "acuse IS NOT NULL AS has_acuse"}.get(name, name) for name in Job.COLUMNS)
# The terminal states as an SQL list, from the state table.
_TERMINAL = "(" + ", ".join(f"'{state}'" for state in sorted(TERMINAL)) + ")"
# Columns a Change may set; anything else is a programming error.
_SETTABLE = frozenset(
    {
        "code",
        "message",
        "attempts",
        "next_attempt_at",
        "submitted_at",
        "check_at",
        "checks",
        "acuse",
        "acuse_sha256",
        "claim",
        "overdue_at",
        "resolved_at",
        *sat.SETTABLE,
    }
)


class Ledger:
    """The ledger file; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        db.row_factory = sqlite3.Row  # rows are read by column name
        self.path = path
        self._lock = asyncio.Lock()
        self._rng = random.Random()
        self._closed = False
        # With [sat] preflight, only jobs the SAT preflight cleared are claimed (set by the SAT follower).
        self.preflight_gate = False

    # -- opening ---------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        migrate: bool = True,
        backup: bool = False,
        busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
    ) -> Ledger:
        """Open (and migrate) the ledger; create it 0600, and its directory, when ``create``.

        ``migrate=False`` still sets up a brand-new file but refuses an older schema (``submit``
        and ``import`` beside a running older daemon); ``backup`` copies an older ledger next to
        itself with SQLite's backup API before migrating it (the daemon).
        """
        p = Path(path)
        try:
            opening.prepare_file(p, create)
            db = await opening.connect(p, isolation_level=None)
        except OSError as e:
            raise LedgerError(f"ledger {p}: {e.strerror or e}") from e
        except sqlite3.Error as e:
            raise LedgerError(f"ledger {p}: {e}") from e
        ledger = cls(db, p)
        try:
            # Migration 3 fills acuse_sha256 for the acuses already stored.  Registered before any
            # statement: SQLite refuses to redefine a function while statements are active.
            await db.create_function("sha256", 1, sha256_hex, deterministic=True)
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if not migrate:  # refuse an older or newer schema before touching the file at all
                await ledger._migrate(migrate=False, dry=True)
            await opening.use_wal(db, ledger._rng)
            await db.execute("PRAGMA synchronous = FULL")
            for pragma in opening.TUNING:
                await db.execute(pragma)
            await ledger._migrate(migrate=migrate, backup=backup)
        except sqlite3.Error as e:
            await db.close()
            raise LedgerError(f"ledger {p}: {e}") from e
        except BaseException:
            await db.close()
            raise
        return ledger

    @classmethod
    async def open_readonly(cls, path: str | os.PathLike[str]) -> Ledger:
        """Open for reading only (``mode=ro``): never creates, migrates, chmods or switches to WAL."""
        p = Path(path)
        try:
            await asyncio.to_thread(p.stat)
        except FileNotFoundError as e:
            raise LedgerError(f"ledger {p}: not found (check [ledger] path, or queue a job first)") from e
        except OSError as e:  # a directory this user may not enter: permission denied
            raise LedgerError(f"ledger {p}: {e.strerror or e}") from e
        db = await opening.connect_readonly(p)
        return cls(db, p)

    async def _migrate(self, *, migrate: bool = True, backup: bool = False, dry: bool = False) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise LedgerError(files.newer(self.path, version))
        if 0 < version < len(MIGRATIONS) and not migrate:
            raise LedgerError(files.older(self.path, version))
        if dry:
            return
        if 0 < version < len(MIGRATIONS) and backup:
            dest = await asyncio.to_thread(files.backup_beside, self.path, version)
            log.warning("ledger %s: schema %d -> %d; backup in %s", self.path, version, len(MIGRATIONS), dest)
        while version < len(MIGRATIONS):
            async with self._tx() as db:
                async with db.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if version >= len(MIGRATIONS):  # another process migrated meanwhile
                    break
                for statement in opening.statements(MIGRATIONS[version]):
                    await db.execute(statement)
                version += 1
                await db.execute(f"PRAGMA user_version = {version}")

    async def close(self) -> None:
        self._closed = True
        await self._db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (BEGIN IMMEDIATE: no lock upgrade deadlocks between processes)."""
        async with self._lock:
            await self._begin()
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as e:
                with suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise LedgerError(f"ledger {self.path}: {e}") from e
                raise

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting out another process's write lock (:func:`contention.begin`)."""
        await contention.begin(self._db, self.path, self._rng, lambda: self._closed)

    # For the ledger's own modules (controls, imports): the connection, a write transaction, a read.
    @property
    def connection(self) -> aiosqlite.Connection:
        return self._db

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._all(sql, params)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self._db.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as e:
            raise LedgerError(f"ledger {self.path}: {e}") from e

    def transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """One write transaction, for the ledger's other stores (:mod:`reconciler.events.store`)."""
        return self._tx()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read statement; an SQLite error is a LedgerError naming the ledger."""
        return await self._all(sql, params)

    # -- jobs --------------------------------------------------------------

    async def add_jobs(self, specs: Sequence[JobSpec], now: datetime, source: str) -> AddResult:
        """Queue new jobs in one transaction; UUIDs already present are reported, not changed."""
        at = iso(now)
        async with self._tx() as db:
            rows = await select_in(db, "SELECT uuid FROM jobs WHERE uuid IN ({})", [s.uuid for s in specs])
            existing = {r[0] for r in rows}
            new = [s for s in specs if s.uuid not in existing]
            await db.executemany(
                "INSERT INTO jobs (uuid, rfc_emisor, motivo, folio_sustitucion, state, created_at, updated_at,"
                " next_attempt_at, rfc_receptor, total, sello) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                [
                    (s.uuid, s.rfc_emisor, s.motivo, s.folio_sustitucion, at, at, at, s.rfc_receptor, s.total, s.sello)
                    for s in new
                ],
            )
            await eventlog.append(
                db, at, [(s.uuid, "created", source, {"state": "queued", "motivo": s.motivo}) for s in new]
            )
        return AddResult(len(new), sorted(existing))

    async def get_job(self, uuid: str) -> Job:
        rows = await self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE uuid = ?", (uuid,))
        if not rows:
            raise JobNotFoundError(f"job {uuid} is not in the ledger")
        return Job.from_row(rows[0])

    async def events(self, uuid: str | None) -> list[Event]:
        sql = "SELECT at, kind, source, detail FROM events WHERE uuid {} ORDER BY id"
        rows = await self._all(sql.format("IS NULL" if uuid is None else "= ?"), () if uuid is None else (uuid,))
        return [Event(r["at"], r["kind"], r["source"], json.loads(r["detail"])) for r in rows]

    async def list_jobs(self, state: State | None = None, limit: int | None = None) -> list[Job]:
        return [job async for job in self.iter_jobs(state=state, limit=limit)]

    async def iter_jobs(
        self, *, state: State | None = None, since: str | None = None, limit: int | None = None, chunk: int = 2000
    ) -> AsyncIterator[Job]:
        """Stream jobs in creation order, ``chunk`` rows at a time (keyset pagination, bounded memory).

        ``since`` keeps the jobs changed at or after that ISO-8601 time.
        """
        after = ("", "")
        remaining = limit
        while remaining is None or remaining > 0:
            size = chunk if remaining is None else min(chunk, remaining)
            where = ["(created_at, uuid) > (?, ?)"]
            params: list[Any] = [*after]
            if state is not None:
                where.append("state = ?")
                params.append(str(state))
            if since is not None:
                where.append("updated_at >= ?")
                params.append(since)
            sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at, uuid LIMIT ?"
            rows = await self._all(sql, [*params, size])
            for job in Job.from_rows(rows):
                yield job
            if len(rows) < size:
                return
            after = (rows[-1]["created_at"], rows[-1]["uuid"])
            if remaining is not None:
                remaining -= len(rows)

    async def counts(self) -> dict[str, int]:
        rows = await self._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        found = {r["state"]: r["n"] for r in rows}
        return {str(s): found.get(str(s), 0) for s in State}

    async def overdue_count(self) -> int:
        rows = await self._all(f"SELECT count(*) FROM jobs WHERE overdue_at IS NOT NULL AND state NOT IN {_TERMINAL}")
        return int(rows[0][0])

    async def acuse(self, uuid: str) -> bytes | None:
        rows = await self._all("SELECT acuse FROM jobs WHERE uuid = ?", (uuid,))
        if not rows:
            raise JobNotFoundError(f"job {uuid} is not in the ledger")
        value = rows[0][0]
        return bytes(value) if value is not None else None

    async def event_count(self, kind: str, since: str | None = None) -> int:
        """How many events of ``kind`` (recorded at or after ``since`` when given)."""
        rows = await self._all("SELECT count(*) FROM events WHERE kind = ? AND at >= ?", (kind, since or ""))
        return int(rows[0][0])

    # -- transitions -------------------------------------------------------

    async def apply(self, changes: Sequence[Change], now: datetime) -> list[Step]:
        """Apply changes in order, all in one transaction; returns what each did."""
        at = iso(now)
        results: list[Step] = []
        async with self._tx() as db:
            rows = await select_in(
                db, "SELECT uuid, state FROM jobs WHERE uuid IN ({})", sorted({c.uuid for c in changes})
            )
            states = {r["uuid"]: State(r["state"]) for r in rows}
            events: list[EventRow] = []
            for change in changes:
                current = states.get(change.uuid)
                if current is None:
                    raise JobNotFoundError(f"job {change.uuid} is not in the ledger")
                events.extend((change.uuid, kind, change.source, d) for kind, d in change.events)
                result, applies = self._step(change, current)
                results.append(result)
                if not applies:
                    if change.trigger is not None:
                        detail = {"trigger": str(change.trigger), "state": str(current), "reason": result.reason}
                        kind = "conflict" if result.conflict else "ignored"
                        events.append((change.uuid, kind, change.source, detail))
                    continue
                new = result.new or current
                columns = dict(change.set)
                unknown = set(columns) - _SETTABLE
                if unknown:
                    raise ValueError(f"Change.set: unknown columns {sorted(unknown)}")
                columns["state"] = str(new)
                columns["updated_at"] = at
                if new in TERMINAL and new != current:
                    columns["resolved_at"] = at
                assignments = ", ".join(f"{k} = ?" for k in columns)
                await db.execute(
                    f"UPDATE jobs SET {assignments} WHERE uuid = ?",
                    [*columns.values(), change.uuid],
                )
                if result.new is not None:
                    states[change.uuid] = new
                    detail = {"from": str(current), "to": str(new), "trigger": str(change.trigger)}
                    events.append((change.uuid, "transition", change.source, detail))
            await eventlog.append(db, at, events)
        return results

    @staticmethod
    def _step(change: Change, current: State) -> tuple[Step, bool]:
        """The state machine's answer and whether the change's columns are written."""
        if change.trigger is not None:
            result = step(current, change.trigger)
            return result, result.new is not None
        if change.require is None or change.require == current:
            return Step(None, reason="columns set"), True
        return Step(None, reason=f"job is {current}, not {change.require}"), False

    async def record_event(
        self, uuid: str | None, kind: str, source: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        async with self._tx() as db:
            await eventlog.append(db, iso(now), [(uuid, kind, source, detail)])

    async def claim_due(self, now: datetime, limit: int) -> list[Job]:
        """Move up to ``limit`` due queued jobs to ``submitting`` (committed before any request leaves)."""
        at = iso(now)
        async with self._tx() as db:
            gate = " AND sat_cleared = 1" if self.preflight_gate else ""
            async with db.execute(
                f"SELECT uuid FROM jobs WHERE state = 'queued' AND next_attempt_at <= ?{gate} "
                "AND uuid NOT IN (SELECT uuid FROM holds) "  # an operator's hold: never sent
                "ORDER BY next_attempt_at, created_at LIMIT ?",
                (at, limit),
            ) as cur:
                uuids = [r[0] for r in await cur.fetchall()]
            if not uuids:
                return []
            await db.executemany(
                "UPDATE jobs SET state = 'submitting', attempts = attempts + 1, updated_at = ? WHERE uuid = ?",
                [(at, u) for u in uuids],
            )
            detail = {"from": "queued", "to": "submitting", "trigger": "claim"}
            await eventlog.append(db, at, [(u, "transition", "submitter", detail) for u in uuids])
            rows = await select_in(db, f"SELECT {_JOB_COLUMNS} FROM jobs WHERE uuid IN ({{}})", uuids)
            jobs = Job.from_rows(rows)
        order = {u: i for i, u in enumerate(uuids)}
        return sorted(jobs, key=lambda j: order[j.uuid])

    # -- the SAT dimension ----------------------------------------------------

    async def sat_jobs(self, where: str, params: Sequence[Any]) -> list[Job]:
        """Jobs matching one of the fixed conditions of :mod:`reconciler.ledger.sat`."""
        if where not in (sat.PREFLIGHT_DUE, sat.TO_FOLLOW, sat.FOLLOW_DUE):
            raise ValueError("sat_jobs: not one of reconciler.ledger.sat's conditions")
        return Job.from_rows(await self._all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}", params))

    async def sat_counts(self, now: datetime) -> dict[str, int]:
        """How many jobs are in each SAT view ``check`` and ``summary`` count (zero when the SAT was never asked)."""
        at = iso(now)
        row = (await self._all(sat.COUNTS_SQL, (at, at, at)))[0]
        return {name: int(v or 0) for name, v in zip(sat.COUNT_NAMES, row, strict=True)}

    async def uuids_in(self, state: State) -> list[str]:
        return [r[0] for r in await self._all("SELECT uuid FROM jobs WHERE state = ?", (str(state),))]

    async def due_checks(self, now: datetime, limit: int, *, claimed: bool) -> list[Job]:
        """Awaiting jobs whose status call is due: claimed OKs (confirmer) or silent ones (chaser)."""
        cond = "claim IS NOT NULL" if claimed else "claim IS NULL"
        rows = await self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'awaiting' AND check_at <= ? AND {cond} "
            "ORDER BY check_at LIMIT ?",
            (iso(now), limit),
        )
        return Job.from_rows(rows)

    async def mark_overdue(self, now: datetime, created_before: str) -> int:
        """Flag unresolved jobs created before ``created_before`` as overdue (once each)."""
        at = iso(now)
        async with self._tx() as db:
            async with db.execute(
                f"UPDATE jobs SET overdue_at = ? WHERE overdue_at IS NULL AND state NOT IN {_TERMINAL}"
                " AND created_at <= ? RETURNING uuid",
                (at, created_before),
            ) as cur:
                uuids = [r[0] for r in await cur.fetchall()]
            detail = {"reason": "unresolved past schedule.stale_after_s"}
            await eventlog.append(db, at, [(u, "overdue", "chaser", detail) for u in uuids])
        return len(uuids)

    # -- mailbox -----------------------------------------------------------

    async def checkpoint(self, folder: str) -> tuple[int, int] | None:
        rows = await self._all("SELECT uidvalidity, last_uid FROM mailbox_state WHERE folder = ?", (folder,))
        return (int(rows[0]["uidvalidity"]), int(rows[0]["last_uid"])) if rows else None

    @asynccontextmanager
    async def mail_batch(
        self, folder: str, uidvalidity: int, messages: Sequence[SeenMessage]
    ) -> AsyncIterator[mailbatch.Batch]:
        """One write transaction over a batch of notifications, committed when the block ends.

        The batch says what the ledger already holds (which messages are fresh, the jobs they
        name, the Message-IDs already applied); the caller decides and hands the decisions to
        :meth:`mailbatch.Batch.write`, which records them exactly once and advances the
        checkpoint and the mark watermark in the same transaction. An error rolls it all back.
        """
        async with self._tx() as db:
            yield mailbatch.Batch(
                db, folder, uidvalidity, await mailbatch.read_state(db, folder, uidvalidity, messages)
            )

    async def pending_marks(self, folder: str, uidvalidity: int) -> list[int]:
        """UIDs committed as needing a mark (``\\Seen`` or a move) above the folder's mark watermark."""
        rows = await self._all(
            "SELECT m.uid FROM messages m JOIN mailbox_state s ON s.folder = m.folder "
            "AND s.uidvalidity = m.uidvalidity WHERE m.folder = ? AND m.uidvalidity = ? AND m.mark = 1 "
            "AND m.uid > s.marked_uid ORDER BY m.uid",
            (folder, uidvalidity),
        )
        return [int(r[0]) for r in rows]

    async def set_marked(self, folder: str, uidvalidity: int, upto: int) -> None:
        """Record that every UID up to ``upto`` needing a mark has had it (the watermark only rises)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE mailbox_state SET marked_uid = max(marked_uid, ?) WHERE folder = ? AND uidvalidity = ?",
                (upto, folder, uidvalidity),
            )

    # -- health facts --------------------------------------------------------

    async def set_fact(self, key: str, value: Mapping[str, Any], now: datetime) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO facts (key, value, at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
                (key, dumps(value), iso(now)),
            )

    async def clear_fact(self, key: str) -> bool:
        async with self._tx() as db, db.execute("DELETE FROM facts WHERE key = ? RETURNING key", (key,)) as cur:
            return bool(await cur.fetchall())

    async def facts(self) -> dict[str, dict[str, Any]]:
        rows = await self._all("SELECT key, value, at FROM facts")
        return {r["key"]: {**json.loads(r["value"]), "recorded_at": r["at"]} for r in rows}
