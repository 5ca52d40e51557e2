"""Start-up that does not block, and exit codes cron can trust: the real daemon, Dovecot and the simulator.

READY=1 comes once the ledger is open, whatever the mailbox does; a refused login is a CRITICAL
``check`` line and is retried slowly; ``run --once`` says with its exit status whether the breaker
is open or a server did not answer.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.mailbox.login import FIRST_RETRY_S, retry_delay

from ..conftest import run_cli
from ..harness import MAIL_PASSWORD, Stack, generated_uuids, start_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", kind="dovecot")
    yield s
    s.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = f"/tmp/rn-{uuidlib.uuid4().hex[:12]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(60)
        try:
            yield sock, path
        finally:
            Path(path).unlink(missing_ok=True)


def wait_ready(sock: socket.socket) -> None:
    """Read notifications until READY=1 (the socket's timeout is the deadline)."""
    while b"READY=1" not in sock.recv(4096).split(b"\n"):
        pass


def check(stack: Stack, *args: str) -> tuple[int, dict[str, object]]:
    done = run_cli("--config", str(stack.config), "check", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def fact(stack: Stack, key: str) -> dict[str, object] | None:
    rows = stack.query("SELECT value FROM facts WHERE key = ?", (key,))
    return json.loads(rows[0][0]) if rows else None


def test_login_retry_waits_a_minute_then_doubles_up_to_the_cap() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, 1800.0, rng) for n in range(1, 9)]
    assert FIRST_RETRY_S / 2 <= delays[0] <= FIRST_RETRY_S
    assert all(d >= 30.0 for d in delays)  # never the outage backoff's one second
    assert max(delays) <= 1800.0 and delays[-1] >= 900.0
    assert retry_delay(3, 5.0, rng) <= 5.0  # a smaller cap (tests) caps the first wait too


def test_wrong_mailbox_password_at_start_ready_submits_check_critical_then_recovers(
    stack: Stack, notify: tuple[socket.socket, str]
) -> None:
    sock, address = notify
    secret = stack.root / "secrets" / "mailbox"
    secret.write_text("Wrong-Mailbox-Password-4471")
    jobs = generated_uuids(6, seed=81)
    stack.queue(jobs)
    stack.start_daemon(env={"NOTIFY_SOCKET": address, "RECONCILER_MAILBOX__LOGIN_RETRY_MAX_S": "1"})
    wait_ready(sock)  # READY although the mailbox refuses us
    wait_until(lambda: (fact(stack, "mailbox_login") or {}).get("refused") is True, 30, "the refusal in the ledger")
    # Submissions do not wait for the mailbox.
    wait_until(lambda: set(stack.states().values()) <= {"awaiting", "ok", "error"}, 30, "the jobs to be sent")
    code, probe = check(stack)
    assert code == 2 and probe["status"] == "CRITICAL", probe
    line = str(probe["line"])
    assert "mailbox login refused" in line and "[AUTHENTICATIONFAILED]" in line, line
    assert "b'" not in line and "not running" not in line and "Wrong-Mailbox-Password-4471" not in line
    assert "Wrong-Mailbox-Password-4471" not in stack.log_text()
    # Fixed: the daemon logs in by itself (the password file is read on every login).
    secret.write_text(MAIL_PASSWORD)
    wait_until(lambda: fact(stack, "mailbox_login") is None, 60, "the login to succeed")
    wait_until(lambda: stack.unresolved() == 0, 90, "the jobs to resolve from the mailbox")
    assert stack.mismatches() == []
    _, probe = check(stack)
    assert "mailbox login refused" not in str(probe["line"])
    assert stack.stop_daemon() == 0


def test_mailbox_down_at_start_then_up(stack: Stack, notify: tuple[socket.socket, str]) -> None:
    sock, address = notify
    stack.imap.stop()
    jobs = generated_uuids(4, seed=82)
    stack.queue(jobs)
    stack.start_daemon(env={"NOTIFY_SOCKET": address})
    wait_ready(sock)
    wait_until(lambda: set(stack.states().values()) <= {"awaiting", "ok", "error"}, 30, "the jobs to be sent")
    wait_until(lambda: fact(stack, "heartbeat") is not None, 30, "a heartbeat")
    _, probe = check(stack)
    assert "not running" not in str(probe["line"]) and "login refused" not in str(probe["line"])
    assert probe["daemon"] is not None and probe["daemon"]["running"] is True  # type: ignore[index]
    stack.imap.start()
    wait_until(lambda: stack.unresolved() == 0, 120, "the jobs to resolve once the mailbox is back")
    assert stack.mismatches() == []
    assert stack.stop_daemon() == 0


def test_run_once_exit_codes(stack: Stack) -> None:
    stack.queue(generated_uuids(3, seed=83))
    # The mailbox is down: the pass still submits, and says the mailbox did not answer.
    stack.imap.stop()
    done = stack.run_once()
    assert done.returncode == 4, done.stderr
    assert "mailbox pass skipped" in done.stderr and "Traceback" not in done.stderr
    assert set(stack.states().values()) <= {"awaiting", "ok", "error"}
    stack.imap.start()
    # The provider's endpoint does not answer.
    stack.queue(generated_uuids(2, seed=84))
    text = stack.config.read_text()
    dead = stack.root / "dead.toml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead.write_text(text.replace("[provider]\n", f'[provider]\nendpoint = "http://127.0.0.1:{port}/x"\n', 1))
    done = run_cli("--config", str(dead), "run", "--once")
    assert done.returncode == 4, done.stderr
    # All well: 0.
    done = stack.run_once()
    assert done.returncode == 0, done.stderr
    # The provider refuses the account: the breaker opens, and stays open on the next run.
    (stack.root / "secrets" / "provider").write_text("wrong-provider-password")
    stack.queue(generated_uuids(1, seed=85))
    done = stack.run_once()
    assert done.returncode == 3, done.stderr
    done = stack.run_once()
    assert done.returncode == 3, done.stderr


def test_metrics_port_in_use_is_exit_1_not_2(stack: Stack) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"RECONCILER_METRICS__LISTEN": f"127.0.0.1:{port}"}
        preflight = run_cli("--config", str(stack.config), "config", "check", env=env)
        assert preflight.returncode == 2
        assert f"FAIL metrics  metrics.listen 127.0.0.1:{port}: cannot listen: Address already in use" in (
            preflight.stdout
        )
        done = run_cli(
            "--config", str(stack.config), "run", "--once", env={"RECONCILER_METRICS__LISTEN": f"127.0.0.1:{port}"}
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"reconciler: metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "listen",
    [
        "127.0.0.1:99999999999999999999",
        "127.0.0.1:http",
        "127.0.0.1",
        "127.0.0.1:0",
        ":-1",
        "a b:80",
        "hé:80",
        "x" * 300 + ":1",
    ],
)
def test_config_check_validates_metrics_listen_in_one_line(stack: Stack, listen: str) -> None:
    done = run_cli("--config", str(stack.config), "config", "check", env={"RECONCILER_METRICS__LISTEN": listen})
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr and "OverflowError" not in done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("FAIL")]
    assert line.startswith("FAIL config   metrics.listen: expected host:port")


def test_check_as_a_user_without_access_is_one_line(stack: Stack) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    stack.queue(generated_uuids(1, seed=86))
    assert stack.ledger.parent.stat().st_mode & 0o777 == 0o700
    public = Path(tempfile.mkdtemp(prefix="reconciler-public-"))
    try:
        public.chmod(0o755)
        config = public / "config.toml"
        config.write_text(stack.config.read_text())
        config.chmod(0o644)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        cmd += [sys.executable, "-m", "reconciler", "--config", str(config), "check"]
        _as_nobody_eight_times(cmd, stack)
    finally:
        shutil.rmtree(public)


def _as_nobody_eight_times(cmd: list[str], stack: Stack) -> None:
    for _ in range(8):  # the aiosqlite race showed up intermittently
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd="/")
        assert done.returncode == 3, done.stdout + done.stderr
        assert done.stdout == f"RECONCILER UNKNOWN - ledger {stack.ledger}: Permission denied\n"
        assert done.stderr == "", done.stderr


def test_config_check_reports_a_refused_login_as_text_and_records_nothing(stack: Stack) -> None:
    (stack.root / "secrets" / "mailbox").write_text("Wrong-Mailbox-Password-5512")
    done = run_cli("--config", str(stack.config), "config", "check")
    assert done.returncode == 2
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("FAIL")]
    assert line.startswith("FAIL mailbox  mailbox 127.0.0.1:")
    assert "login refused for facturas: [AUTHENTICATIONFAILED] Authentication failed." in line
    assert "b'" not in line and "Wrong-Mailbox-Password-5512" not in done.stdout + done.stderr
    assert fact(stack, "mailbox_login") is None  # a trial is not the daemon's state: check stays as it was
