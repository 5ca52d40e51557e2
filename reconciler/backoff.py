"""When to try again: capped exponential backoff with jitter, the one rule every retry loop uses.

Pure: the delay is a function of the attempt number and a random source the caller passes in
(a seeded ``random.Random`` in tests).  The loops that wait (the ledger's write lock and WAL
switch, the daemon lock, the mailbox login and the watcher's reconnects, the submitter's and
checkers' next attempt) count their own attempts and sleep, or stop, as they need.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based).

    ``base * 2**(attempt-1)`` capped at ``cap``, then "equal jitter": a uniform
    draw from half to all of it, so retries spread out but never come sooner
    than half the nominal delay.
    """
    nominal = min(cap_s, base_s * 2.0 ** min(max(attempt, 1) - 1, 62))
    return float(nominal * (0.5 + 0.5 * rng.random()))


def next_attempt(now: datetime, attempt: int, base_s: float, cap_s: float, rng: random.Random) -> datetime:
    """The time of the next try after the ``attempt``-th failure at ``now``."""
    return now + timedelta(seconds=delay(attempt, base_s, cap_s, rng))
