"""Faults: the provider failing, the IMAP server restarting, the disk full, the ledger read-only.

Each test runs the real daemon (subprocess) against the simulator and Dovecot, injects one
kind of fault, lets it end, and checks that everything converges exactly once
(:func:`check_invariants`). The two storage faults must also stop the daemon with one clear
line and a non-zero exit status (systemd's ``Restart=on-failure`` then restarts it) without
corrupting the ledger or losing a job.

The storage faults are real, applied to the daemon process only:

* disk full: ``prlimit --fsize`` (RLIMIT_FSIZE) caps the size of any file the daemon writes, so
  SQLite's write of the WAL fails with EFBIG (Python ignores SIGXFSZ), as it fails with ENOSPC on
  a full disk (SQLite reports the first as "disk I/O error", the second as "database or disk is full");
* read-only ledger: the test runs as root, which ignores file modes, so the daemon is started
  with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH removed from its bounding set (``setpriv``):
  it is still uid 0 and can run the interpreter under /root, but the 0500 state directory
  and 0400 ledger files are then read-only to it.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading

import pytest

from ..harness import Stack, generated_uuids, wait_until
from .support import (
    FETCH,
    IDLE,
    TcpTap,
    check_invariants,
    events_of,
    integrity,
    pending_marks,
    spawn_daemon,
    wait_started,
)


def _reply_messages(stack: Stack) -> list[str]:
    rows = stack.query("SELECT json_extract(detail, '$.message') FROM events WHERE kind IN ('reply', 'status')")
    return [str(m) for (m,) in rows]


# -- the provider ----------------------------------------------------------------------------------

PROVIDER_FAULTS = {
    "http500": "HTTP 500",
    "soap_fault": "SOAP Fault: Injected fault",
    "slow": "timeout after 2s",
    "drop": "connection error",
    "lost_reply": "connection error",
    "garbage": "malformed reply",
}


@pytest.mark.timeout(180)
def test_provider_faults_at_20_percent_converge(stack: Stack) -> None:
    stack.start_daemon()
    queued: list[str] = []
    for i, (kind, message) in enumerate(PROVIDER_FAULTS.items()):
        seen = len(_reply_messages(stack))
        stack.sandbox.set_faults(0.2, (kind,))
        batch = generated_uuids(40, seed=100 + i)
        stack.queue(batch)
        queued += batch
        wait_until(lambda: stack.unresolved() == 0, 60, f"jobs to resolve through 20% {kind}")
        stack.sandbox.set_faults(0.0)
        assert stack.mismatches() == [], kind
        assert any(message in m for m in _reply_messages(stack)[seen:]), f"no {kind} failure was recorded"
    faults = [e.fault for e in stack.sandbox.record.entries() if e.fault]
    assert {k for k in PROVIDER_FAULTS if k in faults} == set(PROVIDER_FAULTS)
    assert stack.stop_daemon(signal.SIGTERM) == 0
    figures = check_invariants(stack, queued)
    assert figures["repeats_701"] > 0  # lost_reply: accepted, the answer lost, the retry answered 701
    assert "Traceback" not in stack.log_text()


# -- the IMAP server ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_imap_restart_during_idle(stack: Stack) -> None:
    idling = threading.Event()

    def on_client(_conn: int, data: bytes) -> bool:
        if IDLE.search(data):
            idling.set()
        elif data.strip().upper() == b"DONE":
            idling.clear()
        return True

    tap = TcpTap(stack.imap.host, stack.imap.port, on_client)
    try:
        spawn_daemon(stack, env={"RECONCILER_MAILBOX__PORT": str(tap.port)})
        first = generated_uuids(30, seed=11)
        stack.queue(first)
        wait_until(lambda: stack.unresolved() == 0, 60, "the first jobs")
        for _ in range(2):
            wait_until(idling.is_set, 30, "the daemon to IDLE")
            stack.imap.restart()
            idling.clear()  # the IDLE died with the server; wait for the one on the new connection
        second = generated_uuids(30, seed=12)
        stack.queue(second)
        wait_until(lambda: stack.unresolved() == 0, 60, "the jobs queued after the restarts")
        assert stack.stop_daemon(signal.SIGTERM) == 0
    finally:
        tap.close()
    check_invariants(stack, first + second)
    log = stack.log_text()
    assert log.count("mailbox unavailable, retrying with backoff") == 2
    assert log.count("reachable again") == 2
    assert "Traceback" not in log


@pytest.mark.timeout(120)
def test_imap_restart_during_a_fetch_of_a_large_backlog(stack: Stack) -> None:
    backlog = generated_uuids(2000, seed=13)  # notifications for jobs this ledger never had: orphans
    for u in backlog:
        stack.imap.deliver(
            f"From: notificaciones@solucionfactible.com\r\nMessage-ID: <{u}@solucionfactible.com>\r\n"
            f"X-SFService: Cancelar\r\nX-UUIDCancelacion: {u}\r\nX-StatusCancelacion: OK\r\n\r\n".encode()
        )
    fetches = 0
    restarts: list[threading.Thread] = []

    def on_client(_conn: int, data: bytes) -> bool:
        nonlocal fetches
        if FETCH.search(data):
            fetches += 1
            if fetches == 4:  # the FETCH goes out and the server goes down while answering it
                restarts.append(threading.Thread(target=stack.imap.restart))
                restarts[0].start()
        return True

    tap = TcpTap(stack.imap.host, stack.imap.port, on_client)
    try:
        spawn_daemon(stack, env={"RECONCILER_MAILBOX__PORT": str(tap.port), "RECONCILER_MAILBOX__BATCH_SIZE": "100"})
        wait_until(lambda: len(events_of(stack, "orphan")) >= len(backlog), 90, "the backlog to be read")
        assert restarts, "the fourth FETCH never came"
        restarts[0].join(30)
        jobs = generated_uuids(30, seed=14)
        stack.queue(jobs)
        wait_until(lambda: stack.unresolved() == 0, 60, "the jobs queued after the restart")
        assert stack.stop_daemon(signal.SIGTERM) == 0
    finally:
        tap.close()
    orphans = events_of(stack, "orphan")
    assert len(orphans) == len(backlog)  # every message recorded once, none twice, despite the restart
    assert {str(e["message_id"]) for e in orphans} == {f"<{u}@solucionfactible.com>" for u in backlog}
    check_invariants(stack, jobs)
    log = stack.log_text()
    assert log.count("mailbox unavailable, retrying with backoff") == 1
    assert "Traceback" not in log


# -- storage -------------------------------------------------------------------------------------------


def _snapshot(stack: Stack) -> tuple[list[tuple[object, ...]], int]:
    return stack.query("SELECT * FROM jobs ORDER BY uuid"), stack.query("SELECT count(*) FROM events")[0][0]


def _fatal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " CRITICAL " in line or line.startswith("reconciler: ")]


@pytest.mark.timeout(120)
def test_disk_full_stops_the_daemon_cleanly_then_a_restart_converges(stack: Stack) -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    jobs = generated_uuids(300, seed=21)
    stack.queue(jobs)
    db = sqlite3.connect(stack.ledger)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    limit = stack.ledger.stat().st_size + 48 * 1024  # the WAL reaches it after a few dozen commits
    proc = spawn_daemon(stack, prefix=["prlimit", f"--fsize={limit}"])
    code = proc.wait(60)
    stack.daemon = None
    log = stack.log_text()
    assert code == 1, log[-2000:]
    fatal = _fatal_lines(log)
    # EFBIG from the size limit reaches SQLite as SQLITE_IOERR_WRITE ("disk I/O error"); ENOSPC on a
    # really full disk as SQLITE_FULL ("database or disk is full"): either way one line naming the ledger.
    assert len(fatal) == 1 and str(stack.ledger) in fatal[0], fatal
    assert "disk I/O error" in fatal[0] or "database or disk is full" in fatal[0], fatal
    assert "Traceback" not in log
    assert integrity(stack.ledger) == "ok"
    assert set(stack.states()) == set(jobs)
    assert any(s != "queued" for s in stack.states().values()), "the fault came before any progress"

    spawn_daemon(stack)  # the disk has room again
    wait_started(stack)
    wait_until(lambda: stack.unresolved() == 0, 60, "the jobs to resolve after the disk-full stop")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    check_invariants(stack, jobs)


@pytest.mark.timeout(120)
def test_read_only_ledger_is_one_clear_line_and_changes_nothing(stack: Stack) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    first = generated_uuids(20, seed=31)
    stack.queue(first)
    spawn_daemon(stack)
    wait_until(lambda: stack.unresolved() == 0, 60, "the first jobs")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    second = generated_uuids(20, seed=32)
    stack.queue(second)
    before = _snapshot(stack)
    state = stack.ledger.parent
    files = [p for p in state.iterdir() if p.is_file()]
    for p in files:
        p.chmod(0o400)
    state.chmod(0o500)
    try:
        no_dac = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        proc = spawn_daemon(stack, prefix=no_dac)
        code = proc.wait(60)
        stack.daemon = None
    finally:
        state.chmod(0o700)
        for p in files:
            p.chmod(0o600)
    log = stack.logs[-1].read_text()
    assert code == 1, log[-2000:]
    fatal = _fatal_lines(log)
    assert len(fatal) == 1 and str(stack.ledger) in fatal[0] and "readonly" in fatal[0], fatal
    assert "Traceback" not in log
    assert _snapshot(stack) == before
    assert integrity(stack.ledger) == "ok"

    spawn_daemon(stack)  # the permissions are fixed
    wait_started(stack)
    wait_until(lambda: stack.unresolved() == 0, 60, "the jobs queued while the ledger was read-only")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    check_invariants(stack, first + second)


@pytest.mark.timeout(120)
def test_disk_full_while_only_the_mailbox_writes(stack: Stack) -> None:
    """The watcher runs as its own task: a ledger failure there must stop the daemon like anywhere else."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    quiet = {"RECONCILER_SCHEDULE__STATUS_CHECK_AFTER_S": "3600"}  # no status calls: only mail writes
    quiet["RECONCILER_MAILBOX__TRUST__CONFIRM_WITH_STATUS"] = "false"  # an ERROR claim would make a status call due
    stack.sandbox.service.notify_delay_s = 3600  # accepted, but the SAT (and its email) stays silent
    jobs = generated_uuids(300, seed=41)  # one mailbox batch of 300 needs far more than the 64 KiB cap
    stack.queue(jobs)
    spawn_daemon(stack, env=quiet)
    wait_until(lambda: set(stack.states().values()) == {"awaiting"}, 60, "the jobs to be accepted")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    for u in jobs:
        stack.imap.deliver(
            f"From: notificaciones@solucionfactible.com\r\nMessage-ID: <{u}@solucionfactible.com>\r\n"
            f"X-SFService: Cancelar\r\nX-UUIDCancelacion: {u}\r\nX-StatusCancelacion: ERROR\r\n\r\n".encode()
        )
    db = sqlite3.connect(stack.ledger)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    # RLIMIT_FSIZE caps every file's size, so what it caps here is the WAL (empty after the
    # checkpoint above; the main file is not written until a checkpoint). Before the mailbox
    # pass only a few heartbeats write, one 4 KiB frame each; the pass's one transaction for 300
    # notifications needs hundreds of KiB. With the cap at 64 KiB that transaction is the write
    # that fails, every time. (A cap of "main file + 16 KiB" let the pass commit and left the WAL
    # a few frames short of the cap, so whichever small write came next, the watcher's or the
    # heartbeat's, hit it: the heartbeat won about one run in six.)
    limit = 64 * 1024
    proc = spawn_daemon(stack, prefix=["prlimit", f"--fsize={limit}"], env=quiet)
    code = proc.wait(60)
    stack.daemon = None
    log = stack.logs[-1].read_text()
    assert code == 1, log[-2000:]
    fatal = _fatal_lines(log)
    assert len(fatal) == 1 and str(stack.ledger) in fatal[0], fatal
    assert "watcher" in fatal[0], fatal
    assert "Traceback" not in log
    assert integrity(stack.ledger) == "ok"
    assert set(stack.states().values()) == {"awaiting"}  # the failing write was the pass's own

    spawn_daemon(stack, env=quiet)
    wait_started(stack)
    wait_until(
        lambda: stack.unresolved() == 0 and pending_marks(stack) == 0, 60, "the notifications to be applied and marked"
    )
    assert stack.stop_daemon(signal.SIGTERM) == 0
    assert set(stack.states().values()) == {"error"}
    assert pending_marks(stack) == 0
    assert stack.query("SELECT count(*) FROM messages")[0][0] == len(jobs)
