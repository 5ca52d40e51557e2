"""The follow-up schedule: a pure function of now, with a budget."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.sat.schedule import Cadence, next_due, offsets, preflight_due, settled_after, window_end

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
H = 3600.0


def asks_until(end_s: float, c: Cadence | None = None) -> list[float]:
    """Every ask a follower makes from T0 until ``end_s`` (it asks at each due time)."""
    c = c or Cadence()
    out: list[float] = []
    now = T0
    while True:
        due = next_due(T0, now, len(out), c)
        if due is None or (due - T0).total_seconds() > end_s:
            return out
        out.append((due - T0).total_seconds())
        now = due


def test_a_rejection_in_the_first_72_hours_is_seen_within_an_hour() -> None:
    asks = asks_until(72 * H)
    gaps = [b - a for a, b in zip([0.0, *asks], asks, strict=False)]
    assert max(gaps) <= H
    assert asks[-1] >= 72 * H - H  # the last ask covers the window's final hour too
    assert asks[:3] == [120.0, 600.0, 1800.0]  # often at first


def test_then_every_few_hours_then_daily_then_never() -> None:
    all_asks = asks_until(10**9)
    after_window = [a for a in all_asks if 72 * H < a <= 120 * H]
    assert after_window and all(b - a <= 6 * H for a, b in itertools.pairwise(after_window))
    late = [a for a in all_asks if a > 121 * H]
    assert late and all(b - a == 24 * H for a, b in itertools.pairwise(late))
    assert all_asks[-1] == 30 * 24 * H
    assert len(all_asks) <= Cadence().max_calls


def test_a_cancellation_without_acceptance_costs_one_call_and_a_quick_one_few() -> None:
    # Ends at the first answer (Cancelado sin aceptación): one call; the receiver answering in 8 hours: 11.
    assert len(asks_until(120)) == 1
    assert len(asks_until(8 * H)) <= 12


def test_the_budget_stops_the_follow_up() -> None:
    c = Cadence(max_calls=5)
    assert len(asks_until(10**9, c)) == 5
    assert next_due(T0, T0, 5, c) is None


def test_a_late_pass_asks_once_not_once_per_missed_point() -> None:
    due = next_due(T0, T0 + timedelta(hours=10, minutes=1), 3)
    assert due is not None and T0 + timedelta(hours=10, minutes=1) < due <= T0 + timedelta(hours=11, minutes=1)


@given(st.floats(min_value=-H, max_value=40 * 24 * H), st.integers(min_value=0, max_value=200))
def test_next_due_is_strictly_in_the_future_and_on_the_plan(age: float, calls: int) -> None:
    now = T0 + timedelta(seconds=age)
    due = next_due(T0, now, calls)
    if due is None:
        assert calls >= Cadence().max_calls or age >= 30 * 24 * H
    else:
        assert due > now and (due - T0).total_seconds() in offsets(Cadence())


def test_offsets_ascend_and_the_window_edges() -> None:
    points = offsets(Cadence())
    assert points == sorted(set(points))
    assert window_end(T0) == T0 + timedelta(hours=72)
    assert settled_after(T0) == T0 + timedelta(hours=120)


def test_preflight_not_found_waits_then_gives_up() -> None:
    c = Cadence(not_found_retry_s=600, not_found_submit_after_s=3600)
    assert preflight_due(T0, T0, c) == T0 + timedelta(seconds=600)
    assert preflight_due(T0, T0 + timedelta(seconds=3300), c) == T0 + timedelta(seconds=3600)
    assert preflight_due(T0, T0 + timedelta(seconds=3600), c) is None


@pytest.mark.parametrize(
    ("cadence", "points"),
    [
        # early asks within (0, horizon], then each phase stepped from the last point, ending on its edge
        (
            Cadence(
                early_s=(150.0, 0.0, 0.5, 1.0, 50.0, 100.0, 151.0),
                window_interval_s=30,
                window_s=100,
                margin_interval_s=40,
                margin_s=60,
                daily_s=100,
                horizon_s=150,
            ),
            [0.5, 1.0, 50.0, 100.0, 150.0],
        ),
        (
            Cadence(
                early_s=(),
                window_interval_s=30,
                window_s=100,
                margin_interval_s=40,
                margin_s=60,
                daily_s=100,
                horizon_s=300,
            ),
            [30, 60, 90, 100, 140, 160, 260, 300],
        ),
        (
            Cadence(
                early_s=(),
                window_interval_s=0.4,
                window_s=1.0,
                margin_interval_s=0.5,
                margin_s=1,
                daily_s=5,
                horizon_s=2,
            ),
            [0.4, 0.8, 1.0, 1.5, 2.0],  # each phase starts from the previous one's edge
        ),
    ],
)
def test_offsets_of_small_cadences_point_by_point(cadence: Cadence, points: list[float]) -> None:
    assert offsets(cadence) == points
