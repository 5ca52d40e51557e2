"""Commands that write stored data out: ``acuse`` (a job's SAT acknowledgement), ``export`` (jobs as CSV/JSONL)."""

from __future__ import annotations

import io
import json
from typing import IO, TYPE_CHECKING

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import write_file, writing_stdout
from reconciler.cli.reports import STATES
from reconciler.errors import JobNotFoundError, ValidationError
from reconciler.jobs.states import State

if TYPE_CHECKING:
    from reconciler.ledger.store import Job, Ledger

output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout."
)


@click.command()
@click.argument("uuid")
@output_option
@click.pass_obj
def acuse(ctx: Context, uuid: str, output: str | None) -> None:
    """Write the SAT acknowledgement (acuse) stored for a job."""
    from reconciler.jobs.validation import parse_uuid

    key = parse_uuid(uuid)

    async def go(ledger: Ledger) -> tuple[bytes | None, Job]:
        return await ledger.acuse(key), await ledger.get_job(key)

    data, job = run(with_ledger(ctx, go))
    if data is None:
        raise JobNotFoundError(f"job {key} has no acuse stored (state {job.state})")
    if output is None:
        with writing_stdout() as out:
            out.buffer.write(data)  # type: ignore[attr-defined]
            out.flush()
        return
    write_file(output, lambda f: f.write(data))
    click.echo(f"wrote {len(data)} bytes to {output}", err=True)


FIELDS = (
    "uuid",
    "rfc_emisor",
    "motivo",
    "folio_sustitucion",
    "state",
    "code",
    "message",
    "attempts",
    "created_at",
    "submitted_at",
    "resolved_at",
    "overdue",
    "has_acuse",
    "rfc_receptor",
    "total",
    "sat",
    "sat_estado",
    "sat_es_cancelable",
    "sat_estatus_cancelacion",
    "sat_checked_at",
)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--since", metavar="DATE", help="Only jobs changed on or after DATE (YYYY-MM-DD or ISO-8601, UTC).")
@output_option
@click.pass_obj
def export(ctx: Context, fmt: str, state: str | None, since: str | None, output: str | None) -> None:
    """Stream jobs with their outcome, acuse presence and the SAT's word as CSV or JSON lines."""
    import csv

    from reconciler.clock import iso, parse_iso
    from reconciler.redact import csv_cell

    since_iso = None
    if since is not None:
        try:
            since_iso = iso(parse_iso(since))
        except ValueError as e:
            raise ValidationError(f"--since: not a date: {since!r} (use YYYY-MM-DD or ISO-8601)") from e

    async def go(ledger: Ledger, out: IO[str]) -> int:
        from reconciler.clock import utc_now
        from reconciler.sat.verdict import facts_of, judge

        writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if writer:
            writer.writerow(FIELDS)
        n = 0
        now = utc_now()
        async for job in ledger.iter_jobs(state=State(state) if state else None, since=since_iso):
            row = {**job.as_dict(), "sat": str(judge(facts_of(job), now).view)}
            if writer:
                writer.writerow(["" if row[k] is None else csv_cell(row[k]) for k in FIELDS])
            else:
                out.write(json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) + "\n")
            n += 1
        return n

    if output is None:
        with writing_stdout() as out:
            run(with_ledger(ctx, lambda ledger: go(ledger, out)))
            out.flush()
        return

    def write(f: IO[bytes]) -> int:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        try:
            n = run(with_ledger(ctx, lambda ledger: go(ledger, text)))
            text.flush()
        finally:
            text.detach()  # the caller closes the file
        return n

    n = write_file(output, write)
    click.echo(f"exported {n} jobs to {output}", err=True)
