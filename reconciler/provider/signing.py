"""The SAT's ``Cancelacion`` request, signed here with the issuer's CSD (zero custody).

One folio per request::

    <Cancelacion xmlns="http://cancelacfd.sat.gob.mx" xmlns:xsd=... xmlns:xsi=...
                 RfcEmisor="EKU9003173C9" Fecha="2024-05-05T12:34:56">
      <Folios><Folio UUID="..." Motivo="02"/></Folios>
      <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">...</Signature>
    </Cancelacion>

``Fecha`` is Mexico City local time without an offset; ``FolioSustitucion`` is
written only with motivo 01 (an empty attribute is refused as malformed XML).

The signature is the SAT's profile of an enveloped XML-DSig: inclusive Canonical
XML 1.0 without comments, RSA-SHA1, a SHA-1 digest over ``Reference URI=""`` with
the enveloped-signature transform only, and ``KeyInfo/X509Data`` with
``X509IssuerSerial`` and ``X509Certificate``.  Built with lxml (libxml2's C14N)
and cryptography; no XML-DSig library, because the profile is small and fixed
and each of them needs configuring away from its SHA-256 defaults.

The trap: canonicalising the ``SignedInfo`` element on its own with lxml renders
the namespaces it *uses*, while a verifier canonicalises it as a node set *in
its document*, with every namespace in scope there (the root's ``xmlns:xsd`` and
``xmlns:xsi`` too).  :func:`canonical_in_place` builds the canonical bytes of an
element as it stands in its document.  Pure: no I/O, the time is an argument.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from reconciler.errors import ReconcilerError
from reconciler.jobs.validation import JobSpec
from reconciler.provider.certificate import Checked, issuer_name

NS = "http://cancelacfd.sat.gob.mx"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA1 = DSIG + "rsa-sha1"
SHA1 = DSIG + "sha1"
ENVELOPED = DSIG + "enveloped-signature"
MEXICO_CITY = ZoneInfo("America/Mexico_City")

FIX_SHA1 = (
    "this platform's crypto policy forbids RSA-SHA1 signatures, which the SAT's cancellation profile requires; "
    "on RHEL/Fedora/CentOS run `update-crypto-policies --set DEFAULT:SHA1` (or LEGACY), or point OPENSSL_CONF "
    "for the service at an OpenSSL config with `rh-allow-sha1-signatures = yes`"
)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)


class SigningError(ReconcilerError):
    """A cancellation request could not be signed or its signature does not verify."""


def fecha(now: datetime) -> str:
    """``now`` (aware) as Mexico City local time, seconds precision, no offset: the SAT's ``Fecha``."""
    if now.tzinfo is None:
        raise ValueError("fecha: now must carry a time zone")
    return now.astimezone(MEXICO_CITY).strftime("%Y-%m-%dT%H:%M:%S")


def _sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{DSIG}}}{name}", attrs)
    if text is not None:
        el.text = text
    return el


def document(job: JobSpec, now: datetime) -> etree._Element:
    """The unsigned ``Cancelacion`` for one job, dated ``now``."""
    root = etree.Element(f"{{{NS}}}Cancelacion", nsmap={None: NS, "xsd": XSD, "xsi": XSI})
    root.set("RfcEmisor", job.rfc_emisor)
    root.set("Fecha", fecha(now))
    folios = etree.SubElement(root, f"{{{NS}}}Folios")
    folio = etree.SubElement(folios, f"{{{NS}}}Folio")
    folio.set("UUID", job.uuid)
    folio.set("Motivo", job.motivo)
    if job.motivo == "01" and job.folio_sustitucion:
        folio.set("FolioSustitucion", job.folio_sustitucion)
    return root


def canonical(root: etree._Element) -> bytes:
    """Inclusive C14N 1.0 without comments of the whole document ``root`` belongs to."""
    return bytes(etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False))


def canonical_in_place(element: etree._Element) -> bytes:
    """Inclusive C14N 1.0 of ``element``'s subtree as a node set of its own document.

    The apex of such a node set carries every namespace in scope where it stands
    (``element.nsmap`` lists them, inherited ones included); a copy declaring all of
    them on a root of its own canonicalises to exactly those bytes.
    """
    apex = etree.Element(element.tag, nsmap=element.nsmap)
    for name, value in element.attrib.items():
        apex.set(name, value)
    apex.text = element.text
    for child in element:
        apex.append(copy.deepcopy(child))
    return bytes(etree.tostring(etree.ElementTree(apex), method="c14n", exclusive=False, with_comments=False))


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")  # noqa: S324 the SAT's profile


def sign(root: etree._Element, csd: Checked) -> bytes:
    """Append the enveloped signature to ``root`` and return the document as UTF-8 bytes."""
    # The enveloped-signature transform removes the Signature again: digest the document before it is added.
    digest = _digest(canonical(root))
    signature = etree.SubElement(root, f"{{{DSIG}}}Signature", nsmap={None: DSIG})
    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", Algorithm=C14N)
    _sub(signed_info, "SignatureMethod", Algorithm=RSA_SHA1)
    reference = _sub(signed_info, "Reference", URI="")
    _sub(_sub(reference, "Transforms"), "Transform", Algorithm=ENVELOPED)
    _sub(reference, "DigestMethod", Algorithm=SHA1)
    _sub(reference, "DigestValue", digest)
    value = _sub(signature, "SignatureValue")
    data = _sub(_sub(signature, "KeyInfo"), "X509Data")
    issuer_serial = _sub(data, "X509IssuerSerial")
    _sub(issuer_serial, "X509IssuerName", issuer_name(csd.certificate))
    _sub(issuer_serial, "X509SerialNumber", str(csd.certificate.serial_number))
    der = csd.certificate.public_bytes(serialization.Encoding.DER)
    _sub(data, "X509Certificate", base64.b64encode(der).decode("ascii"))
    try:
        raw = csd.key.sign(canonical_in_place(signed_info), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except Exception as e:  # OpenSSL under a crypto policy that forbids SHA-1 signatures
        raise SigningError(f"issuers[{csd.rfc}]: RSA-SHA1 signing failed ({type(e).__name__}): {FIX_SHA1}") from e
    value.text = base64.b64encode(raw).decode("ascii")
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))


def signed_request(job: JobSpec, csd: Checked, now: datetime) -> bytes:
    """The signed ``Cancelacion`` for one job: what ``enviarSolicitudCancelacionAsincrono`` sends as ``solicitud``."""
    if job.rfc_emisor != csd.rfc:
        raise SigningError(f"job {job.uuid}: issuer {job.rfc_emisor} cannot be signed with the CSD of {csd.rfc}")
    return sign(document(job, now), csd)


def verify(xml: bytes, csd: Checked) -> None:
    """Check a document this module signed against ``csd``'s certificate; SigningError says what fails."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as e:
        raise SigningError(f"not XML: {e}") from e
    signature = root.find(f"{{{DSIG}}}Signature")
    if signature is None:
        raise SigningError("no Signature element")
    signed_info = signature.find(f"{{{DSIG}}}SignedInfo")
    value = signature.findtext(f"{{{DSIG}}}SignatureValue")
    digest = signature.findtext(f"{{{DSIG}}}SignedInfo/{{{DSIG}}}Reference/{{{DSIG}}}DigestValue")
    if signed_info is None or not value or not digest:
        raise SigningError("the Signature lacks SignedInfo, SignatureValue or DigestValue")
    canonical_info = canonical_in_place(signed_info)
    bare = copy.deepcopy(root)
    bare.remove(bare.find(f"{{{DSIG}}}Signature"))
    if _digest(canonical(bare)) != digest.strip():
        raise SigningError("the document's digest does not match DigestValue (changed after signing)")
    try:
        csd.key.public_key().verify(  # the certificate's key: certificate.check proved they are a pair
            base64.b64decode(value),
            canonical_info,
            padding.PKCS1v15(),
            hashes.SHA1(),  # noqa: S303 the SAT's profile
        )
    except InvalidSignature as e:
        raise SigningError("the SignatureValue does not verify with the certificate") from e
    except Exception as e:
        raise SigningError(f"RSA-SHA1 verification failed ({type(e).__name__}): {FIX_SHA1}") from e


def self_test(csd: Checked, now: datetime) -> None:
    """Sign and verify one throwaway request: proves the key signs and the platform allows RSA-SHA1."""
    probe = JobSpec("00000000-0000-4000-8000-000000000000", csd.rfc, "02", None)
    verify(signed_request(probe, csd, now), csd)
