"""The SAT's status service in the simulator: the same invoice world as the provider simulator.

An invoice is Vigente until the provider's simulated cancellation of it lands (the
provider's transaction is due); what follows is decided by a deterministic rule on the
UUID's second-to-last hex digit (the last one already decides the provider's OK/ERROR):

====================  ====================================================================
digit                 what the SAT says once the cancellation lands
====================  ====================================================================
0-7                   Cancelable sin aceptación: Cancelado, Cancelado sin aceptación
8, 9                  Cancelable con aceptación: En proceso for ``receiver_s``, then
                      Cancelado con aceptación
A                     En proceso for ``receiver_s``, then Solicitud rechazada (Vigente)
B                     En proceso until ``window_s`` has passed, then Plazo vencido (Cancelado)
C                     No cancelable, always Vigente (the provider is not consulted)
D                     lag: No Encontrado for ``lag_s`` after the SAT is first asked, then as 0-7
E, F                  as 0-7
====================  ====================================================================

A UUID whose provider outcome is ERROR (last digit E: the receiver denied) is, once landed,
Vigente with Solicitud rechazada, whatever its other digit.  Times are the sandbox clock's
seconds, so tests move them by hand.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

SOAP_ACTION = "http://tempuri.org/IConsultaCFDIService/Consulta"
Landed = tuple[float, Literal["OK", "ERROR"]] | None  # (due, result) of the provider's transaction


@dataclass(frozen=True, slots=True)
class Status:
    codigo: str
    estado: str
    es_cancelable: str = ""
    estatus: str = ""
    efos: str = "200"


FOUND = "S - Comprobante obtenido satisfactoriamente."
NOT_FOUND = Status("N - 602: Comprobante no encontrado.", "No Encontrado", efos="")
INVALID = Status("N - 601: La expresión impresa proporcionada no es válida.", "No Encontrado", efos="")
SIN = "Cancelable sin aceptación"
CON = "Cancelable con aceptación"
NO = "No cancelable"

_ID = re.compile(r"(?:^|[?&])id=([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?:&|$)")


def kind(uuid: str) -> str:
    """The UUID's SAT behaviour (see the module doc): sin, con, rechazo, vencido, no, lag."""
    digit = uuid.upper()[-2]
    return {"8": "con", "9": "con", "A": "rechazo", "B": "vencido", "C": "no", "D": "lag"}.get(digit, "sin")


def uuid_of(expression: str) -> str | None:
    """The ``id`` of a printed expression (either form); None when there is none."""
    found = _ID.search(html.unescape(expression).strip())
    return found.group(1).upper() if found else None


def answer(
    uuid: str, landed: Landed, now: float, *, asked_first: float, receiver_s: float, window_s: float, lag_s: float
) -> Status:
    """What the SAT says about ``uuid`` at ``now``.  Pure."""
    k = kind(uuid)
    if k == "lag" and now < asked_first + lag_s:
        return NOT_FOUND
    if k == "no":
        return Status(FOUND, "Vigente", NO)
    cancelable = CON if k in ("con", "rechazo", "vencido") else SIN
    if landed is None or now < landed[0]:
        return Status(FOUND, "Vigente", cancelable)
    due, result = landed
    if result == "ERROR":
        return Status(FOUND, "Vigente", CON, "Solicitud rechazada")
    if cancelable == SIN:
        return Status(FOUND, "Cancelado", SIN, "Cancelado sin aceptación")
    if k == "vencido":
        if now < due + window_s:
            return Status(FOUND, "Vigente", CON, "En proceso")
        return Status(FOUND, "Cancelado", CON, "Plazo vencido")
    if now < due + receiver_s:
        return Status(FOUND, "Vigente", CON, "En proceso")
    if k == "rechazo":
        return Status(FOUND, "Vigente", CON, "Solicitud rechazada")
    return Status(FOUND, "Cancelado", CON, "Cancelado con aceptación")


@dataclass
class SatWorld:
    """The SAT side's state: when each UUID was first asked about, and the questions asked."""

    landed: Callable[[str], Landed]
    clock: Callable[[], float]
    receiver_s: float = 3600.0
    window_s: float = 72 * 3600.0
    lag_s: float = 1800.0
    asked: list[tuple[float, str]] = field(default_factory=list)  # (clock, expression) per question
    _first: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def consulta(self, expression: str) -> Status:
        now = self.clock()
        uuid = uuid_of(expression)
        with self._lock:
            self.asked.append((now, expression))
            if uuid is None:
                return INVALID
            first = self._first.setdefault(uuid, now)
        return answer(
            uuid,
            self.landed(uuid),
            now,
            asked_first=first,
            receiver_s=self.receiver_s,
            window_s=self.window_s,
            lag_s=self.lag_s,
        )

    def calls_for(self, uuid: str) -> int:
        with self._lock:
            return sum(1 for _, e in self.asked if uuid_of(e) == uuid.upper())


def reply(status: Status) -> bytes:
    """The SOAP 1.1 answer the real service sends (its data-contract namespace and ``a:`` prefix)."""

    def el(name: str, value: str) -> str:
        return f"<a:{name}>{html.escape(value, quote=False)}</a:{name}>" if value else f"<a:{name}/>"

    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<ConsultaResponse xmlns="http://tempuri.org/"><ConsultaResult '
        'xmlns:a="http://schemas.datacontract.org/2004/07/Sat.Cfdi.Negocio.ConsultaCfdi.Servicio" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        + el("CodigoEstatus", status.codigo)
        + el("EsCancelable", status.es_cancelable)
        + el("Estado", status.estado)
        + el("EstatusCancelacion", status.estatus)
        + el("ValidacionEFOS", status.efos)
        + "</ConsultaResult></ConsultaResponse></s:Body></s:Envelope>"
    ).encode()


def expression_of(body: bytes) -> str | None:
    """The ``expresionImpresa`` of a request (XML-unescaped once, as the service reads it)."""
    found = re.search(rb"<(?:\w+:)?expresionImpresa[^>]*>(.*?)</(?:\w+:)?expresionImpresa>", body, re.S)
    if found is None:
        return None
    return html.unescape(found.group(1).decode("utf-8", "replace"))
