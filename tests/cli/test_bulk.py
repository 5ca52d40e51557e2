"""``status --json`` and ``export`` through the real CLI on a ledger of every combination the readers
shape, byte for byte against what the pure functions and Python's writers make of the same jobs;
and the blocks SQLite joins, across block boundaries and limits, against one plain query."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cli import bulk
from reconciler.clock import iso, parse_iso
from reconciler.jobs.records import Job
from reconciler.ledger import reading
from reconciler.ledger.store import Ledger
from reconciler.redact import csv_cell
from reconciler.sat.verdict import facts_of, judge

from ..conftest import run_cli
from ..ledger.varied import fill

EXPORTED = [f for f in reading.CSV_FIELDS if f != "sat"]


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[Job]]:
    path = tmp_path_factory.mktemp("bulk") / "ledger.db"
    env = {"RECONCILER_LEDGER__PATH": str(path)}
    assert run_cli("submit", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "--rfc", "AAA010101AAA", env=env).returncode == 0
    assert fill(path, copies=2) > reading.BLOCK  # two blocks at least

    async def jobs() -> list[Job]:  # in the order queued (rowid)
        async with await Ledger.open_readonly(path) as ledger:
            order = {r[0]: i for i, r in enumerate(await ledger.read("SELECT uuid FROM jobs ORDER BY rowid"))}
            return sorted(await ledger.list_jobs(), key=lambda j: order[j.uuid])

    return env, asyncio.run(jobs())


def _out(*args: str, env: dict[str, str]) -> str:
    """The CLI's stdout as it wrote it (no newline translation: a lone carriage return is data)."""
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8")


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _exported(job: Job, now: datetime) -> dict[str, Any]:
    shape = job.as_dict()
    out = {k: shape[k] for k in EXPORTED[: EXPORTED.index("sat_estado")]}
    out["sat"] = str(judge(facts_of(job), now).view)
    return out | {k: shape[k] for k in EXPORTED[EXPORTED.index("sat_estado") :]}


def _field(value: Any) -> str:
    """A CSV field as the export writes it: booleans true/false, a formula start defused, quoted when
    it holds a comma, a quote or a line end (a lone carriage return too)."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(csv_cell(value))
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def test_status_json_is_every_job_as_dict_newest_first(varied: tuple[dict[str, str], list[Job]]) -> None:
    env, jobs = varied
    assert (
        _out("status", "--json", "--limit", "0", env=env)
        == "[\n" + ",\n".join(_dumps(j.as_dict()) for j in reversed(jobs)) + "\n]\n"
    )
    some = _out("status", "--json", "--limit", "7", "--state", "ok", env=env)
    assert some == "[\n" + ",\n".join([_dumps(j.as_dict()) for j in reversed(jobs) if j.state == "ok"][:7]) + "\n]\n"
    assert _out("status", "--json", "--rfc", "NOPE010101AAA", env=env) == "[]\n"


def test_export_jsonl_and_csv_are_the_pure_functions_bytes(varied: tuple[dict[str, str], list[Job]]) -> None:
    env, jobs = varied
    now = datetime.now(UTC)  # every time in the ledger is decades from it
    jsonl = _out("export", "--format", "jsonl", env=env)
    assert jsonl == "".join(_dumps(_exported(j, now)) + "\n" for j in jobs)
    assert len({json.loads(line)["sat"] for line in jsonl.split("\n")[:-1]}) == 12  # every view
    csv_text = _out("export", env=env)
    rows = [",".join(_field(v) for v in _exported(j, now).values()) + "\n" for j in jobs]
    assert csv_text == ",".join(reading.CSV_FIELDS) + "\n" + "".join(rows)
    # In a zone: the same rows with their times moved, written by Python's csv module.
    zone = ZoneInfo("America/Mexico_City")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(reading.CSV_FIELDS)
    for job in jobs:
        row = {k: str(v).lower() if isinstance(v, bool) else csv_cell(v) for k, v in _exported(job, now).items()}
        for k in ("created_at", "submitted_at", "resolved_at"):
            if row[k]:
                row[k] = parse_iso(row[k]).astimezone(zone).isoformat(timespec="milliseconds")
        writer.writerow(row.values())
    assert _out("export", "--tz", "America/Mexico_City", env=env) == out.getvalue()


@pytest.mark.parametrize("size", [1000, reading.BLOCK])
def test_blocks_are_one_query_across_boundaries(varied: tuple[dict[str, str], list[Job]], size: int) -> None:
    env, _ = varied

    async def both(query: reading.Query) -> tuple[bytes, bytes]:
        async with await Ledger.open_readonly(env["RECONCILER_LEDGER__PATH"]) as ledger:
            got: list[bytes] = []
            n = await reading.blocks(ledger, "uuid || ':' || state", query, ";", got.append, size=size)
            sql, params = query.sql("uuid || ':' || state")
            plain = ";".join(r[0] for r in await ledger.read(sql, params)).encode()
            assert n == (plain.count(b";") + 1 if plain else 0)
            return b";".join(got), plain

    for query in (
        reading.Query(),
        reading.Query(newest_first=True, limit=100),
        reading.Query(state="awaiting", limit=15),
        reading.Query(newest_first=True, limit=2500),
        reading.Query(limit=3000),
        reading.Query(newest_first=True, state="ok"),
        reading.Query(rfc="NOPE010101AAA"),
    ):
        got, plain = asyncio.run(both(query))
        assert got == plain, query


ZONES = (
    "America/Mexico_City",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Africa/Monrovia",
    "Europe/Dublin",
    "Pacific/Apia",
)
INSTANTS = st.datetimes(min_value=datetime(1850, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.lists(INSTANTS.map(iso) | st.text("0123456789-:.TZ+", max_size=26), max_size=30))
def test_times_moved_by_the_minute_are_moved_exactly(zone: str, times: list[str]) -> None:
    """The per-minute shortcut of export --tz gives what converting each time gives, or the same error."""
    local = partial(bulk._local, ZoneInfo(zone), {})
    for when in [*times, *(t[:17] + "60" + t[19:] for t in times), *(t[:16] + "x" + t[17:] for t in times)]:
        try:
            expected: str | type[Exception] = bulk._convert(ZoneInfo(zone), when)
        except ValueError:
            expected = ValueError
        try:
            got: str | type[Exception] = local(when)
        except ValueError:
            got = ValueError
        assert got == expected, when


@pytest.mark.parametrize("args", [("status", "--json", "--limit", "0"), ("export", "--format", "jsonl")])
def test_a_reader_that_leaves_early_stops_it_quietly(
    varied: tuple[dict[str, str], list[Job]], args: tuple[str, ...]
) -> None:
    """``| head``: exit 1 and not a word on stderr (the reading stopped cleanly, nothing left running)."""
    env, _ = varied
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline()
        proc.stdout.close()  # the rest (megabytes) cannot fit in the pipe
        assert proc.wait(60) == 1
        assert proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()
