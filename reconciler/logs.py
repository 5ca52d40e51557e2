"""Logging set up once at the entry point: one line per event, journald-friendly, secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.redact import Redactor, one_line


class SecretFilter(logging.Filter):
    """Last line of defence: mask the known secrets in a formatted record and its traceback.

    The masking is :class:`reconciler.redact.Redactor`'s, the same as for SOAP traces.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked = self._redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


class OneLineFilter(logging.Filter):
    """Every record's message is one line: CR, LF and other controls in it are escaped.

    The arguments of a log call are often outside text (a provider's ``mensaje``, a From
    header, a Message-ID); a newline in one would write a forged second line into the log.
    The whole formatted message is escaped (the templates have no line breaks of their
    own); a traceback (``exc_info``) is formatted apart and stays multi-line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler's own error report
            return True
        escaped = one_line(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


@dataclass(frozen=True, slots=True)
class LogSetup:
    """How :func:`setup` was last called: a child process (the outbox worker) logs the same way."""

    level: str = "INFO"
    journal: bool = False
    secrets: tuple[str, ...] = ()
    fmt: str = "text"


_current = LogSetup()


def current() -> LogSetup:
    return _current


def setup(level: str = "INFO", *, journal: bool = False, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Configure the root logger: ``text`` or ``json``; under journald no timestamps, a priority prefix."""
    from reconciler.logformat import Formatter, SkippedRunFilter

    global _current
    secrets = tuple(secrets)
    _current = LogSetup(level.upper(), journal, secrets, fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(fmt, journal=journal))
    handler.addFilter(SecretFilter(secrets))
    handler.addFilter(OneLineFilter())  # after the secrets are masked: an escaped secret would not match
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter that would log payloads or per-request lines at INFO/DEBUG.
    for noisy in ("httpx", "httpcore", "zeep", "apscheduler", "imapclient", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # zeep logs a traceback for every reply value that does not parse as its type (a status
    # "abc"); the provider module reports that reply in one line of its own.
    logging.getLogger("zeep.xsd.types.simple").setLevel(logging.CRITICAL)
    logging.getLogger("apscheduler.scheduler").addFilter(SkippedRunFilter())
