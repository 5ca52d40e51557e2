"""Local signing through the real zeep client and the simulator over loopback HTTP."""

from __future__ import annotations

import base64
import logging
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.jobs.validation import JobSpec, job_spec
from reconciler.provider import signing
from reconciler.provider.codes import NOT_SENT, Outcome, StatusOutcome
from reconciler.provider.local import Signers
from reconciler.provider.soap import CANCEL, SEND_SIGNED, ProviderClient
from reconciler.sandbox import Sandbox
from reconciler.sandbox.certs import CsdFiles
from tests.fixtures_sandbox import TEST_PASSWORD, TEST_USER, provider_settings

from ..csd_material import OTHER_RFC, RFC, material
from .test_soap import status_until


def new_job(rfc: str = RFC, motivo: str = "02") -> JobSpec:
    folio = str(uuidlib.uuid4()).upper() if motivo == "01" else None
    return job_spec(str(uuidlib.uuid4())[:-1] + "1", rfc, motivo, folio)


def issuer(files: CsdFiles, directory: Path, rfc: str | None = None, signing: str = "local") -> dict[str, Any]:
    cer, key, password = files.write(directory, f"{rfc or files.rfc}-{files.kind}")
    return {"rfc": rfc or files.rfc, "signing": signing, "csd_cer": cer, "csd_key": key, "csd_password_file": password}


@pytest.mark.parametrize("port", ["CancelacionHttpsSoap11Endpoint", "CancelacionHttpsSoap12Endpoint"])
@pytest.mark.parametrize("motivo", ["01", "04"])
async def test_a_local_issuer_sends_a_signed_request_that_ends_done(
    sandbox: Sandbox, tmp_path: Path, port: str, motivo: str
) -> None:
    m = material()
    settings = provider_settings(sandbox, tmp_path, port=port, issuers=[issuer(m.csd, tmp_path / "csd")])
    client = await ProviderClient.create(settings)
    try:
        job = new_job(motivo=motivo)
        reply = await client.cancel(job)
        assert (reply.code, reply.operation, reply.classification.outcome) == (200, SEND_SIGNED, Outcome.ACCEPTED)
        (entry,) = [e for e in sandbox.record.entries() if e.uuid == job.uuid]
        assert entry.operation == SEND_SIGNED and entry.uuid_field == job.provider_uuid_field
        assert entry.csd_key_sha256 is None and entry.csd_cer_sha256 is None
        assert (await status_until(client, job.uuid, StatusOutcome.DONE)).outcome is StatusOutcome.DONE
        assert (await client.cancel(job)).code == 701  # a repeat is one transaction, as with cancelarAsincrono
        # An issuer without signing = "local" still goes through cancelarAsincrono.
        other = await client.cancel(new_job(OTHER_RFC))
        assert (other.code, other.operation) == (200, CANCEL)
    finally:
        await client.aclose()


def sign_unchecked(files: CsdFiles, rfc: str, now: datetime | None = None) -> str:
    """A request signed with material the product would refuse, to see what the simulator answers."""
    xml = signing.signed_request(new_job(rfc), material().unchecked(files, rfc), now or datetime.now(UTC))
    return base64.b64encode(xml).decode()


def send(sandbox: Sandbox, solicitud: str) -> int:
    fields = {"usuario": TEST_USER, "password": TEST_PASSWORD, "solicitud": solicitud, "emailNotifica": None}
    answer, _info = sandbox.service.send_signed(fields)  # type: ignore[arg-type]
    return answer.code


def test_the_simulator_answers_17xx_for_what_a_pac_refuses(sandbox: Sandbox) -> None:
    m = material()
    assert send(sandbox, sign_unchecked(m.csd, RFC)) == 200
    assert send(sandbox, sign_unchecked(m.other, RFC)) == 1703  # the certificate is another RFC's
    assert send(sandbox, sign_unchecked(m.expired, RFC)) == 1704
    assert send(sandbox, sign_unchecked(m.fiel, RFC)) == 1705
    tampered = base64.b64decode(sign_unchecked(m.csd, RFC)).replace(b'Motivo="02"', b'Motivo="03"')
    assert send(sandbox, base64.b64encode(tampered).decode()) == 1702
    assert send(sandbox, base64.b64encode(b"<Cancelacion/>").decode()) == 621
    assert send(sandbox, "%%% not base64") == 621


async def test_a_17xx_is_a_rejection_of_the_job(sandbox: Sandbox, tmp_path: Path) -> None:
    m = material()
    client = await ProviderClient.create(provider_settings(sandbox, tmp_path))
    try:
        client._signers = Signers(ready={RFC: m.unchecked(m.fiel)})  # past the product's own check
        reply = await client.cancel(new_job())
        assert (reply.code, reply.classification.outcome) == (1705, Outcome.REJECTED)
    finally:
        await client.aclose()


async def test_an_issuer_whose_csd_fails_is_not_sent_and_the_others_are(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = material()
    issuers = [issuer(m.fiel, tmp_path / "csd"), issuer(m.other, tmp_path / "csd")]
    caplog.set_level(logging.DEBUG, logger="reconciler.provider.soap")
    with caplog.at_level(logging.INFO, logger="reconciler.provider.local"):
        client = await ProviderClient.create(provider_settings(sandbox, tmp_path, issuers=issuers))
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [
            f"issuers[{RFC}].csd_cer: a FIEL (e.firma) certificate, not a CSD: its subject has no OU (branch); "
            f"use the CSD's .cer and .key; jobs of {RFC} are not sent until this is fixed"
        ]
        job = new_job()
        reply = await client.cancel(job)
        assert reply.classification is NOT_SENT and reply.code is None and "FIEL" in reply.message
        assert not [e for e in sandbox.record.entries() if e.uuid == job.uuid]  # nothing left the machine
        assert (await client.cancel(new_job(OTHER_RFC))).code == 200
        await client.cancel(new_job())
        held = [r for r in caplog.records if r.name == "reconciler.provider.soap" and "not sent" in r.getMessage()]
        assert [r.levelname for r in held] == ["WARNING", "DEBUG"]  # said once, not once per job
        assert m.fiel.password not in caplog.text and m.other.password not in caplog.text
    finally:
        await client.aclose()
