"""Settings: one pydantic-settings object over a TOML file plus environment.

Precedence, highest first: environment variables ``RECONCILER_<SECTION>__<KEY>``,
then the TOML file (``--config``, else ``$RECONCILER_CONFIG``, else
``/etc/reconciler/config.toml``), then the defaults below.  Secrets are
``SecretStr`` and can come from the key itself, from a ``*_file`` key, or from a
systemd credential in ``$CREDENTIALS_DIRECTORY``.

Read commands only need ``[ledger] path`` and must start fast, so
:func:`reconciler.configfile.ledger_path` resolves that one key with
``tomllib`` alone; everything else goes through :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.configfile import DEFAULT_LEDGER, ENV_PREFIX, SECRET_LIMIT, config_path, read_capped, read_toml
from reconciler.errors import ConfigError

PRODUCTION_WSDL = "https://solucionfactible.com/ws/services/Cancelacion?wsdl"
DAY = 86400.0  # seconds: the upper bound of most intervals (bounds keep inf and 2**63 out)
MIB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """``key = ""`` in TOML (or an empty env var) means "not set" for optional keys."""
        if isinstance(data, dict):
            return {
                k: None if v == "" and k in cls.model_fields and cls.model_fields[k].default is None else v
                for k, v in data.items()
            }
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``true`` is not a number (pydantic would read it as 1)."""
        if isinstance(v, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise ValueError("must be a number, not true or false")
        return v


class LedgerSettings(_Section):
    path: Path = DEFAULT_LEDGER
    # How long one write waits inside SQLite for another process's lock before the daemon logs
    # that it is waiting (it then keeps retrying: contention is never fatal).
    busy_timeout_s: float = Field(default=30.0, ge=0.05, le=3600.0)


class ProviderSettings(_Section):
    wsdl: str = PRODUCTION_WSDL
    port: str = "CancelacionHttpsSoap11Endpoint"
    endpoint: str | None = None
    usuario: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    notify_email: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    max_reply_bytes: int = Field(default=2 * MIB, ge=64 * 1024, le=256 * MIB)

    @field_validator("notify_email")
    @classmethod
    def _email_shape(cls, v: str | None) -> str | None:
        if v is not None and ("@" not in v or v.startswith("@") or v.endswith("@") or " " in v):
            raise ValueError(f"not an email address: {v!r}")
        return v


class IssuerSettings(_Section):
    rfc: str
    csd_cer: Path | None = None
    csd_key: Path | None = None
    csd_password: SecretStr | None = None
    csd_password_file: Path | None = None

    @field_validator("rfc")
    @classmethod
    def _rfc(cls, v: str) -> str:
        from reconciler.errors import ValidationError
        from reconciler.jobs.validation import parse_rfc

        try:
            return parse_rfc(v)
        except ValidationError as e:
            raise ValueError(str(e)) from e

    def csd_files(self) -> tuple[Path, Path] | None:
        """The CSD's certificate and key files, None when neither is set.

        The one check that they go together: only one of them is a ConfigError naming the issuer.
        """
        if self.csd_cer is None and self.csd_key is None:
            return None
        if self.csd_cer is None or self.csd_key is None:
            raise ConfigError(f"issuers[{self.rfc}]: csd_cer and csd_key go together; set both or neither")
        return self.csd_cer, self.csd_key


class TrustSettings(_Section):
    allowed_senders: list[str] = ["*@solucionfactible.com"]
    authserv_id: str | None = None
    verify_dkim: bool = False
    confirm_with_status: bool = True


class MailboxSettings(_Section):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Path | None = None
    username: str | None = None
    auth: Literal["password", "xoauth2"] = "password"
    password: SecretStr | None = None
    password_file: Path | None = None
    oauth2_token_file: Path | None = None
    oauth2_token_command: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    idle: bool = True
    poll_interval_s: float = Field(default=60.0, gt=0, le=DAY, allow_inf_nan=False)
    batch_size: int = Field(default=500, ge=1, le=5000)
    timeout_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    trust: TrustSettings = TrustSettings()

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security == "tls" else 143


class ScheduleSettings(_Section):
    retry_base_s: float = Field(default=30.0, gt=0, le=DAY, allow_inf_nan=False)
    retry_max_s: float = Field(default=3600.0, gt=0, le=7 * DAY, allow_inf_nan=False)
    status_check_after_s: float = Field(default=1800.0, gt=0, le=30 * DAY, allow_inf_nan=False)
    stale_after_s: float = Field(default=259200.0, gt=0, le=365 * DAY, allow_inf_nan=False)
    submit_interval_s: float = Field(default=5.0, gt=0, le=DAY, allow_inf_nan=False)
    chase_interval_s: float = Field(default=60.0, gt=0, le=DAY, allow_inf_nan=False)

    @model_validator(mode="after")
    def _base_below_max(self) -> ScheduleSettings:
        if self.retry_base_s > self.retry_max_s:
            raise ValueError(f"retry_base_s ({self.retry_base_s:g}) must not exceed retry_max_s ({self.retry_max_s:g})")
        return self


class MetricsSettings(_Section):
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is None:
            return v
        _host, sep, port = v.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected host:port with a port 1-65535, got {v!r}")
        return v


class DisplaySettings(_Section):
    # The zone the CLI shows times in (``--tz`` overrides it); the ledger always stores UTC.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from reconciler.configfile import zone

        zone(v, "display.timezone")
        return v


class Settings(BaseSettings):
    """Everything reconciler reads at start; secrets never appear in its repr."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    ledger: LedgerSettings = LedgerSettings()
    provider: ProviderSettings = ProviderSettings()
    issuers: list[IssuerSettings] = []
    mailbox: MailboxSettings = MailboxSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    metrics: MetricsSettings = MetricsSettings()
    display: DisplaySettings = DisplaySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    # -- derived values -------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """Where the ledger lives; caches (the WSDL) go next to it."""
        return self.ledger.path.parent

    def provider_password(self) -> SecretStr:
        return _secret(self.provider.password, self.provider.password_file, "provider.password", "provider_password")

    def mailbox_password(self) -> SecretStr:
        return _secret(self.mailbox.password, self.mailbox.password_file, "mailbox.password", "mailbox_password")

    def csd_password(self, issuer: IssuerSettings) -> SecretStr | None:
        """The CSD key's password, or None when the issuer has no CSD configured."""
        if issuer.csd_files() is None:
            return None
        return _secret(
            issuer.csd_password,
            issuer.csd_password_file,
            f"issuers[{issuer.rfc}].csd_password",
            credential_name("csd_password", issuer.rfc),
        )

    def require_provider(self) -> None:
        """Fail with one line naming the first provider key a submission needs and lacks."""
        if not self.provider.usuario:
            raise ConfigError("provider.usuario: missing (the user name of the provider's dashboard)")
        self.provider_password()
        if not self.provider.notify_email:
            raise ConfigError(
                "provider.notify_email: missing (the mailbox the provider notifies; "
                "without it nothing can be reconciled)"
            )
        for issuer in self.issuers:
            pair = issuer.csd_files()
            for key, path in zip(("csd_cer", "csd_key"), pair or (), strict=False):  # no CSD: nothing to check
                if not path.is_file():
                    raise ConfigError(f"issuers[{issuer.rfc}].{key}: file not found: {path}")
            self.csd_password(issuer)

    def require_mailbox(self) -> None:
        """Fail with one line naming the first mailbox key the watcher needs and lacks."""
        if not self.mailbox.host:
            raise ConfigError("mailbox.host: missing (the IMAP server to watch)")
        if not self.mailbox.username:
            raise ConfigError("mailbox.username: missing")
        if self.mailbox.auth == "password":
            self.mailbox_password()
        elif not (
            self.mailbox.oauth2_token_file or self.mailbox.oauth2_token_command or credential("mailbox_oauth2_token")
        ):
            raise ConfigError(
                "mailbox.oauth2_token_file: missing (xoauth2 needs oauth2_token_file, oauth2_token_command "
                "or the credential mailbox_oauth2_token)"
            )
        if self.mailbox.ca_file is not None and not self.mailbox.ca_file.is_file():
            raise ConfigError(f"mailbox.ca_file: file not found: {self.mailbox.ca_file}")


def credential_name(prefix: str, rfc: str) -> str:
    """A systemd credential name for an issuer's secret; names are ASCII, so Ñ becomes N and & becomes _."""
    return f"{prefix}_{rfc.upper().replace('Ñ', 'N').replace('&', '_')}"


def credential(name: str) -> Path | None:
    """The file of systemd credential ``name`` in ``$CREDENTIALS_DIRECTORY``, or None when there is none."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def read_secret_file(path: Path, key: str) -> SecretStr:
    """Read a secret from a file, stripping one trailing newline; the error names the key, never the content."""
    try:
        text = read_capped(path, SECRET_LIMIT, f"{key}: {path}").decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from e
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"{key}: {path} is empty")
    return SecretStr(text)


def _secret(value: SecretStr | None, file: Path | None, key: str, name: str) -> SecretStr:
    if value is not None and value.get_secret_value():
        return value
    if file is not None:
        return read_secret_file(file, f"{key}_file")
    cred = credential(name)
    if cred is not None:
        return read_secret_file(cred, f"credential {name}")
    short = key.rsplit(".", 1)[-1]
    raise ConfigError(f"{key}: missing (set {short}, {short}_file, or the systemd credential {name})")


def _describe(error: PydanticValidationError) -> str:
    first = error.errors()[0]
    loc = first.get("loc", ())
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    key = ".".join(parts) or "config"
    msg = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and not any("password" in p or "token" in p for p in parts):
        given = first["input"]
        if isinstance(given, str | int | float | bool):
            msg = f"{msg} (got {given!r})"
    more = len(error.errors()) - 1
    return f"{key}: {msg}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def load_settings(explicit_config: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the whole configuration once; raise ConfigError naming the bad key."""
    path, required = config_path(explicit_config)
    data = read_toml(path, required)
    try:
        return Settings(**data)
    except PydanticValidationError as e:
        # Not chained: pydantic's error carries the raw input, which may be a secret.
        raise ConfigError(_describe(e)) from None
    except ValueError as e:  # pydantic-settings raises plain ValueError for unparsable env JSON
        raise ConfigError(f"environment: {e}") from None
    except RecursionError:  # JSON in an environment variable nested too deeply
        raise ConfigError("environment: a value is nested too deeply") from None
