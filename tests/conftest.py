"""Shared fixtures.  Server fixtures live in their own plugin modules, listed here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins: list[str] = ["tests.fixtures_sandbox", "tests.fixtures_imap"]  # provider simulator, IMAP servers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's own reconciler configuration or systemd credentials."""
    for name in list(os.environ):
        if name.upper().startswith("RECONCILER_") or name in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"):
            monkeypatch.delenv(name, raising=False)
    yield


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``reconciler`` entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RECONCILER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=60,
        check=False,
    )
