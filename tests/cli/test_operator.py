"""Operator controls through the real CLI: holds, the pause and requeue against the real daemon, the
simulator over HTTP and Dovecot; forget, submit and import --dry-run on real ledger files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..harness import Stack, generated_uuids, start_stack, wait_until

RFC = "AAA010101AAA"
OTHER_RFC = "XAXX010101000"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path / "stack", notify_delay_s=0.2, schedule={"status_check_after_s": 1.0})
    yield s
    s.close()


def cli(stack: Stack, *args: str) -> tuple[int, str]:
    done = run_cli("--config", str(stack.config), *args)
    return done.returncode, done.stdout + done.stderr


def sent(stack: Stack) -> list[str]:
    return [e.uuid or "" for e in stack.sandbox.record.entries() if e.operation == "cancelarAsincrono"]


def events(stack: Stack, uuid: str | None, kind: str) -> list[dict[str, str]]:
    sql = "SELECT detail FROM events WHERE kind = ? AND uuid IS ?"
    return [json.loads(r[0]) for r in stack.query(sql, (kind, uuid))]


def test_held_and_paused_jobs_are_never_sent_and_requeue_sends_again(stack: Stack) -> None:
    error_job, ok_job = generated_uuids(2, seed=13)  # the first ends in E: the simulator ends it in ERROR
    held_job = generated_uuids(3, seed=14)[1]
    stack.queue([held_job, ok_job, error_job])
    assert cli(stack, "hold", held_job)[0] == 0
    assert cli(stack, "pause", "--reason", "CSD renewal")[0] == 0

    # Paused: a whole daemon pass sends nothing, yet the mailbox is still read.
    once = stack.run_once()
    assert once.returncode == 0, once.stderr
    assert sent(stack) == []
    assert stack.query("SELECT count(*) FROM facts WHERE key = 'mailbox_pass'") == [(1,)]
    code, out = cli(stack, "check")
    # WARNING or worse (a finished `run --once` soon reads as a stopped daemon): the level is tests/daemon/test_health.
    assert code >= 1 and "submissions paused by" in out and "(CSD renewal)" in out, out
    summary = json.loads(run_cli("--config", str(stack.config), "summary", "--json").stdout)
    assert summary["paused"]["reason"] == "CSD renewal"
    [paused] = events(stack, None, "pause")
    assert paused["action"] == "paused" and paused["user"] and paused["command"].endswith("pause --reason CSD renewal")

    # Unpaused: everything but the held job goes out and resolves.
    assert cli(stack, "unpause")[0] == 0

    def resolved() -> bool:
        stack.run_once()
        states = stack.states()
        return states[error_job] == "error" and states[ok_job] == "ok"

    wait_until(resolved, 60, "the two unheld jobs to resolve")
    assert held_job not in sent(stack)
    assert stack.states()[held_job] == "queued"
    assert [e["action"] for e in events(stack, held_job, "hold")] == ["held"]

    # Requeue: the error job is sent again; an ok job is refused and nothing changes.
    code, out = cli(stack, "requeue", error_job, ok_job)
    assert code == 2 and f"job {ok_job} is ok" in out and "nothing requeued" in out, out
    assert stack.states()[error_job] == "error"
    code, out = cli(stack, "requeue", "--state", "error")
    assert code == 0 and "requeued 1 job" in out, out
    assert stack.query("SELECT state, resolved_at, code FROM jobs WHERE uuid = ?", (error_job,)) == [
        ("queued", None, None)
    ]
    wait_until(lambda: (stack.run_once(), sent(stack).count(error_job) == 2)[1], 60, "the requeued job to be sent")
    [requeued] = events(stack, error_job, "requeue")
    assert requeued["command"].endswith("requeue --state error")

    # Released: sent at the next pass.
    assert cli(stack, "release", held_job)[0] == 0
    wait_until(lambda: (stack.run_once(), held_job in sent(stack))[1], 60, "the released job to be sent")
    assert [e["action"] for e in events(stack, held_job, "hold")] == ["held", "released"]


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n')
    return {"RECONCILER_CONFIG": str(config)}


def test_hold_refuses_unknown_and_finished_jobs_and_holds_the_rest(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b, c = generated_uuids(3, seed=3)
    for u in (a, b):
        assert run_cli("submit", u, "--rfc", RFC, env=cfg).returncode == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE jobs SET state = 'ok' WHERE uuid = ?", (b,))
    done = run_cli("hold", a, b, c, "--json", env=cfg)
    assert done.returncode == 1
    assert {o["uuid"]: o["changed"] for o in json.loads(done.stdout)} == {a: True, b: False, c: False}
    assert "not in the ledger" in done.stdout and "already ok" in done.stdout
    held = json.loads(run_cli("held", "--json", env=cfg).stdout)
    assert [h["uuid"] for h in held] == [a] and held[0]["by"]


def test_forget_only_a_queued_job_never_sent(tmp_path: Path, cfg: dict[str, str]) -> None:
    a, b, c = generated_uuids(3, seed=4)
    for u in (a, b, c):
        assert run_cli("submit", u, "--rfc", RFC, env=cfg).returncode == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE jobs SET attempts = 1 WHERE uuid = ?", (b,))  # claimed once: it may have left
        db.execute("UPDATE jobs SET state = 'awaiting' WHERE uuid = ?", (c,))
    for other, why in ((b, "claimed for sending 1 time"), (c, "is awaiting")):
        done = run_cli("forget", a, other, env=cfg)
        assert done.returncode == 2 and why in done.stderr and "nothing forgotten" in done.stderr, done.stderr
    done = run_cli("forget", a, env=cfg)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert {r[0] for r in db.execute("SELECT uuid FROM jobs")} == {b, c}
        kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE uuid = ? ORDER BY id", (a,))]
        assert kinds == ["created", "forgotten"]


def test_submit_of_a_known_uuid_with_other_details_says_so(cfg: dict[str, str]) -> None:
    [u] = generated_uuids(1, seed=5)
    assert run_cli("submit", u, "--rfc", RFC, env=cfg).returncode == 0
    same = run_cli("submit", u, "--rfc", RFC, env=cfg)
    assert same.returncode == 0 and "nothing changed" in same.stdout
    for args in (("--rfc", OTHER_RFC), ("--rfc", RFC, "--motivo", "03")):
        done = run_cli("submit", u, *args, env=cfg)
        assert done.returncode == 2 and "already in the ledger with rfc AAA010101AAA, motivo 02" in done.stderr
