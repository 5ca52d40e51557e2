"""Where each effective setting came from: the environment, the config file, a systemd credential, or the default.

``reconciler config show`` prints this; :func:`env_source` also lets a config error say
that the bad value came from an environment variable, not from the file.  Pure apart
from the ``environ`` mapping and the credential directory passed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from reconciler.configfile import env_name

Source = Literal["environment", "file", "credential", "default"]
MASK = "***"

# The secret keys and the systemd credential each falls back to (issuers: csd_password_<RFC>).
_SECRET_NAMES = frozenset({"password", "csd_password"})
_CREDENTIALS = {"provider.password": "provider_password", "mailbox.password": "mailbox_password"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One effective setting: ``value`` is JSON-ready, and ``***`` for a secret that is set."""

    key: str
    value: Any
    source: Source
    secret: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source, "secret": self.secret}


def env_source(dotted: str, environ: Mapping[str, str]) -> str | None:
    """The environment variable that sets ``dotted`` (itself or a section holding it as JSON), if any."""
    parts = dotted.split(".")
    names = {name.upper(): name for name in environ}
    for n in range(len(parts), 0, -1):
        wanted = env_name(".".join(parts[:n]))
        if wanted in names:
            return names[wanted]
    return None


def known_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every dotted key and section of a settings model (issuers as one section: it is a list)."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        out.add(dotted)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= known_keys(annotation, dotted + ".")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def entries(
    settings: BaseModel, data: Mapping[str, Any], environ: Mapping[str, str], credentials: Path | None
) -> list[Entry]:
    """Every setting of ``settings`` with its value (secrets masked) and where it came from."""
    out: list[Entry] = []
    for name, value in _walk(settings, ""):
        out.append(_entry(name, value, data, environ, credentials))
    return out


def _walk(model: BaseModel, prefix: str) -> Iterator[tuple[str, Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _walk(value, dotted + ".")
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            for i, item in enumerate(value):
                yield from _walk(item, f"{dotted}[{i}].")
        else:
            yield dotted, value


def _entry(
    dotted: str, value: Any, data: Mapping[str, Any], environ: Mapping[str, str], credentials: Path | None
) -> Entry:
    secret = isinstance(value, SecretStr) or dotted.rsplit(".", 1)[-1] in _SECRET_NAMES
    plain_key = dotted.split("[", 1)[0] + (dotted.split("]", 1)[1] if "[" in dotted else "")
    parts = dotted.replace("[", ".[").split(".")
    file_parts: list[Any] = []
    for p in parts:
        if p.startswith("["):
            file_parts.append(int(p[1:-1]))
        else:
            file_parts.append(p)
    source: Source = "default"
    if env_source(plain_key, environ) is not None:
        source = "environment"
    elif _in_file_indexed(data, file_parts):
        source = "file"
    shown: Any = _plain(value)
    if secret:
        shown = MASK if isinstance(value, SecretStr) and value.get_secret_value() else None
    if secret and source == "default":
        credential = _credential_for(dotted, data, file_parts)
        if credential and credentials is not None and (credentials / credential).is_file():
            shown, source = MASK, "credential"
    return Entry(dotted, shown, source, secret)


def _in_file_indexed(data: Any, parts: list[Any]) -> bool:
    node = data
    for part in parts:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return False
        elif not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _credential_for(dotted: str, data: Mapping[str, Any], parts: list[Any]) -> str | None:
    if dotted in _CREDENTIALS:
        return _CREDENTIALS[dotted]
    if parts[:1] == ["issuers"] and parts[-1] == "csd_password":
        from reconciler.config import credential_name

        issuers = data.get("issuers")
        index = parts[1]
        if isinstance(issuers, list) and isinstance(index, int) and index < len(issuers):
            rfc = issuers[index].get("rfc") if isinstance(issuers[index], Mapping) else None
            if isinstance(rfc, str):
                return credential_name("csd_password", rfc)
    return None
