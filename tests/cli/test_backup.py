"""``reconciler backup`` beside the real daemon while it writes, and the README's restore drill."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..harness import Stack, generated_uuids, start_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", kind="dovecot")
    yield s
    s.close()


def backup(stack: Stack, dest: Path) -> dict[str, object]:
    done = run_cli("--config", str(stack.config), "backup", str(dest), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_backups_beside_a_writing_daemon_are_consistent_and_restore(stack: Stack, tmp_path: Path) -> None:
    first = generated_uuids(150, seed=61)
    stack.queue(first)
    stack.start_daemon()
    copies: list[tuple[Path, dict[str, object]]] = []
    # Back up while the daemon submits, records replies and applies notifications.
    wait_until(lambda: "awaiting" in stack.states().values(), 60, "the daemon to be writing")
    for i in range(4):
        dest = tmp_path / f"copy-{i}.sqlite3"
        copies.append((dest, backup(stack, dest)))
        stack.queue(generated_uuids(10, seed=70 + i))  # and the CLI writes too
    for dest, report in copies:
        assert dest.stat().st_mode & 0o777 == 0o600
        assert not dest.with_name(dest.name + "-wal").exists()
        db = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            # Every job's state agrees with its last state-changing event: a consistent snapshot.
            torn = db.execute(
                "SELECT count(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.uuid = j.uuid)"
            ).fetchone()[0]
        finally:
            db.close()
        assert report["jobs"] == jobs and report["integrity"] == "ok" and jobs >= 150 and torn == 0
    wait_until(lambda: stack.unresolved() == 0, 120, "the jobs to resolve")
    assert stack.stop_daemon() == 0

    # The restore drill (README): stop, put the copy in place without the old -wal/-shm, start.
    last, report = copies[-1]
    for suffix in ("", "-wal", "-shm"):
        stack.ledger.with_name(stack.ledger.name + suffix).unlink(missing_ok=True)
    stack.ledger.write_bytes(last.read_bytes())
    stack.ledger.chmod(0o600)
    status = run_cli("--config", str(stack.config), "status", "--json", "--limit", "0")
    assert status.returncode == 0 and len(json.loads(status.stdout)) == report["jobs"]
    stack.start_daemon()
    wait_until(lambda: stack.unresolved() == 0, 120, "the restored ledger's open jobs to resolve again")
    assert stack.mismatches() == []
    assert stack.stop_daemon() == 0
    check = run_cli("--config", str(stack.config), "check", "--integrity")
    assert "integrity" not in check.stdout, check.stdout


def test_backup_refuses_to_overwrite_and_names_the_file(stack: Stack, tmp_path: Path) -> None:
    stack.queue(generated_uuids(2, seed=62))
    dest = tmp_path / "b.sqlite3"
    dest.write_text("precious")
    done = run_cli("--config", str(stack.config), "backup", str(dest))
    assert done.returncode == 1 and done.stderr == f"reconciler: backup {dest}: File exists\n"
    assert dest.read_text() == "precious"
    missing = tmp_path / "no" / "such" / "b.sqlite3"
    done = run_cli("--config", str(stack.config), "backup", str(missing))
    assert done.returncode == 1 and "No such file or directory" in done.stderr and not missing.exists()
    # A directory: a dated file inside it.
    report = backup(stack, tmp_path)
    assert Path(str(report["backup"])).parent == tmp_path and report["jobs"] == 2
