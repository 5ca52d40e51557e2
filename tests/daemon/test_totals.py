"""The run's totals: what each reply counts in, and the summary line."""

from __future__ import annotations

import pytest

from reconciler.daemon.totals import Totals
from reconciler.provider.outcomes import Tally


@pytest.mark.parametrize("tally", ["accepted", "rejected", "retried", "confirmed", "requeued"])
def test_a_reply_counts_in_its_tally_only(tally: Tally) -> None:
    totals = Totals()
    totals.count(tally)
    totals.count(tally)
    assert totals.as_dict() == {**Totals().as_dict(), tally: 2}


def test_a_reply_without_a_tally_counts_nothing() -> None:
    totals = Totals()
    totals.count(None)
    assert totals == Totals()


def test_the_line_names_every_total() -> None:
    totals = Totals(sent=9, accepted=5, rejected=1, retried=3, confirmed=4, status_calls=7, requeued=2)
    assert totals.line() == ("sent 9 (accepted 5, rejected 1, retried 3); status calls 7 (resolved 4, resubmitted 2)")
    assert totals.as_dict() == {
        "sent": 9,
        "accepted": 5,
        "rejected": 1,
        "retried": 3,
        "confirmed": 4,
        "status_calls": 7,
        "requeued": 2,
    }
