"""Operator controls: brakes and a way back for irreversible work.

``hold``/``release`` single jobs, ``pause``/``unpause`` every submission, ``requeue`` failed jobs
after fixing the cause, ``forget`` a queued job never sent.  Each is an event in the ledger naming
the OS user and the command line; the daemon picks the change up at its next submit pass.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.output import output_options
from reconciler.errors import ValidationError

if TYPE_CHECKING:
    from reconciler.cli.context import Context
    from reconciler.ledger.controls import Outcome
    from reconciler.ledger.store import Ledger

json_option = output_options


def actor() -> dict[str, str]:
    """Who did it: the OS user (and the sudo caller), and the command line (cut at 300 characters)."""
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        user = f"uid {os.geteuid()}"
    sudo = os.environ.get("SUDO_USER")
    if sudo and sudo != user:
        user = f"{user} (sudo by {sudo})"
    command = " ".join(["reconciler", *sys.argv[1:]])
    return {"user": user, "command": command if len(command) <= 300 else command[:297] + "..."}


def _uuids(values: tuple[str, ...]) -> list[str]:
    from reconciler.jobs.validation import parse_uuid

    return list(dict.fromkeys(parse_uuid(v) for v in values))


def _ledger(ctx: Context, fn: Any) -> Any:
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger

    return _run(_with_ledger(ctx, fn, write=True))


def _report(outcomes: list[Outcome], as_json: bool) -> None:
    from reconciler.cli.output import emit_json as _emit_json

    if as_json:
        _emit_json([o.as_dict() for o in outcomes])
        return
    for o in outcomes:
        click.echo(f"{o.uuid}: {o.note}")


@click.command()
@click.argument("uuids", nargs=-1, required=True, metavar="UUID...")
@json_option
@click.pass_obj
def hold(ctx: Context, uuids: tuple[str, ...], as_json: bool) -> int:
    """Hold jobs: the daemon never sends a held job until `reconciler release`."""
    from reconciler.clock import utc_now
    from reconciler.ledger import controls

    keys = _uuids(uuids)
    who = actor()

    async def go(ledger: Ledger) -> list[Outcome]:
        return await controls.hold(ledger, keys, who, utc_now())

    outcomes: list[Outcome] = _ledger(ctx, go)
    _report(outcomes, as_json)
    return 1 if any(not o.changed and o.note != "already held" for o in outcomes) else 0


@click.command()
@click.argument("uuids", nargs=-1, required=True, metavar="UUID...")
@json_option
@click.pass_obj
def release(ctx: Context, uuids: tuple[str, ...], as_json: bool) -> None:
    """Release held jobs: the daemon sends them at its next pass."""
    from reconciler.clock import utc_now
    from reconciler.ledger import controls

    keys = _uuids(uuids)
    who = actor()

    async def go(ledger: Ledger) -> list[Outcome]:
        return await controls.release(ledger, keys, who, utc_now())

    _report(_ledger(ctx, go), as_json)


@click.command()
@json_option
@click.pass_obj
def held(ctx: Context, as_json: bool) -> None:
    """List the held jobs, when and by whom."""
    from reconciler.cli.context import run as _run
    from reconciler.cli.context import with_ledger as _with_ledger
    from reconciler.cli.output import Report, Table, render
    from reconciler.ledger import controls

    holds: dict[str, dict[str, str]] = _run(_with_ledger(ctx, controls.held))
    rows = [(u, v["at"], v["by"]) for u, v in holds.items()]
    render(Report([{"uuid": u, **v} for u, v in holds.items()], [Table(("uuid", "held at", "by"), rows)]), as_json)


@click.command()
@click.option("--reason", default=None, help="Why, recorded with the pause and shown by check and summary.")
@click.pass_obj
def pause(ctx: Context, reason: str | None) -> None:
    """Stop all submissions (the mailbox keeps being read) until `reconciler unpause`."""
    from reconciler.clock import utc_now
    from reconciler.ledger import controls

    who = actor()

    async def go(ledger: Ledger) -> bool:
        return await controls.pause(ledger, who, reason, utc_now())

    if _ledger(ctx, go):
        click.echo("submissions paused: the daemon sends nothing from its next pass; `reconciler unpause` resumes")
    else:
        click.echo("submissions were already paused; nothing changed")


@click.command()
@click.pass_obj
def unpause(ctx: Context) -> None:
    """Let the daemon send again after `reconciler pause`."""
    from reconciler.clock import utc_now
    from reconciler.ledger import controls

    who = actor()

    async def go(ledger: Ledger) -> bool:
        return await controls.unpause(ledger, who, utc_now())

    if _ledger(ctx, go):
        click.echo("submissions unpaused: the daemon sends again at its next pass")
    else:
        click.echo("submissions were not paused; nothing changed")


@click.command()
@click.argument("uuids", nargs=-1, metavar="[UUID...]")
@click.option(
    "--state", type=click.Choice(["error", "rejected"], case_sensitive=False), help="Every job in this state."
)
@click.option("--rfc", default=None, help="With --state: only this issuer's jobs.")
@json_option
@click.pass_obj
def requeue(ctx: Context, uuids: tuple[str, ...], state: str | None, rfc: str | None, as_json: bool) -> None:
    """Send error or rejected jobs again after fixing the cause (a CSD, say); all or nothing."""
    from reconciler.cli.output import emit_json as _emit_json
    from reconciler.clock import utc_now
    from reconciler.jobs.states import State
    from reconciler.jobs.validation import parse_rfc
    from reconciler.ledger import controls

    if bool(uuids) == bool(state):
        raise ValidationError("requeue: give UUIDs or --state error|rejected, not both nor neither")
    if rfc is not None and not state:
        raise ValidationError("requeue: --rfc goes with --state")
    keys = _uuids(uuids)
    issuer = parse_rfc(rfc) if rfc is not None else None
    who = actor()

    async def go(ledger: Ledger) -> list[str]:
        chosen = keys or await controls.requeueable(ledger, State(state.lower()) if state else State.ERROR, issuer)
        if chosen:
            await controls.requeue(ledger, chosen, who, utc_now())
        return chosen

    done: list[str] = _ledger(ctx, go)
    if as_json:
        _emit_json({"requeued": done})
    else:
        click.echo(f"requeued {len(done)} job{'s' if len(done) != 1 else ''}: the daemon sends them at its next pass")


@click.command()
@click.argument("uuids", nargs=-1, required=True, metavar="UUID...")
@click.pass_obj
def forget(ctx: Context, uuids: tuple[str, ...]) -> None:
    """Delete queued jobs that were never sent (any other state is refused); all or nothing."""
    from reconciler.clock import utc_now
    from reconciler.ledger import controls

    keys = _uuids(uuids)
    who = actor()

    async def go(ledger: Ledger) -> int:
        return await controls.forget(ledger, keys, who, utc_now())

    n = _ledger(ctx, go)
    click.echo(f"forgot {n} queued job{'s' if n != 1 else ''} (their events stay in the ledger)")


COMMANDS = (hold, release, held, pause, unpause, requeue, forget)
