"""SOAP 1.1/1.2 envelopes for the simulator: parse a request, write a reply the way Axis2 does."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

NS = "http://cancelacion.ws.cfdi.solucionfactible.com"
NS_XSD = NS + "/xsd"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

# No DTDs, no entities, no network: the request comes from whoever connects.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class BadRequest(ValueError):
    """The body is not a SOAP envelope with one operation element."""


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed call: SOAP version (11 or 12), operation name, fields by local name."""

    version: int
    operation: str
    fields: dict[str, str | None]


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_request(body: bytes) -> Request:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as e:
        raise BadRequest(f"not XML: {e}") from e
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP11, SOAP12):
        raise BadRequest(f"not a SOAP envelope: {root.tag}")
    version = 11 if qname.namespace == SOAP11 else 12
    body_el = root.find(f"{{{qname.namespace}}}Body")
    if body_el is None or len(body_el) == 0:
        raise BadRequest("SOAP Body is missing or empty")
    op = body_el[0]
    fields: dict[str, str | None] = {}
    for child in op:
        name = _local(child.tag)
        if not name:
            continue
        if child.get(_XSI_NIL) in ("true", "1") or (child.text is None and len(child) == 0):
            fields.setdefault(name, None)
        elif len(child):
            fields.setdefault(name, "")  # a structure (properties): present, content ignored
        else:
            fields.setdefault(name, child.text)
    return Request(version, _local(op.tag), fields)


def _envelope(version: int, inner: str) -> bytes:
    ns = SOAP11 if version == 11 else SOAP12
    return (
        f"<?xml version='1.0' encoding='UTF-8'?>"
        f'<soapenv:Envelope xmlns:soapenv="{ns}"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>'
    ).encode()


def reply(version: int, operation: str, result_type: str, values: list[tuple[str, str | None]]) -> bytes:
    """``<operationResponse><return>`` with the fields in the ``/xsd`` namespace, in order."""
    parts = []
    for name, value in values:
        if value is None:
            parts.append(f'<ax21:{name} xsi:nil="true"/>')
        else:
            parts.append(f"<ax21:{name}>{escape(value)}</ax21:{name}>")
    inner = (
        f'<ns:{operation}Response xmlns:ns="{NS}">'
        f'<ns:return xmlns:ax21="{NS_XSD}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:type="ax21:{result_type}">{"".join(parts)}</ns:return>'
        f"</ns:{operation}Response>"
    )
    return _envelope(version, inner)


def fault(version: int, reason: str) -> bytes:
    """A server fault as Axis2 writes it for the given SOAP version."""
    text = escape(reason)
    if version == 11:
        inner = (
            "<soapenv:Fault><faultcode>soapenv:Server</faultcode>"
            f"<faultstring>{text}</faultstring><detail/></soapenv:Fault>"
        )
    else:
        inner = (
            "<soapenv:Fault><soapenv:Code><soapenv:Value>soapenv:Receiver</soapenv:Value></soapenv:Code>"
            f'<soapenv:Reason><soapenv:Text xml:lang="en-US">{text}</soapenv:Text></soapenv:Reason>'
            "<soapenv:Detail/></soapenv:Fault>"
        )
    return _envelope(version, inner)


def content_type(version: int, action: str) -> str:
    if version == 11:
        return "text/xml; charset=UTF-8"
    return f'application/soap+xml; action="urn:{action}"; charset=UTF-8'
