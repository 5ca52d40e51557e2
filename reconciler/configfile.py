"""Locating and reading the config file, without pydantic.

The read commands (``status``, ``summary``, ``check``...) need only
``[ledger] path`` and must start in well under a second, so they use
:func:`ledger_path` here instead of importing pydantic-settings.  The
precedence is the same as :func:`reconciler.config.load_settings`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

from reconciler.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/reconciler/config.toml")
DEFAULT_LEDGER = Path("/var/lib/reconciler/ledger.sqlite3")
ENV_PREFIX = "RECONCILER_"
# Every dotted key and section of the settings model, for the read commands' check of
# RECONCILER_* variables without importing pydantic (tests/test_config.py holds it equal to
# configsources.known_keys(Settings), so a new setting cannot be forgotten here).
KNOWN_KEYS = frozenset(
    {
        "display",
        "display.timezone",
        "events",
        "events.poll_interval_s",
        "events.retention_days",
        "hooks",
        "issuers",
        "ledger",
        "ledger.busy_timeout_s",
        "ledger.path",
        "mailbox",
        "mailbox.auth",
        "mailbox.batch_size",
        "mailbox.ca_file",
        "mailbox.folder",
        "mailbox.host",
        "mailbox.idle",
        "mailbox.login_retry_max_s",
        "mailbox.oauth2_token_command",
        "mailbox.oauth2_token_file",
        "mailbox.password",
        "mailbox.password_file",
        "mailbox.poll_interval_s",
        "mailbox.port",
        "mailbox.processed_folder",
        "mailbox.security",
        "mailbox.timeout_s",
        "mailbox.trust",
        "mailbox.trust.allowed_senders",
        "mailbox.trust.authserv_id",
        "mailbox.trust.confirm_with_status",
        "mailbox.trust.verify_dkim",
        "mailbox.username",
        "metrics",
        "metrics.listen",
        "provider",
        "provider.endpoint",
        "provider.max_concurrency",
        "provider.max_reply_bytes",
        "provider.notify_email",
        "provider.password",
        "provider.password_file",
        "provider.port",
        "provider.timeout_s",
        "provider.usuario",
        "provider.wsdl",
        "sat",
        "sat.daily_s",
        "sat.early_s",
        "sat.enabled",
        "sat.horizon_s",
        "sat.interval_s",
        "sat.margin_interval_s",
        "sat.margin_s",
        "sat.max_calls",
        "sat.max_rps",
        "sat.not_found_retry_s",
        "sat.not_found_submit_after_s",
        "sat.preflight",
        "sat.retry_base_s",
        "sat.retry_max_s",
        "sat.timeout_s",
        "sat.url",
        "sat.window_interval_s",
        "sat.window_s",
        "schedule",
        "schedule.chase_interval_s",
        "schedule.delivery_horizon_s",
        "schedule.retry_base_s",
        "schedule.retry_max_s",
        "schedule.stale_after_s",
        "schedule.status_check_after_s",
        "schedule.submit_interval_s",
        "webhooks",
    }
)
# Caps on the files settings name (see read_capped): far above any real one, far below harm.
CONFIG_LIMIT = 1 << 20  # the config file
SECRET_LIMIT = 64 << 10  # a password or token file, a systemd credential
CSD_LIMIT = 1 << 20  # an issuer's CSD certificate or key (a few KiB in practice)


def config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for explicitly (then it must exist)."""
    if explicit:
        return Path(explicit), True
    env = os.environ.get("RECONCILER_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG, False


def read_capped(path: Path, limit: int, name: str) -> bytes:
    """The bytes of ``path``, read up to ``limit``: a file past it is a ConfigError naming ``name``.

    Every file reconciler reads because a setting names it (the config, secrets, tokens,
    CSD files, a WSDL file) goes through here, so ``/dev/zero`` or a runaway file costs at
    most ``limit`` bytes, never memory without end.  OSError is left to the caller, which
    knows the key to name.
    """
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{name}: larger than {describe_size(limit)}; not read")
    return data


def describe_size(n: int) -> str:
    """``1048576`` -> ``1 MiB (1048576 bytes)``: the exact limit, and what it is in round units."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit} ({n} bytes)"
    return f"{n} bytes"


def read_toml(path: Path, required: bool) -> dict[str, Any]:
    """The parsed TOML file; ``{}`` when the implicit default file is absent."""
    try:
        data = read_capped(path, CONFIG_LIMIT, f"config file {path}")
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError as e:
        if required:
            raise ConfigError(f"config file {path}: not found") from e
        return {}
    except PermissionError as e:
        raise ConfigError(f"config file {path}: permission denied") from e
    except IsADirectoryError as e:
        raise ConfigError(f"config file {path}: is a directory") from e
    except OSError as e:  # a name too long, a loop of symlinks, an I/O error
        raise ConfigError(f"config file {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: invalid TOML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: not UTF-8 text") from e
    except RecursionError as e:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"config file {path}: invalid TOML: arrays or tables nested too deeply") from e


def env_name(dotted: str) -> str:
    """``mailbox.trust.verify_dkim`` -> ``RECONCILER_MAILBOX__TRUST__VERIFY_DKIM``."""
    return ENV_PREFIX + dotted.replace(".", "__").upper()


def env_value(dotted: str) -> str | None:
    """The environment override of a dotted key (``ledger.path`` -> ``RECONCILER_LEDGER__PATH``)."""
    wanted = env_name(dotted)
    for name, value in os.environ.items():
        if name.upper() == wanted:
            return value
    return None


def unknown_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a ``RECONCILER_*`` variable that names no setting (a typo would read the wrong ledger)."""
    from reconciler.errors import EnvironmentConfigError

    env = os.environ if environ is None else environ
    wanted = {env_name(k) for k in KNOWN_KEYS} | {ENV_PREFIX + "CONFIG"}
    for name in sorted(env):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in wanted:
            raise EnvironmentConfigError(f"{name}: unknown environment variable (no such setting)", name)


def ledger_path(explicit_config: str | os.PathLike[str] | None = None) -> Path:
    """``[ledger] path`` alone: environment, then the TOML file, then the default."""
    unknown_environment()
    path, required = config_path(explicit_config)
    data = read_toml(path, required)
    env = env_value("ledger.path")
    if env is not None:
        if not env.strip():
            raise ConfigError(
                "ledger.path: must not be empty; the value comes from the environment variable RECONCILER_LEDGER__PATH"
            )
        return Path(env)
    section = data.get("ledger", {})
    if not isinstance(section, dict):
        raise ConfigError("ledger: must be a table ([ledger])")
    value = section.get("path", str(DEFAULT_LEDGER))
    if not isinstance(value, str) or not value:
        raise ConfigError(f"ledger.path: must be a non-empty string, got {value!r}")
    return Path(value)


def zone(name: str, key: str = "--tz") -> ZoneInfo:
    """A time zone by its IANA name (``America/Mexico_City``); ConfigError naming ``key`` otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: a name too long for a file (tzdata)
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise ConfigError(f"{key}: unknown time zone {shown!r} (an IANA name such as America/Mexico_City)") from e


def display_zone(explicit_config: str | os.PathLike[str] | None, flag: str | None) -> ZoneInfo:
    """``--tz``, else ``[display] timezone`` (environment, then the TOML file), else UTC."""
    if flag:
        return zone(flag)
    name = env_value("display.timezone")
    if not name:
        path, required = config_path(explicit_config)
        section = read_toml(path, required).get("display", {})
        name = section.get("timezone") if isinstance(section, dict) else None
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"display.timezone: must be a string, got {name!r}")
    return zone(name or "UTC", "display.timezone")
