"""Telling "another process holds the lock" apart from a real I/O failure, from an sqlite3 error."""

from __future__ import annotations

import sqlite3

# SQLITE_BUSY and SQLITE_LOCKED with their extended codes (BUSY_SNAPSHOT, LOCKED_SHAREDCACHE...)
_CONTENTION = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(error: BaseException) -> bool:
    """True when ``error`` means only that another connection holds the lock (wait and retry).

    Disk full, read-only, I/O errors and corruption have other codes and are real failures.
    """
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and isinstance(code, int) and code & 0xFF in _CONTENTION
