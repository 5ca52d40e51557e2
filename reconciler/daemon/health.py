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
        return f"RECONCILER {self.level.name} - {head}; {jobs} | {perf} overdue={snapshot.overdue}"


def _age(fact: Mapping[str, Any] | None, now: datetime) -> float | None:
    if not fact or "recorded_at" not in fact:
        return None
    try:
        return (now - parse_iso(str(fact["recorded_at"]))).total_seconds()
    except ValueError:
        return None


def evaluate(snapshot: Snapshot, now: datetime) -> Health:
    """The worst problem decides the level; every problem is listed."""
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
    heartbeat = snapshot.facts.get("heartbeat")
    beat_age = _age(heartbeat, now)
    if heartbeat is None or beat_age is None:
        raise_to(Level.WARNING, "no daemon has run against this ledger yet")
    else:
        interval = float(heartbeat.get("interval_s", 30))
        if heartbeat.get("stopped"):
            raise_to(Level.CRITICAL, f"daemon stopped {beat_age:.0f}s ago")
        elif beat_age > MISSED_HEARTBEATS * interval:
            raise_to(Level.CRITICAL, f"daemon not running: last heartbeat {beat_age:.0f}s ago")
        mailbox = snapshot.facts.get("mailbox_pass")
        mailbox_age = _age(mailbox, now)
        allowed = max(MAILBOX_GRACE_S, MISSED_HEARTBEATS * float(heartbeat.get("mailbox_interval_s", 60)))
        if mailbox_age is None:
            raise_to(Level.WARNING, "no successful mailbox pass yet")
        elif mailbox_age > allowed:
            raise_to(Level.WARNING, f"last successful mailbox pass {mailbox_age:.0f}s ago")
    if snapshot.overdue:
        raise_to(Level.WARNING, f"{snapshot.overdue} overdue job{'s' if snapshot.overdue != 1 else ''}")
    if snapshot.recent_conflicts:
        n, hours = snapshot.recent_conflicts, CONFLICT_WINDOW // timedelta(hours=1)
        conflicts = f"{n} conflict{'s' if n != 1 else ''}"
        raise_to(Level.WARNING, f"{conflicts} in the last {hours}h (see `reconciler status UUID`)")
    return Health(level, problems)
