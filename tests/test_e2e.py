"""Issue 5's end-to-end test: simulator, a real IMAP server and the daemon as a subprocess."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from email.utils import make_msgid
from pathlib import Path

import pytest

from reconciler.sandbox import UUIDS_211

from .harness import TESTING_UUIDS, Stack, generated_uuids, start_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack")
    yield s
    s.close()


def forged(uuid: str, sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: facturas@example.com\r\nSubject: Cancelacion\r\n"
        f"Message-ID: {make_msgid(domain='forger.example')}\r\nX-SFService: Cancelar\r\n"
        f"X-UUIDCancelacion: {uuid}\r\nX-StatusCancelacion: OK\r\n\r\nok\r\n"
    ).encode()


@pytest.mark.timeout(240)
def test_two_hundred_jobs_end_as_the_simulator_intends_then_faults_then_forgery(stack: Stack) -> None:
    first = TESTING_UUIDS + generated_uuids(190, seed=5)
    stack.queue(first)
    stack.start_daemon()
    wait_until(lambda: stack.unresolved() == 0, 90, "200 jobs to resolve")
    assert stack.mismatches() == []
    no_acuse = stack.query("SELECT uuid FROM jobs WHERE state = 'ok' AND acuse IS NULL")
    assert no_acuse == []
    assert set(stack.sandbox.record.accepted().values()) == {1}
    # 211 UUIDs got no email: the chaser resolved them with the status call.
    chased = stack.query("SELECT DISTINCT uuid FROM events WHERE kind = 'status' AND source = 'chaser'")
    assert {u for (u,) in chased} >= set(UUIDS_211)

    # The same again with 20% injected provider faults.
    stack.sandbox.set_faults(0.2, ("http500", "soap_fault", "drop", "slow"))
    second = generated_uuids(200, seed=6)
    stack.queue(second)
    wait_until(lambda: stack.unresolved() == 0, 120, "the faulty batch to resolve")
    stack.sandbox.set_faults(0.0)
    assert stack.mismatches() == []
    transient = stack.query("SELECT count(*) FROM events WHERE kind = 'reply' AND detail LIKE '%transient%'")
    assert transient[0][0] > 0
    assert set(stack.sandbox.record.accepted().values()) == {1}

    # A forged OK for a job that ended in ERROR (and one with a spoofed display name): nothing changes.
    target = next(u for u in second if u.endswith("E"))
    before = stack.states()
    stack.imap.deliver(forged(target, "notificaciones@solucionfactible.com.mx"))
    stack.imap.deliver(forged(target, '"notificaciones@solucionfactible.com" <evil@attacker.example>'))
    wait_until(
        lambda: stack.query("SELECT count(*) FROM events WHERE kind = 'untrusted'")[0][0] >= 2,
        30,
        "the forgeries to be recorded",
    )
    assert stack.states() == before
    reasons = [
        r for (r,) in stack.query("SELECT json_extract(detail, '$.reason') FROM events WHERE kind = 'untrusted'")
    ]
    assert all("allowed_senders" in r for r in reasons), reasons

    assert stack.stop_daemon(signal.SIGTERM) == 0
    log = stack.log_text()
    assert "reconciler stopped: sent" in log
    assert "Traceback" not in log


def test_run_once_converges_for_cron_users(stack: Stack) -> None:
    uuids = TESTING_UUIDS + generated_uuids(20, seed=8)
    stack.queue(uuids)
    runs = 0

    def one_pass() -> bool:
        nonlocal runs
        result = stack.run_once()
        runs += 1
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return stack.unresolved() == 0

    wait_until(one_pass, 90, "cron-style passes to resolve every job", poll=0.5)
    assert stack.mismatches() == [] and runs >= 2
    heartbeat = stack.query("SELECT json_extract(value, '$.mode') FROM facts WHERE key = 'heartbeat'")
    assert heartbeat == [("once",)]
