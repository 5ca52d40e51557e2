from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import JobNotFoundError, LedgerError
from reconciler.jobs.notices import SeenMessage
from reconciler.jobs.records import Change
from reconciler.jobs.states import State, Trigger
from reconciler.jobs.validation import job_spec
from reconciler.ledger.schema import MIGRATIONS
from reconciler.ledger.store import Ledger
from reconciler.mailbox.watcher import apply

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
U1 = "71452784-AFC7-4BE5-8623-3BA1436D573B"
U2 = "E329DD15-7D0B-44E9-A204-51A7443D1FBE"


def spec(u: str = U1):  # type: ignore[no-untyped-def]
    return job_spec(u, "AAA010101AAA")


async def test_created_private_with_directory_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "ledger.db"
    async with await Ledger.open(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    async with await Ledger.open(path):  # reopening is a no-op
        pass


async def test_open_refuses_missing_when_not_creating_and_newer_schema(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not found"):
        await Ledger.open(tmp_path / "absent.db", create=False)
    path = tmp_path / "l.db"
    async with await Ledger.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(LedgerError, match="newer than this reconciler knows"):
        await Ledger.open(path)


async def test_garbage_file_is_a_clear_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match=f"ledger {path}: file is not a database"):
        await Ledger.open(path)


async def test_add_is_idempotent_and_events_record_creation(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        first = await ledger.add_jobs([spec(U1), spec(U2)], T0, "test")
        again = await ledger.add_jobs([spec(U1)], T0, "test")
        assert (first.added, first.existing, again.added, again.existing) == (2, [], 0, [U1])
        assert (await ledger.counts())["queued"] == 2
        assert [e.kind for e in await ledger.events(U1)] == ["created"]


async def test_transitions_and_conflicts_are_recorded(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([spec()], T0, "test")
        [job] = await ledger.claim_due(T0 + timedelta(seconds=1), 10)
        assert job.state == State.SUBMITTING and job.attempts == 1
        reply = ("reply", {"code": 200})
        await ledger.apply([Change(U1, Trigger.ACCEPTED, "submitter", {"code": 200}, [reply])], T0)
        await ledger.apply([Change(U1, Trigger.CONFIRMED_OK, "confirmer", {"acuse": b"<Acuse/>"})], T0)
        [result] = await ledger.apply([Change(U1, Trigger.CONFIRMED_ERROR, "mailbox")], T0)
        assert result.conflict
        job = await ledger.get_job(U1)
        assert (job.state, job.code, job.resolved_at is not None, job.has_acuse) == (State.OK, 200, True, True)
        assert await ledger.acuse(U1) == b"<Acuse/>"
        kinds = [(e.kind, e.detail.get("to")) for e in await ledger.events(U1)]
        assert kinds == [
            ("created", None),
            ("transition", "submitting"),
            ("reply", None),
            ("transition", "awaiting"),
            ("transition", "ok"),
            ("conflict", None),
        ]
        with pytest.raises(JobNotFoundError, match="job 11111111-1111-1111-1111-111111111111 is not in the ledger"):
            await ledger.apply([Change("11111111-1111-1111-1111-111111111111", Trigger.CLAIM, "x")], T0)


async def test_events_are_append_only(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([spec()], T0, "test")
    with sqlite3.connect(tmp_path / "l.db") as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events")


def notice(uid: int, status: str = "OK", uuid: str = U1, verdict: str = "notification") -> SeenMessage:
    return SeenMessage(uid, f"<m{uid}@sf>", verdict, uuid, status, "n@solucionfactible.com", None, None)  # type: ignore[arg-type]


async def test_apply_messages_exactly_once_and_checkpoint(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([spec(U1), spec(U2)], T0, "test")
        orphan = "11111111-1111-1111-1111-111111111111"
        batch = [notice(5), notice(6, "ERROR", U2), notice(7, uuid=orphan), notice(8, verdict="untrusted")]
        applied = await apply(ledger, "INBOX", 42, batch, 10, T0, confirm_with_status=False)
        assert [(a.uid, a.outcome, a.mark) for a in applied] == [
            (5, "applied", True),
            (6, "applied", True),
            (7, "orphan", False),
            (8, "untrusted", False),
        ]
        assert await ledger.checkpoint("INBOX") == (42, 10)
        assert await ledger.pending_marks("INBOX", 42) == [5, 6]
        await ledger.set_marked("INBOX", 42, 5)
        assert await ledger.pending_marks("INBOX", 42) == [6]
        # the same UIDs again, and the same Message-ID under a new UIDVALIDITY: applied once
        again = await apply(ledger, "INBOX", 42, batch[:1], 10, T0, False, marked_uid=6)
        assert await ledger.pending_marks("INBOX", 42) == []
        rescan = await apply(ledger, "INBOX", 43, [notice(1) for _ in range(1)], 3, T0, False)
        assert [a.outcome for a in again + rescan] == ["duplicate", "duplicate"]
        assert await ledger.checkpoint("INBOX") == (43, 3)
        assert (await ledger.get_job(U1)).state == State.OK
        assert (await ledger.get_job(U2)).state == State.ERROR
        assert await ledger.event_count("orphan") == 1 and await ledger.event_count("untrusted") == 1


async def test_two_notifications_for_one_job_in_a_batch_leave_what_two_batches_would(tmp_path: Path) -> None:
    # The batch is written set-based: the job's two updates are folded into one row. Done as
    # two batches instead, each update is its own write; both must leave the same job and events.
    results = []
    for split in (False, True):
        async with await Ledger.open(tmp_path / f"{split}.db") as ledger:
            await ledger.add_jobs([spec()], T0, "test")
            claimed = replace(notice(1), sender="Ñandú <n@solucionfactible.com>", date="2026-01-02T03:04:05.000Z")
            batch = [claimed, notice(2, "ERROR")]  # OK claimed while queued, then an ERROR claim
            for part in [batch[:1], batch[1:]] if split else [batch]:
                await apply(ledger, "INBOX", 1, part, part[-1].uid, T0, confirm_with_status=True)
            job = await ledger.get_job(U1)
            results.append((asdict(job), [e.as_dict() for e in await ledger.events(U1)]))
    assert results[0] == results[1]
    job, events = results[0]
    # under confirm_with_status an ERROR is a claim too: the status call decides, the job stays awaiting
    assert (job["state"], job["claim"], job["message"]) == (State.AWAITING, "OK", "notification: ERROR")
    assert job["check_at"] is not None and job["resolved_at"] is None
    assert [(e["kind"], e["detail"].get("outcome"), e["detail"].get("to")) for e in events] == [
        ("created", None, None),
        ("notification", "claimed", None),
        ("transition", None, "awaiting"),
        ("notification", "claimed", None),
    ]
    assert events[1]["detail"]["sender"] == "Ñandú <n@solucionfactible.com>"


async def test_version_1_ledger_keeps_its_unmarked_notifications_through_migration_2(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # a ledger as version 1 left it: per-row mark flags
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.executemany(
            "INSERT INTO mailbox_state VALUES (?, ?, ?, 'x')", [("INBOX", 42, 9), ("Other", 7, 30), ("Old", 5, 4)]
        )
        rows = [  # (folder, uidvalidity, uid, mark, marked)
            ("INBOX", 42, 3, 1, 1), ("INBOX", 42, 5, 1, 0), ("INBOX", 42, 6, 0, 0), ("INBOX", 42, 8, 1, 0),
            ("INBOX", 41, 2, 1, 0),  # an older UIDVALIDITY: those UIDs mean nothing now
            ("Other", 7, 30, 1, 1),
            ("Old", 5, 4, 0, 0),
        ]  # fmt: skip
        db.executemany(
            "INSERT INTO messages (folder, uidvalidity, uid, message_id, outcome, mark, marked, seen_at)"
            " VALUES (?, ?, ?, '<m' || ? || '>', 'applied', ?, ?, 'x')",
            [(f, v, u, u, m, d) for f, v, u, m, d in rows],
        )
    db.close()
    async with await Ledger.open(path) as ledger:
        assert await ledger.pending_marks("INBOX", 42) == [5, 8]
        assert await ledger.pending_marks("Other", 7) == [] and await ledger.pending_marks("Old", 5) == []
        await ledger.set_marked("INBOX", 42, 8)
        assert await ledger.pending_marks("INBOX", 42) == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == len(rows)
        assert db.execute("SELECT uid FROM messages WHERE message_id = '<m5>'").fetchall() == [(5,)]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


async def test_migration_3_fills_the_digest_of_the_acuses_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:  # a ledger as version 2 left it: acuses without digests
        db.executescript(MIGRATIONS[0])
        db.executescript(MIGRATIONS[1])
        db.execute("PRAGMA user_version = 2")
        db.executemany(
            "INSERT INTO jobs (uuid, rfc_emisor, motivo, state, created_at, updated_at, acuse)"
            " VALUES (?, 'AAA010101AAA', '02', ?, 'x', 'x', ?)",
            [(U1, "ok", b"<Acuse>\xc3\xb1</Acuse>"), (U2, "queued", None)],
        )
    db.close()
    async with await Ledger.open(path) as ledger:
        done, queued = await ledger.get_job(U1), await ledger.get_job(U2)
        assert done.acuse_sha256 == hashlib.sha256(b"<Acuse>\xc3\xb1</Acuse>").hexdigest()
        assert (queued.acuse_sha256, queued.has_acuse) == (None, False)
        assert done.as_dict()["acuse_sha256"] == done.acuse_sha256
        await ledger.apply([Change(U2, Trigger.CONFIRMED_OK, "t", {"acuse": b"<A/>", "acuse_sha256": "ab"})], T0)
        assert (await ledger.get_job(U2)).acuse_sha256 == "ab"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


async def test_claim_under_confirmation_waits_for_status_call(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.add_jobs([spec()], T0, "test")
        await ledger.claim_due(T0, 1)
        await ledger.apply([Change(U1, Trigger.ACCEPTED, "submitter", {"check_at": "9999"})], T0)
        [a] = await apply(ledger, "INBOX", 1, [notice(1)], 1, T0, confirm_with_status=True)
        job = await ledger.get_job(U1)
        assert (a.outcome, job.state, job.claim) == ("claimed", State.AWAITING, "OK")
        assert [j.uuid for j in await ledger.due_checks(T0, 10, claimed=True)] == [U1]
        assert await ledger.due_checks(T0, 10, claimed=False) == []


WRITER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from datetime import UTC, datetime
    from reconciler.ledger.store import Ledger
    from reconciler.jobs.validation import job_spec

    async def main():
        ledger = await Ledger.open(sys.argv[1])
        for i in range(int(sys.argv[2])):
            await ledger.add_jobs([job_spec(str(uuid.uuid4()), "AAA010101AAA") for _ in range(20)],
                                  datetime.now(UTC), "writer")
        await ledger.close()
    asyncio.run(main())
    """
)


def test_two_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), "50"]) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2000
        assert db.execute("SELECT count(*) FROM events WHERE kind = 'created'").fetchone()[0] == 2000


CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from datetime import UTC, datetime
    from reconciler.ledger.store import Ledger
    from reconciler.jobs.validation import job_spec

    async def main():
        ledger = await Ledger.open(sys.argv[1])
        specs = [job_spec(str(uuid.uuid4()), "AAA010101AAA") for _ in range(5000)]
        await ledger.add_jobs(specs, datetime.now(UTC), "crasher")   # committed
        async with ledger._tx() as db:                              # a big write, killed half way
            await db.executemany("UPDATE jobs SET state = 'ok' WHERE uuid = ?", [(s.uuid,) for s in specs[:2500]])
            sys.stdout.write("mid\\n"); sys.stdout.flush()
            await asyncio.sleep(60)
    asyncio.run(main())
    """
)


def test_kill_during_a_transaction_leaves_no_half_state(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "mid\n"
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        assert states == {"queued": 5000}
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 5000
    assert os.path.exists(path)
