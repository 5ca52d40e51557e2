"""Bad input: the notification parser, CSV import, every CLI argument, broken SOAP replies and WSDLs.

Never a traceback, never a partial write, a clear message each time. Hypothesis runs
derandomized (the same examples every run) and without its example database.
"""

from __future__ import annotations

import email
import http.server
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import cli, main
from reconciler.config import Settings, TrustSettings
from reconciler.errors import ConfigError, ProviderError, ValidationError
from reconciler.jobs.jobfile import parse_jobs
from reconciler.jobs.validation import JobSpec, job_spec
from reconciler.mailbox.notification import Malformed, Notification, NotNotification, parse
from reconciler.mailbox.trust import assess, parse_authentication_results
from reconciler.provider.soap import ProviderClient
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sandbox.notify import Notification as SimNotification
from reconciler.sandbox.notify import build_message

from ..fixtures_imap import notification
from ..harness import generated_uuids

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
STDLIB_DATA = Path(email.__file__).parent.parent / "test" / "test_email" / "data"
UUID_RE = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")
GATED = TrustSettings(authserv_id="mx.example.com")
RFC = "AAA010101AAA"


# -- the notification parser --------------------------------------------------------------------


def _seeds() -> list[bytes]:
    from datetime import UTC, datetime

    uuid = generated_uuids(1, seed=3)[0]
    sim = SimNotification(uuid=uuid, status="OK", to="facturas@example.com", rfc=RFC, message=uuid)
    seeds = [
        notification(uuid),
        notification(uuid, "ERROR", extra="Authentication-Results: mx.example.com; dkim=pass header.d=x.com\r\n"),
        bytes(build_message(sim, "notificaciones@solucionfactible.com", "Solución Factible", datetime.now(UTC))),
    ]
    if STDLIB_DATA.is_dir():
        seeds += [p.read_bytes() for p in sorted(STDLIB_DATA.iterdir()) if p.is_file()]
    return seeds


SEEDS = _seeds()
HEADERS = ["X-SFService: Cancelar", "X-SFService: cancelar ", "X-UUIDCancelacion: ", "X-StatusCancelacion: OK"]
checked = [0]


def _check(data: bytes) -> None:
    """What parse must guarantee for any bytes whatsoever."""
    checked[0] += 1
    result = parse(data)
    assert isinstance(result, Notification | NotNotification | Malformed)
    if isinstance(result, Malformed):
        assert result.reason and "\n" not in result.reason and len(result.reason) < 2000
    if isinstance(result, Notification):
        assert UUID_RE.fullmatch(result.uuid) and result.status in ("OK", "ERROR")
        for text in (result.message_id, result.sender, result.raw_from):
            assert text is None or (text.isprintable() and len(text) <= 998), repr(text)
        for header in result.authentication_results:
            parse_authentication_results(header)
        for trust in (TrustSettings(), GATED):
            verdict = assess(result, trust)
            assert verdict.reason


def _mutate(seed: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for kind, pos, length, chunk in edits:
        at = pos % (len(data) + 1)
        if kind == 0:
            data[at:at] = chunk
        elif kind == 1:
            del data[at : at + length]
        elif kind == 2:
            data[at : at + len(chunk)] = chunk
        else:  # a notification header dropped in: makes the stdlib's messages "ours"
            data[at:at] = HEADERS[length % len(HEADERS)].encode() + chunk[:40] + b"\r\n"
    return bytes(data)


edit = st.tuples(
    st.integers(0, 3),
    st.integers(0, 1 << 16),
    st.integers(0, 64),
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\r\n", b"\n\n", b"\r\n ", b":", b"=?utf-8?q?", b"?=", b"<", b">", b"@", b"\x00", b"\xff"]),
    ),
)


@pytest.mark.timeout(300)
def test_parser_never_raises_on_10000_hostile_inputs() -> None:
    checked[0] = 0

    @settings(FUZZ, max_examples=3000)
    @given(st.binary(max_size=4096))
    def arbitrary(data: bytes) -> None:
        _check(data)

    @settings(FUZZ, max_examples=4500)
    @given(st.sampled_from(SEEDS), st.lists(edit, min_size=1, max_size=8))
    def mutated(seed: bytes, edits: list[tuple[int, int, int, bytes]]) -> None:
        _check(_mutate(seed, edits))

    name = st.sampled_from(["From", "Message-ID", "Date", "X-SFService", "X-UUIDCancelacion", "X-StatusCancelacion", "Authentication-Results", "Sender"])  # fmt: skip
    value = st.one_of(
        st.text(max_size=120),
        st.sampled_from(["Cancelar", "OK", "ERROR", "ok", "=?utf-8?b?T0s=?=", generated_uuids(1, 9)[0], "<a@b>"]),
    )

    @settings(FUZZ, max_examples=3000)
    @given(st.lists(st.tuples(name, value), max_size=12))
    def structured(headers: list[tuple[str, str]]) -> None:
        raw = "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\nbody\r\n"
        _check(raw.encode("utf-8", "surrogateescape"))

    arbitrary()
    mutated()
    structured()
    for seed in SEEDS:  # each real message as it is
        _check(seed)
    assert checked[0] >= 10_000, checked[0]


def test_stdlib_messages_are_used_when_present() -> None:
    if not STDLIB_DATA.is_dir():
        pytest.skip(f"the standard library's email test data is not installed ({STDLIB_DATA})")
    assert len(SEEDS) > 20


# -- CSV import -------------------------------------------------------------------------------------

GOOD_ROWS = [f"{u},{RFC}" for u in generated_uuids(5, seed=4)]
cell = st.one_of(
    st.sampled_from(["", " ", "02", "01", "05", RFC, "XAXX010101000", generated_uuids(1, 8)[0], '"', '""', ",", "\r", "\ufeff"]),
    st.text(max_size=40),
)  # fmt: skip


@settings(FUZZ, max_examples=1500)
@given(
    st.sampled_from(["uuid,rfc", "uuid,rfc,motivo,folio_sustitucion", "UUID, RFC", "uuid", "rfc,uuid,uuid", ""]),
    st.lists(st.one_of(st.sampled_from(GOOD_ROWS), st.lists(cell, max_size=5).map(",".join)), max_size=8),
)
def test_parse_jobs_returns_jobs_or_one_validation_error(header: str, rows: list[str]) -> None:
    text = "\n".join([header, *rows]) + "\n"
    try:
        specs = parse_jobs(text.splitlines(keepends=True), "f.csv")
    except ValidationError as e:
        assert str(e).startswith("f.csv: ") and "\n" not in str(e)
        return
    assert all(isinstance(s, JobSpec) for s in specs)
    assert len({s.uuid for s in specs}) == len(specs)


@contextmanager
def in_process() -> Iterator[Any]:
    """``main()`` in this process: (code, stdout, stderr) through click's isolation."""
    runner = CliRunner()

    def call(*args: str, input: bytes | str | None = None) -> tuple[int, str, str]:
        old = sys.argv
        sys.argv = ["reconciler", *args]
        try:
            with runner.isolation(input=input) as (out, err, _):
                try:
                    main()
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                sys.stdout.flush()
                sys.stderr.flush()
                stdout, stderr = out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
        finally:
            sys.argv = old
        return code, stdout, stderr

    yield call


def _jobs(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    db = sqlite3.connect(ledger)
    try:
        return int(
            db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            + db.execute("SELECT count(*) FROM events").fetchone()[0]
        )
    finally:
        db.close()


@pytest.fixture
def ledger_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(f'[ledger]\npath = "{ledger}"\n')
    return config, ledger


@pytest.mark.timeout(120)
def test_import_cli_is_all_or_nothing(ledger_config: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = ledger_config
    good = "uuid,rfc\n" + "\n".join(GOOD_ROWS) + "\n"
    cases: list[tuple[str, bytes]] = [
        ("bad last row", (good + "not-a-uuid,XYZ\n").encode()),
        ("bad first row", ("uuid,rfc\nzzz," + RFC + "\n" + "\n".join(GOOD_ROWS) + "\n").encode()),
        ("not UTF-8", good.encode() + b"\xff\xfe," + RFC.encode() + b"\n"),
        ("NUL byte", good.encode() + b"\x00\n"),
        ("huge field", good.encode() + b"x" * 200_000 + b"," + RFC.encode() + b"\n"),
        ("unterminated quote", (good + '"abc,' + RFC + "\n").encode()),
        ("duplicate", (good + GOOD_ROWS[0] + "\n").encode()),
        ("empty", b""),
        ("header only garbage", b"\xef\xbb\xbf\xff\n"),
        ("binary", bytes(range(256)) * 4),
    ]
    with in_process() as call:
        for name, content in cases:
            path = tmp_path / f"{name}.csv"
            path.write_bytes(content)
            for arg, stdin in ((str(path), None), ("-", content)):
                before = _jobs(ledger)
                code, out, err = call("--config", str(config), "import", arg, input=stdin)
                assert code == 2, (name, arg, code, out, err)
                assert _reported(err), (name, err)
                assert "Traceback" not in out + err
                assert _jobs(ledger) == before, f"{name}: partial write"
        code, out, err = call("--config", str(config), "import", str(tmp_path))
        assert code == 2 and "Traceback" not in err
        path = tmp_path / "good.csv"
        path.write_text(good)
        assert call("--config", str(config), "import", str(path))[0] == 0
        assert _jobs(ledger) == 2 * len(GOOD_ROWS)


def _reported(err: str) -> bool:
    """Each bad row on its own line (issue 13: every one reported), then one ``reconciler:`` line."""
    lines = err.splitlines()
    return bool(lines) and lines[-1].startswith("reconciler: ") and all(": line " in x for x in lines[:-1])


@settings(FUZZ, max_examples=150)
@given(st.lists(st.one_of(st.sampled_from(GOOD_ROWS), st.lists(cell, max_size=4).map(",".join)), max_size=6))
def test_import_cli_fuzzed(rows: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ledger = Path(d) / "ledger.sqlite3"
        config = Path(d) / "config.toml"
        config.write_text(f'[ledger]\npath = "{ledger}"\n')
        csv = Path(d) / "jobs.csv"
        csv.write_text("uuid,rfc\n" + "\n".join(rows) + "\n", encoding="utf-8", errors="surrogateescape")
        with in_process() as call:
            code, out, err = call("--config", str(config), "import", str(csv), "--json")
        assert code in (0, 2), (code, out, err)
        assert "Traceback" not in out + err
        if code == 2:
            assert _reported(err) and _jobs(ledger) == 0
        else:
            import json

            queued = json.loads(out)["queued"]
            db = sqlite3.connect(ledger)
            try:
                assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == queued
            finally:
                db.close()


# -- every CLI argument ------------------------------------------------------------------------------

ODD = [
    "", " ", "-", "--", "x" * 5000, "ñandú", "💥", "\udcff\udcfe", "-1", "0", "9" * 40, "1e309", "nan",
    "'; DROP TABLE jobs; --", "%s%n%x", "{uuid}", "\t\n", "/", "nodir/x.csv",
    "{" + generated_uuids(1, 6)[0].lower() + "}",
]  # fmt: skip
IN_PROCESS = ("submit", "import", "status", "summary", "check", "acuse", "export", "resume")
VALID = {
    "submit": [generated_uuids(1, 7)[0], "--rfc", RFC],
    "import": ["jobs.csv"],
    "acuse": [generated_uuids(1, 7)[0]],
}


def _odd_argvs(name: str, command: click.Command) -> Iterator[list[str]]:
    base = VALID.get(name, [])
    for param in command.params:
        if param.name == "help":
            continue
        for value in ODD:
            if isinstance(param, click.Argument):
                yield [value if a == base[0] else a for a in base] if base else [value]
            elif isinstance(param, click.Option) and param.is_flag:
                yield [*base, f"{param.opts[0]}={value}"]
            else:
                assert isinstance(param, click.Option)
                opt = param.opts[0]
                rest = list(base)
                if opt in rest:  # replace the valid value of a required option
                    i = rest.index(opt)
                    rest[i + 1] = value
                    yield rest
                else:
                    yield [*rest, opt, value]


@pytest.mark.timeout(180)
def test_every_cli_argument_with_odd_values(ledger_config: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = ledger_config
    (tmp_path / "jobs.csv").write_text("uuid,rfc\n" + "\n".join(GOOD_ROWS) + "\n")
    ran = 0
    with in_process() as call:
        assert call("--config", str(config), "import", "jobs.csv")[0] == 0
        for name in IN_PROCESS:
            for argv in _odd_argvs(name, cli.commands[name]):
                before = _jobs(ledger) if name != "submit" and name != "import" else None
                code, out, err = call("--config", str(config), name, *argv)
                ran += 1
                allowed = {0, 1, 2, 3} if name == "check" else {0, 1, 2}
                assert code in allowed, (name, argv, code, out, err)
                assert "Traceback" not in out + err, (name, argv, err)
                if code != 0 and name != "check":  # one line, or click's usage block ending in one
                    assert err.startswith(("reconciler: ", "Error: ")) or "\nError: " in err, (name, argv, err)
                if before is not None and name != "resume":
                    assert _jobs(ledger) == before, (name, argv)
        for value in ODD:  # the global option, with the read commands
            if value in ("-", "--"):
                continue
            code, out, err = call("--config", value, "status")
            ran += 1
            assert code in (1, 2) and "Traceback" not in err and err.strip(), (value, code, err)
    assert ran > 300
    # The three that start servers or the daemon: in a subprocess, only values that must be refused.
    outside = [
        ["run", "--log-level", "chatty"],
        ["run", "--once=yes"],
        ["demo", "--jobs", "many"],
        ["demo", "--jobs", "1e309"],
        ["sandbox", "--port", "abc"],
        ["sandbox", "--port", "70000"],
        ["sandbox", "--fault-rate", "2"],
        ["sandbox", "--faults", "bogus"],
        ["sandbox", "--imap-host", "127.0.0.1"],
    ]
    for argv in outside:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "--config", str(config), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ},
        )
        assert done.returncode == 2, (argv, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip(), (argv, done.stderr)


# -- malformed SOAP replies and WSDLs --------------------------------------------------------------------

ENVELOPE = (
    '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
)
RESPONSE = '<ns:cancelarAsincronoResponse xmlns:ns="http://cancelacion.ws.solucionfactible.com"><ns:return>{}</ns:return></ns:cancelarAsincronoResponse>'
BOMB = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>'
REPLIES: dict[str, tuple[int, str, bytes]] = {
    "empty": (200, "text/xml", b""),
    "not xml": (200, "text/xml", b"<not xml"),
    "html": (200, "text/html", b"<html><body>Please log in</body></html>"),
    "json": (200, "application/json", b"{}"),
    "empty body": (200, "text/xml", ENVELOPE.format("").encode()),
    "no status": (200, "text/xml", ENVELOPE.format(RESPONSE.format("<ax:mensaje>x</ax:mensaje>")).encode()),
    "status abc": (200, "text/xml", ENVELOPE.format(RESPONSE.format("<ax:status>abc</ax:status>")).encode()),
    "entity bomb": (200, "text/xml", BOMB.encode()),
    "huge": (200, "text/xml", b"<a>" + b"x" * 5_000_000 + b"</a>"),
    "500 xml not a fault": (500, "text/xml", b"<error/>"),
    "truncated": (200, "text/xml", ENVELOPE.format(RESPONSE.format("<ax:status>200")).encode()[:120]),
}


class _Broken(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, ctype, body = self.server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def broken() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.daemon_threads = True
    server.reply = (200, "text/xml", b"")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def simulator() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(notify_delay_s=0.1)) as sb:
        yield sb


def _settings(tmp_path: Path, wsdl: str, **provider: Any) -> Settings:
    return Settings(
        ledger={"path": tmp_path / "state" / "ledger.sqlite3"},
        provider={
            "wsdl": wsdl,
            "usuario": "testing@solucionfactible.com",
            "password": "timbrado.SF.16672",
            "notify_email": "facturas@example.com",
            "timeout_s": 5,
            **provider,
        },
    )


async def test_malformed_soap_replies_are_transient_replies(simulator: Sandbox, broken: Any, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{broken.server_address[1]}/ws/services/Cancelacion"
    client = await ProviderClient.create(_settings(tmp_path, simulator.wsdl_url, endpoint=endpoint))
    try:
        for name, reply in REPLIES.items():
            broken.reply = reply
            answer = await client.cancel(job_spec(generated_uuids(1, 5)[0], RFC))
            assert answer.code is None, (name, answer)
            assert answer.classification.outcome.name != "ACCEPTED"
            assert "\n" not in answer.message and 0 < len(answer.message) <= 400, (name, answer.message)
            status = await client.status(generated_uuids(1, 5)[0])
            assert status.code is None and status.acuse is None, (name, status)
    finally:
        await client.aclose()


def _wsdls(simulator: Sandbox, tmp_path: Path, broken: Any) -> dict[str, str]:
    real = simulator.wsdl.decode()
    variants = {
        "empty": "",
        "not xml": "this is not a WSDL",
        "truncated": real[: len(real) // 2],
        "html": "<html><body>Service unavailable</body></html>",
        "other xml": "<a/>",
        "entity bomb": BOMB,
        "no such port": real.replace('port name="CancelacionHttpsSoap11Endpoint"', 'port name="Other"'),
        "missing operation": real.replace('operation name="getStatusCancelacionAsincrona"', 'operation name="other"'),
    }
    out: dict[str, str] = {}
    for name, text in variants.items():
        path = tmp_path / f"{name.replace(' ', '-')}.wsdl"
        path.write_text(text)
        out[name] = str(path)
    out["missing file"] = str(tmp_path / "absent.wsdl")
    out["a directory"] = str(tmp_path)
    out["http 404"] = f"http://127.0.0.1:{broken.server_address[1]}/nothing?wsdl"
    out["refused"] = "http://127.0.0.1:9/ws/services/Cancelacion?wsdl"
    return out


async def test_broken_wsdls_are_one_clear_line(simulator: Sandbox, broken: Any, tmp_path: Path) -> None:
    broken.reply = (404, "text/html", b"<html>404</html>")
    for name, wsdl in _wsdls(simulator, tmp_path, broken).items():
        with pytest.raises((ProviderError, ConfigError)) as caught:
            client = await ProviderClient.create(_settings(tmp_path / name.replace(" ", "-"), wsdl))
            await client.aclose()
        message = str(caught.value)
        assert message.startswith(("provider.wsdl: ", "provider.port: ")), (name, message)
        assert "\n" not in message and len(message) < 600, (name, message)


@pytest.mark.timeout(120)
def test_daemon_with_a_broken_wsdl_or_garbage_replies_writes_nothing_wrong(
    simulator: Sandbox, broken: Any, tmp_path: Path
) -> None:
    from ..harness import start_stack, wait_until

    stack = start_stack(tmp_path / "stack", notify_delay_s=0.2)
    try:
        jobs = generated_uuids(20, seed=61)
        stack.queue(jobs)
        before = stack.query("SELECT * FROM jobs ORDER BY uuid"), stack.query("SELECT count(*) FROM events")
        bad = tmp_path / "bad.wsdl"
        bad.write_text(simulator.wsdl.decode()[:500])
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "--config", str(stack.config), "run", "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "RECONCILER_PROVIDER__WSDL": str(bad)},
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("reconciler: provider.wsdl: cannot load the WSDL")
        assert "Traceback" not in done.stderr
        assert (stack.query("SELECT * FROM jobs ORDER BY uuid"), stack.query("SELECT count(*) FROM events")) == before

        stack.sandbox.set_faults(1.0, ("garbage",))
        done = stack.run_once()
        assert done.returncode == 4, done.stderr  # no provider code came back: cron is told (README exit codes)
        assert "Traceback" not in done.stderr
        assert set(stack.states().values()) == {"queued"}
        replies = [
            str(m) for (m,) in stack.query("SELECT json_extract(detail, '$.message') FROM events WHERE kind = 'reply'")
        ]
        assert replies and all(m.startswith("malformed reply") for m in replies), replies[:3]
        stack.sandbox.set_faults(0.0)
        stack.start_daemon()
        wait_until(lambda: stack.unresolved() == 0, 60, "the jobs after the garbage")
        assert stack.mismatches() == []
        assert set(stack.sandbox.record.accepted().values()) == {1}
        assert stack.stop_daemon() == 0
    finally:
        stack.close()
