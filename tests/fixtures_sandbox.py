"""Fixtures for the provider simulator: in-process sandboxes on loopback and settings pointing at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import Settings
from reconciler.sandbox import Sandbox, SandboxConfig

TEST_USER = "testing@solucionfactible.com"
TEST_PASSWORD = "timbrado.SF.16672"
NOTIFY = "cancelaciones@example.com"
RFC = "AAA010101AAA"

SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[SandboxFactory]:
    """Start sandboxes with ``SandboxConfig`` keyword arguments; all are stopped at teardown."""
    started: list[Sandbox] = []

    def start(**kw: Any) -> Sandbox:
        kw.setdefault("maildir", tmp_path / f"Maildir{len(started)}")
        kw.setdefault("notify_delay_s", 0.3)
        sb = Sandbox(SandboxConfig(**kw)).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox with default rules, notifications into a Maildir after 0.3 s."""
    return sandbox_factory()


def provider_settings(sb: Sandbox | None, state_dir: Path, **provider: Any) -> Settings:
    """Settings whose provider section points at ``sb`` (HTTPS SOAP 1.1 port unless told otherwise)."""
    issuers = provider.pop("issuers", [])
    section: dict[str, Any] = {
        "wsdl": sb.wsdl_url if sb is not None else "http://127.0.0.1:9/nothing?wsdl",
        "usuario": TEST_USER,
        "password": TEST_PASSWORD,
        "notify_email": NOTIFY,
        "timeout_s": 5.0,
    }
    section.update(provider)
    return Settings(ledger={"path": state_dir / "ledger.sqlite3"}, provider=section, issuers=issuers)
