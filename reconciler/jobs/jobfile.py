"""CSV job files: text in, validated jobs out, all or nothing. Pure: no I/O beyond the stream given."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import IO

from reconciler.errors import ValidationError
from reconciler.jobs.validation import JobSpec, job_spec

COLUMNS = ("uuid", "rfc", "motivo", "folio_sustitucion", "rfc_receptor", "total", "sello")
REQUIRED = ("uuid", "rfc")
MAX_REPORTED = 20
MAX_LINE = 4096  # characters: a row is about 60; /dev/zero or a binary file is not read without end


def bounded_lines(stream: IO[str], name: str, limit: int = MAX_LINE) -> Iterator[str]:
    """The stream's lines; a line longer than ``limit`` stops with one ValidationError naming it."""
    number = 0
    while True:
        try:
            line = stream.readline(limit + 1)
        except UnicodeDecodeError as e:
            raise ValidationError(f"{name}: line {number + 1}: not UTF-8 text ({e.reason})") from e
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            raise ValidationError(f"{name}: line {number}: longer than {limit} characters; not a job file")
        yield line


def parse_jobs(lines: Iterable[str], name: str = "<csv>") -> list[JobSpec]:
    """Every row as a JobSpec, or ValidationError listing the bad rows by line number.

    The header names the columns (``uuid,rfc,motivo,folio_sustitucion``; the last
    two are optional, motivo defaults to 02; ``rfc_receptor``, ``total`` and ``sello``
    are optional too: what the SAT's status service needs).  A UUID twice in the file is an error.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError(f"{name}: empty file (expected the header uuid,rfc,motivo,folio_sustitucion)") from None
    except csv.Error as e:
        raise ValidationError(f"{name}: line 1: {e}") from e
    except UnicodeDecodeError as e:
        raise ValidationError(f"{name}: line 1: not UTF-8 text ({e.reason})") from e
    cols = [h.strip().lower().lstrip("\ufeff") for h in header]
    unknown = [c for c in cols if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in cols]
    if unknown or missing or len(set(cols)) != len(cols):
        raise ValidationError(
            f"{name}: line 1: header must be uuid,rfc[,motivo][,folio_sustitucion][,rfc_receptor][,total][,sello];"
            f" got {','.join(cols)!r}"
        )
    index = {c: i for i, c in enumerate(cols)}
    specs: list[JobSpec] = []
    seen: dict[str, int] = {}
    errors: list[str] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(cols):
                errors.append(f"line {line}: expected {len(cols)} fields, got {len(row)}")
                continue

            def cell(column: str, row: list[str] = row) -> str | None:
                return row[index[column]] if column in index else None

            try:
                spec = job_spec(
                    cell("uuid") or "",
                    cell("rfc") or "",
                    cell("motivo"),
                    cell("folio_sustitucion"),
                    cell("rfc_receptor"),
                    cell("total"),
                    cell("sello"),
                )
            except ValidationError as e:
                errors.append(f"line {line}: {e}")
                continue
            if spec.uuid in seen:
                errors.append(f"line {line}: uuid {spec.uuid} already on line {seen[spec.uuid]}")
                continue
            seen[spec.uuid] = line
            specs.append(spec)
    except csv.Error as e:
        errors.append(f"line {reader.line_num}: {e}")
    except UnicodeDecodeError as e:
        errors.append(f"line {reader.line_num + 1}: not UTF-8 text ({e.reason})")
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED])
        more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
        raise ValidationError(
            f"{name}: {len(errors)} bad row{'s' if len(errors) > 1 else ''}, nothing imported: {shown}{more}"
        )
    return specs
