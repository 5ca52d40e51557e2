"""Reads never write: the read commands on real files through the CLI, ``migrate``, and backups."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.ledger.lock import DaemonLock
from reconciler.ledger.schema import MIGRATIONS, sha256_hex

from ..conftest import run_cli

U1 = "11111111-2222-4333-8444-555555555555"
READS = (("status",), ("status", U1), ("summary",), ("summary", "--json"), ("check",), ("export",), ("acuse", U1))


def _env(ledger: Path) -> dict[str, str]:
    return {"RECONCILER_LEDGER__PATH": str(ledger)}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def _older(path: Path, n: int) -> None:
    """A ledger built with only the first ``n`` migrations (rollback journal: no -wal, no -shm)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.create_function("sha256", 1, sha256_hex)
    for script in MIGRATIONS[:n]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {n}")
    db.execute(
        "INSERT INTO jobs (uuid, rfc_emisor, motivo, state, created_at, updated_at) "
        "VALUES (?, 'AAA010101AAA', '02', 'queued', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        (U1,),
    )
    db.close()


def _reads_refuse(path: Path, message: str) -> None:
    """Every read command exits with one line naming ``message`` and leaves the file as it was."""
    before = _digest(path) if path.exists() else None
    names = _siblings(path) if path.parent.exists() else None
    for args in READS:
        done = run_cli(*args, env=_env(path))
        if args == ("check",):
            assert done.returncode == 3 and done.stdout.startswith("RECONCILER UNKNOWN - "), done
            line = done.stdout
        else:
            assert done.returncode == 1, (args, done)
            line = done.stderr
        assert len(line.strip().splitlines()) == 1 and message in line, (args, line)
        assert "Traceback" not in done.stderr
        assert (_digest(path) if path.exists() else None) == before, args
        assert (_siblings(path) if path.parent.exists() else None) == names, args  # no -wal, -shm, .lock


def test_a_missing_path_is_reported_and_not_created(tmp_path: Path) -> None:
    _reads_refuse(tmp_path / "nowhere" / "ledger.sqlite3", "not found")
    assert not (tmp_path / "nowhere").exists()
    _reads_refuse(tmp_path / "ledger.sqlite3", "not found")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    _reads_refuse(path, "not a reconciler ledger (not an SQLite database)")


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.touch()
    _reads_refuse(path, "not a reconciler ledger (an empty SQLite database")
    assert path.stat().st_size == 0


def test_sqlite_without_the_ledgers_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()
    _reads_refuse(path, "without the ledger's tables")
    before = _digest(path)
    done = run_cli("migrate", env=_env(path))  # never turns somebody else's database into a ledger
    assert done.returncode == 1 and "without the ledger's tables" in done.stderr, done
    assert _digest(path) == before


@pytest.mark.parametrize("n", range(1, len(MIGRATIONS)))
def test_an_older_schema_is_read_by_nobody_until_migrated(tmp_path: Path, n: int) -> None:
    path = tmp_path / "ledger.sqlite3"
    _older(path, n)
    _reads_refuse(
        path, f"schema version {n} is older than this reconciler's ({len(MIGRATIONS)}); run `reconciler migrate`"
    )
    # The writers refuse too: an older daemon may be running on it.
    before = _digest(path)
    done = run_cli("submit", "22222222-2222-4333-8444-555555555555", "--rfc", "AAA010101AAA", env=_env(path))
    assert done.returncode == 1 and "run `reconciler migrate`" in done.stderr, done
    assert _digest(path) == before

    backup = tmp_path / "before-migrate.sqlite3"
    done = run_cli("migrate", "--backup", str(backup), env=_env(path))
    assert done.returncode == 0, done.stderr
    assert f"schema {n} -> {len(MIGRATIONS)}" in done.stdout
    assert _version(path) == len(MIGRATIONS) and _version(backup) == n
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    assert sqlite3.connect(backup).execute("SELECT uuid FROM jobs").fetchall() == [(U1,)]
    status = run_cli("status", U1, "--json", env=_env(path))
    assert status.returncode == 0 and json.loads(status.stdout)["uuid"] == U1, status.stderr
    again = run_cli("migrate", "--backup", str(backup), env=_env(path))  # never overwrites a file
    assert again.returncode == 1 and "File exists" in again.stderr, again
    assert run_cli("migrate", env=_env(path)).stdout.strip().endswith("is current; nothing to do")


def test_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    _older(path, len(MIGRATIONS))
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}").connection.close()
    _reads_refuse(path, "newer than this reconciler knows")
    assert run_cli("migrate", env=_env(path)).returncode == 1


def test_a_current_ledger_reads_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    _older(path, len(MIGRATIONS))
    before, names = _digest(path), _siblings(path)
    for args in READS:
        done = run_cli(*args, env=_env(path))
        assert done.returncode in (0, 1, 2), (args, done)  # acuse: none stored, exit 1
        assert "Traceback" not in done.stderr
    assert run_cli("status", "--json", env=_env(path)).returncode == 0
    assert _digest(path) == before and _siblings(path) == names
    assert "no daemon running" in run_cli("check", env=_env(path)).stdout


def test_migrate_refuses_while_a_daemon_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    _older(path, 1)
    before = _digest(path)
    held = DaemonLock.acquire(path)
    try:
        done = run_cli("migrate", env=_env(path))
    finally:
        held.release()
    assert done.returncode == 1 and f"already running (pid {os.getpid()}" in done.stderr, done
    assert _digest(path) == before


def _version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory outside pytest's 0700 tree, so that another user can reach it."""
    d = Path(tempfile.mkdtemp(prefix="reconciler-ro-"))
    d.chmod(0o755)
    yield d
    for p in d.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(d)


def test_a_readable_copy_in_a_read_only_directory(world_dir: Path) -> None:
    """As an unprivileged user (root bypasses permissions): a WAL-mode copy, directory 0555."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the reads as `nobody` (as a normal user, chmod alone would do)")
    nobody = pwd.getpwnam("nobody")
    copy = world_dir / "ro" / "ledger.sqlite3"
    copy.parent.mkdir()
    _older(copy, len(MIGRATIONS))
    sqlite3.connect(copy).execute("PRAGMA journal_mode = WAL").connection.close()  # as the daemon leaves it
    copy.chmod(0o644)
    copy.parent.chmod(0o555)
    before, names = _digest(copy), _siblings(copy)
    # The venv is not reachable by `nobody`, so the reads run in a forked child that drops to
    # nobody after every module they need is imported.
    import concurrent.futures.thread  # noqa: F401  (the stdlib under /root is out of reach too)

    from click.testing import CliRunner

    from reconciler.cli.main import cli

    def as_nobody(*args: str) -> tuple[int, str]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 99
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                result = CliRunner().invoke(cli, list(args), env=_env(copy), catch_exceptions=True)
                out = result.output if result.exception is None else f"{result.output}{result.exception!r}"
                os.write(write, out.encode())
                code = result.exit_code
            finally:
                os._exit(code)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()

    code, out = as_nobody("status", "--json")
    assert code == 0, out
    assert [j["uuid"] for j in json.loads(out)] == [U1]
    code, out = as_nobody("summary", "--json")
    assert code == 0 and json.loads(out)["total"] == 1, out
    assert _digest(copy) == before and _siblings(copy) == names
