"""The systemd unit (verified and scored by systemd-analyze) and the sd_notify helper.

``systemd-analyze verify`` and ``security --offline=yes`` need no running
systemd: they load the unit file into a test-mode manager, so they work in
containers whose PID 1 is something else, and as any user.  ``verify`` checks
that ``ExecStart=`` is executable, so it runs on a copy pointing at this
venv's ``reconciler`` script instead of /opt/reconciler.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.config import ProviderSettings, Settings
from reconciler.daemon import sdnotify

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "reconciler.service"
CONFIG_SOURCE = ROOT / "reconciler" / "config.py"
MAX_EXPOSURE = 2.0
# LoadCredential= entries pointing at a directory of files named by RFC: <id>_<RFC>.
DIRECTORY_CREDENTIALS = {"csd_password", "csd_key"}


# -- the unit file ---------------------------------------------------------


def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; repeated keys kept."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


UNIT_TEXT = UNIT.read_text(encoding="utf-8")
ENTRIES = parse_unit(UNIT_TEXT)


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in ENTRIES if s == section and k == key]


def value(key: str, section: str = "Service") -> str:
    found = values(key, section)
    assert len(found) == 1, f"[{section}] {key}= set {len(found)} times, want once"
    return found[0]


def seconds(span: str) -> float:
    """A systemd time span such as ``90``, ``30s``, ``2min``, ``1min 30s`` in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and "".join(n + u for n, u in parts) == span.replace(" ", ""), f"cannot parse time span {span!r}"
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def load_credentials(text: str, *, commented: bool = False) -> dict[str, str]:
    """``LoadCredential=ID:PATH`` lines as {ID: PATH}; with commented=True, the ``#LoadCredential=`` ones."""
    prefix = "#LoadCredential=" if commented else "LoadCredential="
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            ident, _, path = line.removeprefix(prefix).partition(":")
            found[ident] = path
    return found


def config_credential_names() -> tuple[set[str], set[str]]:
    """The credential names reconciler/config.py reads: (exact names, f-string prefixes).

    Read off the source: the argument of ``credential(...)`` and the last one
    of ``_secret(...)``; ``f"csd_password_{issuer.rfc}"`` gives the prefix ``csd_password_``.
    """
    exact: set[str] = set()
    prefixes: set[str] = set()
    for node in ast.walk(ast.parse(CONFIG_SOURCE.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id == "credential":
            arg = node.args[0]
        elif node.func.id == "_secret":
            arg = node.args[-1]
        else:
            continue
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            exact.add(arg.value)
        elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
            prefixes.add(str(arg.values[0].value))
        # a plain variable (the ``credential`` parameter inside _secret) names nothing itself
    return exact, prefixes


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not installed (Debian/Ubuntu: apt-get install systemd)")
    return path


@pytest.fixture
def analyzable_unit(tmp_path: Path) -> Path:
    """The unit, with ExecStart= pointed at a file that exists here; same name, so same unit name."""
    script = Path(sys.executable).parent / "reconciler"
    exe = script if script.is_file() else Path(shutil.which("true") or "/bin/true")
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={exe}", UNIT_TEXT, flags=re.MULTILINE)
    assert n == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


def analyze(systemd_analyze: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env |= {"SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run([systemd_analyze, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def complaints(result: subprocess.CompletedProcess[str], unit: Path) -> list[str]:
    """Diagnostics about our unit (warnings about the host's own units are not ours)."""
    return [line for line in result.stderr.splitlines() if str(unit) in line or unit.name in line]


def test_verify_reports_nothing(systemd_analyze: str, analyzable_unit: Path) -> None:
    result = analyze(systemd_analyze, "verify", "--man=no", str(analyzable_unit))
    assert result.returncode == 0, result.stderr
    assert complaints(result, analyzable_unit) == []


def test_verify_would_catch_a_mistake(systemd_analyze: str, analyzable_unit: Path) -> None:
    """The check above is not vacuous: verify reports a typo without failing, so we read its output."""
    analyzable_unit.write_text(
        analyzable_unit.read_text(encoding="utf-8").replace("ProtectClock=yes", "ProtectClok=yes"), encoding="utf-8"
    )
    result = analyze(systemd_analyze, "verify", "--man=no", str(analyzable_unit))
    assert any("ProtectClok" in line for line in complaints(result, analyzable_unit)), result.stderr


def test_security_exposure_is_low(systemd_analyze: str, analyzable_unit: Path) -> None:
    result = analyze(systemd_analyze, "security", "--offline=yes", "--no-pager", str(analyzable_unit))
    assert result.returncode == 0, result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(UNIT.name)}: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert complaints(result, analyzable_unit) == [], "parse warnings"


def test_runs_reconciler_run_as_notify_service_with_watchdog() -> None:
    argv = value("ExecStart").split()
    assert Path(argv[0]).name == "reconciler" and argv[1:] == ["run"]
    assert value("Type") == "notify"
    assert value("NotifyAccess") == "main"
    assert seconds(value("WatchdogSec")) >= 10
    assert value("Restart") == "on-failure"
    assert seconds(value("RestartSec")) >= 5
    assert value("KillSignal") == "SIGTERM"
    # In-flight provider calls must be allowed to finish before SIGKILL.
    provider_timeout = ProviderSettings.model_fields["timeout_s"].default
    assert seconds(value("TimeoutStopSec")) > provider_timeout
    assert value("WantedBy", "Install") == "multi-user.target"


def test_state_config_and_ledger_paths() -> None:
    assert value("DynamicUser") == "yes"
    assert value("StateDirectory") == "reconciler"
    assert value("StateDirectoryMode") == "0700"
    assert value("ConfigurationDirectory") == "reconciler"
    assert value("UMask") == "0077"
    environment = dict(v.split("=", 1) for v in values("Environment"))
    assert environment["RECONCILER_LEDGER__PATH"] == "%S/reconciler/ledger.sqlite3"
    assert environment["RECONCILER_CONFIG"] == "%E/reconciler/config.toml"


HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "DevicePolicy": "closed",
    "KeyringMode": "private",
    "RemoveIPC": "yes",
}


@pytest.mark.parametrize(("key", "expected"), HARDENING.items())
def test_hardening(key: str, expected: str) -> None:
    assert value(key) == expected


def test_system_call_filter() -> None:
    assert values("SystemCallFilter") == ["@system-service", "~@privileged @resources"]


def test_memory_limit_is_a_safety_net_above_the_daemons_use() -> None:
    limit = value("MemoryMax")
    assert limit.endswith("M") and int(limit[:-1]) > 150, limit


def test_every_credential_the_config_reads_is_loaded() -> None:
    exact, prefixes = config_credential_names()
    assert {"provider_password", "mailbox_password"} <= exact, "config.py changed its credential names?"
    loaded = load_credentials(UNIT_TEXT)
    optional = load_credentials(UNIT_TEXT, commented=True)  # documented for a drop-in
    for name in exact:
        assert name in loaded or name in optional, f"credential {name} read by config.py, not in the unit"
    for prefix in prefixes:
        ident = prefix.removesuffix("_")
        assert ident in DIRECTORY_CREDENTIALS and ident in loaded, f"credentials {prefix}<RFC> not loaded"
    for ident, path in (loaded | optional).items():
        assert ident in exact or ident in DIRECTORY_CREDENTIALS, f"LoadCredential={ident}: nothing reads it"
        assert path == f"/etc/reconciler/credentials/{ident}"


def test_loaded_credentials_satisfy_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build $CREDENTIALS_DIRECTORY as systemd would from this unit; the config finds every secret in it."""
    rfc = "AAA010101AAA"
    creds = tmp_path / "credentials"
    creds.mkdir()
    for ident in load_credentials(UNIT_TEXT):
        name = f"{ident}_{rfc}" if ident in DIRECTORY_CREDENTIALS else ident
        (creds / name).write_text(f"secret of {name}\n", encoding="utf-8")
    cer = tmp_path / "csd.cer"
    cer.write_bytes(b"public certificate")
    for name in list(os.environ):
        if name.upper().startswith("RECONCILER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = Settings(
        provider={"usuario": "usuario", "notify_email": "cancelaciones@example.com"},
        mailbox={"host": "imap.example.com", "username": "cancelaciones@example.com"},
        issuers=[{"rfc": rfc, "csd_cer": str(cer), "csd_key": str(creds / f"csd_key_{rfc}")}],
    )
    settings.require_provider()
    settings.require_mailbox()
    issuer = settings.issuers[0]
    assert settings.provider_password().get_secret_value() == "secret of provider_password"
    assert settings.mailbox_password().get_secret_value() == "secret of mailbox_password"
    password = settings.csd_password(issuer)
    assert password is not None and password.get_secret_value() == f"secret of csd_password_{rfc}"


# MemoryDenyWriteExecute=yes as systemd 252 applies it (a seccomp filter refusing
# W+X mmap, mprotect(PROT_EXEC) and shmat(SHM_EXEC)) and as newer systemd does on
# kernels >= 6.3 (prctl PR_SET_MDWE).  Exit 77: this machine cannot apply it.
_MDWE_PROBE = r"""
import ctypes, os, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
ul = ctypes.c_ulong
if sys.argv[1] == "prctl":
    if libc.prctl(ul(65), ul(1), ul(0), ul(0), ul(0)) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
else:
    if os.uname().machine != "x86_64":
        sys.exit(77)
    def op(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)
    LD, JEQ, AND, RET = 0x20, 0x15, 0x54, 0x06
    ALLOW, EPERM = 0x7FFF0000, 0x00050001
    prog = [
        op(LD, 4), op(JEQ, 0xC000003E, 1), op(RET, ALLOW),          # arch x86_64, else allow
        op(LD, 0), op(JEQ, 9, 4), op(JEQ, 10, 6), op(JEQ, 329, 5),   # mmap, mprotect, pkey_mprotect
        op(JEQ, 30, 7), op(RET, ALLOW),                              # shmat
        op(LD, 32), op(AND, 6), op(JEQ, 6, 6, 7),                    # mmap: PROT_WRITE|PROT_EXEC
        op(LD, 32), op(AND, 4), op(JEQ, 4, 3, 4),                    # mprotect: PROT_EXEC
        op(LD, 32), op(AND, 0x8000), op(JEQ, 0x8000, 0, 1),          # shmat: SHM_EXEC
        op(RET, EPERM), op(RET, ALLOW),
    ]
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    code = ctypes.create_string_buffer(b"".join(prog))
    fprog = Fprog(len(prog), ctypes.addressof(code))
    if libc.prctl(ul(38), ul(1), ul(0), ul(0), ul(0)) != 0:  # PR_SET_NO_NEW_PRIVS
        sys.exit(77)
    if libc.prctl(ul(22), ul(2), ctypes.byref(fprog), ul(0), ul(0)) != 0:  # PR_SET_SECCOMP, FILTER
        sys.exit(77)

import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("a W+X mapping was allowed: the restriction is not in force")

# ctypes callbacks are libffi closures, the classic MemoryDenyWriteExecute casualty.
Compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
numbers = (ctypes.c_int * 4)(3, 1, 4, 2)
libc.qsort(numbers, 4, ctypes.sizeof(ctypes.c_int), Compare(lambda a, b: a[0] - b[0]))
assert list(numbers) == [1, 2, 3, 4]

import lxml.etree
assert lxml.etree.fromstring(b"<a><b>x</b></a>").xpath("string(//b)") == "x"
import asyncio, sqlite3, ssl
ssl.create_default_context()
db = sqlite3.connect(":memory:")
db.create_function("twice", 1, lambda x: 2 * x)
assert db.execute("select twice(21)").fetchone() == (42,)
asyncio.run(asyncio.sleep(0))
import aiosqlite, apscheduler, click, dkim, httpx, imapclient, prometheus_client, pydantic_settings, rich, zeep
import reconciler.config
print("ok")
"""


@pytest.mark.parametrize("mode", ["seccomp", "prctl"])
def test_memory_deny_write_execute_leaves_the_dependencies_working(mode: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MDWE_PROBE, mode], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode == 77:
        pytest.skip(f"cannot apply the {mode} W^X restriction on this machine")
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


# -- reconciler.daemon.sdnotify ----------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX socket paths are limited to 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="sdn") as name:
        yield Path(name)


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, named in $NOTIFY_SOCKET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if request.param == "path":
            path = str(short_dir / "notify")
            sock.bind(path)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
        else:
            name = f"reconciler-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        sock.settimeout(5)
        yield sock


def test_fields_arrive_as_one_datagram_as_sent(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=3 queued, 12 awaiting, 0 overdue")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=3 queued, 12 awaiting, 0 overdue"
    assert sdnotify.notify("WATCHDOG=1")
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.notify("STOPPING=1", "STATUS=Stopping: 2 calls in flight")
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=Stopping: 2 calls in flight"


def test_status_is_utf8(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("STATUS=Cancelación en curso")
    assert notify_socket.recv(4096).decode("utf-8") == "STATUS=Cancelación en curso"


def test_a_newline_cannot_smuggle_in_another_field(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("STATUS=provider said: ok\nREADY=1")
    assert notify_socket.recv(4096) == b"STATUS=provider said: ok READY=1"


def test_sent_by_the_calling_process(notify_socket: socket.socket) -> None:
    """NotifyAccess=main: systemd accepts the datagram only from the main PID, which the kernel attests."""
    notify_socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    assert sdnotify.notify("READY=1")
    data, ancillary, _, _ = notify_socket.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    assert data == b"READY=1"
    creds = [d for level, kind, d in ancillary if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)]
    assert creds and struct.unpack("3i", creds[0])[0] == os.getpid()


def test_without_notify_socket_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert sdnotify.notify("READY=1") is False


def test_no_fields_sends_nothing(notify_socket: socket.socket) -> None:
    assert sdnotify.notify() is False


@pytest.mark.parametrize("address", ["/nonexistent-dir/notify", "@reconciler-nobody-listens-{}", "vsock:2:1234"])
def test_failure_returns_false_never_raises(
    address: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", address.format(uuid.uuid4().hex))
    with caplog.at_level("DEBUG", logger="reconciler.daemon.sdnotify"):
        assert sdnotify.notify("READY=1") is False
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


def test_failure_on_a_socket_that_is_not_listening(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = short_dir / "stale"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))  # the file is left behind, nobody reads it
    with caplog.at_level("DEBUG", logger="reconciler.daemon.sdnotify"):
        assert sdnotify.notify("WATCHDOG=1") is False
    assert "failed" in caplog.text


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("60000000", "self", 60.0),
        ("60000000", None, 60.0),
        ("500000", "self", 0.5),
        ("60000000", "other", None),
        (None, "self", None),
        ("", None, None),
        ("0", None, None),
        ("sixty", None, None),
        ("60000000", "not-a-pid", None),
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, val in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if val is None:
            monkeypatch.delenv(name, raising=False)
        else:
            own = os.getpid()
            monkeypatch.setenv(name, {"self": str(own), "other": str(own + 1)}.get(val, val))
    assert sdnotify.watchdog_interval() == expected


def test_journal_stream_matches_the_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "stream").open("w") as ours, (tmp_path / "other").open("w") as other:
        st = os.fstat(ours.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert sdnotify.journal_stream(ours.fileno()) is True
        assert sdnotify.journal_stream(other.fileno()) is False  # redirected: inherited variable, other stream
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert sdnotify.journal_stream(ours.fileno()) is False
        monkeypatch.delenv("JOURNAL_STREAM")
        assert sdnotify.journal_stream(ours.fileno()) is False


def test_journal_stream_defaults_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert sdnotify.journal_stream() is True
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    assert sdnotify.journal_stream() is False
