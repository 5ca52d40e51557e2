"""``reconciler migrate``: apply the pending schema migrations, under the daemon's lock, after an optional backup."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.errors import LedgerError
from reconciler.ledger import files
from reconciler.ledger.lock import DaemonLock
from reconciler.ledger.schema import MIGRATIONS
from reconciler.ledger.store import Ledger


def migrate(path: Path, backup: Path | None) -> tuple[int, int]:
    """Migrate the ledger at ``path``; returns (version before, version after).

    Holds the daemon's lock throughout, so it refuses while a daemon runs and no daemon starts
    mid-migration; ``backup`` (a new file) is written first with SQLite's backup API.
    """
    if not path.exists():
        raise LedgerError(f"ledger {path}: not found (check [ledger] path)")
    held = DaemonLock.acquire(path)
    try:
        before = files.version_of(path)
        if before > len(MIGRATIONS):
            raise LedgerError(files.newer(path, before))
        if backup is not None:
            files.backup_to(path, backup)

        async def go() -> None:
            await (await Ledger.open(path, create=False)).close()  # opening migrates

        asyncio.run(go())
    finally:
        held.release()
    return before, len(MIGRATIONS)
