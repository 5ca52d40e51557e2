"""``[events]``, ``[[webhooks]]`` and ``[[hooks]]``: where outcomes are pushed.  Part of the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from reconciler.section import _Section


class EventsSettings(_Section):
    # Delivered outbox events older than this are pruned; undelivered ones never are.
    retention_days: float = Field(default=30.0, gt=0, le=3650, allow_inf_nan=False)
    # How often the dispatcher looks for new outbox rows when it has nothing due.
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600, allow_inf_nan=False)


def event_filters(v: list[str]) -> list[str]:
    from reconciler.events.outbox import TYPES

    for f in v:
        if f not in TYPES and not (f.endswith("*") and any(t.startswith(f[:-1]) for t in TYPES)):
            raise ValueError(f"unknown event type {f!r} (one of {', '.join(TYPES)}, or a prefix like job.*)")
    return v


class WebhookSettings(_Section):
    url: str
    name: str | None = None
    secret: list[SecretStr] = []
    secret_file: Path | None = None
    events: list[str] = []
    timeout_s: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    concurrency: int = Field(default=4, ge=1, le=64)
    ca_file: Path | None = None

    @field_validator("secret", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from reconciler.events.urls import check_url

        return check_url(v)

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        return event_filters(v)

    @property
    def endpoint(self) -> str:
        from reconciler.events.urls import display_url

        return self.name or display_url(self.url)


class HookSettings(_Section):
    command: list[str] = Field(min_length=1)
    name: str | None = None
    events: list[str] = []
    timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if not v[0] or any("\x00" in a for a in v):
            raise ValueError("the command's first item must be a program path, with no NUL in any item")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        return event_filters(v)

    @property
    def endpoint(self) -> str:
        return self.name or "hook:" + Path(self.command[0]).name
