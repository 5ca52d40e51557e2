"""The SAT view SQLite computes for export is the pure function's, for every combination of its inputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import aiosqlite

from reconciler.clock import iso
from reconciler.sat import sqlview
from reconciler.sat.verdict import SatFacts, judge

from ..ledger.varied import combinations

NOW = datetime(2026, 12, 3, 18, 30, 15, 123456, tzinfo=UTC)
# Around `now` to the millisecond (the ledger's form keeps milliseconds, `now` has microseconds).
NEAR = (
    *(iso(NOW + timedelta(milliseconds=d)) for d in (-1, 0, 1)),
    NOW.isoformat(),  # microseconds and +00:00: not the ledger's form, decided by the pure function
    (NOW + timedelta(microseconds=1)).isoformat(),
    iso(NOW)[:-1],  # no Z: naive, read as UTC
    "2026-12-03T12:30:15.200-06:00",  # sorts before `now` as text, is after it in time
    "2026-12-04T00:30:15.000+07:00",  # sorts after `now` as text, is before it in time
)


async def views(rows: list[tuple[str | None, ...]], now: datetime) -> list[str]:
    async with aiosqlite.connect(":memory:") as db:
        await db.execute(
            "CREATE TABLE jobs (state, sat_estado, sat_es_cancelable, sat_estatus_cancelacion, sat_checked_at,"
            " sat_until, sat_late_after)"
        )
        await db.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        await db.create_function(sqlview.PAST, 1, partial(sqlview.past_at, now), deterministic=True)
        got = await db.execute_fetchall(f"SELECT {sqlview.view_sql(now)} FROM jobs ORDER BY rowid")  # noqa: S608
        return [r[0] for r in got]


def test_the_sql_view_is_judge_for_every_combination() -> None:
    pairs = {(s, e, ch) for s, e, _, _, ch, _ in combinations()}
    rows = [(s, e, c, st, ch, "2026-03-01T00:00:00.000Z", late) for s, e, c, st, ch, late in combinations()]
    rows += [(s, e, None, None, ch, None, late) for s, e, ch in sorted(pairs, key=str) for late in NEAR]
    expected = [str(judge(SatFacts(*row), NOW).view) for row in rows]
    assert asyncio.run(views(rows, NOW)) == expected
    # Every view is reached, each kind of late_after decides a view somewhere: the combinations are not idle.
    assert len(set(expected)) == 12
    near = {
        row[6]: view
        for row, view in zip(rows, expected, strict=True)
        if row[:5] == ("awaiting", "Vigente", None, None, "2026-01-02T00:00:00.000Z") and row[6] in NEAR
    }
    assert [near[t] for t in NEAR] == ["late", "late", "accepted", "late", "accepted", "late", "accepted", "late"]
