"""The acuse shapes the simulator can answer a finished status call with, good and bad.  Pure.

A :class:`AcuseControl` says how: the ``shape`` of the document, the ``estatus``
(``EstatusUUID``) and the UUID it names (``names``, default the job's), and whether
it travels in ``acuseSat``/``acuseSAT`` or in ``mensaje``.  Set one per UUID with
:meth:`reconciler.sandbox.service.Service.acuse_for`, or for every UUID with
``reconciler sandbox --acuse-shape``.

Shapes:

* ``real``: the SAT's own (root ``Acuse`` without a namespace, ``Folios`` in
  ``http://cancelacfd.sat.gob.mx``), the default;
* ``namespaced``: the root in the SAT's namespace too;
* ``wrapped``: a ``CancelaCFDResult`` wrapping the ``Acuse``;
* ``result``: a ``CancelaCFDResult`` carrying the ``Folios`` itself;
* ``garbage`` (bytes that are not XML), ``html`` (a login page), ``null`` (the
  text ``null``), ``empty`` (an empty acuse), ``absent`` (no acuse at all):
  nothing that is evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Shape = Literal["real", "namespaced", "wrapped", "result", "garbage", "html", "null", "empty", "absent"]
SHAPES: tuple[str, ...] = ("real", "namespaced", "wrapped", "result", "garbage", "html", "null", "empty", "absent")
SAT_NS = "http://cancelacfd.sat.gob.mx"


@dataclass(frozen=True, slots=True)
class AcuseControl:
    """How a finished status call answers: see the module doc."""

    shape: Shape = "real"
    estatus: int = 201
    names: str | None = None  # the UUID in the folio; None: the job's own
    in_mensaje: bool = False  # the acuse in ``mensaje`` instead of ``acuseSat``

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"acuse shape: unknown {self.shape!r}; known: {', '.join(SHAPES)}")


def _folios(uuid: str, estatus: int, ns: bool) -> str:
    xmlns = f' xmlns="{SAT_NS}"' if ns else ""
    return f"<Folios{xmlns}><UUID>{uuid}</UUID><EstatusUUID>{estatus}</EstatusUUID></Folios>"


def render(control: AcuseControl, uuid: str, rfc: str, when: datetime) -> bytes | None:
    """The acuse's bytes for ``uuid`` as ``control`` says (None: no acuse at all)."""
    named = control.names or uuid
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    attrs = f'Fecha="{when.strftime("%Y-%m-%dT%H:%M:%S")}" RfcEmisor="{rfc}"'
    signature = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#" Id="SelloSAT">c2FuZGJveA==</Signature>'
    xsd = 'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    shape = control.shape
    if shape == "real":
        return f"{head}<Acuse {xsd} {attrs}>{_folios(named, control.estatus, True)}{signature}</Acuse>".encode()
    if shape == "namespaced":
        body = f"<Folios><UUID>{named}</UUID><EstatusUUID>{control.estatus}</EstatusUUID></Folios>"
        return f'{head}<Acuse xmlns="{SAT_NS}" {attrs}>{body}{signature}</Acuse>'.encode()
    if shape == "wrapped":
        inner = f"<Acuse {attrs}>{_folios(named, control.estatus, True)}{signature}</Acuse>"
        return f'{head}<CancelaCFDResult xmlns:s="{SAT_NS}">{inner}</CancelaCFDResult>'.encode()
    if shape == "result":
        folios = _folios(named, control.estatus, True)
        return f"{head}<CancelaCFDResult {attrs}>{folios}{signature}</CancelaCFDResult>".encode()
    if shape == "garbage":
        return b"\x8b\xffPK not an acuse \xfe"  # no control characters: also sendable as text
    if shape == "html":
        return b"<html><head><title>Login</title></head><body><p>Please log in</p></body></html>"
    if shape == "null":
        return b"null"
    if shape == "empty":
        return b""
    return None
