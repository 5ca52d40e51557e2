"""CFDI 3.3 and 4.0 XML files as jobs: bytes in, the invoice's facts out.  Pure: no I/O.

What is read, by namespace and local name (any prefix, any Addenda, a BOM or not)::

    <cfdi:Comprobante xmlns:cfdi="http://www.sat.gob.mx/cfd/4" Total="1160.00" Sello="...">
      <cfdi:Emisor Rfc="EKU9003173C9" .../>
      <cfdi:Receptor Rfc="XAXX010101000" .../>
      <cfdi:Complemento>
        <tfd:TimbreFiscalDigital xmlns:tfd="http://www.sat.gob.mx/TimbreFiscalDigital" UUID="..."/>
      </cfdi:Complemento>
      <cfdi:Addenda>...</cfdi:Addenda>
    </cfdi:Comprobante>

A file that is not such a CFDI is a ValidationError naming the file and what is wrong.
Parsing uses lxml with entities, DTD loading and the network off; a DTD is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from reconciler.errors import ValidationError
from reconciler.jobs.validation import JobSpec, job_spec

CFDI_33 = "http://www.sat.gob.mx/cfd/3"
CFDI_40 = "http://www.sat.gob.mx/cfd/4"
VERSIONS = {CFDI_33: "3.3", CFDI_40: "4.0"}
TFD = "http://www.sat.gob.mx/TimbreFiscalDigital"
MAX_BYTES = 16 << 20  # a CFDI with a large Addenda is a few MiB at most

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


@dataclass(frozen=True, slots=True)
class Cfdi:
    """The facts of one stamped CFDI that a cancellation and the SAT's status service need."""

    version: str
    uuid: str
    rfc_emisor: str
    rfc_receptor: str
    total: str
    sello: str


def _split(tag: object) -> tuple[str, str] | None:
    if not isinstance(tag, str):
        return None
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _child(parent: etree._Element, ns: str, local: str, name: str) -> etree._Element:
    found = parent.findall(f"{{{ns}}}{local}")
    if len(found) != 1:
        raise ValidationError(f"{name}: {len(found)} {local} elements in the Comprobante, expected one")
    return found[0]


def _attr(element: etree._Element, attr: str, name: str) -> str:
    value = element.get(attr)
    if value is None or not value.strip():
        local = (_split(element.tag) or ("", "?"))[1]
        raise ValidationError(f"{name}: {local} has no {attr}")
    return str(value).strip()


def parse_cfdi(data: bytes, name: str) -> Cfdi:
    """The CFDI in ``data`` (the file's bytes); ``name`` (its path) starts every error message."""
    if len(data) > MAX_BYTES:
        raise ValidationError(f"{name}: larger than {MAX_BYTES} bytes; not a CFDI")
    if not data.strip():
        raise ValidationError(f"{name}: empty file; not a CFDI")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        first = str(e).splitlines()[0] if str(e) else "syntax error"
        raise ValidationError(f"{name}: not well-formed XML: {first[:160]}") from e
    if root is None:
        raise ValidationError(f"{name}: not XML: no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ValidationError(f"{name}: declares a DTD; a CFDI does not")
    split = _split(root.tag)
    if split is None or split[1] != "Comprobante" or split[0] not in VERSIONS:
        shown = f"{{{split[0]}}}{split[1]}" if split and split[0] else (split[1] if split else "?")
        raise ValidationError(
            f"{name}: not a CFDI 3.3 or 4.0: root element {shown[:100]!r} (expected Comprobante in {CFDI_33} "
            f"or {CFDI_40})"
        )
    ns = split[0]
    emisor = _child(root, ns, "Emisor", name)
    receptor = _child(root, ns, "Receptor", name)
    stamps = root.findall(f"{{{ns}}}Complemento/{{{TFD}}}TimbreFiscalDigital")
    if len(stamps) != 1:
        what = "no TimbreFiscalDigital (not stamped)" if not stamps else f"{len(stamps)} TimbreFiscalDigital"
        raise ValidationError(f"{name}: {what} in Complemento")
    return Cfdi(
        VERSIONS[ns],
        _attr(stamps[0], "UUID", name),
        _attr(emisor, "Rfc", name),
        _attr(receptor, "Rfc", name),
        _attr(root, "Total", name),
        _attr(root, "Sello", name),
    )


def cfdi_job(data: bytes, name: str, motivo: str | None = None, folio_sustitucion: str | None = None) -> JobSpec:
    """The cancellation job for one CFDI file; every error names the file."""
    cfdi = parse_cfdi(data, name)
    try:
        return job_spec(
            cfdi.uuid, cfdi.rfc_emisor, motivo, folio_sustitucion, cfdi.rfc_receptor, cfdi.total, cfdi.sello
        )
    except ValidationError as e:
        raise ValidationError(f"{name}: {e}") from e
