from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.clock import iso
from reconciler.daemon.health import Health, Level, Snapshot, Thresholds, evaluate, sat_health

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


# -- the exact text `check` prints: boundaries and every problem's words -------------------------


def test_the_whole_line_when_all_is_good() -> None:
    assert evaluate(snap(ALIVE), NOW).line(snap(ALIVE)) == (
        "RECONCILER OK - all good; 10 jobs (1 queued, 2 awaiting, 7 ok) | "
        "queued=1 submitting=0 awaiting=2 ok=7 error=0 rejected=0 overdue=0"
    )


def test_the_whole_line_of_an_empty_ledger_with_problems() -> None:
    empty = Snapshot({"queued": 0, "ok": 0}, 1, 2, {})
    assert evaluate(empty, NOW).line(empty) == (
        "RECONCILER WARNING - no daemon has run against this ledger yet; 1 overdue job; "
        "2 conflicts in the last 72h (see `reconciler status UUID`); 0 jobs (none) | queued=0 ok=0 overdue=1"
    )


def test_every_problem_word_for_word() -> None:
    facts = {
        "breaker": {"code": 604, "recorded_at": "2026-11-24T11:00:00.000Z", "meaning": "too many attempts"},
        "heartbeat": {"interval_s": 10, "mailbox_interval_s": 300, "recorded_at": ago(31)},
        "mailbox_pass": {"recorded_at": ago(901)},
    }
    assert evaluate(snap(facts, overdue=1, conflicts=1), NOW).problems == [
        "submissions stopped by provider code 604 at 2026-11-24T11:00:00.000Z (too many attempts); "
        "fix the account, then `reconciler resume`",
        "daemon not running: last heartbeat 31s ago",
        "last successful mailbox pass 901s ago",
        "1 overdue job",
        "1 conflict in the last 72h (see `reconciler status UUID`)",
    ]


def test_a_breaker_without_meaning_and_a_stopped_daemon() -> None:
    facts = {
        "breaker": {"code": 601, "recorded_at": "2026-11-24T11:00:00.000Z"},
        "heartbeat": {"interval_s": 10, "recorded_at": ago(5), "stopped": True},
        "mailbox_pass": {"recorded_at": ago(5)},
    }
    assert evaluate(snap(facts), NOW).problems == [
        "submissions stopped by provider code 601 at 2026-11-24T11:00:00.000Z (); "
        "fix the account, then `reconciler resume`",
        "daemon stopped 5s ago",
    ]


@pytest.mark.parametrize(
    ("beat", "interval", "level"),
    [(30, 10, Level.OK), (31, 10, Level.CRITICAL), (89, None, Level.OK), (91, None, Level.CRITICAL)],
)
def test_three_missed_heartbeats_is_the_boundary(beat: float, interval: float | None, level: Level) -> None:
    """At exactly three intervals the daemon still counts as alive; the default interval is 30 s."""
    heartbeat: dict[str, Any] = {"mailbox_interval_s": 300, "recorded_at": ago(beat)}
    if interval is not None:
        heartbeat["interval_s"] = interval
    facts = {"heartbeat": heartbeat, "mailbox_pass": {"recorded_at": ago(1)}}
    assert evaluate(snap(facts), NOW).level == level


@pytest.mark.parametrize(
    ("mailbox_interval", "age", "level"),
    [(None, 900, Level.OK), (None, 901, Level.WARNING), (400, 1200, Level.OK), (400, 1201, Level.WARNING)],
)
def test_the_mailbox_allowance(mailbox_interval: float | None, age: float, level: Level) -> None:
    """15 minutes, or three mailbox intervals when longer (the default interval is 60 s)."""
    heartbeat: dict[str, Any] = {"interval_s": 1000, "recorded_at": ago(1)}
    if mailbox_interval is not None:
        heartbeat["mailbox_interval_s"] = mailbox_interval
    facts = {"heartbeat": heartbeat, "mailbox_pass": {"recorded_at": ago(age)}}
    assert evaluate(snap(facts), NOW).level == level


@pytest.mark.parametrize("recorded_at", [None, "not a time"])
def test_a_heartbeat_without_a_readable_time_is_no_heartbeat(recorded_at: str | None) -> None:
    beat: dict[str, Any] = {"interval_s": 10} if recorded_at is None else {"interval_s": 10, "recorded_at": recorded_at}
    facts = {"heartbeat": beat, "mailbox_pass": {"recorded_at": ago(1)}}
    health = evaluate(snap(facts), NOW)
    assert (health.level, health.problems) == (Level.WARNING, ["no daemon has run against this ledger yet"])


@pytest.mark.parametrize(
    ("sat", "level", "problem"),
    [
        ({"asked": 5, "cancelled": 5}, Level.OK, None),
        ({"asked": 5, "receiver_rejected": 1}, Level.WARNING, "1 receiver rejection: invoice still valid"),
        ({"asked": 5, "late": 2}, Level.WARNING, "2 jobs past the acceptance window and not Cancelado"),
        (
            {"asked": 5, "contradiction": 1, "late": 1},
            Level.CRITICAL,
            "1 contradiction: provider OK, the SAT says Vigente past",
        ),
    ],
)
def test_the_sats_word_raises_the_level(sat: dict[str, int], level: Level, problem: str | None) -> None:
    snapshot = Snapshot(COUNTS, 0, 0, ALIVE, sat)
    health = evaluate(snapshot, NOW)
    assert health.level == level
    if problem is None:
        assert health.problems == []
    else:
        assert any(problem in p for p in health.problems), health.problems
    assert "sat_asked=5" in health.line(snapshot)


@pytest.mark.parametrize(
    ("sat", "expected"),
    [
        ({}, Health(Level.OK, [])),
        ({"asked": 9, "cancelled": 9, "contradiction": 0, "late": 0}, Health(Level.OK, [])),
        (
            {"receiver_rejected": 2, "late": 1},
            Health(
                Level.WARNING,
                [
                    "2 receiver rejections: invoice still valid (see README, SAT states)",
                    "1 job past the acceptance window and not Cancelado at the SAT",
                ],
            ),
        ),
        (
            {"contradiction": 2, "receiver_rejected": 1},
            Health(
                Level.CRITICAL,
                [
                    "2 contradictions: provider OK, the SAT says Vigente past the window",
                    "1 receiver rejection: invoice still valid (see README, SAT states)",
                ],
            ),
        ),
    ],
)
def test_the_sats_part_alone_word_for_word(sat: dict[str, int], expected: Health) -> None:
    assert sat_health(sat) == expected


WAITING = "webhook erp: 4 events pending, no successful delivery for over 1h"


@pytest.mark.parametrize(
    ("delivery", "problems"),
    [
        ({"pending": 4, "oldest_pending_at": ago(3601)}, [WAITING]),  # never delivered
        ({"pending": 4, "oldest_pending_at": ago(3601), "last_success_at": ago(3601)}, [WAITING]),
        ({"pending": 4, "oldest_pending_at": ago(3601), "last_success_at": ago(60)}, []),  # it is getting through
        ({"pending": 4, "oldest_pending_at": ago(3599)}, []),
        ({"pending": 0, "oldest_pending_at": ago(9000)}, []),
        ({"pending": 4}, []),
        ({"pending": 4, "oldest_pending_at": "not a time"}, []),
        ({"pending": 4, "oldest_pending_at": ago(3601), "last_success_at": "garbled"}, [WAITING]),
        (
            {"failed": 3, "pending": 4, "oldest_pending_at": ago(7200)},
            ["webhook erp: 3 deliveries failed for good (see `reconciler deliveries --failed`)", WAITING],
        ),
        (
            {"disabled_at": "2026-11-24T10:00:00Z", "pending": 4, "oldest_pending_at": ago(7200)},
            ["webhook erp disabled at 2026-11-24T10:00:00Z (410)"],
        ),
    ],
)
def test_a_webhook_waiting_an_hour_without_a_delivery_is_a_warning(
    delivery: dict[str, Any], problems: list[str]
) -> None:
    health = evaluate(snap({**ALIVE, "deliveries": {"erp": delivery, "noise": "not a mapping"}}), NOW)
    assert health == Health(Level.WARNING if problems else Level.OK, problems)


@pytest.mark.parametrize(
    ("sat", "tail"),
    [
        ({"asked": 3, "cancelled": 2, "late": 1}, " sat_asked=3 sat_cancelled=2 sat_late=1"),
        ({"asked": 0, "cancelled": 0, "late": 0}, ""),  # the SAT was never asked: no SAT figures
        ({}, ""),
    ],
)
def test_the_sat_figures_end_the_line_once_the_sat_was_asked(sat: dict[str, int], tail: str) -> None:
    snapshot = Snapshot(COUNTS, 0, 0, ALIVE, sat)
    line = Health(Level.OK).line(snapshot)
    assert line == (
        "RECONCILER OK - all good; 10 jobs (1 queued, 2 awaiting, 7 ok) | "
        "queued=1 submitting=0 awaiting=2 ok=7 error=0 rejected=0 overdue=0" + tail
    )


BEAT = {"interval_s": 10, "mailbox_interval_s": 300, "recorded_at": ago(5)}
FRESH = {"heartbeat": BEAT, "mailbox_pass": {"recorded_at": ago(60)}}


@pytest.mark.parametrize(
    ("facts", "kwargs", "expected"),
    [
        (
            {**FRESH, "paused": {"by": "ana", "reason": "CSD renewal", "recorded_at": "2026-11-24T11:00:00.000Z"}},
            {},
            Health(
                Level.WARNING,
                [
                    "submissions paused by ana at 2026-11-24T11:00:00.000Z (CSD renewal); `reconciler unpause` resumes",
                ],
            ),
        ),
        (
            {**FRESH, "paused": {"by": "ana", "reason": "", "recorded_at": "2026-11-24T11:00:00.000Z"}},
            {},
            Health(
                Level.WARNING, ["submissions paused by ana at 2026-11-24T11:00:00.000Z; `reconciler unpause` resumes"]
            ),
        ),
        (FRESH, {"integrity": ["ok"]}, Health(Level.OK, [])),
        (
            FRESH,
            {"integrity": ["row 1 missing", "row 2 missing", "row 3 missing"]},
            Health(
                Level.CRITICAL,
                ["ledger integrity check failed: row 1 missing; row 2 missing; row 3 missing; restore the last backup"],
            ),
        ),
        (
            FRESH,
            {"integrity": ["a", "b", "c", "d", "e"]},
            Health(Level.CRITICAL, ["ledger integrity check failed: a; b; c (and 2 more); restore the last backup"]),
        ),
        (
            {
                **FRESH,
                "mailbox_login": {"refused": True, "since": "2026-11-24T10:00:00Z", "error": "AUTHENTICATIONFAILED"},
            },
            {},
            Health(
                Level.CRITICAL,
                [
                    "mailbox login refused since 2026-11-24T10:00:00Z: AUTHENTICATIONFAILED; "
                    "fix the mailbox password or token (the daemon retries on its own)"
                ],
            ),
        ),
        (
            {**FRESH, "mailbox_login": {"refused": True, "recorded_at": "2026-11-24T09:00:00Z"}},
            {},
            Health(
                Level.CRITICAL,
                [
                    "mailbox login refused since 2026-11-24T09:00:00Z: ; "
                    "fix the mailbox password or token (the daemon retries on its own)"
                ],
            ),
        ),
        ({**FRESH, "mailbox_login": {"refused": False}}, {}, Health(Level.OK, [])),
        ({}, {"running": True}, Health(Level.WARNING, ["a daemon is starting: no heartbeat recorded yet"])),
        ({}, {"running": False}, Health(Level.WARNING, ["no daemon has run against this ledger yet"])),
        (
            {**FRESH, "heartbeat": {**BEAT, "recorded_at": ago(31)}},
            {"running": True},
            Health(Level.CRITICAL, ["daemon running but its last heartbeat is 31s old (stuck?)"]),
        ),
        ({**FRESH, "heartbeat": {**BEAT, "stopped": True}}, {"running": True}, Health(Level.OK, [])),
        (
            {**FRESH, "heartbeat": {**BEAT, "recorded_at": ago(21)}},
            {"thresholds": Thresholds(heartbeat_warning_s=20)},
            Health(Level.WARNING, ["last heartbeat 21s ago"]),
        ),
        (
            {**FRESH, "heartbeat": {**BEAT, "recorded_at": ago(20)}},
            {"thresholds": Thresholds(heartbeat_warning_s=20)},
            Health(Level.OK, []),
        ),
        (
            {**FRESH, "heartbeat": {**BEAT, "recorded_at": ago(26)}},
            {"thresholds": Thresholds(heartbeat_warning_s=20, heartbeat_critical_s=25)},
            Health(Level.CRITICAL, ["daemon not running: last heartbeat 26s ago"]),
        ),
    ],
)
def test_the_whole_health_of_each_fact(facts: dict[str, Any], kwargs: dict[str, Any], expected: Health) -> None:
    assert evaluate(snap(facts), NOW, **kwargs) == expected


@pytest.mark.parametrize(
    ("overdue", "thresholds", "expected"),
    [
        (1, Thresholds(), Health(Level.WARNING, ["1 overdue job"])),
        (0, Thresholds(), Health(Level.OK, [])),
        (2, Thresholds(overdue_warning=3), Health(Level.OK, [])),
        (3, Thresholds(overdue_warning=3), Health(Level.WARNING, ["3 overdue jobs"])),
        (4, Thresholds(overdue_warning=3, overdue_critical=5), Health(Level.WARNING, ["4 overdue jobs"])),
        (5, Thresholds(overdue_warning=3, overdue_critical=5), Health(Level.CRITICAL, ["5 overdue jobs"])),
        (0, Thresholds(overdue_warning=0), Health(Level.OK, [])),
    ],
)
def test_overdue_thresholds(overdue: int, thresholds: Thresholds, expected: Health) -> None:
    assert evaluate(snap(FRESH, overdue=overdue), NOW, thresholds) == expected


def test_two_conflicts_are_plural() -> None:
    assert evaluate(snap(FRESH, conflicts=2), NOW).problems == [
        "2 conflicts in the last 72h (see `reconciler status UUID`)"
    ]
