"""What one daemon run did, counted as replies come in, for the summary line at exit and ``run --once --json``.

Pure: the daemon counts each request it sends and hands over the :data:`~reconciler.provider.outcomes.Tally`
of each reply's decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from reconciler.provider.outcomes import Tally


@dataclass
class Totals:
    """Requests sent and what their replies did to the jobs."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    confirmed: int = 0
    status_calls: int = 0
    requeued: int = 0

    def count(self, tally: Tally | None) -> None:
        """Count one reply's effect (None: a reply that leaves the job where it was)."""
        if tally is not None:
            setattr(self, tally, getattr(self, tally) + 1)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"sent {self.sent} (accepted {self.accepted}, rejected {self.rejected}, retried {self.retried}); "
            f"status calls {self.status_calls} (resolved {self.confirmed}, resubmitted {self.requeued})"
        )
