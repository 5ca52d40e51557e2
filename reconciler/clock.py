"""Time as data: UTC instants and their fixed-width ISO-8601 text form.

The ledger stores times as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` so that text order is
time order and SQLite can compare them directly.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    """Fixed-width UTC ISO-8601 with milliseconds and a ``Z``; naive datetimes are refused."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: times in reconciler are always timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`iso`; also accepts any ISO-8601 with an offset."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
