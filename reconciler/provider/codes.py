"""The provider's response codes as a pure table: code -> outcome and meaning.

Two tables, one per operation, because the same number means different things
to the daemon depending on the call:

* ``cancelarAsincrono`` (:func:`classify`): accepted (the job goes to
  ``awaiting``), rejected (terminal), transient (retry with backoff) or
  account-level (stop every submission: the daemon's circuit breaker).
* ``getStatusCancelacionAsincrona`` (:func:`classify_status`): done, still
  processing, not found, failed (terminal), disputed (a 200 whose acuse is not
  evidence), transient, account-level.
* The SAT's ``EstatusUUID`` inside the acuse (:data:`SAT_ESTATUS_UUID`).

Both tables are total: an unknown code classifies as transient with
``known=False`` so the caller can log a warning naming it, never a crash.
Failures with no code at all (timeouts, connection errors, HTTP errors, SOAP
Faults, malformed replies) have their own classifications below.

Sources: the provider's page for ``cancelarAsincrono`` (its status table), and
the codes that open-source clients of the service report beyond that page (402,
623, 1701-1713, 1803; 1801 and 1802 on the status call); meanings marked
"reported" come from those clients and are less certain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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
    DISPUTED = "disputed"  # 200, but the acuse is not evidence for this UUID: keep waiting, flag a conflict
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
    # 200 is decided by the verdict on the acuse, see classify_status.
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

# The SAT's EstatusUUID inside the acuse, per folio (201 and 202 are the only acceptances), and the
# request-level codes it may carry instead (SAT.md; wording varies by source).
SAT_ACCEPTED: frozenset[int] = frozenset({201, 202})
SAT_ESTATUS_UUID: dict[int, str] = {
    201: "the SAT received the cancellation request",
    202: "the UUID was already cancelled",
    203: "the UUID does not belong to the requesting issuer",
    204: "the UUID is not applicable for cancellation",
    205: "the UUID does not exist at the SAT",
    206: "the UUID is not a primary-sector CFDI",
    207: "the motivo is missing or invalid",
    208: "the FolioSustitucion is invalid",
    209: "the FolioSustitucion is not required",
    210: "the request date is after the annual-return date",
    211: "the deadline for cancelling a global invoice has passed",
    212: "the relation is invalid or missing",
    300: "invalid user (request-level)",
    301: "malformed XML (request-level)",
    302: "malformed seal (request-level)",
    304: "certificate revoked or expired (request-level)",
    305: "invalid certificate (request-level)",
    310: "invalid CSD (request-level)",
}


def sat_meaning(code: int) -> str:
    """What an ``EstatusUUID`` (or request-level code) of the SAT means; total."""
    return SAT_ESTATUS_UUID.get(code, f"unknown SAT code {code}")


STATUS_DONE = "the cancellation finished; the SAT's acuse names this UUID as accepted"
STATUS_200_WITHOUT_ACUSE = "the provider says finished but sent no acuse; ask again"
STATUS_DISPUTED = "the provider says finished but its acuse is not evidence for this UUID; ask again"


class AcuseEvidence(Protocol):
    """What :func:`classify_status` needs from an acuse verdict (see :mod:`reconciler.provider.acuse`)."""

    @property
    def accepted(self) -> bool: ...
    @property
    def refused(self) -> bool: ...
    @property
    def estatus(self) -> int | None: ...


def classify(code: int) -> Classification:
    """Classify a ``cancelarAsincrono`` status code; unknown codes are transient with ``known=False``."""
    entry = CANCEL_CODES.get(code)
    if entry is None:
        return Classification(code, Outcome.TRANSIENT, f"unknown code {code}", known=False)
    return Classification(code, entry[0], entry[1])


def classify_status(code: int, acuse: AcuseEvidence | None) -> StatusClassification:
    """Classify a ``getStatusCancelacionAsincrona`` answer, given the verdict on its acuse.

    A 200 is done only when the acuse was checked and names this UUID with ``EstatusUUID``
    201 or 202.  Another ``EstatusUUID``: the SAT refused (failed, terminal).  Anything else
    (no acuse, unparseable, another UUID...) is *disputed*: the caller keeps the job waiting,
    says why, and asks again later; it is never done.  Unknown codes are transient with
    ``known=False``.
    """
    if code == 200:
        if acuse is None:
            return StatusClassification(code, StatusOutcome.DISPUTED, STATUS_200_WITHOUT_ACUSE)
        # getattr: anything that is not a verdict (a bare True, say) is not evidence.
        if getattr(acuse, "accepted", False) is True:
            return StatusClassification(code, StatusOutcome.DONE, STATUS_DONE)
        estatus = getattr(acuse, "estatus", None)
        if getattr(acuse, "refused", False) is True and isinstance(estatus, int):
            meaning = f"the SAT refused: EstatusUUID {estatus} ({sat_meaning(estatus)})"
            return StatusClassification(code, StatusOutcome.FAILED, meaning)
        return StatusClassification(code, StatusOutcome.DISPUTED, STATUS_DISPUTED)
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
NOT_SENT = Classification(
    None, Outcome.TRANSIENT, "not sent: the issuer's CSD for local signing failed a check; fix it and restart"
)
