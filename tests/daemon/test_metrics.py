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
    # Counted against what the daemon wrote in the ledger, not against the number of jobs: on a loaded
    # machine a submission can time out and be sent again (the simulator then answers 701).
    assert m[("reconciler_submissions_total", ())] == stack.query("SELECT sum(attempts) FROM jobs")[0][0] >= len(uuids)
    replies = dict(
        stack.query("SELECT json_extract(detail, '$.code'), count(*) FROM events WHERE kind = 'reply' GROUP BY 1")
    )
    for code, outcome in ((204, "rejected"), (211, "accepted"), (200, "accepted")):
        key = (
            "reconciler_provider_replies_total",
            (("code", str(code)), ("operation", "cancelarAsincrono"), ("outcome", outcome)),
        )
        assert m[key] == replies[code], (code, replies)
    assert replies[204] >= 5 and replies[211] + replies.get(701, 0) >= 5
    assert m[("reconciler_notifications_total", (("outcome", "untrusted"),))] == 1
    claimed = stack.query(
        "SELECT count(*) FROM events WHERE kind = 'notification' AND json_extract(detail, '$.outcome') = 'claimed'"
    )[0][0]
    assert m[("reconciler_notifications_total", (("outcome", "claimed"),))] == claimed >= 1
    assert m[("reconciler_mailbox_pass_seconds_count", ())] >= 1
    assert m[("reconciler_mailbox_last_success_timestamp_seconds", ())] > 0
    assert m[("reconciler_circuit_breaker_open", ())] == 0
    assert stack.stop_daemon(signal.SIGTERM) == 0
