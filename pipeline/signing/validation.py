"""Validation of signed PDFs: every signature and document timestamp (integrity, whole
document covered, chain to the trust roots, revocation, timestamp), the PAdES level, test
signatures, and PDF/A-2b. Messages come in Vietnamese (for officers) and English (for logs).

Revocation follows a policy: "hard" (pyhanko-certvalidator's "hard-fail": a certificate that
names an OCSP responder or CRL must have its status established, or the signature fails) or
"soft" ("soft-fail": a status that cannot be established, unreachable or unusable, passes,
and the verdict says so). Each signature and document timestamp reports its revocation status
("good", "revoked", "unavailable", "not-needed") and where it came from ("embedded": the DSS
or the CMS's revocation values; "fetched": OCSP/CRL over the network now; "none").

Files carrying validation data (a DSS: B-LT, B-LTA) are judged offline, with that data only:
each signature and document timestamp as of its own timestamp (the revocation data embedded
just after it counts), while the newest timestamp's TSA certificate is valid (a renewal adds
a fresh document timestamp before it expires). An OCSP responder unreachable today, revocation
data long out of date or a signer certificate expired since never fail them. B-LTA signatures
also go through pyHanko's AdES LTA process (ETSI EN 319 102-1), reported as ``ades_long_term``.
Files without validation data (B-B, B-T, most third-party signatures) are judged now, fetching
OCSP and CRLs as the certificates point to them.

As in pyHanko, validation never imports the signers: nothing here loads a key, the stamp
or the development PKI.
"""
from __future__ import annotations

import io
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from .certificates import PADES_SUBFILTER, REVOCATION_MODES, TEST_MARK, VIETNAM_TZ, certificate_sha256, \
    common_name, is_test_certificate, issuer_of, load_certificates, normalise_fingerprint
from .glue import fetcher_backend, run_async, validation_context
from .pdfa_signed import pdfa_check
from .status import PdfVerdict, SignatureStatus

_REVOCATION_RANK = {"not-needed": 0, "good": 1, "unavailable": 2, "revoked": 3}


def _messages(vi: list, en: list, text_vi: str, text_en: str) -> None:
    vi.append(text_vi)
    en.append(text_en)


def _unsigned_attr_names(embedded) -> set[str]:
    attrs = embedded.signer_info["unsigned_attrs"]
    return {a["type"].native for a in attrs} if attrs.native else set()


def _has_dss(reader) -> bool:
    dss = reader.root["/DSS"] if "/DSS" in reader.root else None
    return dss is not None and any(k in dss for k in ("/Certs", "/OCSPs", "/CRLs"))


def pades_level(has_signature_timestamp: bool, has_dss: bool, later_document_timestamp: bool) -> str:
    if not has_signature_timestamp:
        return "B-B"
    if not has_dss:
        return "B-T"
    return "B-LTA" if later_document_timestamp else "B-LT"


def _covered(status) -> bool:
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return True
    return (status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
            and status.modification_level is not None
            and status.modification_level <= ModificationLevel.LTA_UPDATES)


class SignatureReadError(Exception):
    """A signature (or the file's signature structure) could not be read or checked; the
    message names the field and the original exception."""

    def __init__(self, field: str | None, cause: BaseException):
        self.field = field
        self.cause = cause
        super().__init__(f"{field}: {_describe(cause)}" if field else _describe(cause))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- library logs

_QUIET_LOGGERS = ("pyhanko", "pyhanko_certvalidator")
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_levels: dict[str, int] = {}


@contextmanager
def quiet_library_logs():
    """pyHanko and pyhanko-certvalidator log every failed check (an untrusted chain, a failed
    OCSP fetch) as a WARNING or ERROR with its traceback; without a logging configuration
    Python prints those to stderr before sohoa's verdict. The verdict names each failure, so
    for the duration of a verification their loggers (and their children, which inherit
    the level) let only CRITICAL through. Nested and concurrent verifications share one
    window; the levels the application set are restored when the last one ends. Nothing
    else of the process's logging configuration is touched."""
    global _quiet_depth
    with _quiet_lock:
        if _quiet_depth == 0:
            for name in _QUIET_LOGGERS:
                logger = logging.getLogger(name)
                _saved_levels[name] = logger.level
                logger.setLevel(logging.CRITICAL)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for name, level in _saved_levels.items():
                    logging.getLogger(name).setLevel(level)
                _saved_levels.clear()


# ----------------------------------------------------------------------------- verdict

def _pdfa_findings_vi(findings: tuple[str, ...]) -> str:
    """The PDF/A findings for an officer: how many, and the clauses of ISO 19005-2 they break (the
    validators' own words, in English, are in the English message)."""
    clauses = list(dict.fromkeys(re.findall(r"ISO_19005_2:([0-9][0-9.]*(?:-[0-9]+)?)", " ".join(findings))))
    where = f" (điều {', '.join(clauses[:5])} của ISO 19005-2)" if clauses else ""
    return f"Tệp không đạt PDF/A-2b: {len(findings)} điểm sai quy chuẩn{where}"


# the library's reason is English and technical: the English message carries it
UNREADABLE_VI = "dữ liệu chữ ký bị hỏng, bị sửa hoặc không đúng chuẩn (lý do kỹ thuật ở dòng tiếng Anh)"


def verify_pdf(pdf: bytes, trust_roots: list[bytes] | None, *, require_pdfa: bool = True,
               revocation: str = "hard", test_cas=()) -> PdfVerdict:
    """Verdict on one PDF: per-signature results and an overall ``ok``.

    ``trust_roots`` are PEM or DER certificates; with none, no chain can be trusted.
    ``revocation`` is the revocation policy, "hard" or "soft" (see the module's docstring;
    ``SigningSettings.revocation_policy``). ``test_cas`` are SHA-256 fingerprints (hex) of CA
    certificates whose signers' signatures are test signatures (the development CAs of a
    home, ``keys.development_ca_fingerprints``), for development keys made before their
    certificates carried ``certificates.TEST_POLICY_OID``.
    The top-level fields describe the main (last non-timestamp) signature."""
    if revocation not in REVOCATION_MODES:
        raise ValueError(f"revocation policy must be 'hard' or 'soft', not {revocation!r}")
    roots = [c for data in (trust_roots or []) for c in load_certificates(data)]
    test_fingerprints = frozenset(normalise_fingerprint(f) for f in test_cas or ())
    vi, en = [], []
    pdfa = pdfa_check(pdf)
    if not pdfa.ok:
        _messages(vi, en, _pdfa_findings_vi(pdfa.findings), "File is not PDF/A-2b: " + "; ".join(pdfa.findings[:5]))
    try:
        with quiet_library_logs():
            signatures = run_async(_verify_signatures(pdf, roots, revocation, test_fingerprints))
    except Exception as exc:  # noqa: BLE001 - an unreadable signature is a verdict
        signatures = []
        if isinstance(exc, SignatureReadError) and exc.field:
            _messages(vi, en, f"Không đọc hoặc kiểm tra được chữ ký {exc.field}: {UNREADABLE_VI}",
                      f"Cannot read or check signature {exc.field}: {_describe(exc.cause)}")
        else:
            cause = exc.cause if isinstance(exc, SignatureReadError) else exc
            _messages(vi, en, f"Không đọc được các chữ ký trong tệp: {UNREADABLE_VI}",
                      f"Cannot read the file's signatures: {_describe(cause)}")
        read_failed = True
    else:
        read_failed = False
    if not signatures and not read_failed:
        _messages(vi, en, "Tệp không có chữ ký số", "The file has no digital signature")
    for s in signatures:
        vi.extend(s.messages_vi)
        en.extend(s.messages_en)
    main = next((s for s in reversed(signatures) if s.kind == "signature"), None)
    last = signatures[-1] if signatures else None
    summary = max((s.revocation for s in signatures), key=_REVOCATION_RANK.__getitem__, default="unavailable")
    # After the last signature or timestamp only validation data (DSS) may follow.
    ok = bool(signatures) and all(s.ok for s in signatures) and main is not None \
        and last.whole_document_covered and (pdfa.ok or not require_pdfa)
    if ok and main.test_signature:
        # a test signature is never a plain pass
        _messages(vi, en, "Chữ ký hợp lệ (chữ ký thử nghiệm, không có giá trị pháp lý)",
                  "Signature valid (TEST signature, no legal value)")
    elif ok and summary == "unavailable":
        _messages(vi, en, f"Chữ ký hợp lệ ({main.level}, {main.signer}; chưa xác định được tình trạng thu hồi)",
                  f"Signature valid ({main.level}, {main.signer}; revocation status not established)")
    elif ok:
        _messages(vi, en, f"Chữ ký hợp lệ ({main.level}, {main.signer})",
                  f"Signature valid ({main.level}, {main.signer})")
    elif last is not None and not last.whole_document_covered:
        _messages(vi, en, "Tệp có nội dung thêm sau chữ ký cuối cùng",
                  "The file has content added after its last signature")
    return PdfVerdict(
        ok=ok,
        intact=bool(main and main.intact),
        whole_document_covered=bool(last and last.whole_document_covered) and all(
            s.whole_document_covered for s in signatures),
        chain_trusted=bool(signatures) and all(s.chain_trusted for s in signatures),
        timestamp_ok=bool(main) and main.timestamp_ok is not False and all(
            s.timestamp_ok is not False for s in signatures),
        pdfa_ok=pdfa.ok,
        pdfa_findings=pdfa.findings,
        subfilter=main.subfilter if main else None,
        level=main.level if main else None,
        signer=main.signer if main else None,
        signed_at=main.signed_at if main else None,
        test_signature=bool(main and main.test_signature),
        signatures=tuple(signatures),
        messages_vi=tuple(vi),
        messages_en=tuple(en),
        revocation=summary,
        revocation_policy=revocation,
    )


@dataclass(frozen=True)
class _Revocation:
    status: str  # "good", "revoked", "unavailable", "not-needed"
    source: str  # "embedded", "fetched", "none"
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class _EmbeddedData:
    """Validation data carried by the file for one signature: the DSS, and the revocation
    values and certificates in the signature's CMS."""

    certs: tuple
    crls: tuple
    ocsps: tuple

    @property
    def revocation_data(self) -> bool:
        return bool(self.crls or self.ocsps)


async def _verify_signatures(pdf: bytes, roots, policy: str, test_fingerprints) -> list[SignatureStatus]:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import DocumentSecurityStore

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_signatures)
        has_dss = _has_dss(reader)
        dss = _dss_data(DocumentSecurityStore.read_dss(reader)) if has_dss else _EmbeddedData((), (), ())
    except Exception as exc:  # noqa: BLE001 - named in the verdict
        raise SignatureReadError(None, exc) from exc
    # B-LT and later are judged with the validation data embedded in the file only, never
    # fetching, each signature and document timestamp as of its own timestamp; without a
    # DSS, OCSP and CRLs are fetched now, as the certificates point to them.
    backend = None if has_dss else fetcher_backend()
    try:
        results = []
        for index, sig in enumerate(embedded):
            try:
                later_ts = any(e.sig_object_type == "/DocTimeStamp" for e in embedded[index + 1:])
                results.append(await _verify_one(sig, roots, policy, has_dss, later_ts, dss, backend,
                                                 test_fingerprints))
            except SignatureReadError:
                raise
            except Exception as exc:  # noqa: BLE001 - named in the verdict
                raise SignatureReadError(_field_safe(sig), exc) from exc
        if any(r.ades_long_term == "PASSED" for r in results):
            # The AdES LTA process validated the chain of document timestamps as proof of
            # existence, with the validation data embedded in the file; older timestamps
            # whose TSA certificates have since expired, or whose revocation data is no longer
            # current, count.
            for i, r in enumerate(results[:-1]):
                if r.kind == "timestamp" and r.intact and r.valid and r.revocation != "revoked" \
                        and (not r.chain_trusted or r.revocation == "unavailable"):
                    results[i] = replace(r, chain_trusted=True, ok=r.whole_document_covered,
                                         timestamp_ok=r.whole_document_covered, revocation="good",
                                         revocation_source="embedded", messages_vi=(), messages_en=())
        if has_dss and results:
            results[-1] = _newest_timestamp_still_valid(results[-1], embedded)
        return results
    finally:
        if backend is not None:
            await backend.close()


def _newest_timestamp_still_valid(last: SignatureStatus, embedded) -> SignatureStatus:
    """A file judged as of its timestamps holds while its newest timestamp's TSA certificate
    is valid: before it expires a renewal (``sohoa renew``) adds a fresh document timestamp."""
    expires = last_timestamp_expiry_of(embedded)
    if expires is None or expires > _now():
        return last
    when = expires.astimezone(VIETNAM_TZ)
    what_vi = "Dấu thời gian tài liệu" if last.kind == "timestamp" else "Dấu thời gian của chữ ký"
    what_en = "Document timestamp" if last.kind == "timestamp" else "Timestamp of signature"
    return replace(
        last, ok=False, timestamp_ok=False,
        messages_vi=(*last.messages_vi, f"{what_vi} {last.field}: chứng thư TSA của dấu thời gian mới nhất đã hết hạn "
                                        f"ngày {when:%Y-%m-%d}; tệp cần được gia hạn dấu thời gian trước ngày đó"),
        messages_en=(*last.messages_en, f"{what_en} {last.field}: the TSA certificate of the newest timestamp expired "
                                        f"on {when:%Y-%m-%d}; the file needed a timestamp renewal before then"))


def _timestamp_time(sig) -> datetime | None:
    """The genTime of a document timestamp, or of a signature's signature timestamp."""
    try:
        if sig.sig_object_type == "/DocTimeStamp":
            signed = sig.signed_data
        else:
            token = next((a["values"][0] for a in (sig.signer_info["unsigned_attrs"] or [])
                          if a["type"].native == "signature_time_stamp_token"), None)
            if token is None:
                return None
            signed = token["content"]
        return signed["encap_content_info"]["content"].parsed["gen_time"].native
    except Exception:  # noqa: BLE001 - no readable time: judged now
        return None


async def _verify_one(sig, roots, policy, has_dss, later_ts, dss: _EmbeddedData, backend, test_fingerprints):
    from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp

    timestamp = sig.sig_object_type == "/DocTimeStamp"
    data = _merge(dss, _cms_data(sig))
    # B-LT and later: as of the timestamp (the signature's, or the document timestamp's own),
    # with the embedded revocation data fetched just after it (retroactive revocation info);
    # the timestamp itself is checked in the same context.
    moment = _timestamp_time(sig) if has_dss else None
    as_of = {"moment": moment, "retroactive_revinfo": True} if moment is not None else {}
    # one context per signature: its fetch results are this signature's own
    context = validation_context(roots, data.certs, REVOCATION_MODES[policy], backend,
                                 crls=list(data.crls), ocsps=list(data.ocsps), **as_of)

    async def validate(ctx):
        if timestamp:
            return await async_validate_pdf_timestamp(sig, validation_context=ctx)
        return await async_validate_pdf_signature(sig, signer_validation_context=ctx, ts_validation_context=ctx)

    status = await validate(context)
    long_term = None
    if not timestamp and has_dss and later_ts:
        long_term = await _ades_long_term(sig, roots)  # B-LTA: pyHanko's AdES LTA process
    chain_trusted = bool(status.trusted) or long_term == "PASSED"
    if not (status.intact and status.valid):
        revocation = _Revocation("unavailable", "none")  # no chain was built: nothing was checked
    elif status.trusted or long_term != "PASSED":
        path_status, relaxed_trusted = status, False
        if not chain_trusted and status.revocation_details is None:
            # pyhanko-certvalidator fails a path whose revocation status cannot be established
            # ("hard": none found; either mode: the data found is stale or unusable). Judged
            # again with the same certificates and no revocation check (nothing is fetched),
            # a chain that then holds was refused for revocation only, if the revocation check
            # below agrees: the verdict says so, and the policy decides.
            relaxed = await validate(_same_data_context(context, roots, "none", as_of))
            relaxed_trusted = bool(relaxed.trusted)
            if relaxed.validation_path is not None and status.validation_path is None:
                path_status = relaxed
        revocation = await _revocation(path_status, roots, data, context, fetching=backend is not None,
                                       as_of=as_of, details=status.revocation_details)
        if relaxed_trusted and revocation.status == "unavailable":
            chain_trusted = True
    else:
        # proven by the long-term process only, which requires revocation data for every
        # certificate of the chain, from the file
        revocation = _Revocation("good", "embedded")
    if timestamp:
        return _timestamp_verdict(sig, status, chain_trusted, revocation, policy)
    return _signature_verdict(sig, status, has_dss, later_ts, long_term, chain_trusted, revocation, policy,
                              _is_test_signature(sig, status, test_fingerprints), _chains_by_name(sig, roots),
                              _issued_by(sig, status, test_fingerprints))


def _same_data_context(context, roots, mode, as_of):
    """A validation context under another revocation mode that shares ``context``'s
    certificates and revocation data, fetched results included (fetchers cache them: nothing
    is fetched again)."""
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=list(roots), certificate_registry=context.certificate_registry,
                             revinfo_manager=context.revinfo_manager, revocation_mode=mode, **as_of)


# ----------------------------------------------------------------------------- embedded data

def _dss_data(dss) -> _EmbeddedData:
    from asn1crypto import crl as asn1_crl, ocsp as asn1_ocsp
    from pyhanko.pdf_utils.decode_limits import DecodePurpose

    ocsps = [asn1_ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE))
             for ref in dss.ocsps]
    crls = [asn1_crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in dss.crls]
    return _EmbeddedData(tuple(dss.load_certs()), tuple(crls), tuple(ocsps))


def _cms_data(sig) -> _EmbeddedData:
    """Certificates and revocation values in the signature's CMS: the SignedData
    ``certificates`` and ``crls`` (RFC 5652, with RFC 5940 OCSP responses) and Adobe's
    ``adbe-revocationInfoArchival`` signed attribute."""
    from asn1crypto import ocsp as asn1_ocsp
    from pyhanko.sign.general import MultivaluedAttributeError, NonexistentAttributeError, \
        find_unique_cms_attribute

    signed_data = sig.signed_data
    crls, ocsps = [], []
    for choice in signed_data["crls"] or ():
        if choice.name == "crl":
            crls.append(choice.chosen)
        elif choice.chosen["other_rev_info_format"].native == "ocsp_response":
            ocsps.append(asn1_ocsp.OCSPResponse.load(choice.chosen["other_rev_info"].dump()))
    try:
        archival = find_unique_cms_attribute(sig.signer_info["signed_attrs"], "adobe_revocation_info_archival")
    except (NonexistentAttributeError, MultivaluedAttributeError):
        archival = None
    if archival is not None:
        crls.extend(archival["crl"] or ())
        ocsps.extend(archival["ocsp"] or ())
    return _EmbeddedData(tuple(sig.other_embedded_certs), tuple(crls), tuple(ocsps))


def _merge(a: _EmbeddedData, b: _EmbeddedData) -> _EmbeddedData:
    return _EmbeddedData(a.certs + b.certs, a.crls + b.crls, a.ocsps + b.ocsps)


# ----------------------------------------------------------------------------- revocation

async def _revocation(status, roots, data: _EmbeddedData, context, *, fetching: bool, as_of: dict,
                      details=None) -> _Revocation:
    """The revocation status of the certificates of ``status``'s validation path (all but
    the trust anchor) and where it came from: each certificate that names an OCSP responder
    or CRL is checked with the file's embedded data first, then with what ``context``
    fetched (fetches are cached per context: nothing is fetched twice). ``details`` are
    pyHanko's revocation details when it found the signer or a CA revoked."""
    from pyhanko_certvalidator.util import get_declared_revinfo

    path = status.validation_path
    revoked = _Revocation("revoked", "fetched" if fetching else "embedded",
                          details.revocation_date if details is not None else None)
    if path is None:
        return revoked if details is not None else _Revocation("unavailable", "none")
    certs = [c for c in path.iter_certs(include_root=False) if any(get_declared_revinfo(c))]
    if not certs:
        return revoked if details is not None else _Revocation("not-needed", "none")
    offline = validation_context(roots, data.certs, "soft-fail", None, crls=list(data.crls),
                                 ocsps=list(data.ocsps), **as_of) if data.revocation_data else None
    sources, unavailable = set(), False
    for cert in certs:
        outcome, source = None, "none"
        if offline is not None:
            outcome, source = await _check_certificate(cert, path, offline, declared_only=False), "embedded"
        if outcome is None and fetching:
            outcome, source = await _check_certificate(cert, path, context, declared_only=True), "fetched"
        if outcome == "revoked":
            return replace(revoked, source=source)
        if outcome is None:
            unavailable = True
        else:
            sources.add(source)
    if details is not None:
        return revoked
    if unavailable:
        return _Revocation("unavailable", "none")
    return _Revocation("good", "fetched" if "fetched" in sources else "embedded")


async def _check_certificate(cert, path, context, *, declared_only: bool) -> str | None:
    """"good" or "revoked" when OCSP or a CRL available to ``context`` says so, else None."""
    from pyhanko_certvalidator.errors import RevokedError
    from pyhanko_certvalidator.revinfo.validate_crl import verify_crl
    from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response
    from pyhanko_certvalidator.util import get_declared_revinfo

    has_crl, has_ocsp = get_declared_revinfo(cert)
    checks = []
    if has_ocsp or not declared_only:
        checks.append(verify_ocsp_response)
    if has_crl or not declared_only:
        checks.append(verify_crl)
    for check in checks:
        try:
            await check(cert, path, context)
        except RevokedError:
            return "revoked"
        except Exception:  # noqa: BLE001 - no usable data from this source: try the next
            continue
        return "good"
    return None


# ----------------------------------------------------------------------------- test signatures

def _chain_of(sig, status) -> list:
    """The certificates besides the signer's: the CMS's, and the validation path's."""
    chain = list(sig.other_embedded_certs)
    if status.validation_path is not None:
        chain.extend(c for c in status.validation_path.iter_certs(include_root=True) if c.dump() != sig.signer_cert.dump())
    return chain


def _issued_by(sig, status, fingerprints) -> bool:
    """The signer's issuer is one of these CAs (the development CAs of this home)."""
    issuer = issuer_of(sig.signer_cert, _chain_of(sig, status))
    return issuer is not None and certificate_sha256(issuer) in fingerprints


def _is_test_signature(sig, status, test_fingerprints) -> bool:
    """A test signature: the signer's certificate or a certificate of its chain (the CMS's
    certificates, the validation path) carries sohoa's test-key policy, or its issuer is one
    of the given development CAs. The certificate's name does not count."""
    if is_test_certificate(sig.signer_cert) or any(is_test_certificate(c) for c in _chain_of(sig, status)):
        return True
    return _issued_by(sig, status, test_fingerprints)


def _has_signature_timestamp(sig) -> bool:
    return "signature_time_stamp_token" in _unsigned_attr_names(sig)


async def _ades_long_term(sig, roots) -> str:
    """ETSI EN 319 102-1 long-term validation (pyHanko's AdES LTA process): judges a B-LTA
    signature with the validation data embedded in the file only (never fetching) and the
    signature and document timestamps as proofs of existence: it passes when an OCSP responder
    has gone. It is a second opinion, not the verdict: once the signer's certificate has expired
    it answered INDETERMINATE (CERTIFICATE_CHAIN_GENERAL_FAILURE; the archive review, faketime in
    2036), and the signature is then judged as of its timestamp with the embedded data
    (``_verify_one``). (A B-LT file has no document timestamp to give its embedded data a proof
    of existence: pyHanko's process answers NO_POE for it, so B-LT is judged with its embedded
    data as of its signature's timestamp.)"""
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec, RevinfoOnlineFetchingRule, \
        RevocationInfoGatheringSpec, SignatureValidationSpec
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy, FreshnessReqType
    from pyhanko_certvalidator.registry import SimpleTrustManager

    if not roots:
        return "INDETERMINATE: no trust roots"
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=list(roots)),
            revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO,
                                              freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION)),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY)))
    try:
        result = await ades_lta_validation(sig, spec)
    except Exception as exc:  # noqa: BLE001 - an undecidable long-term check is a finding
        return f"INDETERMINATE: {type(exc).__name__}"
    indication = result.ades_subindic
    return "PASSED" if indication.status.name == "PASSED" else f"{indication.status.name}: {indication.name}"


def _field(sig) -> str:
    return str(sig.field_name)


def _field_safe(sig) -> str | None:
    try:
        return _field(sig)
    except Exception:  # noqa: BLE001
        return None


def _revocation_messages(vi, en, what_vi, what_en, holder, revocation: _Revocation, policy: str) -> None:
    if revocation.status == "revoked":
        when = f" ngày {revocation.revoked_at.astimezone(VIETNAM_TZ):%Y-%m-%d %H:%M}" \
            if revocation.revoked_at else ""
        when_en = f" on {revocation.revoked_at.astimezone(VIETNAM_TZ):%Y-%m-%d %H:%M}" \
            if revocation.revoked_at else ""
        _messages(vi, en, f"{what_vi}: chứng thư của '{holder}' (hoặc của CA cấp nó) đã bị thu hồi{when}",
                  f"{what_en}: the certificate of '{holder}' (or of a CA above it) was revoked{when_en}")
    elif revocation.status == "unavailable" and policy == "hard":
        _messages(vi, en, f"{what_vi}: không xác định được tình trạng thu hồi của chứng thư '{holder}' (không có "
                          f"phản hồi OCSP/CRL dùng được); chính sách thu hồi nghiêm ngặt không chấp nhận",
                  f"{what_en}: the revocation status of the certificate of '{holder}' cannot be established "
                  f"(no usable OCSP/CRL response); refused under the hard revocation policy")
    elif revocation.status == "unavailable":
        _messages(vi, en, f"{what_vi}: chưa xác định được tình trạng thu hồi của chứng thư '{holder}' (không có "
                          f"phản hồi OCSP/CRL dùng được); chấp nhận theo chính sách thu hồi mềm",
                  f"{what_en}: revocation status of the certificate of '{holder}' not established "
                  f"(no usable OCSP/CRL response); accepted under the soft revocation policy")


def _chains_by_name(sig, roots) -> bool:
    """Whether the signer's certificate leads, issuer by issuer through the certificates the
    signature carries, to one of ``roots``, whatever the dates: an expired signer is named as
    such only then (otherwise the roots are what is wrong; review of ac9d58a)."""
    carried = [c.chosen for c in sig.signed_data["certificates"] if c.name == "certificate"]
    certificate = sig.signer_cert
    for _ in range(8):
        if any(certificate.issuer == root.subject for root in roots):
            return True
        certificate = next((c for c in carried if c.subject == certificate.issuer and c.subject != c.issuer), None)
        if certificate is None:
            return False
    return False


def _now() -> datetime:
    """The time a verdict is given at (years after signing: what has expired since is said)."""
    return datetime.now(VIETNAM_TZ)


def _expired_on(certificate) -> datetime | None:
    """When ``certificate`` expired, in Vietnam's time; None while it is valid."""
    ends = certificate["tbs_certificate"]["validity"]["not_after"].native
    return ends.astimezone(VIETNAM_TZ) if ends < _now() else None


def _revocation_ok(revocation: _Revocation, policy: str) -> bool:
    return revocation.status != "revoked" and not (revocation.status == "unavailable" and policy == "hard")


def _signature_verdict(sig, status, has_dss: bool, later_ts: bool, long_term: str | None, trusted: bool,
                       revocation: _Revocation, policy: str, test: bool, reaches_root: bool = True,
                       this_home: bool = False) -> SignatureStatus:
    vi, en = [], []
    name = _field(sig)
    subfilter = str(sig.sig_object.get("/SubFilter", "")).lstrip("/")
    signer = common_name(sig.signer_cert)
    has_ts = _has_signature_timestamp(sig)
    level = pades_level(has_ts, has_dss, later_ts) if subfilter == PADES_SUBFILTER else None
    covered = _covered(status)
    ts_status = status.timestamp_validity
    timestamp_ok = None if not has_ts else bool(ts_status and ts_status.intact and ts_status.valid
                                                and ts_status.trusted)
    checked = bool(status.intact and status.valid)
    if not status.intact:
        _messages(vi, en, f"Chữ ký {name}: nội dung tệp đã bị thay đổi sau khi ký",
                  f"Signature {name}: the signed content was altered")
    elif not status.valid:
        _messages(vi, en, f"Chữ ký {name}: giá trị chữ ký không đúng", f"Signature {name}: invalid signature value")
    # The chain and revocation are judged only on an intact, valid signature (pyHanko does
    # not build a chain for a broken one): the message names the real cause.
    elif revocation.status == "revoked":
        _revocation_messages(vi, en, f"Chữ ký {name}", f"Signature {name}", signer, revocation, policy)
    elif not trusted and reaches_root and (ended := _expired_on(sig.signer_cert)) is not None:
        # found hands-on, years later: an expired signer was called untrusted, sending the
        # archivist to the trust roots; what fails is that nothing proves it signed in time
        proof_vi, proof_en = (
            ("xác thực dài hạn bằng dữ liệu kiểm tra nhúng trong tệp không đạt",
             "long-term validation with the file's embedded validation data did not pass") if has_dss else
            ("tệp có dấu thời gian nhưng không nhúng dữ liệu kiểm tra (B-LT) để xác thực dài hạn",
             "the file has a timestamp but no embedded validation data (B-LT) for long-term validation") if has_ts else
            ("chữ ký không có dấu thời gian để chứng minh đã ký trước ngày đó",
             "the signature has no timestamp to prove it was made before then"))
        _messages(vi, en, f"Chữ ký {name}: chứng thư của '{signer}' đã hết hạn ngày {ended:%d/%m/%Y}; {proof_vi}",
                  f"Signature {name}: the certificate of '{signer}' expired on {ended:%Y-%m-%d}; {proof_en}")
    elif not trusted and test and this_home:
        # found years later: a home that moved to a real key no longer trusts the development CA it
        # signed its trial dossiers with (on purpose: test signatures never pass where roots are named)
        _messages(vi, en, f"Chữ ký {name}: chứng thư thử nghiệm của '{signer}' là khóa THỬ NGHIỆM trước đây của chính "
                          "cài đặt này, không còn được tin cậy từ khi cấu hình khóa ký thật hoặc SOHOA_TRUST_ROOTS; "
                          "muốn kiểm các hồ sơ thử nghiệm đó thì thêm chứng thư gốc thử nghiệm "
                          "(SOHOA_HOME/dev-signing/ca.pem) vào SOHOA_TRUST_ROOTS",
                  f"Signature {name}: the test certificate of '{signer}' is this installation's own earlier "
                  "development key, no longer trusted since a real key or SOHOA_TRUST_ROOTS was configured "
                  "(add SOHOA_HOME/dev-signing/ca.pem to SOHOA_TRUST_ROOTS to check those dossiers)")
    elif not trusted and test:
        # found hands-on: a dossier signed with another installation's development key, imported here
        _messages(vi, en, f"Chữ ký {name}: chứng thư thử nghiệm của '{signer}' không dẫn tới chứng thư gốc tin cậy; "
                          "đây là khóa THỬ NGHIỆM của một cài đặt khác (mỗi cài đặt tự tạo chứng thư gốc thử nghiệm "
                          "của mình); muốn kiểm ở đây thì thêm chứng thư gốc thử nghiệm của nơi đã ký vào "
                          "SOHOA_TRUST_ROOTS",
                  f"Signature {name}: the test certificate of '{signer}' does not chain to a trusted root: another "
                  "installation's development key (add that installation's development CA to SOHOA_TRUST_ROOTS)")
    elif not trusted:
        _messages(vi, en, f"Chữ ký {name}: chứng thư của '{signer}' không dẫn tới chứng thư gốc tin cậy",
                  f"Signature {name}: the certificate of '{signer}' does not chain to a trusted root")
    else:
        ended = _expired_on(sig.signer_cert)
        if status.trusted and ended is not None and ts_status is not None:
            # years later (archive review): the verdict said a plain "hợp lệ", not that the certificate
            # has ended and what proves the signature was made while it held
            _messages(vi, en, f"Chữ ký {name}: chứng thư của '{signer}' đã hết hạn ngày {ended:%d/%m/%Y}; chữ ký vẫn "
                              f"hợp lệ vì dấu thời gian chứng minh đã ký ngày "
                              f"{ts_status.timestamp.astimezone(VIETNAM_TZ):%d/%m/%Y}, khi chứng thư còn hiệu lực",
                      f"Signature {name}: the certificate of '{signer}' expired on {ended:%Y-%m-%d}; the signature "
                      f"holds, its timestamp proving it was made on {ts_status.timestamp:%Y-%m-%d}, while it was valid")
        elif not status.trusted and long_term == "PASSED":
            if ended is not None:
                _messages(vi, en, f"Chữ ký {name}: chứng thư nay không còn hiệu lực nhưng chữ ký được xác thực dài "
                                  f"hạn (AdES LTA) nhờ dữ liệu kiểm tra và dấu thời gian đã nhúng",
                          f"Signature {name}: certificate no longer valid now, signature proven by long-term "
                          f"(AdES LTA) validation with the embedded data and timestamps")
            else:
                _messages(vi, en, f"Chữ ký {name}: dữ liệu kiểm tra đã nhúng nay không còn mới nhưng chữ ký được xác "
                                  f"thực dài hạn (AdES LTA) tại thời điểm các dấu thời gian",
                          f"Signature {name}: the embedded validation data is no longer current, signature proven "
                          f"by long-term (AdES LTA) validation as of its timestamps")
        _revocation_messages(vi, en, f"Chữ ký {name}", f"Signature {name}", signer, revocation, policy)
    if not covered:
        _messages(vi, en, f"Chữ ký {name}: không bao trùm toàn bộ tài liệu (có thay đổi sau khi ký)",
                  f"Signature {name}: does not cover the whole document (changed after signing)")
    if timestamp_ok is False and checked:
        _messages(vi, en, f"Chữ ký {name}: dấu thời gian không hợp lệ hoặc không tin cậy",
                  f"Signature {name}: timestamp invalid or untrusted")
    if subfilter != PADES_SUBFILTER:
        _messages(vi, en, f"Chữ ký {name}: định dạng {subfilter}, không phải PAdES",
                  f"Signature {name}: subfilter {subfilter}, not PAdES")
    if test:
        _messages(vi, en, f"Chữ ký {name}: {TEST_MARK}",
                  f"Signature {name}: TEST signature without legal value")
    signed_at = status.signer_reported_dt
    return SignatureStatus(
        field=name, kind="signature", subfilter=subfilter, level=level, signer=signer,
        certificate_sha256=certificate_sha256(sig.signer_cert),
        signed_at=signed_at.astimezone(VIETNAM_TZ) if signed_at else None,
        timestamp_at=ts_status.timestamp.astimezone(VIETNAM_TZ) if ts_status is not None else None,
        intact=bool(status.intact), valid=bool(status.valid),
        whole_document_covered=covered,
        covers_whole_file=status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        chain_trusted=trusted and checked, timestamp_ok=timestamp_ok, test_signature=test,
        ades_long_term=long_term,
        revocation=revocation.status, revocation_source=revocation.source,
        ok=bool(checked and trusted and covered and timestamp_ok is not False and _revocation_ok(revocation, policy)),
        messages_vi=tuple(vi), messages_en=tuple(en),
    )


def _timestamp_verdict(sig, status, trusted: bool, revocation: _Revocation, policy: str) -> SignatureStatus:
    vi, en = [], []
    name = _field(sig)
    covered = _covered(status)
    checked = bool(status.intact and status.valid)
    ok = bool(checked and trusted and covered and _revocation_ok(revocation, policy))
    tsa_cert = sig.signer_cert
    tsa = common_name(tsa_cert)
    if checked and trusted and covered and not ok:
        _revocation_messages(vi, en, f"Dấu thời gian tài liệu {name}", f"Document timestamp {name}", tsa,
                             revocation, policy)
    elif not ok:
        _messages(vi, en, f"Dấu thời gian tài liệu {name}: không hợp lệ, không tin cậy hoặc không bao trùm tài liệu",
                  f"Document timestamp {name}: invalid, untrusted or not covering the document")
    elif revocation.status == "unavailable":
        _revocation_messages(vi, en, f"Dấu thời gian tài liệu {name}", f"Document timestamp {name}", tsa,
                             revocation, policy)
    return SignatureStatus(
        field=name, kind="timestamp", subfilter=str(sig.sig_object.get("/SubFilter", "")).lstrip("/"),
        level=None, signer=tsa,
        certificate_sha256=certificate_sha256(tsa_cert),
        signed_at=status.timestamp.astimezone(VIETNAM_TZ) if status.timestamp else None,
        tsa_certificate_expires=tsa_cert["tbs_certificate"]["validity"]["not_after"].native,
        intact=bool(status.intact), valid=bool(status.valid), whole_document_covered=covered,
        covers_whole_file=status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        chain_trusted=trusted and checked, timestamp_ok=ok, test_signature=False, ok=ok,
        revocation=revocation.status, revocation_source=revocation.source,
        messages_vi=tuple(vi), messages_en=tuple(en),
    )


def renewal_deadline(pdf: bytes) -> tuple[datetime, str] | None:
    """When the file's long-term protection ends, and why: ("tsa") the newest timestamp's
    certificate expires; or ("signer"), for a signature with a timestamp and no validation data
    embedded (B-T), its signer's certificate expires first: the revocation data proving it good
    can no longer be had after that, so a B-T file must be renewed (its validation data embedded,
    ``pades.add_document_timestamp``) before. None without a timestamp (B-B)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    embedded = list(reader.embedded_signatures)
    tsa = last_timestamp_expiry_of(embedded)
    if tsa is None:
        return None
    regular = reader.embedded_regular_signatures
    if regular and not reader.embedded_timestamp_signatures and "/DSS" not in reader.root:
        signer = regular[-1].signer_cert["tbs_certificate"]["validity"]["not_after"].native
        if signer < tsa:
            return signer, "signer"
    return tsa, "tsa"


def last_timestamp_expiry_of(embedded) -> datetime | None:
    """When the certificate of the newest timestamp (document or signature timestamp) of a file's
    embedded signatures (pyHanko's, in file order) expires; None without one."""
    for sig in reversed(list(embedded)):
        if sig.sig_object_type == "/DocTimeStamp":
            cert = sig.signer_cert
        else:
            tst = next((a["values"][0] for a in (sig.signer_info["unsigned_attrs"] or [])
                        if a["type"].native == "signature_time_stamp_token"), None)
            if tst is None:
                continue
            signed = tst["content"]
            sid = signed["signer_infos"][0]["sid"]
            cert = next(c.chosen for c in signed["certificates"]
                        if c.name == "certificate" and sid.name == "issuer_and_serial_number"
                        and c.chosen.issuer == sid.chosen["issuer"]
                        and c.chosen.serial_number == sid.chosen["serial_number"].native)
        return cert["tbs_certificate"]["validity"]["not_after"].native
    return None
