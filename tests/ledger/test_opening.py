"""A ledger that cannot be opened leaves no aiosqlite worker thread behind (issue 13 item 4).

aiosqlite answers a failed open at once and stops its worker thread later, with a future of the
running loop; when ``asyncio.run`` closed the loop first, the thread died printing "RuntimeError:
Event loop is closed" after the CLI's one-line error.  :func:`opening.connect` waits for it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from reconciler.ledger import opening


def test_a_failed_open_has_ended_aiosqlites_thread_when_it_raises(tmp_path: Path) -> None:
    async def leftover(target: str) -> list[threading.Thread]:
        before = set(threading.enumerate())
        with pytest.raises(sqlite3.OperationalError):  # "unable to open database file", "disk I/O error"
            await opening.connect(target, uri=True)
        new = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        return [t for t in new if not t.name.startswith("asyncio_")]  # the loop's executor (to_thread) ends with it

    for target in (f"file:{tmp_path / 'missing' / 'ledger.db'}?mode=ro", f"file:{tmp_path}?mode=ro"):
        for _ in range(20):
            assert asyncio.run(leftover(target)) == []
