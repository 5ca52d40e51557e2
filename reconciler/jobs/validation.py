"""Validation of everything a user types or imports: pure, no I/O.

Each parser returns the canonical value or raises ValidationError with a
message naming the field and the offending value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from reconciler.errors import ValidationError
from reconciler.redact import show

MOTIVOS: dict[str, str] = {
    "01": "issued with errors, with a replacing invoice",
    "02": "issued with errors, without a replacing invoice",
    "03": "the operation did not take place",
    "04": "nominative operation related to a global invoice",
}

# SAT RFC: 3 letters (moral person) or 4 (physical person), the date YYMMDD, a 3-character homoclave.
_RFC = re.compile(r"[A-ZÑ&]{3,4}[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]")
FE_LENGTH = 8  # the expression carries the last 8 characters of the CFDI's Sello
MAX_TOTAL = Decimal("1e18")  # far above any invoice; keeps the text bounded
_SHOWN = 60  # characters of a bad value quoted in a message
_UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


def parse_uuid(value: str, field: str = "uuid") -> str:
    """A CFDI folio fiscal: 36 characters, hex and dashes, any case; returned upper-case.

    Braces (``{...}``) and surrounding whitespace are accepted, as mail headers and
    spreadsheets produce them.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field}: not a UUID: {show(value, _SHOWN)}")
    for i, c in enumerate(value, 1):  # before upper(): U+FB00 "ﬀ" folds to "FF"
        if not c.isascii():
            raise ValidationError(
                f"{field}: non-ASCII character {show(c, _SHOWN)} (U+{ord(c):04X}) at position {i}: "
                f"{show(value, _SHOWN)}"
            )
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    text = text.upper()
    if not _UUID.fullmatch(text):
        raise ValidationError(f"{field}: not a UUID: {show(value, _SHOWN)}")
    return text  # the pattern admits exactly the canonical upper-case 8-4-4-4-12 form


def parse_rfc(value: str, field: str = "rfc") -> str:
    """An issuer's RFC: 12 characters (company) or 13 (person), SAT pattern; returned upper-case."""
    if not isinstance(value, str):
        raise ValidationError(f"{field}: not an RFC: {show(value, _SHOWN)}")
    text = value.strip().upper()
    if len(text) not in (12, 13):
        raise ValidationError(f"{field}: an RFC has 12 or 13 characters, got {len(text)}: {show(value, _SHOWN)}")
    if not _RFC.fullmatch(text):
        raise ValidationError(f"{field}: not a valid RFC: {show(value, _SHOWN)}")
    return text


def parse_motivo(value: str | None, field: str = "motivo") -> str:
    """The SAT cancellation reason ``01``-``04``; empty means ``02``; ``1`` means ``01``."""
    if value is None or not str(value).strip():
        return "02"
    text = str(value).strip()
    if text.isdigit() and len(text) <= 2:
        text = text.zfill(2)
    if text not in MOTIVOS:
        raise ValidationError(f"{field}: must be one of 01, 02, 03, 04, got {show(value, _SHOWN)}")
    return text


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated cancellation request, ready for the ledger."""

    uuid: str
    rfc_emisor: str
    motivo: str
    folio_sustitucion: str | None
    # What the SAT's status service needs (all three optional): the receiver's RFC, the
    # CFDI's total as the expression prints it, the last eight characters of its Sello.
    rfc_receptor: str | None = None
    total: str | None = None
    sello: str | None = None

    @property
    def provider_uuid_field(self) -> str:
        """The ``uuid`` field as the 2022 procedure wants it: ``UUID|motivo|folioSustitucion``."""
        return f"{self.uuid}|{self.motivo}|{self.folio_sustitucion or ''}"


def parse_total(value: str | Decimal | int, field: str = "total") -> Decimal:
    """A CFDI total: a finite, non-negative decimal below 10**18; ValidationError naming ``field`` otherwise."""
    if isinstance(value, bool):
        raise ValidationError(f"{field}: not an amount: {value!r}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError) as e:
        raise ValidationError(f"{field}: not an amount: {str(value)[:40]!r}") from e
    if not amount.is_finite() or amount < 0 or amount >= MAX_TOTAL:
        raise ValidationError(f"{field}: must be a finite amount from 0 to 10^18, got {str(value)[:40]!r}")
    digits = value.strip().replace(".", "", 1) if isinstance(value, str) else "0"
    if not (digits.isascii() and digits.isdigit()):
        raise ValidationError(f"{field}: digits with an optional decimal point, got {str(value)[:40]!r}")
    return amount


def sello_tail(sello: str) -> str:
    """The last eight characters of a sello (or the eight themselves)."""
    text = "".join(sello.split())  # a sello copied from a file may be wrapped
    if len(text) < FE_LENGTH:
        raise ValidationError(f"sello: at least {FE_LENGTH} characters are needed, got {len(text)}")
    if not text.isascii():
        raise ValidationError("sello: a sello is base64 text; this one holds non-ASCII characters")
    return text[-FE_LENGTH:]


def sat_fields(
    rfc_receptor: str | None, total: str | None, sello: str | None
) -> tuple[str | None, str | None, str | None]:
    """The optional SAT fields, validated: an RFC, a total (as ``tt`` prints it), a sello's last 8 characters."""
    receptor = parse_rfc(rfc_receptor, "rfc_receptor") if rfc_receptor and rfc_receptor.strip() else None
    amount = f"{parse_total(total):f}" if total and total.strip() else None
    tail = sello_tail(sello) if sello and sello.strip() else None
    return receptor, amount, tail


def job_spec(
    uuid: str,
    rfc: str,
    motivo: str | None = None,
    folio_sustitucion: str | None = None,
    rfc_receptor: str | None = None,
    total: str | None = None,
    sello: str | None = None,
) -> JobSpec:
    """Validate one job; folio_sustitucion is required for motivo 01 and refused otherwise."""
    u = parse_uuid(uuid)
    r = parse_rfc(rfc)
    m = parse_motivo(motivo)
    folio = folio_sustitucion.strip() if folio_sustitucion else ""
    if m == "01":
        if not folio:
            raise ValidationError("folio_sustitucion: required with motivo 01 (the replacing invoice's UUID)")
        f: str | None = parse_uuid(folio, "folio_sustitucion")
        if f == u:
            raise ValidationError(f"folio_sustitucion: must differ from the cancelled uuid {u}")
    else:
        if folio:
            raise ValidationError(
                f"folio_sustitucion: only allowed with motivo 01, got {show(folio, _SHOWN)} with motivo {m}"
            )
        f = None
    return JobSpec(u, r, m, f, *sat_fields(rfc_receptor, total, sello))
