"""The simulator's own rules against the product's validators: two independent readings of the same formats.

The simulator no longer borrows ``reconciler.jobs.validation``; where the two sides disagree, one of
them has a bug, and this file says which cases they must agree on.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ValidationError
from reconciler.jobs.validation import job_spec, parse_rfc
from reconciler.sandbox import rules

U, V = "71452784-AFC7-4BE5-8623-3BA1436D573B", "0D62B12C-BC6C-4626-E211-FC8FE727A5BC"


def product_accepts_rfc(rfc: str) -> bool:
    try:
        parse_rfc(rfc)
    except ValidationError:
        return False
    return True


RFCS = [
    # accepted by both
    ("EKU9003173C9", True),  # the SAT's testing issuer
    ("AAA010101AAA", True),
    ("XAXX010101000", True),  # the generic RFC for the public (13: a person)
    ("ÑAÑ8501019A1", True),
    ("A&B991231AB1", True),
    ("  eku9003173c9 ", True),  # case and surrounding spaces
    ("AAA000229AB1", True),  # 29 February 2000
    ("AAA960229AB1", True),  # 29 February 1996
    # refused by both
    ("", False),
    ("EKU9003173C", False),  # 11 characters
    ("EKU9003173C9XX", False),  # 14
    ("EK19003173C9", False),  # a digit in the name part
    ("EKU9013173C9", False),  # month 13
    ("EKU9000173C9", False),  # month 00
    ("EKU9001003C9", False),  # day 00
    ("EKU9001323C9", False),  # day 32
    ("EKU90031-3C9", False),  # not a digit in the date
    ("EKU9003173CB", False),  # check character neither digit nor A
    ("EKU900317-C9", False),  # not alphanumeric in the homoclave
    ("EKU９003173C9", False),  # a full-width digit
]


@pytest.mark.parametrize(("rfc", "valid"), RFCS)
def test_both_sides_agree_on_an_rfc(rfc: str, valid: bool) -> None:
    assert (rules.rfc_ok(rfc), product_accepts_rfc(rfc)) == (valid, valid)


@pytest.mark.parametrize("rfc", ["AAA010229AB1", "AAA010230AB1", "AAA010431AB1"])
def test_the_simulator_refuses_impossible_dates(rfc: str) -> None:
    """29 February 2001 / 1901, 30 February, 31 April: the provider answers 621."""
    assert not rules.rfc_ok(rfc)


@pytest.mark.xfail(strict=True, reason="the product's RFC pattern allows day 01-31 in every month (31 February)")
def test_the_product_refuses_impossible_dates() -> None:
    assert not product_accepts_rfc("AAA010231AB1")


_uuids = st.uuids().map(lambda u: str(u).upper())


@given(_uuids, st.sampled_from(["01", "02", "03", "04"]), _uuids | st.just(""))
def test_every_job_the_product_accepts_reaches_the_simulator_as_a_valid_field(
    uuid: str, motivo: str, folio: str
) -> None:
    try:
        spec = job_spec(uuid, "EKU9003173C9", motivo, folio or None)
    except ValidationError:
        with pytest.raises(ValueError):
            rules.parse_uuid_field(f"{uuid}|{motivo}|{folio}")
        return
    assert rules.parse_uuid_field(spec.provider_uuid_field) == (spec.uuid, spec.motivo, spec.folio_sustitucion or "")


@pytest.mark.parametrize(
    ("motivo", "folio", "why"),
    [
        ("05", "", "motivo must be 01, 02, 03 or 04"),
        ("1", "", "motivo must be 01, 02, 03 or 04"),
        ("", "", "motivo must be 01, 02, 03 or 04"),
        ("01", "", "motivo 01 needs the replacing invoice's UUID"),
        ("01", U, "must differ from the cancelled UUID"),
        ("01", "not-a-uuid", "motivo 01 needs the replacing invoice's UUID"),
        ("02", V, "must be empty with motivo 02"),
        ("04", V, "must be empty with motivo 04"),
    ],
)
def test_the_simulator_names_what_is_wrong_with_the_field(motivo: str, folio: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        rules.parse_uuid_field(f"{U}|{motivo}|{folio}")


@pytest.mark.parametrize("motivo", ["01", "02", "03", "04"])
def test_the_simulator_takes_every_motivo(motivo: str) -> None:
    folio = V if motivo == "01" else ""
    assert rules.parse_uuid_field(f" {U.lower()} | {motivo} | {folio.lower()} ") == (U, motivo, folio)


@pytest.mark.parametrize(
    "field", [U, f"{U}|02", f"{U}|02||", f"{U[:-1]}|02|", f"{U}X|02|", f"{U.replace('-', '')}|02|"]
)
def test_the_simulator_refuses_a_malformed_field(field: str) -> None:
    with pytest.raises(ValueError, match=r"^(uuid must be UUID\|motivo\|folioSustitucion, got \d part|not a UUID: )"):
        rules.parse_uuid_field(field)
