"""Logs and monitoring that fit journald, log shippers, Nagios and Prometheus: the real CLI and daemon."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import logs
from reconciler.sandbox.imapserver import free_port

from ..conftest import run_cli
from ..harness import Stack, generated_uuids, start_stack, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("monitoring"), kind="dovecot")
    s.queue(generated_uuids(4, seed=91))
    yield s
    s.close()


def run_once_to(stack: Stack, stderr: Path, *args: str, journal_of: Path | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "JOURNAL_STREAM"))}
    with stderr.open("wb") as err:
        if journal_of is not None:
            st = os.stat(journal_of)
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "--config", str(stack.config), "run", "--once", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            timeout=120,
            check=False,
        )
    return done.returncode


def test_under_journald_every_line_has_its_priority_prefix(stack: Stack, tmp_path: Path) -> None:
    err = tmp_path / "journal.log"
    err.touch()
    assert run_once_to(stack, err, "--log-level", "debug", journal_of=err) == 0
    lines = err.read_text().splitlines()
    assert lines and all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines), lines[:5]
    assert any(line.startswith("<6>INFO reconciler.daemon.service: reconciler started") for line in lines)
    assert any(line.startswith("<7>DEBUG ") for line in lines)


def test_not_the_journal_no_prefix(stack: Stack, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.touch()
    err = tmp_path / "plain.log"
    assert run_once_to(stack, err, journal_of=other) == 0  # JOURNAL_STREAM names another file
    lines = err.read_text().splitlines()
    assert lines and not any(line.startswith("<") for line in lines)
    assert any(" INFO reconciler.daemon.service: reconciler started" in line for line in lines)


def test_log_format_json_is_one_object_per_line(stack: Stack, tmp_path: Path) -> None:
    err = tmp_path / "json.log"
    assert run_once_to(stack, err, "--log-format", "json") == 0
    docs = [json.loads(line) for line in err.read_text().splitlines()]
    assert docs and all(set(d) >= {"time", "level", "logger", "message"} for d in docs)
    assert any(d["message"].startswith("reconciler started") and d["level"] == "info" for d in docs)
    journal = tmp_path / "json-journal.log"
    journal.touch()
    assert run_once_to(stack, journal, "--log-format", "json", journal_of=journal) == 0
    for line in journal.read_text().splitlines():
        assert line.startswith("<"), line
        json.loads(line[3:])


def test_apscheduler_skipped_run_is_debug_not_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    for level, shown in (("info", False), ("debug", True)):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        logs.setup(level)
        logging.getLogger("apscheduler.scheduler").warning(
            'Execution of job "%s" skipped: maximum number of running instances reached (%d)', "submit_pass", 1
        )
        logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
        text = err.getvalue()
        assert ("maximum number of running instances" in text) is shown
        assert ("DEBUG apscheduler.scheduler: Execution of job" in text) is shown
        assert "WARNING apscheduler.scheduler: Run time of job was missed" in text
    logging.getLogger().handlers.clear()


def test_metrics_has_the_process_collector_and_build_info(stack: Stack) -> None:
    from reconciler import __version__

    port = free_port()
    stack.start_daemon(env={"RECONCILER_METRICS__LISTEN": f"127.0.0.1:{port}"})
    try:
        page: list[str] = []

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    page[:] = [r.read().decode()]
            except OSError:
                return False
            return "\nreconciler_jobs{" in page[0]  # a heartbeat has set the counts: the daemon is up

        wait_until(scraped, 60, "the metrics endpoint")
        text = page[0]
        for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
            assert f"\n{name} " in text, name
        assert f'reconciler_build_info{{python="{sys.version.split()[0]}",version="{__version__}"}} 1.0' in text
    finally:
        assert stack.stop_daemon() == 0


def probe(config: Path, *args: str) -> tuple[int, dict[str, object]]:
    done = run_cli("--config", str(config), "check", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.fixture
def ledger_config(tmp_path: Path) -> Path:
    """A ledger with 3,000 queued jobs and a fresh heartbeat and two overdue jobs, written as the daemon would."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "l.db"}"\n')
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("uuid,rfc\n" + "".join(f"{uuidlib.UUID(int=i + 1, version=4)},AAA010101AAA\n" for i in range(3000)))
    assert run_cli("--config", str(cfg), "import", str(jobs)).returncode == 0
    db = sqlite3.connect(tmp_path / "l.db")
    with db:
        db.execute(
            "INSERT INTO facts (key, value, at) VALUES ('heartbeat', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1000 seconds'))",
            (json.dumps({"pid": 1, "interval_s": 600, "mailbox_interval_s": 60, "stopped": False}),),
        )
        db.execute(
            "INSERT INTO facts (key, value, at) VALUES ('mailbox_pass', '{}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        )
        db.execute("UPDATE jobs SET overdue_at = '2026-01-01T00:00:00.000Z' WHERE rowid IN (1, 2)")
    db.close()
    return cfg


def test_check_thresholds(ledger_config: Path) -> None:
    code, doc = probe(ledger_config)
    assert (code, doc["status"]) == (1, "WARNING") and doc["problems"] == ["2 overdue jobs"]
    assert probe(ledger_config, "-w", "overdue=3")[0] == 0
    code, doc = probe(ledger_config, "-c", "overdue=2")
    assert (code, doc["problems"]) == (2, ["2 overdue jobs"])
    code, doc = probe(ledger_config, "-w", "overdue=5", "-w", "heartbeat=500")
    assert code == 1 and re.fullmatch(r"last heartbeat 1\d\d\ds ago", str(doc["problems"][0]))  # type: ignore[index]
    code, doc = probe(ledger_config, "-w", "overdue=5", "-c", "heartbeat=900")
    assert code == 2 and str(doc["problems"][0]).startswith("daemon not running: last heartbeat 1")  # type: ignore[index]
    assert probe(ledger_config, "-w", "overdue=5", "-c", "heartbeat=5000")[0] == 0
    assert probe(ledger_config, "-w", "overdue=5")[0] == 0  # default: three of the daemon's 600 s intervals
    for bad in (["-w", "overdue=x"], ["-w", "load=3"], ["-w", "overdue=5", "-c", "overdue=2"], ["-c", "heartbeat=0"]):
        done = run_cli("--config", str(ledger_config), "check", *bad)
        assert done.returncode == 2 and "Error: Invalid value for" in done.stderr, bad


def test_check_integrity_finds_a_corrupted_page(ledger_config: Path, tmp_path: Path) -> None:
    assert probe(ledger_config, "-w", "overdue=5", "--integrity")[0] == 0
    ledger = tmp_path / "l.db"
    db = sqlite3.connect(ledger)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (page,) = db.execute(
        "SELECT pageno FROM dbstat WHERE name = 'events_uuid' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 5"
    ).fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with ledger.open("r+b") as f:  # a page of an index the probe's queries never read
        f.seek((page - 1) * page_size + 8)
        f.write(os.urandom(page_size - 8))
    code, doc = probe(ledger_config, "-w", "overdue=5")
    assert code == 0, doc  # without --integrity the damage goes unseen: that is why the flag exists
    code, doc = probe(ledger_config, "-w", "overdue=5", "--integrity")
    assert (code, doc["status"]) == (2, "CRITICAL"), doc
    assert str(doc["line"]).startswith("RECONCILER CRITICAL - ledger integrity check failed: ")
