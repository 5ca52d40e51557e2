"""CSV job files: text in, validated jobs out, all or nothing. Pure: no I/O beyond the stream given."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from reconciler.errors import ValidationError
from reconciler.jobs.validation import JobSpec, job_spec

COLUMNS = ("uuid", "rfc", "motivo", "folio_sustitucion", "rfc_receptor", "total", "sello")
REQUIRED = ("uuid", "rfc")
MAX_REPORTED = 20
MAX_LINE = 4096  # characters: a row is about 60; /dev/zero or a binary file is not read without end


def bounded_lines(stream: IO[str], name: str, limit: int = MAX_LINE, encoding: str = "UTF-8") -> Iterator[str]:
    """The stream's lines; a line longer than ``limit`` stops with one ValidationError naming it."""
    number = 0
    while True:
        try:
            line = stream.readline(limit + 1)
        except UnicodeDecodeError as e:
            raise ValidationError(f"{name}: line {number + 1}: not {encoding} text ({e.reason})") from e
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            raise ValidationError(f"{name}: line {number}: longer than {limit} characters; not a job file")
        yield line


@dataclass
class JobRows:
    """A job file's header read: the columns ignored, and its rows one at a time.

    Each row is ``(line, spec)`` or ``(line, reason)``; blank rows are skipped.  A UUID twice
    in the file is not checked here (the caller stages rows in bounded memory and does that).
    """

    name: str
    ignored: list[str]
    rows: Iterator[tuple[int, JobSpec | str]]


def read_rows(lines: Iterable[str], name: str = "<csv>", delimiter: str = ",") -> JobRows:
    """The header checked (``uuid,rfc,motivo,folio_sustitucion``; the last two optional, motivo
    defaults to 02; other columns are ignored and named in ``ignored``), then a lazy row iterator."""
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError(f"{name}: empty file (expected the header uuid,rfc,motivo,folio_sustitucion)") from None
    except csv.Error as e:
        raise ValidationError(f"{name}: line 1: {e}") from e
    except UnicodeDecodeError as e:
        raise ValidationError(f"{name}: line 1: not UTF-8 text ({e.reason})") from e
    cols = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in REQUIRED if c not in cols]
    known = [c for c in cols if c in COLUMNS]
    if missing or len(set(known)) != len(known):
        raise ValidationError(
            f"{name}: line 1: header must be uuid,rfc[,motivo][,folio_sustitucion][,rfc_receptor][,total][,sello];"
            f" got {','.join(cols)!r}"
        )
    index = {c: i for i, c in enumerate(cols) if c in COLUMNS}
    ignored = [header[i].strip() or f"column {i + 1}" for i, c in enumerate(cols) if c not in COLUMNS]
    return JobRows(name, ignored, _rows(reader, index, len(cols)))


def _rows(reader: Any, index: dict[str, int], width: int) -> Iterator[tuple[int, JobSpec | str]]:
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != width:
                yield line, f"expected {width} fields, got {len(row)}"
                continue

            def cell(column: str, row: list[str] = row) -> str | None:
                return row[index[column]] if column in index else None

            try:
                yield (
                    line,
                    job_spec(
                        cell("uuid") or "",
                        cell("rfc") or "",
                        cell("motivo"),
                        cell("folio_sustitucion"),
                        cell("rfc_receptor"),
                        cell("total"),
                        cell("sello"),
                    ),
                )
            except ValidationError as e:
                yield line, str(e)
    except csv.Error as e:
        yield reader.line_num, str(e)
    except UnicodeDecodeError as e:
        yield reader.line_num + 1, f"not UTF-8 text ({e.reason})"


def parse_jobs(lines: Iterable[str], name: str = "<csv>", delimiter: str = ",") -> list[JobSpec]:
    """Every row as a JobSpec, or ValidationError listing the bad rows by line number (a UUID twice is one)."""
    specs: list[JobSpec] = []
    seen: dict[str, int] = {}
    errors: list[str] = []
    for line, spec in read_rows(lines, name, delimiter).rows:
        if isinstance(spec, str):
            errors.append(f"line {line}: {spec}")
        elif spec.uuid in seen:
            errors.append(f"line {line}: uuid {spec.uuid} already on line {seen[spec.uuid]}")
        else:
            seen[spec.uuid] = line
            specs.append(spec)
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED])
        more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
        raise ValidationError(
            f"{name}: {len(errors)} bad row{'s' if len(errors) > 1 else ''}, nothing imported: {shown}{more}"
        )
    return specs
