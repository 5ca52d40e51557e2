"""The provider's notification email, parsed: pure, no I/O, never raises.

Solución Factible reports each asynchronous cancellation with an email carrying
``X-SFService: Cancelar``, ``X-UUIDCancelacion: <UUID>`` and
``X-StatusCancelacion: OK|ERROR`` (in either order). :func:`parse` takes a
header block (what ``BODY.PEEK[HEADER.FIELDS (...)]`` returns) or a whole
message and returns one of:

* :class:`Notification`: well-formed; whether to *trust* it is
  :mod:`reconciler.mailbox.trust`'s question, not this module's;
* :class:`NotNotification`: no ``X-SFService`` header at all, not ours: leave it;
* :class:`Malformed`: ``X-SFService`` present but the rest does not add up; the
  reason is recorded for a human and nothing is applied.

Strictly: ``From``, ``X-UUIDCancelacion`` and ``X-StatusCancelacion`` appear exactly once
(a repeat, even an identical one, is malformed); a UUID or status holding any non-ASCII
character, raw or RFC 2047-encoded, is malformed (U+FB00 would fold to ``FF``); so is a
header block with a NUL or a CR or LF that does not end a line. An addr-spec is never
RFC 2047-decoded: a From whose address holds an encoded word, or is not plain ASCII,
records :data:`INVALID`, which no allowed sender matches (display names may be encoded).

The header block is split by the standard library's ``email`` parser with the
modern policy. Values that are plain ASCII without encoded words are only
unfolded; anything else goes through the policy's header factory (RFC 2047
decoding). ``From`` and ``Date`` parses are cached because a mailbox holds
thousands of notifications from the same sender: this keeps a 50,000-message
pass close to the speed of the IMAP fetch itself.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import _header_value_parser, errors
from email.parser import BytesHeaderParser
from functools import lru_cache
from typing import Literal

from reconciler.errors import ValidationError
from reconciler.jobs.validation import parse_uuid
from reconciler.redact import show

Status = Literal["OK", "ERROR"]

SERVICE = "X-SFService"
UUID_HEADER = "X-UUIDCancelacion"
STATUS_HEADER = "X-StatusCancelacion"
AUTH_RESULTS = "Authentication-Results"
#: The header fields a poller must fetch to classify a message (plus AUTH_RESULTS when trust needs it).
HEADER_FIELDS: tuple[str, ...] = ("From", "Message-ID", "Date", SERVICE, UUID_HEADER, STATUS_HEADER)

_POLICY = email.policy.default
_PARSER = BytesHeaderParser(policy=_POLICY)
_FIELD_NAME = frozenset(chr(c) for c in range(33, 127) if c != ord(":"))
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
#: The addr-spec recorded for a From mailbox that could not be read unambiguously.
INVALID = "<invalid address>"
_SHOWN = 60  # characters of a bad header value quoted in a reason
_MAX_TEXT = 998  # RFC 5322's line limit: longer values are cut in what we keep
#: Fields a notification must carry exactly once: a repeat, even an identical one, is malformed
#: (RFC 5322 allows one From; two UUID or status fields leave the claim to whichever a reader picks).
_SINGLE = ("From", UUID_HEADER, STATUS_HEADER)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")  # where the header block ends, as the email parser sees it


@dataclass(frozen=True, slots=True)
class Notification:
    """A well-formed cancellation notification: a claim, which :mod:`reconciler.mailbox.trust` judges."""

    uuid: str  # canonical upper-case
    status: Status
    message_id: str | None
    sender: str | None  # the From addr-spec, lower-cased; None unless From holds exactly one mailbox
    from_addresses: tuple[str, ...]  # every From addr-spec, lower-cased, in order
    date: datetime | None  # UTC
    raw_from: str | None
    authentication_results: tuple[str, ...] = ()  # topmost first, unfolded

    @property
    def sender_domain(self) -> str | None:
        return self.sender.rpartition("@")[2] if self.sender else None


@dataclass(frozen=True, slots=True)
class NotNotification:
    """No X-SFService header: some other mail, to be left exactly as it is."""

    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """X-SFService is present but the message is not a valid notification; recorded, never applied."""

    reason: str
    uuid: str | None = None
    message_id: str | None = None
    sender: str | None = None
    date: datetime | None = None


Parsed = Notification | NotNotification | Malformed


def parse(data: bytes) -> Parsed:
    """Classify a header block or whole message; never raises, whatever the bytes."""
    try:
        headers = _headers(bytes(data))
    except Exception:  # the split itself failed: nothing shows this is ours
        return NotNotification()
    if SERVICE.lower() not in headers:
        message_id = _first(headers, "message-id")
        return NotNotification(_clean(message_id) if message_id else None)
    try:
        broken = _bare_break(bytes(data))
        if broken is not None:  # "OK\rERROR": readers split such a value differently
            return Malformed(f"a header holds a {broken}", None, _message_id(headers))
        return _notification(headers)
    except Exception as e:  # a parser bug must not hide a notification: show it to a human
        return Malformed(f"unparseable notification ({type(e).__name__})")


def _headers(data: bytes) -> dict[str, list[str]]:
    """Header name (lower-case) to raw values, topmost first, without parsing any value."""
    simple = _simple_headers(data)
    return simple if simple is not None else _parsed_headers(data)


def _parsed_headers(data: bytes) -> dict[str, list[str]]:
    message = _PARSER.parsebytes(data)
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.strip().lower(), []).append(value)
    return headers


def _simple_headers(data: bytes) -> dict[str, list[str]] | None:
    """The same result as :func:`_parsed_headers` for the common, plain case, about three times faster.

    A mailbox pass parses tens of thousands of header blocks as the IMAP server returns them:
    ASCII, CRLF lines, well-formed names. For exactly those this groups the lines into fields and
    does to each what the policy's ``header_source_parse`` does; anything else (8-bit bytes, bare CR or
    LF, a line that is neither a field nor a continuation) returns None and goes to the full
    parser, which knows how to recover. A Hypothesis test holds the two to the same answers.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.isascii():
        return None
    block = data[:end].decode("ascii")
    crlf = block.count("\r\n")
    if block.count("\r") != crlf or block.count("\n") != crlf:  # a bare CR or LF
        return None
    headers: dict[str, list[str]] = {}
    field: list[str] = []
    for line in block.split("\r\n") if block else []:
        if line[:1] in (" ", "\t"):
            if not field:
                return None
            field.append(line)
            continue
        if field:
            _add_field(headers, field)
        colon = line.find(":")
        if colon <= 0 or not _FIELD_NAME.issuperset(line[:colon]):
            return None
        field = [line]
    if field:
        _add_field(headers, field)
    return headers


def _add_field(headers: dict[str, list[str]], lines: list[str]) -> None:
    """What ``_POLICY.header_source_parse`` makes of one field's lines (split at CRLF), inlined."""
    name, _, first = lines[0].partition(":")
    if len(lines) == 1:  # the common case; ``first`` holds no CR or LF to strip
        value = first.lstrip(" \t")
    else:
        value = ((first + "\r\n").lstrip(" \t") + "".join(line + "\r\n" for line in lines[1:])).rstrip("\r\n")
    headers.setdefault(name.lower(), []).append(value)


def _bare_break(data: bytes) -> str | None:
    """What breaks a line inside the header block other than its own line ending: a NUL, or a CR or
    LF alone (in a CRLF block; in an LF-only block, any CR). None when every line ends the same way."""
    found = _BLANK_LINE.search(data)
    head = data[: found.start()] if found else data
    if b"\0" in head:
        return "NUL byte"
    crlf = head.count(b"\r\n")
    if crlf == 0 and b"\n" in head:  # LF line endings (a message saved by a Unix tool)
        return "bare CR" if b"\r" in head else None
    if head.count(b"\r") != crlf:
        return "bare CR"
    if head.count(b"\n") != crlf:
        return "bare LF"
    return None


def _notification(headers: dict[str, list[str]]) -> Parsed:
    message_id = _message_id(headers)
    addresses, raw_from = _from(headers)
    sender = addresses[0] if len(addresses) == 1 else None
    date = _date(headers)

    def malformed(reason: str, uuid: str | None = None) -> Malformed:
        return Malformed(reason, uuid, message_id, sender, date)

    for name in _SINGLE:
        count = len(headers.get(name.lower(), []))
        if count > 1:
            return malformed(f"{name} appears {count} times; exactly one is required")

    services = {_text(SERVICE, v) for v in headers[SERVICE.lower()]}
    wrong = sorted(s for s in services if s.lower() != "cancelar")
    if wrong:
        return malformed(f"{SERVICE} is {show(wrong[0], _SHOWN)}, not Cancelar")

    uuids: set[str] = set()
    for raw in headers.get(UUID_HEADER.lower(), []):
        value = _text(UUID_HEADER, raw)
        if (where := _non_ascii(value)) is not None:  # U+FB00 "ﬀ" would fold to "FF" under upper()
            return malformed(f"{UUID_HEADER} holds {where}: {show(value, _SHOWN)}")
        try:
            uuids.add(parse_uuid(value, UUID_HEADER))
        except ValidationError:
            return malformed(f"{UUID_HEADER} is not a UUID: {show(value, _SHOWN)}")
    if not uuids:
        return malformed(f"no {UUID_HEADER} header")
    uuid = uuids.pop()  # one header at most (_SINGLE above)

    raw_statuses = [_text(STATUS_HEADER, v) for v in headers.get(STATUS_HEADER.lower(), [])]
    for value in raw_statuses:
        if (where := _non_ascii(value)) is not None:
            return malformed(f"{STATUS_HEADER} holds {where}: {show(value, _SHOWN)}", uuid)
    statuses = {v.upper() for v in raw_statuses}
    if not statuses:
        return malformed(f"no {STATUS_HEADER} header", uuid)
    bad = sorted(s for s in statuses if s not in ("OK", "ERROR"))
    if bad:
        return malformed(f"{STATUS_HEADER} is {show(bad[0], _SHOWN)}, not OK or ERROR", uuid)
    status: Status = "OK" if statuses.pop() == "OK" else "ERROR"

    results = tuple(_clean(_unfold(v)) for v in headers.get(AUTH_RESULTS.lower(), []))
    return Notification(uuid, status, message_id, sender, addresses, date, raw_from, results)


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return _unfold(values[0]) if values else None


def _message_id(headers: dict[str, list[str]]) -> str | None:
    value = _first(headers, "message-id")
    return _clean(value) if value else None


def _from(headers: dict[str, list[str]]) -> tuple[tuple[str, ...], str | None]:
    values = headers.get("from", [])
    addresses = tuple(addr_spec for raw in values for addr_spec in _addresses(raw))
    raw_from = _clean(_unfold(values[0])) if values else None
    return addresses, raw_from


@lru_cache(maxsize=4096)
def _addresses(raw: str) -> tuple[str, ...]:
    """The addr-spec of each mailbox in one From value, lower-cased (display names never count).

    A value the parser had to guess at (an InvalidHeaderDefect, e.g. ``x@good.com <y@evil.com>``)
    or a domain that is not a plain host name yields one :data:`INVALID` mailbox, which no
    allowed-sender glob matches: trust fails closed on Froms that different software would
    read differently.
    """
    try:
        header = _POLICY.header_factory("from", raw)
        if any(isinstance(d, errors.InvalidHeaderDefect) for d in header.defects):
            return (INVALID,)
        if "=?" in raw and _encoded_addr_spec(raw):  # never decoded: the allowlist sees what an MTA routes
            return (INVALID,) * max(1, len(header.addresses))
        found: list[str] = []
        for address in header.addresses:
            if not address.username or not address.addr_spec.isascii() or not _is_hostname(address.domain):
                found.append(INVALID)
            else:
                found.append(_clean(address.addr_spec.lower()))
        return tuple(found)
    except Exception:
        return (INVALID,)


def _encoded_addr_spec(raw: str) -> bool:
    """Whether an RFC 2047 encoded word sits inside an addr-spec (only display names may hold one)."""

    def walk(token: object, inside: bool) -> bool:
        kind = getattr(token, "token_type", None)
        inside = inside or kind == "addr-spec"
        if inside and kind == "encoded-word":
            return True
        return isinstance(token, list) and any(walk(t, inside) for t in token)

    try:
        return walk(_header_value_parser.get_address_list(raw)[0], False)
    except Exception:
        return True  # unreadable: fail closed


def _non_ascii(value: str) -> str | None:
    """'non-ASCII character 'ﬀ' (U+FB00) at position 3' for the first one, or None."""
    for i, c in enumerate(value, 1):
        if not c.isascii():
            shown = c if c.isprintable() else "?"
            return f"non-ASCII character {shown!r} (U+{ord(c):04X}) at position {i}"
    return None


def _is_hostname(domain: str) -> bool:
    labels = domain.lower().split(".")
    return len(labels) >= 2 and all(
        label and set(label) <= _LDH and not label.startswith("-") and not label.endswith("-") for label in labels
    )


def _date(headers: dict[str, list[str]]) -> datetime | None:
    value = _first(headers, "date")
    return _parse_date(value) if value else None


_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_PLAIN_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})",
    re.ASCII,  # other scripts' digits go to the standard library
)


def _parse_date(value: str) -> datetime | None:
    """A Date header as a UTC datetime, or None; what ``email.utils`` makes of it, only faster.

    The form every mail server writes (``Mon, 24 Nov 2025 01:02:03 -0600``) is read directly;
    anything else, and the corner cases of that form (``-0000``, two-digit years, offsets of a
    day or more, impossible fields), goes to :func:`_parse_date_stdlib`. A Hypothesis test holds
    the two to the same answers.
    """
    m = _PLAIN_DATE.fullmatch(value)
    if m is not None and (month := _MONTHS.get(m[2].lower())) is not None:
        year, offset = int(m[3]), int(m[8]) * 60 + int(m[9])
        if year >= 1000 and (0 < offset < 24 * 60 or (offset == 0 and m[7] == "+")):
            try:
                local = datetime(year, month, int(m[1]), int(m[4]), int(m[5]), int(m[6]), tzinfo=UTC)
                return local - timedelta(minutes=offset if m[7] == "+" else -offset)
            except (ValueError, OverflowError):
                pass
    return _parse_date_stdlib(value)


@lru_cache(maxsize=4096)
def _parse_date_stdlib(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": time known, zone not; RFC 5322 says read it as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _text(name: str, raw: str) -> str:
    """An unstructured header's value: unfolded, RFC 2047 decoded, stripped."""
    if raw.isascii() and "=?" not in raw:
        return _unfold(raw)
    try:
        decoded = str(_POLICY.header_factory(name, raw))
    except Exception:
        decoded = raw
    return _clean(_unfold(decoded))


def _unfold(value: str) -> str:
    if value.isprintable():  # every line boundary splitlines() knows is unprintable: nothing to join
        return value.strip()
    return "".join(value.splitlines()).strip()


def _clean(value: str) -> str:
    """Printable text safe for the ledger and logs: undecodable bytes replaced, length bounded."""
    if not value.isascii():  # raw 8-bit bytes arrive surrogate-escaped: read them as UTF-8 (RFC 6532)
        try:
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate that is not an escaped byte
            value = value.encode("utf-8", "replace").decode("utf-8")
    if not value.isprintable():
        value = "".join(c if c.isprintable() else " " for c in value)
    return value[:_MAX_TEXT]
