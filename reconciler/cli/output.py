"""Where the CLI's output goes: stdout (closed or full is one clear error) or a file written whole.

Only the CLI uses this module; it raises ReconcilerError and ValidationError and leaves exit
codes to :mod:`reconciler.cli.main`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from reconciler.errors import ReconcilerError, ValidationError

T = TypeVar("T")


def stdout() -> IO[str]:
    """``sys.stdout``, or one clear error when the command was started with it closed (``>&-``)."""
    if sys.stdout is None:
        raise ReconcilerError("stdout is closed: nothing can be written (use -o FILE where the command has it)")
    return sys.stdout


@contextlib.contextmanager
def writing_stdout() -> Iterator[IO[str]]:
    """stdout for a stream of output; a failed write (``>/dev/full``) is one line, not a traceback."""
    out = stdout()
    try:
        yield out
    except BrokenPipeError:
        raise  # the reader left (``| head``): main stops quietly
    except OSError as e:
        silence_stdout()
        raise ReconcilerError(f"cannot write to stdout: {e.strerror or e}") from e


def write_file(output: str, write: Callable[[IO[bytes]], T]) -> T:
    """Write a file whole or not at all: a fresh temporary file renamed over the target.

    The temporary file is created exclusively (``mkstemp``: ``O_CREAT | O_EXCL``, so a
    symlink or file planted next to the target is never followed nor reused), synced, then
    renamed into place; it is removed when anything fails.  It gets the mode the target
    had, else the one the umask gives a new file.  A target that exists and is not a
    regular file (``/dev/null``, a FIFO) is written directly: renaming over it would
    replace the device with a file.
    """
    if not output.strip():
        raise ValidationError("--output: empty file name")
    target = Path(output)
    try:
        try:
            st: os.stat_result | None = target.stat()
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            with target.open("wb") as f:
                return write(f)
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
        else:
            umask = os.umask(0o022)
            os.umask(umask)
            mode = 0o666 & ~umask
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                result = write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            return result
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise ReconcilerError(f"{output}: {e.strerror or e}") from e


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so Python's final flush of a broken or full stdout stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
