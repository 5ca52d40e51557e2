"""`reconciler config check` against real servers, and a bad value for each outside dependency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..harness import MAIL_PASSWORD, Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("preflight"), kind="pymap")
    yield s
    s.close()


def variant(stack: Stack, tmp_path: Path, old: str, new: str) -> str:
    text = stack.config.read_text()
    assert old in text
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new))
    return str(path)


def test_all_checks_pass_on_a_working_installation(stack: Stack) -> None:
    result = run_cli("--config", str(stack.config), "config", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "config"],
        ["ok", "ledger"],
        ["ok", "mailbox"],
        ["ok", "provider"],
    ]
    parsed = json.loads(run_cli("--config", str(stack.config), "config", "check", "--json").stdout)
    assert [c["ok"] for c in parsed] == [True] * 4


@pytest.mark.parametrize(
    ("old", "new", "failing", "fix"),
    [
        ("timeout_s = 2\n", "timeout_s = 'x'\n", "config", "edit the key named above"),
        ('security = "none"', 'security = "tls"', "mailbox", "check [mailbox] host, port, security"),
        ("[mailbox]\n", "[mailbox]\nauth = 'password'\n", None, None),
        ("/ws/services/Cancelacion?wsdl", "/nowhere", "provider", "check [provider] wsdl"),
    ],
)
def test_each_failure_names_the_part_and_a_fix(
    stack: Stack, tmp_path: Path, old: str, new: str, failing: str | None, fix: str | None
) -> None:
    result = run_cli("--config", variant(stack, tmp_path, old, new), "config", "check")
    assert "Traceback" not in result.stderr + result.stdout
    if failing is None:
        assert result.returncode == 0
        return
    assert result.returncode == 2
    bad = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(bad) == 1 and bad[0].split()[1] == failing and f"fix: {fix}" in bad[0]


def test_wrong_mailbox_password_is_reported_without_the_password(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("Wrong-Password-771")
    result = run_cli(
        "--config",
        variant(stack, tmp_path, str(stack.root / "secrets" / "mailbox"), str(tmp_path / "pw")),
        "config",
        "check",
    )
    assert result.returncode == 2 and "FAIL mailbox" in result.stdout
    assert "Wrong-Password-771" not in result.stdout + result.stderr
    assert MAIL_PASSWORD not in result.stdout + result.stderr
