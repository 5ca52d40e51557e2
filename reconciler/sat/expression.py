"""The printed expression (``expresionImpresa``) the SAT's status service is asked about.  Pure.

The canonical CFDI 3.3 / 4.0 form, the one printed in the invoice's QR code::

    https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx?id=UUID&re=RFC&rr=RFC&tt=TOTAL&fe=LAST8

* ``tt``: the total with at most six decimals (rounded half up), trailing zeros
  trimmed, at least one decimal kept: ``1`` -> ``1.0``, ``0.99`` -> ``0.99``,
  ``1234.50`` -> ``1234.5``;
* ``fe``: the last eight characters of the CFDI's ``Sello``;
* an RFC may hold ``&`` (and ``Ñ``): ``&`` is written ``&amp;``, as the SAT prints it in
  the QR code, so the parameter separators stay unambiguous.  The SOAP envelope escapes the
  whole expression once more (:func:`reconciler.sat.client.envelope`).

Without a sello the older short form is built, which the service still answers::

    ?re=RFC&rr=RFC&tt=0000001234.500000&id=UUID

with ``tt`` as the CFDI 3.2 era printed it: six decimals, zero-padded to 17 characters.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from reconciler.jobs.validation import parse_total, sello_tail

__all__ = ["BASE", "expression", "format_total", "format_total_short", "parse_total", "sello_tail"]

BASE = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"
_SIX = Decimal("0.000001")


def format_total(total: Decimal | str | int) -> str:
    """``tt``: up to six decimals, trailing zeros trimmed, at least one decimal (``1`` -> ``1.0``)."""
    text = f"{parse_total(total).quantize(_SIX, rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.rstrip('0') or '0'}"


def format_total_short(total: Decimal | str | int) -> str:
    """``tt`` of the short form: six decimals, zero-padded to 17 characters (``0000001234.500000``)."""
    return f"{parse_total(total).quantize(_SIX, rounding=ROUND_HALF_UP):f}".rjust(17, "0")


def _rfc(rfc: str) -> str:
    return rfc.strip().upper().replace("&", "&amp;")


def expression(uuid: str, rfc_emisor: str, rfc_receptor: str, total: Decimal | str, sello: str | None) -> str:
    """The expression for one CFDI: the canonical form with a sello, the short form without one."""
    u = uuid.strip().upper()
    if sello:
        return (
            f"{BASE}?id={u}&re={_rfc(rfc_emisor)}&rr={_rfc(rfc_receptor)}"
            f"&tt={format_total(total)}&fe={sello_tail(sello)}"
        )
    return f"?re={_rfc(rfc_emisor)}&rr={_rfc(rfc_receptor)}&tt={format_total_short(total)}&id={u}"
