"""Commands about the daemon process: ``run`` it, ``migrate`` its ledger, ``resume`` after the breaker opened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.context import Context, with_ledger
from reconciler.cli.context import run as run_async
from reconciler.cli.output import Report, output_options, render
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.ledger.store import Ledger


# `run --once` exit statuses for cron besides 0, 1 (ledger) and 2 (config): see README "Exit codes".
BREAKER_OPEN = 3  # account-level provider codes stopped submissions: an operator must act, then `resume`
UNANSWERED = 4  # the provider or the mailbox did not answer during the pass: it is retried at the next run


@click.command()
@click.option("--once", is_flag=True, help="One pass of every loop (no IDLE), then exit: for cron and tests.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for log shippers.",
)
@output_options
@click.pass_obj
def run(ctx: Context, once: bool, log_level: str, log_format: str, as_json: bool) -> int:
    """Run the daemon in the foreground (systemd: Type=notify).

    Logs go to stderr; ``--json`` prints what the run did on stdout when it ends.
    Exit status 0 after a clean stop, 1 when the ledger could not be written; ``--once``
    also 3 when the breaker is open and 4 when the provider or the mailbox did not answer.
    """
    from reconciler import logs
    from reconciler.daemon import sdnotify
    from reconciler.redact import one_line

    settings = ctx.settings()
    settings.require_provider()
    settings.require_mailbox()
    logs.setup(log_level, journal=sdnotify.journal_stream(), secrets=secrets(settings), fmt=log_format.lower())
    from reconciler.daemon.service import run as run_service

    result = run_async(run_service(settings, once=once))
    fatal = None if result.fatal is None else one_line(str(result.fatal))
    document = {
        "started": result.started,
        "totals": result.totals.as_dict(),
        "fatal": fatal,
        "breaker_open": result.breaker_open,
        "unanswered": sorted(result.unanswered),
    }
    render(Report(document), as_json)
    if result.fatal is not None:
        return 1
    if once and result.breaker_open:
        return BREAKER_OPEN
    if once and result.unanswered:
        return UNANSWERED
    return 0


@click.command()
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


def secrets(settings: Settings) -> list[str]:
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


@click.command()
@output_options
@click.pass_obj
def resume(ctx: Context, as_json: bool) -> None:
    """Close the circuit breaker after fixing the provider account; submissions restart."""
    from reconciler.clock import utc_now

    async def go(ledger: Ledger) -> bool:
        cleared = await ledger.clear_fact("breaker")
        if cleared:
            detail = {"action": "cleared", "reason": "reconciler resume"}
            await ledger.record_event(None, "breaker", "cli", detail, utc_now())
        return cleared

    cleared = run_async(with_ledger(ctx, go, write=True))
    line = (
        "circuit breaker cleared: the daemon submits again at its next pass"
        if cleared
        else "circuit breaker was not open; nothing changed"
    )
    render(Report({"cleared": cleared}, [line]), as_json)
