from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.clock import iso
from reconciler.daemon.health import Level, Snapshot, evaluate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
COUNTS = {"queued": 1, "submitting": 0, "awaiting": 2, "ok": 7, "error": 0, "rejected": 0}


def ago(seconds: float) -> str:
    return iso(NOW - timedelta(seconds=seconds))


def snap(facts: dict[str, dict[str, Any]], overdue: int = 0, conflicts: int = 0) -> Snapshot:
    return Snapshot(COUNTS, overdue, conflicts, facts)


ALIVE = {
    "heartbeat": {"interval_s": 10, "mailbox_interval_s": 300, "recorded_at": ago(5)},
    "mailbox_pass": {"recorded_at": ago(60)},
}


@pytest.mark.parametrize(
    ("facts", "overdue", "conflicts", "level", "problem"),
    [
        (ALIVE, 0, 0, Level.OK, None),
        (
            {**ALIVE, "paused": {"by": "ana", "reason": "CSD renewal", "recorded_at": ago(60)}},
            0,
            0,
            Level.WARNING,
            "submissions paused by ana at",
        ),
        ({}, 0, 0, Level.WARNING, "no daemon has run against this ledger yet"),
        (
            {**ALIVE, "heartbeat": {**ALIVE["heartbeat"], "recorded_at": ago(31)}},
            0,
            0,
            Level.CRITICAL,
            "daemon not running",
        ),
        ({**ALIVE, "heartbeat": {**ALIVE["heartbeat"], "stopped": True}}, 0, 0, Level.CRITICAL, "daemon stopped"),
        (
            {**ALIVE, "mailbox_pass": {"recorded_at": ago(901)}},
            0,
            0,
            Level.WARNING,
            "last successful mailbox pass 901s ago",
        ),
        ({"heartbeat": ALIVE["heartbeat"]}, 0, 0, Level.WARNING, "no successful mailbox pass yet"),
        (ALIVE, 3, 0, Level.WARNING, "3 overdue jobs"),
        (ALIVE, 0, 1, Level.WARNING, "1 conflict in the last 72h"),
        ({**ALIVE, "breaker": {"code": 604, "recorded_at": ago(100)}}, 0, 0, Level.CRITICAL, "provider code 604"),
    ],
)
def test_levels(
    facts: dict[str, dict[str, Any]], overdue: int, conflicts: int, level: Level, problem: str | None
) -> None:
    health = evaluate(snap(facts, overdue, conflicts), NOW)
    assert health.level == level
    if problem is None:
        assert health.problems == []
    else:
        assert any(problem in p for p in health.problems), health.problems


def test_a_quiet_daemon_is_not_a_dead_one() -> None:
    """A heartbeat within three intervals and an old-but-allowed mailbox pass (IDLE, no mail): OK."""
    facts = {
        "heartbeat": {"interval_s": 10, "mailbox_interval_s": 600, "recorded_at": ago(25)},
        "mailbox_pass": {"recorded_at": ago(1700)},
    }
    assert evaluate(snap(facts), NOW).level == Level.OK


def test_worst_problem_wins_and_all_are_listed() -> None:
    facts = {**ALIVE, "breaker": {"code": 601, "recorded_at": ago(1)}}
    health = evaluate(snap(facts, overdue=2), NOW)
    assert health.level == Level.CRITICAL and len(health.problems) == 2
    line = health.line(snap(facts, overdue=2))
    assert line.startswith("RECONCILER CRITICAL - ") and "| queued=1 " in line and "\n" not in line
