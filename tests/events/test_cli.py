"""``events``, ``deliveries`` and ``redeliver`` through the real CLI on a real ledger file."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler.events.outbox import Attempt, Next, Verdict
from reconciler.events.store import OutboxStore
from reconciler.jobs.validation import JobSpec
from reconciler.ledger.store import Ledger

from ..conftest import run_cli

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RFC = "AAA010101AAA"
UUIDS = [f"{c * 8}-BBBB-4BBB-8BBB-BBBBBBBBBBB{c}" for c in "1234"]


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n')
    return path


def seed(tmp_path: Path) -> None:
    async def go() -> None:
        async with await Ledger.open(tmp_path / "ledger.sqlite3") as ledger:
            await ledger.add_jobs([JobSpec(u, RFC, "02", None) for u in UUIDS[:3]], T0, "test")
            store = OutboxStore(ledger)
            await store.register(["erp"], T0)
            await store.fan_out("erp", (), T0)
            due = await store.due("erp", T0, 10)
            await store.record(
                "erp",
                [
                    (due[0], Attempt(ok=True, status=204), Next(Verdict.DELIVERED)),
                    (due[1], Attempt(ok=False, error="timed out after 10s"), Next(Verdict.FAILED)),
                ],
                T0,
            )

    asyncio.run(go())


def test_events_lists_and_filters_the_feed_in_order(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    seed(tmp_path)
    done = run_cli("--config", str(cfg), "events", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(e["seq"], e["type"], e["uuid"]) for e in lines] == [
        (i + 1, "job.queued", u) for i, u in enumerate(UUIDS[:3])
    ]
    since = run_cli("--config", str(cfg), "events", "--json", "--since", lines[0]["id"])
    assert [json.loads(x)["seq"] for x in since.stdout.splitlines()] == [2, 3]
    none = run_cli("--config", str(cfg), "events", "--type", "job.ok")
    assert none.returncode == 0 and none.stdout == "" and "no events" in none.stderr
    bad = run_cli("--config", str(cfg), "events", "--type", "job.okay")
    assert bad.returncode == 2 and "unknown event type 'job.okay'" in bad.stderr
    missing = run_cli("--config", str(cfg), "events", "--since", "evt_nope")
    assert missing.returncode == 2 and "no event 'evt_nope'" in missing.stderr


def test_deliveries_and_redeliver(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    seed(tmp_path)
    stats = json.loads(run_cli("--config", str(cfg), "deliveries", "--json").stdout)
    assert [(s["endpoint"], s["pending"], s["delivered"], s["failed"]) for s in stats] == [("erp", 1, 1, 1)]
    failed = json.loads(run_cli("--config", str(cfg), "deliveries", "--failed", "--json").stdout)
    assert [(f["seq"], f["state"], f["last_error"]) for f in failed] == [(2, "failed", "timed out after 10s")]
    again = run_cli("--config", str(cfg), "redeliver", "2")
    assert again.returncode == 0 and "1 deliveries of 1 events queued again" in again.stdout
    stats = json.loads(run_cli("--config", str(cfg), "deliveries", "--json").stdout)
    assert [(s["pending"], s["delivered"], s["failed"]) for s in stats] == [(2, 1, 0)]
    everything = run_cli("--config", str(cfg), "redeliver", "--since", "0")
    assert "3 deliveries of 3 events queued again" in everything.stdout
    assert run_cli("--config", str(cfg), "redeliver").returncode == 2
    unknown = run_cli("--config", str(cfg), "redeliver", "99")
    assert unknown.returncode == 2 and "no event '99'" in unknown.stderr


def test_follow_prints_events_as_they_are_committed(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    seed(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    with subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--config", str(cfg), "events", "--follow", "--json", "--since", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    ) as proc:
        try:
            added = run_cli("--config", str(cfg), "submit", UUIDS[3], "--rfc", RFC)
            assert added.returncode == 0, added.stderr
            assert proc.stdout is not None
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 30
            line = b""
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if sel.select(timeout=1):
                    line += os.read(proc.stdout.fileno(), 4096)
            sel.close()
            event = json.loads(line.splitlines()[0])
            assert (event["seq"], event["type"], event["uuid"]) == (4, "job.queued", UUIDS[3])
            assert proc.poll() is None  # still following
        finally:
            proc.terminate()
