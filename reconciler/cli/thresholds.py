"""``check -w/-c KEY=VALUE``: the Nagios-style thresholds for overdue jobs and the heartbeat's age."""

from __future__ import annotations

from typing import Any

import click

from reconciler.daemon.health import Thresholds

# KEY -> (what it measures, the unit, a whole number?)
KEYS = {"overdue": ("overdue jobs", "jobs", True), "heartbeat": ("the heartbeat's age", "seconds", False)}


def _parse(option: str, values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        key, sep, number = value.partition("=")
        key = key.strip().lower()
        if not sep or key not in KEYS:
            raise click.BadParameter(f"{value!r}: expected overdue=N or heartbeat=SECONDS", param_hint=f"'{option}'")
        try:
            parsed = float(number) if not KEYS[key][2] else int(number)
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: {number!r} is not a {'whole ' if KEYS[key][2] else ''}number of {KEYS[key][1]}",
                param_hint=f"'{option}'",
            ) from None
        if not 0 < parsed < 10**9:
            raise click.BadParameter(f"{value!r}: must be above 0", param_hint=f"'{option}'")
        out[key] = parsed
    return out


def thresholds(warning: tuple[str, ...], critical: tuple[str, ...]) -> Thresholds:
    """The parsed ``-w`` and ``-c`` options; a critical threshold below its warning one is an error."""
    w, c = _parse("-w", warning), _parse("-c", critical)
    for key in w.keys() & c.keys():
        if c[key] < w[key]:
            raise click.BadParameter(
                f"{key}: the critical threshold ({c[key]:g}) is below the warning one ({w[key]:g})", param_hint="'-c'"
            )
    return Thresholds(
        overdue_warning=_int(w.get("overdue")),
        overdue_critical=_int(c.get("overdue")),
        heartbeat_warning_s=w.get("heartbeat"),
        heartbeat_critical_s=c.get("heartbeat"),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


warning_option = click.option(
    "-w",
    "--warning",
    "warning",
    multiple=True,
    metavar="KEY=N",
    help="WARNING from this many overdue jobs (overdue=N) or this heartbeat age (heartbeat=SECONDS).",
)
critical_option = click.option(
    "-c",
    "--critical",
    "critical",
    multiple=True,
    metavar="KEY=N",
    help="CRITICAL from this many overdue jobs (overdue=N) or this heartbeat age (heartbeat=SECONDS).",
)
