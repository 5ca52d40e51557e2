"""The simulator's check of a signed ``Cancelacion`` (``enviarSolicitudCancelacionAsincrono``).

Its own code path, on purpose: it does not import the product's signing module,
and it canonicalises with a small C14N 1.0 writer of its own instead of libxml2's,
so a canonicalisation mistake on either side shows as a refused signature.

:func:`check` returns the folio to cancel, or the provider-style code and message
to answer.  The 17xx codes are the simulator's reading of "key and certificate
errors" (FACTS.md lists 1701-1713 without meanings):

* 1701: no certificate in ``KeyInfo``, or not a DER X.509 certificate;
* 1702: the signature does not verify (digest or value), or not the SAT's profile;
* 1703: the certificate's RFC (``x500UniqueIdentifier``) is not ``RfcEmisor``;
* 1704: ``Fecha`` is outside the certificate's validity dates;
* 1705: a FIEL (no ``OU``), not a CSD.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

CANCEL_NS = "http://cancelacfd.sat.gob.mx"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = DSIG + "enveloped-signature"
MEXICO_CITY = ZoneInfo("America/Mexico_City")
XML_NS = "http://www.w3.org/XML/1998/namespace"

MESSAGES: dict[int, str] = {
    1701: "La llave privada o el certificado no son válidos",
    1702: "El sello de la solicitud de cancelación no es válido",
    1703: "El certificado no corresponde al RFC emisor",
    1704: "El certificado no está vigente en la fecha de la solicitud",
    1705: "El certificado no es un CSD (¿FIEL?)",
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True, slots=True)
class Folio:
    """What a valid signed request asks for: the issuer and ``UUID|motivo|folioSustitucion``."""

    rfc: str
    uuid_field: str
    fecha: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: int
    mensaje: str


# -- a C14N 1.0 (inclusive, without comments) writer for elements -------------------------


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _attr(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def _qname(tag: str, nsmap: dict[str | None, str]) -> str:
    """An attribute's qualified name: its namespace's prefix (an attribute never takes the default one)."""
    if not tag.startswith("{"):
        return tag
    uri, local = tag[1:].split("}", 1)
    if uri == XML_NS:
        return f"xml:{local}"
    prefix = next((p for p, u in sorted(nsmap.items(), key=lambda kv: kv[0] or "") if p and u == uri), None)
    return f"{prefix}:{local}" if prefix else local


def c14n(element: etree._Element, rendered: dict[str, str] | None = None, skip: etree._Element | None = None) -> str:
    """``element`` and its descendants (minus ``skip``) as the apex of a node set, canonicalised."""
    rendered = rendered or {}
    scope = {prefix or "": uri for prefix, uri in element.nsmap.items()}
    declarations = [(p, u) for p, u in scope.items() if rendered.get(p, "") != u]
    if "" not in scope and rendered.get("", ""):
        declarations.append(("", ""))  # xmlns="" undeclares an inherited default namespace
    own = {**rendered, **dict(declarations)}
    local = etree.QName(element).localname
    name = f"{element.prefix}:{local}" if element.prefix else local
    out = [f"<{name}"]
    for prefix, uri in sorted(declarations):
        out.append(f' xmlns="{_attr(uri)}"' if not prefix else f' xmlns:{prefix}="{_attr(uri)}"')
    attributes = []
    for key, value in element.attrib.items():
        uri = key[1:].split("}", 1)[0] if key.startswith("{") else ""
        local = key.split("}", 1)[-1]
        attributes.append((uri, local, _qname(key, element.nsmap), value))
    for _uri, _local, qname, value in sorted(attributes):
        out.append(f' {qname}="{_attr(value)}"')
    out.append(">")
    out.append(_text(element.text or ""))
    for child in element:
        if child is not skip and isinstance(child.tag, str):
            out.append(c14n(child, own, skip))
        elif isinstance(child, etree._ProcessingInstruction):
            out.append(f"<?{child.target}{' ' + child.text if child.text else ''}?>")
        out.append(_text(child.tail or ""))
    out.append(f"</{name}>")
    return "".join(out)


# -- the check ------------------------------------------------------------------------------


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def check(solicitud: str | None) -> Folio | Refusal:
    """Judge a ``solicitud`` (base64 of the signed XML) the way the provider would; never raises.

    The certificate is judged at the request's ``Fecha``, as the SAT does, not at the simulator's clock.
    """
    try:
        return _check(solicitud)
    except Exception as e:  # a certificate or key cryptography cannot use: refused, never a crash
        return Refusal(1701, f"{MESSAGES[1701]}: {type(e).__name__}")


def _check(solicitud: str | None) -> Folio | Refusal:
    try:
        xml = _b64(solicitud)
        root = etree.fromstring(xml, _PARSER)
    except (binascii.Error, ValueError, etree.XMLSyntaxError):
        return Refusal(621, "Datos no válidos: solicitud no es XML en base64")
    if root.tag != f"{{{CANCEL_NS}}}Cancelacion":
        return Refusal(621, f"Datos no válidos: se esperaba Cancelacion, llegó {root.tag}")
    rfc = (root.get("RfcEmisor") or "").strip().upper()
    fecha = root.get("Fecha") or ""
    folios = root.findall(f"{{{CANCEL_NS}}}Folios/{{{CANCEL_NS}}}Folio")
    if not rfc or not fecha or len(folios) != 1:
        return Refusal(621, "Datos no válidos: RfcEmisor, Fecha y un Folio son obligatorios")
    folio = folios[0]
    if "FolioSustitucion" in folio.attrib and not folio.get("FolioSustitucion"):
        return Refusal(621, "Datos no válidos: FolioSustitucion vacío (301 XML mal formado)")
    uuid_field = f"{folio.get('UUID') or ''}|{folio.get('Motivo') or ''}|{folio.get('FolioSustitucion') or ''}"
    signatures = root.findall(f"{{{DSIG}}}Signature")
    if len(signatures) != 1:
        return Refusal(1702, f"{MESSAGES[1702]}: se espera una firma")
    signature = signatures[0]
    certificate = _certificate(signature)
    if certificate is None:
        return Refusal(1701, f"{MESSAGES[1701]}: sin X509Certificate legible")
    problem = _signature(root, signature, certificate)
    if problem:
        return Refusal(1702, f"{MESSAGES[1702]}: {problem}")
    return _certificate_fits(certificate, rfc, fecha) or Folio(rfc, uuid_field, fecha)


def _certificate(signature: etree._Element) -> x509.Certificate | None:
    text = signature.findtext(f"{{{DSIG}}}KeyInfo/{{{DSIG}}}X509Data/{{{DSIG}}}X509Certificate")
    try:
        return x509.load_der_x509_certificate(_b64(text))
    except (binascii.Error, ValueError):
        return None


def _signature(root: etree._Element, signature: etree._Element, certificate: x509.Certificate) -> str | None:
    info = signature.find(f"{{{DSIG}}}SignedInfo")
    if info is None:
        return "sin SignedInfo"
    algorithms = (
        info.find(f"{{{DSIG}}}CanonicalizationMethod"),
        info.find(f"{{{DSIG}}}SignatureMethod"),
        info.find(f"{{{DSIG}}}Reference/{{{DSIG}}}DigestMethod"),
    )
    wanted = (C14N, DSIG + "rsa-sha1", DSIG + "sha1")
    if any(el is None or el.get("Algorithm") != want for el, want in zip(algorithms, wanted, strict=True)):
        return "algoritmos distintos de C14N 1.0, RSA-SHA1 y SHA-1"
    references = info.findall(f"{{{DSIG}}}Reference")
    transforms = [t.get("Algorithm") for t in info.iterfind(f"{{{DSIG}}}Reference/{{{DSIG}}}Transforms/*")]
    if len(references) != 1 or references[0].get("URI") != "" or transforms != [ENVELOPED]:
        return 'se espera una Reference URI="" con la transformación enveloped-signature'
    digest = hashlib.sha1(c14n(root, skip=signature).encode("utf-8")).digest()  # noqa: S324 the SAT's profile
    try:
        declared = _b64(references[0].findtext(f"{{{DSIG}}}DigestValue"))
        value = _b64(signature.findtext(f"{{{DSIG}}}SignatureValue"))
    except (binascii.Error, ValueError):
        return "DigestValue o SignatureValue no son base64"
    if digest != declared:
        return "el documento no corresponde al DigestValue"
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "el certificado no es RSA"
    try:
        key.verify(value, c14n(info).encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except InvalidSignature:
        return "SignatureValue no corresponde al certificado"
    return None


def _certificate_fits(certificate: x509.Certificate, rfc: str, fecha: str) -> Refusal | None:
    subject = certificate.subject
    holders = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)]
    if not holders or holders[0].split("/")[0].strip().upper() != rfc:
        return Refusal(1703, f"{MESSAGES[1703]} {rfc}")
    if not any(str(a.value).strip() for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)):
        return Refusal(1705, MESSAGES[1705])
    try:
        when = datetime.fromisoformat(fecha).replace(tzinfo=MEXICO_CITY)
    except ValueError:
        return Refusal(621, f"Datos no válidos: Fecha {fecha!r}")
    if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        return Refusal(1704, MESSAGES[1704])
    return None
