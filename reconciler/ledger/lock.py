"""One daemon per ledger: an exclusive ``flock`` on ``<ledger>.lock``, held for the daemon's life.

The lock dies with the process (``kill -9`` frees it); the file holds the holder's pid so that
a second daemon and the read commands can name it.  :func:`holder` only reads: it never creates
the file and takes at most a momentary shared lock to probe.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler import backoff
from reconciler.errors import AlreadyRunningError, LedgerError

# A reader's probe holds a shared lock for microseconds: a starting daemon retries this long
# before it believes another daemon holds the ledger.
_ACQUIRE_S = 1.0
_RETRY_S = (0.005, 0.05)  # first and longest pause between tries (backoff.delay)
_JITTER = random.Random()


def lock_path(ledger: str | os.PathLike[str]) -> Path:
    p = Path(ledger)
    return p.with_name(p.name + ".lock")


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holds the ledger's lock; ``pid`` is None when its pid could not be read."""

    pid: int | None


def _open(path: Path, flags: int) -> int:
    """Open the lock file without following a symlink or blocking on a FIFO; regular files only."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LedgerError(f"lock file {path}: not a regular file")
    return fd


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None


class DaemonLock:
    """The held lock; :meth:`release` (or the process ending) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, ledger: str | os.PathLike[str]) -> DaemonLock:
        """Take the lock or raise :class:`AlreadyRunningError` naming the holder's pid; writes our pid."""
        path = lock_path(ledger)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = _open(path, os.O_RDWR | os.O_CREAT)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                why = f"readonly for this user ({e.strerror})"
            else:
                why = "is a symlink" if e.errno == errno.ELOOP else (e.strerror or str(e))
            raise LedgerError(f"ledger {Path(ledger)}: cannot take the daemon lock: {path}: {why}") from e
        deadline = time.monotonic() + _ACQUIRE_S
        attempt = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    attempt += 1
                    time.sleep(backoff.delay(attempt, *_RETRY_S, _JITTER))
                    continue
                pid = _read_pid(fd)
                os.close(fd)
                raise AlreadyRunningError(
                    f"ledger {Path(ledger)}: reconciler is already running (pid {pid or 'unknown'} holds {path})"
                ) from None
            except OSError as e:
                os.close(fd)
                raise LedgerError(f"lock file {path}: {e.strerror or e}") from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise LedgerError(f"lock file {path}: {e.strerror or e}") from e
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def holder(ledger: str | os.PathLike[str]) -> Holder | None:
    """Which process holds the ledger's lock, or None when none does; never creates or writes."""
    path = lock_path(ledger)
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except (OSError, LedgerError):
        return Holder(None)  # unreadable (another user's 0600 file): someone may hold it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder(_read_pid(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(held: Holder | None) -> str:
    """``daemon pid 123`` / ``no daemon running``, for ``check`` and ``summary``."""
    if held is None:
        return "no daemon running"
    return f"daemon pid {held.pid}" if held.pid is not None else "a daemon is running (pid unreadable)"
