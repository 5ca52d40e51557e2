"""The ``reconciler`` command line.  Only this module knows exit codes and output formats.

Exit codes: 0 success; 1 a runtime failure (job not found, ledger unusable,
server unreachable); 2 bad input or configuration; ``check`` uses the Nagios
codes 0-3.  Read commands import neither zeep, imapclient nor apscheduler.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler import __version__
from reconciler.cli import files, listing, operator
from reconciler.cli.output import silence_stdout, stdout
from reconciler.errors import ConfigError, ReconcilerError, ValidationError
from reconciler.jobs.states import State

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.ledger.store import Job, Ledger

T = TypeVar("T")
STATES = tuple(str(s) for s in State)
CONFLICT_WINDOW = timedelta(hours=72)


@dataclass
class Context:
    config: str | None

    def ledger_path(self) -> Path:
        from reconciler.configfile import ledger_path

        return ledger_path(self.config)

    def settings(self) -> Settings:
        from reconciler.config import load_settings

        return load_settings(self.config)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _with_ledger(
    ctx: Context, fn: Callable[[Ledger], Awaitable[T]], *, create: bool = False, write: bool = False
) -> T:
    """Run ``fn`` on the ledger: read-only unless ``write`` or ``create``; writers never migrate."""
    from reconciler.ledger.store import Ledger

    path = ctx.ledger_path()
    if create or write:
        opened = await Ledger.open(path, create=create, migrate=False)
    else:
        opened = await Ledger.open_readonly(path)
    async with opened as ledger:
        return await fn(ledger)


def _emit_json(obj: Any) -> None:
    stdout().write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print a table; every cell is literal text (never rich markup) on one line (controls escaped)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from reconciler.outside import one_line

    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if v is None else one_line(str(v))) for v in row))
    out = stdout()
    Console(file=out, width=None if out.isatty() else 200).print(table)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    help="Config file (default: $RECONCILER_CONFIG, else /etc/reconciler/config.toml).",
)
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Cancel CFDI invoices through Solución Factible and reconcile every outcome."""
    ctx.obj = Context(config)


# -- queueing ------------------------------------------------------------------


@cli.command()
@click.argument("uuid")
@click.option("--rfc", required=True, help="The issuer's RFC (rfcEmisor).")
@click.option("--motivo", default="02", show_default=True, help="SAT cancellation reason 01-04.")
@click.option("--folio-sustitucion", default=None, help="The replacing invoice's UUID (motivo 01 only).")
@json_option
@click.pass_obj
def submit(ctx: Context, uuid: str, rfc: str, motivo: str, folio_sustitucion: str | None, as_json: bool) -> None:
    """Queue one cancellation (no network; the daemon sends it)."""
    from reconciler.clock import utc_now
    from reconciler.jobs.validation import job_spec

    spec = job_spec(uuid, rfc, motivo, folio_sustitucion)

    async def go(ledger: Ledger) -> tuple[bool, Job]:
        result = await ledger.add_jobs([spec], utc_now(), source="cli")
        return result.added == 1, await ledger.get_job(spec.uuid)

    queued, job = _run(_with_ledger(ctx, go, create=True))
    if not queued and job.spec != spec:
        raise ValidationError(
            f"{job.uuid} is already in the ledger with rfc {job.rfc_emisor}, motivo {job.motivo}, folio_sustitucion "
            f"{job.folio_sustitucion or '-'} (state {job.state}), not rfc {spec.rfc_emisor}, motivo {spec.motivo}, "
            f"folio_sustitucion {spec.folio_sustitucion or '-'}; nothing changed "
            "(a queued job never sent can be removed with `reconciler forget` and submitted again)"
        )
    if as_json:
        _emit_json({"uuid": job.uuid, "queued": queued, "state": str(job.state)})
    elif queued:
        click.echo(f"queued {job.uuid} (rfc {job.rfc_emisor}, motivo {job.motivo})")
    else:
        click.echo(f"{job.uuid} is already in the ledger (state {job.state}); nothing changed")


# -- reading -------------------------------------------------------------------


async def _snapshot(ledger: Ledger) -> Any:
    from reconciler.clock import iso, utc_now
    from reconciler.daemon.health import Snapshot

    since = iso(utc_now() - CONFLICT_WINDOW)
    return Snapshot(
        await ledger.counts(),
        await ledger.overdue_count(),
        await ledger.event_count("conflict", since),
        await ledger.facts(),
    )


@cli.command()
@json_option
@click.pass_obj
def summary(ctx: Context, as_json: bool) -> None:
    """Counts per state and the daemon's health facts."""
    from reconciler.clock import utc_now
    from reconciler.daemon.health import evaluate
    from reconciler.ledger import lock

    snap = _run(_with_ledger(ctx, _snapshot))
    health = evaluate(snap, utc_now())
    facts = snap.facts
    held = lock.holder(ctx.ledger_path())
    if as_json:
        _emit_json(
            {
                "counts": dict(snap.counts),
                "total": sum(snap.counts.values()),
                "overdue": snap.overdue,
                "recent_conflicts": snap.recent_conflicts,
                "breaker": facts.get("breaker"),
                "paused": facts.get("paused"),
                "heartbeat": facts.get("heartbeat"),
                "daemon": {"running": held is not None, "pid": held.pid if held else None},
                "last_mailbox_pass": facts.get("mailbox_pass"),
                "health": health.level.name,
                "problems": health.problems,
            }
        )
        return
    _table(
        "jobs",
        ("state", "count"),
        [*snap.counts.items(), ("total", sum(snap.counts.values())), ("overdue", snap.overdue)],
    )
    beat = facts.get("heartbeat", {})
    mailbox = facts.get("mailbox_pass", {})
    breaker = facts.get("breaker")
    _table(
        "daemon",
        ("fact", "value"),
        [
            ("daemon", lock.describe(held)),
            ("heartbeat", beat.get("recorded_at", "never")),
            ("last mailbox pass", mailbox.get("recorded_at", "never")),
            (
                "circuit breaker",
                f"OPEN: code {breaker.get('code')} {breaker.get('meaning', '')} since {breaker.get('recorded_at')}"
                if breaker
                else "closed",
            ),
            ("submissions", _paused_line(facts.get("paused"))),
            ("health", f"{health.level.name}: {'; '.join(health.problems) or 'all good'}"),
        ],
    )


def _paused_line(fact: dict[str, Any] | None) -> str:
    if not fact:
        return "running"
    reason = f": {fact['reason']}" if fact.get("reason") else ""
    return f"PAUSED by {fact.get('by')} since {fact.get('recorded_at')}{reason}"


@cli.command()
@click.pass_obj
def check(ctx: Context) -> int:
    """Monitoring probe: one status line, Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""
    from reconciler.clock import utc_now
    from reconciler.daemon.health import evaluate

    try:
        snap = _run(_with_ledger(ctx, _snapshot))
    except ReconcilerError as e:
        click.echo(f"RECONCILER UNKNOWN - {_one_line(e)}")
        return 3
    from reconciler.ledger import lock

    health = evaluate(snap, utc_now())
    line, sep, perf = health.line(snap).partition(" | ")
    click.echo(f"{line}; {lock.describe(lock.holder(ctx.ledger_path()))}{sep}{perf}")
    return int(health.level)


cli.add_command(files.import_)
cli.add_command(listing.status)
cli.add_command(files.acuse)
cli.add_command(files.export)


# -- the daemon ------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, help="One pass of every loop (no IDLE), then exit: for cron and tests.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@click.pass_obj
def run(ctx: Context, once: bool, log_level: str) -> int:
    """Run the daemon in the foreground (systemd: Type=notify)."""
    from reconciler import logs
    from reconciler.daemon import sdnotify

    settings = ctx.settings()
    settings.require_provider()
    settings.require_mailbox()
    logs.setup(log_level, journal=sdnotify.journal_stream(), secrets=_secrets(settings))
    from reconciler.daemon.service import run as run_service

    return _run(run_service(settings, once=once))


@cli.command()
@click.option("--backup", "backup", metavar="PATH", help="First copy the ledger to PATH (a new file).")
@click.pass_obj
def migrate(ctx: Context, backup: str | None) -> None:
    """Apply the ledger's pending schema migrations (the daemon must not be running)."""
    from reconciler.ledger.migration import migrate as apply

    path = ctx.ledger_path()
    before, after = apply(path, Path(backup) if backup is not None else None)
    if backup is not None:
        click.echo(f"backed up {path} to {backup}", err=True)
    click.echo(
        f"ledger {path}: schema {before} -> {after}"
        if before < after
        else f"ledger {path}: schema {before} is current; nothing to do"
    )


def _secrets(settings: Settings) -> list[str]:
    """Every secret value configured, for the log filter (the last line of defence)."""
    from functools import partial

    values: list[str] = []
    getters: list[Callable[[], Any]] = [settings.provider_password]
    if settings.mailbox.auth == "password":
        getters.append(settings.mailbox_password)
    getters.extend(partial(settings.csd_password, issuer) for issuer in settings.issuers)
    for get in getters:
        try:
            secret = get()
        except ConfigError:
            continue
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


@cli.command()
@click.pass_obj
def resume(ctx: Context) -> None:
    """Close the circuit breaker after fixing the provider account; submissions restart."""
    from reconciler.clock import utc_now

    async def go(ledger: Ledger) -> bool:
        cleared = await ledger.clear_fact("breaker")
        if cleared:
            detail = {"action": "cleared", "reason": "reconciler resume"}
            await ledger.record_event(None, "breaker", "cli", detail, utc_now())
        return cleared

    if _run(_with_ledger(ctx, go, write=True)):
        click.echo("circuit breaker cleared: the daemon submits again at its next pass")
    else:
        click.echo("circuit breaker was not open; nothing changed")


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the simulator and IMAP server running until Ctrl-C.")
@click.option(
    "--jobs", "generated", default=40, show_default=True, help="Generated jobs besides the ten testing UUIDs."
)
def demo(keep: bool, generated: int) -> int:
    """The offline sandbox demo: simulator, IMAP server and the real daemon on loopback."""
    from rich.console import Console

    from reconciler.outside import one_line

    try:
        from reconciler.cli.demo import run_demo
    except ModuleNotFoundError as e:
        raise ReconcilerError(f"the demo needs {e.name}: pip install 'reconciler[demo]'") from e
    console = Console()
    result = run_demo(keep=keep, generated=generated, console=console)
    from rich.markup import escape

    for line in result.mismatches:
        console.print(f"[red]MISMATCH[/] {escape(line)}")
    forged = (
        escape(f"forged OK for {result.forged_uuid} refused: {one_line(result.untrusted_reason)}")
        if result.untrusted_reason
        else (f"[red]the forged OK for {result.forged_uuid} was not recorded as untrusted[/]")
    )
    console.print(forged)
    _run(_summary_table(result.config))
    from reconciler.cli.demo import invocation, remove

    me = invocation()
    if keep or not result.ok:  # a failed demo keeps its files to look at
        where = f"demo ledger: {result.config.parent / 'ledger.sqlite3'} (log: {result.config.parent / 'demo.log'})"
        console.print(escape(where))
        console.print(escape(f"try: {me} --config {shlex.quote(str(result.config))} status"))
    else:
        remove(result.directory)
        console.print(escape(f"demo files removed; `{me} demo --keep` keeps them (and the servers) to explore"))
    console.print(
        "[green]every job reached the state the simulator intended[/]" if result.ok else "[red]demo FAILED[/]"
    )
    return 0 if result.ok else 1


async def _summary_table(config: Path) -> None:
    ctx = Context(str(config))
    snap = await _with_ledger(ctx, _snapshot)
    _table("final states", ("state", "count"), [*snap.counts.items(), ("total", sum(snap.counts.values()))])


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """Run the provider simulator (see `reconciler sandbox --help`)."""
    from reconciler.sandbox.cli import sandbox as command

    command.main(args=ctx.args, prog_name="reconciler sandbox", standalone_mode=False)


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@json_option
@click.pass_obj
def config_check(ctx: Context, as_json: bool) -> int:
    """Validate the config, open the ledger, log in to the mailbox, load the WSDL; one line each."""
    from reconciler.cli.preflight import run_checks

    checks = _run(run_checks(ctx.config))
    if as_json:
        _emit_json([c.as_dict() for c in checks])
    else:
        from reconciler.outside import one_line

        for c in checks:
            line = f"{'ok  ' if c.ok else 'FAIL'} {c.name:<8} {one_line(c.detail)}"
            click.echo(line + (f" -> fix: {c.fix}" if c.fix else ""))
    return 0 if all(c.ok for c in checks) else 2


cli.add_command(operator.hold)
cli.add_command(operator.release)
cli.add_command(operator.held)
cli.add_command(operator.pause)
cli.add_command(operator.unpause)
cli.add_command(operator.requeue)
cli.add_command(operator.forget)


def _one_line(error: BaseException) -> str:
    """Errors are one line even when a user-given name carries a newline or a control character."""
    from reconciler.outside import one_line

    return one_line(str(error))


def main() -> None:
    """Entry point: map reconciler's errors to one line on stderr and an exit code."""
    try:
        code = cli.main(prog_name="reconciler", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except (ConfigError, ValidationError) as e:
        click.echo(f"reconciler: {_one_line(e)}", err=True)
        sys.exit(2)
    except ReconcilerError as e:
        click.echo(f"reconciler: {_one_line(e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (``export | head``): stop quietly, and keep Python's final
        # flush of stdout from printing a traceback about the same pipe.
        silence_stdout()
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
