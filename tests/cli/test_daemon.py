"""The daemon's commands through the real CLI: ``run --once --json`` on a whole loopback stack, ``resume --json``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox import UUIDS_204

from ..conftest import run_cli
from ..harness import TESTING_UUIDS, Stack, generated_uuids, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack")
    yield s
    s.close()


@pytest.mark.timeout(180)
def test_run_once_json_reports_what_the_pass_did(stack: Stack) -> None:
    uuids = TESTING_UUIDS + generated_uuids(6, seed=31)
    stack.queue(uuids)
    command = [sys.executable, "-m", "reconciler", "--config", str(stack.config), "run", "--once", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["started"], report["fatal"]) == (True, None)
    totals = report["totals"]
    replies = stack.query("SELECT count(*) FROM events WHERE kind = 'reply'")[0][0]
    assert totals["sent"] == len(uuids) == replies
    assert totals["rejected"] == len(UUIDS_204) and totals["accepted"] == len(uuids) - len(UUIDS_204)
    assert totals["retried"] == 0 and set(totals) == {
        "sent",
        "accepted",
        "rejected",
        "retried",
        "confirmed",
        "status_calls",
        "requeued",
    }
    assert "reconciler stopped: sent" in done.stderr  # the log stays on stderr, the JSON alone on stdout


def test_resume_json_says_whether_it_cleared_the_breaker(tmp_path: Path) -> None:
    ledger = tmp_path / "state" / "ledger.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[ledger]\npath = "{ledger}"\n')
    env = {"RECONCILER_CONFIG": str(config)}
    assert run_cli("submit", "71452784-AFC7-4BE5-8623-3BA1436D573B", "--rfc", "AAA010101AAA", env=env).returncode == 0
    with sqlite3.connect(ledger) as db:
        db.execute("INSERT INTO facts VALUES ('breaker', '{\"code\": 601}', '2026-01-01T00:00:00.000Z')")
    first = run_cli("resume", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"cleared": True}
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT count(*) FROM facts WHERE key = 'breaker'").fetchone()[0] == 0
        detail = db.execute("SELECT detail FROM events WHERE kind = 'breaker'").fetchone()[0]
    assert json.loads(detail) == {"action": "cleared", "reason": "reconciler resume"}
    again = run_cli("resume", "--json", env=env)
    assert json.loads(again.stdout) == {"cleared": False}
    assert run_cli("resume", env=env).stdout == "circuit breaker was not open; nothing changed\n"
