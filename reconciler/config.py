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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.configfile import (
    DEFAULT_LEDGER,
    ENV_PREFIX,
    SECRET_LIMIT,
    config_path,
    read_capped,
    read_toml,
    unknown_environment,
)
from reconciler.errors import ConfigError
from reconciler.events.settings import EventsSettings, HookSettings, WebhookSettings
from reconciler.section import DAY, MIB, _Section

if TYPE_CHECKING:
    from reconciler.sat.schedule import Cadence

PRODUCTION_WSDL = "https://solucionfactible.com/ws/services/Cancelacion?wsdl"


class LedgerSettings(_Section):
    path: Path = DEFAULT_LEDGER

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, v: Any) -> Any:
        """An empty path would be the current directory (``.``), never what was meant."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be empty")
        return v

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
    # "provider": the CSD goes to the provider (with each request, or registered in its dashboard).
    # "local": the SAT's Cancelacion is signed here and the key never leaves (reconciler/provider/local.py).
    signing: Literal["provider", "local"] = "provider"
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
    # After a refused login: wait 60 s, doubling, at most this long (a wrong password retried fast locks accounts).
    login_retry_max_s: float = Field(default=1800.0, gt=0, le=DAY, allow_inf_nan=False)
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
    # How long an event's delivery to a webhook or hook is retried before it is marked failed.
    delivery_horizon_s: float = Field(default=4 * DAY, gt=0, le=365 * DAY, allow_inf_nan=False)

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
        host, sep, port = v.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected host:port with a port 1-65535, got {v!r}")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if len(bare) > 253 or not all(c.isascii() and (c.isalnum() or c in ".-:") for c in bare):
            raise ValueError(f"expected host:port with a host name or an IP address, got {v!r}")
        return v


class SatSettings(_Section):
    """``[sat]``: the SAT's public status service (ConsultaCFDIService) and the follow-up schedule."""

    enabled: bool = False
    url: str = "https://consultaqr.facturaelectronica.sat.gob.mx/ConsultaCFDIService.svc"
    timeout_s: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    max_rps: float = Field(default=2.0, gt=0, le=100, allow_inf_nan=False)
    preflight: bool = True
    interval_s: float = Field(default=30.0, gt=0, le=DAY, allow_inf_nan=False)
    retry_base_s: float = Field(default=60.0, gt=0, le=DAY, allow_inf_nan=False)
    retry_max_s: float = Field(default=3600.0, gt=0, le=DAY, allow_inf_nan=False)
    early_s: list[float] = Field(default=[120.0, 600.0, 1800.0], max_length=50)
    window_interval_s: float = Field(default=3300.0, gt=0, le=DAY, allow_inf_nan=False)
    window_s: float = Field(default=259200.0, ge=0, le=30 * DAY, allow_inf_nan=False)
    margin_interval_s: float = Field(default=21600.0, gt=0, le=7 * DAY, allow_inf_nan=False)
    margin_s: float = Field(default=172800.0, ge=0, le=30 * DAY, allow_inf_nan=False)
    daily_s: float = Field(default=DAY, gt=0, le=30 * DAY, allow_inf_nan=False)
    horizon_s: float = Field(default=30 * DAY, gt=0, le=365 * DAY, allow_inf_nan=False)
    max_calls: int = Field(default=120, ge=1, le=10_000)
    not_found_retry_s: float = Field(default=600.0, gt=0, le=DAY, allow_inf_nan=False)
    not_found_submit_after_s: float = Field(default=21600.0, ge=0, le=30 * DAY, allow_inf_nan=False)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v

    @field_validator("early_s")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not (0 < x <= DAY) for x in v):
            raise ValueError("every early ask must be between 0 and 86400 seconds after the acceptance")
        return v

    def cadence(self) -> Cadence:
        """The follow-up schedule (:class:`reconciler.sat.schedule.Cadence`) these keys describe."""
        from reconciler.sat.schedule import Cadence as Schedule

        return Schedule(
            early_s=tuple(self.early_s),
            window_interval_s=self.window_interval_s,
            window_s=self.window_s,
            margin_interval_s=self.margin_interval_s,
            margin_s=self.margin_s,
            daily_s=self.daily_s,
            horizon_s=self.horizon_s,
            max_calls=self.max_calls,
            not_found_retry_s=self.not_found_retry_s,
            not_found_submit_after_s=self.not_found_submit_after_s,
        )


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
    sat: SatSettings = SatSettings()
    events: EventsSettings = EventsSettings()
    webhooks: list[WebhookSettings] = []
    hooks: list[HookSettings] = []

    @model_validator(mode="after")
    def _unique_endpoints(self) -> Settings:
        names = [w.endpoint for w in self.webhooks] + [h.endpoint for h in self.hooks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two webhooks or hooks are named {name!r}; give each a distinct name")
        return self

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

    def webhook_keys(self, hook: WebhookSettings) -> list[bytes]:
        """The HMAC keys of a webhook's ``whsec_`` secrets (``secret`` and one per line of ``secret_file``)."""
        from reconciler.events.signature import SecretFormatError, key_of

        key = f"webhooks[{hook.endpoint}]"
        texts = [(s.get_secret_value(), f"{key}.secret") for s in hook.secret]
        if hook.secret_file is not None:
            content = read_secret_file(hook.secret_file, f"{key}.secret_file").get_secret_value()
            texts += [(line, f"{key}.secret_file") for line in content.splitlines() if line.strip()]
        if not texts:
            raise ConfigError(f"{key}.secret: missing (set secret or secret_file to a whsec_ secret)")
        keys: list[bytes] = []
        for text, where in texts:
            try:
                keys.append(key_of(text))
            except SecretFormatError as e:
                raise ConfigError(f"{where}: {e}") from None
        return keys

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


def load_settings(explicit_config: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the whole configuration once; raise ConfigError naming the bad key."""
    from reconciler.configerrors import describe
    from reconciler.errors import EnvironmentConfigError

    path, required = config_path(explicit_config)
    data = read_toml(path, required)
    unknown_environment()
    try:
        return Settings(**data)
    except PydanticValidationError as e:
        # Not chained: pydantic's error carries the raw input, which may be a secret.
        text, variable = describe(e, os.environ)
        raise (EnvironmentConfigError(text, variable) if variable else ConfigError(text)) from None
    except ValueError as e:  # pydantic-settings raises plain ValueError for unparsable env JSON
        raise ConfigError(f"environment: {e}") from None
    except RecursionError:  # JSON in an environment variable nested too deeply
        raise ConfigError("environment: a value is nested too deeply") from None
