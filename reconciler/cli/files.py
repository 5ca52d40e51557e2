"""Files in and out: ``import`` a job file, ``export`` the jobs, ``acuse`` one or every acuse.

All three stream: memory stays bounded whatever the size of the ledger or of the file.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from reconciler.cli.output import output_options, write_file, writing_stdout
from reconciler.errors import JobNotFoundError, ReconcilerError, ValidationError
from reconciler.jobs.states import State

STATES = tuple(str(s) for s in State)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from reconciler.cli.context import Context
    from reconciler.jobs.records import Job
    from reconciler.ledger.imports import ImportResult
    from reconciler.ledger.store import Ledger

json_option = output_options


@contextlib.contextmanager
def _bad_rows(describe: Any, errors: str | None, named: bool) -> Iterator[Any]:
    """Where each bad row goes: stderr, one line each, or ``--errors FILE`` (with its path when ``named``)."""

    def text(n: int, reason: str) -> tuple[str, str]:
        name, line = describe(n)
        return name, reason if line is None else f"line {line}: {reason}"

    if errors is None:
        yield lambda n, reason: click.echo("{}: {}".format(*text(n, reason)), err=True)
        return
    try:
        out = open(errors, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise ValidationError(f"--errors {errors}: {e.strerror}") from e

    def write(n: int, reason: str) -> None:
        name, said = text(n, reason)
        out.write(f"{name}: {said}\n" if named or said is reason else f"{said}\n")

    with out:
        yield write


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--motivo", default=None, help="SAT cancellation reason 01-04 for every CFDI XML file (default 02).")
@click.option("--folio-sustitucion", default=None, help="The replacing invoice's UUID for every CFDI XML file.")
@click.option("--encoding", default=None, help="The CSV files' text encoding (default UTF-8; e.g. cp1252, utf-16).")
@click.option("--errors", "errors", metavar="FILE", help="Write every bad row here instead of to stderr.")
@click.option("--dry-run", is_flag=True, help="Check the files and say what would be queued; write nothing.")
@json_option
@click.pass_obj
def import_(
    ctx: Context,
    paths: tuple[str, ...],
    motivo: str | None,
    folio_sustitucion: str | None,
    encoding: str | None,
    errors: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Queue jobs from CSV files or - (header uuid,rfc[,motivo][,folio_sustitucion]...) and CFDI XML files or
    directories, all or nothing."""
    import aiosqlite

    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.cli.importing import Sources
    from reconciler.cli.output import emit_json as _emit_json
    from reconciler.clock import utc_now
    from reconciler.jobs.jobfile import MAX_REPORTED
    from reconciler.ledger.imports import import_rows

    sources = Sources(paths, motivo, folio_sustitucion, encoding, lambda line: click.echo(line, err=True))
    single = len(paths) == 1
    name = "<stdin>" if paths == ("-",) else paths[0] if single else "import"

    def where(n: int) -> str:
        first, line = sources.describe(n)
        if single and line is not None:
            return f"on line {line}"
        return f"in {first}" + (f" line {line}" if line is not None else "")

    files_more = 0
    files_bad: list[str] = []  # bad XML files (the first MAX_REPORTED): one line at the end, as for a bad path

    with _bad_rows(sources.describe, errors, not single) as listed:

        def bad_row(n: int, reason: str) -> None:
            path, line = sources.describe(n)
            if line is None and errors is None:
                nonlocal files_more
                files_more += 1
                if len(files_bad) < MAX_REPORTED:
                    files_bad.append(f"{path}: {reason}")
                return
            listed(n, reason)

        rows = sources.rows()

        async def go(ledger: Ledger) -> ImportResult:
            return await import_rows(
                ledger.connection,
                rows,
                bad_row,
                now=utc_now(),
                source="import",
                dry_run=dry_run,
                write=ledger.transaction,
                where=where,
            )

        async def nowhere() -> ImportResult:  # --dry-run and no ledger yet: nothing is in it
            async with aiosqlite.connect(":memory:", isolation_level=None) as db:
                return await import_rows(db, rows, bad_row, now=utc_now(), source="import", has_jobs=False, where=where)

        if dry_run and not ctx.ledger_path().exists():
            result = _run(nowhere())
        else:
            result = _run(_with_ledger(ctx, go, create=not dry_run))
    if result.bad and files_more == result.bad:  # only XML files were bad: one line, as import's other errors
        more = f" (and {files_more - len(files_bad)} more)" if files_more > len(files_bad) else ""
        if files_more == 1:
            raise ValidationError(f"{files_bad[0]}; nothing imported")
        raise ValidationError(f"{files_more} problems, nothing imported: {'; '.join(files_bad)}{more}")
    if result.bad:
        where_listed = f"listed in {errors}" if errors else "each listed above"
        s = "s" if result.bad != 1 else ""
        raise ValidationError(f"{name}: {result.bad} bad row{s} ({where_listed}), nothing imported")
    new = result.rows - result.existing
    if as_json:
        key = "would_queue" if dry_run else "queued"
        _emit_json({"rows": result.rows, key: new, "existing": result.existing, "dry_run": dry_run})
    elif dry_run:
        click.echo(f"{result.rows} rows: {new} would be queued, {result.existing} already in the ledger (dry run)")
    else:
        click.echo(f"{result.rows} rows: {result.added} queued, {result.existing} already in the ledger")


@click.command()
@click.argument("uuid", required=False)
@click.option("--all", "every", is_flag=True, help="Every stored acuse, one file each, into -o DIR.")
@click.option("--since", metavar="DATE", help="With --all: only jobs resolved on or after DATE.")
@click.option("-o", "--output", type=click.Path(writable=True), help="Write to this file (with --all: directory).")
@click.pass_obj
def acuse(ctx: Context, uuid: str | None, every: bool, since: str | None, output: str | None) -> None:
    """Write the SAT acknowledgement (acuse) stored for a job, or every one with --all -o DIR."""
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.jobs.validation import parse_uuid

    if every:
        if uuid is not None or output is None:
            raise ValidationError("acuse --all: give -o DIR and no UUID")
        from reconciler.configfile import display_zone

        _all_acuses(ctx, Path(output), _since(since, display_zone(ctx.config, None)))
        return
    if uuid is None:
        raise ValidationError("acuse: give a UUID, or --all -o DIR")
    if since is not None:
        raise ValidationError("acuse: --since goes with --all")
    key = parse_uuid(uuid)

    async def go(ledger: Ledger) -> tuple[bytes | None, Job]:
        return await ledger.acuse(key), await ledger.get_job(key)

    data, job = _run(_with_ledger(ctx, go))
    if data is None:
        raise JobNotFoundError(f"job {key} has no acuse stored (state {job.state})")
    if output is None:
        with writing_stdout() as out:
            out.buffer.write(data)  # type: ignore[attr-defined]
            out.flush()
        return
    write_file(output, lambda f: f.write(data))
    click.echo(f"wrote {len(data)} bytes to {output}", err=True)


def _since(since: str | None, zone: ZoneInfo | None = None) -> str | None:
    """``--since`` as the ledger's UTC ISO text: a date or a time, with an offset or else in ``zone``."""
    from datetime import UTC, datetime

    from reconciler.clock import iso

    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ValidationError(
            f"--since: not a date: {since!r} (use YYYY-MM-DD, or a time such as 2026-12-01T09:00-06:00)"
        ) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return iso(moment)


def _all_acuses(ctx: Context, directory: Path, since: str | None) -> None:
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger

    if directory.exists() and not directory.is_dir():
        raise ValidationError(f"-o {directory}: not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReconcilerError(f"-o {directory}: {e.strerror or e}") from e

    async def go(ledger: Ledger) -> int:
        n = 0
        async for uuid, data in ledger_acuses(ledger, since):
            write_file(str(directory / f"{uuid}.xml"), partial(_write_bytes, data))
            n += 1
        return n

    n = _run(_with_ledger(ctx, go))
    click.echo(f"wrote {n} acuse{'s' if n != 1 else ''} to {directory}", err=True)


def _write_bytes(data: bytes, f: IO[bytes]) -> int:
    return f.write(data)


async def ledger_acuses(ledger: Ledger, since: str | None) -> Any:
    """Every stored acuse as (uuid, bytes), in UUID order, 200 at a time (keyset: bounded memory)."""
    after = ""
    while True:
        rows = await ledger.read(
            "SELECT uuid, acuse FROM jobs WHERE acuse IS NOT NULL AND uuid > ?1 AND (?2 IS NULL OR resolved_at >= ?2)"
            " ORDER BY uuid LIMIT 200",  # ?1 after, ?2 since
            (after, since),
        )
        for row in rows:
            yield row[0], bytes(row[1])
        if len(rows) < 200:
            return
        after = rows[-1][0]


@click.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--state", type=click.Choice(STATES, case_sensitive=False), help="Only jobs in this state.")
@click.option("--rfc", default=None, help="Only this issuer's jobs.")
@click.option("--since", metavar="DATE", help="Only jobs changed on or after DATE (a date, or a time with offset).")
@click.option("--tz", default=None, help="CSV times in this zone (default [display] timezone, else UTC).")
@click.option("--excel", is_flag=True, help="CSV with a UTF-8 BOM, so Excel reads accents right.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout."
)
@click.pass_obj
def export(
    ctx: Context,
    fmt: str,
    state: str | None,
    rfc: str | None,
    since: str | None,
    tz: str | None,
    excel: bool,
    output: str | None,
) -> None:
    """Stream jobs with their outcome, acuse presence and the SAT's word as CSV or JSON lines, in the order queued."""
    from reconciler.cli import bulk
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.clock import utc_now
    from reconciler.configfile import display_zone
    from reconciler.jobs.validation import parse_rfc
    from reconciler.ledger import reading

    if excel and fmt != "csv":
        raise ValidationError("--excel goes with --format csv")
    zone = display_zone(ctx.config, tz)
    query = reading.Query(
        state=state.lower() if state else None,
        rfc=parse_rfc(rfc) if rfc is not None else None,
        since=_since(since, zone),
    )
    shift = bulk.shifter(zone)
    now = utc_now()

    async def go(ledger: Ledger, out: IO[str]) -> int:
        return await bulk.export(ledger, query, out, fmt, excel, shift, now)

    if output is None:
        with writing_stdout() as out:
            _run(_with_ledger(ctx, lambda ledger: go(ledger, out)))
            out.flush()
        return

    def write(f: IO[bytes]) -> int:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        try:
            n = _run(_with_ledger(ctx, lambda ledger: go(ledger, text)))
            text.flush()
        finally:
            text.detach()  # the caller closes the file
        return n

    n = write_file(output, write)
    click.echo(f"exported {n} jobs to {output}", err=True)
