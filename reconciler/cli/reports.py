"""Read commands about the daemon: ``summary`` and the monitoring probe ``check`` (``status``: cli/listing.py).

Each builds one :class:`~reconciler.cli.output.Report`; the ledger is opened read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Report, Table, output_options, render
from reconciler.cli.thresholds import critical_option, thresholds, warning_option
from reconciler.errors import ReconcilerError
from reconciler.jobs.states import State

if TYPE_CHECKING:
    from reconciler.daemon.health import Health, Snapshot
    from reconciler.ledger.lock import Holder
    from reconciler.ledger.store import Ledger

STATES = tuple(str(s) for s in State)


async def snapshot(ledger: Ledger) -> Snapshot:
    """What ``summary``, ``check`` and the demo read from the ledger."""
    from reconciler.clock import iso, utc_now
    from reconciler.daemon.health import CONFLICT_WINDOW, Snapshot

    since = iso(utc_now() - CONFLICT_WINDOW)
    return Snapshot(
        await ledger.counts(),
        await ledger.overdue_count(),
        await ledger.event_count("conflict", since),
        await ledger.facts(),
        await ledger.sat_counts(utc_now()),
    )


@dataclass(frozen=True, slots=True)
class DaemonProcess:
    """Whether a daemon holds the ledger's lock, and its pid when it could be read."""

    running: bool
    pid: int | None

    @classmethod
    def of(cls, held: Holder | None) -> DaemonProcess:
        return cls(held is not None, held.pid if held is not None else None)

    def describe(self) -> str:
        from reconciler.ledger import lock

        return lock.describe(lock.Holder(self.pid) if self.running else None)


@dataclass(frozen=True, slots=True)
class Summary:
    """The ``summary`` document: its fields are the ``--json`` keys; :meth:`tables` shows them to a person."""

    counts: dict[str, int]
    total: int
    overdue: int
    recent_conflicts: int
    breaker: Mapping[str, Any] | None
    paused: Mapping[str, Any] | None
    heartbeat: Mapping[str, Any] | None
    daemon: DaemonProcess
    last_mailbox_pass: Mapping[str, Any] | None
    health: str
    problems: list[str]
    sat: dict[str, int]  # reconciler.ledger.sat.COUNT_NAMES; all zero until the SAT is asked

    @classmethod
    def of(cls, snap: Snapshot, health: Health, held: Holder | None) -> Summary:
        facts = snap.facts
        return cls(
            counts=dict(snap.counts),
            total=sum(snap.counts.values()),
            overdue=snap.overdue,
            recent_conflicts=snap.recent_conflicts,
            breaker=facts.get("breaker"),
            paused=facts.get("paused"),
            heartbeat=facts.get("heartbeat"),
            daemon=DaemonProcess.of(held),
            last_mailbox_pass=facts.get("mailbox_pass"),
            health=health.level.name,
            problems=list(health.problems),
            sat=dict(snap.sat),
        )

    def tables(self) -> list[Table]:
        return [
            Table(("state", "count"), [*self.counts.items(), ("total", self.total), ("overdue", self.overdue)], "jobs"),
            Table(
                ("fact", "value"),
                [
                    ("daemon", self.daemon.describe()),
                    ("heartbeat", (self.heartbeat or {}).get("recorded_at", "never")),
                    ("last mailbox pass", (self.last_mailbox_pass or {}).get("recorded_at", "never")),
                    ("circuit breaker", _breaker_text(self.breaker)),
                    ("submissions", _paused_text(self.paused)),
                    ("health", f"{self.health}: {'; '.join(self.problems) or 'all good'}"),
                ],
                "daemon",
            ),
            *(
                [Table(("view", "count"), [(k.replace("_", " "), v) for k, v in self.sat.items()], "at the SAT")]
                if self.sat.get("asked")
                else []
            ),
        ]


@click.command()
@output_options
@click.pass_obj
def summary(ctx: Context, as_json: bool) -> None:
    """Counts per state (and per SAT view) and the daemon's health facts."""
    from reconciler.clock import utc_now
    from reconciler.daemon.health import evaluate
    from reconciler.ledger import lock

    snap = run(with_ledger(ctx, snapshot))
    result = Summary.of(snap, evaluate(snap, utc_now()), lock.holder(ctx.ledger_path()))
    render(Report(asdict(result), result.tables()), as_json)


def _paused_text(fact: Mapping[str, Any] | None) -> str:
    if not fact:
        return "running"
    reason = f": {fact['reason']}" if fact.get("reason") else ""
    return f"PAUSED by {fact.get('by')} since {fact.get('recorded_at')}{reason}"


def _breaker_text(breaker: Mapping[str, Any] | None) -> str:
    if not breaker:
        return "closed"
    return f"OPEN: code {breaker.get('code')} {breaker.get('meaning', '')} since {breaker.get('recorded_at')}"


@dataclass(frozen=True, slots=True)
class Probe:
    """The ``check`` result: the Nagios status and exit code, the one status line, and why."""

    status: str
    code: int
    line: str
    problems: list[str]
    daemon: DaemonProcess | None


@click.command()
@warning_option
@critical_option
@click.option("--integrity", is_flag=True, help="Also run SQLite's quick_check on the ledger (reads every page).")
@output_options
@click.pass_obj
def check(ctx: Context, warning: tuple[str, ...], critical: tuple[str, ...], integrity: bool, as_json: bool) -> int:
    """Monitoring probe: one status line, Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""
    from reconciler.clock import utc_now
    from reconciler.daemon.health import Level, evaluate
    from reconciler.ledger import files, lock
    from reconciler.redact import one_line

    limits = thresholds(warning, critical)
    found: list[str] | None = None
    try:
        if integrity:
            found = files.quick_check(ctx.ledger_path())
        snap = run(with_ledger(ctx, snapshot))
    except ReconcilerError as e:
        problem = one_line(str(e))
        level = Level.CRITICAL if found not in (None, ["ok"]) else Level.UNKNOWN
        problems = [f"ledger integrity check failed: {one_line('; '.join((found or [])[:3]))}", problem]
        problems = problems if level == Level.CRITICAL else [problem]
        line = f"RECONCILER {level.name} - {'; '.join(problems)}"
        probe = Probe(level.name, int(level), line, problems, None)
    else:
        held = lock.holder(ctx.ledger_path())
        health = evaluate(snap, utc_now(), limits, running=held is not None, integrity=found)
        daemon = DaemonProcess.of(held)
        head, sep, perf = health.line(snap).partition(" | ")
        line = f"{head}; {daemon.describe()}{sep}{perf}"
        probe = Probe(health.level.name, int(health.level), line, list(health.problems), daemon)
    render(Report(asdict(probe), [probe.line]), as_json)
    return probe.code
