"""A hostile provider and a hostile sender against the real daemon (subprocess, simulator over HTTP, Dovecot).

The simulator answers chosen UUIDs with a 50 MB reply, a status that overflows 64 bits, a
status that is not a number, and messages carrying a newline or a spreadsheet formula; a
mail whose From and Message-ID hold rich markup arrives for another job.  The daemon keeps
running, every such job stays queued with an event saying why, the log has one line per
record, and the read commands show all of it literally.
"""

from __future__ import annotations

import csv
import io
import signal
import uuid as uuidlib

import pytest

from ..conftest import run_cli
from ..harness import Stack, wait_until
from .support import events_of

FORGED_LINE = "ERROR reconciler.daemon.loops: forged line"
FORMULA = '=HYPERLINK("https://evil.example/","ver acuse")'
MARKUP_FROM = "[/]evil[bold]@attacker.example"
MARKUP_MID = "<[link=https://evil.example/]x[/link]@forgery.test>"


def new_uuid() -> str:
    return str(uuidlib.uuid4()).upper()[:-1] + "1"  # never ends in E: the simulator would end it in ERROR


def markup_mail(uuid: str) -> bytes:
    return (
        f"From: {MARKUP_FROM}\r\nTo: facturas@example.com\r\nSubject: Cancelacion {uuid}\r\n"
        f"Date: Mon, 24 Nov 2025 07:02:03 +0000\r\nMessage-ID: {MARKUP_MID}\r\n"
        f"X-SFService: Cancelar\r\nX-UUIDCancelacion: {uuid}\r\nX-StatusCancelacion: OK\r\n\r\nok\r\n"
    ).encode()


def replies(stack: Stack, uuid: str, op: str) -> list[str]:
    kind = "reply" if op == "cancelarAsincrono" else "status"
    return [str(e.get("message")) for e in events_of(stack, kind) if e["uuid"] == uuid and e.get("op") == op]


@pytest.mark.timeout(180)
def test_hostile_replies_and_markup_leave_the_daemon_running_and_the_jobs_queued(stack: Stack) -> None:
    huge, overflow, not_a_number, newline, formula, markup, late = (new_uuid() for _ in range(7))
    sb = stack.sandbox
    sb.hostile.set(huge, size=50_000_000, chunked=True)
    sb.hostile.set(overflow, status="99999999999999999999")
    sb.hostile.set(not_a_number, status="200.0")
    sb.hostile.set(newline, status="987", mensaje=f"hola\n{FORGED_LINE}")
    sb.hostile.set(formula, status="987", mensaje=FORMULA)
    sb.service.notify_delay_s = 3600  # `late` stays in process: the chaser asks about it
    stack.queue([huge, overflow, not_a_number, newline, formula, markup, late])
    stack.imap.deliver(markup_mail(markup))
    daemon = stack.start_daemon()

    wait_until(lambda: stack.states().get(late) == "awaiting", 30, "the ordinary job to be accepted")
    sb.hostile.set(late, status="99999999999999999999")  # now the status call answers the overflow
    expected = {
        huge: "reply larger than 2097152 bytes (provider.max_reply_bytes)",
        overflow: "malformed reply: status 99999999999999999999 is not a 32-bit integer",
        not_a_number: "malformed reply: no status code (missing, or not an integer)",
        newline: f"hola\n{FORGED_LINE}",
        formula: FORMULA,
    }

    def retried() -> bool:
        return all(replies(stack, u, "cancelarAsincrono").count(m) >= 2 for u, m in expected.items())

    wait_until(retried, 60, "every hostile reply to be retried")
    wait_until(
        lambda: expected[overflow] in replies(stack, late, "getStatusCancelacionAsincrona"),
        60,
        "the chaser's status call to get the overflowing code",
    )
    wait_until(lambda: any(e["uuid"] == markup for e in events_of(stack, "untrusted")), 30, "the markup mail")
    assert daemon.poll() is None, "the daemon died"
    assert stack.stop_daemon(signal.SIGTERM) == 0

    states = stack.states()
    assert {u: states[u] for u in expected} == dict.fromkeys(expected, "queued")
    assert states[late] == "awaiting"
    codes = dict(stack.query("SELECT uuid, code FROM jobs"))  # type: ignore[arg-type]
    assert codes[overflow] is None and codes[not_a_number] is None and codes[newline] == 987

    log = stack.log_text()
    assert "Traceback" not in log and "OverflowError" not in log
    for line in log.splitlines():
        assert not line.startswith(FORGED_LINE), "a provider message forged a log line"
        if "forged line" in line:
            assert "hola\\nERROR reconciler.daemon.loops: forged line" in line

    env = {"RECONCILER_CONFIG": str(stack.config)}
    shown = run_cli("status", markup, env=env)
    assert shown.returncode == 0, shown.stderr
    assert MARKUP_FROM in shown.stdout and "[link=https://evil.example/]x[/link]" in shown.stdout
    exported = run_cli("export", "--format", "csv", env=env)
    assert exported.returncode == 0, exported.stderr
    rows = {r["uuid"]: r for r in csv.DictReader(io.StringIO(exported.stdout, newline=""))}
    assert rows[formula]["message"] == "'" + FORMULA
    assert rows[newline]["message"] == f"hola\n{FORGED_LINE}"  # quoted by the CSV writer: still one cell
