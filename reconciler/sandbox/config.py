"""The config file of a whole installation on loopback: one renderer for the demo, the tests and bench/.

Everything points at the simulator and a loopback IMAP server; secrets go in files beside the
config, never into it.  Callers change what their case needs (a faster schedule, a
``processed_folder``) through the per-table mappings, and add whole tables (``[metrics]``,
``[[issuers]]``) as ``extra`` TOML, written with :func:`table`.  This module writes the product's
documented keys as text; it imports nothing from the product (the daemon never imports the sandbox).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

# The provider's published testing account; the simulator accepts it.
TESTING_USER = "testing@solucionfactible.com"
TESTING_PASSWORD = "timbrado.SF.16672"  # noqa: S105 published by the provider for its testing service

TomlValue = str | int | float | bool | Path | Sequence[str | float]


class Mailbox(Protocol):
    """Where the loopback IMAP server listens and its one user (an ``ImapServer`` is one)."""

    host: str
    port: int
    user: str
    password: str


def toml_value(value: TomlValue) -> str:
    """One TOML value: strings and paths as basic strings (JSON escapes are TOML escapes), lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def table(name: str, keys: Mapping[str, TomlValue | None], *, array: bool = False) -> str:
    """One table (``[name]``, or ``[[name]]`` for an entry of an array of tables); ``None`` values are left out."""
    head = f"[[{name}]]" if array else f"[{name}]"
    lines = [head, *(f"{k} = {toml_value(v)}" for k, v in keys.items() if v is not None)]
    return "\n".join(lines) + "\n"


def render_config(
    *,
    ledger: Path,
    wsdl: str,
    imap: Mailbox,
    provider_password_file: Path,
    mailbox_password_file: Path,
    notify_email: str = "facturas@example.com",
    provider: Mapping[str, TomlValue | None] | None = None,
    mailbox: Mapping[str, TomlValue | None] | None = None,
    trust: Mapping[str, TomlValue | None] | None = None,
    schedule: Mapping[str, TomlValue | None] | None = None,
    extra: str = "",
    comment: str = "",
) -> str:
    """The TOML text; a key given as ``None`` in a mapping is left out (the product's default applies)."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    tables = [
        table("ledger", {"path": ledger}),
        table(
            "provider",
            {
                "wsdl": wsdl,
                "usuario": TESTING_USER,
                "password_file": provider_password_file,
                "notify_email": notify_email,
                **(provider or {}),
            },
        ),
        table(
            "mailbox",
            {
                "host": imap.host,
                "port": imap.port,
                "security": "none",
                "username": imap.user,
                "password_file": mailbox_password_file,
                **(mailbox or {}),
            },
        ),
        table(
            "mailbox.trust",
            {"allowed_senders": ["*@solucionfactible.com"], "confirm_with_status": True, **(trust or {})},
        ),
        table("schedule", dict(schedule or {})),
    ]
    return head + "\n".join(tables) + (f"\n{extra.strip()}\n" if extra.strip() else "")


def write_config(
    directory: Path,
    *,
    wsdl: str,
    imap: Mailbox,
    ledger: Path | None = None,
    provider_password: str = TESTING_PASSWORD,
    notify_email: str = "facturas@example.com",
    provider: Mapping[str, TomlValue | None] | None = None,
    mailbox: Mapping[str, TomlValue | None] | None = None,
    trust: Mapping[str, TomlValue | None] | None = None,
    schedule: Mapping[str, TomlValue | None] | None = None,
    extra: str = "",
    comment: str = "",
) -> Path:
    """Write ``directory/config.toml`` and the two password files (0600, in ``directory/secrets``, 0700).

    The options are those of :func:`render_config`; the ledger defaults to ``directory/state/ledger.sqlite3``.
    """
    secrets = directory / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, secret in (("provider", provider_password), ("mailbox", imap.password)):
        path = secrets / name
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(secret)
    config = directory / "config.toml"
    config.write_text(
        render_config(
            ledger=ledger or directory / "state" / "ledger.sqlite3",
            wsdl=wsdl,
            imap=imap,
            provider_password_file=secrets / "provider",
            mailbox_password_file=secrets / "mailbox",
            notify_email=notify_email,
            provider=provider,
            mailbox=mailbox,
            trust=trust,
            schedule=schedule,
            extra=extra,
            comment=comment,
        )
    )
    return config
