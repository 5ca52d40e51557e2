"""The offline commands: ``demo`` (simulator, IMAP server and the real daemon on loopback) and ``sandbox``."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Table, table
from reconciler.errors import ReconcilerError


@click.command()
@click.option("--keep", is_flag=True, help="Leave the simulator and IMAP server running until Ctrl-C.")
@click.option(
    "--jobs",
    "generated",
    type=click.IntRange(1, 100_000),
    default=40,
    show_default=True,
    help="Generated jobs besides the ten testing UUIDs (1-100000).",
)
@click.option(
    "--signing",
    type=click.Choice(["provider", "local"]),
    default="provider",
    show_default=True,
    help="local: sign each request here with a throwaway CSD (zero custody).",
)
def demo(keep: bool, generated: int, signing: str) -> int:
    """The offline sandbox demo: simulator, IMAP server and the real daemon on loopback."""
    from rich.console import Console

    from reconciler.redact import one_line

    try:
        from reconciler.cli.demo import run_demo
    except ModuleNotFoundError as e:
        raise ReconcilerError(f"the demo needs {e.name}: pip install 'reconciler[demo]'") from e
    console = Console()
    result = run_demo(keep=keep, generated=generated, console=console, signing=signing)
    from rich.markup import escape

    for line in result.mismatches:
        console.print(f"[red]MISMATCH[/] {escape(line)}")
    forged = (
        escape(f"forged OK for {result.forged_uuid} refused: {one_line(result.untrusted_reason)}")
        if result.untrusted_reason
        else (f"[red]the forged OK for {result.forged_uuid} was not recorded as untrusted[/]")
    )
    console.print(forged)
    run(_summary_table(result.config))
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
    from reconciler.cli.reports import snapshot
    from reconciler.daemon.health import sat_health

    snap = await with_ledger(Context(str(config)), snapshot)
    table(Table(("state", "count"), [*snap.counts.items(), ("total", sum(snap.counts.values()))], "final states"))
    table(Table(("view", "count"), [(k.replace("_", " "), v) for k, v in snap.sat.items()], "at the SAT"))
    sat = sat_health(snap.sat)
    click.echo(f"check, the SAT's part: {sat.level.name} - {'; '.join(sat.problems) or 'all good'}")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """Run the provider and SAT simulators (see `reconciler sandbox --help`)."""
    from reconciler.sandbox.cli import sandbox as command

    command.main(args=ctx.args, prog_name="reconciler sandbox", standalone_mode=False)
