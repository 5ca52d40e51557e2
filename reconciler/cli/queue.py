"""Queueing commands: ``submit`` one job, ``import`` a CSV file of them (no network: the daemon sends)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Report, output_options, render
from reconciler.errors import ValidationError

if TYPE_CHECKING:
    from reconciler.ledger.store import Job, Ledger


@click.command()
@click.argument("uuid")
@click.option("--rfc", required=True, help="The issuer's RFC (rfcEmisor).")
@click.option("--motivo", default="02", show_default=True, help="SAT cancellation reason 01-04.")
@click.option("--folio-sustitucion", default=None, help="The replacing invoice's UUID (motivo 01 only).")
@output_options
@click.pass_obj
def submit(ctx: Context, uuid: str, rfc: str, motivo: str, folio_sustitucion: str | None, as_json: bool) -> None:
    """Queue one cancellation (no network; the daemon sends it)."""
    from reconciler.clock import utc_now
    from reconciler.jobs.validation import job_spec

    spec = job_spec(uuid, rfc, motivo, folio_sustitucion)

    async def go(ledger: Ledger) -> tuple[bool, Job]:
        result = await ledger.add_jobs([spec], utc_now(), source="cli")
        return result.added == 1, await ledger.get_job(spec.uuid)

    queued, job = run(with_ledger(ctx, go, create=True))
    line = (
        f"queued {job.uuid} (rfc {job.rfc_emisor}, motivo {job.motivo})"
        if queued
        else f"{job.uuid} is already in the ledger (state {job.state}); nothing changed"
    )
    render(Report({"uuid": job.uuid, "queued": queued, "state": str(job.state)}, [line]), as_json)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@output_options
@click.pass_obj
def import_(ctx: Context, file: str, as_json: bool) -> None:
    """Queue jobs from a CSV file (header uuid,rfc,motivo,folio_sustitucion), all or nothing."""
    from reconciler.clock import utc_now
    from reconciler.jobs.jobfile import bounded_lines, parse_jobs

    if file == "-":
        if sys.stdin is None:
            raise ValidationError("<stdin>: stdin is closed")
        specs = parse_jobs(bounded_lines(sys.stdin, "<stdin>"), "<stdin>")
    else:
        try:
            with open(file, encoding="utf-8-sig", newline="") as f:
                specs = parse_jobs(bounded_lines(f, file), file)
        except OSError as e:
            raise ValidationError(f"{file}: {e.strerror}") from e

    async def go(ledger: Ledger) -> tuple[int, list[str]]:
        result = await ledger.add_jobs(specs, utc_now(), source="import")
        return result.added, result.existing

    added, existing = run(with_ledger(ctx, go, create=True))
    line = f"{len(specs)} rows: {added} queued, {len(existing)} already in the ledger"
    render(Report({"rows": len(specs), "queued": added, "existing": existing}, [line]), as_json)
