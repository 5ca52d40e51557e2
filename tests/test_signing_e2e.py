"""Issue 16 end to end: the daemon signs locally, the simulator verifies, Dovecot carries the notifications.

Every byte the daemon sends (to the provider and to the IMAP server) goes through a loopback relay
that keeps it; none of it may be key material in any spelling, nor the key's password.
"""

from __future__ import annotations

import base64
import re
import signal
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from reconciler.provider.soap import SEND_SIGNED
from reconciler.sandbox import certs

from .csd_material import OTHER_RFC, RFC, key_forms, material, xmlsec_verify
from .harness import TESTING_UUIDS, Stack, generated_uuids, start_stack, wait_until
from .relay import Relay


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[tuple[Stack, list[Relay]]]:
    m = material()
    good = m.csd.write(tmp_path / "csd", "good")
    fiel = certs.issue(m.ca, OTHER_RFC, "fiel").write(tmp_path / "csd", "fiel")
    issuers = "\n".join(
        f'[[issuers]]\nrfc = "{rfc}"\nsigning = "local"\ncsd_cer = "{cer}"\ncsd_key = "{key}"\n'
        f'csd_password_file = "{password}"\n'
        for rfc, (cer, key, password) in ((RFC, good), (OTHER_RFC, fiel))
    )
    stack = start_stack(tmp_path / "stack", extra=issuers)
    url = urlparse(stack.sandbox.url)
    assert url.hostname is not None and url.port is not None
    provider, imap = Relay(url.hostname, url.port), Relay(stack.imap.host, stack.imap.port)
    via = f"http://127.0.0.1:{provider.port}"
    text = stack.config.read_text()
    text = text.replace(
        f'wsdl = "{stack.sandbox.wsdl_url}"',
        f'wsdl = "{stack.sandbox.wsdl_url.replace(stack.sandbox.url, via)}"\nendpoint = "{via}/ws/services/Cancelacion.CancelacionHttpsSoap11Endpoint/"',
    )
    text = text.replace(f"port = {stack.imap.port}\n", f"port = {imap.port}\n")
    stack.config.write_text(text)
    yield stack, [provider, imap]
    stack.close()
    provider.close()
    imap.close()


@pytest.mark.timeout(180)
def test_the_daemon_signs_locally_reaches_ok_and_sends_no_key_material(
    local_stack: tuple[Stack, list[Relay]],
) -> None:
    stack, relays = local_stack
    uuids = TESTING_UUIDS + generated_uuids(16, seed=16)
    motivos = ["01", "02", "03", "04"]
    rows = []
    for i, u in enumerate(uuids):
        motivo = motivos[i % 4]
        folio = str(uuidlib.UUID(int=i + 1, version=4)).upper() if motivo == "01" else ""
        rows.append(f"{u},{RFC},{motivo},{folio}")
    held = str(uuidlib.uuid4()).upper()[:-1] + "1"
    rows.append(f"{held},{OTHER_RFC},02,")
    csv = stack.root / "jobs.csv"
    csv.write_text("uuid,rfc,motivo,folio_sustitucion\n" + "\n".join(rows) + "\n")
    from .conftest import run_cli

    done = run_cli("--config", str(stack.config), "import", str(csv))
    assert done.returncode == 0, done.stderr

    stack.start_daemon()
    terminal = ("ok", "error", "rejected")
    wait_until(lambda: all(stack.states().get(u) in terminal for u in uuids), 90, "the local issuer's jobs to resolve")
    states = stack.states()
    assert [f"{u}: {states[u]}" for u in uuids if states[u] != _intended(u)] == []
    assert "ok" in set(states.values())
    entries = stack.sandbox.record.entries()
    sent = {e.uuid for e in entries if e.operation == SEND_SIGNED and e.code in (200, 211)}
    assert sent == {u for u in uuids if _intended(u) != "rejected"}
    assert {e.operation for e in entries if e.uuid in uuids} <= {SEND_SIGNED, "getStatusCancelacionAsincrona"}
    # The issuer whose CSD is a FIEL: its job never left, and the log says why in one line naming it.
    assert held not in {e.uuid for e in entries}
    assert stack.states()[held] in ("queued", "submitting")
    assert stack.stop_daemon(signal.SIGTERM) == 0
    log = stack.log_text()
    assert f"issuers[{OTHER_RFC}].csd_cer: a FIEL (e.firma) certificate, not a CSD" in log
    assert f"issuers[{RFC}]: signs locally with CSD {material().checked().number}" in log

    wire = b"".join(r.sent for r in relays)
    assert SEND_SIGNED.encode() in wire and b"LOGIN" in wire.upper()  # the capture saw both conversations
    leaks = [name for name, form in key_forms(material().csd).items() if form in wire]
    assert leaks == []
    ledger = b"".join(p.read_bytes() for p in stack.ledger.parent.glob("ledger.sqlite3*"))
    assert [name for name, form in key_forms(material().csd).items() if form in ledger] == []
    # Every signed request as it went over the wire verifies with xmlsec1 against the issuer's certificate.
    requests = re.findall(rb"<(?:[\w.-]+:)?solicitud>([^<]+)</", wire)
    assert len(requests) >= len(sent)
    for i, solicitud in enumerate(requests):
        done = xmlsec_verify(base64.b64decode(solicitud), material().csd.cert_pem, stack.root / f"xmlsec{i}")
        assert done.returncode == 0, done.stderr
    assert material().csd.password.encode() not in log.encode()


def _intended(uuid: str) -> str:
    from reconciler.sandbox import intended_outcome

    return intended_outcome(uuid)
