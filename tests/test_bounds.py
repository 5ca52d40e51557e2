"""Bounded input: capped files, bounded numbers, one line for odd input, capped replies, 32-bit codes."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel

from reconciler import config as config_module
from reconciler.config import Settings, load_settings
from reconciler.configfile import CONFIG_LIMIT, SECRET_LIMIT
from reconciler.errors import ConfigError, ProviderError
from reconciler.jobs.validation import JobSpec, job_spec
from reconciler.mailbox.imap import oauth2_token
from reconciler.provider.codes import Outcome, StatusOutcome
from reconciler.provider.soap import ProviderClient, Reply, StatusReply
from reconciler.sandbox import Sandbox

from .conftest import run_cli
from .fixtures_sandbox import RFC, provider_settings

ZERO = "/dev/zero"


def new_job() -> JobSpec:
    return job_spec(str(uuidlib.uuid4())[:-1] + "1", RFC)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr)


# -- files read because a setting names them ------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["summary"], ["config", "check"], ["run", "--once"]])
def test_config_from_dev_zero_is_one_line(command: list[str]) -> None:
    result = run_cli("--config", ZERO, *command)  # a read without end would hit run_cli's timeout and fail
    out = result.stdout if command == ["config", "check"] else result.stderr
    assert f"config file {ZERO}: larger than 1 MiB (1048576 bytes); not read" in out
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_config_just_under_the_cap_is_read(tmp_path: Path) -> None:
    text = '[ledger]\npath = "/x/ledger.db"\n'
    cfg = write(tmp_path, text + "#" * (CONFIG_LIMIT - len(text) - 1) + "\n")
    assert load_settings(cfg).ledger.path == Path("/x/ledger.db")
    cfg.write_text(text + "#" * (CONFIG_LIMIT - len(text)) + "\n")
    with pytest.raises(ConfigError, match=r"larger than 1 MiB"):
        load_settings(cfg)


MAILBOX = '[mailbox]\nhost = "127.0.0.1"\nusername = "u"\n'
PROVIDER = '[provider]\nusuario = "u"\nnotify_email = "a@example.com"\n'


def test_password_file_from_dev_zero_is_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'{PROVIDER}password_file = "{ZERO}"\n{MAILBOX}password = "p"\n')
    err = one_line_error(run_cli("--config", str(cfg), "run", "--once"))
    assert f"provider.password_file: {ZERO}: larger than 64 KiB (65536 bytes); not read" in err


def test_every_secret_source_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (SECRET_LIMIT + 1))
    ok = tmp_path / "ok"
    ok.write_bytes(b"y" * (SECRET_LIMIT - 1) + b"\n")
    settings = load_settings(write(tmp_path, f'{MAILBOX}password_file = "{big}"\n'))
    with pytest.raises(ConfigError, match=r"^mailbox.password_file: .*big: larger than 64 KiB"):
        settings.mailbox_password()
    assert load_settings(write(tmp_path, f'{MAILBOX}password_file = "{ok}"\n')).mailbox_password().get_secret_value()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "provider_password").write_bytes(b"z" * (SECRET_LIMIT + 10))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with pytest.raises(ConfigError, match=r"^credential provider_password: .*: larger than 64 KiB"):
        load_settings(write(tmp_path, "")).provider_password()
    xoauth = load_settings(write(tmp_path, f'{MAILBOX}auth = "xoauth2"\noauth2_token_file = "{big}"\n'))
    with pytest.raises(ConfigError, match=r"^mailbox.oauth2_token_file: .*big: larger than 64 KiB"):
        oauth2_token(xoauth)
    cer = tmp_path / "huge.cer"
    cer.write_bytes(b"0" * ((1 << 20) + 1))
    csd = load_settings(
        write(
            tmp_path,
            f'[[issuers]]\nrfc = "{RFC}"\ncsd_cer = "{cer}"\ncsd_key = "{ok}"\ncsd_password = "p"\n',
        )
    )
    from reconciler.provider.csd import load_all

    with pytest.raises(ConfigError, match=rf"^issuers\[{RFC}\].csd_cer: .*huge.cer: larger than 1 MiB"):
        load_all(csd)


def test_deeply_nested_toml_is_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    for command in (["status"], ["run", "--once"]):
        err = one_line_error(run_cli("--config", str(cfg), *command))
        assert "invalid TOML: arrays or tables nested too deeply" in err
    nested_env = {"RECONCILER_MAILBOX__TRUST__ALLOWED_SENDERS": "[" * 20_000 + "]" * 20_000}
    err = one_line_error(run_cli("--config", str(write(tmp_path, "", "empty.toml")), "run", "--once", env=nested_env))
    assert "environment: a value is nested too deeply" in err


def test_import_of_an_endless_file_is_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n')
    err = one_line_error(run_cli("--config", str(cfg), "import", ZERO))
    assert f"{ZERO}: line 1: longer than 4096 characters; not a job file" in err


# -- numbers ---------------------------------------------------------------------------------------


def numeric_fields() -> list[tuple[str, type[BaseModel], str]]:
    """Every int or float setting, as (section, model, key): new ones are checked without listing them."""
    out: list[tuple[str, type[BaseModel], str]] = []

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for key, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(f"{prefix}.{key}" if prefix else key, annotation)
            elif annotation in (int, float, int | None, float | None):
                out.append((prefix, model, key))

    for section, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            walk(section, annotation)
    return out


NUMERIC = numeric_fields()


def test_the_numeric_settings_are_all_found() -> None:
    keys = {f"{s}.{k}" for s, _m, k in NUMERIC}
    assert {"provider.timeout_s", "provider.max_reply_bytes", "mailbox.port", "mailbox.timeout_s"} <= keys
    assert {f"schedule.{k}" for k in config_module.ScheduleSettings.model_fields} <= keys


@pytest.mark.parametrize(("section", "model", "key"), NUMERIC, ids=[f"{s}.{k}" for s, _m, k in NUMERIC])
def test_every_numeric_setting_is_bounded(section: str, model: type[BaseModel], key: str, tmp_path: Path) -> None:
    metadata = model.model_fields[key].metadata
    assert any(isinstance(m, annotated_types.Ge | annotated_types.Gt) for m in metadata), f"{section}.{key}: no floor"
    assert any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in metadata), f"{section}.{key}: no cap"
    for bad in ("inf", "-inf", "nan", "1e400", "9223372036854775808", "-1", "true", "99999999999999999999"):
        cfg = write(tmp_path, f"[{section}]\n{key} = {bad}\n")
        with pytest.raises(ConfigError, match=rf"^{section}.{key}: ") as caught:
            load_settings(cfg)
        assert "\n" not in str(caught.value)


def test_timeout_inf_from_the_environment_is_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"{PROVIDER}password = 'p'\n{MAILBOX}password = 'p'\n")
    for value in ("inf", "9223372036854775808", "1e309"):
        result = run_cli("--config", str(cfg), "run", "--once", env={"RECONCILER_MAILBOX__TIMEOUT_S": value})
        assert "mailbox.timeout_s: " in one_line_error(result)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[schedule]\nretry_base_s = 100\nretry_max_s = 10\n", "schedule: retry_base_s (100)"),
        ("[metrics]\nlisten = '127.0.0.1:99999'\n", "metrics.listen: expected host:port"),
        ("[metrics]\nlisten = '127.0.0.1:²'\n", "metrics.listen: expected host:port"),
        ("[provider]\nmax_reply_bytes = 1000\n", "provider.max_reply_bytes: must be greater than or equal"),
    ],
)
def test_related_and_shaped_numbers(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path, toml))


# -- replies ---------------------------------------------------------------------------------------


async def client_for(sb: Sandbox, tmp_path: Path, **provider: object) -> ProviderClient:
    return await ProviderClient.create(provider_settings(sb, tmp_path, **provider))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_reply_is_a_transient_failure(sandbox: Sandbox, tmp_path: Path, chunked: bool) -> None:
    job = new_job()
    sandbox.hostile.set(job.uuid, size=50_000_000, chunked=chunked)
    client = await client_for(sandbox, tmp_path)
    try:
        r = await client.cancel(job)
        s = await client.status(job.uuid)
        sandbox.hostile.clear(job.uuid)
        after = await client.cancel(job)  # the pools survive a reply cut short
    finally:
        await client.aclose()
    assert (r.code, r.classification.outcome) == (None, Outcome.TRANSIENT)
    assert r.message == "reply larger than 2097152 bytes (provider.max_reply_bytes)"
    assert (s.code, s.outcome, s.message) == (None, StatusOutcome.TRANSIENT, r.message)
    assert (after.code, after.classification.outcome) == (200, Outcome.ACCEPTED)


async def test_a_reply_at_the_cap_is_read(sandbox: Sandbox, tmp_path: Path) -> None:
    job = new_job()
    sandbox.hostile.set(job.uuid, status="987", size=64 * 1024, chunked=True)
    client = await client_for(sandbox, tmp_path, max_reply_bytes=64 * 1024)
    try:
        r = await client.cancel(job)
        sandbox.hostile.set(job.uuid, status="987", size=64 * 1024 + 1, chunked=True)
        over = await client.cancel(job)
    finally:
        await client.aclose()
    assert (r.code, r.classification.known) == (987, False) and len(r.message) > 60_000
    assert over.message == "reply larger than 65536 bytes (provider.max_reply_bytes)"


async def both_replies(sb: Sandbox, tmp_path: Path, job: JobSpec) -> tuple[Reply, StatusReply]:
    """The client's ``cancelarAsincrono`` and ``getStatusCancelacionAsincrona`` replies for ``job``."""
    client = await client_for(sb, tmp_path)
    try:
        return await client.cancel(job), await client.status(job.uuid)
    finally:
        await client.aclose()


STATUS_TEXTS = ["abc", "200.0", "99999999999999999999", "-2147483649", "2147483648", "²", "", "0x10", "1e3"]


@pytest.mark.parametrize("text", STATUS_TEXTS)
async def test_a_status_that_is_not_a_32_bit_integer_is_transient(sandbox: Sandbox, tmp_path: Path, text: str) -> None:
    job = new_job()
    sandbox.hostile.set(job.uuid, status=text, mensaje="hola")
    r, s = await both_replies(sandbox, tmp_path, job)
    assert (r.code, r.classification.outcome) == (None, Outcome.TRANSIENT)
    assert (s.code, s.outcome) == (None, StatusOutcome.TRANSIENT)
    assert r.message.startswith("malformed reply: ") and "\n" not in r.message
    assert s.message == r.message
    if text.lstrip("-").isascii() and text.lstrip("-").isdigit():
        assert r.message == f"malformed reply: status {int(text)} is not a 32-bit integer"


@pytest.mark.parametrize("text", ["2147483647", "-2147483648", " 987 "])
async def test_32_bit_edges_are_codes(sandbox: Sandbox, tmp_path: Path, text: str) -> None:
    job = new_job()
    sandbox.hostile.set(job.uuid, status=text)
    r, s = await both_replies(sandbox, tmp_path, job)
    assert r.code == s.code == int(text) and r.classification.known is False
    assert s.outcome is StatusOutcome.TRANSIENT


class _Endless(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"<!--" + b"x" * 65_000 + b"-->"
        try:
            for _ in range(2_000):  # 130 MB if nobody stops reading
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endless_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ws/services/Cancelacion?wsdl"
    server.shutdown()
    server.server_close()


async def test_an_endless_wsdl_is_one_line(endless_url: str, tmp_path: Path) -> None:
    settings = provider_settings(None, tmp_path, wsdl=endless_url)
    with pytest.raises(ProviderError, match=r"reply larger than 2097152 bytes") as caught:
        await ProviderClient.create(settings)
    assert "\n" not in str(caught.value)
    endless_file = provider_settings(None, tmp_path, wsdl=ZERO)
    with pytest.raises(ConfigError, match=r"^provider.wsdl: /dev/zero: larger than 2 MiB"):
        await ProviderClient.create(endless_file)


@pytest.mark.parametrize("value", ["²", "٣", "１２", "2_000", "+", "", None, True, 2**31, -(2**31) - 1, 1.0])
def test_int_takes_32_bit_ascii_integers_only(value: object) -> None:
    """zeep parses xs:int first; this is the last check before a code reaches the ledger."""
    from reconciler.provider.soap import _int

    assert _int(value) is None
    assert _int(" +201 ") == 201 and _int(-(2**31)) == -(2**31)
