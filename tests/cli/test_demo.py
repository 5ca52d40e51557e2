"""The README's first command: `reconciler demo` must finish, on its own, with every job as intended."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.demo import invocation


@pytest.mark.timeout(120)
def test_demo_runs_offline_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "demo", "--jobs", "20"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": "/tmp", "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "every job reached the state the simulator intended" in out
    assert "refused: sender notificaciones@solucionfactib1e.com is not in mailbox.trust.allowed_senders" in out
    # No `reconciler` on this PATH: the hint names this interpreter; the files are gone without --keep.
    assert f"`{sys.executable} -m reconciler demo --keep` keeps them" in out
    assert list(tmp_path.iterdir()) == []
    # The SAT's side: invoices cancelled at the SAT, receivers' rejections flagged, one preflight refusal.
    assert "at the SAT" in out and "check, the SAT's part: WARNING - " in out and "receiver rejections" in out
    assert "│ not cancellable   │ 1 " in out
    assert "webhook receiver at http://127.0.0.1:" in out and "every signature verified (" in out
    assert "REFUSED" not in out
    assert "Traceback" not in out + done.stderr


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("/opt/with space/bin/reconciler", "'/opt/with space/bin/reconciler'"),
        ("/x/reconciler/__main__.py", "/usr/bin/python3 -m reconciler"),
        ("-m", "/usr/bin/python3 -m reconciler"),
    ],
)
def test_the_hint_runs_from_the_users_shell(argv0: str, expected: str, tmp_path: Path) -> None:
    if argv0.startswith("/opt/"):
        script = tmp_path / "with space" / "bin" / "reconciler"
        script.parent.mkdir(parents=True)
        script.write_text("")
        argv0, expected = str(script), shlex.quote(str(script))
    assert invocation(argv0, "/usr/bin/python3") == expected


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
