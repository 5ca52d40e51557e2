"""The simulator on its own: rules, raw SOAP over HTTP, notifications, the record, the command."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import mailbox
import os
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.sandbox import (
    UUIDS_204,
    UUIDS_211,
    Credentials,
    ImapConfig,
    Sandbox,
    SandboxConfig,
    intended_outcome,
    rules,
    soap,
)
from tests.fixtures_sandbox import NOTIFY, RFC, TEST_PASSWORD, TEST_USER, SandboxFactory
from tests.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]


def call(sb: Sandbox, operation: str, fields: dict[str, str | None], version: int = 11) -> dict[str, str | None]:
    """POST a hand-written envelope (the simulator's own namespace) and parse the ``<return>`` fields."""
    env = soap.SOAP11 if version == 11 else soap.SOAP12
    parts = "".join(f"<ns:{k}>{v}</ns:{k}>" for k, v in fields.items() if v is not None)
    body = (
        f'<e:Envelope xmlns:e="{env}" xmlns:ns="{soap.NS}"><e:Body><ns:{operation}>{parts}</ns:{operation}>'
        "</e:Body></e:Envelope>"
    )
    ctype = "text/xml" if version == 11 else "application/soap+xml"
    r = httpx.post(sb.endpoint(), content=body.encode(), headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text
    ret = soap.parse_request(r.content)  # same shape: Envelope/Body/<op>Response/return
    assert ret.operation == operation + "Response"
    from lxml import etree

    node = etree.fromstring(r.content).find(f".//{{{soap.NS}}}return")
    assert node is not None
    return {etree.QName(c).localname: c.text for c in node}


def cancel(sb: Sandbox, uuid: str, motivo: str = "02", folio: str = "", **over: str | None) -> tuple[int, str]:
    fields: dict[str, str | None] = {
        "usuario": TEST_USER,
        "password": TEST_PASSWORD,
        "uuid": f"{uuid}|{motivo}|{folio}",
        "rfcEmisor": RFC,
        "emailNotifica": NOTIFY,
    }
    fields.update(over)
    out = call(sb, "cancelarAsincrono", fields)
    return int(out["status"] or 0), out["mensaje"] or ""


def status(sb: Sandbox, uuid: str) -> dict[str, str | None]:
    return call(
        sb, "getStatusCancelacionAsincrona", {"usuario": TEST_USER, "password": TEST_PASSWORD, "transactionId": uuid}
    )


def new_uuid(last: str = "1") -> str:
    return str(uuidlib.uuid4()).upper()[:-1] + last


# -- rules ------------------------------------------------------------------


@pytest.mark.parametrize("u", sorted(UUIDS_204))
def test_204_uuids_are_rejected(u: str) -> None:
    assert intended_outcome(u) == "rejected"
    assert rules.submission_code(u) == 204


@pytest.mark.parametrize("u", sorted(UUIDS_211))
def test_211_uuids_end_ok_without_email(u: str) -> None:
    assert intended_outcome(u) == "ok"
    assert not rules.sends_notification(u)


@given(st.uuids())
def test_intended_outcome_rule(u: uuidlib.UUID) -> None:
    text = str(u)
    expected = "error" if text.upper().endswith("E") else "ok"
    assert intended_outcome(text) == expected
    assert intended_outcome(text.lower()) == expected


@pytest.mark.parametrize(
    "field",
    [
        "not-a-uuid|02|",
        "{u}",
        "{u}|02",
        "{u}|05|",
        "{u}|01|",
        "{u}|01|{u}",
        "{u}|02|{v}",
        "{u}|2|",
    ],
)
def test_malformed_uuid_fields(field: str) -> None:
    u, v = new_uuid(), new_uuid()
    with pytest.raises(ValueError):
        rules.parse_uuid_field(field.format(u=u, v=v))


def test_good_uuid_fields() -> None:
    u, v = new_uuid(), new_uuid()
    assert rules.parse_uuid_field(f"{u.lower()}|01|{v}") == (u, "01", v)
    assert rules.parse_uuid_field(f"{u}|04|") == (u, "04", "")


# -- the service over HTTP --------------------------------------------------


def test_wsdl_shape(sandbox: Sandbox) -> None:
    from lxml import etree

    r = httpx.get(sandbox.wsdl_url)
    assert r.status_code == 200
    doc = etree.fromstring(r.content)
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    ports = doc.findall(f"{{{wsdl}}}service[@name='Cancelacion']/{{{wsdl}}}port")
    addresses = {p.get("name"): p[0].get("location") for p in ports}
    assert list(addresses) == [
        "CancelacionHttpSoap11Endpoint",
        "CancelacionHttpSoap12Endpoint",
        "CancelacionHttpsSoap11Endpoint",
        "CancelacionHttpsSoap12Endpoint",
    ]
    assert addresses["CancelacionHttpSoap11Endpoint"] == ""
    assert addresses["CancelacionHttpsSoap12Endpoint"] == sandbox.endpoint("CancelacionHttpsSoap12Endpoint")
    assert httpx.get(sandbox.url + "/elsewhere").status_code == 404


def test_rules_over_http(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(credentials=Credentials(production_users=("prod@example.com",)))
    u = new_uuid()
    assert cancel(sb, u) == (200, u)
    assert cancel(sb, u)[0] == 701
    assert cancel(sb, sorted(UUIDS_204)[1])[0] == 204
    assert cancel(sb, sorted(UUIDS_211)[1])[0] == 211
    assert cancel(sb, new_uuid(), motivo="05")[0] == 621
    assert cancel(sb, new_uuid(), rfcEmisor="NOT-AN-RFC")[0] == 621
    assert cancel(sb, new_uuid(), rfcEmisor=None)[0] == 611
    assert cancel(sb, new_uuid(), usuario="prod@example.com")[0] == 633
    assert cancel(sb, new_uuid(), csdCer="MAo=")[0] == 611  # a certificate without its key
    assert cancel(sb, new_uuid(), csdCer="TUlJ", csdKey="TUlJ", csdPassword="x")[0] == 1701  # base64 of base64
    assert status(sb, new_uuid())["status"] == "702"
    assert sb.record.accepted() == {u: 1, sorted(UUIDS_211)[1]: 1}


def test_soap12_and_lockout(sandbox: Sandbox) -> None:
    for _ in range(5):
        assert cancel(sandbox, new_uuid(), password="nope")[0] == 601
    assert cancel(sandbox, new_uuid())[0] == 604  # locked, even with the right password
    assert status(sandbox, new_uuid())["status"] == "604"
    sandbox.service.unlock(TEST_USER)
    fields: dict[str, str | None] = {"usuario": TEST_USER, "password": TEST_PASSWORD, "uuid": f"{new_uuid()}|03|"}
    out = call(sandbox, "cancelarAsincrono", fields, version=12)
    assert out["status"] == "611"  # rfcEmisor missing, over SOAP 1.2
    assert sandbox.record.entries()[-1].soap == 12


def test_a_correct_login_resets_the_count(sandbox: Sandbox) -> None:
    for _ in range(4):
        cancel(sandbox, new_uuid(), password="nope")
    assert cancel(sandbox, new_uuid())[0] == 200
    for _ in range(4):
        assert cancel(sandbox, new_uuid(), password="nope")[0] == 601


class HandClock:
    """A monotonic clock for the simulator that only the test moves, so "before due" cannot run out under load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_notifications_into_maildir_and_status_progress(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    clock = HandClock()
    sb = sandbox_factory(maildir=tmp_path / "Maildir", notify_delay_s=0.3, sender="avisos@sf.example", clock=clock)
    ok, err, quiet, silent = new_uuid("1"), new_uuid("E"), sorted(UUIDS_211)[2], new_uuid("2")
    start = clock.now  # every call below is at this instant, however long it takes on a loaded machine
    for u in (ok, err, quiet):
        assert cancel(sb, u)[0] in (200, 211)
    assert cancel(sb, silent, emailNotifica=None)[0] == 200  # no address, no email
    clock.now = start + 0.299  # not yet due
    sb.deliverer.wake()
    assert [status(sb, u)["status"] for u in (ok, err, quiet, silent)] == ["211"] * 4
    assert sb.record.notifications() == [] and sb.deliverer.pending() == 2  # held, not sent early
    clock.now = start + 0.3  # due now, to the float the simulator computed
    sb.deliverer.wake()
    sb.wait_notifications(2)
    assert status(sb, quiet)["status"] == "200"
    done = status(sb, ok)
    assert done["status"] == "200" and done["mensaje"] == ok
    import base64

    assert ok.encode() in base64.b64decode(done["acuseSat"] or "")
    assert status(sb, err)["status"] == "213" and status(sb, err)["acuseSat"] is None

    box = mailbox.Maildir(tmp_path / "Maildir", create=False)
    msgs = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in box]
    box.close()
    by_uuid = {m["X-UUIDCancelacion"]: m for m in msgs}
    assert set(by_uuid) == {ok, err}
    assert by_uuid[ok]["X-StatusCancelacion"] == "OK" and by_uuid[err]["X-StatusCancelacion"] == "ERROR"
    for m in msgs:
        assert m["X-SFService"] == "Cancelar"
        assert m["From"].addresses[0].addr_spec == "avisos@sf.example"
        assert m["To"] == NOTIFY and m["Message-ID"] and m["Date"]
        html = m.get_body(("html",))
        assert html is not None and m["X-UUIDCancelacion"] in html.get_content()
    assert {n["uuid"] for n in sb.record.notifications()} == {ok, err}


def test_faults_are_seeded(sandbox_factory: SandboxFactory) -> None:
    a = sandbox_factory(fault_rate=0.5, seed=7)
    b = sandbox_factory(fault_rate=0.5, seed=7)
    assert [a.pick_fault() for _ in range(50)] == [b.pick_fault() for _ in range(50)]
    assert len({a.pick_fault() for _ in range(200)}) > 3


def test_latency(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(latency_ms=200)
    t = time.monotonic()
    cancel(sb, new_uuid())
    # The lower bound is the guarantee; the upper one only catches seconds taken for milliseconds (200 s),
    # far enough above any load a test machine sees.
    assert 0.2 <= time.monotonic() - t < 60


def test_record_over_http(sandbox: Sandbox) -> None:
    u = new_uuid()
    cancel(sandbox, u)
    data = httpx.get(sandbox.url + "/_sandbox/record").json()
    assert data["accepted"] == {u: 1}
    [req] = data["requests"]
    assert (req["operation"], req["uuid"], req["code"], req["uuid_field"]) == ("cancelarAsincrono", u, 200, f"{u}|02|")


def test_the_command(tmp_path: Path) -> None:
    """``python -m reconciler.sandbox``: first line the WSDL URL, record over HTTP, SIGTERM stops it."""
    maildir = tmp_path / "md"
    cmd = [
        sys.executable,
        "-m",
        "reconciler.sandbox",
        "--port",
        "0",
        "--maildir",
        str(maildir),
        "--notify-delay-s",
        "0",
        "--acuse-shape",
        "wrapped",
        "--acuse-estatus",
        "202",
    ]
    env = {**os.environ, "SANDBOX_PASSWORD": "other-pass"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        wsdl_url = proc.stdout.readline().strip()
        assert wsdl_url.startswith("http://127.0.0.1:") and wsdl_url.endswith("/ws/services/Cancelacion?wsdl")
        base = wsdl_url.split("/ws/")[0]
        assert proc.stdout.readline().strip() == f"{base}/ConsultaCFDIService.svc"  # the SAT's status service
        u = new_uuid()
        body = (
            f'<e:Envelope xmlns:e="{soap.SOAP11}" xmlns:ns="{soap.NS}"><e:Body><ns:cancelarAsincrono>'
            f"<ns:usuario>{TEST_USER}</ns:usuario><ns:password>other-pass</ns:password><ns:uuid>{u}|02|</ns:uuid>"
            f"<ns:rfcEmisor>{RFC}</ns:rfcEmisor><ns:emailNotifica>{NOTIFY}</ns:emailNotifica>"
            "</ns:cancelarAsincrono></e:Body></e:Envelope>"
        )
        r = httpx.post(f"{base}/ws/services/Cancelacion.CancelacionHttpsSoap11Endpoint/", content=body)
        assert b"<ax21:status>200</ax21:status>" in r.content
        assert json.loads(httpx.get(f"{base}/_sandbox/record").content)["accepted"] == {u: 1}
        wait_until(
            lambda: maildir.joinpath("new").is_dir() and any(maildir.joinpath("new").iterdir()), 5, "the appended mail"
        )
        ask = (
            f'<e:Envelope xmlns:e="{soap.SOAP11}" xmlns:ns="{soap.NS}"><e:Body><ns:getStatusCancelacionAsincrona>'
            f"<ns:usuario>{TEST_USER}</ns:usuario><ns:password>other-pass</ns:password>"
            f"<ns:transactionId>{u}</ns:transactionId></ns:getStatusCancelacionAsincrona></e:Body></e:Envelope>"
        )
        r = httpx.post(f"{base}/ws/services/Cancelacion.CancelacionHttpsSoap11Endpoint/", content=ask)
        sent = base64.b64decode(r.content.split(b"<ax21:acuseSat>")[1].split(b"<")[0])
        assert b"<CancelaCFDResult" in sent and b"<EstatusUUID>202</EstatusUUID>" in sent
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "sandbox stopped after" in err


def test_imap_append_delivery(tmp_path: Path) -> None:
    """Delivery by IMAP APPEND into pymap (started by the imapserver helpers)."""
    imapserver = pytest.importorskip("reconciler.sandbox.imapserver")
    server = imapserver.start_pymap(tmp_path / "imap", "notify", "imap-secret")
    try:
        config = ImapConfig(host="127.0.0.1", port=server.port, user="notify", password="imap-secret")
        with Sandbox(SandboxConfig(notify_delay_s=0, imap=config)) as sb:
            u = new_uuid()
            assert cancel(sb, u)[0] == 200
            [note] = sb.wait_notifications(1)
            assert note["delivered"] is True
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=server.port, ssl=False) as c:
            c.login("notify", "imap-secret")
            c.select_folder("INBOX")
            [msgid] = c.search(["HEADER", "X-UUIDCancelacion", u])
            raw = c.fetch([msgid], ["RFC822"])[msgid][b"RFC822"]
        assert b"X-StatusCancelacion: OK" in raw
    finally:
        server.stop()


def test_decide_now_ends_the_wait_for_the_sat(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(notify_delay_s=3600)
    waiting, other = sorted(UUIDS_211)[0], new_uuid("E")
    for u in (waiting, other):
        assert cancel(sb, u)[0] in (200, 211)
    assert [status(sb, u)["status"] for u in (waiting, other)] == ["211", "211"]
    sb.service.decide_now(waiting.lower(), other)
    assert [status(sb, u)["status"] for u in (waiting, other)] == ["200", "213"]
    with pytest.raises(KeyError, match="no transaction for"):
        sb.service.decide_now(new_uuid())
