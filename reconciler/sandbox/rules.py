"""The simulator's rules, pure: which UUID gets which answer and how it ends.

The intended outcome of a well-formed request sent with valid credentials:

* the provider page's 204 testing UUIDs are refused at submission (``204``):
  ``"rejected"``;
* a field the provider would call invalid (a malformed ``UUID|motivo|folio``,
  an invalid RFC) is refused (``621``): ``"rejected"``;
* the page's 211 testing UUIDs are accepted with ``211``; no notification is
  sent for them, the status call answers 211 and then 200 with an acuse:
  ``"ok"``;
* every other UUID is accepted with ``200`` and ends in ``ERROR`` when its
  last hex digit is ``E`` (one in sixteen random UUIDs; the recipient "denies"
  the cancellation, status 213), else ``OK``.

These rules are the simulator's own, written from the provider's page and the
SAT's field formats, not borrowed from the product's validators: a validator bug
must show as a disagreement between the two sides, never be accepted by both.
"""

from __future__ import annotations

import datetime
import re
from typing import Literal

Intended = Literal["ok", "error", "rejected"]

UUIDS_204: frozenset[str] = frozenset(
    {
        "E329DD15-7D0B-44E9-A204-51A7443D1FBE",
        "5B4B180D-5B6C-4392-B204-252215A1AB84",
        "51D8A114-2BA6-40B8-C204-B9721791863B",
        "1BCA95C3-DA01-44C2-D204-59A9114F94BE",
        "F4621025-0864-4E62-E204-59EE41B1101E",
    }
)
UUIDS_211: frozenset[str] = frozenset(
    {
        "C5E58106-6C1E-41C9-A211-FB8BAD1CABB0",
        "38FB9AC9-DD3E-4601-B211-EB02C007C3BA",
        "CB917CA9-60D3-4A81-C211-76BD1A6B756D",
        "7C34D543-E6C9-4990-D211-3F767E0B5142",
        "0D62B12C-BC6C-4626-E211-FC8FE727A5BC",
    }
)

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# The SAT's cancellation reasons since the 2022 procedure.
MOTIVOS: frozenset[str] = frozenset({"01", "02", "03", "04"})
_RFC_NAME_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZÑ&")
_RFC_HOMOCLAVE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def parse_uuid_field(field: str) -> tuple[str, str, str]:
    """Split ``UUID|motivo|folioSustitucion`` as the SAT's 2022 procedure wants it.

    Returns ``(UUID, motivo, folio)`` upper-cased; raises ValueError saying what is
    wrong.  Motivo 01 needs the replacing invoice's UUID as folio; 02-04 need an
    empty folio (the trailing ``|`` is kept).
    """
    parts = field.split("|")
    if len(parts) != 3:
        raise ValueError(f"uuid must be UUID|motivo|folioSustitucion, got {len(parts)} part(s)")
    uuid, motivo, folio = (p.strip().upper() for p in parts)
    if not _UUID.fullmatch(uuid):
        raise ValueError(f"not a UUID: {uuid!r}")
    if motivo not in MOTIVOS:
        raise ValueError(f"motivo must be 01, 02, 03 or 04, got {motivo!r}")
    if motivo == "01":
        if not _UUID.fullmatch(folio):
            raise ValueError(f"motivo 01 needs the replacing invoice's UUID as folioSustitucion, got {folio!r}")
        if folio == uuid:
            raise ValueError("folioSustitucion must differ from the cancelled UUID")
    elif folio:
        raise ValueError(f"folioSustitucion must be empty with motivo {motivo}, got {folio!r}")
    return uuid, motivo, folio


def rfc_ok(rfc: str) -> bool:
    """Whether the provider would take ``rfc`` as an issuer's RFC (else it answers 621, invalid data).

    The SAT's shape, checked part by part: 3 letters (a company, 12 characters) or 4 (a person,
    13) from A-Z, Ñ and &; the date of incorporation or birth as YYMMDD, a real calendar date in
    19YY or 20YY; a homoclave of two letters or digits and a check character, a digit or ``A``.
    """
    text = rfc.strip().upper()
    if len(text) not in (12, 13):
        return False
    letters = len(text) - 9
    name, date, homoclave = text[:letters], text[letters : letters + 6], text[letters + 6 :]
    if not set(name) <= _RFC_NAME_LETTERS or not date.isascii() or not date.isdigit():
        return False
    if not any(_is_date(century + int(date[:2]), int(date[2:4]), int(date[4:6])) for century in (1900, 2000)):
        return False
    return set(homoclave[:2]) <= _RFC_HOMOCLAVE and homoclave[2] in "0123456789A"


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def submission_code(uuid: str) -> int:
    """What the first well-formed, authenticated ``cancelarAsincrono`` for ``uuid`` answers."""
    u = uuid.upper()
    if u in UUIDS_204:
        return 204
    if u in UUIDS_211:
        return 211
    return 200


def ends_in_error(uuid: str) -> bool:
    """The deterministic failure rule: an accepted UUID whose last hex digit is ``E`` ends in ERROR."""
    u = uuid.upper()
    return u not in UUIDS_211 and u.endswith("E")


def intended_outcome(uuid: str) -> Intended:
    """The final state a job for ``uuid`` should reach through the simulator (see the module doc)."""
    u = uuid.strip().upper()
    if not _UUID.fullmatch(u) or submission_code(u) == 204:
        return "rejected"
    return "error" if ends_in_error(u) else "ok"


def sends_notification(uuid: str) -> bool:
    """The page's 211 testing UUIDs are resolved by the status call only: no email."""
    return uuid.upper() not in UUIDS_211
