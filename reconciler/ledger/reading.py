"""Reading many jobs fast: one cursor, rows already shaped by SQLite, fetched in chunks.

``status --json``, ``export`` and the ``status`` table read through here.  SQLite builds each
JSON object or CSV row in C (``json_object``, CASE), so Python only writes text: a million jobs
stream in seconds in bounded memory.  One statement means one snapshot: the output is
consistent even while the daemon writes.  Order is the order jobs were queued (rowid).

The JSON shape is :meth:`reconciler.jobs.records.Job.as_dict`'s; a test holds them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import LedgerError
from reconciler.jobs.states import TERMINAL
from reconciler.redact import FORMULA_STARTS

if TYPE_CHECKING:
    from reconciler.ledger.store import Ledger

CHUNK = 5000
_FINISHED = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
_OVERDUE = f"(overdue_at IS NOT NULL AND state NOT IN ({_FINISHED}))"
_FORMULA = ", ".join("'" + c.replace("'", "''") + "'" if c.isprintable() else f"char({ord(c)})" for c in FORMULA_STARTS)


def _bool_json(expr: str) -> str:
    return f"CASE WHEN {expr} THEN json('true') ELSE json('false') END"  # constants: parsed once


def _cell(column: str) -> str:
    """A CSV cell a spreadsheet reads as data (a leading ``'`` before a formula start), as outside.csv_cell."""
    return f"CASE WHEN substr({column}, 1, 1) IN ({_FORMULA}) THEN '''' || {column} ELSE {column} END"


JSON = (
    "json_object('uuid', uuid, 'rfc_emisor', rfc_emisor, 'motivo', motivo, 'folio_sustitucion', folio_sustitucion,"
    " 'state', state, 'code', code, 'message', message, 'attempts', attempts, 'created_at', created_at,"
    " 'submitted_at', submitted_at, 'resolved_at', resolved_at, 'overdue', " + _bool_json(_OVERDUE) + ","
    " 'next_attempt_at', next_attempt_at, 'has_acuse', " + _bool_json("acuse IS NOT NULL") + ","
    " 'acuse_sha256', acuse_sha256, 'rfc_receptor', rfc_receptor, 'total', total, 'sat_estado', sat_estado,"
    " 'sat_es_cancelable', sat_es_cancelable, 'sat_estatus_cancelacion', sat_estatus_cancelacion,"
    " 'sat_checked_at', sat_checked_at, 'sat_due_at', sat_due_at, 'sat_until', sat_until, 'sat_calls', sat_calls)"
)
# The SAT dimension's inputs (reconciler.sat.verdict.SatFacts, in its order), selected after the
# shaped columns: the `sat` view is judged in Python (cli/files.py) and put between the two halves.
SAT_FACTS = "state, sat_estado, sat_es_cancelable, sat_estatus_cancelacion, sat_checked_at, sat_until, sat_late_after"
# Export's JSON lines: the export fields only (status --json has every field) and the `sat` view
# (an SQL expression the caller hands in: reconciler.sat.sqlview's, for the reading's `now`).
_JSONL = (
    "json_object('uuid', uuid, 'rfc_emisor', rfc_emisor, 'motivo', motivo, 'folio_sustitucion', folio_sustitucion,"
    " 'state', state, 'code', code, 'message', message, 'attempts', attempts, 'created_at', created_at,"
    " 'submitted_at', submitted_at, 'resolved_at', resolved_at, 'overdue', " + _bool_json(_OVERDUE) + ","
    " 'has_acuse', " + _bool_json("acuse IS NOT NULL") + ", 'rfc_receptor', rfc_receptor, 'total', total,"
    " 'sat', {sat}, 'sat_estado', sat_estado, 'sat_es_cancelable', sat_es_cancelable,"
    " 'sat_estatus_cancelacion', sat_estatus_cancelacion, 'sat_checked_at', sat_checked_at)"
)
CSV_FIELDS = (
    "uuid",
    "rfc_emisor",
    "motivo",
    "folio_sustitucion",
    "state",
    "code",
    "message",
    "attempts",
    "created_at",
    "submitted_at",
    "resolved_at",
    "overdue",
    "has_acuse",
    "rfc_receptor",
    "total",
    "sat",
    "sat_estado",
    "sat_es_cancelable",
    "sat_estatus_cancelacion",
    "sat_checked_at",
)
_CSV_EXPR = {
    "rfc_emisor": _cell("rfc_emisor"),
    "folio_sustitucion": _cell("folio_sustitucion"),
    "message": _cell("message"),
    "overdue": f"CASE WHEN {_OVERDUE} THEN 'true' ELSE 'false' END",
    "has_acuse": "CASE WHEN acuse IS NOT NULL THEN 'true' ELSE 'false' END",
    "sat_estado": _cell("sat_estado"),
    "sat_es_cancelable": _cell("sat_es_cancelable"),
    "sat_estatus_cancelacion": _cell("sat_estatus_cancelacion"),
}


def _quoted(column: str, lone_cr: bool = True) -> str:
    """A free-text column as a CSV field the way Python's csv module quotes one (and a lone carriage
    return too, unless not ``lone_cr``: the module's own rows), empty for NULL, a formula start
    defused (:func:`_cell`)."""
    specials = ("','", "'\"'", "char(10)", "char(13)") if lone_cr else ("','", "'\"'", "char(10)")
    needs = " OR ".join(f"instr({column}, {c})" for c in specials)
    cell = _cell(column)
    return (
        f"CASE WHEN {column} IS NULL THEN '' WHEN {needs} THEN '\"' || replace({cell}, '\"', '\"\"') || '\"'"
        f" ELSE {cell} END"
    )


_FREE = ("message", "sat_estado", "sat_es_cancelable", "sat_estatus_cancelacion")
_TIMES = ("created_at", "submitted_at", "resolved_at")


# A whole CSV line per row, built by SQLite in one printf (NULL prints as nothing).  Only `message`
# (the provider's text) and the SAT's answers are free text: the other fields are validated UUIDs, RFCs
# ([A-Z&Ñ0-9]), totals, codes, numbers and times, which never need quoting nor start a formula.
def csv_line(sat: str, shift: str | None = None) -> str:
    """The CSV line (no line end) of a job, with ``sat`` (an SQL expression) as the `sat` view.

    With ``shift`` (an SQL function of one time) the three times go through it and the free text
    is quoted exactly as Python's csv module quotes it with "\n" line ends (a lone carriage return
    stays unquoted): the rows ``export --tz`` wrote with that module.
    """

    def cell(f: str) -> str:
        if f == "sat":
            return sat
        if f in _FREE:
            return _quoted(f, lone_cr=shift is None)
        if shift is not None and f in _TIMES:
            return f"{shift}({f})"
        return _CSV_EXPR.get(f, f)

    cells = [cell(f) for f in CSV_FIELDS]
    return "printf('" + ",".join(["%s"] * len(cells)) + "', " + ", ".join(cells) + ")"


def csv_columns(sat: str) -> str:
    """The CSV fields as columns (NULL for an empty field), with ``sat`` as the `sat` view."""
    return ", ".join(sat if f == "sat" else _CSV_EXPR.get(f, f) for f in CSV_FIELDS)


def jsonl(sat: str) -> str:
    """Export's JSON object of a job, with ``sat`` as the `sat` view."""
    return _JSONL.replace("{sat}", sat)


TABLE_FIELDS = ("uuid", "rfc_emisor", "motivo", "state", "code", "attempts", "created_at", "resolved_at", "overdue")
TABLE = ", ".join(f"{_OVERDUE}" if f == "overdue" else f for f in TABLE_FIELDS) + ", " + SAT_FACTS


@dataclass(frozen=True, slots=True)
class Query:
    """Which jobs: all of them, or those in ``state``, of ``rfc``, changed since ``since`` (UTC ISO)."""

    state: str | None = None
    rfc: str | None = None
    since: str | None = None
    newest_first: bool = False
    limit: int | None = None

    def sql(self, columns: str, after: int | None = None, limit: int | None = None) -> tuple[str, list[Any]]:
        """``SELECT columns`` of the jobs in order; only those past rowid ``after`` when given (keyset);
        ``limit`` rows at most (default: the query's)."""
        where: list[str] = []
        params: list[Any] = []
        # "+state": walk the table in rowid order and filter, never the state index and then a sort of
        # every match (the newest 100 'ok' jobs of a million are then the last rows read, not a sort).
        for clause, value in (
            ("+state = ?", self.state),
            ("rfc_emisor = ?", self.rfc),
            ("updated_at >= ?", self.since),
            ("rowid < ?" if self.newest_first else "rowid > ?", after),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {columns} FROM jobs"  # fixed column expressions, ? placeholders
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid" + (" DESC" if self.newest_first else "")
        limit = self.limit if limit is None else limit
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return sql, params


async def chunks(ledger: Ledger, columns: str, query: Query, size: int = CHUNK) -> AsyncIterator[Sequence[Any]]:
    """The rows of ``SELECT columns`` for ``query``, ``size`` at a time, from one cursor."""
    sql, params = query.sql(columns)
    try:
        async with ledger.connection.execute(sql, params) as cur:
            while True:
                rows = list(await cur.fetchmany(size))
                if not rows:
                    return
                yield rows
    except sqlite3.Error as e:
        raise LedgerError(f"ledger {ledger.path}: {e}") from e


BLOCK = 10_000  # rows per block of text: a few MB


async def blocks(
    ledger: Ledger, line: str, query: Query, sep: str, write: Callable[[bytes], object], size: int = BLOCK
) -> int:
    """Hand ``write`` the text of ``line`` for every job of ``query``, ``sep`` between rows, as UTF-8
    bytes of ``size`` rows at a time (``sep`` between two blocks is the caller's); returns the rows.

    SQLite builds each row and joins a block of them (group_concat over the ordered rows), so Python
    handles one bytes object per block and never a row, and the next block is built in aiosqlite's
    thread (SQLite runs without the GIL) while ``write`` writes this one.  The blocks continue from
    the last rowid (keyset), all inside one read transaction: one snapshot, as one statement is.
    """
    db = ledger.connection
    left = query.limit
    last = "min" if query.newest_first else "max"

    async def block(after: int | None) -> tuple[int | None, int, bytes | None, int]:
        n = size if left is None else min(size, left)
        inner, params = query.sql(f"rowid AS r_, {line} AS line_", after, n)
        rows = await db.execute_fetchall(
            f"SELECT {last}(r_), count(*), CAST(group_concat(line_, ?) AS BLOB) FROM ({inner})", [sep, *params]
        )
        at, count, text = next(iter(rows))
        return at, count, text, n

    total = 0
    pending: asyncio.Future[tuple[int | None, int, bytes | None, int]] | None = None
    own = not db.in_transaction
    try:
        if own:
            await db.execute("BEGIN")  # deferred: the first SELECT takes the snapshot every block reads
        pending = asyncio.ensure_future(block(None))
        while pending is not None:
            at, count, text, asked = await pending
            pending = None
            total += count
            if left is not None:
                left -= count
            if count == asked and at is not None and left != 0:
                pending = asyncio.ensure_future(block(at))
                await asyncio.sleep(0)  # let it reach aiosqlite's thread before ``write`` holds this one
            if text:
                write(text)
        return total
    except sqlite3.Error as e:
        raise LedgerError(f"ledger {ledger.path}: {e}") from e
    finally:
        if pending is not None:  # ``write`` failed (a closed pipe, a full disk): let the block in flight end
            with contextlib.suppress(Exception):
                await pending
        if own and db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")  # a read: nothing to keep
