"""`reconciler import PATH...`: CSV with the SAT's optional columns, CFDI XML files and directories, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.sandbox.cfdis import render, sello_for

from ..conftest import run_cli
from ..harness import generated_uuids


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "state" / "ledger.db"}"\n')
    return {"RECONCILER_CONFIG": str(cfg)}


def jobs(env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = run_cli("status", "--limit", "0", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {j["uuid"]: j for j in json.loads(result.stdout)}


def test_xml_files_and_directories_import_with_the_sats_fields(tmp_path: Path, env: dict[str, str]) -> None:
    a, b, c, d = generated_uuids(4, seed=14)
    folder = tmp_path / "cfdi" / "2024"
    folder.mkdir(parents=True)
    (folder / "a.xml").write_bytes(render(a, total="1160.00", version="3.3", prefix="cfdi", bom=True))
    (folder / "b.XML").write_bytes(render(b, total="99", prefix="", addenda=True))
    (folder / "notes.txt").write_text("not a cfdi")
    single = tmp_path / "c.xml"
    single.write_bytes(render(c, rfc_receptor="A&B010101AB1", prefix="x"))
    csv = tmp_path / "d.csv"
    csv.write_text(f"uuid,rfc,rfc_receptor,total,sello\n{d},EKU9003173C9,XAXX010101000,10.5,{sello_for(d)}\n")
    result = run_cli("import", str(tmp_path / "cfdi"), str(single), str(csv), "--motivo", "03", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"rows": 4, "queued": 4, "existing": 0, "dry_run": False}
    found = jobs(env)
    assert {u: (j["rfc_receptor"], j["total"], j["motivo"]) for u, j in found.items()} == {
        a: ("XAXX010101000", "1160.00", "03"),
        b: ("XAXX010101000", "99", "03"),
        c: ("A&B010101AB1", "1160.00", "03"),
        d: ("XAXX010101000", "10.5", "02"),  # a CSV row carries its own motivo
    }
    assert all(j["sat_estado"] is None and "sat_checked_at" in j for j in found.values())


def test_one_bad_file_imports_nothing_and_is_named(tmp_path: Path, env: dict[str, str]) -> None:
    a, b = generated_uuids(2, seed=15)
    (tmp_path / "good.xml").write_bytes(render(a))
    bad = tmp_path / "broken.xml"
    bad.write_bytes(render(b)[:300])
    result = run_cli("import", str(tmp_path / "good.xml"), str(bad), env=env)
    assert result.returncode == 2
    assert f"{bad}: not well-formed XML" in result.stderr and "nothing imported" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state" / "ledger.db").exists() or jobs(env) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--motivo", "01"], "--folio-sustitucion: required with --motivo 01"),
        (["--motivo", "09"], "--motivo: must be one of"),
        (["--folio-sustitucion", "5B4B180D-5B6C-4392-B204-252215A1AB84"], "only allowed with --motivo 01"),
    ],
)
def test_bad_options_are_refused_once(tmp_path: Path, env: dict[str, str], args: list[str], message: str) -> None:
    (tmp_path / "a.xml").write_bytes(render(generated_uuids(1, seed=16)[0]))
    result = run_cli("import", str(tmp_path / "a.xml"), *args, env=env)
    assert result.returncode == 2 and message in result.stderr


def test_the_same_uuid_in_two_files_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    (u,) = generated_uuids(1, seed=17)
    (tmp_path / "a.xml").write_bytes(render(u))
    (tmp_path / "b.xml").write_bytes(render(u, version="3.3"))
    result = run_cli("import", str(tmp_path / "a.xml"), str(tmp_path / "b.xml"), env=env)
    assert result.returncode == 2 and f"uuid {u} already in {tmp_path / 'a.xml'}" in result.stderr


def test_a_bad_sat_column_in_a_csv_names_the_line(tmp_path: Path, env: dict[str, str]) -> None:
    (u,) = generated_uuids(1, seed=18)
    csv = tmp_path / "j.csv"
    csv.write_text(f"uuid,rfc,total\n{u},EKU9003173C9,-5\n")
    result = run_cli("import", str(csv), env=env)
    assert result.returncode == 2 and "line 2: total:" in result.stderr
