"""CSV job files: the exact message for each way a file can be wrong, and the stream bound."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pytest

from reconciler.errors import ValidationError
from reconciler.jobs.jobfile import MAX_REPORTED, bounded_lines, parse_jobs, read_rows
from reconciler.jobs.validation import JobSpec

U1, U2, U3 = (
    "71452784-AFC7-4BE5-8623-3BA1436D573B",
    "0D62B12C-BC6C-4626-E211-FC8FE727A5BC",
    "C5E58106-6C1E-41C9-A211-FB8BAD1CABB0",
)
RFC = "EKU9003173C9"


def error(lines: Iterable[str], name: str = "jobs.csv") -> str:
    with pytest.raises(ValidationError) as info:
        parse_jobs(lines, name)
    return str(info.value)


def test_every_column_reaches_the_job() -> None:
    specs = parse_jobs(
        [" UUID , Rfc ,MOTIVO,folio_sustitucion", f"{U1},{RFC},01,{U2}", f"{U2},{RFC},,", f"{U3},{RFC},3,"]
    )
    assert [(s.uuid, s.rfc_emisor, s.motivo, s.folio_sustitucion) for s in specs] == [
        (U1, RFC, "01", U2),
        (U2, RFC, "02", None),
        (U3, RFC, "03", None),
    ]


def test_columns_in_any_order_and_blank_rows_skipped() -> None:
    specs = parse_jobs(["rfc,uuid", "", f"{RFC},{U1}", " , ", f"{RFC},{U2}"])
    assert [(s.uuid, s.rfc_emisor, s.motivo) for s in specs] == [(U1, RFC, "02"), (U2, RFC, "02")]


def test_an_empty_file() -> None:
    assert error([]) == "jobs.csv: empty file (expected the header uuid,rfc,motivo,folio_sustitucion)"


@pytest.mark.parametrize(
    ("header", "shown"),
    # (an unknown column such as "extra" is ignored with a note, not refused: tests/cli/test_files.py)
    [
        ("uuid", "uuid"),
        ("uuid,rfc,uuid", "uuid,rfc,uuid"),
        ("uuid,rfc,total,total", "uuid,rfc,total,total"),
        ("rfc", "rfc"),
    ],
)
def test_a_bad_header(header: str, shown: str) -> None:
    assert (
        error([header])
        == f"jobs.csv: line 1: header must be uuid,rfc[,motivo][,folio_sustitucion][,rfc_receptor][,total][,sello]; got {shown!r}"
    )


def test_bad_rows_are_listed_by_line_and_nothing_is_imported() -> None:
    message = error(
        ["uuid,rfc", f"{U1},{RFC}", f"{U1},{RFC}", "nope,AAA010101AAA", f"{U2},{RFC},x", f"{U3},bad"], "in.csv"
    )
    assert message == (
        "in.csv: 4 bad rows, nothing imported: "
        f"line 3: uuid {U1} already on line 2; "
        "line 4: uuid: not a UUID: 'nope'; "
        "line 5: expected 2 fields, got 3; "
        "line 6: rfc: an RFC has 12 or 13 characters, got 3: 'bad'"
    )


def test_one_bad_row_is_singular() -> None:
    assert error(["uuid,rfc", "x,y"]).startswith("jobs.csv: 1 bad row, nothing imported: line 2: ")


def test_only_the_first_rows_are_shown() -> None:
    rows = [f"bad{i},{RFC}" for i in range(MAX_REPORTED + 3)]
    message = error(["uuid,rfc", *rows])
    assert message.startswith(f"jobs.csv: {MAX_REPORTED + 3} bad rows, nothing imported: line 2: ")
    assert message.endswith(f"line {MAX_REPORTED + 1}: uuid: not a UUID: 'bad{MAX_REPORTED - 1}' (and 3 more)")
    assert message.count("line ") == MAX_REPORTED


def test_exactly_the_limit_has_no_tail() -> None:
    assert not error(["uuid,rfc", *[f"bad{i},{RFC}" for i in range(MAX_REPORTED)]]).endswith("more)")


def test_a_csv_error_names_its_line_and_stops_the_reading() -> None:
    message = error(["uuid,rfc", f"{U1},{RFC}", "x" * 200_000 + ",y", "bad,row"])
    assert message == "jobs.csv: 1 bad row, nothing imported: line 3: field larger than field limit (131072)"


def test_a_csv_error_in_the_header() -> None:
    assert error(["x" * 200_000]) == "jobs.csv: line 1: field larger than field limit (131072)"


def test_undecodable_rows_name_their_line() -> None:
    def rows() -> Iterator[str]:
        yield "uuid,rfc"
        yield f"{U1},{RFC}"
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    assert error(rows()) == "jobs.csv: 1 bad row, nothing imported: line 3: not UTF-8 text (invalid start byte)"


def test_an_undecodable_header() -> None:
    def rows() -> Iterator[str]:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        yield ""

    assert error(rows()) == "jobs.csv: line 1: not UTF-8 text (invalid start byte)"


def test_bounded_lines_stops_at_a_line_without_end() -> None:
    lines = bounded_lines(io.StringIO("a\n" + "x" * 11), "f.csv", limit=10)
    assert next(lines) == "a\n"
    with pytest.raises(ValidationError) as info:
        next(lines)
    assert str(info.value) == "f.csv: line 2: longer than 10 characters; not a job file"


def test_bounded_lines_passes_lines_up_to_the_limit() -> None:
    text = "x" * 9 + "\n" + "w" * 10 + "\n" + "y" * 10
    assert list(bounded_lines(io.StringIO(text), "f.csv", limit=10)) == ["x" * 9 + "\n", "w" * 10 + "\n", "y" * 10]


def test_bounded_lines_reads_at_most_one_character_past_the_limit() -> None:
    with pytest.raises(ValidationError, match=r"^f\.csv: line 1: longer than 10 characters; not a job file$"):
        list(bounded_lines(io.StringIO("x" * 11 + "\n"), "f.csv", limit=10))


def test_bounded_lines_names_undecodable_text() -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"uuid,rfc\n\xff\xfe\n"), encoding="utf-8")
    lines = bounded_lines(stream, "f.csv")
    with pytest.raises(ValidationError, match=r"^f\.csv: line 1: not UTF-8 text \(invalid start byte\)$"):
        list(lines)


def test_the_sat_columns_reach_the_job_and_other_columns_are_named() -> None:
    rows = read_rows(
        ["\ufeffUUID;rfc;Notes;;rfc_receptor;TOTAL;Sello", f"{U1};{RFC};x;y;XAXX010101000; 10.50 ;abcdefghij"],
        "sat.csv",
        delimiter=";",
    )
    assert (rows.name, rows.ignored) == ("sat.csv", ["Notes", "column 4"])
    [(line, spec)] = list(rows.rows)
    assert line == 2 and spec == JobSpec(U1, RFC, "02", None, "XAXX010101000", "10.50", "cdefghij")


def test_a_file_name_and_delimiter_default_to_a_comma_csv() -> None:
    rows = read_rows(["uuid,rfc", f"{U1},{RFC}"])
    assert (rows.name, rows.ignored, [line for line, _ in rows.rows]) == ("<csv>", [], [2])
    with pytest.raises(ValidationError) as info:
        parse_jobs(["uuid,rfc", "x,y", "z,w"])
    assert str(info.value).startswith("<csv>: 2 bad rows, nothing imported: line 2: uuid: not a UUID: 'x'; line 3:")
    assert parse_jobs(["uuid;rfc", f"{U1};{RFC}"], "x.csv", ";") == [JobSpec(U1, RFC, "02", None)]


def test_a_row_missing_its_required_cells_names_them() -> None:
    rows = read_rows(["uuid,rfc,motivo", ",,02", f"{U1},,"])
    assert list(rows.rows) == [(2, "uuid: not a UUID: ''"), (3, "rfc: an RFC has 12 or 13 characters, got 0: ''")]
