"""The one backoff rule: within its bounds for every attempt, base and cap, and jittered."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reconciler.backoff import delay, next_attempt

positive = st.floats(min_value=1e-3, max_value=86400.0, allow_nan=False, allow_infinity=False)


@given(st.integers(min_value=-5, max_value=10_000), positive, positive, st.integers(min_value=0))
def test_delay_stays_between_half_and_all_of_the_capped_nominal(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    nominal = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 62))
    d = delay(attempt, base, cap, random.Random(seed))
    assert nominal / 2 <= d <= nominal
    assert d <= cap


@given(st.integers(min_value=1, max_value=60), positive, positive)
def test_delay_never_shrinks_as_attempts_grow(attempt: int, base: float, cap: float) -> None:
    """With the same draw, the next attempt never waits less (the nominal doubles until the cap)."""
    assert delay(attempt + 1, base, cap, random.Random(7)) >= delay(attempt, base, cap, random.Random(7))


def test_delay_doubles_then_caps_and_is_jittered() -> None:
    top = random.Random()
    top.random = lambda: 1.0  # type: ignore[method-assign]
    assert [delay(n, 1.0, 60.0, top) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    draws = {delay(3, 1.0, 60.0, random.Random(seed)) for seed in range(20)}
    assert len(draws) > 10 and min(draws) >= 2.0 and max(draws) <= 4.0


def test_next_attempt_is_now_plus_the_delay() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expected = now + timedelta(seconds=delay(4, 0.5, 10.0, random.Random(1)))
    assert next_attempt(now, 4, 0.5, 10.0, random.Random(1)) == expected
