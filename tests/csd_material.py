"""Throwaway CSD material for the signing tests, generated once per test run, and the xmlsec1 check."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from reconciler.provider import certificate
from reconciler.sandbox import certs

RFC = "AAA010101AAA"  # tests/harness.py's issuer
OTHER_RFC = "EKU9003173C9"


@dataclass(frozen=True)
class Material:
    ca: certs.Authority
    csd: certs.CsdFiles  # a CSD for RFC
    fiel: certs.CsdFiles  # a FIEL-like certificate for RFC
    expired: certs.CsdFiles  # an expired CSD for RFC
    other: certs.CsdFiles  # a CSD for OTHER_RFC

    def checked(self, files: certs.CsdFiles | None = None) -> certificate.Checked:
        f = files or self.csd
        return certificate.check(f.rfc, f.cer, f.key, f.password, datetime.now(UTC))

    def unchecked(self, files: certs.CsdFiles, rfc: str | None = None) -> certificate.Checked:
        """A Csd that skipped the product's checks: to hand the simulator what the product would refuse."""
        return certificate.Checked(rfc or files.rfc, files.certificate, files.private_key)


@functools.cache
def material() -> Material:
    ca = certs.authority()
    return Material(
        ca,
        certs.issue(ca, RFC),
        certs.issue(ca, RFC, "fiel"),
        certs.issue(ca, RFC, "expired"),
        certs.issue(ca, OTHER_RFC),
    )


def xmlsec_verify(xml: bytes, cert_pem: bytes, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` with only ``cert_pem``'s key trusted; skips when xmlsec1 is not installed."""
    if shutil.which("xmlsec1") is None:
        pytest.skip("xmlsec1 is not installed (tests/run.sh installs Debian's xmlsec1)")
    tmp.mkdir(parents=True, exist_ok=True)
    doc, pem = tmp / "signed.xml", tmp / "cert.pem"
    doc.write_bytes(xml)
    pem.write_bytes(cert_pem)
    return subprocess.run(
        ["xmlsec1", "--verify", "--enabled-key-data", "rsa", "--pubkey-cert-pem", str(pem), str(doc)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def key_forms(files: certs.CsdFiles) -> dict[str, bytes]:
    """Every spelling of the key material a leak could take: raw, base64, hex, PEM, and the password."""
    key = files.private_key
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    d = key.private_numbers().d
    d_bytes = d.to_bytes((d.bit_length() + 7) // 8, "big")
    forms = {
        "key file (DER)": files.key,
        "key file (base64)": base64.b64encode(files.key),
        "key file (hex)": files.key.hex().encode(),
        "plain key (DER)": plain,
        "plain key (base64)": base64.b64encode(plain),
        "plain key (hex)": plain.hex().encode(),
        "plain key (PEM body)": pem.splitlines()[10],
        "private exponent (raw)": d_bytes,
        "private exponent (hex)": d_bytes.hex().encode(),
        "private exponent (decimal)": str(d).encode(),
        "password": files.password.encode(),
        "password (base64)": base64.b64encode(files.password.encode()),
    }
    # 32 bytes from the middle of each long form: key-specific, past the headers all RSA keys share.
    return {
        name: value[len(value) // 2 : len(value) // 2 + 32] if len(value) > 32 else value
        for name, value in forms.items()
    }
