"""Packaging and ``reconciler config example|unit|show``, through the real CLI and a really built wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..conftest import ROOT, run_cli

SHIPPED = {
    "config.example.toml": ROOT / "config.example.toml",
    "reconciler.service": ROOT / "systemd" / "reconciler.service",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_packaged_copies_equal_the_top_level_files(name: str) -> None:
    """The top-level files are the source of truth; the copies in reconciler/share ship in the wheel."""
    packaged = ROOT / "reconciler" / "share" / name
    assert packaged.read_bytes() == SHIPPED[name].read_bytes(), (
        f"reconciler/share/{name} differs from {SHIPPED[name].relative_to(ROOT)}: copy it over"
    )


def test_config_example_and_unit_print_the_shipped_files() -> None:
    example = run_cli("config", "example")
    unit = run_cli("config", "unit")
    assert example.returncode == 0 and unit.returncode == 0, example.stderr + unit.stderr
    assert example.stdout == SHIPPED["config.example.toml"].read_text()
    assert unit.stdout == SHIPPED["reconciler.service"].read_text()


def test_version() -> None:
    from reconciler import __version__

    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"reconciler, version {__version__}"


def test_a_built_wheel_is_cfdi_reconciler_and_carries_the_example_and_the_unit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "reconciler", src / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check", str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith("cfdi_reconciler-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read("reconciler/share/config.example.toml") == SHIPPED["config.example.toml"].read_bytes()
        assert z.read("reconciler/share/reconciler.service") == SHIPPED["reconciler.service"].read_bytes()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        assert "\nName: cfdi-reconciler\n" in z.read(metadata).decode()
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "reconciler = reconciler.cli.main:main" in z.read(entry_points).decode()


def test_config_show_masks_secrets_and_names_each_source(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mailbox_password").write_text("Cred-Secret-771\n")
    (creds / "csd_password_AAA010101AAA").write_text("Csd-Secret-552\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[ledger]\npath = "{tmp_path / "l.db"}"\n'
        '[provider]\nusuario = "u"\npassword = "File-Secret-123"\n'
        '[[issuers]]\nrfc = "aaa010101aaa"\ncsd_cer = "/x.cer"\ncsd_key = "/x.key"\n'
    )
    env = {
        "RECONCILER_CONFIG": str(cfg),
        "RECONCILER_PROVIDER__TIMEOUT_S": "9",
        "RECONCILER_MAILBOX__TRUST__VERIFY_DKIM": "true",
        "CREDENTIALS_DIRECTORY": str(creds),
    }
    done = run_cli("config", "show", "--json", env=env)
    assert done.returncode == 0, done.stderr
    for secret in ("File-Secret-123", "Cred-Secret-771", "Csd-Secret-552"):
        assert secret not in done.stdout + done.stderr
    body = json.loads(done.stdout)
    rows = {r["key"]: (r["value"], r["source"]) for r in body["settings"]}
    assert rows["ledger.path"] == (str(tmp_path / "l.db"), "file")
    assert rows["provider.timeout_s"] == (9.0, "environment")
    assert rows["mailbox.trust.verify_dkim"] == (True, "environment")
    assert rows["provider.password"] == ("***", "file")
    assert rows["mailbox.password"] == ("***", "credential")
    assert rows["issuers[0].csd_password"] == ("***", "credential")
    assert rows["issuers[0].rfc"] == ("AAA010101AAA", "file")
    assert rows["provider.endpoint"] == (None, "default")  # unset keys are listed too
    assert rows["schedule.retry_base_s"] == (30.0, "default")
    table = run_cli("config", "show", env=env)
    assert table.returncode == 0
    assert "File-Secret-123" not in table.stdout
    assert any(
        line.startswith("provider.timeout_s") and line.endswith("[environment]") for line in table.stdout.splitlines()
    )


def test_config_show_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[provider]\npassword = "Leak-Me-998"\ntimeout_s = "soon"\n')
    done = run_cli("config", "show", env={"RECONCILER_CONFIG": str(cfg)})
    assert done.returncode == 2
    assert done.stderr.startswith("reconciler: provider.timeout_s:") and done.stderr.count("\n") == 1
    assert "Leak-Me-998" not in done.stderr
