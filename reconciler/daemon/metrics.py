"""Optional Prometheus metrics (``[metrics] listen``), on a registry of their own."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from reconciler.errors import ConfigError, ListenError

log = logging.getLogger(__name__)


class Metrics:
    """Every figure the daemon exports; one instance per daemon (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("reconciler_jobs", "Jobs in the ledger per state.", ["state"], registry=r)
        self.overdue = Gauge("reconciler_jobs_overdue", "Unresolved jobs past schedule.stale_after_s.", registry=r)
        self.submissions = Counter("reconciler_submissions", "cancelarAsincrono requests sent.", registry=r)
        self.replies = Counter(
            "reconciler_provider_replies",
            "Provider replies by operation, code ('none' when no answer came) and outcome.",
            ["operation", "code", "outcome"],
            registry=r,
        )
        self.notifications = Counter(
            "reconciler_notifications",
            "Notifications seen by outcome (applied, claimed, duplicate, orphan, untrusted, malformed, conflict).",
            ["outcome"],
            registry=r,
        )
        self.mailbox_pass = Histogram(
            "reconciler_mailbox_pass_seconds",
            "Duration of successful mailbox passes.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.mailbox_last_success = Gauge(
            "reconciler_mailbox_last_success_timestamp_seconds", "Unix time of the last successful pass.", registry=r
        )
        self.breaker = Gauge(
            "reconciler_circuit_breaker_open", "1 while an account-level code stops provider calls.", registry=r
        )
        self.heartbeat = Gauge("reconciler_heartbeat_timestamp_seconds", "Unix time of the last heartbeat.", registry=r)
        self.deliveries = Gauge(
            "reconciler_deliveries",
            "Outbox deliveries per webhook or hook endpoint and state (pending, delivered, failed), from the ledger.",
            ["endpoint", "state"],
            registry=r,
        )
        add_process_and_build(r)

    def reply(self, operation: str, code: int | None, outcome: str) -> None:
        self.replies.labels(operation, "none" if code is None else str(code), outcome).inc()

    def counts(self, counts: Mapping[str, int], overdue: int) -> None:
        for state, n in counts.items():
            self.jobs.labels(state).set(n)
        self.overdue.set(overdue)

    def delivery_counts(self, stats: list[Any]) -> None:
        """Per-endpoint delivery counts (:class:`reconciler.events.store.EndpointStat`)."""
        for s in stats:
            for state in ("pending", "delivered", "failed"):
                self.deliveries.labels(s.name, state).set(getattr(s, state))

    def mailbox(self, outcomes: Mapping[str, int], duration_s: float) -> None:
        """One successful mailbox pass: its duration and what each notification came to."""
        for outcome, n in outcomes.items():
            self.notifications.labels(outcome).inc(n)
        self.mailbox_pass.observe(duration_s)
        self.mailbox_last_success.set(time.time())


def serve(metrics: Metrics, listen: str) -> Any:
    """Start the HTTP endpoint on ``host:port``; returns the server (``.shutdown()`` to stop)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"metrics.listen: expected host:port, got {listen!r}")
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=metrics.registry)
    except OSError as e:  # in use, not an address of this machine, unresolvable: may pass, so not a config error
        raise ListenError(f"metrics.listen: cannot listen on {listen}: {e.strerror or e}") from e
    except (UnicodeError, ValueError, OverflowError) as e:  # a host name no resolver accepts
        raise ConfigError(f"metrics.listen: not a usable host:port: {listen!r}") from e
    log.info("metrics on http://%s/metrics", listen)
    return server


def add_process_and_build(registry: CollectorRegistry) -> None:
    """``process_*`` (memory, CPU, open files: Prometheus' process collector) and ``reconciler_build_info``."""
    import platform

    from prometheus_client import ProcessCollector

    from reconciler import __version__

    ProcessCollector(registry=registry)
    build = Gauge(
        "reconciler_build_info",
        "Always 1; the labels say which reconciler and Python run.",
        ["version", "python"],
        registry=registry,
    )
    build.labels(__version__, platform.python_version()).set(1)
