"""One daemon per ledger: real daemons against the simulator over HTTP, and the lock file itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import AlreadyRunningError, LedgerError
from reconciler.ledger.lock import DaemonLock, holder, lock_path

from ..conftest import run_cli
from ..harness import Stack, generated_uuids, start_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", notify_delay_s=0.2)
    yield s
    s.close()


def _second(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """A second daemon while the first runs: one that waited for the lock would never return (the first
    holds it until stopped), so the subprocess timeout bounds it; no elapsed time is asserted."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--config", str(stack.config), "run", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _started(stack: Stack) -> None:
    wait_until(lambda: "reconciler started" in stack.log_text(), 30, "the daemon to start", poll=0.02)


@pytest.mark.timeout(120)
def test_a_second_daemon_exits_at_once_naming_the_first_and_sends_nothing(stack: Stack) -> None:
    jobs = generated_uuids(12, seed=7)
    stack.queue(jobs)
    first = stack.start_daemon()
    _started(stack)
    wait_until(lambda: stack.unresolved() == 0, 60, "the first daemon to resolve every job")
    requests = len(stack.sandbox.record.entries())
    states = stack.states()
    for args in ((), ("--once",)):
        done = _second(stack, *args)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "already running" in lines[0] and f"pid {first.pid}" in lines[0], done.stderr
    assert len(stack.sandbox.record.entries()) == requests  # nothing sent by either
    assert stack.states() == states
    beat = stack.query("SELECT json_extract(value, '$.pid') FROM facts WHERE key = 'heartbeat'")
    assert beat == [(first.pid,)]  # the second never wrote its heartbeat

    # The read commands and the writers work beside it, and name it.
    env = {"RECONCILER_CONFIG": str(stack.config)}
    check = run_cli("check", env=env)
    assert f"daemon pid {first.pid}" in check.stdout, check.stdout
    summary = run_cli("summary", "--json", env=env)
    assert json.loads(summary.stdout)["daemon"] == {"running": True, "pid": first.pid}
    assert f"daemon pid {first.pid}" in run_cli("summary", env=env).stdout
    extra = generated_uuids(1, seed=8)[0]
    assert run_cli("submit", extra, "--rfc", "AAA010101AAA", env=env).returncode == 0

    # kill -9 frees the lock: the next daemon starts and the reads name the new pid.
    first.kill()
    first.wait(10)
    stack.daemon = None
    gone = run_cli("check", env=env)
    assert "no daemon running" in gone.stdout, gone.stdout
    assert json.loads(run_cli("summary", "--json", env=env).stdout)["daemon"] == {"running": False, "pid": None}
    second = stack.start_daemon()
    _started(stack)
    wait_until(lambda: stack.unresolved() == 0, 60, "the new daemon to resolve the new job")
    assert f"daemon pid {second.pid}" in run_cli("check", env=env).stdout
    assert stack.stop_daemon() == 0
    assert max(stack.sandbox.record.accepted().values()) == 1  # every job sent exactly once


def test_the_lock_names_its_holder_and_refuses_a_second(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    assert holder(ledger) is None and not lock_path(ledger).exists()  # the reader never creates it
    held = DaemonLock.acquire(ledger)
    try:
        assert oct(lock_path(ledger).stat().st_mode & 0o777) == "0o600"
        assert holder(ledger) is not None and holder(ledger).pid == os.getpid()  # type: ignore[union-attr]
        with pytest.raises(AlreadyRunningError, match=f"already running \\(pid {os.getpid()} "):
            DaemonLock.acquire(ledger)
    finally:
        held.release()
    assert holder(ledger) is None
    DaemonLock.acquire(ledger).release()  # free again


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock_path(ledger).symlink_to(victim)
    with pytest.raises(LedgerError, match="symlink"):
        DaemonLock.acquire(ledger)
    assert victim.read_text() == "precious"
