"""The loopback config renderer: what it writes is what the product reads."""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import load_settings
from reconciler.sandbox.config import TESTING_PASSWORD, TESTING_USER, render_config, table, toml_value, write_config


@dataclass
class Box:
    host: str = "127.0.0.1"
    port: int = 14300
    user: str = "facturas"
    password: str = 'pa"ss\\word ñ'


def test_the_product_reads_what_is_written(tmp_path: Path) -> None:
    odd = tmp_path / 'dir "quoted" \\ back ñ'
    odd.mkdir()
    config = write_config(
        odd,
        wsdl="http://127.0.0.1:1/ws?wsdl",
        imap=Box(),
        notify_email="n@example.com",
        provider={"timeout_s": 2.5, "max_concurrency": 3},
        mailbox={"idle": False, "processed_folder": None, "poll_interval_s": 1},
        trust={"allowed_senders": ["a@x.example", "*@y.example"], "confirm_with_status": False},
        schedule={"retry_base_s": 0.2, "retry_max_s": 2},
        extra='[metrics]\nlisten = "127.0.0.1:9999"',
    )
    s = load_settings(config)
    assert s.ledger.path == odd / "state" / "ledger.sqlite3"
    assert (s.provider.wsdl, s.provider.usuario, s.provider.notify_email) == (
        "http://127.0.0.1:1/ws?wsdl",
        TESTING_USER,
        "n@example.com",
    )
    assert (s.provider.timeout_s, s.provider.max_concurrency) == (2.5, 3)
    assert (s.mailbox.host, s.mailbox.port, s.mailbox.username, s.mailbox.security) == (
        "127.0.0.1",
        14300,
        "facturas",
        "none",
    )
    assert (s.mailbox.idle, s.mailbox.processed_folder, s.mailbox.poll_interval_s) == (False, None, 1)
    assert s.mailbox.trust.allowed_senders == ["a@x.example", "*@y.example"]
    assert s.mailbox.trust.confirm_with_status is False
    assert (s.schedule.retry_base_s, s.schedule.retry_max_s) == (0.2, 2)
    assert s.metrics.listen == "127.0.0.1:9999"
    # The secrets are in their files, 0600 in a 0700 directory, never in the config text.
    assert s.provider.password_file is not None and s.mailbox.password_file is not None
    assert s.provider.password_file.read_text() == TESTING_PASSWORD
    assert s.mailbox.password_file.read_text() == Box().password
    for path in (s.provider.password_file, s.mailbox.password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((odd / "secrets").stat().st_mode) == 0o700
    text = config.read_text()
    assert TESTING_PASSWORD not in text and Box().password not in text


def test_defaults_are_the_loopback_ones(tmp_path: Path) -> None:
    text = render_config(
        ledger=tmp_path / "l.sqlite3",
        wsdl="http://127.0.0.1:1/?wsdl",
        imap=Box(),
        provider_password_file=tmp_path / "p",
        mailbox_password_file=tmp_path / "m",
        comment="first line\nsecond line",
    )
    assert text.startswith("# first line\n# second line\n[ledger]\n")
    data = tomllib.loads(text)
    assert data["mailbox"]["trust"] == {"allowed_senders": ["*@solucionfactible.com"], "confirm_with_status": True}
    assert data["provider"]["notify_email"] == "facturas@example.com" and "password" not in data["provider"]
    assert data["schedule"] == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (3, "3"), (0.25, "0.25"), ('a"b\\c\n', '"a\\"b\\\\c\\n"'), ([], "[]")],
)
def test_toml_values(value: object, text: str) -> None:
    assert toml_value(value) == text  # type: ignore[arg-type]
    assert tomllib.loads(f"k = {text}")["k"] == value


def test_a_non_finite_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        toml_value(float("inf"))


def test_whole_tables_and_entries_of_arrays_of_tables_read_back(tmp_path: Path) -> None:
    extra = "\n".join(
        [
            table("sat", {"enabled": True, "early_s": [0.5, 1, 2], "url": 'http://h/"q"', "gone": None}),
            table("webhooks", {"url": "http://a/", "name": "a"}, array=True),
            table("webhooks", {"url": "http://b/", "name": "b"}, array=True),
        ]
    )
    data = tomllib.loads(extra)
    assert data["sat"] == {"enabled": True, "early_s": [0.5, 1, 2], "url": 'http://h/"q"'}
    assert data["webhooks"] == [{"url": "http://a/", "name": "a"}, {"url": "http://b/", "name": "b"}]
