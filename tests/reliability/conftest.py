"""The reliability suites' installation on loopback; a module needing other settings defines its own ``stack``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..harness import Stack, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Simulator, Dovecot and a daemon config; notifications 0.3 s after each acceptance."""
    s = start_stack(tmp_path / "stack", notify_delay_s=0.3)
    yield s
    s.close()
