"""The Prometheus endpoint of a running daemon, scraped over HTTP and compared with the ledger."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator
from email.utils import make_msgid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.sandbox.imapserver import free_port

from ..harness import TESTING_UUIDS, Stack, generated_uuids, start_stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    port = free_port()
    s = start_stack(tmp_path / "stack", extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    s.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    yield s
    s.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_match_the_ledger(stack: Stack) -> None:
    uuids = TESTING_UUIDS + generated_uuids(30, seed=9)
    stack.queue(uuids)
    forged_uuid = uuids[-1]
    stack.imap.deliver(
        (
            f"From: evil@solucionfactible.com.mx\r\nMessage-ID: {make_msgid()}\r\nX-SFService: Cancelar\r\n"
            f"X-UUIDCancelacion: {forged_uuid}\r\nX-StatusCancelacion: OK\r\n\r\nx\r\n"
        ).encode()
    )
    stack.start_daemon()
    wait_until(lambda: stack.unresolved() == 0, 90, "the jobs to resolve")
    url = stack.metrics_url  # type: ignore[attr-defined]

    def settled() -> bool:  # gauges follow the heartbeat (every 10 s at most)
        m = scrape(url)
        return (
            m.get(("reconciler_jobs", (("state", "awaiting"),))) == 0
            and m.get(("reconciler_jobs", (("state", "queued"),))) == 0
        )

    wait_until(settled, 30, "the job gauges to catch up")
    m = scrape(url)
    counts = dict(stack.query("SELECT state, count(*) FROM jobs GROUP BY state"))
    for state in ("ok", "error", "rejected"):
        assert m[("reconciler_jobs", (("state", state),))] == counts.get(state, 0)
    assert m[("reconciler_submissions_total", ())] == len(uuids)
    assert (
        m[
            (
                "reconciler_provider_replies_total",
                (("code", "204"), ("operation", "cancelarAsincrono"), ("outcome", "rejected")),
            )
        ]
        == 5
    )
    assert (
        m[
            (
                "reconciler_provider_replies_total",
                (("code", "211"), ("operation", "cancelarAsincrono"), ("outcome", "accepted")),
            )
        ]
        == 5
    )
    assert m[("reconciler_notifications_total", (("outcome", "untrusted"),))] == 1
    assert m[("reconciler_notifications_total", (("outcome", "claimed"),))] >= counts["ok"] - 5
    assert m[("reconciler_mailbox_pass_seconds_count", ())] >= 1
    assert m[("reconciler_mailbox_last_success_timestamp_seconds", ())] > 0
    assert m[("reconciler_circuit_breaker_open", ())] == 0
    assert stack.stop_daemon(signal.SIGTERM) == 0
