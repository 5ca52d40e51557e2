"""The response-code table: every documented code, its outcome, and totality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.provider import codes
from reconciler.provider.acuse import Kind, Verdict
from reconciler.provider.codes import (
    SAT_ESTATUS_UUID,
    Classification,
    Outcome,
    StatusClassification,
    StatusOutcome,
    classify,
    classify_status,
    sat_meaning,
)

ACCEPTING = Verdict(Kind.ACCEPTED, "EstatusUUID 201", 201, "received")
REFUSING = Verdict(Kind.REFUSED, "the SAT refused: EstatusUUID 205", 205, "does not exist")
UNUSABLE = Verdict(Kind.UNUSABLE, "the acuse is not XML")

ACCEPTED = [200, 211, 701]
REJECTED = [204, 213, 303, 305, 306, 308, 402, 611, 621, 623, 1803, 1801, 1802, *range(1701, 1714)]
TRANSIENT = [500, 501]
ACCOUNT = [601, 602, 603, 604, 605, 620, 633]
# Every code on the provider's page and those public clients of the provider report.
DOCUMENTED = sorted({*ACCEPTED, *REJECTED, *TRANSIENT, *ACCOUNT, 702})


@pytest.mark.parametrize("code", ACCEPTED)
def test_accepted(code: int) -> None:
    c = classify(code)
    assert (c.code, c.outcome, c.known) == (code, Outcome.ACCEPTED, True)


@pytest.mark.parametrize("code", REJECTED)
def test_rejected(code: int) -> None:
    assert classify(code).outcome is Outcome.REJECTED


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient(code: int) -> None:
    assert classify(code).outcome is Outcome.TRANSIENT
    assert classify(code).known


@pytest.mark.parametrize("code", ACCOUNT)
def test_account_level(code: int) -> None:
    assert classify(code).outcome is Outcome.ACCOUNT
    assert classify_status(code, None).outcome is StatusOutcome.ACCOUNT


@pytest.mark.parametrize("code", DOCUMENTED)
def test_every_documented_code_has_an_english_meaning(code: int) -> None:
    answers = [classify(code)] + ([] if code in (200, 211, 701) else [classify_status(code, None)])
    for c in answers:
        assert c.known, code
        assert c.meaning and not c.meaning.startswith("unknown"), code


def test_status_call_codes_are_known() -> None:
    for code in (211, 702, 1801, 1802):
        assert classify_status(code, None).known
    assert classify_status(200, ACCEPTING).known


def test_604_is_the_lockout() -> None:
    assert "locked" in classify(604).meaning


@pytest.mark.parametrize(
    ("code", "verdict", "outcome"),
    [
        (200, ACCEPTING, StatusOutcome.DONE),
        (200, REFUSING, StatusOutcome.FAILED),  # the SAT refused: terminal error
        (200, UNUSABLE, StatusOutcome.DISPUTED),  # not evidence: keep waiting, flag it
        (200, None, StatusOutcome.DISPUTED),  # finished per the provider, but no acuse
        (200, True, StatusOutcome.DISPUTED),  # a bare "there is an acuse" is not a verdict
        (211, None, StatusOutcome.PROCESSING),
        (702, None, StatusOutcome.NOT_FOUND),
        (204, None, StatusOutcome.FAILED),
        (213, None, StatusOutcome.FAILED),
        (1801, None, StatusOutcome.FAILED),
        (1802, None, StatusOutcome.FAILED),
        (1705, None, StatusOutcome.FAILED),
        (611, None, StatusOutcome.TRANSIENT),
        (500, None, StatusOutcome.TRANSIENT),
        (601, None, StatusOutcome.ACCOUNT),
    ],
)
def test_status(code: int, verdict: Verdict | None, outcome: StatusOutcome) -> None:
    assert classify_status(code, verdict).outcome is outcome


def test_a_refusal_carries_the_sats_code_and_meaning() -> None:
    c = classify_status(200, REFUSING)
    assert c.meaning == "the SAT refused: EstatusUUID 205 (the UUID does not exist at the SAT)"


@pytest.mark.parametrize("code", [*range(201, 213), 300, 301, 302, 304, 305, 310])
def test_every_known_estatus_uuid_has_a_meaning(code: int) -> None:
    assert code in SAT_ESTATUS_UUID and not sat_meaning(code).startswith("unknown")


def test_sat_codes_not_in_the_table_say_unknown() -> None:
    assert sorted(codes.SAT_ACCEPTED) == [201, 202]
    assert sat_meaning(213) == "unknown SAT code 213" and sat_meaning(303) == "unknown SAT code 303"
    assert "does not exist" in sat_meaning(205) and "already cancelled" in sat_meaning(202)


@pytest.mark.parametrize("code", [-1, 0, 1, 199, 201, 999, 702_000, 2**40])
def test_unknown_codes_are_transient_and_flagged(code: int) -> None:
    c = classify(code)
    assert (c.outcome, c.known, c.code) == (Outcome.TRANSIENT, False, code)
    assert str(code) in c.meaning
    s = classify_status(code, ACCEPTING)
    assert (s.outcome, s.known) == (StatusOutcome.TRANSIENT, False)


@given(st.integers())
def test_table_is_total(code: int) -> None:
    c = classify(code)
    assert c.outcome in Outcome
    assert c.known == (code in codes.CANCEL_CODES)
    for verdict in (ACCEPTING, REFUSING, UNUSABLE, None):
        assert classify_status(code, verdict).outcome in StatusOutcome


@pytest.mark.parametrize(
    "c", [codes.TIMEOUT, codes.CONNECTION_ERROR, codes.HTTP_ERROR, codes.SOAP_FAULT, codes.MALFORMED]
)
def test_transport_failures_have_no_code_and_are_transient(c: codes.Classification) -> None:
    assert (c.code, c.outcome, c.known) == (None, Outcome.TRANSIENT, True)


@pytest.mark.parametrize(
    ("code", "verdict", "expected"),
    [
        (200, ACCEPTING, StatusClassification(200, StatusOutcome.DONE, codes.STATUS_DONE)),
        (
            200,
            REFUSING,
            StatusClassification(
                200, StatusOutcome.FAILED, "the SAT refused: EstatusUUID 205 (the UUID does not exist at the SAT)"
            ),
        ),
        (
            200,
            Verdict(Kind.REFUSED, "the SAT refused: EstatusUUID 999", 999, "?"),
            StatusClassification(200, StatusOutcome.FAILED, "the SAT refused: EstatusUUID 999 (unknown SAT code 999)"),
        ),
        # a refusal without the SAT's code, or a code on a verdict that is no refusal, is not evidence
        (
            200,
            Verdict(Kind.REFUSED, "refused, code unreadable"),
            StatusClassification(200, StatusOutcome.DISPUTED, codes.STATUS_DISPUTED),
        ),
        (
            200,
            Verdict(Kind.UNUSABLE, "another UUID", 205),
            StatusClassification(200, StatusOutcome.DISPUTED, codes.STATUS_DISPUTED),
        ),
        (200, UNUSABLE, StatusClassification(200, StatusOutcome.DISPUTED, codes.STATUS_DISPUTED)),
        (200, True, StatusClassification(200, StatusOutcome.DISPUTED, codes.STATUS_DISPUTED)),
        (200, None, StatusClassification(200, StatusOutcome.DISPUTED, codes.STATUS_200_WITHOUT_ACUSE)),
        (
            211,
            ACCEPTING,
            StatusClassification(211, StatusOutcome.PROCESSING, "the cancellation is still being processed"),
        ),
        (
            702,
            None,
            StatusClassification(702, StatusOutcome.NOT_FOUND, "no asynchronous transaction exists for this UUID"),
        ),
        (1803, None, StatusClassification(1803, StatusOutcome.FAILED, "invalid UUID (reported)")),
        (
            611,
            None,
            StatusClassification(
                611, StatusOutcome.TRANSIENT, "the status request's parameters are incomplete or out of place"
            ),
        ),
        (4242, ACCEPTING, StatusClassification(4242, StatusOutcome.TRANSIENT, "unknown code 4242", known=False)),
    ],
)
def test_the_whole_status_classification(code: int, verdict: object, expected: StatusClassification) -> None:
    assert classify_status(code, verdict) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [200, 211, 701, 1803, 604])
def test_the_whole_cancel_classification(code: int) -> None:
    outcome, meaning = codes.CANCEL_CODES[code]
    assert classify(code) == Classification(code, outcome, meaning)
    assert classify(9) == Classification(9, Outcome.TRANSIENT, "unknown code 9", known=False)
