"""Opening the ledger file: creating it private, the WAL switch and tuning, read-only connections,
migration scripts, and the chunked ``IN (...)`` reads every store needs.

Helpers of :class:`reconciler.ledger.store.Ledger`'s ``open`` and ``open_readonly``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiosqlite

from reconciler import backoff
from reconciler.errors import LedgerError
from reconciler.ledger import contention, files

BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another (the daemon and a CLI import, say)
_WAL_BACKOFF_S = (0.01, 0.25)  # retry delays (first, cap) while another process holds a new file

# A mailbox pass commits thousands of notifications at a time, each touching random pages of
# the jobs table and of three indexes: a 16 MiB page cache (SQLite's default is 2 MiB) stops
# those pages being spilled and re-read mid-transaction, and checkpointing every 40 MiB of WAL
# instead of every 4 MiB copies each hot page back once instead of many times. Measured with
# bench/reconcile.py: the ledger's side of a 50,000-notification pass drops by a quarter.
# The WAL file is truncated back to 64 MiB after a checkpoint.
TUNING = (
    "PRAGMA cache_size = -16384",
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA journal_size_limit = 67108864",
)
_CHUNK = 500  # SQLite host parameters per IN (...) list


def prepare_file(p: Path, create: bool) -> None:
    """Create the ledger file 0600 (and its directory 0700) before SQLite opens it; tighten a loose mode."""
    if not p.exists():
        if not create:
            raise LedgerError(f"ledger {p}: not found (check [ledger] path, or queue a job first)")
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with suppress(FileExistsError):
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    elif p.stat().st_mode & 0o077 and p.stat().st_uid == os.geteuid():
        os.chmod(p, 0o600)


def statements(script: str) -> list[str]:
    """Split a migration into complete statements (triggers contain inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


async def use_wal(db: aiosqlite.Connection, rng: random.Random) -> None:
    """Switch a new file to WAL (persistent, so once per ledger).

    The switch needs the file to itself and SQLite answers "database is locked" at once,
    without its busy handler, when another process opens the same new ledger at the same
    moment (the daemon and a CLI import, say): retry within the busy timeout.
    """
    deadline = asyncio.get_running_loop().time() + BUSY_TIMEOUT_MS / 1000
    attempt = 0
    while True:
        try:
            async with db.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            raise sqlite3.OperationalError(f"journal mode stays {row[0] if row else '?'}, not wal")
        except sqlite3.OperationalError as e:
            if not contention.is_busy(e) or asyncio.get_running_loop().time() > deadline:
                raise
        attempt += 1
        await asyncio.sleep(backoff.delay(attempt, *_WAL_BACKOFF_S, rng))


async def connect_readonly(p: Path) -> aiosqlite.Connection:
    """A read-only connection (``mode=ro``) to a file that is a reconciler ledger of this version, or one line."""
    try:
        db = await connect(files.readonly_uri(p), uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise LedgerError(f"ledger {p}: {e}") from e
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = int(next(iter(await db.execute_fetchall("PRAGMA user_version")))[0])
        tables = [r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
        problem = files.verdict(p, version, tables)
    except sqlite3.DatabaseError as e:
        await db.close()
        if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise LedgerError(f"ledger {p}: not a reconciler ledger (not an SQLite database)") from e
        raise LedgerError(f"ledger {p}: {e}") from e
    except BaseException:
        await db.close()
        raise
    if problem is not None:
        await db.close()
        raise LedgerError(problem)
    return db


async def connect(target: str | Path, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect``, but a failed open waits for aiosqlite's worker thread to end.

    On a failed open aiosqlite queues the thread's stop with a future of the running loop and
    returns at once; if ``asyncio.run`` then closes the loop before the thread reports back,
    the thread dies printing "RuntimeError: Event loop is closed" after our one-line error.
    """
    connection = aiosqlite.connect(target, **kwargs)
    try:
        return await connection
    except BaseException:
        thread = getattr(connection, "_thread", None)
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, 5.0)
        raise


async def select_in(
    db: aiosqlite.Connection, sql: str, keys: Sequence[Any], params: Sequence[Any] = ()
) -> list[sqlite3.Row]:
    """``sql`` with its ``IN ({})`` filled by ``keys``, in chunks under SQLite's parameter limit."""
    rows: list[sqlite3.Row] = []
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        rows.extend(await db.execute_fetchall(sql.format(",".join("?" * len(chunk))), [*params, *chunk]))
    return rows
