"""Where the signing key comes from, and the ``Signer`` handle ``pades.sign_pdf`` uses.

Keys from a PKCS#12 file, a PKCS#11 token (Ban Cơ yếu Chính phủ USB tokens) or, when
nothing is configured, the development key under ``SOHOA_HOME/dev-signing`` whose every
signature says it is a test signature. Each certificate is checked against TT 15/2025
(``certificates.check_certificate``) before it may sign.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

from asn1crypto import keys as asn1_keys, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pipeline.config import SigningSettings
from pipeline.errors import ConfigError, PinRefused, SigningError

from .certificates import REVOCATION_MODES, TEST_MARK, certificate_sha256, check_certificate, choose_level, \
    common_name, is_test_certificate, issuer_of, load_certificates, signature_mechanism
from .devpki import DEV_DIR_NAME, development_cas, ensure_development_key


class _TokenSession:
    """An open PKCS#11 session, closed once (shared by the copies ``dataclasses.replace``
    makes of a ``Signer``)."""

    def __init__(self, session):
        self._session = session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


@dataclass(frozen=True, eq=False)
class Signer:
    """What ``pades.sign_pdf`` needs: pyHanko's signer plus sohoa's policy around it."""

    cms_signer: object
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    level: str
    tsa_url: str | None
    trust_roots: tuple[x509.Certificate, ...]
    agency_name: str
    test: bool
    source: str  # "pkcs12", "pkcs11" or "development"
    revocation_mode: str = "hard-fail"
    _session: _TokenSession | None = field(default=None, repr=False)
    # A PKCS#11 session must not be used by two threads at once (parallel ingest jobs).
    token_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def signer_name(self) -> str:
        return common_name(self.certificate)

    @property
    def issuer(self) -> x509.Certificate | None:
        """The issuing CA certificate, when the key source supplied it."""
        return issuer_of(self.certificate, self.chain)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


class SignerLoading:
    """A signer loaded in a thread of its own while the caller does work that needs none yet:
    loading is mostly importing pyHanko (0.3 s), which a one-page document's reading then hides.
    ``result()`` waits for it and raises what loading raised; ``close()`` closes what it loaded.
    Wait for it (``loaded``) before forking processes: a fork while the thread imports could
    leave a child with a module's import lock held forever."""

    def __init__(self, load: Callable[[], Signer]):
        self._done = threading.Event()
        self._signer: Signer | None = None
        self._error: BaseException | None = None
        self._warnings: list[str] = []  # said when the signer is first wanted (``result``), not before
        threading.Thread(target=self._load, args=(load,), name="signer-loading", daemon=True).start()

    def _load(self, load: Callable[[], Signer]) -> None:
        _held.warnings = self._warnings
        try:
            self._signer = load()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the signer
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> Signer:
        self._done.wait()
        while self._warnings:  # a command refused before it signs anything says nothing of its key
            print(self._warnings.pop(0), file=sys.stderr)
        return self.settled()._signer

    def settled(self) -> "SignerLoading":
        """Itself once loaded, what loading raised raised now, its warnings still held for
        ``result`` (a run that forks page processes must not fork while this thread imports)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        self._done.wait()
        if self._signer is not None:
            self._signer.close()


_held = threading.local()  # in a loading thread: its SignerLoading's warnings, said when it is waited for


def _warn(text: str) -> None:
    """A warning about the signing key: at once, or, in a thread loading it ahead
    (``SignerLoading``), once the signer is wanted (the development key's banner came before "file
    not found" and every trivial refusal: backlog review)."""
    held = getattr(_held, "warnings", None)
    if held is None:
        print(text, file=sys.stderr)
    else:
        held.append(text)


def loaded(signer: Signer | SignerLoading | None) -> Signer | None:
    """The signer itself, once loaded (waiting for one still loading)."""
    return signer.result() if isinstance(signer, SignerLoading) else signer


def trust_roots(signing: SigningSettings, home: Path) -> list[x509.Certificate]:
    """SOHOA_TRUST_ROOTS (PEM/DER files); only when no roots and no real key are configured,
    the development CA (so test signatures verify on the machine that made them, and never
    on a machine that names its trust roots)."""
    roots: list[x509.Certificate] = []
    for path in filter(None, signing.trust_roots):
        try:
            roots.extend(load_certificates(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Không đọc được chứng thư gốc tin cậy '{path}' trong SOHOA_TRUST_ROOTS: "
                              + ("không có tệp này" if isinstance(exc, FileNotFoundError) else "tệp không đọc được"),
                              f"cannot read trust root {path}: {exc}") from None
    if not roots and signing.development:
        roots.extend(development_cas(home))
    return roots


def development_ca_fingerprints(home: Path) -> tuple[str, ...]:
    """SHA-256 (lower-case hex) of every development CA certificate under ``home``
    (``devpki.development_cas``: the current one, the deployment's earlier ones, the expired ones
    kept here).

    Pass them to ``validation.verify_pdf(test_cas=...)``: signatures of development keys made
    before the test-key policy existed (``certificates.TEST_POLICY_OID``) are then still known
    as test signatures."""
    return tuple(dict.fromkeys(certificate_sha256(c) for c in development_cas(Path(home))))


def load_signer(signing: SigningSettings, home: Path, *, now: datetime | None = None) -> Signer:
    """The configured signer, its certificate checked; the development key (under
    ``home``) when none is set. Call ``close()`` when done (a PKCS#11 session)."""
    development = signing.development
    level, roots = signing_plan(signing, home)  # before a token's session is opened (one per failed try)
    if development:
        warn_development_key(home / DEV_DIR_NAME)
        signer = _development_signer(home / DEV_DIR_NAME, now)
    elif signing.pkcs11_module:
        signer = _pkcs11_signer(signing.pkcs11_module, signing.pkcs11_token, signing.pkcs11_pin, now)
    else:
        signer = _pkcs12_signer(signing.p12, signing.p12_password, now)
    # the revocation policy also governs the validation data a B-LT signature embeds
    signer = replace(signer, level=level, tsa_url=signing.tsa_url, agency_name=signing.agency_name,
                     trust_roots=roots, revocation_mode=REVOCATION_MODES[signing.revocation_policy])
    if not development and level in ("B-B", "B-T"):
        _warn(f"sohoa: CẢNH BÁO: ký bằng khóa thật ở mức {level}, thấp hơn B-LT khuyến nghị "
              f"(warning: production key below B-LT)")
    return signer


def signing_plan(signing: SigningSettings, home: Path) -> tuple[str, tuple[x509.Certificate, ...]]:
    """(the level to sign at, the trust roots) from the settings alone, no key opened; SigningError
    or ConfigError when they cannot sign: a timestamp level without a TSA, a trust-root file that
    cannot be read, an agency key at B-LT or B-LTA without trust roots to embed the chain's data."""
    level = choose_level(signing.level, signing.tsa_url, signing.development)
    roots = tuple(trust_roots(signing, home))
    if not signing.development and level in ("B-LT", "B-LTA") and not roots:
        raise SigningError(f"Mức {level} cần chứng thư gốc tin cậy để nhúng dữ liệu kiểm tra: đặt "
                           f"SOHOA_TRUST_ROOTS", f"level {level} needs SOHOA_TRUST_ROOTS")
    return level, roots


def warn_development_key(where: Path) -> None:
    bar = "!" * 78
    _warn(f"{bar}\nsohoa: CẢNH BÁO: chưa cấu hình khóa ký của cơ quan; dùng khóa THỬ NGHIỆM tại {where}.\n"
          f"  Mọi chữ ký tạo ra là {TEST_MARK}.\n"
          f"  Đặt SOHOA_SIGN_P12 hoặc SOHOA_SIGN_PKCS11_MODULE để ký thật.\n"
          f"sohoa: WARNING: no signing key configured; using the DEVELOPMENT key: every signature is a\n"
          f"  TEST signature without legal value.\n{bar}")


# --------------------------------------------------------------------------- key sources
# Each returns a Signer at level B-B with no TSA, no trust roots and no agency name;
# ``load_signer`` fills those in from the settings.

def _is_test(cert, chain) -> bool:
    """A key whose certificate (or issuing CA) carries sohoa's test-key policy signs test
    signatures, wherever it is loaded from."""
    issuer = issuer_of(cert, chain)
    return is_test_certificate(cert) or (issuer is not None and is_test_certificate(issuer))


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
        raise SigningError(f"Không mở được tệp PKCS#12 '{path}': sai mật khẩu hoặc tệp hỏng",
                           "wrong password or damaged PKCS#12 file") from None
    if key is None or cert is None:
        raise SigningError(f"Tệp PKCS#12 '{path}' không chứa khóa riêng và chứng thư ký",
                           "PKCS#12 file lacks key or certificate")
    certificate = _checked(x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)), now)
    chain = [x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra or ()]
    private = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cms_signer = SimpleSigner(certificate, private, SimpleCertificateStore.from_certs(chain),
                              signature_mechanism=signature_mechanism(certificate))
    return Signer(cms_signer, certificate, tuple(chain), "B-B", None, (), "", _is_test(certificate, chain), "pkcs12")


def _pkcs11_signer(module: str, token_label: str | None, pin: str | None, now) -> Signer:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

    if not os.path.isfile(module):
        raise SigningError(f"Không tìm thấy thư viện PKCS#11 '{module}'", "SOHOA_SIGN_PKCS11_MODULE not found")
    if not pin:
        raise SigningError("Chưa có mã PIN của token: đặt SOHOA_SIGN_PKCS11_PIN hoặc SOHOA_SIGN_PKCS11_PIN_FILE",
                           "token PIN missing")
    criteria = TokenCriteria(label=token_label) if token_label else None
    try:
        session = open_pkcs11_session(module, token_criteria=criteria, user_pin=pin)
    except pkcs11.exceptions.PinIncorrect:
        raise PinRefused("Mã PIN của token không đúng", "wrong token PIN") from None
    except pkcs11.exceptions.PinLocked:
        raise PinRefused("Token đã bị khóa PIN", "token PIN locked") from None
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
            raise SigningError("Token không có cặp khóa riêng và chứng thư ký (cùng CKA_ID)",
                               "no private key with a matching certificate on the token")
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
            return Signer(cms_signer, cert, tuple(chain), "B-B", None, (), "", _is_test(cert, chain), "pkcs11",
                          _session=_TokenSession(session))
        raise SigningError("; ".join(problems))
    except BaseException:
        session.close()
        raise


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
    return Signer(cms_signer, certificate, (ca,), "B-B", None, (), "", True, "development",
                  revocation_mode="soft-fail")
