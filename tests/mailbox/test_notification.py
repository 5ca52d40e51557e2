"""The notification parser: parametrized cases, then Hypothesis on arbitrary and mutated messages."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.mailbox.notification import (
    INVALID,
    Malformed,
    Notification,
    NotNotification,
    _parse_date,
    _parse_date_stdlib,
    _parsed_headers,
    _simple_headers,
    parse,
)
from tests.fixtures_imap import notification

U = "6F1D0D3E-5F6B-4C1A-9D8E-1A2B3C4D5E6F"
OTHER = "7A1D0D3E-5F6B-4C1A-9D8E-1A2B3C4D5E6F"


def headers(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def test_provider_message() -> None:
    parsed = parse(notification(U.lower(), "OK", message_id="<m1@solucionfactible.com>"))
    assert isinstance(parsed, Notification)
    assert (parsed.uuid, parsed.status, parsed.message_id) == (U, "OK", "<m1@solucionfactible.com>")
    assert parsed.sender == "notificaciones@solucionfactible.com"
    assert parsed.from_addresses == ("notificaciones@solucionfactible.com",)
    assert parsed.date == datetime(2025, 11, 24, 7, 2, 3, tzinfo=UTC)
    assert parsed.authentication_results == ()


@pytest.mark.parametrize(
    ("lines", "uuid", "status"),
    [
        (["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"], U, "OK"),
        (["x-sfservice: cancelar", f"x-uuidcancelacion: {U.lower()}", "x-statuscancelacion: error"], U, "ERROR"),
        (["X-StatusCancelacion:   Ok  ", f"X-UUIDCancelacion:  {{{U}}} ", "X-SFSERVICE: Cancelar"], U, "OK"),
        (["X-SFService: Cancelar", "X-UUIDCancelacion:", f"  {U}", "X-StatusCancelacion:", "\tERROR"], U, "ERROR"),
        (
            [
                "X-SFService: =?utf-8?q?Cancelar?=",
                f"X-UUIDCancelacion: {U}",
                "X-StatusCancelacion: =?iso-8859-1?q?OK?=",
            ],
            U,
            "OK",
        ),
    ],
)
def test_well_formed(lines: list[str], uuid: str, status: str) -> None:
    parsed = parse(headers(*lines))
    assert isinstance(parsed, Notification), parsed
    assert (parsed.uuid, parsed.status) == (uuid, status)


def test_encoded_uuid() -> None:
    import base64

    encoded = base64.b64encode(U.encode()).decode()
    parsed = parse(
        headers("X-SFService: Cancelar", f"X-UUIDCancelacion: =?utf-8?b?{encoded}?=", "X-StatusCancelacion: OK")
    )
    assert isinstance(parsed, Notification) and parsed.uuid == U


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["X-SFService: Timbrar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"], "X-SFService is 'Timbrar'"),
        (["X-SFService: Cancelar", "X-StatusCancelacion: OK"], "no X-UUIDCancelacion header"),
        (["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}"], "no X-StatusCancelacion header"),
        (["X-SFService: Cancelar", "X-UUIDCancelacion: 1234", "X-StatusCancelacion: OK"], "not a UUID: '1234'"),
        (["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: PENDING"], "'PENDING', not OK"),
        (
            [
                "X-SFService: Cancelar",
                f"X-UUIDCancelacion: {U}",
                f"X-UUIDCancelacion: {OTHER}",
                "X-StatusCancelacion: OK",
            ],
            "X-UUIDCancelacion appears 2 times; exactly one is required",
        ),
        (
            [
                "X-SFService: Cancelar",
                f"X-UUIDCancelacion: {U}",
                "X-StatusCancelacion: OK",
                "X-StatusCancelacion: ERROR",
            ],
            "X-StatusCancelacion appears 2 times; exactly one is required",
        ),
        (
            ["X-SFService: Cancelar", "X-SFService: Otro", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"],
            "X-SFService is 'Otro'",
        ),
        (
            ["X-SFService: Cancelar", "X-UUIDCancelacion: \udcff\udcfe", "X-StatusCancelacion: OK"],
            "X-UUIDCancelacion holds non-ASCII character",
        ),
        (  # identical repeats too: strict, a notification carries each of these exactly once
            [
                "X-SFService: Cancelar",
                f"X-UUIDCancelacion: {U}",
                f"X-UUIDCancelacion: {U.lower()}",
                "X-StatusCancelacion: OK",
            ],
            "X-UUIDCancelacion appears 2 times; exactly one is required",
        ),
        (
            ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK", "X-StatusCancelacion: ok"],
            "X-StatusCancelacion appears 2 times",
        ),
        (
            ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U[:-2]}\ufb00", "X-StatusCancelacion: OK"],
            "X-UUIDCancelacion holds non-ASCII character 'ﬀ' (U+FB00) at position 35",
        ),
        (
            ["X-SFService: Cancelar", f"X-UUIDCancelacion: =?utf-8?q?{U[:-2]}=EF=AC=80?=", "X-StatusCancelacion: OK"],
            "X-UUIDCancelacion holds non-ASCII character 'ﬀ' (U+FB00) at position 35",
        ),
        (
            ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: \uff2f\uff2b"],  # fullwidth OK
            "X-StatusCancelacion holds non-ASCII character",
        ),
        (
            ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: =?utf-8?q?O=EF=BC=AB?="],
            "X-StatusCancelacion holds non-ASCII character 'Ｋ' (U+FF2B) at position 2",
        ),
    ],
)
def test_malformed(lines: list[str], reason: str) -> None:
    parsed = parse(headers("From: avisos@solucionfactible.com", "Message-ID: <m@x>", *lines))
    assert isinstance(parsed, Malformed), parsed
    assert reason in parsed.reason
    assert parsed.message_id == "<m@x>" and parsed.sender == "avisos@solucionfactible.com"


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (b"X-StatusCancelacion: OK\rERROR\r\n", "bare CR"),
        (b"X-StatusCancelacion: OK\nERROR\r\n", "bare LF"),
        (b"X-StatusCancelacion: OK\x00ERROR\r\n", "NUL byte"),
        (b"X-StatusCancelacion: O\x00K\r\n", "NUL byte"),
    ],
)
def test_line_breaks_inside_a_value_are_malformed(block: bytes, reason: str) -> None:
    data = headers("From: avisos@solucionfactible.com", "X-SFService: Cancelar", f"X-UUIDCancelacion: {U}")
    parsed = parse(data[:-2] + block + b"\r\n")
    assert isinstance(parsed, Malformed), parsed
    assert parsed.reason == f"a header holds a {reason}"


def test_lf_only_blocks_are_still_read_but_not_with_a_cr() -> None:
    lines = ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"]
    assert isinstance(parse(("\n".join(lines) + "\n\n").encode()), Notification)
    bad = ("\n".join(lines[:2]) + "\nX-StatusCancelacion: OK\rERROR\n\n").encode()
    assert parse(bad) == Malformed("a header holds a bare CR")


@pytest.mark.parametrize(
    "from_",
    [
        "notificaciones@=?utf-8?q?solucionfactible.com?=",
        "=?utf-8?q?notificaciones?=@solucionfactible.com",
        "Avisos <notificaciones@=?utf-8?q?solucionfactible.com?=>",
        '"notificaciones@solucionfactible.com" <notificaciones@=?utf-8?q?solucionfactible.com?=>',
        "notificaciones@solucionfactible.co\u2098",  # a subscript m: not a plain ASCII addr-spec
        "notificaci\u00f3nes@solucionfactible.com",
    ],
)
def test_an_addr_spec_is_never_decoded(from_: str) -> None:
    parsed = parse(
        headers(f"From: {from_}", "X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK")
    )
    assert isinstance(parsed, Notification), parsed
    assert parsed.from_addresses == (INVALID,) and parsed.sender == INVALID


def test_an_encoded_display_name_is_fine() -> None:
    from_ = "=?utf-8?q?Soluci=C3=B3n_Factible?= <notificaciones@solucionfactible.com>"
    parsed = parse(
        headers(f"From: {from_}", "X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK")
    )
    assert isinstance(parsed, Notification)
    assert parsed.sender == "notificaciones@solucionfactible.com" and parsed.sender_domain == "solucionfactible.com"


def test_repeated_from_is_malformed() -> None:
    lines = ["X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"]
    for second in ("attacker@evil.example", "avisos@solucionfactible.com"):
        parsed = parse(headers("From: avisos@solucionfactible.com", f"From: {second}", *lines))
        assert isinstance(parsed, Malformed) and parsed.reason == "From appears 2 times; exactly one is required"


def test_malformed_keeps_the_uuid_when_only_the_status_is_wrong() -> None:
    parsed = parse(headers("X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: maybe"))
    assert isinstance(parsed, Malformed) and parsed.uuid == U


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Subject: hello\r\n\r\nX-SFService: Cancelar\r\n",  # in the body, not a header
        headers("From: a@example.com", "Subject: X-SFService: Cancelar"),
        headers("X-SFServices: Cancelar"),
        b"\xff\xfe\x00\x01",
        b"From: a\r\n X-SFService: Cancelar\r\n\r\n",  # a continuation line, not a header
    ],
)
def test_not_a_notification(data: bytes) -> None:
    assert isinstance(parse(data), NotNotification)


def test_from_header_details() -> None:
    parsed = parse(
        headers(
            "From: =?utf-8?q?Soluci=C3=B3n_Factible?= <Avisos@SolucionFactible.com>",
            "Date: Mon, 24 Nov 2025 01:02:03 -0600",
            "Authentication-Results: mx.example.com;",
            " dkim=pass header.d=solucionfactible.com",
            "Authentication-Results: second.example; none",
            "X-SFService: Cancelar",
            f"X-UUIDCancelacion: {U}",
            "X-StatusCancelacion: OK",
        )
    )
    assert isinstance(parsed, Notification)
    assert parsed.sender == "avisos@solucionfactible.com"
    assert parsed.date == datetime(2025, 11, 24, 7, 2, 3, tzinfo=UTC)
    assert parsed.authentication_results == (
        "mx.example.com; dkim=pass header.d=solucionfactible.com",
        "second.example; none",
    )


@pytest.mark.parametrize(
    ("from_", "addresses"),
    [
        ("x@solucionfactible.com <attacker@evil.example>", (INVALID,)),
        ('"x@solucionfactible.com" <attacker@evil.example>', ("attacker@evil.example",)),
        ("a@solucionfactible.com, b@evil.example", ("a@solucionfactible.com", "b@evil.example")),
        ("undisclosed:;", ()),
        ("a@localhost", (INVALID,)),
    ],
)
def test_from_addresses(from_: str, addresses: tuple[str, ...]) -> None:
    parsed = parse(
        headers(f"From: {from_}", "X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK")
    )
    assert isinstance(parsed, Notification)
    assert parsed.from_addresses == addresses


def test_bad_date_is_none() -> None:
    parsed = parse(
        headers("Date: yesterday", "X-SFService: Cancelar", f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK")
    )
    assert isinstance(parsed, Notification) and parsed.date is None


# -- never raises -------------------------------------------------------------------

STDLIB_DATA = (
    Path(sys.base_prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "test"
    / "test_email"
    / "data"
)
STDLIB_MESSAGES = sorted(STDLIB_DATA.glob("msg_*.txt")) if STDLIB_DATA.is_dir() else []


@pytest.mark.skipif(not STDLIB_MESSAGES, reason="the stdlib's test_email data is not installed")
def test_stdlib_sample_messages_are_not_notifications() -> None:
    for path in STDLIB_MESSAGES:
        data = path.read_bytes()
        assert isinstance(parse(data), NotNotification), path.name
        stamped = b"X-SFService: Cancelar\r\n" + data
        assert isinstance(parse(stamped), Notification | Malformed), path.name


SEEDS = [
    notification(U, "OK"),
    notification(U.lower(), "error", extra="Authentication-Results: mx; dkim=pass header.d=solucionfactible.com\r\n"),
    *(p.read_bytes() for p in STDLIB_MESSAGES[:20]),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, Notification | NotNotification | Malformed)
    parse(b"X-SFService: Cancelar\r\n" + data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from([b"\r\n", b"\n ", b":", b"=?utf-8?q?", b"?=", b"\x00", b"\xff", b"<", b'"'])
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 80))]
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_messages_never_raise(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, Notification | NotNotification | Malformed)
    if isinstance(result, Notification):
        assert result.status in ("OK", "ERROR") and len(result.uuid) == 36
        for text in (result.message_id, result.sender, result.raw_from, *result.authentication_results):
            assert text is None or text.encode("utf-8")  # storable: no lone surrogates


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=80))
def test_arbitrary_header_values_never_raise(from_: str, status: str) -> None:
    raw = f"From: {from_}\r\nX-SFService: Cancelar\r\nX-UUIDCancelacion: {U}\r\nX-StatusCancelacion: {status}\r\n\r\n"
    result = parse(raw.encode("utf-8", "surrogateescape"))
    assert isinstance(result, Notification | Malformed | NotNotification)


# -- the fast header split agrees with the email parser ---------------------------------

_line = st.one_of(
    st.builds(
        lambda n, v: f"{n}:{v}",
        st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=12),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    ),
    st.builds(lambda w, v: w + v, st.sampled_from([" ", "\t", "  "]), st.text(max_size=20)),
    st.text(max_size=20),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_line, max_size=12), st.sampled_from(["\r\n\r\n", "\r\n\r\nbody\r\n", "\r\n", ""]))
def test_simple_split_matches_the_email_parser(lines: list[str], tail: str) -> None:
    data = ("\r\n".join(lines) + tail).encode("utf-8", "surrogateescape")
    simple = _simple_headers(data)
    if simple is not None:
        assert simple == _parsed_headers(data)


def test_simple_split_takes_the_common_case() -> None:
    data = notification(U).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert _simple_headers(data.replace("Solución".encode(), b"Solucion")) is not None
    assert _simple_headers(b"From: a\nb: c\r\n\r\n") is None  # bare LF: the full parser decides


_digits = st.integers(0, 99).map(lambda n: f"{n:02d}")
_dates = st.builds(
    lambda day, mon, year, h, m, sec, sign, oh, om, name: f"{name}{day} {mon} {year} {h}:{m}:{sec} {sign}{oh}{om}",
    st.integers(0, 40).map(str),
    st.sampled_from(["Jan", "feb", "MAR", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]),
    st.one_of(st.integers(0, 9999).map(lambda y: f"{y:04d}"), st.sampled_from(["9999", "1000", "0999", "0068"])),
    _digits, _digits, _digits,
    st.sampled_from("+-"),
    st.integers(0, 30).map(lambda n: f"{n:02d}"), _digits,
    st.sampled_from(["", "Mon, ", "Xyz, "]),
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(_dates)
def test_fast_date_reading_matches_the_standard_library(value: str) -> None:
    assert _parse_date(value) == _parse_date_stdlib(value)


FROM = "From: Avisos <avisos@solucionfactible.com>"
DATED = "Date: Mon, 24 Nov 2025 07:02:03 +0000"
WHEN = datetime(2025, 11, 24, 7, 2, 3, tzinfo=UTC)
SF = "avisos@solucionfactible.com"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [f"X-UUIDCancelacion: {U}", f"X-UUIDCancelacion: {U.lower()}", "X-StatusCancelacion: OK"],
            Malformed("X-UUIDCancelacion appears 2 times; exactly one is required", None, "<m@x>", SF, WHEN),
        ),
        (
            [f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: OK"],
            None,
        ),
        (
            [f"X-UUIDCancelacion: {U}"],
            Malformed("no X-StatusCancelacion header", U, "<m@x>", SF, WHEN),
        ),
        (
            [f"X-UUIDCancelacion: {U}", "X-StatusCancelacion: =?utf-8?q?=EF=BC=AFK?="],
            Malformed(
                "X-StatusCancelacion holds non-ASCII character 'Ｏ' (U+FF2F) at position 1: 'ＯK'", U, "<m@x>", SF, WHEN
            ),
        ),
        (
            ["X-UUIDCancelacion: =?utf-8?q?=EF=AC=80?=", "X-StatusCancelacion: OK"],
            Malformed(
                "X-UUIDCancelacion holds non-ASCII character 'ﬀ' (U+FB00) at position 1: 'ﬀ'", None, "<m@x>", SF, WHEN
            ),
        ),
        (
            ["X-UUIDCancelacion: =?utf-8?q?a=01b?=", "X-StatusCancelacion: OK"],
            Malformed("X-UUIDCancelacion is not a UUID: 'a b'", None, "<m@x>", SF, WHEN),
        ),
    ],
)
def test_the_whole_malformed_record(lines: list[str], expected: Malformed | None) -> None:
    parsed = parse(headers(FROM, DATED, "Message-ID: <m@x>", "X-SFService: Cancelar", *lines))
    if expected is None:
        assert isinstance(parsed, Notification) and parsed.uuid == U
    else:
        assert parsed == expected


def test_the_whole_notification_keeps_the_raw_from_and_the_results_cleaned() -> None:
    raw = headers(
        FROM,
        DATED,
        "Message-ID: <m\x01@x>",
        "X-SFService: Cancelar",
        f"X-UUIDCancelacion: {U}",
        "X-StatusCancelacion: ok",
        "Authentication-Results: mx.example.com; dkim=pass (cl\udcc3\udca9 \udcff)",
        "Authentication-Results: " + "r" * 1200,
    )
    assert parse(raw) == Notification(
        U,
        "OK",
        "<m @x>",
        SF,
        (SF,),
        WHEN,
        "Avisos <avisos@solucionfactible.com>",
        ("mx.example.com; dkim=pass (clé \ufffd)", "r" * 998),
    )
