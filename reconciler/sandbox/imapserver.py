"""Real IMAP servers on loopback, as child processes, for tests, benchmarks and the demo.

Two servers: Dovecot (what production mailboxes run, when the binary is
installed) and pymap (pure Python, always available with the test extras).
Both keep their mail in a Maildir under a private directory, so a server can be
stopped and started again over the same messages, and both can be made to
report a new UIDVALIDITY for a folder.

Readiness is the port accepting a connection and answering the IMAP greeting,
polled against a deadline; nothing here sleeps a fixed time.
"""

from __future__ import annotations

import atexit
import contextlib
import imaplib
import logging
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

log = logging.getLogger(__name__)

DOVECOT = "/usr/sbin/dovecot"
Security = Literal["none", "tls", "starttls"]
_START_TIMEOUT_S = 20.0
_PYMAP_MAIN = "import sys; from pymap.main import main; sys.argv[0] = 'pymap'; sys.exit(main())"
_STOP_TIMEOUT_S = 10.0

# Dovecot 2.3's post-login capabilities without MOVE, for testing the COPY fallback.
_CAPS_WITHOUT_MOVE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT MULTIAPPEND UNSELECT CHILDREN NAMESPACE "
    "UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE ESEARCH SEARCHRES WITHIN LIST-STATUS BINARY LITERAL+"
)


class ServerError(RuntimeError):
    """A loopback IMAP server could not be started or stopped; the message says which and why."""


def dovecot_available() -> bool:
    """Whether the Dovecot binary is installed here."""
    return Path(DOVECOT).is_file() and os.access(DOVECOT, os.X_OK)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(
    host: str, port: int, proc: subprocess.Popen[bytes], log_file: Path, deadline: float, *, greets: bool = True
) -> None:
    """Poll until the server greets on ``port`` (accepts, for implicit TLS) or the deadline passes."""
    while True:
        if proc.poll() is not None:
            raise ServerError(f"IMAP server on port {port} exited with {proc.returncode}: {_tail(log_file)}")
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.settimeout(2.0)
                if not greets or s.recv(1):  # the greeting: the server is up
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"IMAP server on port {port} not ready within {_START_TIMEOUT_S:.0f}s: {_tail(log_file)}")
        time.sleep(0.02)  # poll interval, not a wait for a fixed duration


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])[-800:] or "(empty log)"


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it issued for 127.0.0.1/localhost, made with trustme: (ca, cert, key).

    Clients trust ``ca`` (``mailbox.ca_file``); the server presents ``cert`` (its chain) and ``key``.
    trustme comes with the test extras; the demo and production never serve TLS from here.
    """
    ca_file, cert, key = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    if ca_file.exists() and cert.exists() and key.exists():
        return ca_file, cert, key
    try:
        import trustme
    except ImportError as e:
        raise ServerError("a TLS test server needs trustme (pip install 'reconciler[test]')") from e
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(ca_file))
    for i, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(cert), append=i > 0)
    key.touch(mode=0o600)
    issued.private_key_pem.write_to_path(str(key))
    return ca_file, cert, key


@dataclass
class ImapServer:
    """A running loopback IMAP server with one user; a context manager that stops it."""

    kind: Literal["dovecot", "pymap"]
    root: Path
    user: str
    password: str
    port: int
    security: Security = "none"
    move: bool = True
    host: str = "127.0.0.1"
    ca_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _seq: int = field(default=0, repr=False)

    @property
    def maildir(self) -> Path:
        """The user's INBOX Maildir (folders are ``.Name`` sub-Maildirs of it)."""
        if self.kind == "dovecot":
            return self.root / "mail" / self.user
        return self.root / "pymap" / self.user

    @property
    def log_file(self) -> Path:
        return self.root / f"{self.kind}.log"

    @property
    def pid(self) -> int | None:
        """The server's main process while it runs (its children share its process group)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        if self.kind == "dovecot":
            cmd = [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")]
        else:
            cmd = [
                sys.executable, "-c", _PYMAP_MAIN, "--host", self.host, "--port", str(self.port),
                *(["--cert", str(self.root / "cert.pem"), "--key", str(self.root / "key.pem")]
                  if self.ca_file else ["--no-tls"]),
                "maildir", str(self.root / "pymap"),
            ]  # fmt: skip
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            _wait_ready(self.host, self.port, self._proc, self.log_file, deadline, greets=self.security != "tls")
            self._wait_login(deadline)
        except BaseException:
            self.stop()
            raise
        log.debug("%s listening on %s:%d", self.kind, self.host, self.port)

    def _wait_login(self, deadline: float) -> None:
        """Dovecot greets before its auth process is up ("Temporary authentication failure"): log in once."""
        while True:
            try:
                if self.security == "tls":
                    context = ssl.create_default_context(cafile=str(self.ca_file))
                    client: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=5)
                else:
                    client = imaplib.IMAP4(self.host, self.port, timeout=5)
                try:
                    if self.security == "starttls":
                        client.starttls(ssl.create_default_context(cafile=str(self.ca_file)))
                    client.login(self.user, self.password)
                finally:
                    with contextlib.suppress(imaplib.IMAP4.error, OSError):
                        client.logout()
                return
            except (imaplib.IMAP4.error, OSError) as e:
                if time.monotonic() > deadline:
                    raise ServerError(f"{self.kind} on port {self.port} refuses logins: {e}") from e
                time.sleep(0.05)  # poll interval

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a bound); the mail stays on disk."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(_STOP_TIMEOUT_S)
        # Dovecot's children (imap, auth, ...) share its process group; make sure none outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same port over the same mail."""
        self.stop()
        self.start()

    def change_uidvalidity(self, folder: str = "INBOX", value: int | None = None) -> int:
        """Give ``folder`` a new UIDVALIDITY (and fresh UIDs); the server is restarted around it.

        Both servers keep UIDs in a Dovecot-style ``dovecot-uidlist``; the new list holds only
        the header, so every message gets a new UID on the next access.
        """
        was_running = self.running
        self.stop()
        path = self.maildir if folder.upper() == "INBOX" else self.maildir / f".{folder}"
        old = _read_uidvalidity(path / "dovecot-uidlist")
        new = value if value is not None else max(int(time.time()), old + 1)
        for index in path.glob("dovecot.index*"):
            index.unlink()
        (path / "dovecot-uidlist").write_text(f"3 V{new} N1 G{uuid.uuid4().hex}\n")
        for cur in (path / "cur").iterdir():  # move messages back to new/ so both servers re-scan them
            cur.rename(path / "new" / cur.name.split(":", 1)[0])
        if self.kind == "dovecot":
            _chown_tree(path, self.root)
        if was_running:
            self.start()
        return new

    def deliver(self, raw: bytes, folder: str = "INBOX") -> Path:
        """Drop a message straight into the Maildir (fast, for filling big mailboxes while stopped)."""
        path = self.maildir if folder.upper() == "INBOX" else self.maildir / f".{folder}"
        if not (path / "tmp").is_dir():
            for sub in ("new", "cur", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            if self.kind == "dovecot":
                _chown_tree(path, self.root)
        self._seq += 1
        target = path / "new" / f"{int(time.time())}.M{self._seq}P{os.getpid()}.reconciler"
        target.write_bytes(raw)
        if self.kind == "dovecot" and os.geteuid() == 0:
            os.chown(target, *_mail_owner())
        return target

    def __enter__(self) -> ImapServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _read_uidvalidity(path: Path) -> int:
    try:
        first = path.read_text().split("\n", 1)[0].split()
    except OSError:
        return 0
    for token in first[1:]:
        if token.startswith("V") and token[1:].isdigit():
            return int(token[1:])
    return 0


def _mail_owner() -> tuple[int, int]:
    """The uid/gid Dovecot's mail processes run as: ourselves, or ``dovecot``'s user when we are root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("dovecot")
    except KeyError as e:
        raise ServerError("running as root needs the 'dovecot' system user (package dovecot-core)") from e
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, root: Path) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = _mail_owner()
    for dirpath, _dirs, files in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), uid, gid)


def _allow_traversal(path: Path) -> None:
    """As root, Dovecot's auth and mail processes run as ``dovecot``: let them pass through private
    parents such as pytest's 0700 temporary directories (search permission only, no listing)."""
    if os.geteuid() != 0:
        return
    for directory in [path.resolve(), *path.resolve().parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)


# Dovecot's sockets live in base_dir (run/token-login/imap-urlauth is the longest); a Unix socket's
# path is limited to 107 bytes, which pytest's default temporary paths under xdist
# (/tmp/pytest-of-root/pytest-N/popen-gwN/<test name>0/stack/imap) go past.
_SOCKET_TAIL = len("/token-login/imap-urlauth")
_SUN_PATH_MAX = 107


def _run_dir(root: Path) -> Path:
    """``root/run``, or when that is too long for Dovecot's sockets a short directory under the system
    temporary directory that ``root/run`` links to (removed when this process exits)."""
    run = root / "run"
    if run.is_symlink():  # linked by an earlier start over the same root
        return run.resolve()
    if len(os.fsencode(run.resolve())) + _SOCKET_TAIL <= _SUN_PATH_MAX:
        return run
    short = Path(tempfile.mkdtemp(prefix="rcdv-"))
    short.chmod(0o755)
    atexit.register(shutil.rmtree, short, ignore_errors=True)
    if run.is_dir():
        run.rmdir()
    run.symlink_to(short)
    return short


def _dovecot_conf(server: ImapServer, cert: Path | None, key: Path | None) -> str:
    uid, gid = _mail_owner()
    root = server.root
    login_user = "dovenull" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    internal = "dovecot" if os.geteuid() == 0 else login_user
    if server.security == "none":
        ssl = "ssl = no"
    else:
        ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\nssl_min_protocol = TLSv1.2"
    listener_ssl = "yes" if server.security == "tls" else "no"
    caps = "" if server.move else f"imap_capability = {_CAPS_WITHOUT_MOVE}"
    return f"""# generated by reconciler.sandbox.imapserver
base_dir = {_run_dir(root)}
state_dir = {root}/state
instance_name = reconciler-{server.port}
log_path = {server.log_file}
protocols = imap
listen = {server.host}
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
default_login_user = {login_user}
default_internal_user = {internal}
default_internal_group = {internal}
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
namespace inbox {{
  inbox = yes
  separator = /
}}
{caps}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {server.host}
    port = {server.port}
    ssl = {listener_ssl}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def start_dovecot(
    tmpdir: str | os.PathLike[str],
    user: str,
    password: str,
    *,
    port: int = 0,
    security: Security = "none",
    move: bool = True,
) -> ImapServer:
    """Start Dovecot (``dovecot -F``) on 127.0.0.1 with one user, its own config, state and Maildir under tmpdir.

    ``security`` "tls" serves implicit TLS, "starttls" offers STARTTLS, both with a certificate signed by
    a throwaway CA whose file is ``server.ca_file``; ``move=False`` hides the MOVE capability.
    The password also works as an XOAUTH2 bearer token (Dovecot 2.3 verifies the token against the passdb).
    """
    if not dovecot_available():
        raise ServerError(f"Dovecot is not installed ({DOVECOT} missing)")
    root = Path(tmpdir)
    server = ImapServer("dovecot", root, user, password, port or free_port(), security, move)
    for sub in ("run", "state", f"mail/{user}", f"home/{user}"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cert = key = None
    if security != "none":
        server.ca_file, cert, key = make_certificate(root)
    (root / "passwd").write_text(f"{user}:{password}::::::\n")
    (root / "passwd").chmod(0o644)
    (root / "dovecot.conf").write_text(_dovecot_conf(server, cert, key))
    for sub in ("mail", "home"):
        _chown_tree(root / sub, root)
    _allow_traversal(root)
    server.start()
    return server


def start_pymap(
    tmpdir: str | os.PathLike[str],
    user: str,
    password: str,
    *,
    port: int = 0,
    tls: bool = False,
) -> ImapServer:
    """Start pymap's maildir backend (pymap's ``main()`` in a child Python) on 127.0.0.1 with one user.

    pymap offers IDLE, UIDPLUS and MOVE. ``tls=True`` serves STARTTLS with a certificate signed by ``server.ca_file``.
    """
    from pysasl.hashing import BuiltinHash

    root = Path(tmpdir)
    base = root / "pymap"
    base.mkdir(parents=True, exist_ok=True)
    (base / "pymap-etc-passwd").write_text(f"{user}:x:1000:1000::{user}:\n")
    # A throwaway loopback account: pysasl's default 500,000 PBKDF2 rounds would cost about a second of CPU
    # on every login (the readiness check, each poller connection, each test helper); the digest records
    # its rounds, so pymap verifies this one with the same real PBKDF2 check, just cheaper.
    (base / "pymap-etc-shadow").write_text(f"{user}:{BuiltinHash(rounds=1000).hash(password)}:::::\n")
    server = ImapServer("pymap", root, user, password, port or free_port(), "starttls" if tls else "none")
    if tls:
        server.ca_file, _cert, _key = make_certificate(root)
    for sub in ("new", "cur", "tmp"):
        (server.maildir / sub).mkdir(parents=True, exist_ok=True)
    server.start()
    return server


def remove(server: ImapServer) -> None:
    """Stop the server and delete its directory."""
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
