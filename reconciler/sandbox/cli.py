"""``reconciler sandbox``: run the simulator until interrupted; the first stdout line is the WSDL URL."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from reconciler.sandbox.acuses import SHAPES, AcuseControl
from reconciler.sandbox.notify import ImapConfig
from reconciler.sandbox.server import FAULT_KINDS, Sandbox, SandboxConfig
from reconciler.sandbox.service import Credentials

logger = logging.getLogger(__name__)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0), help="Delay before each answer."
)
@click.option("--jitter-ms", default=0.0, show_default=True, type=click.FloatRange(0), help="Extra random delay, 0..N.")
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of SOAP calls that fail.",
)
@click.option(
    "--faults",
    default=",".join(FAULT_KINDS),
    show_default=True,
    help="Comma-separated kinds of injected fault: " + ", ".join(FAULT_KINDS) + ".",
)
@click.option(
    "--slow-reply-s", default=60.0, show_default=True, type=click.FloatRange(0), help="Delay of a 'slow' fault."
)
@click.option("--seed", default=None, type=int, help="Seed for latency jitter and fault injection.")
@click.option(
    "--notify-delay-s",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Time from acceptance to the SAT's answer and the email.",
)
@click.option(
    "--sender", default="notificaciones@solucionfactible.com", show_default=True, help="From address of notifications."
)
@click.option(
    "--maildir", type=click.Path(file_okay=False, path_type=Path), help="Deliver notifications into this Maildir."
)
@click.option("--imap-host", help="Deliver notifications by IMAP APPEND to this server.")
@click.option("--imap-port", type=click.IntRange(1, 65535), help="Default 143, or 993 with --imap-security tls.")
@click.option("--imap-user")
@click.option("--imap-password", envvar="SANDBOX_IMAP_PASSWORD", help="Or $SANDBOX_IMAP_PASSWORD.")
@click.option("--imap-folder", default="INBOX", show_default=True)
@click.option("--imap-security", type=click.Choice(["none", "tls", "starttls"]), default="none", show_default=True)
@click.option("--imap-ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--usuario", default="testing@solucionfactible.com", show_default=True, help="Accepted user name.")
@click.option(
    "--password",
    envvar="SANDBOX_PASSWORD",
    default="timbrado.SF.16672",
    help="Accepted password (or $SANDBOX_PASSWORD); default: the provider's public testing one.",
)
@click.option("--production-user", "production_users", multiple=True, help="A user answered 633 (repeatable).")
@click.option(
    "--acuse-style",
    type=click.Choice(["base64", "text"]),
    default="base64",
    show_default=True,
    help="acuseSat base64Binary, or acuseSAT text.",
)
@click.option(
    "--acuse-shape",
    type=click.Choice(SHAPES),
    default="real",
    show_default=True,
    help="Shape of every finished status call's acuse (see reconciler/sandbox/acuses.py).",
)
@click.option("--acuse-estatus", default=201, show_default=True, type=click.IntRange(0, 9999), help="Its EstatusUUID.")
@click.option("--acuse-in-mensaje", is_flag=True, help="Send the acuse in mensaje instead of acuseSat/acuseSAT.")
@click.option(
    "--sat-receiver-s", default=3600.0, show_default=True, type=click.FloatRange(0), help="SAT: receiver's delay."
)
@click.option(
    "--sat-window-s", default=259200.0, show_default=True, type=click.FloatRange(0), help="SAT: acceptance window."
)
@click.option(
    "--sat-lag-s", default=1800.0, show_default=True, type=click.FloatRange(0), help="SAT: No Encontrado lag."
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def sandbox(**opts: Any) -> None:
    """Run an offline simulator of Solución Factible's Cancelacion service and the SAT's status service on loopback.

    Prints the provider's WSDL URL, then the SAT's service URL, one a line.
    """
    logging.basicConfig(
        level=logging.DEBUG if opts["verbose"] else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    imap = None
    if opts["imap_host"]:
        if not opts["imap_user"]:
            raise click.BadParameter("required with --imap-host", param_hint="--imap-user")
        port = opts["imap_port"] or (993 if opts["imap_security"] == "tls" else 143)
        imap = ImapConfig(
            host=opts["imap_host"],
            port=port,
            user=opts["imap_user"],
            password=opts["imap_password"] or "",
            folder=opts["imap_folder"],
            security=opts["imap_security"],
            ca_file=opts["imap_ca_file"],
        )
    kinds = tuple(k.strip() for k in opts["faults"].split(",") if k.strip())
    try:
        config = SandboxConfig(
            host=opts["host"],
            port=opts["port"],
            credentials=Credentials(opts["usuario"], opts["password"], tuple(opts["production_users"])),
            latency_ms=opts["latency_ms"],
            latency_jitter_ms=opts["jitter_ms"],
            fault_rate=opts["fault_rate"],
            fault_kinds=kinds,
            slow_reply_s=opts["slow_reply_s"],
            seed=opts["seed"],
            notify_delay_s=opts["notify_delay_s"],
            sender=opts["sender"],
            maildir=opts["maildir"],
            imap=imap,
            acuse_style=opts["acuse_style"],
            acuse=AcuseControl(opts["acuse_shape"], opts["acuse_estatus"], in_mensaje=opts["acuse_in_mensaje"]),
            sat_receiver_s=opts["sat_receiver_s"],
            sat_window_s=opts["sat_window_s"],
            sat_lag_s=opts["sat_lag_s"],
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    # Handler threads sleep (latency) then need the GIL: a shorter switch interval keeps the injected
    # latency close to what was asked when many requests are in flight.
    sys.setswitchinterval(0.0005)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        sb = Sandbox(config).start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {opts['host']}:{opts['port']}: {e.strerror}") from e
    click.echo(sb.wsdl_url)
    click.echo(sb.sat_url)  # the SAT's status service ([sat] url)
    sys.stdout.flush()
    where = (
        f"IMAP {imap.host}:{imap.port}/{imap.folder}"
        if imap
        else (f"Maildir {config.maildir}" if config.maildir else "nowhere")
    )
    click.echo(f"endpoint: {sb.endpoint()}  record: {sb.url}/_sandbox/record  notifications: {where}", err=True)
    try:
        done.wait()
    finally:
        sb.stop()
        click.echo(f"sandbox stopped after {len(sb.record.entries())} requests", err=True)
