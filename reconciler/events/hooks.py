"""The one seam to command hooks: run an argv (no shell) with the event JSON on stdin.

The hook gets the event's main fields as ``RECONCILER_EVENT_*`` variables and a
minimal environment (``PATH``, ``LANG``, ``LC_ALL``, ``TZ``, ``HOME``): never the
daemon's own, which may hold ``RECONCILER_*`` secrets or ``CREDENTIALS_DIRECTORY``.
Exit 0 is delivered; anything else, or running past the timeout (the whole process
group is killed), is a failed attempt retried like a webhook.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import suppress

from reconciler.events.outbox import Attempt, OutboxEvent

log = logging.getLogger(__name__)

_PASSED = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")
_OUTPUT_SHOWN = 500  # characters of stdout/stderr logged per stream


def _shown(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text[:_OUTPUT_SHOWN] + ("..." if len(text) > _OUTPUT_SHOWN else "")


class HookRunner:
    def __init__(self, name: str, command: list[str], *, timeout_s: float) -> None:
        self.name = name
        self.command = command
        self.timeout_s = timeout_s

    def _environment(self, event: OutboxEvent) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSED if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(event.environment())
        return env

    async def send(self, event: OutboxEvent) -> Attempt:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment(event),
                start_new_session=True,
            )
        except OSError as e:
            return Attempt(ok=False, error=f"cannot run {self.command[0]}: {e.strerror or e}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(event.body()), self.timeout_s)
        except TimeoutError:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return Attempt(ok=False, error=f"timed out after {self.timeout_s:g}s (killed)")
        for stream, data in (("stdout", out), ("stderr", err)):
            if data.strip():
                log.info("hook %s %s for %s: %s", self.name, stream, event.id, _shown(data))
        if proc.returncode == 0:
            return Attempt(ok=True, status=0)
        return Attempt(ok=False, status=proc.returncode, error=f"exit status {proc.returncode}")

    async def aclose(self) -> None:
        return None
