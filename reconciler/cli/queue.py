"""Queueing one job: ``submit`` (no network: the daemon sends).  ``import`` lives in :mod:`reconciler.cli.files`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Report, output_options, render
from reconciler.errors import ValidationError

if TYPE_CHECKING:
    from reconciler.jobs.records import Job
    from reconciler.ledger.store import Ledger


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
    if not queued and job.spec != spec:
        raise ValidationError(
            f"{job.uuid} is already in the ledger with rfc {job.rfc_emisor}, motivo {job.motivo}, folio_sustitucion "
            f"{job.folio_sustitucion or '-'} (state {job.state}), not rfc {spec.rfc_emisor}, motivo {spec.motivo}, "
            f"folio_sustitucion {spec.folio_sustitucion or '-'}; nothing changed "
            "(a queued job never sent can be removed with `reconciler forget` and submitted again)"
        )
    line = (
        f"queued {job.uuid} (rfc {job.rfc_emisor}, motivo {job.motivo})"
        if queued
        else f"{job.uuid} is already in the ledger (state {job.state}); nothing changed"
    )
    render(Report({"uuid": job.uuid, "queued": queued, "state": str(job.state)}, [line]), as_json)
