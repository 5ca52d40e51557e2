"""Time as data: the ledger's fixed-width UTC text and its inverse."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.clock import iso, parse_iso

MEXICO = timezone(timedelta(hours=-6))


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert iso(datetime(2026, 1, 2, 21, 0, tzinfo=MEXICO)) == "2026-01-03T03:00:00.000Z"


def test_a_naive_time_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError) as info:
        iso(datetime(2026, 1, 2))
    assert str(info.value) == "naive datetime: times in reconciler are always timezone-aware"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T21:00:00-06:00", datetime(2026, 1, 3, 3, 0, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no offset: taken as UTC
    ],
)
def test_parse_iso_returns_utc(text: str, expected: datetime) -> None:
    parsed = parse_iso(text)
    assert parsed == expected and parsed.tzinfo is UTC


@given(st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)))
def test_text_order_is_time_order_and_round_trips(when: datetime) -> None:
    later = when + timedelta(milliseconds=1)
    assert iso(when) < iso(later) and len(iso(when)) == len(iso(later)) == 24
    assert parse_iso(iso(when)) == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_iso_and_parse_iso_are_utc_whatever_the_machines_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Mexico_City")
    time.tzset()
    try:
        mexico = timezone(timedelta(hours=-6))
        assert iso(datetime(2026, 1, 5, 3, 0, tzinfo=mexico)) == "2026-01-05T09:00:00.000Z"
        assert parse_iso("2026-01-05T09:00:00") == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert parse_iso("2026-01-05T09:00:00").tzinfo is UTC
    finally:
        monkeypatch.undo()
        time.tzset()
