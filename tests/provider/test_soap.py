"""The real zeep client against the simulator over loopback HTTP: every code path and every fault."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import socket
import uuid as uuidlib
from pathlib import Path

import pytest

from reconciler.errors import ProviderError
from reconciler.jobs.validation import JobSpec, job_spec
from reconciler.provider.codes import Outcome, StatusOutcome
from reconciler.provider.soap import POOL_SIZE, ProviderClient, Reply, StatusReply
from reconciler.redact import Redactor
from reconciler.sandbox import UUIDS_204, UUIDS_211, Sandbox
from reconciler.sandbox.acuses import AcuseControl
from tests.fixtures_sandbox import RFC, SandboxFactory, provider_settings
from tests.harness import eventually


def new_job(last: str = "1", rfc: str = RFC) -> JobSpec:
    """A random UUID whose last hex digit is ``last`` (E: the simulator ends it in ERROR)."""
    return job_spec(str(uuidlib.uuid4())[:-1] + last, rfc)


async def client_for(sb: Sandbox | None, tmp_path: Path, **provider: object) -> ProviderClient:
    return await ProviderClient.create(provider_settings(sb, tmp_path, **provider))


async def status_until(client: ProviderClient, uuid: str, outcome: StatusOutcome, within: float = 5.0) -> StatusReply:
    """Poll the status call until it answers ``outcome`` (the simulator's delay is 0.3 s); the last reply."""
    replies: list[StatusReply] = []

    async def answered() -> bool:
        replies.append(await client.status(uuid))
        return replies[-1].outcome is outcome

    await eventually(answered, within, f"the status of {uuid} to be {outcome}")
    return replies[-1]


@pytest.mark.parametrize(
    ("port", "soap"),
    [
        ("CancelacionHttpsSoap11Endpoint", 11),
        ("CancelacionHttpsSoap12Endpoint", 12),
        ("CancelacionHttpSoap12Endpoint", 12),
    ],
)
async def test_accepted_then_done_over_soap_11_and_12(sandbox: Sandbox, tmp_path: Path, port: str, soap: int) -> None:
    client = await client_for(sandbox, tmp_path, port=port)
    try:
        job = new_job()
        reply = await client.cancel(job)
        assert reply == Reply(200, job.uuid, reply.classification)
        assert reply.classification.outcome is Outcome.ACCEPTED
        assert (await client.status(job.uuid)).outcome is StatusOutcome.PROCESSING
        done = await status_until(client, job.uuid, StatusOutcome.DONE)
        assert done.code == 200
        assert done.acuse is not None and done.acuse.startswith(b"<?xml") and job.uuid.encode() in done.acuse
    finally:
        await client.aclose()
    [entry] = [e for e in sandbox.record.entries() if e.operation == "cancelarAsincrono"]
    assert (entry.soap, entry.uuid_field, entry.code) == (soap, f"{job.uuid}|02|", 200)
    assert sandbox.record.accepted() == {job.uuid: 1}


async def test_codes_from_the_testing_uuids_and_rules(sandbox: Sandbox, tmp_path: Path) -> None:
    client = await client_for(sandbox, tmp_path)
    try:
        u204 = sorted(UUIDS_204)[0]
        r = await client.cancel(job_spec(u204, RFC))
        assert (r.code, r.classification.outcome) == (204, Outcome.REJECTED)

        u211 = sorted(UUIDS_211)[0]
        r = await client.cancel(job_spec(u211, RFC))
        assert (r.code, r.classification.outcome) == (211, Outcome.ACCEPTED)
        r = await client.cancel(job_spec(u211, RFC))
        assert (r.code, r.classification.outcome) == (701, Outcome.ACCEPTED)
        assert (await status_until(client, u211, StatusOutcome.DONE)).acuse

        bad_motivo = JobSpec(new_job().uuid, RFC, "05", None)
        r = await client.cancel(bad_motivo)
        assert (r.code, r.classification.outcome) == (621, Outcome.REJECTED)

        error_job = new_job("E")
        assert (await client.cancel(error_job)).code == 200
        failed = await status_until(client, error_job.uuid, StatusOutcome.FAILED)
        assert (failed.code, failed.acuse) == (213, None)

        missing = await client.status(str(uuidlib.uuid4()).upper())
        assert (missing.code, missing.outcome) == (702, StatusOutcome.NOT_FOUND)
    finally:
        await client.aclose()


async def test_missing_usuario_is_611(sandbox: Sandbox, tmp_path: Path) -> None:
    client = await client_for(sandbox, tmp_path, usuario=None)
    try:
        r = await client.cancel(new_job())
        assert (r.code, r.classification.outcome) == (611, Outcome.REJECTED)
    finally:
        await client.aclose()


async def test_wrong_password_is_601_then_locked_604(sandbox: Sandbox, tmp_path: Path) -> None:
    client = await client_for(sandbox, tmp_path, password="wrong-password")
    try:
        answers = [(await client.cancel(new_job())).code for _ in range(6)]
        assert answers == [601] * 5 + [604]
        assert (await client.status(new_job().uuid)).outcome is StatusOutcome.ACCOUNT
    finally:
        await client.aclose()
    good = await client_for(sandbox, tmp_path)
    try:
        r = await good.cancel(new_job())  # the right password no longer helps: the account is locked
        assert (r.code, r.classification.outcome) == (604, Outcome.ACCOUNT)
    finally:
        await good.aclose()


async def test_production_user_is_633(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    from reconciler.sandbox import Credentials

    sb = sandbox_factory(credentials=Credentials(production_users=("prod@example.com",)))
    client = await client_for(sb, tmp_path, usuario="prod@example.com")
    try:
        r = await client.cancel(new_job())
        assert (r.code, r.classification.outcome) == (633, Outcome.ACCOUNT)
    finally:
        await client.aclose()


async def test_unknown_code_is_transient_with_a_warning(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = new_job()
    sandbox.service.override(job.uuid, 987, "algo nuevo")
    client = await client_for(sandbox, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="reconciler.provider.soap"):
            r = await client.cancel(job)
            s = await client.status(job.uuid)
    finally:
        await client.aclose()
    assert (r.code, r.classification.outcome, r.classification.known) == (987, Outcome.TRANSIENT, False)
    assert (s.code, s.outcome) == (987, StatusOutcome.TRANSIENT)
    assert "unknown code 987" in caplog.text


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("http500", "HTTP 500"),
        ("soap_fault", "SOAP Fault: Injected fault"),
        ("drop", "connection error"),
        ("lost_reply", "connection error"),
        ("slow", "timeout after 0.5s"),
        ("garbage", "malformed reply"),
    ],
)
async def test_faults_become_transient_replies(
    sandbox_factory: SandboxFactory, tmp_path: Path, kind: str, message: str
) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds=(kind,), slow_reply_s=30)
    client = await client_for(sb, tmp_path, timeout_s=0.5, port="CancelacionHttpsSoap12Endpoint")
    try:
        job = new_job()
        r = await client.cancel(job)
        assert r.code is None
        assert r.classification.outcome is Outcome.TRANSIENT
        assert r.message.startswith(message), r.message
        s = await client.status(job.uuid)
        assert (s.code, s.outcome) == (None, StatusOutcome.TRANSIENT)
        assert s.message.startswith(message), s.message
        sb.set_faults(0.0)
        again = await client.cancel(job)
        # processed before the fault (lost reply, slow reply): the retry finds the transaction
        assert again.code == (701 if kind in ("lost_reply", "slow") else 200)
        assert again.classification.outcome is Outcome.ACCEPTED
    finally:
        await client.aclose()
    assert sb.record.accepted() == {job.uuid: 1}


async def test_connection_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/ws/services/Cancelacion"
    client = await client_for(sandbox, tmp_path, endpoint=closed)
    try:
        r = await client.cancel(new_job())
    finally:
        await client.aclose()
    assert (r.code, r.classification.outcome) == (None, Outcome.TRANSIENT)
    assert r.message.startswith("cannot connect to " + closed)


async def test_http_error_on_a_wrong_endpoint(sandbox: Sandbox, tmp_path: Path) -> None:
    client = await client_for(sandbox, tmp_path, endpoint=sandbox.url + "/nowhere")
    try:
        r = await client.cancel(new_job())
    finally:
        await client.aclose()
    assert (r.code, r.message, r.classification.outcome) == (None, "HTTP 404", Outcome.TRANSIENT)


async def test_empty_address_port_needs_an_endpoint(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"CancelacionHttpSoap11Endpoint has an empty address.*provider\.endpoint"):
        await client_for(sandbox, tmp_path, port="CancelacionHttpSoap11Endpoint")
    endpoint = sandbox.endpoint("CancelacionHttpSoap11Endpoint")
    client = await client_for(sandbox, tmp_path, port="CancelacionHttpSoap11Endpoint", endpoint=endpoint)
    try:
        assert (await client.cancel(new_job())).code == 200
    finally:
        await client.aclose()


async def test_unknown_port_and_unloadable_wsdl(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"no port 'Nope'.*CancelacionHttpsSoap12Endpoint"):
        await client_for(sandbox, tmp_path, port="Nope")
    with pytest.raises(ProviderError, match=r"^provider\.wsdl: cannot load the WSDL http://127\.0\.0\.1:9/"):
        await client_for(None, tmp_path)
    bad = tmp_path / "bad.wsdl"
    bad.write_text("<not-a-wsdl")
    with pytest.raises(ProviderError, match=r"^provider\.wsdl: cannot load the WSDL .*bad\.wsdl: .+") as info:
        await client_for(sandbox, tmp_path, wsdl=str(bad))
    assert "\n" not in str(info.value)


async def test_wsdl_from_a_file(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "Cancelacion.wsdl"
    path.write_bytes(sandbox.wsdl)
    client = await client_for(sandbox, tmp_path, wsdl=str(path))
    try:
        assert (await client.cancel(new_job())).code == 200
    finally:
        await client.aclose()


async def test_cached_wsdl_survives_an_unreachable_url(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    first = sandbox_factory()
    wsdl_url = first.wsdl_url
    client = await client_for(first, tmp_path)
    await client.aclose()
    first.stop()
    second = sandbox_factory()
    client = await client_for(second, tmp_path, wsdl=wsdl_url, endpoint=second.endpoint())
    try:
        assert (await client.cancel(new_job())).code == 200
    finally:
        await client.aclose()
    # without the cache the same start fails
    with pytest.raises(ProviderError, match="cannot load the WSDL"):
        await client_for(second, tmp_path / "elsewhere", wsdl=wsdl_url, endpoint=second.endpoint())


def _csd(tmp_path: Path) -> tuple[list[dict[str, object]], bytes, bytes]:
    cer = b"\x30\x82\x04\xfe" + b"CERTIFICATE-BYTES" * 40
    key = b"\x30\x82\x05\x1f" + b"PRIVATE-KEY-SECRET-MATERIAL" * 40
    (tmp_path / "csd.cer").write_bytes(cer)
    (tmp_path / "csd.key").write_bytes(key)
    issuer: dict[str, object] = {
        "rfc": RFC,
        "csd_cer": str(tmp_path / "csd.cer"),
        "csd_key": str(tmp_path / "csd.key"),
        "csd_password": "csd-Pa$$w0rd&<x>",
    }
    return [issuer], cer, key


async def test_csd_bytes_arrive_base64_once(sandbox: Sandbox, tmp_path: Path) -> None:
    issuers, cer, key = _csd(tmp_path)
    client = await client_for(sandbox, tmp_path, issuers=issuers)
    try:
        with_csd, without = new_job(), new_job(rfc="BBB010101BB1")
        assert (await client.cancel(with_csd)).code == 200
        assert (await client.cancel(without)).code == 200
    finally:
        await client.aclose()
    by_uuid = {e.uuid: e for e in sandbox.record.entries()}
    assert by_uuid[with_csd.uuid].csd_cer_sha256 == hashlib.sha256(cer).hexdigest()
    assert by_uuid[with_csd.uuid].csd_key_sha256 == hashlib.sha256(key).hexdigest()
    assert by_uuid[without.uuid].csd_cer_sha256 is None


async def test_acuse_as_text(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(acuse_style="text", notify_delay_s=0)
    client = await client_for(sb, tmp_path)
    try:
        job = new_job()
        await client.cancel(job)
        done = await status_until(client, job.uuid, StatusOutcome.DONE)
    finally:
        await client.aclose()
    assert done.acuse is not None and done.acuse.startswith(b"<?xml")


@pytest.mark.parametrize("style", ["base64", "text"])
async def test_the_acuse_is_judged_wherever_it_comes_from(
    sandbox_factory: SandboxFactory, tmp_path: Path, style: str
) -> None:
    sb = sandbox_factory(acuse_style=style, notify_delay_s=0)
    client = await client_for(sb, tmp_path)
    field = "acuseSat" if style == "base64" else "acuseSAT"
    try:
        cases = {
            new_job(): (AcuseControl(), field, StatusOutcome.DONE),
            new_job(): (AcuseControl(in_mensaje=True), "mensaje", StatusOutcome.DONE),
            new_job(): (AcuseControl(estatus=205, in_mensaje=True), "mensaje", StatusOutcome.FAILED),
            new_job(): (AcuseControl("html"), field, StatusOutcome.DISPUTED),
            new_job(): (AcuseControl("null", in_mensaje=True), None, StatusOutcome.DISPUTED),
        }
        for job, (control, _, _) in cases.items():
            sb.service.acuse_for(job.uuid, control)
            await client.cancel(job)
        for job, (control, source, outcome) in cases.items():
            done = await status_until(client, job.uuid, outcome)
            assert (done.code, done.outcome, done.acuse_from) == (200, outcome, source), control
            assert done.verdict is not None
            if source is not None:
                sent = [e.acuse_sha256 for e in sb.record.entries() if e.uuid == job.uuid and e.acuse_sha256]
                assert done.acuse is not None and hashlib.sha256(done.acuse).hexdigest() == sent[-1]
    finally:
        await client.aclose()


def test_acuse_fields_in_order_of_precedence() -> None:
    from types import SimpleNamespace

    from reconciler.provider.soap import _acuse

    xml = b"<Acuse/>"
    assert _acuse(SimpleNamespace(acuseSat=xml, acuseSAT="<B/>"), "<C/>") == (xml, "acuseSat")
    assert _acuse(SimpleNamespace(acuseSat=None, acuseSAT=" <B/> "), "<C/>") == (b" <B/> ", "acuseSAT")
    encoded = base64.b64encode(xml).decode()
    assert _acuse(SimpleNamespace(acuseSAT=encoded), "") == (xml, "acuseSAT")
    assert _acuse(SimpleNamespace(acuseSat=b""), "x <?xml version='1.0'?><A/>") == (
        b"x <?xml version='1.0'?><A/>",
        "mensaje",
    )
    assert _acuse(SimpleNamespace(), "  <A/>") == (b"  <A/>", "mensaje")
    assert _acuse(SimpleNamespace(), "71452784-AFC7-4BE5-8623-3BA1436D573B") == (None, None)
    assert _acuse(SimpleNamespace(acuseSat=b"null"), "") == (b"null", "acuseSat")  # judged, not dropped


async def test_concurrency_is_bounded_and_spread_over_pools(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(latency_ms=100)
    client = await client_for(sb, tmp_path, max_concurrency=5)
    try:
        replies = await asyncio.gather(*(client.cancel(new_job()) for _ in range(15)))
    finally:
        await client.aclose()
    assert {r.code for r in replies} == {200}
    assert sb.peak_inflight == 5
    big = await client_for(sb, tmp_path, max_concurrency=40)
    assert big.pools == -(-40 // POOL_SIZE) > 1
    await big.aclose()


async def test_no_secret_is_ever_logged(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    issuers, _cer, key = _csd(tmp_path)
    password = "Sup3r-Secret&<Pass>"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        sandbox.service.credentials.password = password
        client = await client_for(sandbox, tmp_path, password=password, issuers=issuers)
        job = new_job()
        assert (await client.cancel(job)).code == 200
        await client.status(job.uuid)
        sandbox.set_faults(1.0, ("soap_fault",))
        await client.cancel(new_job())
        await client.aclose()
        wrong = await client_for(sandbox, tmp_path, password=password + "x", issuers=issuers)
        sandbox.set_faults(0.0)
        assert (await wrong.cancel(new_job())).code == 601
        await wrong.aclose()
    finally:
        root.removeHandler(handler)
    captured = capfd.readouterr()
    texts = {"caplog": caplog.text, "stream": stream.getvalue(), "stderr": captured.err, "stdout": captured.out}
    assert "cancelarAsincrono" in texts["caplog"] and "***" in texts["caplog"]  # requests were logged, redacted
    secrets = [
        password,
        password.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "csd-Pa$$w0rd",
        "PRIVATE-KEY-SECRET",
        base64.b64encode(key).decode()[:40],
        base64.b64encode(key).decode()[-40:],
    ]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {where}"


def test_redactor() -> None:
    redact = Redactor(["hunter22"])
    xml = (
        "<ns0:password>p&amp;w</ns0:password><csdKey xmlns='x'>QUJD</csdKey>"
        "<ns0:usuario>me</ns0:usuario>fault: hunter22"
    )
    out = redact(xml)
    assert (
        out == "<ns0:password>***</ns0:password><csdKey xmlns='x'>***</csdKey><ns0:usuario>me</ns0:usuario>fault: ***"
    )
    assert redact("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"
