"""The provider's response codes as a pure table: code -> outcome and meaning.

Two tables, one per operation, because the same number means different things
to the daemon depending on the call:

* ``cancelarAsincrono`` (:func:`classify`): accepted (the job goes to
  ``awaiting``), rejected (terminal), transient (retry with backoff) or
  account-level (stop every submission: the daemon's circuit breaker).
* ``getStatusCancelacionAsincrona`` (:func:`classify_status`): done, still
  processing, not found, failed (terminal), transient, account-level.

Both tables are total: an unknown code classifies as transient with
``known=False`` so the caller can log a warning naming it, never a crash.
Failures with no code at all (timeouts, connection errors, HTTP errors, SOAP
Faults, malformed replies) have their own classifications below.

Sources: the provider's page for ``cancelarAsincrono`` and the codes public
clients report (see ``FACTS.md``); meanings marked "reported" come from the
latter and are less certain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What a ``cancelarAsincrono`` answer means for the job."""

    ACCEPTED = "accepted"  # the provider holds a transaction: await the notification
    REJECTED = "rejected"  # terminal: resubmitting the same request cannot succeed
    TRANSIENT = "transient"  # retry later with backoff
    ACCOUNT = "account"  # the account cannot submit: stop all submissions


class StatusOutcome(StrEnum):
    """What a ``getStatusCancelacionAsincrona`` answer means for the job."""

    DONE = "done"  # cancelled; the SAT's acuse is attached
    PROCESSING = "processing"  # still in progress: ask again later
    NOT_FOUND = "not_found"  # no transaction for this UUID: submit again
    FAILED = "failed"  # terminal: the cancellation did not and will not happen
    TRANSIENT = "transient"  # the call itself failed or the answer is incomplete: ask again
    ACCOUNT = "account"  # the account cannot make calls: stop


@dataclass(frozen=True, slots=True)
class Classification:
    """One answer to ``cancelarAsincrono``: its code (None for transport failures), outcome and meaning."""

    code: int | None
    outcome: Outcome
    meaning: str
    known: bool = True


@dataclass(frozen=True, slots=True)
class StatusClassification:
    """One answer to ``getStatusCancelacionAsincrona``, classified."""

    code: int | None
    outcome: StatusOutcome
    meaning: str
    known: bool = True


_A, _R, _T, _X = Outcome.ACCEPTED, Outcome.REJECTED, Outcome.TRANSIENT, Outcome.ACCOUNT

# Codes that mean the account itself cannot work; they apply to both calls.
ACCOUNT_CODES: dict[int, str] = {
    601: "authentication error: user name or password is wrong",
    602: "the user's account is blocked",
    603: "the user's password has expired",
    604: "maximum login attempts exceeded: the account is locked",
    605: "the user is inactive",
    620: "permission denied",
    633: "production account used in the testing environment, or testing account in production",
}

# Data errors about the CSD or the invoice: the SAT or the provider refuses the request itself.
_CSD_ERRORS: dict[int, str] = {
    303: "the CSD certificate does not match the issuer's RFC",
    305: "the cancellation date is outside the CSD certificate's validity",
    306: "the keys used do not match any CSD",
    308: "the CSD certificate was not issued by the SAT",
    **{
        code: f"CSD key or certificate error {code} (reported: private key, certificate or password invalid)"
        for code in range(1701, 1714)
    },
    1801: "signature validation of the cancellation request failed (reported)",
    1802: "signature validation of the cancellation request failed: certificate (reported)",
}

_SAT_REFUSALS: dict[int, str] = {
    204: "the invoice cannot be cancelled",
    213: "the cancellation request was denied by the invoice's recipient",
}

CANCEL_CODES: dict[int, tuple[Outcome, str]] = {
    200: (_A, "cancellation request accepted; the message is the UUID"),
    211: (_A, "the cancellation is being processed"),
    701: (_A, "an asynchronous transaction for this UUID already exists (an earlier attempt got through)"),
    **{code: (_R, meaning) for code, meaning in _SAT_REFUSALS.items()},
    **{code: (_R, meaning) for code, meaning in _CSD_ERRORS.items()},
    402: (_R, "the issuer's RFC is not in the SAT's list of taxpayers (LCO) (reported)"),
    611: (_R, "the parameters are incomplete or out of place"),
    621: (_R, "invalid data (UUID, motivo or folio de sustitución)"),
    623: (_R, "the UUID is not registered in the user's dashboard (reported)"),
    1803: (_R, "invalid UUID (reported)"),
    500: (_T, "an error occurred; validation and certification were not completed"),
    501: (_T, "database connection error at the provider"),
    702: (_T, "no asynchronous transaction exists for this UUID (a status-call code; unexpected here)"),
    **{code: (_X, meaning) for code, meaning in ACCOUNT_CODES.items()},
}

_S = StatusOutcome
STATUS_CODES: dict[int, tuple[StatusOutcome, str]] = {
    # 200 is decided by the presence of the acuse, see classify_status.
    211: (_S.PROCESSING, "the cancellation is still being processed"),
    702: (_S.NOT_FOUND, "no asynchronous transaction exists for this UUID"),
    **{code: (_S.FAILED, meaning) for code, meaning in _SAT_REFUSALS.items()},
    **{code: (_S.FAILED, meaning) for code, meaning in _CSD_ERRORS.items()},
    402: (_S.FAILED, "the issuer's RFC is not in the SAT's list of taxpayers (LCO) (reported)"),
    623: (_S.FAILED, "the UUID is not registered in the user's dashboard (reported)"),
    1803: (_S.FAILED, "invalid UUID (reported)"),
    # Our status request itself was refused: it says nothing about the cancellation.
    611: (_S.TRANSIENT, "the status request's parameters are incomplete or out of place"),
    621: (_S.TRANSIENT, "the status request carries invalid data"),
    500: (_S.TRANSIENT, "an error occurred at the provider"),
    501: (_S.TRANSIENT, "database connection error at the provider"),
    **{code: (_S.ACCOUNT, meaning) for code, meaning in ACCOUNT_CODES.items()},
}

STATUS_DONE = "the cancellation finished; the SAT's acuse is attached"
STATUS_200_WITHOUT_ACUSE = "the provider says finished but sent no acuse; ask again"


def classify(code: int) -> Classification:
    """Classify a ``cancelarAsincrono`` status code; unknown codes are transient with ``known=False``."""
    entry = CANCEL_CODES.get(code)
    if entry is None:
        return Classification(code, Outcome.TRANSIENT, f"unknown code {code}", known=False)
    return Classification(code, entry[0], entry[1])


def classify_status(code: int, has_acuse: bool) -> StatusClassification:
    """Classify a ``getStatusCancelacionAsincrona`` answer.

    200 with an acuse is done.  200 without one is treated as transient, not as
    processing: the provider claims the cancellation finished but the answer is
    incomplete, so the caller asks again later and never records it as done
    without the SAT's acknowledgement.  Unknown codes are transient with
    ``known=False``.
    """
    if code == 200:
        if has_acuse:
            return StatusClassification(code, StatusOutcome.DONE, STATUS_DONE)
        return StatusClassification(code, StatusOutcome.TRANSIENT, STATUS_200_WITHOUT_ACUSE)
    entry = STATUS_CODES.get(code)
    if entry is None:
        return StatusClassification(code, StatusOutcome.TRANSIENT, f"unknown code {code}", known=False)
    return StatusClassification(code, entry[0], entry[1])


# Failures that carry no provider code.  The message of a Reply says the details.
TIMEOUT = Classification(None, Outcome.TRANSIENT, "no answer within the timeout")
CONNECTION_ERROR = Classification(None, Outcome.TRANSIENT, "the connection failed or was dropped")
HTTP_ERROR = Classification(None, Outcome.TRANSIENT, "the server answered an HTTP error")
SOAP_FAULT = Classification(None, Outcome.TRANSIENT, "the server answered a SOAP Fault")
MALFORMED = Classification(None, Outcome.TRANSIENT, "the reply could not be understood")

TRANSPORT: dict[str, Classification] = {
    "timeout": TIMEOUT,
    "connection": CONNECTION_ERROR,
    "http": HTTP_ERROR,
    "fault": SOAP_FAULT,
    "malformed": MALFORMED,
}
