"""When to ask the SAT about a job next: a pure function of ``now``, with a per-job call budget.

After the provider accepts a cancellation, the SAT is asked on a decaying schedule,
counted from the acceptance (``since``):

* often at first (``early_s``: 2, 10 and 30 minutes): most cancellations need no
  acceptance and show as Cancelado within minutes;
* then every ``window_interval_s`` (55 minutes) until the receiver's acceptance window
  (``window_s``, 72 hours) has passed: a receiver's rejection is seen within an hour;
* then every ``margin_interval_s`` (6 hours) until ``window_s + margin_s`` (a further
  48 hours: some providers count three business days, which a weekend stretches);
* then daily until ``horizon_s`` (30 days), then never again.

``max_calls`` caps the SAT calls one job may cost over its whole life.  The due time is
stored in the ledger as UTC text (``sat_due_at``), so a restart or a cron ``run --once``
keeps the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Cadence:
    """The follow-up schedule's knobs (``[sat]`` keys of the same names)."""

    early_s: tuple[float, ...] = (120.0, 600.0, 1800.0)
    window_interval_s: float = 3300.0
    window_s: float = 72 * HOUR
    margin_interval_s: float = 6 * HOUR
    margin_s: float = 48 * HOUR
    daily_s: float = DAY
    horizon_s: float = 30 * DAY
    max_calls: int = 120
    # Preflight: a CFDI the SAT does not know yet (No Encontrado right after stamping) is asked
    # about again every not_found_retry_s; after not_found_submit_after_s it is sent anyway.
    not_found_retry_s: float = 600.0
    not_found_submit_after_s: float = 6 * HOUR


def offsets(c: Cadence) -> list[float]:
    """Every planned ask, in seconds after the acceptance (ascending, within the horizon)."""
    points = sorted(s for s in c.early_s if 0 < s <= c.horizon_s)
    at = points[-1] if points else 0.0
    for step, until in (
        (c.window_interval_s, c.window_s),
        (c.margin_interval_s, c.window_s + c.margin_s),
        (c.daily_s, c.horizon_s),
    ):
        until = min(until, c.horizon_s)
        while at + step <= until:
            at += step
            points.append(at)
        if at < until and step > 0:  # the phase's end itself, so no phase is cut short
            at = until
            points.append(at)
    return points


def next_due(since: datetime, now: datetime, calls: int, c: Cadence = Cadence()) -> datetime | None:
    """The next planned ask strictly after ``now``; None once the budget or the horizon is spent.

    A pass that runs late asks once, not once per missed point: the next point is the first
    one after ``now``.
    """
    if calls >= c.max_calls:
        return None
    age = (now - since).total_seconds()
    for offset in offsets(c):
        if offset > age:
            return since + timedelta(seconds=offset)
    return None


def window_end(since: datetime, c: Cadence = Cadence()) -> datetime:
    """When the receiver's acceptance window closes (``since + window_s``)."""
    return since + timedelta(seconds=c.window_s)


def settled_after(since: datetime, c: Cadence = Cadence()) -> datetime:
    """When a job still not Cancelado is past the window with margin (``check`` warns after it)."""
    return since + timedelta(seconds=c.window_s + c.margin_s)


def preflight_due(first_asked: datetime, now: datetime, c: Cadence = Cadence()) -> datetime | None:
    """After No Encontrado: when to ask again, or None when it is time to submit without the SAT's word."""
    if (now - first_asked).total_seconds() >= c.not_found_submit_after_s:
        return None
    return min(
        now + timedelta(seconds=c.not_found_retry_s), first_asked + timedelta(seconds=c.not_found_submit_after_s)
    )
