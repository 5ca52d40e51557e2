"""The ledger file under a real daemon: another process holding its write lock, and the migration backup."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.ledger.schema import MIGRATIONS, sha256_hex

from ..harness import Stack, generated_uuids, start_stack, wait_until

WAITING = "another process holds the write lock; waiting for it"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", notify_delay_s=1.0)
    yield s
    s.close()


@pytest.mark.timeout(120)
def test_another_process_holding_the_write_lock_past_the_busy_timeout_is_waited_out(stack: Stack) -> None:
    jobs = generated_uuids(40, seed=61)
    stack.queue(jobs)
    daemon = stack.start_daemon(env={"RECONCILER_LEDGER__BUSY_TIMEOUT_S": "0.3"})
    wait_until(lambda: "reconciler started" in stack.log_text(), 30, "the daemon to start", poll=0.02)
    holder = sqlite3.connect(stack.ledger, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
        wait_until(
            lambda: WAITING in stack.log_text() or daemon.poll() is not None, 30, "the daemon to wait", poll=0.02
        )
        assert daemon.poll() is None, stack.log_text()[-2000:]  # contention is not death
        held_until = time.monotonic() + 2.0  # hold on for many of its retries
        while time.monotonic() < held_until:
            assert daemon.poll() is None, stack.log_text()[-2000:]
            time.sleep(0.05)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    wait_until(lambda: stack.unresolved() == 0, 60, "the daemon to finish the jobs")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    log = stack.log_text()
    assert log.count(WAITING) == 1, log  # one line, not one per retry
    assert "carrying on" in log
    assert "Traceback" not in log and " CRITICAL " not in log, log[-3000:]
    assert stack.mismatches() == []
    assert max(stack.sandbox.record.accepted().values()) == 1


@pytest.mark.timeout(120)
def test_the_daemon_backs_up_an_older_ledger_before_migrating_it(stack: Stack) -> None:
    old = len(MIGRATIONS) - 1
    stack.ledger.parent.mkdir(parents=True)
    db = sqlite3.connect(stack.ledger, isolation_level=None)
    db.create_function("sha256", 1, sha256_hex)
    for script in MIGRATIONS[:old]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {old}")
    db.close()
    done = stack.run_once()
    assert done.returncode == 0, done.stderr
    backups = sorted(stack.ledger.parent.glob(f"{stack.ledger.name}.v{old}-*.bak"))
    assert len(backups) == 1, sorted(p.name for p in stack.ledger.parent.iterdir())
    assert oct(backups[0].stat().st_mode & 0o777) == "0o600"
    for path, version in ((backups[0], old), (stack.ledger, len(MIGRATIONS))):
        ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert ro.execute("PRAGMA user_version").fetchone()[0] == version
            assert ro.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            ro.close()
    # A brand-new ledger, and a current one, are never backed up.
    again = stack.run_once()
    assert again.returncode == 0, again.stderr
    assert len(list(stack.ledger.parent.glob("*.bak"))) == 1


@pytest.mark.timeout(120)
def test_a_new_ledger_is_not_backed_up(stack: Stack) -> None:
    stack.queue(generated_uuids(2, seed=62))
    done = stack.run_once()
    assert done.returncode == 0, done.stderr
    assert list(stack.ledger.parent.glob("*.bak")) == []
