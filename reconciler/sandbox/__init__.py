"""An offline simulator of Solución Factible's Cancelacion service, for tests, benchmarks and demos.

In-process::

    from reconciler.sandbox import Sandbox, SandboxConfig
    with Sandbox(SandboxConfig(maildir=path, notify_delay_s=0.5)) as sb:
        sb.wsdl_url, sb.endpoint("CancelacionHttpSoap12Endpoint"), sb.record.accepted()

As a process: ``reconciler sandbox --port 0`` (or ``python -m reconciler.sandbox``)
prints the WSDL URL as its first line; ``GET /_sandbox/record`` returns the record.
"""

from reconciler.sandbox.notify import ImapConfig, Notification
from reconciler.sandbox.rules import UUIDS_204, UUIDS_211, intended_outcome
from reconciler.sandbox.server import FAULT_KINDS, PORTS, Sandbox, SandboxConfig
from reconciler.sandbox.service import Credentials, Entry, Record

__all__ = [
    "FAULT_KINDS",
    "PORTS",
    "UUIDS_204",
    "UUIDS_211",
    "Credentials",
    "Entry",
    "ImapConfig",
    "Notification",
    "Record",
    "Sandbox",
    "SandboxConfig",
    "intended_outcome",
]
