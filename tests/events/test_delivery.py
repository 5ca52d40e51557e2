"""Webhooks and hooks against the real daemon, simulator, Dovecot and a real loopback receiver.

Every delivery is verified by the official ``standardwebhooks`` package; retry
schedules are compressed by configuration, never by sleeping real time.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import sqlite3
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ..conftest import run_cli
from ..harness import Stack, generated_uuids, start_stack, wait_until
from .receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"reconciler-test-webhook-key!").decode()


def webhook_config(receiver: Receiver, *, timeout_s: float = 2.0, concurrency: int = 4, extra: str = "") -> str:
    return f"""[events]
poll_interval_s = 0.2
[[webhooks]]
url = "{receiver.url}"
secret = "{SECRET}"
timeout_s = {timeout_s}
concurrency = {concurrency}
{extra}"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def outbox(stack: Stack) -> list[tuple[int, str, str, str]]:
    return stack.query("SELECT seq, id, type, uuid FROM outbox ORDER BY seq")  # type: ignore[return-value]


def pending(stack: Stack) -> int:
    rows = stack.query("SELECT count(*) FROM deliveries WHERE state != 'delivered'")
    return int(rows[0][0]) if rows else -1


def settled(stack: Stack) -> bool:
    return stack.unresolved() == 0 and bool(outbox(stack)) and pending(stack) == 0 and _fanned_out(stack)


def _fanned_out(stack: Stack) -> bool:
    rows = stack.query("SELECT min(cursor) >= (SELECT max(seq) FROM outbox) FROM endpoints")
    return bool(rows and rows[0][0])


def assert_every_event_arrived_verified_and_in_order(stack: Stack, receiver: Receiver) -> None:
    rows = outbox(stack)
    got = receiver.snapshot()
    assert all(d.verified for d in got), "a delivery failed standardwebhooks verification"
    first: dict[str, int] = {}
    for i, d in enumerate(got):
        first.setdefault(d.id, i)
    assert {r[1] for r in rows} <= set(first), "an outbox event never reached the receiver"
    by_job: dict[str, list[tuple[int, str]]] = {}
    for seq, id_, _type, uuid in rows:
        by_job.setdefault(uuid, []).append((seq, id_))
    for uuid, events in by_job.items():
        arrival = [first[i] for _s, i in sorted(events)]
        assert arrival == sorted(arrival), f"events of {uuid} arrived out of order"
    bodies: dict[str, dict[str, object]] = {}
    for d in got:  # a duplicate is the same event: same id, same content
        assert bodies.setdefault(d.id, d.body) == d.body
    states = stack.states()
    for uuid, state in states.items():
        kinds = [t for _s, _i, t, u in rows if u == uuid]
        assert kinds[0] == "job.queued" and kinds[-1] == f"job.{state}", (uuid, kinds)


def outbox_worker(daemon_pid: int) -> psutil.Process:
    """The daemon's one child: the outbox worker, delivering in a process of its own."""
    children: list[psutil.Process] = []
    wait_until(lambda: bool(children.extend(psutil.Process(daemon_pid).children()) or children), 30, "the worker")
    [worker] = children
    assert "reconciler.events" in worker.cmdline()
    return worker


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def test_receiver_down_then_back_gets_every_state_change_signed_and_in_order(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.stop()  # down from the start: the port stays ours
    port = free_port()
    metrics = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    stack = start_stack(tmp_path, extra=metrics + webhook_config(receiver))
    try:
        stack.queue(generated_uuids(12, seed=15))
        stack.start_daemon()
        wait_until(lambda: stack.unresolved() == 0, 90, "all jobs to end")
        wait_until(
            lambda: (stack.query("SELECT count(*) FROM deliveries WHERE attempts >= 2") or [(0,)])[0][0] > 0,
            60,
            "failed attempts to be retried while the receiver is down",
        )
        assert not receiver.deliveries
        name = receiver.url.split("?")[0]
        wait_until(
            lambda: f'reconciler_deliveries{{endpoint="{name}",state="pending"}}' in scrape(port), 60, "pending metric"
        )
        receiver.start()
        wait_until(lambda: settled(stack), 90, "every event to be delivered once the receiver is back")
        assert_every_event_arrived_verified_and_in_order(stack, receiver)
        total = len(outbox(stack))
        wait_until(
            lambda: f'reconciler_deliveries{{endpoint="{name}",state="delivered"}} {total}.0' in scrape(port),
            60,
            "the delivered metric",
        )
        assert stack.stop_daemon() == 0
        log = stack.log_text()
        assert "retrying at" in log and "t0k3n" not in log  # the URL's query never reaches the log
        done = run_cli("--config", str(stack.config), "deliveries", "--json")
        assert done.returncode == 0, done.stderr
        [stat] = json.loads(done.stdout)
        assert stat["pending"] == 0 and stat["delivered"] == len(outbox(stack)) and stat["failed"] == 0
    finally:
        stack.close()


def test_a_410_disables_the_endpoint_and_check_says_so(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 410
    stack = start_stack(tmp_path, extra=webhook_config(receiver, concurrency=1))
    try:
        stack.queue(generated_uuids(3, seed=16))
        stack.start_daemon()
        wait_until(lambda: stack.unresolved() == 0, 90, "all jobs to end")
        wait_until(lambda: bool(stack.query("SELECT 1 FROM endpoints WHERE disabled_at IS NOT NULL")), 30, "disable")
        assert len(receiver.deliveries) == 1  # nothing more is sent to an endpoint that said 410
        wait_until(
            lambda: "disabled" in run_cli("--config", str(stack.config), "check").stdout, 60, "check to report it"
        )
        done = run_cli("--config", str(stack.config), "check")
        assert done.returncode >= 1 and "410" in done.stdout
        assert "410 Gone" in stack.log_text()
        receiver.status = 200
        again = run_cli("--config", str(stack.config), "redeliver", "--enable", receiver.url.split("?")[0])
        assert again.returncode == 0, again.stderr
        wait_until(lambda: settled(stack), 60, "the queued events to go out once enabled again")
        assert_every_event_arrived_verified_and_in_order(stack, receiver)
    finally:
        stack.close()


def test_a_slow_receiver_past_timeout_gets_the_same_id_again(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay_s = 1.5
    stack = start_stack(tmp_path, extra=webhook_config(receiver, timeout_s=0.5, concurrency=2))
    try:
        stack.queue(generated_uuids(2, seed=17))
        stack.start_daemon()
        wait_until(lambda: len(receiver.deliveries) >= 2, 60, "timed-out attempts to reach the receiver")
        slow_ids = set(receiver.ids())
        receiver.delay_s = 0
        wait_until(lambda: settled(stack), 90, "delivery once the receiver is fast")
        later = receiver.ids()
        counts = {i: later.count(i) for i in slow_ids}  # each timed-out event came again, same webhook-id
        assert all(n >= 2 for n in counts.values()), counts
        assert "timed out after 0.5s" in stack.log_text()
        assert_every_event_arrived_verified_and_in_order(stack, receiver)
    finally:
        stack.close()


HOOK = """
import json, os, sys
from pathlib import Path
state = Path(sys.argv[1])
event = json.load(sys.stdin)
seen = state / event["id"]
env = {k: v for k, v in os.environ.items()}
with open(state / "calls.jsonl", "a") as f:
    f.write(json.dumps({"id": event["id"], "env": env, "type": event["type"]}) + "\\n")
if not seen.exists():
    seen.touch()
    print("first try for " + event["id"] + " fails\\nsecond line")
    sys.exit(3)
"""


def test_a_hook_that_fails_then_succeeds_gets_every_event_with_its_fields(tmp_path: Path) -> None:
    script, state = tmp_path / "hook.py", tmp_path / "hookstate"
    script.write_text(HOOK)
    state.mkdir()
    extra = f"""[events]
poll_interval_s = 0.2
[[hooks]]
command = ["{sys.executable}", "{script}", "{state}"]
timeout_s = 20
"""
    stack = start_stack(tmp_path / "stack", extra=extra)
    try:
        stack.queue(generated_uuids(3, seed=18))
        stack.start_daemon(env={"RECONCILER_PROVIDER__USUARIO": "testing@solucionfactible.com"})
        wait_until(lambda: settled(stack), 90, "every event delivered to the hook")
        calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
        rows = outbox(stack)
        assert {r[1] for r in rows} == {c["id"] for c in calls}
        for id_ in {c["id"] for c in calls}:
            mine = [c for c in calls if c["id"] == id_]
            assert len(mine) == 2  # exit 3 first, exit 0 on the retry
            env = mine[1]["env"]
            assert env["RECONCILER_EVENT_ID"] == id_ and env["RECONCILER_EVENT_TYPE"] == mine[1]["type"]
            assert env["RECONCILER_EVENT_UUID"] and env["RECONCILER_EVENT_RFC_EMISOR"]
            assert not [k for k in env if k.startswith("RECONCILER_") and not k.startswith("RECONCILER_EVENT_")]
            assert "CREDENTIALS_DIRECTORY" not in env
        log = stack.log_text()
        assert "exit status 3" in log and "fails\\nsecond line" in log
    finally:
        stack.close()


def test_kill_9_mid_delivery_loses_nothing_and_duplicates_keep_their_id(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay_s = 0.3
    stack = start_stack(tmp_path, extra=webhook_config(receiver, concurrency=2))
    try:
        stack.queue(generated_uuids(16, seed=19))
        stack.start_daemon()
        wait_until(lambda: len(receiver.deliveries) >= 6, 90, "deliveries under way")
        assert stack.daemon is not None
        worker = outbox_worker(stack.daemon.pid)
        stack.stop_daemon(signal.SIGKILL)
        # Orphaned by the kill, the worker sees EOF on its stdin and ends its attempts in flight.
        wait_until(lambda: gone(worker), 30, "the orphaned outbox worker to exit")
        stack.start_daemon()
        wait_until(lambda: settled(stack), 120, "every event delivered after the restart")
        assert stack.daemon is not None
        worker = outbox_worker(stack.daemon.pid)
        assert stack.stop_daemon() == 0
        assert gone(worker), "a clean stop waits for the outbox worker"
        # ... which ended on its own when its stdin closed, not killed after the grace period.
        assert "still in flight at stop" not in stack.log_text()
        assert_every_event_arrived_verified_and_in_order(stack, receiver)
        db = sqlite3.connect(stack.ledger)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    finally:
        stack.close()
