"""``reconciler events``, ``deliveries`` and ``redeliver``: the outbox feed and its delivery state."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import click

from reconciler.cli.context import Context, run, with_ledger
from reconciler.cli.output import Report, Table, emit_json, output_options, render, stdout
from reconciler.errors import ValidationError
from reconciler.redact import one_line

if TYPE_CHECKING:
    from reconciler.events.outbox import OutboxEvent
    from reconciler.ledger.store import Ledger

FOLLOW_POLL_S = 0.5


def _row(e: OutboxEvent) -> tuple[object, ...]:
    p = e.payload
    change = f"{p.get('old_state') or ''} -> {p.get('new_state') or ''}" if e.type != "job.sat" else ""
    return (e.seq, e.at, e.type, e.uuid, change, p.get("code"), p.get("message"))


async def _resolve(ledger: Ledger, ref: str | None) -> int:
    from reconciler.events.store import OutboxStore

    if ref is None:
        return 0
    seq = await OutboxStore(ledger).seq_of(ref)
    if seq is None:
        raise ValidationError(f"--since: no event {ref!r} in the outbox (give a seq number or an evt_ id)")
    return seq


@click.command()
@click.option("--since", "since", metavar="SEQ|ID", help="Only events after this one (a seq number or an evt_ id).")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only this type (repeatable; job.* matches all).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they are committed.")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="At most this many events (0: all).")
@output_options
@click.pass_obj
def events(ctx: Context, since: str | None, types: tuple[str, ...], follow: bool, limit: int, as_json: bool) -> None:
    """The outbox in order: every state change, SAT observation and conflict (JSON lines with --json)."""
    from reconciler.config import _event_filters

    try:
        _event_filters(list(types))
    except ValueError as e:
        raise ValidationError(f"--type: {e}") from None

    async def go(ledger: Ledger) -> None:
        from reconciler.events.store import OutboxStore

        store = OutboxStore(ledger)
        after = await _resolve(ledger, since)
        shown = 0
        rows: list[tuple[object, ...]] = []
        out = stdout()
        while not limit or shown < limit:
            batch, after = await store.read(after=after, types=types, limit=min(1000, limit - shown) if limit else 1000)
            shown += len(batch)
            for e in batch:
                if as_json:
                    emit_json(e.as_dict())
                elif follow:  # a table cannot stream: one tab-separated line per event
                    out.write("\t".join("" if v is None else one_line(str(v)) for v in _row(e)) + "\n")
                else:
                    rows.append(_row(e))
            if follow:
                out.flush()
            if not batch:
                if not follow:
                    break
                await asyncio.sleep(FOLLOW_POLL_S)
        if rows:
            render(Report(None, [Table(("seq", "at", "type", "uuid", "state", "code", "message"), rows)]), False)
        elif not as_json and not follow and not shown:
            click.echo("no events", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        run(with_ledger(ctx, go))


@click.command()
@click.option("--failed", is_flag=True, help="List the deliveries that failed (for good or so far) instead.")
@output_options
@click.pass_obj
def deliveries(ctx: Context, failed: bool, as_json: bool) -> None:
    """Per-endpoint delivery state of the outbox (webhooks and hooks)."""

    async def go(ledger: Ledger) -> object:
        from reconciler.events.store import OutboxStore

        store = OutboxStore(ledger)
        return await (store.failed() if failed else store.stats())

    found = run(with_ledger(ctx, go))
    if failed:
        items = list(found)  # type: ignore[call-overload]
        data = [
            {
                "endpoint": f.endpoint,
                "seq": f.event.seq,
                "id": f.event.id,
                "type": f.event.type,
                "uuid": f.event.uuid,
                "state": f.state,
                "attempts": f.attempts,
                "last_status": f.last_status,
                "last_error": f.last_error,
                "updated_at": f.updated_at,
            }
            for f in items
        ]
        columns = ("endpoint", "seq", "type", "uuid", "state", "attempts", "last error")
        rows = [
            (d["endpoint"], d["seq"], d["type"], d["uuid"], d["state"], d["attempts"], d["last_error"]) for d in data
        ]
        render(Report(data, [Table(columns, rows)]), as_json)
        return
    stats = list(found)  # type: ignore[call-overload]
    if not stats and not as_json:
        click.echo("no webhook or hook has run against this ledger yet", err=True)
        return
    columns = ("endpoint", "pending", "delivered", "failed", "last success", "disabled", "last error")
    rows = [
        (s.name, s.pending, s.delivered, s.failed, s.last_success_at, s.disabled_reason or "", s.last_error)
        for s in stats
    ]
    render(Report([s.as_dict() for s in stats], [Table(columns, rows)]), as_json)


@click.command()
@click.argument("refs", nargs=-1, metavar="SEQ|ID...")
@click.option("--since", metavar="SEQ|ID", help="Every event after this one.")
@click.option("--enable", "enable", metavar="ENDPOINT", help="Also re-enable an endpoint a 410 disabled.")
@click.pass_obj
def redeliver(ctx: Context, refs: tuple[str, ...], since: str | None, enable: str | None) -> None:
    """Queue events again for every endpoint that already took them (same webhook-id: receivers dedupe)."""
    if bool(refs) == (since is not None) and enable is None:
        raise ValidationError("redeliver: give event ids/seqs or --since, not both and not neither")

    async def go(ledger: Ledger) -> tuple[int, int, bool]:
        from reconciler.clock import utc_now
        from reconciler.events.store import OutboxStore

        store = OutboxStore(ledger)
        seqs: list[int] = []
        for ref in refs:
            seq = await store.seq_of(ref)
            if seq is None or not await store.exists(seq):
                raise ValidationError(f"redeliver: no event {ref!r} in the outbox")
            seqs.append(seq)
        if since is not None:
            start = await _resolve(ledger, since)
            seqs.extend(range(start + 1, await store.last_seq() + 1))
        enabled = await store.enable(enable) if enable is not None else False
        return await store.redeliver(seqs, utc_now()), len(seqs), enabled

    queued, events_n, enabled = run(with_ledger(ctx, go, write=True))
    if enable is not None:
        click.echo(f"endpoint {enable}: {'enabled again' if enabled else 'was not disabled'}")
    if events_n:
        click.echo(f"{queued} deliveries of {events_n} events queued again")
