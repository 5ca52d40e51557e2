"""Secrets: a debug-level run with known secrets leaves them nowhere but where the protocols need them.

The daemon runs at ``--log-level debug`` with a provider password, a mailbox password and an
issuer's CSD (a throwaway key pair made with openssl: the certificate and the key as DER, the
key encrypted with its password, as the SAT issues them). Faults and an IMAP restart make it
walk its error paths too. Then none of the secret values, nor the key's bytes in any encoding
(raw, hex, base64 or any 32-character window of it), may appear in the daemon's logs, the state
directory's files (ledger, WAL, shared memory, WSDL cache: raw bytes and every table's rows),
pytest's captured output, the simulator's record, or the traffic to the simulator and to
Dovecot once the protocol's own fields (SOAP ``password``/``csdPassword``/``csdKey``, IMAP
``LOGIN``) are taken out; and those fields do carry them (the tap really saw the traffic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..harness import MAIL_PASSWORD, PASSWORD, RFC, Stack, generated_uuids, start_stack, wait_until
from .support import TcpTap, check_invariants, spawn_daemon, wait_started

CSD_PASSWORD = "Csd-Key-Pass-7c1e4b"
WRONG_MAILBOX_PASSWORD = "Wrong-Mailbox-Secret-5d2a"


def _csd(directory: Path) -> tuple[Path, Path, bytes]:
    pem_key, pem_cert = directory / "key.pem", directory / "cert.pem"
    run = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={RFC}",
         "-keyout", str(pem_key), "-out", str(pem_cert)], **run,
    )  # fmt: skip
    cer, key = directory / "csd.cer", directory / "csd.key"
    subprocess.run(["openssl", "x509", "-in", str(pem_cert), "-outform", "DER", "-out", str(cer)], **run)
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-in", str(pem_key), "-outform", "DER", "-out", str(key),
         "-v2", "aes-256-cbc", "-passout", f"pass:{CSD_PASSWORD}"], **run,
    )  # fmt: skip
    pem_key.unlink()
    return cer, key, key.read_bytes()


def _forms(key: bytes) -> list[bytes]:
    """Every way the key could leak: the secrets' text and the key's bytes in any encoding."""
    b64 = base64.b64encode(key)
    windows = [b64[i : i + 32] for i in range(0, len(b64) - 32, 16)]
    return [
        PASSWORD.encode(),
        MAIL_PASSWORD.encode(),
        CSD_PASSWORD.encode(),
        key[16:80],
        key.hex()[:64].encode(),
        *windows,
    ]


def _leaks(data: bytes, forms: list[bytes]) -> list[str]:
    return [f[:24].decode(errors="replace") for f in forms if f in data]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cer, key, _ = _csd(tmp_path)
    issuer = f'[[issuers]]\nrfc = "{RFC}"\ncsd_cer = "{cer}"\ncsd_key = "{key}"\ncsd_password = "{CSD_PASSWORD}"\n'
    s = start_stack(tmp_path / "stack", notify_delay_s=0.3, extra=issuer)
    yield s
    s.close()


SOAP_SECRET = re.compile(rb"(<(?:[\w.-]+:)?(password|csdPassword|csdKey)>)(.*?)(</(?:[\w.-]+:)?\2>)", re.S)
IMAP_LOGIN = re.compile(rb"^[A-Za-z0-9]+ LOGIN [^\r\n]*\r\n", re.M)


@pytest.mark.timeout(120)
def test_no_secret_leaves_its_place(
    stack: Stack, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    key = (tmp_path / "csd.key").read_bytes()
    forms = _forms(key)
    soap_tap = TcpTap("127.0.0.1", int(stack.sandbox.url.rsplit(":", 1)[1]), record=True)
    imap_tap = TcpTap(stack.imap.host, stack.imap.port, record=True)
    endpoint = f"http://127.0.0.1:{soap_tap.port}/ws/services/Cancelacion.CancelacionHttpsSoap11Endpoint/"
    env = {"RECONCILER_PROVIDER__ENDPOINT": endpoint, "RECONCILER_MAILBOX__PORT": str(imap_tap.port)}
    try:
        jobs = generated_uuids(40, seed=51)
        stack.sandbox.set_faults(0.25, ("http500", "soap_fault", "garbage", "drop"))
        stack.queue(jobs)
        spawn_daemon(stack, "--log-level", "debug", env=env)
        wait_started(stack)
        stack.imap.restart()  # the mailbox error path, at debug level
        wait_until(lambda: stack.unresolved() == 0, 90, "the jobs to resolve")
        stack.sandbox.set_faults(0.0)
        assert stack.stop_daemon(signal.SIGTERM) == 0
        # A login the server refuses, with a distinctive wrong password: the error names the user only.
        wrong = stack.root / "secrets" / "wrong"
        wrong.write_text(WRONG_MAILBOX_PASSWORD)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "--config",
                str(stack.config),
                "run",
                "--once",
                "--log-level",
                "debug",
            ],
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, **env, "RECONCILER_MAILBOX__PASSWORD_FILE": str(wrong)},
        )
        # The pass runs without the mailbox and says so: exit 4, a server did not answer.
        assert done.returncode == 4 and b"login refused for facturas" in done.stderr, done.stderr[-500:]
        assert WRONG_MAILBOX_PASSWORD.encode() not in done.stdout + done.stderr
        assert _leaks(done.stdout + done.stderr, forms) == []
    finally:
        soap_tap.close()
        imap_tap.close()
    check_invariants(stack, jobs)

    # The logs: debug level really logged the SOAP traffic, redacted.
    logs = b"".join(p.read_bytes() for p in stack.logs)
    assert b"DEBUG reconciler.provider.soap: POST" in logs and b"***" in logs
    assert b"Traceback" not in logs
    assert _leaks(logs, forms) == []

    # The state directory, byte for byte and row by row.
    state = stack.ledger.parent
    for path in state.iterdir():
        assert _leaks(path.read_bytes(), forms) == [], path.name
    db = sqlite3.connect(f"file:{stack.ledger}?mode=ro", uri=True)
    try:
        dump = "\n".join(db.iterdump()).encode()
    finally:
        db.close()
    assert b'INSERT INTO "jobs"' in dump and _leaks(dump, forms) == []

    # What the simulator saw and kept: hashes of the CSD, never its content or any password.
    record = json.dumps(stack.sandbox.record.to_json()).encode()
    assert _leaks(record, forms) == []
    sent = {e.csd_key_sha256 for e in stack.sandbox.record.entries() if e.csd_key_sha256}
    assert sent == {hashlib.sha256(key).hexdigest()}

    # The wire: the secrets travel only in their protocol fields.
    soap = b"".join(d for _, _, d in soap_tap.traffic)
    fields = {m.group(2): m.group(3) for m in SOAP_SECRET.finditer(soap)}
    assert fields[b"password"] == PASSWORD.encode() and fields[b"csdPassword"] == CSD_PASSWORD.encode()
    assert base64.b64decode(fields[b"csdKey"]) == key
    assert _leaks(SOAP_SECRET.sub(rb"\1\4", soap), forms) == []
    imap = imap_tap.client_text()
    assert MAIL_PASSWORD.encode() in b"".join(IMAP_LOGIN.findall(imap))
    assert _leaks(IMAP_LOGIN.sub(b"", imap), forms) == []
    assert _leaks(b"".join(d for _, side, d in imap_tap.traffic if side == "s"), forms) == []

    # pytest's own captured output and log records (the simulator logs in this process).
    out, err = capfd.readouterr()
    assert _leaks((out + err + caplog.text).encode(), forms) == []


def test_ledger_and_state_directory_are_private(stack: Stack) -> None:
    stack.queue(generated_uuids(3, seed=52))
    db = sqlite3.connect(stack.ledger)  # a WAL and shared-memory file appear next to it
    try:
        db.execute("SELECT count(*) FROM jobs").fetchone()
        files = {p.name: p.stat().st_mode & 0o777 for p in stack.ledger.parent.iterdir()}
    finally:
        db.close()
    assert files["ledger.sqlite3"] == 0o600, files
    assert all(mode & 0o077 == 0 for name, mode in files.items() if name.startswith("ledger")), files
    assert stack.ledger.parent.stat().st_mode & 0o777 == 0o700
    if shutil.which("setpriv") is None:
        return
    # Another user really cannot read it (root ignores modes, so ask as nobody).
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(stack.ledger)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0 and b"Permission denied" in done.stderr, done.stderr
    assert done.stdout == b""
