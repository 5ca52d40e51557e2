"""A misbehaving provider, end to end: the daemon process, real IMAP, the simulator over HTTP.

Every job gets a trusted OK notification (``confirm_with_status = true``), so only the status
call's acuse can decide.  The acuses that are evidence resolve their jobs; the ones that are
not leave their jobs ``awaiting`` with a ``conflict`` event, ``check`` says WARNING, and the
daemon keeps asking.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.acuses import AcuseControl

from ..harness import Stack, start_stack, wait_until
from .support import events_of

OTHER = "5B4B180D-5B6C-4392-B204-252215A1AB84"
GOOD: dict[str, AcuseControl] = {
    "real": AcuseControl(),
    "wrapped": AcuseControl("wrapped", 202),
    "in-mensaje": AcuseControl(in_mensaje=True),
}
REFUSED = AcuseControl(estatus=205)
BAD: dict[str, AcuseControl] = {
    "garbage": AcuseControl("garbage"),
    "html": AcuseControl("html"),
    "null": AcuseControl("null"),
    "absent": AcuseControl("absent"),
    "another-uuid": AcuseControl(names=OTHER),
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", notify_delay_s=0.3, schedule={"status_check_after_s": 1.0})
    yield s
    s.close()


def check(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--config", str(stack.config), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(120)
def test_only_an_acuse_that_says_so_makes_a_job_ok(stack: Stack) -> None:
    uuids = {name: f"{i:08X}-1111-4111-8111-11111111111{i % 10}" for i, name in enumerate([*GOOD, "205", *BAD])}
    for name, control in {**GOOD, "205": REFUSED, **BAD}.items():
        stack.sandbox.service.acuse_for(uuids[name], control)
    stack.queue(uuids.values())
    stack.start_daemon()
    bad = {uuids[name] for name in BAD}

    def settled() -> bool:
        states = stack.states()
        conflicted = {e["uuid"] for e in events_of(stack, "conflict")}
        return (
            all(states.get(uuids[n]) == "ok" for n in GOOD)
            and states.get(uuids["205"]) == "error"
            and bad <= conflicted
        )

    wait_until(settled, 60, "the good acuses to resolve and the bad ones to be flagged")
    # The daemon keeps asking about the disputed ones (with backoff), and never resolves them.
    asked = {u: sum(1 for e in stack.sandbox.record.entries() if e.uuid == u and e.code == 200) for u in bad}
    wait_until(
        lambda: all(
            sum(1 for e in stack.sandbox.record.entries() if e.uuid == u and e.code == 200) > asked[u] for u in bad
        ),
        30,
        "the daemon to ask again about every disputed job",
    )
    result = check(stack)
    assert result.returncode == 1 and "conflicts in the last 72h" in result.stdout, result.stdout
    assert stack.stop_daemon() == 0
    states = stack.states()
    assert {states[u] for u in bad} == {"awaiting"}
    rows = stack.query(
        "SELECT uuid, claim, acuse IS NULL, acuse_sha256 FROM jobs WHERE uuid IN (?, ?, ?, ?, ?)", sorted(bad)
    )
    assert {(claim, no_acuse, digest) for _u, claim, no_acuse, digest in rows} == {("OK", 1, None)}
    reasons = {e["uuid"]: str(e["reason"]) for e in events_of(stack, "conflict")}
    assert "the acuse names another UUID" in reasons[uuids["another-uuid"]]
    assert "not an acuse: root element 'html'" in reasons[uuids["html"]]
    [(message, digest)] = stack.query("SELECT message, acuse_sha256 FROM jobs WHERE uuid = ?", [uuids["205"]])
    assert message.startswith("the SAT refused: EstatusUUID 205") and digest
    assert stack.query("SELECT count(*) FROM jobs WHERE state = 'ok' AND acuse_sha256 IS NULL") == [(0,)]
