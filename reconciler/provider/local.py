"""The issuers that sign locally (``signing = "local"``): their CSDs, checked once at start.

:meth:`Signers.load` reads each local issuer's ``.cer`` and ``.key`` once,
checks them (:mod:`reconciler.provider.certificate`), and signs and verifies one
throwaway request with each key (:func:`reconciler.provider.signing.self_test`),
which proves the platform allows RSA-SHA1.  A failure is kept as one line naming
the issuer and what is wrong: that issuer's jobs are not sent (they wait in the
queue and the line is repeated) while the other issuers' go on.  The keys stay
in this process as private key objects; their passwords are not kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler.errors import ReconcilerError
from reconciler.jobs.validation import JobSpec
from reconciler.provider import certificate, signing

if TYPE_CHECKING:
    from reconciler.config import Settings

logger = logging.getLogger(__name__)
EXPIRY_WARNING_DAYS = 30  # a CSD closer to its end than this is logged as a warning at start


@dataclass(frozen=True, slots=True)
class NotSent:
    """Why a job of a local issuer cannot be signed now (its CSD failed a check)."""

    reason: str


@dataclass(repr=False)
class Signers:
    """RFC -> the issuer's checked CSD, or the one line saying why it cannot sign."""

    ready: dict[str, certificate.Checked] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Signers(ready={sorted(self.ready)}, failed={sorted(self.failed)})"

    @classmethod
    def load(cls, settings: Settings, now: datetime, *, log: bool = True) -> Signers:
        """Load every ``signing = "local"`` issuer; never raises for one issuer's problem."""
        signers = cls()
        for issuer in settings.issuers:
            if getattr(issuer, "signing", "provider") != "local":
                continue
            try:
                material = certificate.load(settings, issuer, now)
                signing.self_test(material, now)
            except ReconcilerError as e:
                signers.failed[issuer.rfc] = str(e)
                if log:
                    logger.error("%s; jobs of %s are not sent until this is fixed", e, issuer.rfc)
                continue
            signers.ready[issuer.rfc] = material
            if log:
                days = (material.not_after - now).days
                logger.log(
                    logging.WARNING if days < EXPIRY_WARNING_DAYS else logging.INFO,
                    "issuers[%s]: signs locally with CSD %s (valid until %s%s)",
                    issuer.rfc,
                    material.number,
                    f"{material.not_after:%Y-%m-%d}",
                    f": {days} days left, renew it at the SAT" if days < EXPIRY_WARNING_DAYS else "",
                )
        return signers

    def __contains__(self, rfc: object) -> bool:
        return rfc in self.ready or rfc in self.failed

    @property
    def any(self) -> bool:
        return bool(self.ready or self.failed)

    def request(self, job: JobSpec, now: datetime) -> bytes | NotSent:
        """The signed ``Cancelacion`` for ``job``, or why it is not sent (the CSD failed, or expired since)."""
        failure = self.failed.get(job.rfc_emisor)
        if failure is not None:
            return NotSent(failure)
        material = self.ready[job.rfc_emisor]
        expired = certificate.validity(material.certificate, now)
        if expired:
            return NotSent(f"{certificate.label(job.rfc_emisor)}.csd_cer: {expired}")
        try:
            return signing.signed_request(job, material, now)
        except ReconcilerError as e:
            return NotSent(str(e))
