"""``reconciler backup PATH``: a consistent copy of the ledger, taken beside the running daemon."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from reconciler.cli.context import Context
from reconciler.cli.output import Report, output_options, render


@dataclass(frozen=True, slots=True)
class Backup:
    ledger: str
    backup: str
    bytes: int
    schema: int
    jobs: int
    integrity: str


@click.command()
@click.argument("path", type=click.Path())
@output_options
@click.pass_obj
def backup(ctx: Context, path: str, as_json: bool) -> None:
    """Copy the ledger to PATH (a new file, or a directory to put a dated one in), safe while the daemon runs."""
    import sqlite3

    from reconciler.errors import LedgerError
    from reconciler.ledger import files

    source = ctx.ledger_path()
    dest = Path(path)
    if dest.is_dir():
        dest = dest / f"{source.stem}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.sqlite3"
    # SQLite's online backup API: one read transaction over a WAL ledger, so the daemon keeps writing.
    files.backup_to(source, dest)
    try:
        db = sqlite3.connect(dest)
        try:
            db.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            schema = int(db.execute("PRAGMA user_version").fetchone()[0])
            jobs = int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])
        finally:
            db.close()
        found = files.quick_check(dest)
    except (sqlite3.Error, LedgerError) as e:
        dest.unlink(missing_ok=True)
        raise LedgerError(f"backup {dest}: the copy does not read back: {e}") from e
    if found != ["ok"]:
        dest.unlink(missing_ok=True)
        raise LedgerError(f"backup {dest}: the copy fails quick_check: {'; '.join(found[:3])}")
    result = Backup(str(source), str(dest), dest.stat().st_size, schema, jobs, "ok")
    line = f"backed up {source} to {dest}: {jobs} jobs, schema {schema}, {result.bytes} bytes, quick_check ok"
    render(Report(asdict(result), [line]), as_json)
