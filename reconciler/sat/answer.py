"""The status service's answer (``ConsultaResult``) as data: bytes in, an :class:`Answer` out.  Pure, never raises.

The answer's children, matched by local name (prefixes and namespaces do not matter)::

    <ConsultaResult>
      <CodigoEstatus>S - Comprobante obtenido satisfactoriamente.</CodigoEstatus>
      <EsCancelable>Cancelable con aceptación</EsCancelable>
      <Estado>Vigente</Estado>
      <EstatusCancelacion>En proceso</EstatusCancelacion>
      <ValidacionEFOS>200</ValidacionEFOS>
    </ConsultaResult>

Known values are returned in their canonical spelling whatever the case, accents or
spacing the SAT used; an unknown value is kept as sent (trimmed, bounded) so it can be
shown, never guessed at.  A SOAP fault, an HTML page, a DTD or an entity, or XML without a
``ConsultaResult`` is an answer with ``problem`` set (the caller treats it as transient).
Parsing uses lxml with entities, DTD loading and the network off, as the acuse parser does.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from lxml import etree

MAX_BYTES = 256 * 1024  # an answer is well under 1 KiB
_SHOWN = 120

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)

VIGENTE = "Vigente"
CANCELADO = "Cancelado"
NO_ENCONTRADO = "No Encontrado"
ESTADOS = (VIGENTE, CANCELADO, NO_ENCONTRADO)

SIN_ACEPTACION = "Cancelable sin aceptación"
CON_ACEPTACION = "Cancelable con aceptación"
NO_CANCELABLE = "No cancelable"
CANCELABLES = (SIN_ACEPTACION, CON_ACEPTACION, NO_CANCELABLE)

EN_PROCESO = "En proceso"
PLAZO_VENCIDO = "Plazo vencido"
CANCELADO_CON = "Cancelado con aceptación"
CANCELADO_SIN = "Cancelado sin aceptación"
RECHAZADA = "Solicitud rechazada"
ESTATUSES = (EN_PROCESO, PLAZO_VENCIDO, CANCELADO_CON, CANCELADO_SIN, RECHAZADA)


def _key(text: str) -> str:
    """Case, accents and runs of spaces do not matter when matching a known value."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


_CANONICAL = {_key(v): v for v in (*ESTADOS, *CANCELABLES, *ESTATUSES)}


def canonical(value: str | None) -> str | None:
    """A known value in its canonical spelling; an unknown one trimmed and bounded; None for empty."""
    if value is None:
        return None
    text = " ".join(value.split())
    if not text:
        return None
    return _CANONICAL.get(_key(text), text[:_SHOWN])


@dataclass(frozen=True, slots=True)
class Answer:
    """What the SAT said about one CFDI; ``problem`` is set (and the rest None) when it said nothing usable."""

    codigo_estatus: str | None = None
    estado: str | None = None
    es_cancelable: str | None = None
    estatus_cancelacion: str | None = None
    validacion_efos: str | None = None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def found(self) -> bool:
        """The SAT answered about this CFDI (``S - ...``, an Estado other than No Encontrado)."""
        return self.usable and self.estado in (VIGENTE, CANCELADO)

    @property
    def invalid_expression(self) -> bool:
        """``N - 601``: the SAT could not read the expression (a wrong total, RFC or sello tail)."""
        return self.usable and (self.codigo_estatus or "").startswith("N") and "601" in (self.codigo_estatus or "")

    @property
    def cancelled(self) -> bool:
        return self.usable and self.estado == CANCELADO

    @property
    def unknown_values(self) -> list[str]:
        """Values this program does not know (kept and shown, never interpreted)."""
        pairs = (
            (self.estado, ESTADOS),
            (self.es_cancelable, CANCELABLES),
            (self.estatus_cancelacion, ESTATUSES),
        )
        return [v for v, known in pairs if v is not None and v not in known]

    def as_dict(self) -> dict[str, Any]:
        return {
            "codigo_estatus": self.codigo_estatus,
            "estado": self.estado,
            "es_cancelable": self.es_cancelable,
            "estatus_cancelacion": self.estatus_cancelacion,
            "validacion_efos": self.validacion_efos,
            "problem": self.problem,
        }


def _local(tag: object) -> str | None:
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def parse(data: bytes | None) -> Answer:
    """The answer in ``data`` (the HTTP body as received); never raises."""
    try:
        return _parse(data)
    except Exception as e:  # a parser surprise is a problem, not a crash
        return Answer(problem=f"the answer could not be read: {type(e).__name__}")


def _parse(data: bytes | None) -> Answer:
    if not data or not data.strip():
        return Answer(problem="empty answer")
    if len(data) > MAX_BYTES:
        return Answer(problem=f"the answer is {len(data)} bytes, more than {MAX_BYTES}")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        first = str(e).splitlines()[0] if str(e) else "syntax error"
        return Answer(problem=f"the answer is not XML: {first[:120]}")
    if root is None:
        return Answer(problem="the answer is not XML: no root element")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return Answer(problem="the answer declares a DTD")
    if any(True for _ in root.iter(etree.Entity)):
        return Answer(problem="the answer holds an entity reference")
    results = [e for e in root.iter() if _local(e.tag) == "ConsultaResult"]
    if len(results) != 1:
        faults = [e for e in root.iter() if _local(e.tag) == "faultstring"]
        if faults:
            return Answer(problem=f"SOAP fault: {_quote(faults[0].text or '')}")
        if results:
            return Answer(problem=f"{len(results)} ConsultaResult elements, not one")
        return Answer(problem=f"no ConsultaResult in the answer (root {_quote(str(_local(root.tag)))})")
    fields: dict[str, str | None] = {}
    for child in results[0]:
        name = _local(child.tag)
        if name is None:
            continue
        if any(_local(c.tag) is not None for c in child):
            return Answer(problem=f"{name} holds elements, not text")
        if name in fields:
            return Answer(problem=f"{name} appears twice")
        fields[name] = canonical(child.text)
    codigo = fields.get("CodigoEstatus")
    if codigo is None:
        return Answer(problem="ConsultaResult has no CodigoEstatus")
    estado = fields.get("Estado")
    if estado is None and codigo.startswith("N"):
        estado = NO_ENCONTRADO if "602" in codigo else None
    return Answer(
        codigo_estatus=codigo,
        estado=estado,
        es_cancelable=fields.get("EsCancelable"),
        estatus_cancelacion=fields.get("EstatusCancelacion"),
        validacion_efos=fields.get("ValidacionEFOS"),
    )
