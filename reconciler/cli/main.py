"""The ``reconciler`` command line: the group, where each command is registered, and the exit codes.

Exit codes: 0 success; 1 a runtime failure (job not found, ledger unusable,
server unreachable); 2 bad input or configuration; ``check`` uses the Nagios
codes 0-3.  Read commands import neither zeep, imapclient nor apscheduler.

The commands live in modules beside this one (one per concern); a new command
goes in its own module and is registered below with one ``cli.add_command`` line.
Output formats live in :mod:`reconciler.cli.output`.
"""

from __future__ import annotations

import sys

import click

from reconciler import __version__
from reconciler.cli import (
    backup,
    configinfo,
    daemon,
    events,
    files,
    listing,
    operator,
    preflight,
    queue,
    reports,
    sandbox,
)
from reconciler.cli.context import Context
from reconciler.cli.output import silence_stdout
from reconciler.errors import ConfigError, ReconcilerError, ValidationError


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


# -- the commands (`--help` lists them sorted by name) --------------------------------
cli.add_command(queue.submit)
cli.add_command(files.import_)
cli.add_command(listing.status)
cli.add_command(reports.summary)
cli.add_command(reports.check)
cli.add_command(files.acuse)
cli.add_command(files.export)
cli.add_command(daemon.run)
cli.add_command(daemon.migrate)
cli.add_command(daemon.resume)
cli.add_command(sandbox.demo)
cli.add_command(sandbox.sandbox)
cli.add_command(preflight.config_group)
cli.add_command(operator.hold)
cli.add_command(operator.release)
cli.add_command(operator.held)
cli.add_command(operator.pause)
cli.add_command(operator.unpause)
cli.add_command(operator.requeue)
cli.add_command(operator.forget)
cli.add_command(events.events)
cli.add_command(events.deliveries)
cli.add_command(events.redeliver)
cli.add_command(backup.backup)
preflight.config_group.add_command(configinfo.config_example)
preflight.config_group.add_command(configinfo.config_unit)
preflight.config_group.add_command(configinfo.config_show)


def _one_line(error: BaseException) -> str:
    """Errors are one line even when a user-given name carries a newline or a control character."""
    from reconciler.redact import one_line

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
