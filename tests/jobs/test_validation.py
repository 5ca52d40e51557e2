from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ValidationError
from reconciler.jobs.jobfile import parse_jobs
from reconciler.jobs.validation import job_spec, parse_motivo, parse_rfc, parse_total, parse_uuid, sat_fields

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"


@pytest.mark.parametrize("text", [U, U.lower(), f"  {U}  ", "{" + U.lower() + "}"])
def test_uuid_accepted_forms(text: str) -> None:
    assert parse_uuid(text) == U


@pytest.mark.parametrize("text", ["", "7145", U + "0", U.replace("-", ""), U[:-1] + "G", "{" + U, U + "|02|"])
def test_uuid_refused_naming_field_and_value(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^uuid: not a UUID: "):
        parse_uuid(text)


@given(st.uuids(), st.sampled_from([str.upper, str.lower, lambda s: "{" + s + "}"]))
def test_uuid_roundtrip_any_case(value: uuidlib.UUID, form: object) -> None:
    assert parse_uuid(form(str(value))) == str(value).upper()  # type: ignore[operator]


@given(st.text(max_size=60))
def test_uuid_parser_only_ever_raises_validation_error(text: str) -> None:
    try:
        result = parse_uuid(text)
    except ValidationError as e:
        assert str(e).startswith("uuid: ")
    else:
        assert len(result) == 36 and result == result.upper()


@pytest.mark.parametrize("rfc", ["AAA010101AAA", "aaa010101aaa", "XAXX010101000", "ÑAB991231A1A", "A&B010101AB1"])
def test_rfc_accepted(rfc: str) -> None:
    assert parse_rfc(rfc) == rfc.upper()


@pytest.mark.parametrize(
    ("rfc", "why"),
    [("AAA010101AA", "12 or 13"), ("AAA011301AAA", "not a valid"), ("1AA010101AAA", "not a valid"), ("", "12 or 13")],
)
def test_rfc_refused(rfc: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"rfc: .*{why}"):
        parse_rfc(rfc)


@given(st.text(max_size=20))
def test_rfc_parser_total(text: str) -> None:
    with contextlib.suppress(ValidationError):
        parse_rfc(text)


@pytest.mark.parametrize(("given_", "expected"), [(None, "02"), ("", "02"), ("1", "01"), ("03", "03"), (" 04 ", "04")])
def test_motivo(given_: str | None, expected: str) -> None:
    assert parse_motivo(given_) == expected


@pytest.mark.parametrize("bad", ["05", "00", "x", "001", "2a"])
def test_motivo_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="motivo: must be one of 01, 02, 03, 04"):
        parse_motivo(bad)


def test_folio_sustitucion_rules() -> None:
    other = str(uuidlib.uuid4())
    spec = job_spec(U, "AAA010101AAA", "01", other)
    assert spec.folio_sustitucion == other.upper()
    assert spec.provider_uuid_field == f"{U}|01|{other.upper()}"
    assert job_spec(U, "AAA010101AAA", "02").provider_uuid_field == f"{U}|02|"
    with pytest.raises(ValidationError, match="folio_sustitucion: required with motivo 01"):
        job_spec(U, "AAA010101AAA", "01")
    with pytest.raises(ValidationError, match="folio_sustitucion: only allowed with motivo 01"):
        job_spec(U, "AAA010101AAA", "02", other)
    with pytest.raises(ValidationError, match="must differ"):
        job_spec(U, "AAA010101AAA", "01", U.lower())


def test_csv_all_or_nothing_reports_every_bad_line() -> None:
    rows = [
        "uuid,rfc,motivo,folio_sustitucion",
        f"{U},AAA010101AAA,02,",
        "nope,AAA010101AAA,02,",
        f"{uuidlib.uuid4()},BAD,02,",
        f"{U.lower()},AAA010101AAA,,",
    ]
    with pytest.raises(ValidationError) as info:
        parse_jobs(rows, "jobs.csv")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("jobs.csv: 3 bad rows, nothing imported")
    assert "line 3: uuid: not a UUID: 'nope'" in message
    assert "line 4: rfc:" in message
    assert f"line 5: uuid {U} already on line 2" in message


def test_csv_optional_columns_and_bom() -> None:
    specs = parse_jobs(["\ufeffUUID,RFC", f"{U},aaa010101aaa", ""])
    assert [(s.uuid, s.rfc_emisor, s.motivo) for s in specs] == [(U, "AAA010101AAA", "02")]


@pytest.mark.parametrize("header", ["", "uuid", "uuid,uuid,rfc"])
def test_csv_bad_header(header: str) -> None:
    with pytest.raises(ValidationError, match="jobs.csv: "):
        parse_jobs([header] if header else [], "jobs.csv")


@given(st.lists(st.text(max_size=80), max_size=8))
def test_csv_parser_only_raises_validation_error(lines: list[str]) -> None:
    try:
        parse_jobs(["uuid,rfc,motivo,folio_sustitucion", *lines])
    except ValidationError as e:
        assert "\n" not in str(e)


# -- the exact messages: each names the field and shows the value -------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_rfc(12), "rfc: not an RFC: 12"),  # type: ignore[arg-type]
        (lambda: parse_rfc("ABC"), "rfc: an RFC has 12 or 13 characters, got 3: 'ABC'"),
        (lambda: parse_rfc("1BC010101AAA", "issuer"), "issuer: not a valid RFC: '1BC010101AAA'"),
        (lambda: parse_motivo("05"), "motivo: must be one of 01, 02, 03, 04, got '05'"),
        (lambda: parse_motivo("x"), "motivo: must be one of 01, 02, 03, 04, got 'x'"),
        (
            lambda: job_spec(U, "EKU9003173C9", "01"),
            "folio_sustitucion: required with motivo 01 (the replacing invoice's UUID)",
        ),
        (lambda: job_spec(U, "EKU9003173C9", "01", "nope"), "folio_sustitucion: not a UUID: 'nope'"),
        (
            lambda: job_spec(U, "EKU9003173C9", "02", "abc"),
            "folio_sustitucion: only allowed with motivo 01, got 'abc' with motivo 02",
        ),
    ],
)
def test_messages(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        call()
    assert str(info.value) == message


def test_no_folio_is_none_not_empty() -> None:
    assert job_spec(U, "EKU9003173C9", "02", "  ").folio_sustitucion is None
    assert job_spec(U, "EKU9003173C9", "02").provider_uuid_field == f"{U}|02|"


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (("xaxx010101000", " 1234.50 ", "abc/def+ ghij\n KLMN=="), ("XAXX010101000", "1234.50", "ijKLMN==")),
        ((None, None, None), (None, None, None)),
        (("  ", " ", "\n"), (None, None, None)),  # blank cells are absent, not errors
        ((None, "0", "12345678"), (None, "0", "12345678")),
        ((None, "7", None), (None, "7", None)),
    ],
)
def test_the_sat_fields_are_validated_and_normalised(
    given_: tuple[str | None, str | None, str | None], expected: tuple[str | None, str | None, str | None]
) -> None:
    assert sat_fields(*given_) == expected
    spec = job_spec(U, "EKU9003173C9", None, None, *given_)
    assert (spec.rfc_receptor, spec.total, spec.sello) == expected


@pytest.mark.parametrize(
    ("given_", "message"),
    [
        (("XAXX0101", None, None), "rfc_receptor: an RFC has 12 or 13 characters, got 8: 'XAXX0101'"),
        ((None, "-1", None), "total: must be a finite amount from 0 to 10^18, got '-1'"),
        ((None, "1e3", None), "total: digits with an optional decimal point, got '1e3'"),
        ((None, "abc", None), "total: not an amount: 'abc'"),
        ((None, None, "short"), "sello: at least 8 characters are needed, got 5"),
        ((None, None, "ñ" * 8), "sello: a sello is base64 text; this one holds non-ASCII characters"),
    ],
)
def test_a_bad_sat_field_is_refused_naming_it(given_: tuple[str | None, str | None, str | None], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        sat_fields(*given_)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        (" 10.50 ", Decimal("10.50")),
        ("0", Decimal("0")),
        ("999999999999999999.999999", Decimal("999999999999999999.999999")),
        (Decimal("5.25"), Decimal("5.25")),
        (7, Decimal("7")),
    ],
)
def test_a_total_is_read_as_given(value: str | Decimal | int, amount: Decimal) -> None:
    assert parse_total(value) == amount


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "total: not an amount: True"),
        ("abc", "total: not an amount: 'abc'"),
        ("x" * 50, f"total: not an amount: {'x' * 40!r}"),
        ("1000000000000000000", "total: must be a finite amount from 0 to 10^18, got '1000000000000000000'"),
        ("-0.01", "total: must be a finite amount from 0 to 10^18, got '-0.01'"),
        ("NaN", "total: must be a finite amount from 0 to 10^18, got 'NaN'"),
        ("9" * 50, f"total: must be a finite amount from 0 to 10^18, got {'9' * 40!r}"),
        ("1.2.3", "total: not an amount: '1.2.3'"),
        ("1e2", "total: digits with an optional decimal point, got '1e2'"),
        ("+5", "total: digits with an optional decimal point, got '+5'"),
        ("1_0", "total: digits with an optional decimal point, got '1_0'"),
        ("٣", "total: digits with an optional decimal point, got '٣'"),
        (
            "1" * 15 + "e1" + " " * 30,
            f"total: digits with an optional decimal point, got {('1' * 15 + 'e1' + ' ' * 30)[:40]!r}",
        ),
    ],
)
def test_a_bad_total_is_refused_naming_it(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_total(value)  # type: ignore[arg-type]
    assert str(caught.value) == message
