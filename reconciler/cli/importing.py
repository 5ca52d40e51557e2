"""What ``reconciler import PATH...`` reads: CSV job files, CFDI XML files and directories of them.

:class:`Sources` streams them for ``import`` (:mod:`reconciler.cli.files`); :func:`gather` reads
them into a list (bench/sat.py).

All or nothing: every file is read and validated before anything is queued; the errors
are listed by path (and line, for CSV) and nothing is imported when there is one.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from reconciler.errors import ValidationError
from reconciler.jobs.cfdi import MAX_BYTES, cfdi_job
from reconciler.jobs.jobfile import MAX_REPORTED, bounded_lines, parse_jobs
from reconciler.jobs.validation import JobSpec, parse_motivo, parse_uuid


def is_xml(path: str) -> bool:
    return path.lower().endswith(".xml")


def _walk(directory: Path) -> Iterator[Path]:
    """The ``*.xml`` files under ``directory``, sorted, hidden names skipped."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_xml(name) and not name.startswith("."):
                yield Path(root) / name


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ValidationError(f"{path}: {e.strerror or e}") from e
    return data


def _csv(file: str) -> list[JobSpec]:
    if file == "-":
        if sys.stdin is None:
            raise ValidationError("<stdin>: stdin is closed")
        return parse_jobs(bounded_lines(sys.stdin, "<stdin>"), "<stdin>")
    try:
        with open(file, encoding="utf-8-sig", newline="") as f:
            return parse_jobs(bounded_lines(f, file), file)
    except IsADirectoryError as e:
        raise ValidationError(f"{file}: is a directory") from e
    except OSError as e:
        raise ValidationError(f"{file}: {e.strerror}") from e


def _check_options(motivo: str | None, folio_sustitucion: str | None) -> None:
    """The import's --motivo/--folio-sustitucion checked once, not once per file."""
    m = parse_motivo(motivo, "--motivo")
    if m == "01" and not (folio_sustitucion or "").strip():
        raise ValidationError("--folio-sustitucion: required with --motivo 01 (the replacing invoice's UUID)")
    if m != "01" and folio_sustitucion:
        raise ValidationError(f"--folio-sustitucion: only allowed with --motivo 01, not with motivo {m}")
    if folio_sustitucion:
        parse_uuid(folio_sustitucion, "--folio-sustitucion")


def gather(paths: Sequence[str], motivo: str | None, folio_sustitucion: str | None) -> list[JobSpec]:
    """Every job the paths hold, validated; ValidationError listing the bad files when one is bad.

    ``motivo`` and ``folio_sustitucion`` apply to every CFDI XML file; CSV rows carry their own.
    """
    if not paths:
        raise ValidationError("import: give at least one CSV file, CFDI XML file or directory")
    if motivo is not None or folio_sustitucion is not None:
        _check_options(motivo, folio_sustitucion)
    specs: list[JobSpec] = []
    where: dict[str, str] = {}
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        try:
            is_dir = raw != "-" and path.is_dir()
        except OSError as e:  # a name too long, a loop of symlinks
            errors.append(f"{raw[:80]}: {e.strerror or e}")
            continue
        if is_dir:
            files = list(_walk(path))
            if not files:
                errors.append(f"{raw}: no .xml files in this directory")
        elif is_xml(raw):
            files = [path]
        else:
            try:
                found = _csv(raw)
            except ValidationError as e:
                errors.append(str(e))
                continue
            for spec in found:
                if spec.uuid in where:
                    errors.append(f"{raw}: uuid {spec.uuid} already in {where[spec.uuid]}")
                    continue
                where[spec.uuid] = raw
                specs.append(spec)
            continue
        for file in files:
            try:
                spec = cfdi_job(_read(file), str(file), motivo, folio_sustitucion)
            except ValidationError as e:
                errors.append(str(e))
                continue
            if spec.uuid in where:
                errors.append(f"{file}: uuid {spec.uuid} already in {where[spec.uuid]}")
                continue
            where[spec.uuid] = str(file)
            specs.append(spec)
    if errors:
        if len(errors) == 1:
            raise ValidationError(f"{errors[0]}; nothing imported")
        shown = "; ".join(errors[:MAX_REPORTED])
        more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
        raise ValidationError(f"{len(errors)} problems, nothing imported: {shown}{more}")
    return specs


@contextlib.contextmanager
def opened(file: str) -> Iterator[tuple[IO[bytes], str]]:
    """The file's bytes, or stdin's: read exactly the same way from there on."""
    if file == "-":
        if sys.stdin is None:
            raise ValidationError("<stdin>: stdin is closed")
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        f = open(file, "rb")  # noqa: SIM115 (closed below)
    except IsADirectoryError as e:
        raise ValidationError(f"{file}: is a directory") from e
    except OSError as e:
        raise ValidationError(f"{file}: {e.strerror}") from e
    with f:
        yield f, file


class Sources:
    """The rows of every path (CSV files, CFDI XML files, directories of them), one at a time.

    Rows are numbered across the paths so the staging keeps their order; :meth:`describe` turns a
    number back into (path, line in that CSV file, or None for an XML file).  Memory grows with the
    number of files, never with the rows.  A CSV file that cannot be opened or has a bad header
    stops the import at once (ValidationError); a bad row or XML file is yielded as its reason.
    """

    def __init__(
        self,
        paths: Sequence[str],
        motivo: str | None,
        folio_sustitucion: str | None,
        encoding: str | None,
        note: Callable[[str], None],
    ) -> None:
        if not paths:
            raise ValidationError("import: give at least one CSV file, CFDI XML file or directory")
        if motivo is not None or folio_sustitucion is not None:
            _check_options(motivo, folio_sustitucion)
        self.paths, self.motivo, self.folio, self.encoding, self.note = (
            paths,
            motivo,
            folio_sustitucion,
            encoding,
            note,
        )
        for raw in paths:  # what is wrong with a path itself stops the import before anything is read
            if not raw.strip():
                raise ValidationError("import: an empty path; give a CSV file, CFDI XML file or directory")
            try:
                is_dir = raw != "-" and Path(raw).is_dir()
            except OSError as e:  # a name too long, a loop of symlinks
                raise ValidationError(f"{raw[:80]}: {e.strerror or e}") from e
            if is_dir and next(_walk(Path(raw)), None) is None:
                raise ValidationError(f"{raw}: no .xml files in this directory; nothing imported")
        self._starts: list[int] = []
        self._spans: list[tuple[str, bool]] = []  # (name, is CSV)
        self._base = 0

    def _span(self, name: str, is_csv: bool) -> int:
        self._base += 1
        self._starts.append(self._base)
        self._spans.append((name, is_csv))
        return self._base

    def describe(self, n: int) -> tuple[str, int | None]:
        i = bisect.bisect_right(self._starts, n) - 1
        name, is_csv = self._spans[i]
        return name, (n - self._starts[i] + 1) if is_csv else None

    def rows(self) -> Iterator[tuple[int, JobSpec | str]]:
        from reconciler.jobs.csvsource import open_source
        from reconciler.jobs.jobfile import read_rows

        for raw in self.paths:
            path = Path(raw)
            is_dir = raw != "-" and path.is_dir()
            if is_dir or (raw != "-" and is_xml(raw)):
                for file in _walk(path) if is_dir else [path]:
                    n = self._span(str(file), False)
                    try:
                        yield n, cfdi_job(_read(file), str(file), self.motivo, self.folio)
                    except ValidationError as e:
                        yield n, str(e).removeprefix(f"{file}: ")
                continue
            with opened(raw) as (stream, name):
                source = open_source(stream, name, self.encoding)
                jobs = read_rows(source.lines, name, source.delimiter)
                if jobs.ignored:
                    self.note(f"{name}: note: ignoring column(s) {', '.join(jobs.ignored)}")
                start = self._span(name, True) - 1  # line L of this file is row start + L
                last = 1
                for line, item in jobs.rows:
                    last = line
                    yield start + line, item
                self._base = start + last + 1
