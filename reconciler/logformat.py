"""How a log line looks: text or JSON, with the syslog priority prefix when stderr is the journal.

Under systemd, stderr is a stream into journald (``$JOURNAL_STREAM``); a line that starts with
``<N>`` gets priority N (sd-daemon(3)), so ``journalctl -p warning`` finds the warnings.  The
prefix goes on every line of a record, traceback lines included, and never when stderr is not
the journal.  JSON is one object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# logging level -> syslog priority (sd-daemon(3): <2> crit, <3> err, <4> warning, <6> info, <7> debug)
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

# apscheduler's note that a pass was still running when its next tick came: expected (a pass can
# outlast its interval), so it is debug, not a warning an operator should chase.
_SKIPPED_RUN = "maximum number of running instances reached"


def priority(levelno: int) -> int:
    """The syslog priority of a logging level."""
    for level, prio in _PRIORITY:
        if levelno >= level:
            return prio
    return 7


class Formatter(logging.Formatter):
    """``text`` (``LEVEL logger: message``, a timestamp unless under journald) or ``json``; ``<N>`` under journald."""

    def __init__(self, fmt: str = "text", *, journal: bool = False) -> None:
        text = "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(text)
        self.json = fmt == "json"
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = self._json(record) if self.json else super().format(record)
        if not self.journal:
            return line
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + part for part in line.split("\n"))

    def _json(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


class SkippedRunFilter(logging.Filter):
    """Turns apscheduler's "maximum number of running instances reached" warning into a debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SKIPPED_RUN in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True
