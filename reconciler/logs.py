"""Logging set up once at the entry point: one line per event, journald-friendly, secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

MASK = "***"


class SecretFilter(logging.Filter):
    """Last line of defence: replace any known secret value in a formatted record with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        changed = False
        for secret in self._secrets:
            if secret in message:
                message = message.replace(secret, MASK)
                changed = True
            if record.exc_text and secret in record.exc_text:
                record.exc_text = record.exc_text.replace(secret, MASK)
        if changed:
            record.msg, record.args = message, None
        return True


def setup(level: str = "INFO", *, journal: bool = False, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger: no timestamps under journald (it adds its own)."""
    fmt = "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter that would log payloads or per-request lines at INFO/DEBUG.
    for noisy in ("httpx", "httpcore", "zeep", "apscheduler", "imapclient", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
