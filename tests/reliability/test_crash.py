"""Crash: kill -9 of the real daemon at chosen and random moments; restarts converge, exactly once.

The daemon runs as a subprocess against the in-process simulator and a real Dovecot, reached
through a :class:`TcpTap`. Each cycle starts it and kills it (SIGKILL) at one moment, chosen
with a seeded RNG among:

* ``submit``: inside the simulator, right after it accepted the k-th ``cancelarAsincrono`` and
  before the reply leaves (the request took effect, the daemon never learns it);
* ``status``: the same for the k-th ``getStatusCancelacionAsincrona`` (confirmer/chaser);
* ``fetch``: when the k-th ``UID FETCH`` of a mailbox pass leaves the daemon (mid-pass: earlier
  batches of the pass are committed, later ones not);
* ``flag``: when ``UID STORE`` leaves the daemon, which it sends only after the ledger committed
  the batch: the kill lands between the commit and the IMAP flag, every time (checked: the
  ledger then holds ``messages`` rows with mark=1 above the folder's ``marked_uid``);
* ``random``: after a random delay from the start (start-up, recovery, whatever is running).

After every kill the ledger passes ``PRAGMA integrity_check`` and no terminal state changed.
At the end one clean run drains everything and :func:`check_invariants` holds.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..harness import TESTING_UUIDS, Stack, generated_uuids, start_stack, wait_until
from .support import (
    FETCH,
    STORE,
    Killer,
    TcpTap,
    check_invariants,
    delivered,
    hook_simulator,
    ingested,
    integrity,
    kill_daemon,
    pending_marks,
    spawn_daemon,
    wait_started,
)

SEED = 20251124
KILLS = 40
WAVE = 50
BATCH = 20  # mailbox.batch_size: several FETCH/STORE rounds per pass
TRIGGER_DEADLINE_S = 8.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Stack, TcpTap, Killer]]:
    stack = start_stack(tmp_path / "stack", notify_delay_s=0.3)
    killer = Killer()

    def on_client(_conn: int, data: bytes) -> bool:
        if FETCH.search(data):
            killer.hit("fetch")  # the FETCH still goes out: the daemon dies waiting for its answer
        # A STORE leaves only after the ledger committed its batch: cut it, and it is never flagged.
        return not (STORE.search(data) and killer.hit("flag"))

    tap = TcpTap(stack.imap.host, stack.imap.port, on_client)
    hook_simulator(stack, killer)
    try:
        yield stack, tap, killer
    finally:
        killer.disarm()
        stack.close()
        tap.close()


def _terminal(stack: Stack) -> dict[str, str]:
    return {u: s for u, s in stack.states().items() if s in ("ok", "error", "rejected")}


@pytest.mark.timeout(240)
def test_kill_9_at_random_moments_converges_exactly_once(rig: tuple[Stack, TcpTap, Killer]) -> None:
    stack, tap, killer = rig
    rng = random.Random(SEED)
    env = {"RECONCILER_MAILBOX__PORT": str(tap.port), "RECONCILER_MAILBOX__BATCH_SIZE": str(BATCH)}
    pool = TESTING_UUIDS + generated_uuids(10 * WAVE - len(TESTING_UUIDS), seed=SEED)
    rng.shuffle(pool)
    queued: list[str] = []

    def queue_wave() -> bool:
        wave = pool[len(queued) : len(queued) + WAVE]
        if not wave:
            return False
        stack.queue(wave)
        queued.extend(wave)
        return True

    queue_wave()
    # A seeded plan, so that every kind of moment is hit several times whatever the timing.
    plan = ["submit"] * 8 + ["status"] * 6 + ["fetch"] * 8 + ["flag"] * 8 + ["random"] * (KILLS - 30)
    rng.shuffle(plan)
    fired: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    terminal: dict[str, str] = {}
    started = time.monotonic()
    for cycle, mode in enumerate(plan, 1):
        states = Counter(stack.states().values())
        backlog = delivered(stack) - ingested(stack) + pending_marks(stack)
        idle = states["queued"] + states["submitting"] + states["awaiting"] == 0 and backlog == 0
        starved = (mode == "submit" and states["queued"] + states["submitting"] == 0) or (
            mode in ("fetch", "flag") and backlog == 0
        )
        if idle or starved:
            queue_wave()
        count = {
            "submit": rng.randint(1, 30),
            "status": rng.randint(1, max(1, min(8, states["awaiting"]))),
            "fetch": rng.randint(1, max(1, min(3, -(-backlog // BATCH)))),
            "flag": rng.randint(1, max(1, min(2, -(-backlog // BATCH)))),
        }.get(mode, 0)
        proc = spawn_daemon(stack, env=env)
        if mode == "random":
            time.sleep(rng.uniform(0.05, 1.2))  # the random moment itself, not a wait for a condition
            proc.send_signal(signal.SIGKILL)
            fired[mode] += 1
        else:
            killer.arm(proc.pid, mode, count)
            if killer.fired.wait(TRIGGER_DEADLINE_S):
                fired[mode] += 1
            else:  # the moment never came (the work ran out first): a kill at an arbitrary moment
                killer.disarm()
                missed[mode] += 1
        code = kill_daemon(stack)
        assert code == -signal.SIGKILL, f"cycle {cycle} ({mode}): the daemon exited by itself with {code}"
        assert integrity(stack.ledger) == "ok", f"cycle {cycle} ({mode})"
        if mode == "flag" and killer.fired.is_set():
            assert pending_marks(stack) > 0, "the flag kill did not land between commit and flag"
        now = _terminal(stack)
        assert {u: now.get(u) for u in terminal} == terminal, f"cycle {cycle}: a terminal state changed"
        terminal = now

    kill_phase_s = time.monotonic() - started
    spawn_daemon(stack, env=env)
    wait_started(stack)
    wait_until(
        lambda: stack.unresolved() == 0 and pending_marks(stack) == 0 and ingested(stack) >= delivered(stack),
        90,
        "every job to resolve after the kills",
    )
    assert stack.stop_daemon(signal.SIGTERM) == 0
    figures = check_invariants(stack, queued)
    total = sum(fired.values()) + sum(missed.values())
    print(
        f"\ncrash: {total} kill -9 in {kill_phase_s:.0f}s over {len(queued)} jobs; "
        f"at the chosen moment: {dict(fired)}; work ran out first: {dict(missed)}; {figures}"
    )
    assert total >= 30
    for mode in ("submit", "status", "fetch", "flag"):
        assert fired[mode] >= 3, f"{mode} hit only {fired[mode]} times: {dict(fired)}"
    # Every submit kill left an accepted request unrecorded: its resend was answered 701.
    assert figures["repeats_701"] >= fired["submit"]
    log = stack.log_text()
    assert "Traceback" not in log
    assert "were in flight when the last run ended" in log
    assert "marking" in log and "committed before an interruption" in log
