"""The ledger's one event writer, rows read by column name, and SQL that takes the terminal states from states.py."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from reconciler.jobs.records import Change, Job, dumps
from reconciler.jobs.states import TERMINAL, State, Trigger
from reconciler.jobs.validation import job_spec
from reconciler.ledger import eventlog
from reconciler.ledger.store import Ledger

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
U = "71452784-AFC7-4BE5-8623-3BA1436D573B"


def product_sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py") if "sandbox" not in p.parts}


def test_only_the_event_log_writes_event_rows() -> None:
    writers = [p.name for p, text in product_sources().items() if re.search(r"INSERT\s+INTO\s+events\b", text, re.I)]
    assert writers == ["eventlog.py"]


def test_no_hand_written_list_of_terminal_states_in_sql() -> None:
    terminal = "|".join(sorted(str(s) for s in TERMINAL))
    listed = re.compile(rf"IN\s*\(\s*'(?:{terminal})'\s*,\s*'(?:{terminal})'\s*,\s*'(?:{terminal})'\s*\)", re.I)
    assert [p.name for p, text in product_sources().items() if listed.search(text)] == []


async def test_events_keep_their_order_and_exact_detail_across_chunks(tmp_path: Path) -> None:
    """More events than one statement carries: every row, in order, detail as dumps writes it."""
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([job_spec(U, "AAA010101AAA")], T0, "test")
    details = [{"n": i, "text": 'ñ\x1b\n\u202e"q"', "f": 0.1 + i, "none": None} for i in range(eventlog.ROWS + 3)]
    async with aiosqlite.connect(tmp_path / "l.db") as adb:
        await eventlog.append(adb, "2026-01-01T00:00:00.000Z", [(U, "probe", "test", d) for d in details])
        await adb.commit()
    db = sqlite3.connect(tmp_path / "l.db")
    rows = db.execute("SELECT uuid, kind, source, detail FROM events WHERE kind = 'probe' ORDER BY id").fetchall()
    assert [r[3] for r in rows] == [dumps(d) for d in details]
    assert {r[:3] for r in rows} == {(U, "probe", "test")}
    assert [json.loads(r[3])["n"] for r in rows] == list(range(len(details)))


async def test_jobs_are_read_by_column_name_whatever_the_order(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([job_spec(U, "AAA010101AAA")], T0, "test")
        await ledger.apply([Change(U, Trigger.CLAIM, "test", {"code": 201, "checks": 3})], T0)
        expected = await ledger.get_job(U)
    assert expected.state == State.SUBMITTING and expected.code == 201 and expected.checks == 3
    db = sqlite3.connect(tmp_path / "l.db")
    db.row_factory = sqlite3.Row
    columns = [c if c != "has_acuse" else "acuse IS NOT NULL AS has_acuse" for c in Job.COLUMNS]
    for seed in range(5):
        random.Random(seed).shuffle(columns)
        rows = db.execute(f"SELECT 'extra' AS extra, {', '.join(columns)} FROM jobs").fetchall()  # noqa: S608
        assert Job.from_rows(rows) == [expected]
    without = f"SELECT {', '.join(c for c in Job.COLUMNS if c != 'has_acuse')} FROM jobs"  # noqa: S608
    with pytest.raises(ValueError, match="^a job row lacks the columns has_acuse$"):
        Job.from_rows(db.execute(without).fetchall())


async def test_overdue_skips_every_terminal_state(tmp_path: Path) -> None:
    uuids = {state: f"{i:08X}-0000-4000-8000-000000000000" for i, state in enumerate(State)}
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([job_spec(u, "AAA010101AAA") for u in uuids.values()], T0, "test")
    with sqlite3.connect(tmp_path / "l.db") as db:
        db.executemany("UPDATE jobs SET state = ? WHERE uuid = ?", [(str(s), u) for s, u in uuids.items()])
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        flagged = await ledger.mark_overdue(T0 + timedelta(days=9), "9999")
        assert flagged == len(State) - len(TERMINAL) == await ledger.overdue_count()
        for state, u in uuids.items():
            assert ((await ledger.get_job(u)).overdue_at is None) == (state in TERMINAL), state
