"""The signed Cancelacion: its shape per motivo, Fecha, and every signature held to xmlsec1 and the simulator."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from reconciler.jobs.validation import job_spec
from reconciler.provider import certificate, signing
from reconciler.sandbox import signed

from ..csd_material import RFC, material, xmlsec_verify

UUID = "71452784-AFC7-4BE5-8623-3BA1436D573B"
REPLACEMENT = "11111111-2222-4333-8444-555555555555"
NOW = datetime(2024, 5, 5, 18, 34, 56, tzinfo=UTC)
NS = {"c": signing.NS, "ds": signing.DSIG}


def signed_xml(motivo: str = "02", now: datetime = NOW) -> bytes:
    job = job_spec(UUID, RFC, motivo, REPLACEMENT if motivo == "01" else None)
    return signing.signed_request(job, material().checked(), now)


@pytest.mark.parametrize("motivo", ["01", "02", "03", "04"])
def test_each_motivo_is_signed_so_xmlsec1_and_the_simulator_verify_it(motivo: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)  # the simulator judges the certificate at Fecha: within its validity
    xml = signed_xml(motivo, now)
    done = xmlsec_verify(xml, material().csd.cert_pem, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout + done.stderr
    verdict = signed.check(base64.b64encode(xml).decode())
    folio = f"{UUID}|{motivo}|{REPLACEMENT if motivo == '01' else ''}"
    assert verdict == signed.Folio(RFC, folio, signing.fecha(now))
    signing.verify(xml, material().checked())


@pytest.mark.parametrize("motivo", ["01", "02", "03", "04"])
def test_the_document_has_the_sats_shape(motivo: str) -> None:
    root = etree.fromstring(signed_xml(motivo))
    assert root.tag == f"{{{signing.NS}}}Cancelacion"
    assert root.nsmap == {None: signing.NS, "xsd": signing.XSD, "xsi": signing.XSI}
    assert root.get("RfcEmisor") == RFC
    assert root.get("Fecha") == "2024-05-05T12:34:56"  # Mexico City, UTC-6 since 2022, no offset written
    (folio,) = root.findall("c:Folios/c:Folio", NS)
    assert folio.get("UUID") == UUID and folio.get("Motivo") == motivo
    # FolioSustitucion only with 01: an empty attribute is refused by the PACs.
    assert folio.get("FolioSustitucion") == (REPLACEMENT if motivo == "01" else None)
    assert ("FolioSustitucion" in folio.attrib) == (motivo == "01")
    sig = root.find("ds:Signature", NS)
    assert sig is not None
    algorithms = [el.get("Algorithm") for el in sig.iterfind(".//*[@Algorithm]")]
    assert algorithms == [signing.C14N, signing.RSA_SHA1, signing.ENVELOPED, signing.SHA1]
    assert sig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == ""  # type: ignore[union-attr]
    serial = sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber", namespaces=NS)
    assert serial == str(material().csd.certificate.serial_number)
    assert sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509IssuerName", namespaces=NS)
    cert = sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    assert base64.b64decode(cert or "") == material().csd.cer


@pytest.mark.parametrize(
    ("when", "fecha"),
    [
        (datetime(2024, 5, 5, 18, 34, 56, tzinfo=UTC), "2024-05-05T12:34:56"),
        (datetime(2021, 7, 1, 12, 0, 0, tzinfo=UTC), "2021-07-01T07:00:00"),  # daylight saving time, before 2022
        (datetime(2025, 1, 1, 3, 0, 0, 999999, tzinfo=UTC), "2024-12-31T21:00:00"),
    ],
)
def test_fecha_is_mexico_city_local_time_without_offset(when: datetime, fecha: str) -> None:
    assert signing.fecha(when) == fecha


def test_signed_info_is_canonicalised_with_the_namespaces_in_scope_where_it_stands() -> None:
    """The trap: SignedInfo's canonical bytes carry the root's xsd/xsi declarations, as verifiers compute them."""
    root = etree.fromstring(signed_xml())
    info = root.find("ds:Signature/ds:SignedInfo", NS)
    assert info is not None
    canonical = signing.canonical_in_place(info)
    assert canonical.startswith(
        b'<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"'
        b' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    )
    assert canonical == signed.c14n(info).encode()  # the simulator's own writer agrees


TAMPERINGS = {
    "motivo": (b'Motivo="02"', b'Motivo="03"'),
    "uuid": (UUID.encode(), UUID.replace("7", "8").encode()),
    "rfc": (f'RfcEmisor="{RFC}"'.encode(), b'RfcEmisor="AAA010101AAB"'),
    "signed info": (b'URI=""', b'URI="" Id="x"'),
}


@pytest.mark.parametrize("what", TAMPERINGS)
def test_a_tampered_document_is_refused_by_xmlsec1_the_simulator_and_the_product(what: str, tmp_path: Path) -> None:
    old, new = TAMPERINGS[what]
    xml = signed_xml()
    assert old in xml
    bad = xml.replace(old, new, 1)
    done = xmlsec_verify(bad, material().csd.cert_pem, tmp_path)
    assert done.returncode != 0, done.stdout
    verdict = signed.check(base64.b64encode(bad).decode())
    assert isinstance(verdict, signed.Refusal) and verdict.code == 1702, verdict
    with pytest.raises(signing.SigningError):
        signing.verify(bad, material().checked())


def test_xmlsec1_refuses_a_signature_checked_with_another_certificate(tmp_path: Path) -> None:
    done = xmlsec_verify(signed_xml(), material().other.cert_pem, tmp_path)
    assert done.returncode != 0


def test_a_job_of_another_issuer_is_not_signed_with_this_csd() -> None:
    job = job_spec(UUID, "EKU9003173C9")
    with pytest.raises(signing.SigningError, match="EKU9003173C9"):
        signing.signed_request(job, material().checked(), NOW)


def test_self_test_proves_the_key_signs_and_verifies() -> None:
    signing.self_test(material().checked(), NOW)


class _NoSha1Key:
    """A key whose platform forbids SHA-1 signatures, as OpenSSL does under RHEL 9's DEFAULT crypto policy."""

    def __init__(self, real: object) -> None:
        self._real = real

    def sign(self, data: bytes, pad: object, algorithm: object) -> bytes:
        from cryptography.exceptions import UnsupportedAlgorithm

        raise UnsupportedAlgorithm("sha1 signatures are disabled by the crypto policy")

    def public_key(self) -> object:
        return self._real.public_key()  # type: ignore[attr-defined]


def test_a_platform_that_forbids_rsa_sha1_is_told_how_to_fix_it() -> None:
    good = material().checked()
    forbidden = certificate.Checked(good.rfc, good.certificate, _NoSha1Key(good.key))  # type: ignore[arg-type]
    with pytest.raises(signing.SigningError) as raised:
        signing.self_test(forbidden, NOW)
    message = str(raised.value)
    assert message.startswith(f"issuers[{RFC}]: RSA-SHA1 signing failed (UnsupportedAlgorithm)")
    assert "update-crypto-policies --set DEFAULT:SHA1" in message and "OPENSSL_CONF" in message
