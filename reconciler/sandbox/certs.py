"""Throwaway CSD material shaped like the SAT's, for tests, benchmarks and the demo.

A small certificate authority named like the SAT's, and certificates for an RFC:
a CSD (``OU`` set to a branch name, key usage digital signature and
non-repudiation), a FIEL-like one (no ``OU``, the e.firma's wider key usage) or
an expired CSD.  The subject carries the RFC in ``x500UniqueIdentifier``
(OID 2.5.4.45) as the SAT writes it for companies (``RFC / legal representative's
RFC``); the serial is the SAT's 20-digit certificate number as ASCII.  The
``.cer`` is DER X.509 and the ``.key`` PKCS#8 DER encrypted with the password,
as the SAT hands them out.  None of this is valid anywhere: it is generated
fresh each time with random keys.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

Kind = Literal["csd", "fiel", "expired"]
DAY = timedelta(days=1)


@dataclass(frozen=True, repr=False)
class Authority:
    """The test CA: its certificate and key (the key never leaves the process)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, repr=False)
class CsdFiles:
    """One issuer's ``.cer`` (DER), ``.key`` (encrypted PKCS#8 DER) and the key's password."""

    rfc: str
    kind: Kind
    cer: bytes
    key: bytes
    password: str
    private_key: rsa.RSAPrivateKey  # for tests that look for leaks of it

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cer)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str | None = None) -> tuple[Path, Path, Path]:
        """Write ``NAME.cer``, ``NAME.key`` and ``NAME.password`` (mode 0600) and return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / (name or f"{self.rfc}-{self.kind}")
        paths = (stem.with_suffix(".cer"), stem.with_suffix(".key"), stem.with_suffix(".password"))
        for path, data in zip(paths, (self.cer, self.key, self.password.encode()), strict=True):
            path.write_bytes(data)
            path.chmod(0o600)
        return paths


def _key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def authority(now: datetime | None = None) -> Authority:
    """A CA named like the SAT's testing authority, valid for ten years around ``now``."""
    now = now or datetime.now(UTC)
    key = _key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "AC UAT RECONCILER PRUEBAS"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SERVICIO DE ADMINISTRACION TRIBUTARIA"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SAT-IES Authority"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "MX"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CIUDAD DE MEXICO"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 365 * DAY)
        .not_valid_after(now + 9 * 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def sat_serial(number: str | None = None) -> int:
    """A serial in the SAT's style: the 20-digit certificate number, its ASCII bytes read as an integer."""
    number = number or "3000100000" + "".join(secrets.choice("0123456789") for _ in range(10))
    return int.from_bytes(number.encode("ascii"), "big")


def issue(
    ca: Authority,
    rfc: str,
    kind: Kind = "csd",
    *,
    now: datetime | None = None,
    password: str | None = None,
    subject_rfc: str | None = None,
    name: str = "EMPRESA DE PRUEBAS SA DE CV",
) -> CsdFiles:
    """A certificate for ``rfc`` (or ``subject_rfc`` in its subject) of the given kind, and its encrypted key."""
    now = now or datetime.now(UTC)
    password = password or secrets.token_urlsafe(12)
    key = _key()
    holder = subject_rfc or rfc
    attributes = [
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(x509.ObjectIdentifier("2.5.4.41"), name),  # name
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, f"{holder} / VADA800927DJ3"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, " / VADA800927HSRSRL05"),
    ]
    if kind != "fiel":  # the SAT writes a branch name in a CSD's OU and none in a FIEL's
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Sucursal Matriz"))
    if kind == "expired":
        start, end = now - 4 * 365 * DAY, now - 30 * DAY
    else:
        start, end = now - 30 * DAY, now + 4 * 365 * DAY
    usage = (
        x509.KeyUsage(True, True, True, True, False, False, False, False, False)  # a FIEL also encrypts
        if kind == "fiel"
        else x509.KeyUsage(True, True, False, False, False, False, False, False, False)
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(sat_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    encrypted = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    return CsdFiles(rfc, kind, cert.public_bytes(serialization.Encoding.DER), encrypted, password, key)
