"""One root exception for everything reconciler raises on purpose.

Only the CLI turns these into exit codes; library code raises them with a
message that names the thing that is wrong and never carries a secret.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Root of every error reconciler raises deliberately."""


class ConfigError(ReconcilerError):
    """A setting is missing or invalid; the message names the key."""


class ValidationError(ReconcilerError):
    """User input (a UUID, an RFC, a CSV row...) is invalid; the message names the field and value."""


class LedgerError(ReconcilerError):
    """The SQLite ledger cannot be opened, migrated, read or written."""


class JobNotFoundError(LedgerError):
    """A job UUID is not in the ledger."""


class ProviderError(ReconcilerError):
    """The provider's SOAP service could not be set up (WSDL, port, binding)."""


class MailboxError(ReconcilerError):
    """The IMAP mailbox could not be reached, logged in to or read."""


class AlreadyRunningError(LedgerError):
    """Another daemon holds the ledger's lock; the message names its pid."""


class EnvironmentConfigError(ConfigError):
    """A setting given by an environment variable is invalid or unknown; ``variable`` names the variable."""

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class MailboxLoginError(MailboxError):
    """The IMAP server refused the login (wrong password or token): retried slowly, shown by ``check``."""


class ListenError(ReconcilerError):
    """The metrics endpoint cannot listen on ``metrics.listen`` (port in use, address not local): a runtime error."""
