"""The CLI through real subprocesses on real ledger files."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import uuid as uuidlib
from pathlib import Path

import pytest

from ..conftest import run_cli

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
RFC = "AAA010101AAA"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "RECONCILER_LEDGER__PATH": str(tmp_path / "state" / "ledger.db"),
        "RECONCILER_CONFIG": str(tmp_path / "none.toml"),
    }


@pytest.fixture
def ledger_env(tmp_path: Path) -> dict[str, str]:
    """Ledger path from the environment; no config file at all."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "state" / "ledger.db"}"\n')
    return {"RECONCILER_CONFIG": str(cfg)}


def cli_json(*args: str, env: dict[str, str]) -> object:
    result = run_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_is_idempotent_and_status_shows_history(ledger_env: dict[str, str]) -> None:
    first = cli_json("submit", U.lower(), "--rfc", RFC.lower(), env=ledger_env)
    again = cli_json("submit", U, "--rfc", RFC, env=ledger_env)
    assert first == {"uuid": U, "queued": True, "state": "queued"}
    assert again == {"uuid": U, "queued": False, "state": "queued"}
    job = cli_json("status", U.lower(), env=ledger_env)
    assert isinstance(job, dict)
    keys = {
        "uuid",
        "rfc_emisor",
        "motivo",
        "folio_sustitucion",
        "state",
        "code",
        "message",
        "attempts",
        "created_at",
        "submitted_at",
        "resolved_at",
        "overdue",
        "events",
    }
    assert keys <= set(job)
    assert (job["uuid"], job["rfc_emisor"], job["motivo"], job["state"], job["overdue"]) == (
        U,
        RFC,
        "02",
        "queued",
        False,
    )
    assert [e["kind"] for e in job["events"]] == ["created"]
    assert set(job["events"][0]) == {"at", "kind", "source", "detail"}
    table = run_cli("status", env=ledger_env)
    assert table.returncode == 0 and U in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "not-a-uuid", "--rfc", RFC], "reconciler: uuid: not a UUID: 'not-a-uuid'"),
        (["submit", U, "--rfc", "XYZ"], "reconciler: rfc: an RFC has 12 or 13 characters, got 3: 'XYZ'"),
        (["submit", U, "--rfc", RFC, "--motivo", "07"], "reconciler: motivo: must be one of 01, 02, 03, 04, got '07'"),
        (["submit", U, "--rfc", RFC, "--motivo", "01"], "reconciler: folio_sustitucion: required with motivo 01"),
        (["status", "xyz"], "reconciler: uuid: not a UUID: 'xyz'"),
        (["status", "--state", "done"], "Invalid value for '--state'"),
        (["export", "--since", "yesterday"], "reconciler: --since: not a date: 'yesterday'"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(
    ledger_env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli(*args, env=ledger_env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    ledger = tmp_path / "state" / "ledger.db"
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_read_commands_on_a_missing_ledger_fail_clearly(ledger_env: dict[str, str]) -> None:
    result = run_cli("status", env=ledger_env)
    assert result.returncode == 1 and "not found" in result.stderr and "Traceback" not in result.stderr
    check = run_cli("check", env=ledger_env)
    assert check.returncode == 3 and check.stdout.startswith("RECONCILER UNKNOWN - ledger ")
    probe = run_cli("check", "--json", env=ledger_env)
    assert probe.returncode == 3
    data = json.loads(probe.stdout)
    assert (data["status"], data["code"], data["line"], data["daemon"]) == ("UNKNOWN", 3, check.stdout.strip(), None)


def test_unknown_job_exit_1(ledger_env: dict[str, str]) -> None:
    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    result = run_cli("status", "11111111-1111-1111-1111-111111111111", env=ledger_env)
    assert result.returncode == 1
    assert result.stderr.strip() == "reconciler: job 11111111-1111-1111-1111-111111111111 is not in the ledger"


def test_import_all_or_nothing_then_export(ledger_env: dict[str, str], tmp_path: Path) -> None:
    good = [str(uuidlib.uuid4()).upper() for _ in range(300)]
    path = tmp_path / "jobs.csv"
    rows = [["uuid", "rfc", "motivo", "folio_sustitucion"], *[[u, RFC, "02", ""] for u in good]]
    rows.insert(150, ["bad-uuid", RFC, "02", ""])
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = run_cli("import", str(path), env=ledger_env)
    assert result.returncode == 2
    assert f"{path}: line 151: uuid: not a UUID: 'bad-uuid'" in result.stderr
    assert "1 bad row (each listed above), nothing imported" in result.stderr
    assert not (tmp_path / "state" / "ledger.db").exists() or cli_json("summary", env=ledger_env)["total"] == 0  # type: ignore[index]
    del rows[150]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert cli_json("import", str(path), env=ledger_env) == {
        "rows": 300,
        "queued": 300,
        "existing": 0,
        "dry_run": False,
    }
    again = cli_json("import", str(path), env=ledger_env)
    assert again["queued"] == 0 and again["existing"] == 300  # type: ignore[index]
    summary = cli_json("summary", env=ledger_env)
    assert summary["counts"]["queued"] == 300 and summary["total"] == 300  # type: ignore[index]
    out = run_cli("export", "--format", "csv", "--state", "queued", env=ledger_env)
    exported = list(csv.DictReader(out.stdout.splitlines()))
    assert sorted(r["uuid"] for r in exported) == sorted(good)
    assert {r["has_acuse"] for r in exported} == {"false"}
    lines = run_cli("export", "--format", "jsonl", "--state", "ok", env=ledger_env).stdout.splitlines()
    assert lines == []
    target = tmp_path / "out.jsonl"
    assert run_cli("export", "--format", "jsonl", "-o", str(target), env=ledger_env).returncode == 0
    assert len(target.read_text().splitlines()) == 300


def test_check_is_a_nagios_probe(ledger_env: dict[str, str], tmp_path: Path) -> None:
    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    result = run_cli("check", env=ledger_env)
    assert result.returncode == 1 and result.stdout.startswith("RECONCILER WARNING - no daemon has run")
    assert len(result.stdout.strip().splitlines()) == 1
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute(
            "INSERT INTO facts VALUES ('breaker', '{\"code\": 601, \"meaning\": \"authentication error\"}', '2026-01-01T00:00:00.000Z')"
        )
    result = run_cli("check", env=ledger_env)
    assert result.returncode == 2 and "provider code 601" in result.stdout
    probe = run_cli("check", "--json", env=ledger_env)
    assert probe.returncode == 2, probe.stderr
    data = json.loads(probe.stdout)
    assert (data["status"], data["code"], data["line"]) == ("CRITICAL", 2, result.stdout.strip())
    assert any("provider code 601" in p for p in data["problems"])
    assert data["daemon"] == {"running": False, "pid": None}
    summary = cli_json("summary", env=ledger_env)
    assert summary["breaker"]["code"] == 601 and summary["health"] == "CRITICAL"  # type: ignore[index]


def test_acuse_written_to_stdout_or_file(ledger_env: dict[str, str], tmp_path: Path) -> None:
    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    missing = run_cli("acuse", U, env=ledger_env)
    assert missing.returncode == 1 and "has no acuse stored (state queued)" in missing.stderr
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("UPDATE jobs SET acuse = ? WHERE uuid = ?", (b"<Acuse>\xc3\xb1</Acuse>", U))
    assert run_cli("acuse", U, env=ledger_env).stdout == "<Acuse>ñ</Acuse>"
    assert run_cli("acuse", U, "-o", str(tmp_path / "a.xml"), env=ledger_env).returncode == 0
    assert (tmp_path / "a.xml").read_bytes() == b"<Acuse>\xc3\xb1</Acuse>"


def test_status_shows_the_acuses_digest(ledger_env: dict[str, str], tmp_path: Path) -> None:
    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    assert cli_json("status", U, env=ledger_env)["acuse_sha256"] is None  # type: ignore[index]
    digest = hashlib.sha256(b"<Acuse/>").hexdigest()
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("UPDATE jobs SET acuse = ?, acuse_sha256 = ? WHERE uuid = ?", (b"<Acuse/>", digest, U))
    job = cli_json("status", U, env=ledger_env)
    assert (job["has_acuse"], job["acuse_sha256"]) == (True, digest)  # type: ignore[index]
    table = run_cli("status", U, env=ledger_env)
    assert table.returncode == 0 and "acuse_sha256" in table.stdout and digest in table.stdout


def test_read_commands_do_not_import_heavy_libraries(ledger_env: dict[str, str]) -> None:
    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    probe = (
        "import sys, runpy; sys.argv = ['reconciler', 'status', '%s', '--json']\n"
        "try:\n    runpy.run_module('reconciler', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('zeep', 'imapclient', 'apscheduler', 'pydantic', 'pydantic_settings', 'rich') if m in sys.modules)\n"
        "print('HEAVY', heavy)"
    ).replace("%s", U)
    import subprocess
    import sys

    env = {**__import__("os").environ, **ledger_env}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_export_to_a_non_regular_file_writes_through_it(ledger_env: dict[str, str], tmp_path: Path) -> None:
    """`-o /dev/null` or a FIFO must not be replaced by a regular file (the temp+rename path)."""
    import os
    import threading

    run_cli("submit", U, "--rfc", RFC, env=ledger_env)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    result = run_cli("export", "--format", "jsonl", "-o", str(fifo), env=ledger_env)
    reader.join(30)
    assert result.returncode == 0, result.stderr
    assert fifo.is_fifo()
    assert json.loads(got[0])["uuid"] == U


def test_errors_stay_on_one_line_whatever_the_file_name(ledger_env: dict[str, str]) -> None:
    result = run_cli("import", "no\nsuch.csv", env=ledger_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no\\nsuch.csv" in result.stderr


def test_submit_and_import_refuse_a_look_alike_uuid(ledger_env: dict[str, str], tmp_path: Path) -> None:
    lookalike = U[:-2] + "\ufb00"  # U+FB00 folds to "FF" under upper(): once accepted as another UUID
    result = run_cli("submit", lookalike, "--rfc", RFC, env=ledger_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"reconciler: uuid: non-ASCII character 'ﬀ' (U+FB00) at position 35: '{lookalike}'"
    path = tmp_path / "jobs.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["uuid", "rfc"], [U, RFC], [lookalike, RFC]])
    result = run_cli("import", str(path), env=ledger_env)
    assert result.returncode == 2
    assert "line 3: uuid: non-ASCII character 'ﬀ' (U+FB00) at position 35" in result.stderr
    assert "1 bad row (each listed above), nothing imported" in result.stderr
    folio = run_cli(
        "submit", U, "--rfc", RFC, "--motivo", "01", "--folio-sustitucion", "\uff11" + U[1:], env=ledger_env
    )
    assert (
        folio.returncode == 2 and "folio_sustitucion: non-ASCII character '１' (U+FF11) at position 1" in folio.stderr
    )
    assert not (tmp_path / "state" / "ledger.db").exists() or cli_json("summary", env=ledger_env)["total"] == 0  # type: ignore[index]
