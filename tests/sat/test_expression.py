"""The printed expression: canonical form, tt rules, & escaping, the short form.  Pure."""

from __future__ import annotations

from decimal import Decimal
from xml.sax.saxutils import unescape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ValidationError
from reconciler.sat.expression import BASE, expression, format_total, format_total_short, parse_total

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
SELLO = "Vf3cSx...abcdefgh12345678=="


@pytest.mark.parametrize(
    ("total", "tt"),
    [
        ("1", "1.0"),
        ("0.99", "0.99"),
        ("1234.50", "1234.5"),
        ("0", "0.0"),
        ("100.000000", "100.0"),
        ("12.1234567", "12.123457"),  # more than six decimals: rounded half up
        ("12.0000005", "12.000001"),
        ("12.0000004", "12.0"),
        ("007.10", "7.1"),
        (Decimal("5E+2"), "500.0"),
    ],
)
def test_tt_keeps_up_to_six_decimals_trimmed_with_at_least_one(total: str, tt: str) -> None:
    assert format_total(total) == tt


def test_the_canonical_expression_for_cfdi_33_and_40() -> None:
    assert expression(U.lower(), "EKU9003173C9", "XAXX010101000", "1234.50", SELLO) == (
        f"{BASE}?id={U}&re=EKU9003173C9&rr=XAXX010101000&tt=1234.5&fe=345678=="
    )


def test_fe_is_the_last_eight_characters_of_the_sello_or_the_eight_themselves() -> None:
    full = expression(U, "EKU9003173C9", "XAXX010101000", "1", "A" * 300 + "Xy/+9==Z")
    eight = expression(U, "EKU9003173C9", "XAXX010101000", "1", "Xy/+9==Z")
    assert full == eight and full.endswith("&fe=Xy/+9==Z")


def test_an_ampersand_in_an_rfc_is_escaped_and_n_tilde_is_kept() -> None:
    text = expression(U, "&ÑO0101013A1", "A&B010101AB1", "10", "12345678")
    assert "re=&amp;ÑO0101013A1&rr=A&amp;B010101AB1&" in text


def test_without_a_sello_the_short_form() -> None:
    assert expression(U, "EKU9003173C9", "XAXX010101000", "1234.5", None) == (
        f"?re=EKU9003173C9&rr=XAXX010101000&tt=0000001234.500000&id={U}"
    )
    assert format_total_short("0.99") == "0000000000.990000"


@pytest.mark.parametrize("bad", ["", "-1", "1e3", "abc", "NaN", "Infinity", "1,000.00", "١٢", "1_000", "1" * 19])
def test_a_bad_total_is_a_validation_error_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="^total: "):
        parse_total(bad)


def test_a_short_sello_is_refused() -> None:
    with pytest.raises(ValidationError, match="sello"):
        expression(U, "EKU9003173C9", "XAXX010101000", "1", "1234567")


amounts = st.decimals(min_value=0, max_value=Decimal("999999999999.999999"), places=6, allow_nan=False)
rfcs = st.builds(
    lambda a, b, c: a + b + c,
    st.text(alphabet="ABCXYZ&Ñ", min_size=3, max_size=4),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet="A1", min_size=3, max_size=3),
)


@given(amounts)
def test_tt_reads_back_as_the_same_amount_in_the_shortest_form(amount: Decimal) -> None:
    tt = format_total(amount)
    whole, fraction = tt.split(".")
    assert Decimal(tt) == amount
    assert 1 <= len(fraction) <= 6 and whole.isdigit()
    assert fraction == "0" or not fraction.endswith("0")
    assert Decimal(format_total_short(amount)) == amount and len(format_total_short(amount)) >= 17


@given(amounts, rfcs, rfcs, st.text(alphabet="ABCxyz0189+/=", min_size=8, max_size=400))
def test_the_expression_parses_back_into_its_parts(amount: Decimal, re: str, rr: str, sello: str) -> None:
    text = expression(U, re, rr, amount, sello)
    base, _, query = text.partition("?")
    assert base == BASE
    # Unescaping &amp; after splitting on the separators gives the RFCs back: nothing is ambiguous.
    pairs = [p.partition("=") for p in query.replace("&amp;", "\x00").split("&")]
    fields = {k: unescape(v.replace("\x00", "&amp;")) for k, _, v in pairs}
    assert list(fields) == ["id", "re", "rr", "tt", "fe"]
    assert fields == {"id": U, "re": re, "rr": rr, "tt": format_total(amount), "fe": sello[-8:]}


@pytest.mark.parametrize(
    ("total", "tt"),
    [("1.0000005", "00000001.000001"), ("1.0000015", "00000001.000002"), ("0.0000004", "00000000.000000")],
)
def test_the_short_form_rounds_half_up_at_the_seventh_decimal(total: str, tt: str) -> None:
    assert format_total_short(total) == tt.rjust(17, "0")
