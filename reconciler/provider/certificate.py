"""An issuer's CSD checked for local signing: the certificate and the decrypted key, kept in memory.

:mod:`reconciler.provider.csd` reads the files and the password (cryptography-free, imported by
every daemon); this module parses and checks them, and is imported only when an issuer signs locally.

The checks a local signer needs before anything is sent, each failure one line
naming the issuer and what is wrong (:class:`reconciler.errors.ConfigError`):

* the ``.cer`` is a DER X.509 certificate, the ``.key`` a PKCS#8 DER key encrypted
  with ``csd_password``, an RSA key, and the two make a pair;
* the certificate is a CSD and not a FIEL (e.firma): the SAT writes the branch
  (sucursal) in a CSD's subject ``OU`` and leaves it out of a FIEL's, which is
  how the field tells them apart; a certificate whose key usage does not allow
  signatures is refused too;
* ``now`` is within its validity dates;
* its subject's ``x500UniqueIdentifier`` (OID 2.5.4.45) names the issuer's RFC
  (for a company the SAT writes ``RFC / legal representative's RFC``: the first
  part counts).

The key's password is used once to decrypt the key and not kept; the key stays
a private key object in this process and is never serialized again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from reconciler.errors import ConfigError
from reconciler.provider import csd

if TYPE_CHECKING:
    from reconciler.config import IssuerSettings, Settings

# Names the XML-DSig X509IssuerName spells out instead of dotted OIDs.
NAME_OVERRIDES = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.UNSTRUCTURED_NAME: "unstructuredName",
}


@dataclass(frozen=True, slots=True, repr=False)
class Checked:
    """A checked CSD: the certificate and the decrypted private key, in memory only."""

    rfc: str
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def number(self) -> str:
        return certificate_number(self.certificate)

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def __repr__(self) -> str:
        return f"Checked(rfc={self.rfc!r}, number={self.number!r})"


def label(rfc: str) -> str:
    return f"issuers[{rfc}]"


def load(settings: Settings, issuer: IssuerSettings, now: datetime) -> Checked:
    """Read and check one issuer's CSD for local signing; ConfigError names the issuer and the problem."""
    files = csd.load(settings, issuer)
    if files is None:
        raise ConfigError(f'{label(issuer.rfc)}: signing = "local" needs csd_cer and csd_key (the SAT .cer and .key)')
    return check(issuer.rfc, files.cer, files.key, files.password, now)


def check(rfc: str, cer: bytes, key: bytes, password: str, now: datetime) -> Checked:
    """Every check of the module docstring, in order; the first failure raises ConfigError."""
    where = label(rfc)
    certificate = parse_certificate(cer, f"{where}.csd_cer")
    private = decrypt_key(key, password, f"{where}.csd_key")
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ConfigError(f"{where}.csd_cer: not an RSA certificate (the SAT's CSDs are RSA)")
    if public.public_numbers() != private.public_key().public_numbers():
        raise ConfigError(f"{where}: csd_cer and csd_key are not a pair (the key does not belong to the certificate)")
    problem = fiel_or_csd(certificate)
    if problem:
        raise ConfigError(f"{where}.csd_cer: {problem}")
    problem = validity(certificate, now)
    if problem:
        raise ConfigError(f"{where}.csd_cer: {problem}")
    holder = subject_rfc(certificate)
    if holder is None:
        raise ConfigError(f"{where}.csd_cer: the certificate's subject has no x500UniqueIdentifier (RFC)")
    if holder != rfc.upper():
        raise ConfigError(f"{where}.csd_cer: the certificate belongs to RFC {holder}, not {rfc}")
    return Checked(rfc.upper(), certificate, private)


def parse_certificate(data: bytes, key: str) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        raise ConfigError(f"{key}: the file is PEM; use the SAT's .cer as issued (DER)")
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ConfigError(f"{key}: not a DER X.509 certificate (the SAT's .cer)") from e


def decrypt_key(data: bytes, password: str, key: str) -> rsa.RSAPrivateKey:
    if data.lstrip().startswith(b"-----BEGIN"):
        raise ConfigError(f"{key}: the file is PEM; use the SAT's .key as issued (encrypted PKCS#8 DER)")
    if not password:
        raise ConfigError(f"{key}: the key's password is empty")
    try:
        private = serialization.load_der_private_key(data, password.encode("utf-8"))
    except TypeError as e:  # "Password was given but private key is not encrypted"
        raise ConfigError(f"{key}: the key is not encrypted; the SAT's .key is encrypted PKCS#8 DER") from e
    except ValueError as e:  # never chained with the password: cryptography's message does not carry it
        raise ConfigError(f"{key}: cannot decrypt: wrong csd_password, or not the SAT's .key (PKCS#8 DER)") from e
    except Exception as e:  # an unsupported cipher, a platform that forbids it
        raise ConfigError(f"{key}: cannot read the key: {type(e).__name__}") from e
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ConfigError(f"{key}: not an RSA key (the SAT's CSD keys are RSA)")
    return private


def fiel_or_csd(certificate: x509.Certificate) -> str | None:
    """Why this certificate is not a CSD (a FIEL, or one that cannot sign), or None when it is one."""
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not any(str(u.value).strip() for u in units):
        return "a FIEL (e.firma) certificate, not a CSD: its subject has no OU (branch); use the CSD's .cer and .key"
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not (usage.digital_signature or usage.content_commitment):
        return "the certificate's key usage does not allow signatures"
    return None


def validity(certificate: x509.Certificate, now: datetime) -> str | None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    now = now.astimezone(UTC)
    if now < start:
        return f"not valid before {start:%Y-%m-%d %H:%M} UTC"
    if now > end:
        return f"expired on {end:%Y-%m-%d %H:%M} UTC; renew the CSD at the SAT"
    return None


def subject_rfc(certificate: x509.Certificate) -> str | None:
    """The RFC in the subject's ``x500UniqueIdentifier``: ``RFC`` or ``RFC / representative's RFC``."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER):
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("latin-1")
        first = value.split("/", 1)[0].strip().upper()
        if first:
            return first
    return None


def certificate_number(certificate: x509.Certificate) -> str:
    """The SAT's 20-digit certificate number (the serial's bytes as ASCII), else the serial in decimal."""
    serial = certificate.serial_number
    raw = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
    text = raw.decode("ascii", "replace")
    return text if raw and text.isdigit() else str(serial)


def issuer_name(certificate: x509.Certificate) -> str:
    """The issuer's distinguished name as RFC 4514 text, attributes named rather than dotted."""
    return certificate.issuer.rfc4514_string(NAME_OVERRIDES)
