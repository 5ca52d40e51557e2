"""import, export, acuse --all and status through the real CLI on real files, a real pty and real ledgers."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..harness import generated_uuids

RFC = "AAA010101AAA"
RFC13 = "ABCD010101AB1"


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n[display]\ntimezone = "America/Mexico_City"\n')
    return {"RECONCILER_CONFIG": str(config)}


def queued(tmp_path: Path) -> list[str]:
    if not (tmp_path / "ledger.db").exists():
        return []
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return [r[0] for r in db.execute("SELECT uuid FROM jobs ORDER BY rowid")]


def test_import_reads_what_spreadsheets_save(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b = generated_uuids(2, seed=21)
    spanish = tmp_path / "excel.csv"  # Excel in a Spanish locale: cp1252, ';', a column of its own
    spanish.write_bytes(
        f"UUID;RFC;motivo;Razón social\r\n{a};{RFC};02;Panadería\r\n{b};{RFC};03;x\r\n".encode("cp1252")
    )
    done = run_cli("import", str(spanish), env=cfg)
    assert done.returncode == 2 and queued(tmp_path) == []
    assert f"{spanish}: line 1: not UTF-8 text" in done.stderr and "--encoding cp1252" in done.stderr, done.stderr
    done = run_cli("import", "--encoding", "cp1252", str(spanish), env=cfg)
    assert done.returncode == 0, done.stderr
    assert "note: ignoring column(s) Razón social" in done.stderr and "2 rows: 2 queued" in done.stdout
    assert queued(tmp_path) == [a, b]

    c = generated_uuids(3, seed=22)[2]
    unicode = tmp_path / "unicode.csv"
    unicode.write_text(f"uuid,rfc\n{c},{RFC}\n", encoding="utf-16")
    done = run_cli("import", str(unicode), env=cfg)
    assert done.returncode == 2 and "UTF-16" in done.stderr and "--encoding utf-16" in done.stderr
    assert run_cli("import", "--encoding", "utf-16", str(unicode), env=cfg).returncode == 0
    assert queued(tmp_path) == [a, b, c]


def test_stdin_is_read_exactly_like_a_path(tmp_path: Path, cfg: dict[str, str]) -> None:
    data = "\ufeffuuid;rfc;extra\n" + "".join(f"{u};{RFC};x\n" for u in generated_uuids(3, seed=23))
    path = tmp_path / "jobs.csv"
    path.write_text(data, encoding="utf-8")
    from_path = run_cli("import", "--dry-run", "--json", str(path), env=cfg)
    from_stdin = run_cli("import", "--dry-run", "--json", "-", env=cfg, input=data)
    assert from_path.returncode == from_stdin.returncode == 0
    assert (
        json.loads(from_path.stdout)
        == json.loads(from_stdin.stdout)
        == {
            "rows": 3,
            "would_queue": 3,
            "existing": 0,
            "dry_run": True,
        }
    )
    assert from_stdin.stderr.replace("<stdin>", str(path)) == from_path.stderr
    assert not (tmp_path / "ledger.db").exists()  # a dry run creates nothing


def test_every_bad_row_is_reported_or_written_to_errors_file(tmp_path: Path, cfg: dict[str, str]) -> None:
    good = generated_uuids(40, seed=24)
    rows = [f"{u},{RFC}" if i % 3 else f"{u},BAD{i}" for i, u in enumerate(good)] + [f"{good[1]},{RFC}"]
    path = tmp_path / "jobs.csv"
    path.write_text("uuid,rfc\n" + "\n".join(rows) + "\n")
    bad_lines = [i + 2 for i in range(40) if i % 3 == 0] + [42]
    done = run_cli("import", str(path), env=cfg)
    assert done.returncode == 2
    assert [int(line.split(": line ")[1].split(":")[0]) for line in done.stderr.splitlines()[:-1]] == bad_lines
    assert f"uuid {good[1]} already on line 3" in done.stderr
    assert done.stderr.splitlines()[-1].endswith("15 bad rows (each listed above), nothing imported")
    dry = run_cli("import", "--dry-run", str(path), env=cfg)
    assert dry.returncode == 2 and "line 2: rfc:" in dry.stderr
    report = tmp_path / "errors.txt"
    done = run_cli("import", "--errors", str(report), str(path), env=cfg)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and f"listed in {report}" in done.stderr
    assert [int(line.split()[1].rstrip(":")) for line in report.read_text().splitlines()] == bad_lines
    assert queued(tmp_path) == []


def test_dry_run_on_a_ledger_counts_and_writes_nothing(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b, c = generated_uuids(3, seed=25)
    assert run_cli("submit", a, "--rfc", RFC, env=cfg).returncode == 0
    before = (tmp_path / "ledger.db").read_bytes()
    path = tmp_path / "jobs.csv"
    path.write_text(f"uuid,rfc\n{a},{RFC}\n{b},{RFC}\n{c},{RFC}\n")
    done = run_cli("import", "--dry-run", str(path), env=cfg)
    assert done.stdout.strip() == "3 rows: 2 would be queued, 1 already in the ledger (dry run)"
    assert (tmp_path / "ledger.db").read_bytes() == before and queued(tmp_path) == [a]


def test_export_csv_for_people_and_filters(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b, c = generated_uuids(3, seed=26)
    for u, rfc in ((a, RFC), (b, RFC13), (c, RFC)):
        assert run_cli("submit", u, "--rfc", rfc, env=cfg).returncode == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE jobs SET created_at = '2026-12-01T15:00:00.000Z', updated_at = '2026-12-01T15:00:00.000Z'")
        db.execute(
            "UPDATE jobs SET updated_at = '2026-12-02T15:00:00.000Z', state = 'ok', acuse = x'00' WHERE uuid = ?", (c,)
        )
    out = tmp_path / "out.csv"
    assert run_cli("export", "--excel", "-o", str(out), env=cfg).returncode == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfuuid,")
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["uuid"] for r in rows] == [a, b, c]
    assert {(r["uuid"], r["has_acuse"], r["overdue"]) for r in rows} == {
        (a, "false", "false"),
        (b, "false", "false"),
        (c, "true", "false"),
    }
    assert {r["created_at"] for r in rows} == {"2026-12-01T09:00:00.000-06:00"}  # [display] timezone
    utc = list(csv.DictReader(run_cli("export", "--tz", "UTC", "--rfc", RFC13, env=cfg).stdout.splitlines()))
    assert [(r["uuid"], r["created_at"]) for r in utc] == [(b, "2026-12-01T15:00:00.000Z")]
    # --since: a local time with its offset, or a bare date in the display zone.
    for since in ("2026-12-02T08:59:00-06:00", "2026-12-02"):
        lines = run_cli("export", "--format", "jsonl", "--since", since, "--state", "OK", env=cfg).stdout.splitlines()
        assert [json.loads(line)["uuid"] for line in lines] == [c], since
    assert run_cli("export", "--since", "2026-12-02T09:01:00-06:00", env=cfg).stdout.count("\n") == 1  # header only
    bad = run_cli("export", "--tz", "Mars/Olympus", env=cfg)
    assert bad.returncode == 2 and "--tz: unknown time zone 'Mars/Olympus'" in bad.stderr


def test_acuse_all_writes_every_acuse(tmp_path: Path, cfg: dict[str, str]) -> None:
    jobs = generated_uuids(3, seed=27)
    for u in jobs:
        run_cli("submit", u, "--rfc", RFC, env=cfg)
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        for i, u in enumerate(jobs[:2]):
            db.execute(
                "UPDATE jobs SET acuse = ?, state = 'ok', resolved_at = ? WHERE uuid = ?",
                (f"<Acuse n='{i}'/>".encode(), f"2026-12-0{i + 1}T12:00:00.000Z", u),
            )
    out = tmp_path / "acuses"
    done = run_cli("acuse", "--all", "-o", str(out), env=cfg)
    assert done.returncode == 0 and "wrote 2 acuses" in done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        f"{jobs[0]}.xml": b"<Acuse n='0'/>",
        f"{jobs[1]}.xml": b"<Acuse n='1'/>",
    }
    later = tmp_path / "later"
    assert run_cli("acuse", "--all", "--since", "2026-12-02T00:00:00Z", "-o", str(later), env=cfg).returncode == 0
    assert [p.name for p in later.iterdir()] == [f"{jobs[1]}.xml"]
    assert run_cli("acuse", "--all", env=cfg).returncode == 2


def test_status_newest_first_filters_and_json_matches_one_job(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b, c = generated_uuids(3, seed=28)
    for u, rfc in ((a, RFC), (b, RFC13), (c, RFC)):
        assert run_cli("submit", u, "--rfc", rfc, env=cfg).returncode == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute(
            "UPDATE jobs SET state = 'ok', acuse = x'01', acuse_sha256 = 'ab', overdue_at = 'x' WHERE uuid = ?", (b,)
        )
        db.execute("UPDATE jobs SET overdue_at = '2026-01-01T00:00:00.000Z', message = 'ñ \"q\"' WHERE uuid = ?", (c,))
    listed = json.loads(run_cli("status", "--json", "--limit", "0", env=cfg).stdout)
    assert [j["uuid"] for j in listed] == [c, b, a]
    for job in listed:  # the SQL-built objects are exactly Job.as_dict()
        one = json.loads(run_cli("status", job["uuid"], "--json", env=cfg).stdout)
        del one["events"]
        assert list(job.items()) == list(one.items())
    assert [j["uuid"] for j in json.loads(run_cli("status", "--json", "--rfc", RFC, env=cfg).stdout)] == [c, a]
    assert [j["uuid"] for j in json.loads(run_cli("status", "--json", "--state", "OK", env=cfg).stdout)] == [b]
    assert json.loads(run_cli("status", "--json", "--state", "error", env=cfg).stdout) == []


def test_status_table_on_an_80_column_terminal_shows_whole_uuids_and_rfcs(tmp_path: Path, cfg: dict[str, str]) -> None:
    jobs = generated_uuids(5, seed=29)
    for u in jobs:
        assert run_cli("submit", u, "--rfc", RFC13, env=cfg).returncode == 0
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_") and k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "status"],
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**env, **cfg, "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, err = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, err
    screen = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())  # rich's bold header
    lines = [line for line in screen.replace("\r", "").split("\n") if line.strip()]
    assert lines and max(len(line) for line in lines) <= 80, screen
    assert [line.split()[0] for line in lines[1:]] == list(reversed(jobs))  # newest first
    assert all(RFC13 in line for line in lines[1:])
    assert lines[0].split() == ["uuid", "rfc", "state", "created"]
    assert "not shown for width: code, resolved" in err.decode() and "times in America/Mexico_City" in err.decode()


def test_status_json_streams_while_the_reader_has_not_read_it_all(tmp_path: Path, cfg: dict[str, str]) -> None:
    """Structural, not timed: with stdout full and unread, the command is still inside its one SQLite read.

    It holds a WAL snapshot while blocked on the pipe, so a checkpoint cannot copy a frame written after
    it started; a command that read everything before printing would have closed the ledger by then.
    """
    run_cli("submit", generated_uuids(1, seed=30)[0], "--rfc", RFC, env=cfg)
    db = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    with db:
        at = "2026-01-01T00:00:00.000Z"
        db.executemany(
            "INSERT INTO jobs (uuid, rfc_emisor, motivo, state, created_at, updated_at) VALUES (?, ?, '02', 'ok', ?, ?)",
            ((f"{i:08X}-0000-4000-8000-000000000000", RFC, at, at) for i in range(12_000)),
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "status", "--json", "--limit", "0"],
        stdout=subprocess.PIPE,
        env={**env, **cfg},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"[\n"
        first = json.loads(proc.stdout.readline().rstrip(b",\n"))
        assert first["uuid"] == "00002EDF-0000-4000-8000-000000000000"  # newest first
        db.execute("UPDATE jobs SET message = 'after' WHERE rowid = 1")  # a WAL frame newer than its snapshot
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, copied < frames) == (0, True), (frames, copied)
        rest = proc.stdout.read()
        assert proc.wait(60) == 0
        assert rest.count(b"\n") == 12_001  # 12,000 more objects and the closing bracket
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        db.close()
