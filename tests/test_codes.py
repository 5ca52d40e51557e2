"""The response-code table: every documented code, its outcome, and totality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import codes
from reconciler.codes import Outcome, StatusOutcome, classify, classify_status

ACCEPTED = [200, 211, 701]
REJECTED = [204, 213, 303, 305, 306, 308, 402, 611, 621, 623, 1803, 1801, 1802, *range(1701, 1714)]
TRANSIENT = [500, 501]
ACCOUNT = [601, 602, 603, 604, 605, 620, 633]
# Every code on the provider's page and in FACTS.md.
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
    assert classify_status(code, False).outcome is StatusOutcome.ACCOUNT


@pytest.mark.parametrize("code", DOCUMENTED)
def test_every_documented_code_has_an_english_meaning(code: int) -> None:
    answers = [classify(code)] + ([] if code in (200, 211, 701) else [classify_status(code, False)])
    for c in answers:
        assert c.known, code
        assert c.meaning and not c.meaning.startswith("unknown"), code


def test_status_call_codes_are_known() -> None:
    for code in (211, 702, 1801, 1802):
        assert classify_status(code, False).known
    assert classify_status(200, True).known


def test_604_is_the_lockout() -> None:
    assert "locked" in classify(604).meaning


@pytest.mark.parametrize(
    ("code", "has_acuse", "outcome"),
    [
        (200, True, StatusOutcome.DONE),
        (200, False, StatusOutcome.TRANSIENT),  # finished per the provider, but no acuse: ask again
        (211, False, StatusOutcome.PROCESSING),
        (702, False, StatusOutcome.NOT_FOUND),
        (204, False, StatusOutcome.FAILED),
        (213, False, StatusOutcome.FAILED),
        (1801, False, StatusOutcome.FAILED),
        (1802, False, StatusOutcome.FAILED),
        (1705, False, StatusOutcome.FAILED),
        (611, False, StatusOutcome.TRANSIENT),
        (500, False, StatusOutcome.TRANSIENT),
        (601, False, StatusOutcome.ACCOUNT),
    ],
)
def test_status(code: int, has_acuse: bool, outcome: StatusOutcome) -> None:
    assert classify_status(code, has_acuse).outcome is outcome


@pytest.mark.parametrize("code", [-1, 0, 1, 199, 201, 999, 702_000, 2**40])
def test_unknown_codes_are_transient_and_flagged(code: int) -> None:
    c = classify(code)
    assert (c.outcome, c.known, c.code) == (Outcome.TRANSIENT, False, code)
    assert str(code) in c.meaning
    s = classify_status(code, True)
    assert (s.outcome, s.known) == (StatusOutcome.TRANSIENT, False)


@given(st.integers())
def test_table_is_total(code: int) -> None:
    c = classify(code)
    assert c.outcome in Outcome
    assert c.known == (code in codes.CANCEL_CODES)
    for has_acuse in (True, False):
        assert classify_status(code, has_acuse).outcome in StatusOutcome


@pytest.mark.parametrize("name", ["timeout", "connection", "http", "fault", "malformed"])
def test_transport_failures_have_no_code_and_are_transient(name: str) -> None:
    c = codes.TRANSPORT[name]
    assert (c.code, c.outcome, c.known) == (None, Outcome.TRANSIENT, True)


def test_codes_module_is_pure() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(codes.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "dataclasses", "enum"}
