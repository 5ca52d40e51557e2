"""``reconciler config check``: every outside dependency tried once, each with a fix when it fails."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import click

from reconciler.cli.context import Context, run
from reconciler.cli.output import Report, output_options, render
from reconciler.errors import EnvironmentConfigError, ReconcilerError


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_checks(config: str | os.PathLike[str] | None) -> list[Check]:
    """Config, ledger, mailbox login, WSDL: in that order; a bad config stops the rest."""
    from reconciler.config import load_settings
    from reconciler.configfile import config_path

    path, _ = config_path(config)
    try:
        settings = load_settings(config)
        settings.require_provider()
        settings.require_mailbox()
    except EnvironmentConfigError as e:
        return [Check("config", False, str(e), f"correct or unset the environment variable {e.variable}")]
    except ReconcilerError as e:
        return [Check("config", False, str(e), f"edit the key named above in {path} (see config.example.toml)")]
    checks = [Check("config", True, f"{path}: valid")]
    signers = _signers(settings)
    checks.extend(_signing(signers))

    from reconciler.ledger.store import Ledger

    try:
        ledger = await Ledger.open(settings.ledger.path)
    except ReconcilerError as e:
        checks.append(Check("ledger", False, str(e), "check [ledger] path and that its directory is writable"))
        return checks
    try:
        counts = await ledger.counts()
        checks.append(Check("ledger", True, f"{settings.ledger.path}: {sum(counts.values())} jobs"))
        checks.append(await _mailbox(settings, ledger))
    finally:
        await ledger.close()
    checks.append(await _provider(settings, signers))
    if settings.metrics.listen:
        checks.append(_metrics(settings.metrics.listen, settings.ledger.path))
    return checks


def _metrics(listen: str, ledger: Any) -> Check:
    from reconciler.daemon.listen import probe
    from reconciler.ledger import lock

    ok, detail = probe(listen, lock.holder(ledger) is not None)
    return Check("metrics", ok, detail, "" if ok else "set [metrics] listen to a free host:port of this machine")


async def _mailbox(settings: Any, ledger: Any) -> Check:
    from reconciler.mailbox.watcher import Watcher

    mb = settings.mailbox
    watcher = Watcher(settings, ledger, record_logins=False)
    try:
        await watcher.connect()
    except ReconcilerError as e:
        return Check(
            "mailbox",
            False,
            str(e),
            "check [mailbox] host, port, security and ca_file, then username and the password or token",
        )
    finally:
        await watcher.close()
    return Check("mailbox", True, f"logged in to {mb.host}:{mb.effective_port} as {mb.username}, folder {mb.folder}")


async def _provider(settings: Any, signers: Any = None) -> Check:
    from reconciler.provider.soap import ProviderClient

    try:
        client = await ProviderClient.create(settings, signers)
    except ReconcilerError as e:
        return Check(
            "provider",
            False,
            str(e),
            "check [provider] wsdl (URL or file), port, and endpoint if the port's address is empty",
        )
    await client.aclose()
    where = settings.provider.endpoint or "the WSDL's address"
    return Check("provider", True, f"WSDL {settings.provider.wsdl} loaded; port {settings.provider.port} at {where}")


def _signers(settings: Any) -> Any:
    """The local issuers' CSDs, loaded and checked once for both the csd checks and the provider check."""
    if not any(issuer.signing == "local" for issuer in settings.issuers):
        return None
    from reconciler.clock import utc_now
    from reconciler.provider.local import Signers

    return Signers.load(settings, utc_now(), log=False)


def _signing(signers: Any) -> list[Check]:
    """One check per ``signing = "local"`` issuer: its CSD read, checked, and one request signed and verified."""
    if signers is None:
        return []
    checks = [
        Check(f"csd {rfc}", True, f"signs locally with CSD {c.number}, valid until {c.not_after:%Y-%m-%d}")
        for rfc, c in signers.ready.items()
    ]
    fix = "give the issuer the SAT's CSD (.cer, encrypted .key, csd_password), not the FIEL, or fix what the line says"
    checks.extend(Check(f"csd {rfc}", False, why, fix) for rfc, why in signers.failed.items())
    return checks


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@output_options
@click.pass_obj
def config_check(ctx: Context, as_json: bool) -> int:
    """Validate the config, open the ledger, log in to the mailbox, load the WSDL; one line each."""
    from reconciler.redact import one_line

    checks = run(run_checks(ctx.config))
    lines = [
        f"{'ok  ' if c.ok else 'FAIL'} {c.name:<8} {one_line(c.detail)}" + (f" -> fix: {c.fix}" if c.fix else "")
        for c in checks
    ]
    render(Report([c.as_dict() for c in checks], lines), as_json)
    return 0 if all(c.ok for c in checks) else 2
