"""`reconciler config check` with local signing: one line per issuer's CSD, exit 2 when one fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox import certs

from ..conftest import run_cli
from ..csd_material import OTHER_RFC, RFC, material
from ..harness import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("signing-check"), kind="pymap")
    yield s
    s.close()


def with_issuers(stack: Stack, tmp_path: Path, *issuers: tuple[str, certs.CsdFiles]) -> str:
    tables = []
    for i, (rfc, files) in enumerate(issuers):
        cer, key, password = files.write(tmp_path, f"issuer{i}")
        tables.append(
            f'[[issuers]]\nrfc = "{rfc}"\nsigning = "local"\ncsd_cer = "{cer}"\ncsd_key = "{key}"\n'
            f'csd_password_file = "{password}"\n'
        )
    path = tmp_path / "config.toml"
    path.write_text(stack.config.read_text() + "\n" + "\n".join(tables))
    return str(path)


def test_a_good_csd_passes_and_says_which(stack: Stack, tmp_path: Path) -> None:
    config = with_issuers(stack, tmp_path, (RFC, material().csd))
    result = run_cli("--config", config, "config", "check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks[f"csd {RFC}"]["ok"] is True
    assert material().checked().number in checks[f"csd {RFC}"]["detail"]


def test_each_bad_csd_is_one_line_naming_its_issuer_and_exit_2(stack: Stack, tmp_path: Path) -> None:
    m = material()
    fiel = certs.issue(m.ca, OTHER_RFC, "fiel")
    config = with_issuers(stack, tmp_path, (RFC, m.expired), (OTHER_RFC, fiel))
    result = run_cli("--config", config, "config", "check")
    assert result.returncode == 2, result.stdout + result.stderr
    bad = [line for line in result.stdout.splitlines() if " csd " in f" {line} " and "FAIL" in line.upper()]
    assert len(bad) == 2, result.stdout
    assert any(f"issuers[{RFC}].csd_cer: expired on" in line for line in bad)
    assert any(f"issuers[{OTHER_RFC}].csd_cer: a FIEL (e.firma) certificate" in line for line in bad)
    # Everything else works: the CSDs alone made it exit 2.
    parsed = {c["name"]: c["ok"] for c in json.loads(run_cli("--config", config, "config", "check", "--json").stdout)}
    assert parsed == {"config": True, f"csd {RFC}": False, f"csd {OTHER_RFC}": False} | {
        k: True for k in ("ledger", "mailbox", "provider")
    }
    assert m.expired.password not in result.stdout + result.stderr
