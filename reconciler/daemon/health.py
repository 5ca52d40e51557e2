"""Health of a reconciler installation, judged from ledger facts: pure, time passed in.

``check`` turns this into a Nagios status line and exit code; ``summary``
shows the same facts to a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from reconciler.clock import parse_iso

# How many missed heartbeats make a daemon dead, and the floor for a quiet mailbox.
MISSED_HEARTBEATS = 3
MAILBOX_GRACE_S = 900.0
# Conflicts recorded this recently make ``check`` warn (and ``summary`` count them).
CONFLICT_WINDOW = timedelta(hours=72)


class Level(IntEnum):
    """Nagios plugin exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the ledger knows, as the read commands load it."""

    counts: Mapping[str, int]
    overdue: int
    recent_conflicts: int
    facts: Mapping[str, Mapping[str, Any]]
    sat: Mapping[str, int] = field(default_factory=dict)  # reconciler.ledger.sat.COUNT_NAMES


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``check -w/-c``: from how many overdue jobs, and from what heartbeat age, a level is raised.

    None leaves that level to the default rule: any overdue job is a WARNING; a heartbeat older
    than three of the daemon's own intervals is CRITICAL.
    """

    overdue_warning: int | None = None
    overdue_critical: int | None = None
    heartbeat_warning_s: float | None = None
    heartbeat_critical_s: float | None = None


@dataclass(frozen=True, slots=True)
class Health:
    level: Level
    problems: list[str] = field(default_factory=list)

    def line(self, snapshot: Snapshot) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in snapshot.counts.items() if n)
        total = sum(snapshot.counts.values())
        head = "; ".join(self.problems) if self.problems else "all good"
        perf = " ".join(f"{s}={n}" for s, n in snapshot.counts.items())
        jobs = f"{total} jobs ({counts or 'none'})"
        sat = " ".join(f"sat_{k}={v}" for k, v in snapshot.sat.items()) if snapshot.sat.get("asked") else ""
        return f"RECONCILER {self.level.name} - {head}; {jobs} | {perf} overdue={snapshot.overdue}" + (
            f" {sat}" if sat else ""
        )


def _age(fact: Mapping[str, Any] | None, now: datetime) -> float | None:
    if not fact or "recorded_at" not in fact:
        return None
    try:
        return (now - parse_iso(str(fact["recorded_at"]))).total_seconds()
    except ValueError:
        return None


def evaluate(
    snapshot: Snapshot,
    now: datetime,
    thresholds: Thresholds | None = None,
    *,
    running: bool | None = None,
    integrity: list[str] | None = None,
) -> Health:
    """The worst problem decides the level; every problem is listed.

    ``running``: whether a process holds the daemon's lock (None: not known), so a live daemon
    with a late heartbeat is reported as stuck, never as "not running".  ``integrity``: what
    SQLite's ``quick_check`` found (``check --integrity``); anything but ``["ok"]`` is CRITICAL.
    """
    limits = thresholds or Thresholds()
    level = Level.OK
    problems: list[str] = []

    def raise_to(new: Level, problem: str) -> None:
        nonlocal level
        level = max(level, new)
        problems.append(problem)

    breaker = snapshot.facts.get("breaker")
    if breaker:
        raise_to(
            Level.CRITICAL,
            f"submissions stopped by provider code {breaker.get('code')} at {breaker.get('recorded_at')} "
            f"({breaker.get('meaning', '')}); fix the account, then `reconciler resume`",
        )
    paused = snapshot.facts.get("paused")
    if paused:
        raise_to(
            Level.WARNING,
            f"submissions paused by {paused.get('by')} at {paused.get('recorded_at')}"
            + (f" ({paused['reason']})" if paused.get("reason") else "")
            + "; `reconciler unpause` resumes",
        )
    if integrity is not None and integrity != ["ok"]:
        shown = "; ".join(integrity[:3]) + (f" (and {len(integrity) - 3} more)" if len(integrity) > 3 else "")
        raise_to(Level.CRITICAL, f"ledger integrity check failed: {shown}; restore the last backup")
    login = snapshot.facts.get("mailbox_login")
    if login and login.get("refused"):
        raise_to(
            Level.CRITICAL,
            f"mailbox login refused since {login.get('since', login.get('recorded_at'))}: {login.get('error', '')}; "
            "fix the mailbox password or token (the daemon retries on its own)",
        )
    heartbeat = snapshot.facts.get("heartbeat")
    beat_age = _age(heartbeat, now)
    if heartbeat is None or beat_age is None:
        if running:
            raise_to(Level.WARNING, "a daemon is starting: no heartbeat recorded yet")
        else:
            raise_to(Level.WARNING, "no daemon has run against this ledger yet")
    else:
        interval = float(heartbeat.get("interval_s", 30))
        critical_age = limits.heartbeat_critical_s or MISSED_HEARTBEATS * interval
        if heartbeat.get("stopped") and not running:
            raise_to(Level.CRITICAL, f"daemon stopped {beat_age:.0f}s ago")
        elif beat_age > critical_age:
            if running:
                raise_to(Level.CRITICAL, f"daemon running but its last heartbeat is {beat_age:.0f}s old (stuck?)")
            else:
                raise_to(Level.CRITICAL, f"daemon not running: last heartbeat {beat_age:.0f}s ago")
        elif limits.heartbeat_warning_s is not None and beat_age > limits.heartbeat_warning_s:
            raise_to(Level.WARNING, f"last heartbeat {beat_age:.0f}s ago")
        mailbox = snapshot.facts.get("mailbox_pass")
        mailbox_age = _age(mailbox, now)
        allowed = max(MAILBOX_GRACE_S, MISSED_HEARTBEATS * float(heartbeat.get("mailbox_interval_s", 60)))
        if mailbox_age is None:
            raise_to(Level.WARNING, "no successful mailbox pass yet")
        elif mailbox_age > allowed:
            raise_to(Level.WARNING, f"last successful mailbox pass {mailbox_age:.0f}s ago")
    n = snapshot.overdue
    jobs = f"{n} overdue job{'s' if n != 1 else ''}"
    if limits.overdue_critical is not None and n >= limits.overdue_critical:
        raise_to(Level.CRITICAL, jobs)
    elif n and n >= (limits.overdue_warning if limits.overdue_warning is not None else 1):
        raise_to(Level.WARNING, jobs)
    if snapshot.recent_conflicts:
        n, hours = snapshot.recent_conflicts, CONFLICT_WINDOW // timedelta(hours=1)
        conflicts = f"{n} conflict{'s' if n != 1 else ''}"
        raise_to(Level.WARNING, f"{conflicts} in the last {hours}h (see `reconciler status UUID`)")
    _sat_problems(snapshot.sat, raise_to)
    for problem in delivery_problems(snapshot.facts.get("deliveries") or {}, now):
        raise_to(Level.WARNING, problem)
    return Health(level, problems)


# An endpoint with events waiting and no successful delivery for this long is a WARNING.
DELIVERY_SILENCE_S = 3600.0


def delivery_problems(deliveries: Mapping[str, Any], now: datetime) -> list[str]:
    """Webhook/hook endpoints an operator must look at: disabled by a 410, or failing for an hour."""
    out: list[str] = []
    for name, d in sorted(deliveries.items()):
        if not isinstance(d, Mapping):
            continue
        if d.get("disabled_at"):
            out.append(f"webhook {name} disabled at {d['disabled_at']} ({d.get('disabled_reason') or '410'})")
            continue
        if d.get("failed"):
            out.append(
                f"webhook {name}: {d['failed']} deliveries failed for good (see `reconciler deliveries --failed`)"
            )
        if not d.get("pending") or not d.get("oldest_pending_at"):
            continue
        waiting = _since(str(d["oldest_pending_at"]), now)
        success = _since(str(d["last_success_at"]), now) if d.get("last_success_at") else None
        if waiting is not None and waiting > DELIVERY_SILENCE_S and (success is None or success > DELIVERY_SILENCE_S):
            out.append(
                f"webhook {name}: {d['pending']} events pending, no successful delivery for over "
                f"{DELIVERY_SILENCE_S / 3600:.0f}h"
            )
    return out


def _since(text: str, now: datetime) -> float | None:
    try:
        return (now - parse_iso(text)).total_seconds()
    except ValueError:
        return None


def sat_health(sat: Mapping[str, int]) -> Health:
    """The SAT dimension's part of :func:`evaluate` alone (the demo shows it)."""
    level = Level.OK
    problems: list[str] = []

    def raise_to(new: Level, problem: str) -> None:
        nonlocal level
        level = max(level, new)
        problems.append(problem)

    _sat_problems(sat, raise_to)
    return Health(level, problems)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _sat_problems(sat: Mapping[str, int], raise_to: Any) -> None:
    """The SAT dimension: a contradiction is CRITICAL; a receiver's rejection or a late job a WARNING."""
    if sat.get("contradiction"):
        n = sat["contradiction"]
        raise_to(Level.CRITICAL, f"{_plural(n, 'contradiction')}: provider OK, the SAT says Vigente past the window")
    if sat.get("receiver_rejected"):
        n = sat["receiver_rejected"]
        raise_to(Level.WARNING, f"{_plural(n, 'receiver rejection')}: invoice still valid (see README, SAT states)")
    if sat.get("late"):
        n = sat["late"]
        raise_to(Level.WARNING, f"{_plural(n, 'job')} past the acceptance window and not Cancelado at the SAT")
