"""The README's first command: `reconciler demo` must finish, on its own, with every job as intended."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_demo_runs_offline_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "demo", "--jobs", "20"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": "/tmp"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "every job reached the state the simulator intended" in out
    assert "refused: sender notificaciones@solucionfactib1e.com is not in mailbox.trust.allowed_senders" in out
    assert "demo ledger: " in out and "try: reconciler --config " in out
    # The SAT's side: invoices cancelled at the SAT, receivers' rejections flagged, one preflight refusal.
    assert "at the SAT" in out and "check, the SAT's part: WARNING - " in out and "receiver rejections" in out
    assert "│ not cancellable   │ 1 " in out
    assert "Traceback" not in out + done.stderr


@pytest.mark.timeout(120)
def test_demo_signs_locally_with_a_throwaway_csd() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "demo", "--jobs", "10", "--signing", "local"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": "/tmp"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "signing locally for EKU9003173C9 with a throwaway CSD" in done.stdout
    assert "every job reached the state the simulator intended" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
