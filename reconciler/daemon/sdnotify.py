"""The daemon's side of systemd's notify protocol, without libsystemd.

Under ``Type=notify`` the service manager passes a datagram socket in
``$NOTIFY_SOCKET``; the daemon sends newline-separated ``KEY=VALUE`` fields to
it: ``READY=1`` once it serves, ``WATCHDOG=1`` as a heartbeat, ``STATUS=...``
for ``systemctl status``, ``STOPPING=1`` when it shuts down.  See sd_notify(3).
Outside systemd every function here is a harmless no-op, so the daemon calls
them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

# A datagram to the service manager never waits on anything but PID 1; a stuck
# PID 1 must not stall the event loop for long.  A lost heartbeat is resent anyway.
_SEND_TIMEOUT_S = 1.0


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``...) to systemd as one datagram.

    Returns True when the datagram left, False when ``$NOTIFY_SOCKET`` is unset
    (not started by systemd, or not ``Type=notify``) or the send failed.  Never
    raises: a failure is logged at debug level.  A newline inside a field would
    start a new assignment (``STATUS=x\\nREADY=1``), so it becomes a space.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    elif not address.startswith("/"):
        log.debug("NOTIFY_SOCKET %r: unsupported address, not notifying", address)
        return False
    message = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_SEND_TIMEOUT_S)
            sock.sendto(message, address)  # a datagram goes whole or not at all
    except OSError as e:
        log.debug("sd_notify to %r failed: %s", address.replace("\0", "@", 1), e)
        return False
    return True


def watchdog_interval() -> float | None:
    """The service's watchdog timeout in seconds (``WatchdogSec=``), or None when there is none.

    None also when ``$WATCHDOG_PID`` names another process: the variables were
    inherited and the watchdog is not ours to feed.  Send ``WATCHDOG=1`` at
    half this interval, as sd_watchdog_enabled(3) advises.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None
        value = int(usec)
    except ValueError:
        log.debug("WATCHDOG_USEC=%r / WATCHDOG_PID=%r: not integers, watchdog off", usec, pid)
        return None
    if value <= 0:
        return None
    return value / 1_000_000


def journal_stream(fd: int = 2) -> bool:
    """Whether ``fd`` (stderr) is connected to the journal, so log lines need no timestamp.

    True only when ``$JOURNAL_STREAM`` (``DEVICE:INODE``) matches ``fd`` itself:
    a child whose stderr was redirected elsewhere inherits the variable but not
    the stream.
    """
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    device, _, inode = value.partition(":")
    try:
        expected = (int(device), int(inode))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == expected
