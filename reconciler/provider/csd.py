"""An issuer's CSD (the SAT's certificate, its private key and the key's password), read once.

Which files and password belong to an issuer is the configuration's business
(:meth:`reconciler.config.IssuerSettings.csd_files`, the one check that the certificate and
the key are set together, and :meth:`reconciler.config.Settings.csd_password`); this module
reads them, bounded in size, into memory.  The key and its password stay in memory only; a
read failure names the key and the file, never their content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.config import IssuerSettings, Settings
from reconciler.configfile import CSD_LIMIT, read_capped
from reconciler.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Csd:
    """One issuer's CSD as bytes; ``repr`` shows neither the key nor the password."""

    cer: bytes
    key: bytes = field(repr=False)
    password: str = field(repr=False)


def load(settings: Settings, issuer: IssuerSettings) -> Csd | None:
    """The issuer's CSD, or None when it has none; ConfigError in one line naming the key."""
    pair = issuer.csd_files()
    if pair is None:
        return None
    files: dict[str, bytes] = {}
    for key, path in zip(("csd_cer", "csd_key"), pair, strict=True):
        try:
            files[key] = read_capped(path, CSD_LIMIT, f"issuers[{issuer.rfc}].{key}: {path}")
        except OSError as e:
            raise ConfigError(f"issuers[{issuer.rfc}].{key}: cannot read {path}: {e.strerror}") from e
    password = settings.csd_password(issuer)
    return Csd(files["csd_cer"], files["csd_key"], password.get_secret_value() if password else "")


def load_all(settings: Settings) -> dict[str, Csd]:
    """Every configured issuer's CSD, by RFC."""
    found = {issuer.rfc: load(settings, issuer) for issuer in settings.issuers}
    return {rfc: csd for rfc, csd in found.items() if csd is not None}
