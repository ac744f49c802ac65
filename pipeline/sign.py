"""PAdES signing of sohoa's PDF/A-2b documents with the agency's certificate.

One signature per document, made last, as an incremental update (the PDF/A bytes
before it are kept byte for byte):

- subfilter ETSI.CAdES.detached, SHA-256, RSASSA-PSS (RSA >= 2048) or ECDSA (>= P-256)
  as TT 15/2025/TT-BKHCN asks; levels B-B, B-T (RFC 3161 timestamp), B-LT (validation
  data in the DSS of the same revision) and B-LTA (plus a document timestamp);
- keys from a PKCS#12 file, a PKCS#11 token (Ban Cơ yếu Chính phủ USB tokens) or, when
  nothing is configured, a development key under ``SOHOA_HOME/dev-signing`` whose every
  signature says it is a test signature;
- the visible appearance follows NĐ 30/2020 Phụ lục I for an organisation's signature on
  an electronic copy: top right of page 1, text only (copy type, copying body, signing
  time in Vietnam time), Times-style font at 10 pt in black, the font embedded.

pyHanko's synchronous wrappers start a new event loop per call while its HTTP clients
(aiohttp) are bound to one loop, so each operation here runs in a single event loop
(``run_async``, in a helper thread when the caller already runs one) with its own
fetcher backend, closed at the end.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asn1crypto import algos, keys as asn1_keys, pem, x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .errors import PdfaError, SohoaError

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
PADES_SUBFILTER = "ETSI.CAdES.detached"
DEFAULT_COPY_TYPE = "Bản sao điện tử từ bản chính"
TEST_MARK = "CHỮ KÝ THỬ NGHIỆM - KHÔNG CÓ GIÁ TRỊ PHÁP LÝ"
DEV_DIR_NAME = "dev-signing"
DEV_SIGNER_CN = "SOHOA TEST - CHỮ KÝ THỬ NGHIỆM"
DEV_CA_CN = "SOHOA TEST CA - KHÔNG CÓ GIÁ TRỊ PHÁP LÝ"
FIELD_PREFIX = "SohoaSignature"

FONT_CANDIDATES = (
    "/usr/share/texmf/fonts/opentype/public/tex-gyre/texgyretermes-regular.otf",
    "/usr/share/fonts/opentype/tex-gyre/texgyretermes-regular.otf",
    "/usr/share/fonts/truetype/freefont/FreeSerif.ttf",
)
FONT_SIZE = 10
LEADING = 12
STAMP_PADDING = 4
STAMP_MARGIN = 18  # points between the stamp and the top and right page edges

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


class _DropCffRosNotice(logging.Filter):
    """pyHanko warns that a CFF font (TeX Gyre Termes) has no CIDSystemInfo (ROS) and then
    uses Identity, which is right for an embedded subset; keep operators' stderr clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No ROS metadata" not in record.getMessage()


logging.getLogger("pyhanko.pdf_utils.font.opentype").addFilter(_DropCffRosNotice())


class SigningError(SohoaError):
    """A key, certificate or configuration that sohoa refuses to sign with."""

    exit_code = 7


# --------------------------------------------------------------------------- helpers

def run_async(coro):
    """Run a coroutine to completion from synchronous code, also under a running loop
    (an async web handler), where ``asyncio.run`` is not allowed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.native.get("common_name") or cert.subject.human_friendly


def vietnamese_letters() -> str:
    """Every precomposed Vietnamese letter (NFC), lower and upper case, plus đ/Đ."""
    vowels = "aăâeêioôơuưy"
    tones = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
    letters = {unicodedata.normalize("NFC", v + t) for v in vowels for t in tones}
    letters |= {c.upper() for c in letters} | {"đ", "Đ"}
    return "".join(sorted(letters))


def font_path() -> str:
    """The first Times-style font on the known Debian paths that covers Vietnamese."""
    from fontTools.ttLib import TTFont

    needed = set(vietnamese_letters())
    for candidate in FONT_CANDIDATES:
        if not os.path.isfile(candidate):
            continue
        with TTFont(candidate, lazy=True) as font:
            cmap = font.getBestCmap()
        if all(ord(c) in cmap for c in needed):
            return candidate
    raise SigningError(
        "Không tìm thấy phông chữ kiểu Times có đủ chữ tiếng Việt để vẽ chữ ký; cài gói Debian "
        "fonts-texgyre hoặc fonts-freefont-ttf (no Times-style font with Vietnamese coverage found: "
        + ", ".join(FONT_CANDIDATES) + ")")


# --------------------------------------------------------------------------- certificate policy

def check_certificate(cert: x509.Certificate, now: datetime | None = None) -> None:
    """Refuse a certificate that TT 15/2025 or its own extensions forbid signing with."""
    now = now or datetime.now(timezone.utc)
    cn = common_name(cert)
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if now < not_before:
        raise SigningError(f"Chứng thư số của '{cn}' chưa có hiệu lực (từ {not_before:%Y-%m-%d}); không ký "
                           f"(certificate not yet valid)")
    if now > not_after:
        raise SigningError(f"Chứng thư số của '{cn}' đã hết hạn ngày {not_after:%Y-%m-%d}; không ký "
                           f"(certificate expired)")
    usage = cert.key_usage_value
    if usage is None or not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise SigningError(f"Chứng thư số của '{cn}' không cho phép ký số (thiếu digitalSignature/"
                           f"nonRepudiation trong keyUsage); không ký (key usage forbids signing)")
    public_key = cert.public_key
    algorithm = public_key.algorithm
    if algorithm in ("rsa", "rsassa_pss"):
        if public_key.bit_size < MIN_RSA_BITS:
            raise SigningError(f"Khóa RSA của '{cn}' chỉ có {public_key.bit_size} bit; TT 15/2025 yêu cầu "
                               f"tối thiểu {MIN_RSA_BITS} bit (RSA key too short)")
    elif algorithm == "ec":
        if public_key.bit_size < MIN_EC_BITS:
            raise SigningError(f"Khóa ECDSA của '{cn}' chỉ có {public_key.bit_size} bit; TT 15/2025 yêu cầu "
                               f"tối thiểu P-256 (EC key too short)")
    else:
        raise SigningError(f"Thuật toán khóa '{algorithm}' của '{cn}' không nằm trong TT 15/2025 "
                           f"(chỉ RSASSA-PSS hoặc ECDSA) (key algorithm not allowed)")


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


# --------------------------------------------------------------------------- signer handle

@dataclass
class Signer:
    """What ``sign_pdf`` needs: pyHanko's signer plus sohoa's policy around it."""

    cms_signer: object
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    level: str
    tsa_url: str | None
    trust_roots: list[x509.Certificate]
    agency_name: str
    test: bool
    source: str  # "pkcs12", "pkcs11" or "development"
    revocation_mode: str = "hard-fail"
    _session: object = field(default=None, repr=False)
    # A PKCS#11 session must not be used by two threads at once (parallel ingest jobs).
    _token_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def signer_name(self) -> str:
        return common_name(self.certificate)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def trust_roots_from_settings(settings) -> list[x509.Certificate]:
    """SOHOA_TRUST_ROOTS (colon-separated PEM/DER files); only when no roots and no real key
    are configured, the development CA (so test signatures verify on the machine that made
    them, and never on a machine that names its trust roots)."""
    roots: list[x509.Certificate] = []
    for path in filter(None, (settings.sign.get("trust_roots") or "").split(":")):
        try:
            roots.extend(load_certificates(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise SigningError(f"Không đọc được chứng thư gốc tin cậy '{path}' trong SOHOA_TRUST_ROOTS "
                               f"(cannot read trust root): {exc}") from None
    if not roots and uses_development_key(settings):
        dev_ca = settings.home / DEV_DIR_NAME / "ca.pem"
        if dev_ca.is_file():
            roots.extend(load_certificates(dev_ca.read_bytes()))
    return roots


def uses_development_key(settings) -> bool:
    return not (settings.sign.get("p12") or settings.sign.get("pkcs11_module"))


def choose_level(requested: str | None, tsa_url: str | None, development: bool) -> str:
    """The PAdES level to sign at: explicit, else B-B/B-T for the dev key, B-LT for a real one."""
    if requested:
        level = requested.strip().upper()
        if not level.startswith("B-"):
            level = "B-" + level
        if level not in LEVELS:
            raise SigningError(f"SOHOA_SIGN_LEVEL không hợp lệ: '{requested}' (chọn một trong "
                               f"{', '.join(LEVELS)}) (invalid signature level)")
    elif development:
        level = "B-T" if tsa_url else "B-B"
    else:
        level = "B-LT"
    if level != "B-B" and not tsa_url:
        raise SigningError(f"Mức chữ ký {level} cần máy chủ cấp dấu thời gian: đặt SOHOA_TSA_URL "
                           f"(level {level} needs a timestamp authority, set SOHOA_TSA_URL)")
    return level


def load_signer(settings, *, now: datetime | None = None) -> Signer:
    """The configured signer, its certificate checked; the development key when none is set."""
    conf = settings.sign
    development = uses_development_key(settings)
    level = choose_level(conf.get("level"), conf.get("tsa_url"), development)
    if development:
        warn_development_key(settings.home / DEV_DIR_NAME)
        signer = _development_signer(settings.home / DEV_DIR_NAME, now)
    elif conf.get("pkcs11_module"):
        signer = _pkcs11_signer(conf["pkcs11_module"], conf.get("pkcs11_token"), conf.get("pkcs11_pin"), now)
    else:
        signer = _pkcs12_signer(conf["p12"], conf.get("p12_password"), now)
    signer.level = level
    signer.tsa_url = conf.get("tsa_url")
    signer.agency_name = settings.agency_name
    signer.trust_roots = trust_roots_from_settings(settings)
    if not development:
        if level in ("B-LT", "B-LTA") and not signer.trust_roots:
            signer.close()
            raise SigningError(f"Mức {level} cần chứng thư gốc tin cậy để nhúng dữ liệu kiểm tra: đặt "
                               f"SOHOA_TRUST_ROOTS (level {level} needs SOHOA_TRUST_ROOTS)")
        if level in ("B-B", "B-T"):
            print(f"sohoa: CẢNH BÁO: ký bằng khóa thật ở mức {level}, thấp hơn B-LT khuyến nghị "
                  f"(warning: production key below B-LT)", file=sys.stderr)
    return signer


def warn_development_key(where: Path) -> None:
    bar = "!" * 78
    print(f"{bar}\nsohoa: CẢNH BÁO: chưa cấu hình khóa ký của cơ quan; dùng khóa THỬ NGHIỆM tại {where}.\n"
          f"  Mọi chữ ký tạo ra là {TEST_MARK}.\n"
          f"  Đặt SOHOA_SIGN_P12 hoặc SOHOA_SIGN_PKCS11_MODULE để ký thật.\n"
          f"sohoa: WARNING: no signing key configured; using the DEVELOPMENT key: every signature is a\n"
          f"  TEST signature without legal value.\n{bar}", file=sys.stderr)


# --------------------------------------------------------------------------- key sources

def _checked(cert, now):
    check_certificate(cert, now)
    return cert


def _pkcs12_signer(path: str, password: str | None, now) -> Signer:
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"Không đọc được tệp khóa PKCS#12 '{path}' (cannot read SOHOA_SIGN_P12): "
                           f"{exc.strerror}") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError:
        raise SigningError(f"Không mở được tệp PKCS#12 '{path}': sai mật khẩu hoặc tệp hỏng "
                           f"(wrong password or damaged PKCS#12 file)") from None
    if key is None or cert is None:
        raise SigningError(f"Tệp PKCS#12 '{path}' không chứa khóa riêng và chứng thư ký "
                           f"(PKCS#12 file lacks key or certificate)")
    certificate = _checked(x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)), now)
    chain = [x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra or ()]
    private = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cms_signer = SimpleSigner(certificate, private, SimpleCertificateStore.from_certs(chain),
                              signature_mechanism=signature_mechanism(certificate))
    return Signer(cms_signer, certificate, chain, "B-B", None, [], "", False, "pkcs12")


def _pkcs11_signer(module: str, token_label: str | None, pin: str | None, now) -> Signer:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

    if not os.path.isfile(module):
        raise SigningError(f"Không tìm thấy thư viện PKCS#11 '{module}' (SOHOA_SIGN_PKCS11_MODULE not found)")
    if not pin:
        raise SigningError("Chưa có mã PIN của token: đặt SOHOA_SIGN_PKCS11_PIN hoặc SOHOA_SIGN_PKCS11_PIN_FILE "
                           "(token PIN missing)")
    criteria = TokenCriteria(label=token_label) if token_label else None
    try:
        session = open_pkcs11_session(module, token_criteria=criteria, user_pin=pin)
    except pkcs11.exceptions.PinIncorrect:
        raise SigningError("Mã PIN của token không đúng (wrong token PIN)") from None
    except pkcs11.exceptions.PinLocked:
        raise SigningError("Token đã bị khóa PIN (token PIN locked)") from None
    except pkcs11.PKCS11Error as exc:
        raise SigningError(f"Không mở được token PKCS#11 '{token_label or '(đầu tiên)'}' "
                           f"(cannot open PKCS#11 token): {exc!r}") from None
    try:
        # A token's signing certificate shares its CKA_ID with the private key; the other
        # certificates on it (issuing CAs) go into the CMS so validators can build the chain.
        certificates = [(bytes(obj[Attribute.ID]), x509.Certificate.load(obj[Attribute.VALUE]))
                        for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})]
        certs_by_id = dict(reversed(certificates))
        others = [cert for _, cert in certificates]
        key_ids = [bytes(k[Attribute.ID]) for k in session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True})]
        candidates = [(kid, certs_by_id[kid]) for kid in key_ids if kid in certs_by_id]
        if not candidates:
            raise SigningError("Token không có cặp khóa riêng và chứng thư ký (cùng CKA_ID) "
                               "(no private key with a matching certificate on the token)")
        problems = []
        for key_id, cert in candidates:
            try:
                check_certificate(cert, now)
            except SigningError as exc:
                problems.append(str(exc))
                continue
            chain = [c for c in others if c.dump() != cert.dump()]
            cms_signer = PKCS11Signer(session, signing_cert=cert, ca_chain=chain, key_id=key_id,
                                      other_certs_to_pull=(), signature_mechanism=signature_mechanism(cert))
            return Signer(cms_signer, cert, chain, "B-B", None, [], "", False, "pkcs11", _session=session)
        raise SigningError("; ".join(problems))
    except BaseException:
        session.close()
        raise


# --------------------------------------------------------------------------- development key

def _development_signer(directory: Path, now) -> Signer:
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    ensure_development_key(directory, now)
    ca = load_certificates((directory / "ca.pem").read_bytes())[0]
    certificate = load_certificates((directory / "signer.pem").read_bytes())[0]
    check_certificate(certificate, now)
    key = serialization.load_pem_private_key((directory / "signer.key.pem").read_bytes(), None)
    private = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cms_signer = SimpleSigner(certificate, private, SimpleCertificateStore.from_certs([ca]),
                              signature_mechanism=signature_mechanism(certificate))
    return Signer(cms_signer, certificate, [ca], "B-B", None, [], "", True, "development",
                  revocation_mode="soft-fail")


def ensure_development_key(directory: Path, now: datetime | None = None) -> Path:
    """Create the development CA and signer once (ECDSA P-256); renew them when expired.

    Built in a temporary sibling directory and renamed into place, so concurrent workers
    never see half a key pair."""
    now = now or datetime.now(timezone.utc)
    if (directory / "signer.pem").is_file():
        cert = load_certificates((directory / "signer.pem").read_bytes())[0]
        if cert["tbs_certificate"]["validity"]["not_after"].native > now + timedelta(days=1):
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
    ca_cert = (pyca_x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(pyca_x509.random_serial_number())
               .not_valid_before(start).not_valid_after(now + timedelta(days=3650))
               .add_extension(pyca_x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(pyca_x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                              critical=True)
               .add_extension(pyca_x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    signer_cert = (pyca_x509.CertificateBuilder().subject_name(signer_name).issuer_name(ca_name)
                   .public_key(signer_key.public_key()).serial_number(pyca_x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(now + timedelta(days=1825))
                   .add_extension(pyca_x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(pyca_x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(pyca_x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False)
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


# --------------------------------------------------------------------------- appearance

def stamp_lines(copy_type: str, organisation: str, signed_at: datetime, test: bool) -> list[str]:
    """NĐ 30/2020 Phụ lục I: copy type, copying body, signing time (Vietnam time, ISO 8601)."""
    lines = [copy_type, organisation, signed_at.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")]
    if test:
        lines.append(TEST_MARK)
    return [unicodedata.normalize("NFC", line) for line in lines]


class TextMeasure:
    """Advance widths of a font at FONT_SIZE, to size the stamp box without scaling text."""

    def __init__(self, path: str, size: float = FONT_SIZE):
        from fontTools.ttLib import TTFont

        with TTFont(path) as font:
            self._cmap = font.getBestCmap()
            self._hmtx = {name: metrics for name, metrics in font["hmtx"].metrics.items()}
            self._scale = size / font["head"].unitsPerEm

    def width(self, text: str) -> float:
        return sum(self._hmtx[self._cmap.get(ord(c), ".notdef")][0] for c in text) * self._scale


def wrap_lines(lines: list[str], max_width: float, measure) -> list[str]:
    """Break lines that do not fit at word boundaries (a long agency name wraps, not shrinks)."""
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and measure(candidate) > max_width:
                out.append(current)
                current = word
            else:
                current = candidate
        out.append(current)
    return out


def stamp_box(page_box: tuple[float, float, float, float], lines: list[str], measure) -> tuple[list[str], tuple]:
    """The wrapped lines and the stamp rectangle in the top-right corner of the page box."""
    x0, y0, x1, y1 = page_box
    max_text = (x1 - x0) / 2 - STAMP_MARGIN - 2 * STAMP_PADDING - 2  # the stamp stays in the right half
    lines = wrap_lines(lines, max_text, measure)
    width = max(measure(line) for line in lines) + 2 * STAMP_PADDING + 2
    height = len(lines) * LEADING + 2 * STAMP_PADDING + 2
    right, top = x1 - STAMP_MARGIN, y1 - STAMP_MARGIN
    return lines, (round(right - width, 2), round(top - height, 2), round(right, 2), round(top, 2))


def page_one_box(pdf: bytes) -> tuple[float, float, float, float]:
    """The visible area (CropBox, else MediaBox, inherited) of page 1, normalised."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        x0, y0, x1, y1 = (float(v) for v in doc.pages[0].cropbox)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _in_memory_font_factory():
    """pyHanko's GlyphAccumulatorFactory opens the font file and never closes it; the
    ResourceWarning that garbage collection emits later can land inside pikepdf's PDF/A
    content check (which records every warning raised while it parses) and fail it.
    This factory hands pyHanko the font's bytes instead of an open file."""
    from dataclasses import dataclass

    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

    @dataclass(frozen=True)
    class InMemoryGlyphAccumulatorFactory(GlyphAccumulatorFactory):
        def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
            with open(self.font_file, "rb") as f:
                handle = io.BytesIO(f.read())
            if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
                obj_stream = writer.prepare_object_stream()
            return GlyphAccumulator(writer=writer, font_handle=handle, font_size=self.font_size,
                                    ot_script_tag=self.ot_script_tag, ot_language_tag=self.ot_language_tag,
                                    writing_direction=self.writing_direction,
                                    bcp47_lang_code=self.bcp47_lang_code, obj_stream=obj_stream)

    return InMemoryGlyphAccumulatorFactory


def _stamp_style(lines: list[str], font: str):
    from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    text = "\n".join(lines).replace("%", "%%")  # stamp text is %-formatted by pyHanko
    return TextStampStyle(
        stamp_text=text,
        text_box_style=TextBoxStyle(
            font=_in_memory_font_factory()(font, font_size=FONT_SIZE, ot_script_tag="latn",
                                         ot_language_tag="VIT ", bcp47_lang_code="vi"),
            font_size=FONT_SIZE, leading=LEADING, border_width=0, text_color=(0, 0, 0),
            box_layout_rule=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MAX,
                                                margins=Margins.uniform(0),
                                                inner_content_scaling=InnerScaling.NO_SCALING)),
        border_width=0,
        background=None,
        inner_content_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MAX,
            margins=Margins.uniform(STAMP_PADDING), inner_content_scaling=InnerScaling.NO_SCALING),
    )


# --------------------------------------------------------------------------- signing

def _pades_signer_class():
    from pyhanko.sign.signers import PdfSigner, constants

    class PadesPdfA2Signer(PdfSigner):
        """pyHanko's PdfSigner with a fixed signing time and PDF 1.7 kept.

        pyHanko declares the ISO 32002 extension (PDF 2.0) for ECDSA keys; PDF/A-2 forbids
        versions above 1.7 and PAdES itself needs only the ESIC extension."""

        def __init__(self, *args, system_time: datetime, **kwargs):
            super().__init__(*args, **kwargs)
            self._system_time = system_time

        def init_signing_session(self, pdf_out, existing_fields_only=False):
            session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
            session.system_time = self._system_time
            return session

        def register_extensions(self, pdf_out, *, md_algorithm):
            pdf_out.ensure_output_version((1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)

    return PadesPdfA2Signer


def _field_name(reader) -> str:
    form = reader.root.get("/AcroForm")
    existing = {str(f.get_object().get("/T")) for f in form.get("/Fields", [])} if form else set()
    n = 1
    while f"{FIELD_PREFIX}{n}" in existing:
        n += 1
    return f"{FIELD_PREFIX}{n}"


def validation_context(trust_roots, other_certs=(), revocation_mode="hard-fail", fetcher_backend=None, **kw):
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=list(trust_roots), other_certs=list(other_certs),
                             allow_fetching=fetcher_backend is not None, fetcher_backend=fetcher_backend,
                             revocation_mode=revocation_mode, **kw)


def _fetcher_backend():
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    return AIOHttpFetcherBackend(per_request_timeout=15)


def sign_pdf(pdf: bytes, signer: Signer, *, copy_type: str = DEFAULT_COPY_TYPE,
             organisation: str | None = None, visible: bool = True) -> tuple[bytes, dict]:
    """Sign PDF/A-2b bytes as a PAdES signature in an incremental update.

    Returns the signed bytes and the manifest's ``signature`` record. Refuses input that
    is not PDF/A-2b and output that would not stay PDF/A-2b (see verify.pdfa_check)."""
    from .pdfa import validate
    from .verify import pdfa_check

    if not validate(pdf)[0]:
        raise PdfaError("Tệp đưa vào ký không phải PDF/A-2b hợp lệ; không ký (input is not valid PDF/A-2b)")
    check_certificate(signer.certificate)
    signed_at = vietnam_now()
    job = _sign_async(pdf, signer, signed_at, copy_type, organisation or signer.agency_name, visible)
    if signer.source == "pkcs11":
        with signer._token_lock:
            signed = run_async(job)
    else:
        signed = run_async(job)
    verdict = pdfa_check(signed)
    if not verdict["ok"]:
        raise PdfaError("Tệp sau khi ký không còn là PDF/A-2b (signed file is not PDF/A-2b): "
                        + "; ".join(verdict["findings"]))
    return signed, {
        "subfilter": PADES_SUBFILTER,
        "level": signer.level,
        "signer": signer.signer_name,
        "certificateSha256": certificate_sha256(signer.certificate),
        "signedAt": signed_at.isoformat(),
        "testSignature": signer.test,
        "algorithm": algorithm_name(signer.certificate),
    }


async def _sign_async(pdf, signer, signed_at, copy_type, organisation, visible) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko.sign.timestamps import HTTPTimeStamper

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    name = _field_name(writer.prev)
    stamp, box = None, None
    if visible:
        font = font_path()
        measure = TextMeasure(font).width
        lines, box = stamp_box(page_one_box(pdf),
                               stamp_lines(copy_type, organisation, signed_at, signer.test), measure)
        stamp = _stamp_style(lines, font)
    long_term = signer.level in ("B-LT", "B-LTA")
    backend = _fetcher_backend() if long_term else None
    try:
        meta = signers.PdfSignatureMetadata(
            field_name=name,
            subfilter=SigSeedSubFilter.PADES,
            md_algorithm="sha256",
            reason=(f"{copy_type} - {TEST_MARK}" if signer.test else copy_type),
            location=organisation,
            embed_validation_info=long_term,
            use_pades_lta=signer.level == "B-LTA",
            validation_context=(validation_context(signer.trust_roots, signer.chain, signer.revocation_mode,
                                                   backend) if long_term else None),
            # B-LT in the signature's own revision: any validator, incremental-update aware or
            # not, then sees one revision covering the whole file.
            dss_settings=DSSContentSettings(placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
                                            include_vri=False),
        )
        pdf_signer = _pades_signer_class()(
            meta, signer.cms_signer, system_time=signed_at,
            timestamper=HTTPTimeStamper(signer.tsa_url, timeout=30) if signer.level != "B-B" else None,
            stamp_style=stamp,
            new_field_spec=fields.SigFieldSpec(name, on_page=0, box=box) if visible
            else fields.SigFieldSpec(name, on_page=0),
        )
        out = await pdf_signer.async_sign_pdf(writer)
        return out.getvalue()
    except SohoaError:
        raise
    except Exception as exc:
        raise SigningError(f"Ký số thất bại (signing failed): {type(exc).__name__}: {exc}") from exc
    finally:
        if backend is not None:
            await backend.close()


def add_document_timestamp(pdf: bytes, tsa_url: str, trust_roots, *, revocation_mode="hard-fail") -> bytes:
    """B-LTA renewal: validation data for the last timestamp plus a fresh document timestamp,
    in an incremental update."""
    return run_async(_timestamp_async(pdf, tsa_url, trust_roots, revocation_mode))


async def _timestamp_async(pdf, tsa_url, trust_roots, revocation_mode) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from pyhanko.sign.signers.pdf_signer import TimestampDSSContentSettings

    class SingleRevisionTimeStamper(PdfTimeStamper):
        """Validation data for the new timestamp goes into the timestamp's own revision, so
        the new document timestamp is the last revision and covers the whole file."""

        async def async_timestamp_pdf(self, *args, **kwargs):
            kwargs["dss_settings"] = TimestampDSSContentSettings(update_before_ts=True, include_vri=False)
            return await super().async_timestamp_pdf(*args, **kwargs)

    backend = _fetcher_backend()
    try:
        stamper = SingleRevisionTimeStamper(HTTPTimeStamper(tsa_url, timeout=30))
        out = io.BytesIO(pdf)
        await stamper.async_update_archival_timestamp_chain(
            PdfFileReader(out), validation_context(trust_roots, (), revocation_mode, backend), in_place=True)
        return out.getvalue()
    except Exception as exc:
        raise SigningError(f"Gia hạn dấu thời gian thất bại (timestamp renewal failed): "
                           f"{type(exc).__name__}: {exc}") from exc
    finally:
        await backend.close()
