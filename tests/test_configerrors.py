"""Config errors that tell the truth, through the real CLI: where the value came from, in reconciler's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_cli

PYDANTIC_WORDS = ("Value error", "Input should", "<class", "pydantic", "Traceback", "validation error")


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[ledger]\npath = "{tmp_path / "l.db"}"\n[provider]\nusuario = "u"\n')
    return path


def one_error_line(stderr: str) -> str:
    assert stderr.count("\n") == 1, stderr
    assert not any(w in stderr for w in PYDANTIC_WORDS), stderr
    return stderr.strip()


def test_a_bad_value_from_the_environment_says_so(cfg: Path) -> None:
    env = {"RECONCILER_CONFIG": str(cfg), "RECONCILER_PROVIDER__TIMEOUT_S": "soon"}
    shown = run_cli("config", "show", env=env)
    assert shown.returncode == 2
    assert one_error_line(shown.stderr) == (
        "reconciler: provider.timeout_s: must be a number (got 'soon'); "
        "the value comes from the environment variable RECONCILER_PROVIDER__TIMEOUT_S"
    )
    check = run_cli("config", "check", env=env)
    assert check.returncode == 2
    assert "fix: correct or unset the environment variable RECONCILER_PROVIDER__TIMEOUT_S" in check.stdout
    assert "c.toml" not in check.stdout  # not "edit the key in config.toml": the file is fine


def test_the_same_bad_value_in_the_file_names_the_file(cfg: Path) -> None:
    cfg.write_text(cfg.read_text() + "timeout_s = 'soon'\n")
    check = run_cli("config", "check", env={"RECONCILER_CONFIG": str(cfg)})
    assert check.returncode == 2
    assert "provider.timeout_s: must be a number (got 'soon') -> fix: edit the key named above in" in check.stdout
    assert "environment" not in check.stdout


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (("config", "show"), "RECONCILER_PROVIDER__TIMEOUT"),
        # the read commands' fast path (no pydantic) refuses it too: a typo would read the default ledger
        (("status",), "RECONCILER_LEDGR__PATH"),
    ],
)
def test_an_unknown_reconciler_variable_is_an_error(cfg: Path, command: tuple[str, ...], variable: str) -> None:
    env = {"RECONCILER_CONFIG": str(cfg), variable: "5"}
    done = run_cli(*command, env=env)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == f"reconciler: {variable}: unknown environment variable (no such setting)"


def test_the_read_commands_know_every_setting() -> None:
    from reconciler.config import Settings
    from reconciler.configfile import KNOWN_KEYS
    from reconciler.configsources import known_keys

    assert known_keys(Settings) == KNOWN_KEYS


@pytest.mark.parametrize("command", [("status",), ("config", "show"), ("run", "--once")])
def test_an_empty_ledger_path_variable_is_an_error_not_the_current_directory(
    cfg: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = {"RECONCILER_CONFIG": str(cfg), "RECONCILER_LEDGER__PATH": ""}
    done = run_cli(*command, env=env)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert line.startswith("reconciler: ledger.path: must not be empty")
    assert line.endswith("the value comes from the environment variable RECONCILER_LEDGER__PATH")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[mailbox]\nsecurity = 'ssl'\n", "mailbox.security: must be 'tls', 'starttls' or 'none' (got 'ssl')"),
        ("[mailbox]\nca_file = 1\n", "mailbox.ca_file: must be a path (a string) (got 1)"),
        ("[mailbox]\nport = 'imap'\n", "mailbox.port: must be a whole number (got 'imap')"),
        ("[metrics]\nlisten = '127.0.0.1:99999999999999999999'\n", "metrics.listen: expected host:port"),
        ("[[issuers]]\nrfc = 'x'\n", "issuers[0].rfc: an RFC has 12 or 13 characters"),
        ("[ledger]\npath = ''\n", "ledger.path: must not be empty"),
    ],
)
def test_pydantic_wording_never_reaches_the_user(tmp_path: Path, toml: str, expected: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    done = run_cli("config", "show", env={"RECONCILER_CONFIG": str(cfg)})
    assert done.returncode == 2
    assert one_error_line(done.stderr).startswith(f"reconciler: {expected}")
