"""A whole installation on loopback for end-to-end and reliability tests.

The simulator runs in the test process (its record survives daemon restarts),
the IMAP server is a real child process (Dovecot when installed, else pymap), the
daemon is ``python -m reconciler run`` as a subprocess with a real config file,
and the ledger is inspected with plain sqlite3.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.ledger.schema import MIGRATIONS
from reconciler.sandbox import UUIDS_204, UUIDS_211, ImapConfig, Sandbox, SandboxConfig, intended_outcome
from reconciler.sandbox.config import TESTING_PASSWORD, TESTING_USER, write_config
from reconciler.sandbox.imapserver import ImapServer, dovecot_available, start_dovecot, start_pymap

USER, PASSWORD = TESTING_USER, TESTING_PASSWORD
MAIL_USER, MAIL_PASSWORD = "facturas", "Mailbox-Secret-9f2"
NOTIFY = "facturas@example.com"
RFC = "AAA010101AAA"
TESTING_UUIDS = sorted(UUIDS_204) + sorted(UUIDS_211)


def wait_until(check: Callable[[], bool], seconds: float, what: str, *, poll: float = 0.1) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``seconds``. The one poll-with-deadline."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(poll)  # the poll interval, not a wait for something


async def eventually(
    check: Callable[[], Awaitable[bool]],
    seconds: float = 10.0,
    what: str = "the condition",
    *,
    step: Callable[[], Awaitable[object]] | None = None,
    poll: float = 0.05,
) -> None:
    """``wait_until`` for coroutines: await ``check`` until it holds, running ``step`` between tries if given."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        if step is not None:
            await step()
        await asyncio.sleep(poll)  # the poll interval, not a wait for something


def generated_uuids(n: int, seed: int) -> list[str]:
    """``n`` UUIDs (a quarter end in E, so the simulator ends them in ERROR)."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        u = str(uuidlib.UUID(int=rng.getrandbits(128), version=4)).upper()
        out.append(u[:-1] + ("E" if i % 4 == 0 else rng.choice("0123456789ABCDF")))
    return out


@dataclass
class Stack:
    root: Path
    imap: ImapServer
    sandbox: Sandbox
    config: Path
    daemon: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def ledger(self) -> Path:
        return self.root / "state" / "ledger.sqlite3"

    # -- the daemon ------------------------------------------------------------

    def start_daemon(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.root / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "--config", str(self.config), "run", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        return self.daemon

    def run_once(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "--config", str(self.config), "run", "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.daemon is not None
        if self.daemon.poll() is None:
            self.daemon.send_signal(sig)
        code = self.daemon.wait(timeout)
        self.daemon = None
        return code

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    # -- the ledger -------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.ledger.exists():
            return []
        db = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=30)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < len(MIGRATIONS):
                return []  # the daemon has created the file but not yet committed all of its schema
            return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.close()

    def states(self) -> dict[str, str]:
        return dict(self.query("SELECT uuid, state FROM jobs"))  # type: ignore[arg-type]

    def unresolved(self) -> int:
        rows = self.query("SELECT count(*) FROM jobs WHERE state NOT IN ('ok', 'error', 'rejected')")
        return int(rows[0][0]) if rows else -1

    def queue(self, uuids: Iterable[str]) -> None:
        csv = self.root / f"jobs-{time.monotonic_ns()}.csv"
        csv.write_text("uuid,rfc\n" + "".join(f"{u},{RFC}\n" for u in uuids))
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "--config", str(self.config), "import", str(csv)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def mismatches(self) -> list[str]:
        return [
            f"{u}: {s} (intended {intended_outcome(u)})" for u, s in self.states().items() if s != intended_outcome(u)
        ]

    def close(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(10)
        self.sandbox.stop()
        self.imap.stop()


def start_stack(
    root: Path,
    *,
    kind: str = "dovecot",
    notify_delay_s: float = 0.5,
    fault_rate: float = 0.0,
    fault_kinds: tuple[str, ...] = ("http500", "soap_fault", "drop", "slow"),
    schedule: dict[str, float] | None = None,
    extra: str = "",
    seed: int = 1,
) -> Stack:
    """Start IMAP server and simulator, and write the daemon's config (fast schedule)."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "dovecot" and dovecot_available():
        imap = start_dovecot(root / "imap", MAIL_USER, MAIL_PASSWORD)
    else:
        imap = start_pymap(root / "imap", MAIL_USER, MAIL_PASSWORD)
    sandbox = Sandbox(
        SandboxConfig(
            notify_delay_s=notify_delay_s,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            slow_reply_s=3.0,
            seed=seed,
            imap=ImapConfig(imap.host, imap.port, imap.user, imap.password),
        )
    ).start()
    sched = {
        "retry_base_s": 0.2,
        "retry_max_s": 2.0,
        "status_check_after_s": 3.0,
        "stale_after_s": 3600.0,
        "submit_interval_s": 0.3,
        "chase_interval_s": 0.5,
        **(schedule or {}),
    }
    config = write_config(
        root,
        wsdl=sandbox.wsdl_url,
        imap=imap,
        provider_password=PASSWORD,
        notify_email=NOTIFY,
        provider={"timeout_s": 2, "max_concurrency": 16},
        mailbox={"poll_interval_s": 1, "timeout_s": 10},
        schedule=sched,
        extra=extra,
    )
    return Stack(root, imap, sandbox, config)
