"""``status``: a table of jobs that fits the terminal, one job with its history, or streamed JSON.

The table is newest first and never cuts a UUID or an RFC: on a narrow terminal it drops the
less important columns instead (the order in COLUMNS), and says which.  ``--json`` streams one
job per line inside the array, so a million jobs cost no more memory than ten.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.output import output_options
from reconciler.jobs.states import State

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from reconciler.cli.context import Context
    from reconciler.jobs.records import Job
    from reconciler.ledger.store import Ledger

STATES = tuple(str(s) for s in State)
# name, width of its widest value, in order of importance: the first three always show.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("uuid", 36),
    ("rfc", 13),
    ("state", 10),
    ("created", 16),
    ("code", 4),
    ("resolved", 16),
    ("attempts", 8),
    ("motivo", 6),
    ("overdue", 7),
    ("sat", 24),  # the SAT's word (README "The SAT's word"): its view and detail
)
GAP = 1  # columns between two table columns: uuid, rfc, state and created fit in 80
PIPE_WIDTH = 200  # not a terminal: wide enough for every column


def fit(width: int, columns: Sequence[tuple[str, int]] = COLUMNS, keep: int = 3) -> list[str]:
    """The most important columns whose values fit in ``width`` whole (at least the first ``keep``)."""
    chosen: list[str] = []
    used = -GAP
    for i, (name, w) in enumerate(columns):
        need = max(w, len(name)) + GAP
        if i < keep or used + need <= width:
            chosen.append(name)
            used += need
    return chosen


def local(when: str | None, tz: ZoneInfo, seconds: bool = False) -> str:
    """A ledger time (UTC ISO) as ``YYYY-MM-DD HH:MM`` in ``tz``."""
    if not when:
        return ""
    from reconciler.clock import parse_iso

    moment = parse_iso(when).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _width() -> int:
    tty = sys.stdout is not None and sys.stdout.isatty()
    import shutil

    return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns if tty else PIPE_WIDTH


@click.command()
@click.argument("uuid", required=False)
@click.option("--state", type=click.Choice(STATES, case_sensitive=False), help="Only jobs in this state.")
@click.option("--rfc", default=None, help="Only this issuer's jobs.")
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(0, 2**63 - 1), help="At most this many (0: all)."
)
@click.option("--tz", default=None, help="Show times in this zone (default [display] timezone, else UTC).")
@output_options
@click.pass_obj
def status(
    ctx: Context, uuid: str | None, state: str | None, rfc: str | None, limit: int, tz: str | None, as_json: bool
) -> None:
    """A table of jobs (newest first), or one job with its event history."""
    from reconciler.configfile import display_zone

    zone = display_zone(ctx.config, tz)
    if uuid is not None:
        _one(ctx, uuid, zone, as_json)
        return
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.jobs.validation import parse_rfc
    from reconciler.ledger import reading

    query = reading.Query(
        state=state.lower() if state else None,
        rfc=parse_rfc(rfc) if rfc is not None else None,
        newest_first=True,
        limit=limit or None,
    )
    if as_json:
        _run(_with_ledger(ctx, lambda ledger: _stream_json(ledger, query)))
        return
    shown = fit(_width())

    async def rows(ledger: Ledger) -> list[Sequence[Any]]:
        return [r async for chunk in reading.chunks(ledger, reading.TABLE, query) for r in chunk]

    jobs = _run(_with_ledger(ctx, rows))
    _print_table(jobs, shown, zone)
    if limit and len(jobs) == limit:
        click.echo(f"(newest {limit} jobs; --limit 0 shows all)", err=True)


async def _stream_json(ledger: Ledger, query: Any) -> None:
    from reconciler.cli.bulk import json_array
    from reconciler.cli.output import writing_stdout

    with writing_stdout() as out:
        await json_array(ledger, query, out)
        out.flush()


def _print_table(jobs: list[Sequence[Any]], shown: list[str], zone: ZoneInfo) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from reconciler.cli.output import stdout
    from reconciler.redact import one_line

    table = Table(box=None, padding=(0, GAP, 0, 0), pad_edge=False, header_style="bold")
    for name in shown:
        table.add_column(name, no_wrap=name in ("uuid", "rfc"), overflow="fold")
    from reconciler.clock import utc_now
    from reconciler.sat.verdict import SatFacts, judge

    now = utc_now()
    for uuid, rfc, motivo, state, code, attempts, created, resolved, overdue, *facts in jobs:
        cells = {
            "uuid": uuid,
            "rfc": rfc,
            "state": state,
            "created": local(created, zone),
            "code": "" if code is None else str(code),
            "resolved": local(resolved, zone),
            "attempts": str(attempts),
            "motivo": motivo,
            "overdue": "yes" if overdue else "",
            "sat": judge(SatFacts(*facts), now).cell() if "sat" in shown else "",
        }
        table.add_row(*(Text(one_line(cells[name])) for name in shown))
    out = stdout()
    Console(file=out, width=_width(), highlight=False).print(table)
    hidden = [name for name, _ in COLUMNS if name not in shown]
    note = f"times in {zone.key}" + (f"; not shown for width: {', '.join(hidden)} (--json has all)" if hidden else "")
    click.echo(f"({note})", err=True)


def _one(ctx: Context, uuid: str, zone: ZoneInfo, as_json: bool) -> None:
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.cli.output import Report, Table, render
    from reconciler.jobs.validation import parse_uuid

    key = parse_uuid(uuid)

    async def one(ledger: Ledger) -> tuple[Job, list[dict[str, Any]]]:
        return await ledger.get_job(key), [e.as_dict() for e in await ledger.events(key)]

    job, events = _run(_with_ledger(ctx, one))
    times = {"created_at", "submitted_at", "resolved_at", "next_attempt_at"}
    fields = [(k, local(v, zone, seconds=True) if k in times else v) for k, v in job.as_dict().items()]
    history = [
        (local(e["at"], zone, True), e["kind"], e["source"], json.dumps(e["detail"], ensure_ascii=False))
        for e in events
    ]
    human = [
        Table(("field", "value"), fields, f"job {key} (times in {zone.key})"),
        Table(("at", "kind", "source", "detail"), history, "events"),
    ]
    render(Report({**job.as_dict(), "events": events}, human), as_json)
