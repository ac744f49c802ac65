"""The development PKI: a CA and an ECDSA P-256 signer under ``SOHOA_HOME/dev-signing``,
made when no agency key is configured. Every signature made with it is a test signature
(see ``certificates.TEST_MARK``): both certificates carry sohoa's test-key policy
(``certificates.TEST_POLICY_OID``), which verification reads. Keys made before the policy
existed are kept until they expire; their CA is known by its fingerprint
(``keys.development_ca_fingerprints``)."""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .certificates import DEV_CA_CN, DEV_SIGNER_CN, TEST_MARK, TEST_POLICY_OID, TEST_POLICY_TEXT, load_certificates

DEV_DIR_NAME = "dev-signing"
# the CAs of the deployment's earlier development keys (a key is renewed when it expires), so
# that what they signed still chains on every machine, also one that never held them
PREVIOUS_CAS = "previous-cas.pem"


def needs_renewal(signer_pem: bytes, now: datetime | None = None) -> bool:
    """Whether a development signer certificate (PEM) expires within a day: it must not sign any more."""
    return expiring(load_certificates(signer_pem)[0], now)


def expiring(cert, now: datetime | None = None) -> bool:
    """Whether a certificate (asn1crypto) expires within a day."""
    return cert["tbs_certificate"]["validity"]["not_after"].native <= (now or datetime.now(timezone.utc)) \
        + timedelta(days=1)


def development_cas(home: Path) -> list:
    """Every development CA certificate of ``home``: the current key's, the deployment's earlier
    ones (``PREVIOUS_CAS``) and those of keys kept aside here as expired (``dev-signing.expired-*``)."""
    current = home / DEV_DIR_NAME
    found = []
    for path in [current / "ca.pem", current / PREVIOUS_CAS, *sorted(home.glob(f"{DEV_DIR_NAME}.expired-*/ca.pem"))]:
        try:
            found.extend(load_certificates(path.read_bytes()))
        except (OSError, ValueError):
            continue
    return found


def ensure_development_key(directory: Path, now: datetime | None = None) -> Path:
    """Create the development CA and signer once (ECDSA P-256); renew them when expired.

    Built in a temporary sibling directory and renamed into place, so concurrent workers
    never see half a key pair."""
    now = now or datetime.now(timezone.utc)
    if (directory / "signer.pem").is_file():
        if not needs_renewal((directory / "signer.pem").read_bytes(), now):
            return directory
        shutil.move(str(directory), str(directory.with_name(f"{directory.name}.expired-{now:%Y%m%d%H%M%S}")))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dev-signing-", dir=directory.parent))
    try:
        _write_development_pki(staging, now)
        try:
            staging.rename(directory)
        except OSError:
            if not (directory / "signer.pem").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _write_development_pki(directory: Path, now: datetime) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    signer_key = ec.generate_private_key(ec.SECP256R1())
    org = pyca_x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sohoa (thử nghiệm / test only)")
    ca_name = pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), org,
                              pyca_x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_CN)])
    signer_name = pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), org,
                                  pyca_x509.NameAttribute(NameOID.COMMON_NAME, DEV_SIGNER_CN)])
    start = now - timedelta(days=1)
    # sohoa's test-key policy on both certificates: verification marks their signatures as
    # test signatures from the certificates themselves, not from their names.
    test_policy = pyca_x509.CertificatePolicies([pyca_x509.PolicyInformation(
        pyca_x509.ObjectIdentifier(TEST_POLICY_OID), [pyca_x509.UserNotice(None, TEST_POLICY_TEXT)])])
    ca_cert = (pyca_x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(pyca_x509.random_serial_number())
               .not_valid_before(start).not_valid_after(now + timedelta(days=3650))
               .add_extension(pyca_x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(pyca_x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                              critical=True)
               .add_extension(pyca_x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .add_extension(test_policy, critical=False)
               .sign(ca_key, hashes.SHA256()))
    signer_cert = (pyca_x509.CertificateBuilder().subject_name(signer_name).issuer_name(ca_name)
                   .public_key(signer_key.public_key()).serial_number(pyca_x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(now + timedelta(days=1825))
                   .add_extension(pyca_x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(pyca_x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(pyca_x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False)
                   .add_extension(test_policy, critical=False)
                   .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "signer.pem").write_bytes(signer_cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "signer.key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    (directory / "README.txt").write_text(
        f"Khóa ký THỬ NGHIỆM của sohoa: {TEST_MARK}.\n"
        "sohoa development signing key: every signature made with it is a test signature.\n"
        "ca.pem is trusted by `sohoa verify` only while no real key is configured.\n", encoding="utf-8")
