"""What ``reconciler import PATH...`` reads: CSV job files, CFDI XML files and directories of them.

All or nothing: every file is read and validated before anything is queued; the errors
are listed by path (and line, for CSV) and nothing is imported when there is one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

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
