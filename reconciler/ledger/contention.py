"""Another process holds the ledger's write lock: telling that apart from a real failure, and waiting it out."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from reconciler import backoff
from reconciler.errors import LedgerError

log = logging.getLogger(__name__)

# SQLITE_BUSY and SQLITE_LOCKED with their extended codes (BUSY_SNAPSHOT, LOCKED_SHAREDCACHE...)
_CONTENTION = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# Retry delays (first, cap) while another process holds the write lock (the WAL switch of a
# brand-new file waits less: reconciler.ledger.opening).
_LOCK_BACKOFF_S = (0.05, 2.0)


def is_busy(error: BaseException) -> bool:
    """True when ``error`` means only that another connection holds the lock (wait and retry).

    Disk full, read-only, I/O errors and corruption have other codes and are real failures.
    """
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and isinstance(code, int) and code & 0xFF in _CONTENTION


async def begin(db: aiosqlite.Connection, path: Path, rng: random.Random, closed: Callable[[], bool]) -> None:
    """BEGIN IMMEDIATE on ``db``, waiting as long as it takes while another process holds the write lock.

    Contention is not a failure: past the busy timeout SQLite answers "database is locked"
    (SQLITE_BUSY / SQLITE_LOCKED); we log one line, back off and try again until the lock is
    free (or the ledger is ``closed``).  Every other error (disk full, read-only, corrupt) raises.
    """
    attempt = 0
    started = 0.0
    while True:
        try:
            await db.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.Error as e:
            if not is_busy(e) or closed():
                raise LedgerError(f"ledger {path}: {e}") from e
        attempt += 1
        if attempt == 1:
            started = time.monotonic()
            log.warning("ledger %s: another process holds the write lock; waiting for it", path)
        await asyncio.sleep(backoff.delay(attempt, *_LOCK_BACKOFF_S, rng))
    if attempt:
        log.info("ledger %s: write lock free after %.1fs; carrying on", path, time.monotonic() - started)
