"""An issuer's CSD: the certificate and key go together (one check, one message), read once, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import credential_name, load_settings
from reconciler.errors import ConfigError
from reconciler.provider.csd import load, load_all

RFC = "EKU9003173C9"
KEY_PASSWORD = "csd-key-Pa55word"
BASE = f'[provider]\nusuario = "u"\npassword = "p"\nnotify_email = "n@example.com"\n[[issuers]]\nrfc = "{RFC}"\n'


def config(tmp_path: Path, issuer_lines: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE + issuer_lines)
    return path


@pytest.mark.parametrize("only", ["csd_cer", "csd_key"])
def test_one_file_without_the_other_is_one_line_from_every_path(tmp_path: Path, only: str) -> None:
    (tmp_path / "f").write_bytes(b"x")
    settings = load_settings(config(tmp_path, f'{only} = "{tmp_path / "f"}"\ncsd_password = "{KEY_PASSWORD}"\n'))
    message = rf"^issuers\[{RFC}\]: csd_cer and csd_key go together; set both or neither$"
    for path in (
        settings.require_provider,
        lambda: load_all(settings),
        lambda: settings.csd_password(settings.issuers[0]),
    ):
        with pytest.raises(ConfigError, match=message):
            path()


def test_a_pair_is_read_with_its_password_from_the_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.cer").write_bytes(b"CER-BYTES")
    (tmp_path / "a.key").write_bytes(b"KEY-BYTES")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / credential_name("csd_password", RFC)).write_text(KEY_PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(config(tmp_path, f'csd_cer = "{tmp_path / "a.cer"}"\ncsd_key = "{tmp_path / "a.key"}"\n'))
    settings.require_provider()
    csd = load_all(settings)[RFC]
    assert (csd.cer, csd.key, csd.password) == (b"CER-BYTES", b"KEY-BYTES", KEY_PASSWORD)
    assert "KEY-BYTES" not in repr(csd) and KEY_PASSWORD not in repr(csd)


def test_no_csd_is_none_and_a_missing_file_names_the_key(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, ""))
    assert load(settings, settings.issuers[0]) is None and load_all(settings) == {}
    (tmp_path / "a.cer").write_bytes(b"CER")
    missing = tmp_path / "gone.key"
    settings = load_settings(
        config(tmp_path, f'csd_cer = "{tmp_path / "a.cer"}"\ncsd_key = "{missing}"\ncsd_password = "{KEY_PASSWORD}"\n')
    )
    with pytest.raises(ConfigError, match=rf"^issuers\[{RFC}\].csd_key: file not found: {missing}$"):
        settings.require_provider()
    with pytest.raises(ConfigError, match=rf"^issuers\[{RFC}\].csd_key: cannot read {missing}: No such file"):
        load_all(settings)
