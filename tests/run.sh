#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, then lint, types, tests.
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
as_root() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=""
apt_install() {
  # A failed install is not fatal: the tests that need the tool fall back (pymap) or skip, saying why.
  if as_root; then
    [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null || true; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
      || echo "tests/run.sh: could not install $*: the tests that need it fall back or skip" >&2
  else
    echo "tests/run.sh: $* missing and not root: the tests that need it fall back or skip" >&2
  fi
}
# Real servers and tools the tests drive: Dovecot (IMAP) and systemd-analyze.
command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || apt_install dovecot-imapd
command -v systemd-analyze >/dev/null || apt_install systemd
# The independent XML-DSig verifier every locally signed cancellation is held to.
command -v xmlsec1 >/dev/null || apt_install xmlsec1
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || { apt_install python3-venv && "$PYTHON" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy reconciler
# Two workers (pytest-xdist), work-stealing: most tests wait on servers and subprocesses, and the long ones
# (kill -9 cycles, the fuzzers) would otherwise run one after another. A later `-n 0` in the arguments wins.
.venv/bin/python -m pytest -n 2 --dist worksteal "$@"
