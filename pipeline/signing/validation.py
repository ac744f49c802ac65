"""Validation of signed PDFs: every signature and document timestamp (integrity, whole
document covered, chain to the trust roots, timestamp), the PAdES level, and PDF/A-2b.
Messages come in Vietnamese (for officers) and English (for logs).

As in pyHanko, validation never imports the signers: nothing here loads a key, the stamp
or the development PKI.
"""
from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime

from .certificates import DEV_SIGNER_CN, PADES_SUBFILTER, TEST_MARK, VIETNAM_TZ, certificate_sha256, common_name, \
    load_certificates
from .glue import fetcher_backend, run_async, validation_context
from .pdfa_signed import pdfa_check
from .status import PdfVerdict, SignatureStatus


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


def verify_pdf(pdf: bytes, trust_roots: list[bytes] | None, *, require_pdfa: bool = True) -> PdfVerdict:
    """Verdict on one PDF: per-signature results and an overall ``ok``.

    ``trust_roots`` are PEM or DER certificates; with none, no chain can be trusted.
    The top-level fields describe the main (last non-timestamp) signature."""
    roots = [c for data in (trust_roots or []) for c in load_certificates(data)]
    vi, en = [], []
    pdfa = pdfa_check(pdf)
    if not pdfa.ok:
        _messages(vi, en, "Tệp không đạt PDF/A-2b: " + "; ".join(pdfa.findings[:5]),
                  "File is not PDF/A-2b: " + "; ".join(pdfa.findings[:5]))
    try:
        signatures = run_async(_verify_signatures(pdf, roots))
    except Exception as exc:  # noqa: BLE001 - a damaged file is a verdict
        signatures = []
        _messages(vi, en, f"Không đọc được chữ ký trong tệp (tệp hỏng hoặc bị sửa): {exc}",
                  f"Cannot read the file's signatures (damaged or altered file): {exc}")
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
    # After the last signature or timestamp only validation data (DSS) may follow.
    ok = bool(signatures) and all(s.ok for s in signatures) and main is not None \
        and last.whole_document_covered and (pdfa.ok or not require_pdfa)
    if ok:
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
    )


async def _verify_signatures(pdf: bytes, roots) -> list[SignatureStatus]:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import (DocumentSecurityStore, async_validate_pdf_signature,
                                         async_validate_pdf_timestamp)

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    embedded = list(reader.embedded_signatures)
    has_dss = _has_dss(reader)
    dss = DocumentSecurityStore.read_dss(reader) if has_dss else None
    backend = None if has_dss else fetcher_backend()
    try:
        if dss is not None:
            # B-LT and later: judge with the validation data embedded at signing time only.
            context = dss.as_validation_context({"trust_roots": list(roots), "allow_fetching": False,
                                                 "revocation_mode": "soft-fail"})
        else:
            context = validation_context(roots, (), "soft-fail", backend)
        results = []
        for index, sig in enumerate(embedded):
            later_ts = any(e.sig_object_type == "/DocTimeStamp" for e in embedded[index + 1:])
            if sig.sig_object_type == "/DocTimeStamp":
                status = await async_validate_pdf_timestamp(sig, validation_context=context)
                results.append(_timestamp_verdict(sig, status))
            else:
                status = await async_validate_pdf_signature(sig, signer_validation_context=context,
                                                            ts_validation_context=context)
                long_term = await _ades_long_term(sig, roots) if has_dss and later_ts else None  # B-LTA
                results.append(_signature_verdict(sig, status, has_dss, later_ts, long_term))
        if any(r.ades_long_term == "PASSED" for r in results):
            # The AdES LTA process validated the chain of document timestamps as proof of
            # existence; older timestamps whose TSA certificates have since expired count.
            for i, r in enumerate(results[:-1]):
                if r.kind == "timestamp" and not r.chain_trusted and r.intact and r.valid:
                    results[i] = replace(r, chain_trusted=True, ok=r.whole_document_covered,
                                         timestamp_ok=r.whole_document_covered, messages_vi=(), messages_en=())
        return results
    finally:
        if backend is not None:
            await backend.close()


async def _ades_long_term(sig, roots) -> str:
    """ETSI EN 319 102-1 long-term validation (pyHanko's AdES LTA process): judges a
    B-LTA signature with the embedded validation data and the document timestamps as
    proofs of existence, so it still passes after the signer's certificate has expired."""
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec, SignatureValidationSpec
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy, FreshnessReqType
    from pyhanko_certvalidator.registry import SimpleTrustManager

    if not roots:
        return "INDETERMINATE: no trust roots"
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(cert_validation_policy=CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=list(roots)),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO,
                                          freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION))))
    try:
        result = await ades_lta_validation(sig, spec)
    except Exception as exc:  # noqa: BLE001 - an undecidable long-term check is a finding
        return f"INDETERMINATE: {type(exc).__name__}"
    indication = result.ades_subindic
    return "PASSED" if indication.status.name == "PASSED" else f"{indication.status.name}: {indication.name}"


def _field(sig) -> str:
    return str(sig.field_name)


def _signature_verdict(sig, status, has_dss: bool, later_ts: bool, long_term: str | None = None) -> SignatureStatus:
    vi, en = [], []
    name = _field(sig)
    subfilter = str(sig.sig_object.get("/SubFilter", "")).lstrip("/")
    signer = common_name(sig.signer_cert)
    has_ts = "signature_time_stamp_token" in _unsigned_attr_names(sig)
    level = pades_level(has_ts, has_dss, later_ts) if subfilter == PADES_SUBFILTER else None
    covered = _covered(status)
    ts_status = status.timestamp_validity
    timestamp_ok = None if not has_ts else bool(ts_status and ts_status.intact and ts_status.valid
                                                and ts_status.trusted)
    test = DEV_SIGNER_CN in signer or "TEST" in signer.upper()
    trusted = bool(status.trusted) or long_term == "PASSED"
    if not status.intact:
        _messages(vi, en, f"Chữ ký {name}: nội dung tệp đã bị thay đổi sau khi ký",
                  f"Signature {name}: the signed content was altered")
    elif not status.valid:
        _messages(vi, en, f"Chữ ký {name}: giá trị chữ ký không đúng", f"Signature {name}: invalid signature value")
    if not trusted:
        _messages(vi, en, f"Chữ ký {name}: chứng thư của '{signer}' không dẫn tới chứng thư gốc tin cậy",
                  f"Signature {name}: the certificate of '{signer}' does not chain to a trusted root")
    elif not status.trusted:
        _messages(vi, en, f"Chữ ký {name}: chứng thư nay không còn hiệu lực nhưng chữ ký được xác thực dài hạn "
                          f"(AdES LTA) nhờ dữ liệu kiểm tra và dấu thời gian đã nhúng",
                  f"Signature {name}: certificate no longer valid now, signature proven by long-term "
                  f"(AdES LTA) validation with the embedded data and timestamps")
    if not covered:
        _messages(vi, en, f"Chữ ký {name}: không bao trùm toàn bộ tài liệu (có thay đổi sau khi ký)",
                  f"Signature {name}: does not cover the whole document (changed after signing)")
    if timestamp_ok is False:
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
        chain_trusted=trusted, timestamp_ok=timestamp_ok, test_signature=test, ades_long_term=long_term,
        ok=bool(status.intact and status.valid and trusted and covered and timestamp_ok is not False),
        messages_vi=tuple(vi), messages_en=tuple(en),
    )


def _timestamp_verdict(sig, status) -> SignatureStatus:
    vi, en = [], []
    name = _field(sig)
    covered = _covered(status)
    ok = bool(status.intact and status.valid and status.trusted and covered)
    if not ok:
        _messages(vi, en, f"Dấu thời gian tài liệu {name}: không hợp lệ, không tin cậy hoặc không bao trùm tài liệu",
                  f"Document timestamp {name}: invalid, untrusted or not covering the document")
    tsa_cert = sig.signer_cert
    return SignatureStatus(
        field=name, kind="timestamp", subfilter=str(sig.sig_object.get("/SubFilter", "")).lstrip("/"),
        level=None, signer=common_name(tsa_cert),
        certificate_sha256=certificate_sha256(tsa_cert),
        signed_at=status.timestamp.astimezone(VIETNAM_TZ) if status.timestamp else None,
        tsa_certificate_expires=tsa_cert["tbs_certificate"]["validity"]["not_after"].native,
        intact=bool(status.intact), valid=bool(status.valid), whole_document_covered=covered,
        covers_whole_file=status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        chain_trusted=bool(status.trusted), timestamp_ok=ok, test_signature=False, ok=ok,
        messages_vi=tuple(vi), messages_en=tuple(en),
    )


def last_timestamp_expiry(pdf: bytes) -> datetime | None:
    """When the certificate of the newest timestamp (document or signature timestamp) expires."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    for sig in reversed(list(reader.embedded_signatures)):
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
