"""The CLI's one output module: the shared ``--json`` option, one render function, and where output goes.

Every read command builds a :class:`Report` (``data`` is exactly what ``--json`` prints; tables
and lines are the human view of the same result) and hands it to :func:`render`, in the way
sqlite-utils' commands share ``output_options``.  Output goes to stdout (closed or full is one
clear error) or to a file written whole.  Only the CLI uses this module; it raises
ReconcilerError and ValidationError and leaves exit codes to :mod:`reconciler.cli.main`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from reconciler.errors import ReconcilerError, ValidationError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def output_options(fn: F) -> F:
    """The output options every read command shares: ``--json`` for machines, else a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")(fn)


@dataclass(frozen=True, slots=True)
class Table:
    """A human table: every cell is printed as literal text on one line."""

    columns: Sequence[str]
    rows: Iterable[Sequence[Any]]
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """One command's result: ``data`` is the JSON document; ``human`` the tables and lines shown instead."""

    data: Any
    human: Sequence[Table | str] = ()


def render(report: Report, as_json: bool) -> None:
    """Print ``report``: its data as one JSON document, or its tables and lines for a person."""
    if as_json:
        emit_json(report.data)
        return
    for part in report.human:
        if isinstance(part, Table):
            table(part)
        else:
            click.echo(part)


def emit_json(obj: Any) -> None:
    """One JSON document on one line; values JSON has no type for (dates, paths) as their text."""
    stdout().write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def table(spec: Table) -> None:
    """Print a table; every cell is literal text (never rich markup) on one line (controls escaped)."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    from reconciler.redact import one_line

    out = RichTable(title=spec.title, header_style="bold")
    for column in spec.columns:
        out.add_column(column)
    for row in spec.rows:
        out.add_row(*(Text("" if v is None else one_line(str(v))) for v in row))
    stream = stdout()
    Console(file=stream, width=None if stream.isatty() else 200).print(out)


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
        import tempfile  # here: it imports shutil, random and the compressors

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
