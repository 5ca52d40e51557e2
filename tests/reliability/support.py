"""Tools the reliability suite adds to tests/harness.py: a TCP tap, a killer, a daemon launcher, the invariants.

* :class:`TcpTap` relays one TCP server on loopback and shows each chunk a client sends to a
  hook first, so a test can act at an exact protocol moment (``UID STORE`` leaves only after the
  ledger commit that decided it) or record the traffic.
* :class:`Killer` sends SIGKILL to the daemon from whichever thread sees the armed moment first:
  the simulator's request handler or the tap.
* :func:`spawn_daemon` starts ``python -m reconciler run`` like ``Stack.start_daemon`` but with an
  optional command prefix (``prlimit``, ``setpriv``) and its output piped through a thread, so a
  file-size limit on the daemon cannot swallow its own error line.
* :func:`check_invariants` is what every run must leave behind, whatever happened during it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from reconciler.sandbox import intended_outcome

from ..harness import Stack

Hook = Callable[[int, bytes], bool]

FETCH = re.compile(rb"^[A-Za-z0-9]+ UID FETCH ", re.M)
STORE = re.compile(rb"^[A-Za-z0-9]+ UID STORE ", re.M)
IDLE = re.compile(rb"^[A-Za-z0-9]+ IDLE\r?$", re.M)


class TcpTap:
    """A relay on 127.0.0.1 in front of ``upstream``; ``hook(conn, chunk)`` sees client data first.

    The hook returns False to cut the connection without forwarding the chunk. With ``record``
    every chunk is kept as ``(conn, "c"|"s", bytes)``.
    """

    def __init__(self, host: str, port: int, hook: Hook | None = None, *, record: bool = False) -> None:
        self.upstream = (host, port)
        self.hook = hook
        self.record = record
        self.traffic: list[tuple[int, str, bytes]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._conns = 0
        self._closing = False
        self._accept = threading.Thread(target=self._serve, name="tap-accept", daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closing:
                    client.close()
                    upstream.close()
                    return
                self._conns += 1
                conn = self._conns
                self._sockets |= {client, upstream}
                for args in ((conn, client, upstream, "c"), (conn, upstream, client, "s")):
                    t = threading.Thread(target=self._pump, args=args, name=f"tap-{conn}{args[3]}", daemon=True)
                    self._threads.append(t)
                    t.start()

    def _pump(self, conn: int, src: socket.socket, dst: socket.socket, side: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.record:
                    with self._lock:
                        self.traffic.append((conn, side, data))
                if side == "c" and self.hook is not None and not self.hook(conn, data):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def client_text(self) -> bytes:
        with self._lock:
            return b"".join(d for _, side, d in self.traffic if side == "c")

    def close(self) -> None:
        with self._lock:
            self._closing = True
            sockets, threads = list(self._sockets), list(self._threads)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accept.join(5)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        for s in sockets:
            s.close()


class Killer:
    """SIGKILL for the daemon at an armed moment: the ``count``-th time :meth:`hit` is called with ``mode``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._mode: str | None = None
        self._left = 0
        self.fired = threading.Event()

    def arm(self, pid: int, mode: str, count: int) -> None:
        with self._lock:
            self._pid, self._mode, self._left = pid, mode, count
            self.fired.clear()

    def disarm(self) -> None:
        with self._lock:
            self._pid = self._mode = None

    def hit(self, mode: str) -> bool:
        with self._lock:
            if self._pid is None or self._mode != mode:
                return False
            self._left -= 1
            if self._left > 0:
                return False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._pid = self._mode = None
            self.fired.set()
            return True


def hook_simulator(stack: Stack, killer: Killer) -> None:
    """Let ``killer`` act inside the simulator: after it processed a request, before it answers."""
    service = stack.sandbox.service
    cancel, status = service.cancel, service.status

    def cancel_then(f: dict[str, str | None]) -> Any:
        result = cancel(f)
        killer.hit("submit")
        return result

    def status_then(f: dict[str, str | None]) -> Any:
        result = status(f)
        killer.hit("status")
        return result

    service.cancel = cancel_then  # type: ignore[method-assign]
    service.status = status_then  # type: ignore[method-assign]


def spawn_daemon(
    stack: Stack, *args: str, prefix: Iterable[str] = (), env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``prefix... python -m reconciler --config X run args...``; output copied to a new log by a thread."""
    log = stack.root / f"daemon-{len(stack.logs)}.log"
    stack.logs.append(log)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "reconciler", "--config", str(stack.config), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out = proc.stdout
    assert out is not None

    def copy() -> None:
        with out, log.open("wb") as f:
            for chunk in iter(lambda: out.read1(65536), b""):
                f.write(chunk)
                f.flush()

    threading.Thread(target=copy, name=f"daemon-log-{proc.pid}", daemon=True).start()
    stack.daemon = proc
    return proc


def wait_started(stack: Stack, seconds: float = 30) -> None:
    """Poll the newest daemon log for its start line (signal handlers are installed by then)."""
    from ..harness import wait_until

    log = stack.logs[-1]
    wait_until(
        lambda: log.exists() and b"reconciler started" in log.read_bytes(), seconds, "the daemon to start", poll=0.02
    )


def kill_daemon(stack: Stack) -> int:
    """SIGKILL (if still running) and reap; returns the exit status."""
    assert stack.daemon is not None
    with contextlib.suppress(ProcessLookupError):
        stack.daemon.kill()
    code = stack.daemon.wait(30)
    stack.daemon = None
    return code


# -- what every run must leave behind -------------------------------------------------


def integrity(ledger: Path) -> str:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def pending_marks(stack: Stack) -> int:
    """Notifications committed as needing a mark that the ledger does not yet know to be marked."""
    rows = stack.query(
        "SELECT m.uid FROM messages m JOIN mailbox_state s USING (folder, uidvalidity) "
        "WHERE m.mark = 1 AND m.uid > s.marked_uid"
    )
    return len(rows)


def cancel_answers(stack: Stack) -> dict[str, list[int | None]]:
    """UUID -> the simulator's answers to its cancelarAsincrono calls, in order (None: injected fault)."""
    out: dict[str, list[int | None]] = defaultdict(list)
    for e in stack.sandbox.record.entries():
        if e.operation == "cancelarAsincrono" and e.uuid:
            out[e.uuid].append(e.code)
    return out


def check_invariants(stack: Stack, uuids: Iterable[str]) -> dict[str, int]:
    """Assert the run's end state; returns a few counts for the report.

    Every job in its intended terminal state; every accepted UUID accepted exactly once and
    every later submission answered 701; at most one applied notification per Message-ID and
    per (folder, uid); one terminal transition per job; nothing left to mark; integrity ok.
    """
    wanted = set(uuids)
    states = stack.states()
    assert set(states) == wanted, f"jobs lost or added: {sorted(wanted ^ set(states))[:5]}"
    assert stack.mismatches() == []
    accepted = stack.sandbox.record.accepted()
    assert set(accepted) == {u for u in wanted if intended_outcome(u) != "rejected"}
    assert set(accepted.values()) == {1}, {u: n for u, n in accepted.items() if n != 1}
    repeats = 0
    for u, codes in cancel_answers(stack).items():
        first = next((i for i, c in enumerate(codes) if c in (200, 211)), None)
        if first is None:
            continue
        later = [c for c in codes[first + 1 :] if c is not None]
        assert set(later) <= {701}, f"{u}: answers after acceptance {codes}"
        repeats += len(later)
    double = stack.query(
        "SELECT json_extract(detail, '$.message_id') AS mid, count(*) FROM events WHERE kind = 'notification' "
        "AND json_extract(detail, '$.outcome') IN ('applied', 'claimed') GROUP BY mid HAVING count(*) > 1"
    )
    assert double == [], f"notifications applied twice: {double[:5]}"
    double = stack.query(
        "SELECT message_id, count(*) FROM messages WHERE outcome IN ('applied', 'claimed') "
        "AND message_id IS NOT NULL GROUP BY message_id HAVING count(*) > 1"
    )
    assert double == [], f"messages applied twice: {double[:5]}"
    terminal = stack.query(
        "SELECT uuid, count(*) FROM events WHERE kind = 'transition' "
        "AND json_extract(detail, '$.to') IN ('ok', 'error', 'rejected') GROUP BY uuid"
    )
    assert all(n == 1 for _, n in terminal), [row for row in terminal if row[1] != 1][:5]
    assert {u for u, _ in terminal} == wanted
    assert pending_marks(stack) == 0
    assert integrity(stack.ledger) == "ok"
    applied = stack.query(
        "SELECT count(*) FROM events WHERE kind = 'notification' "
        "AND json_extract(detail, '$.outcome') IN ('applied', 'claimed')"
    )[0][0]
    return {"jobs": len(wanted), "accepted": len(accepted), "repeats_701": repeats, "applied_notifications": applied}


def events_of(stack: Stack, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(d) | {"uuid": u} for u, d in stack.query("SELECT uuid, detail FROM events WHERE kind = ?", [kind])
    ]


def delivered(stack: Stack) -> int:
    """Notifications the simulator handed to the IMAP server."""
    return sum(1 for n in stack.sandbox.record.notifications() if n["delivered"])


def ingested(stack: Stack) -> int:
    return int(stack.query("SELECT count(*) FROM messages")[0][0] or 0) if stack.ledger.exists() else 0


def counts(stack: Stack) -> Counter[str]:
    return Counter(stack.states().values())
