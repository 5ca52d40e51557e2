"""The circuit breaker's state and decisions, and the credentials' fingerprint: plain cases, no simulator."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.provider.breaker import Breaker, Load, fingerprint, same_credentials

FACT: dict[str, Any] = {"code": 601, "recorded_at": "2026-01-01T00:00:00.000Z"}


def loaded(breaker: Breaker, fact: dict[str, Any] | None, same: bool) -> Load:
    """What the daemon does at the start of a pass: compare a new fact, then load it."""
    if fact is not None and breaker.stale(fact):
        breaker.compared(fact, same)
    return breaker.load(fact)


@pytest.mark.parametrize(("proven", "width"), [(False, 1), (True, 8)])
def test_one_request_at_a_time_until_a_reply_proves_the_credentials(proven: bool, width: int) -> None:
    assert Breaker(proven=proven).width(4) == width


def test_a_reply_that_proves_nothing_keeps_one_at_a_time() -> None:
    b = Breaker()
    b.replied(False)
    assert not b.proven
    b.replied(True)
    b.replied(False)
    assert b.proven


def test_no_fact_is_closed() -> None:
    b = Breaker(proven=True)
    assert loaded(b, None, True) is Load.CLOSED and not b.tripped and b.proven


def test_a_fact_from_these_credentials_opens_once_then_stays_open() -> None:
    b = Breaker(proven=True)
    assert loaded(b, FACT, True) is Load.OPENED and b.tripped
    assert loaded(b, FACT, True) is Load.OPEN and b.tripped


def test_a_fact_from_other_credentials_is_cleared_and_proves_nothing() -> None:
    b = Breaker(proven=True)
    assert loaded(b, FACT, False) is Load.CHANGED
    assert not b.tripped and not b.proven


def test_a_breaker_closed_by_resume_sends_one_at_a_time_again() -> None:
    b = Breaker(proven=True)
    loaded(b, FACT, True)
    assert loaded(b, None, True) is Load.CLOSED
    assert not b.tripped and not b.proven


def test_the_fingerprint_is_compared_once_per_fact() -> None:
    b = Breaker()
    assert b.stale(FACT)
    b.compared(FACT, True)
    assert not b.stale(FACT) and b.same
    assert b.stale({**FACT, "recorded_at": "2026-01-02T00:00:00.000Z"})


def test_trip_opens_once_and_remembers_its_own_fact() -> None:
    b = Breaker(proven=True)
    assert b.trip() and b.tripped
    assert not b.trip()
    b.recorded("2026-01-03T00:00:00.000Z")
    fact = {**FACT, "recorded_at": "2026-01-03T00:00:00.000Z"}
    assert not b.stale(fact)
    assert b.load(fact) is Load.OPEN  # its own fact, read back at the next pass: no second report


def test_the_fingerprint_knows_its_credentials_and_never_holds_the_password() -> None:
    fact = fingerprint("user", "s3cret-password")
    assert "s3cret-password" not in str(fact) and set(fact) == {"salt", "fingerprint"}
    assert same_credentials(fact, "user", "s3cret-password")
    assert not same_credentials(fact, "user", "new-password")
    assert not same_credentials(fact, "other", "s3cret-password")
    assert fingerprint("user", "s3cret-password")["salt"] != fact["salt"]


@pytest.mark.parametrize("fact", [{}, {"salt": "zz", "fingerprint": "00"}, {"salt": 1, "fingerprint": "00"}])
def test_a_fact_without_a_usable_fingerprint_counts_as_the_same_credentials(fact: dict[str, Any]) -> None:
    assert same_credentials(fact, "user", "password")
