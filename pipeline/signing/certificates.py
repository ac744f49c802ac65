"""Certificate policy and the constants of sohoa's signatures; pure functions only.

TT 15/2025/TT-BKHCN: subfilter ETSI.CAdES.detached, SHA-256, RSASSA-PSS (RSA >= 2048) or
ECDSA (>= P-256); PAdES levels B-B, B-T (RFC 3161 timestamp), B-LT (validation data in the
DSS of the same revision) and B-LTA (plus a document timestamp).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from asn1crypto import algos, pem, x509

from pipeline.errors import SigningError

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
PADES_SUBFILTER = "ETSI.CAdES.detached"
DEFAULT_COPY_TYPE = "Bản sao điện tử từ bản chính"
TEST_MARK = "CHỮ KÝ THỬ NGHIỆM - KHÔNG CÓ GIÁ TRỊ PHÁP LÝ"
DEV_SIGNER_CN = "SOHOA TEST - CHỮ KÝ THỬ NGHIỆM"
DEV_CA_CN = "SOHOA TEST CA - KHÔNG CÓ GIÁ TRỊ PHÁP LÝ"

# The certificate policy of sohoa's development PKI: its CA and signer certificates carry it,
# and a signature whose signer or chain carries it is a test signature whatever its name.
# An OID under the X.667 UUID arc (2.25.<UUID as a decimal integer>), which anyone may mint;
# from the fixed UUID a06f9d7b-488e-4dbb-818d-3d48f77b14ca.
TEST_POLICY_UUID = "a06f9d7b-488e-4dbb-818d-3d48f77b14ca"
TEST_POLICY_OID = "2.25.213256018382710623352763728485324362954"
TEST_POLICY_TEXT = ("Chứng thư thử nghiệm của sohoa, không có giá trị pháp lý / "
                    "sohoa test certificate, no legal value")

# sohoa's revocation policies (``SigningSettings.revocation_policy``) and the
# pyhanko-certvalidator revocation modes they run as, for signing (B-LT validation data) and
# verification alike
REVOCATION_MODES = {"hard": "hard-fail", "soft": "soft-fail"}

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def vietnam_now() -> datetime:
    return datetime.now(VIETNAM_TZ).replace(microsecond=0)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM (one or many) or DER bytes."""
    if pem.detect(data):
        return [x509.Certificate.load(der) for kind, _, der in pem.unarmor(data, multiple=True)
                if kind == "CERTIFICATE"]
    return [x509.Certificate.load(data)]


def certificate_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


def issuer_of(cert: x509.Certificate, candidates) -> x509.Certificate | None:
    """The certificate among ``candidates`` that issued ``cert`` (subject = issuer and, when
    both say, key identifiers equal), or None. A self-signed ``cert`` is its own issuer only
    when it is among the candidates."""
    aki = cert.authority_key_identifier
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        ski = candidate.key_identifier
        if aki is not None and ski is not None and aki != ski:
            continue
        return candidate
    return None


def normalise_fingerprint(value: str) -> str:
    """A SHA-256 fingerprint as lower-case hex without separators ("AB:CD..." -> "abcd...")."""
    return "".join(ch for ch in value.lower() if ch in "0123456789abcdef")


def is_test_certificate(cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries sohoa's test-key certificate policy (``TEST_POLICY_OID``)."""
    try:
        policies = cert.certificate_policies_value
    except Exception:  # noqa: BLE001 - a malformed extension is not a test policy
        return False
    return policies is not None and any(
        p["policy_identifier"].dotted == TEST_POLICY_OID for p in policies)


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.native.get("common_name") or cert.subject.human_friendly


def check_certificate(cert: x509.Certificate, now: datetime | None = None) -> None:
    """Refuse a certificate that TT 15/2025 or its own extensions forbid signing with."""
    now = now or datetime.now(timezone.utc)
    cn = common_name(cert)
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if now < not_before:
        raise SigningError(f"Chứng thư số của '{cn}' chưa có hiệu lực (từ {not_before:%Y-%m-%d}); không ký",
                           "certificate not yet valid")
    if now > not_after:
        raise SigningError(f"Chứng thư số của '{cn}' đã hết hạn ngày {not_after:%Y-%m-%d}; không ký",
                           "certificate expired")
    usage = cert.key_usage_value
    if usage is None or not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise SigningError(f"Chứng thư số của '{cn}' không cho phép ký số (thiếu digitalSignature/"
                           f"nonRepudiation trong keyUsage); không ký", "key usage forbids signing")
    public_key = cert.public_key
    algorithm = public_key.algorithm
    if algorithm in ("rsa", "rsassa_pss"):
        if public_key.bit_size < MIN_RSA_BITS:
            raise SigningError(f"Khóa RSA của '{cn}' chỉ có {public_key.bit_size} bit; TT 15/2025 yêu cầu "
                               f"tối thiểu {MIN_RSA_BITS} bit", "RSA key too short")
    elif algorithm == "ec":
        if public_key.bit_size < MIN_EC_BITS:
            raise SigningError(f"Khóa ECDSA của '{cn}' chỉ có {public_key.bit_size} bit; TT 15/2025 yêu cầu "
                               f"tối thiểu P-256", "EC key too short")
    else:
        raise SigningError(f"Thuật toán khóa '{algorithm}' của '{cn}' không nằm trong TT 15/2025 "
                           f"(chỉ RSASSA-PSS hoặc ECDSA)", "key algorithm not allowed")


def signature_mechanism(cert: x509.Certificate) -> algos.SignedDigestAlgorithm:
    """RSASSA-PSS/SHA-256 (MGF1 SHA-256, 32-byte salt) for RSA keys, ECDSA/SHA-256 for EC keys."""
    if cert.public_key.algorithm == "ec":
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    return algos.SignedDigestAlgorithm({
        "algorithm": "rsassa_pss",
        "parameters": algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
            "trailer_field": "trailer_field_bc",
        }),
    })


def algorithm_name(cert: x509.Certificate) -> str:
    if cert.public_key.algorithm == "ec":
        return f"ECDSA-{cert.public_key.curve[1]}-SHA256"
    return f"RSASSA-PSS-{cert.public_key.bit_size}-SHA256"


def choose_level(requested: str | None, tsa_url: str | None, development: bool) -> str:
    """The PAdES level to sign at: explicit, else B-B/B-T for the dev key, B-LT for a real one."""
    if requested:
        level = requested.strip().upper()
        if not level.startswith("B-"):
            level = "B-" + level
        if level not in LEVELS:
            raise SigningError(f"SOHOA_SIGN_LEVEL không hợp lệ: '{requested}' (chọn một trong "
                               f"{', '.join(LEVELS)})", "invalid signature level")
    elif development:
        level = "B-T" if tsa_url else "B-B"
    else:
        level = "B-LT"
    if level != "B-B" and not tsa_url:
        raise SigningError(f"Mức chữ ký {level} cần máy chủ cấp dấu thời gian: đặt SOHOA_TSA_URL",
                           f"level {level} needs a timestamp authority, set SOHOA_TSA_URL")
    return level
