"""The ledger as a file: read-only URIs, schema verdicts, and backups through SQLite's backup API.

No aiosqlite here: :mod:`reconciler.ledger.store` opens connections; these helpers say how, and
what a schema version means, in one line each.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection
from pathlib import Path
from urllib.parse import quote

from reconciler.errors import LedgerError
from reconciler.ledger.schema import MIGRATIONS

# Tables every ledger has (migration 1); a SQLite file without them is somebody else's database.
TABLES = frozenset({"jobs", "events", "mailbox_state", "messages", "facts"})


def older(path: Path, version: int) -> str:
    return (
        f"ledger {path}: schema version {version} is older than this reconciler's ({len(MIGRATIONS)}); "
        "run `reconciler migrate` (stop the daemon first)"
    )


def newer(path: Path, version: int) -> str:
    return (
        f"ledger {path}: schema version {version} is newer than this reconciler knows "
        f"({len(MIGRATIONS)}); upgrade reconciler"
    )


def readonly_uri(path: Path) -> str:
    """A ``mode=ro`` URI; ``immutable=1`` too when the directory is read-only and no WAL is pending.

    A WAL-mode ledger needs its ``-shm`` file, which SQLite cannot create in a read-only
    directory; without a ``-wal`` file every committed page is in the main file, so reading
    it as immutable is exact.
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path.parent, os.W_OK) and not wal.exists():
        uri += "&immutable=1"
    return uri


def verdict(path: Path, version: int, tables: Collection[str]) -> str | None:
    """Why a file opened read-only cannot be read as this reconciler's ledger, or None."""
    if version > len(MIGRATIONS):
        return newer(path, version)
    if version == 0 or "jobs" not in tables:
        what = "an empty SQLite database" if not tables else "an SQLite database without the ledger's tables"
        return f"ledger {path}: not a reconciler ledger ({what}; check [ledger] path)"
    if version < len(MIGRATIONS):
        return older(path, version)
    missing = sorted(TABLES - set(tables))
    if missing:
        return f"ledger {path}: not a reconciler ledger (no table {', '.join(missing)})"
    return None


def backup_to(source: Path, dest: Path) -> None:
    """Copy the ledger to a new file ``dest`` (0600, never an existing file) with the backup API."""
    try:
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except OSError as e:
        raise LedgerError(f"backup {dest}: {e.strerror or e}") from e
    try:
        src = sqlite3.connect(readonly_uri(source), uri=True)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as e:
        dest.unlink(missing_ok=True)
        raise LedgerError(f"backup {dest}: {e}") from e
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def backup_beside(path: Path, version: int) -> Path:
    """Back up an older ledger next to itself as ``<ledger>.v<version>-<UTC time>.bak``; returns it."""
    dest = path.with_name(f"{path.name}.v{version}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bak")
    backup_to(path, dest)
    return dest


def version_of(path: Path) -> int:
    """The schema version of an existing ledger (read-only); refuses a file that is not a ledger."""
    try:
        db = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:  # never migrate somebody else's database (or an empty file) into a ledger
                tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                raise LedgerError(verdict(path, 0, tables) or f"ledger {path}: not a reconciler ledger")
            return version
        finally:
            db.close()
    except sqlite3.Error as e:
        raise LedgerError(f"ledger {path}: {e}") from e


def quick_check(path: Path, limit: int = 20) -> list[str]:
    """SQLite's ``PRAGMA quick_check`` on the ledger, read-only: ``["ok"]``, or up to ``limit`` problems.

    It reads every page and checks each b-tree's structure (not index contents, unlike
    ``integrity_check``), in about a second per GiB.  A file too damaged to open is a
    LedgerError; a damaged page is a problem in the list.
    """
    try:
        path.stat()
        db = sqlite3.connect(readonly_uri(path), uri=True)
    except FileNotFoundError as e:
        raise LedgerError(f"ledger {path}: not found (check [ledger] path, or queue a job first)") from e
    except OSError as e:
        raise LedgerError(f"ledger {path}: {e.strerror or e}") from e
    except sqlite3.Error as e:
        raise LedgerError(f"ledger {path}: {e}") from e
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        return [str(row[0]) for row in db.execute(f"PRAGMA quick_check({int(limit)})")]
    except sqlite3.DatabaseError as e:
        return [str(e)]
    finally:
        db.close()
