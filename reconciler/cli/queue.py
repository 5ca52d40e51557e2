"""Queueing commands: ``submit`` one job, ``import`` CSV and CFDI XML files of them (no network: the daemon sends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Report, output_options, render

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
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--motivo", default=None, help="SAT cancellation reason 01-04 for every CFDI XML file (default 02).")
@click.option("--folio-sustitucion", default=None, help="The replacing invoice's UUID for every CFDI XML file.")
@output_options
@click.pass_obj
def import_(
    ctx: Context, paths: tuple[str, ...], motivo: str | None, folio_sustitucion: str | None, as_json: bool
) -> None:
    """Queue jobs from CSV files (header uuid,rfc,...) and CFDI XML files or directories, all or nothing."""
    from reconciler.cli.importing import gather
    from reconciler.clock import utc_now

    specs = gather(paths, motivo, folio_sustitucion)

    async def go(ledger: Ledger) -> tuple[int, list[str]]:
        result = await ledger.add_jobs(specs, utc_now(), source="import")
        return result.added, result.existing

    added, existing = run(with_ledger(ctx, go, create=True))
    line = f"{len(specs)} rows: {added} queued, {len(existing)} already in the ledger"
    render(Report({"rows": len(specs), "queued": added, "existing": existing}, [line]), as_json)
