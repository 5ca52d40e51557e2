"""Reading a provider reply's fields: the status code, the text, the acuse wherever it came."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from reconciler.provider.fields import INT32_MAX, INT32_MIN, acuse_of, code_of, int_of, text_of, unbase64

ACUSE = b'<?xml version="1.0"?><Acuse Fecha="2026-01-05T09:00:00"/>'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (200, 200),
        (0, 0),
        (INT32_MAX, INT32_MAX),
        (INT32_MIN, INT32_MIN),
        (INT32_MAX + 1, None),
        (INT32_MIN - 1, None),
        ("211", 211),
        (" +702\n", 702),
        ("-1", -1),
        ("2147483647", INT32_MAX),
        ("2147483648", None),  # ten digits, but past 32 bits
        ("-2147483648", INT32_MIN),
        ("12345678901", None),  # eleven digits
        ("", None),
        ("2 0 0", None),
        ("20a", None),
        ("²", None),  # str.isdigit() says yes; an xs:int says no
        ("٣", None),
        (True, None),  # a bool is an int in Python, never a status code
        (False, None),
        (200.0, None),
        (None, None),
        (b"200", None),
    ],
)
def test_int_of_takes_only_a_32_bit_integer(value: object, expected: int | None) -> None:
    assert int_of(value) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, (200, "")),
        ("1803", (1803, "")),
        (None, (None, "malformed reply: no status code (missing, or not an integer)")),
        ("OK", (None, "malformed reply: status 'OK' is not a 32-bit integer")),
        (2**40, (None, f"malformed reply: status {2**40} is not a 32-bit integer")),
        (2.5, (None, "malformed reply: status 'float' is not a 32-bit integer")),
        ("a\nb", (None, "malformed reply: status 'a\\nb' is not a 32-bit integer")),
        ("9" * 100, (None, f"malformed reply: status {repr('9' * 100)[:60]} is not a 32-bit integer")),
    ],
)
def test_code_of_names_what_is_wrong(status: object, expected: tuple[int | None, str]) -> None:
    assert code_of(SimpleNamespace(status=status)) == expected


def test_code_of_a_reply_without_the_field() -> None:
    assert code_of(object()) == (None, "malformed reply: no status code (missing, or not an integer)")


def test_text_of() -> None:
    assert (text_of(None), text_of("texto"), text_of(611)) == ("", "texto", "611")


@pytest.mark.parametrize(
    ("fields", "message", "expected"),
    [
        ({"acuseSat": ACUSE}, "", (ACUSE, "acuseSat")),
        ({"acuseSAT": ACUSE}, "", (ACUSE, "acuseSAT")),
        ({"acuseSat": ACUSE.decode()}, "", (ACUSE, "acuseSat")),  # XML text, kept as UTF-8
        ({"acuseSat": base64.b64encode(ACUSE)}, "", (ACUSE, "acuseSat")),  # base64 bytes: decoded
        ({"acuseSat": base64.b64encode(ACUSE).decode()}, "", (ACUSE, "acuseSat")),  # base64 text: decoded
        ({"acuseSat": b"  \n", "acuseSAT": ACUSE}, "", (ACUSE, "acuseSAT")),  # a blank one does not count
        ({"acuseSat": "", "acuseSAT": ACUSE}, "", (ACUSE, "acuseSAT")),
        ({"acuseSat": ACUSE, "acuseSAT": b"<other/>"}, "", (ACUSE, "acuseSat")),  # the first wins
        ({"acuseSat": 5}, "", (None, None)),
        ({}, ACUSE.decode() + " y más", (ACUSE + " y más".encode(), "mensaje")),
        ({}, "Solicitud recibida <?xml?>", (b"Solicitud recibida <?xml?>", "mensaje")),
        ({}, "  <Acuse/>", (b"  <Acuse/>", "mensaje")),
        ({}, "Solicitud recibida", (None, None)),
        ({}, "", (None, None)),
    ],
)
def test_acuse_of_finds_the_acuse_wherever_it_came(
    fields: dict[str, object], message: str, expected: tuple[bytes | None, str | None]
) -> None:
    assert acuse_of(SimpleNamespace(**fields), message) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ACUSE, ACUSE),
        (b"  \n<Acuse/>", b"  \n<Acuse/>"),  # XML is never decoded, leading space or not
        (base64.b64encode(ACUSE), ACUSE),
        (b"  " + base64.b64encode(ACUSE)[:20] + b"\r\n " + base64.b64encode(ACUSE)[20:] + b"\n", ACUSE),  # folded
        (base64.b64encode(b"  <Acuse/>"), b"  <Acuse/>"),
        (base64.b64encode(b"not xml"), base64.b64encode(b"not xml")),  # decodes, but not to XML: kept
        (b"not base64!", b"not base64!"),
        (b"QUJD=", b"QUJD="),  # bad padding
        (b"\xff\xfe", b"\xff\xfe"),
        (base64.b64encode(ACUSE)[:8] + b"!" + base64.b64encode(ACUSE)[8:], None),  # not strictly base64: kept
    ],
)
def test_unbase64_decodes_only_base64_that_holds_xml(value: bytes, expected: bytes | None) -> None:
    assert unbase64(value) == (value if expected is None else expected)
