from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_settings
from reconciler.configfile import ledger_path
from reconciler.errors import ConfigError

from .conftest import run_cli

SECRET = "s3cr3t-Pa55-never-shown"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_documents_every_key() -> None:
    root = Path(__file__).resolve().parent.parent
    settings = load_settings(root / "config.example.toml")
    text = (root / "config.example.toml").read_text()
    for section, model in [
        ("ledger", settings.ledger),
        ("provider", settings.provider),
        ("mailbox", settings.mailbox),
        ("schedule", settings.schedule),
        ("metrics", settings.metrics),
        ("mailbox.trust", settings.mailbox.trust),
    ]:
        assert f"[{section}]" in text
        for key in type(model).model_fields:
            if key != "trust":
                assert f"{key} =" in text, f"{section}.{key} is not documented in config.example.toml"
    for key in ("rfc", "csd_cer", "csd_key", "csd_password", "csd_password_file"):
        assert f"{key} =" in text


def test_env_overrides_toml_and_fast_path_agrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, '[ledger]\npath = "/from/toml.db"\n[provider]\ntimeout_s = 5\n')
    assert load_settings(cfg).ledger.path == ledger_path(cfg) == Path("/from/toml.db")
    monkeypatch.setenv("RECONCILER_LEDGER__PATH", "/from/env.db")
    monkeypatch.setenv("RECONCILER_PROVIDER__TIMEOUT_S", "7.5")
    settings = load_settings(cfg)
    assert settings.ledger.path == ledger_path(cfg) == Path("/from/env.db")
    assert settings.provider.timeout_s == 7.5
    monkeypatch.setenv("RECONCILER_CONFIG", str(cfg))
    assert load_settings().provider.timeout_s == 7.5


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[provider]\ntimeout_s = 'soon'\n", "provider.timeout_s: must be a number"),
        ("[provider]\nmax_concurrency = 0\n", "provider.max_concurrency: must be greater than or equal to 1"),
        ("[mailbox]\nsecurity = 'ssl'\n", "mailbox.security: must be 'tls', 'starttls' or 'none'"),
        ("[mailbox]\nhots = 'x'\n", "mailbox.hots: unknown key"),
        ("[[issuers]]\nrfc = 'BAD'\n", "issuers[0].rfc: an RFC has 12 or 13 characters"),
        ("[provider]\nnotify_email = 'nobody'\n", "provider.notify_email: not an email address"),
        ("[ledger\npath = 1\n", "invalid TOML"),
    ],
)
def test_bad_setting_is_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_explicit_config_and_bad_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config file .*nope.toml: not found"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("RECONCILER_PROVIDER__MAX_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="provider.max_concurrency"):
        load_settings(write(tmp_path, ""))


def test_secrets_from_value_file_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    settings = load_settings(write(tmp_path, f'[provider]\nusuario = "u"\npassword_file = "{tmp_path / "pw"}"\n'))
    assert settings.provider_password().get_secret_value() == SECRET
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mailbox_password").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(write(tmp_path, f'[provider]\npassword = "{SECRET}"\n'))
    assert settings.mailbox_password().get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    with pytest.raises(ConfigError, match=r"^provider.notify_email: missing"):
        load_settings(write(tmp_path, f'[provider]\nusuario = "u"\npassword = "{SECRET}"\n')).require_provider()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"^mailbox.password: missing \(set password, password_file, or the systemd"):
        settings.mailbox_password()


def test_secret_never_echoed_in_errors(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[provider]\npassword = ["{SECRET}"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert SECRET not in str(info.value) and "provider.password" in str(info.value)


def test_cli_reports_config_errors_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[ledger]\npath = 3\n")
    result = run_cli("--config", str(cfg), "status")
    assert result.returncode == 2
    assert result.stderr.strip() == "reconciler: ledger.path: must be a non-empty string, got 3"
    result = run_cli("--config", str(tmp_path / "missing.toml"), "summary")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("missing.toml: not found")
