"""Verification of signed e-dossier documents, and B-LTA timestamp renewal.

``verify_pdf`` judges one file: every signature and document timestamp (integrity, whole
document covered, chain to the trust roots, timestamp), the PAdES level, and PDF/A-2b.
``verify_dossier`` adds the manifest's SHA-256 and size for each stored document.
``renew_timestamps`` adds a fresh document timestamp before the last one's TSA
certificate expires. Messages come in Vietnamese (for officers) and English (for logs).

PDF/A-2b of a signed file. pikepdf's allowlist validator reports interactive forms
(/AcroForm), Widget annotations, the ESIC extension and the DSS as constructs it does not
check, so no signed PDF can get its plain "pass". ``pdfa_check`` therefore accepts a
signed file when (1) the validator finds no violation and nothing unsupported besides
those signature constructs, (2) the revision before the first signature (the PDF/A that
was signed) passes the validator outright, and (3) the signature constructs meet the
PDF/A-2 rules that apply to them (checked here: print flag, appearance streams, embedded
fonts, no NeedAppearances/XFA, no external streams). When veraPDF is installed its
verdict is required as well.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

from . import sign
from .ingest import dossier_lock, require_manifest
from .errors import NotFound, SohoaError

ANNOT_INVISIBLE, ANNOT_HIDDEN, ANNOT_PRINT, ANNOT_NOVIEW, ANNOT_TOGGLENOVIEW = 1, 2, 4, 32, 256
SIGNATURE_CONSTRUCTS = (
    re.compile(r"\(Catalog\) /AcroForm$"),
    re.compile(r"\(Catalog\)(?: /DSS)?$"),  # "unrecognized key(s) /DSS" is reported on the Catalog
    re.compile(r"\(Catalog\) /Extensions \(Extensions\) /ESIC$"),
)
WIDGET_SUBTYPE = re.compile(r"^obj (\d+) (\d+) \(Annot\) /Subtype$")


# --------------------------------------------------------------------------- PDF/A

def _findings(report) -> list:
    return list(report.findings)


def pdfa_check(data: bytes) -> dict:
    """{"ok", "findings", "method"}: PDF/A-2b of a (possibly signed) file, see module doc."""
    import pikepdf
    import pikepdf.pdfa

    from .pdfa import settle_garbage, validate

    settle_garbage()
    report = pikepdf.pdfa.validate_written(io.BytesIO(data), "2b")
    if report.passed:
        return _with_verapdf(data, {"ok": True, "findings": [], "method": "pikepdf"})
    problems, signature_parts = [], False
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a verdict, not a crash
        return {"ok": False, "findings": [f"không đọc được PDF (unreadable PDF): {exc}"], "method": "pikepdf"}
    with pdf:
        for f in _findings(report):
            if f.kind == "violation":
                problems.append(f"{f.rule} {f.where}: {f.message}")
            elif _is_signature_construct(f) or _is_widget(pdf, f.where):
                signature_parts = True
            else:
                problems.append(f"{f.rule} {f.where}: {f.message} ({f.kind})")
        if signature_parts and not problems:
            problems += signature_constructs_problems(pdf)
            base = unsigned_base_revision(data)
            if base is None:
                problems.append("không tìm thấy bản PDF/A trước chữ ký (no unsigned base revision found)")
            else:
                base_passed, base_findings = validate(base)
                if not base_passed:
                    problems += [f"bản trước khi ký (base revision): {f}" for f in base_findings] \
                        or ["base revision not approved"]
    return _with_verapdf(data, {"ok": not problems, "findings": problems,
                                "method": "pikepdf+signature-rules"})


def _is_signature_construct(finding) -> bool:
    if finding.where.endswith("(Catalog)"):
        unrecognized = re.fullmatch(r"unrecognized key\(s\) (.*) are not checked", finding.message)
        return bool(unrecognized) and set(unrecognized[1].split(", ")) <= {"/DSS"}
    return any(p.search(finding.where) for p in SIGNATURE_CONSTRUCTS)


def _is_widget(pdf, where: str) -> bool:
    m = WIDGET_SUBTYPE.match(where)
    if not m:
        return False
    try:
        return pdf.get_object(int(m[1]), int(m[2])).get("/Subtype") == "/Widget"
    except Exception:  # noqa: BLE001
        return False


def _with_verapdf(data: bytes, verdict: dict) -> dict:
    """Also require veraPDF's verdict when the reference validator is installed."""
    verapdf = shutil.which("verapdf")
    if not verapdf:
        return verdict
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(data)
        f.flush()
        run = subprocess.run([verapdf, "--flavour", "2b", "--format", "text", f.name],
                             capture_output=True, text=True, timeout=300)
    passed = run.stdout.strip().startswith("PASS")
    verdict["method"] += "+verapdf"
    if not passed:
        verdict["ok"] = False
        verdict["findings"].append("veraPDF: " + (run.stdout.strip() or run.stderr.strip())[:500])
    return verdict


def unsigned_base_revision(data: bytes) -> bytes | None:
    """The bytes of the file before its first signature's revision (the PDF/A that was signed)."""
    starts = [int(m[1]) for m in re.finditer(rb"/ByteRange\s*\[\s*\d+\s+(\d+)", data)]
    if not starts:
        return None
    contents_at = min(starts)
    eofs = [m.end() for m in re.finditer(rb"%%EOF[ \t]*(?:\r\n|\r|\n)?", data[:contents_at])]
    return data[:eofs[-1]] if eofs else None


def signature_constructs_problems(pdf) -> list[str]:
    """PDF/A-2 rules (ISO 19005-2 6.3, 6.4, 6.1.7) for what a signature adds to a file."""
    problems = []
    form = pdf.Root.get("/AcroForm")
    if form is not None:
        if bool(form.get("/NeedAppearances", False)):
            problems.append("AcroForm /NeedAppearances true (6.4.1)")
        if "/XFA" in form:
            problems.append("AcroForm /XFA (6.4.2)")
    for number, page in enumerate(pdf.pages, 1):
        for annot in page.get("/Annots", []):
            if annot.get("/Subtype") != "/Widget":
                continue
            flags = int(annot.get("/F", 0))
            where = f"trang {number}, ô {annot.get('/T', annot.get('/Parent', {}).get('/T', '?'))}"
            if not flags & ANNOT_PRINT or flags & (ANNOT_INVISIBLE | ANNOT_HIDDEN | ANNOT_NOVIEW | ANNOT_TOGGLENOVIEW):
                problems.append(f"{where}: cờ chú thích /F={flags} thiếu Print hoặc có Hidden/NoView (6.3.2)")
            rect = [float(v) for v in annot.get("/Rect", [0, 0, 0, 0])]
            visible = abs(rect[2] - rect[0]) > 0 and abs(rect[3] - rect[1]) > 0
            ap = annot.get("/AP")
            if visible:
                if ap is None or set(ap.keys()) != {"/N"}:
                    problems.append(f"{where}: cần đúng một luồng hiển thị /AP /N (6.3.3)")
                elif not isinstance(ap.N, __import__("pikepdf").Stream):
                    problems.append(f"{where}: /AP /N không phải luồng (6.3.3)")
                else:
                    problems += [f"{where}: {p}" for p in _resources_problems(ap.N.get("/Resources"), set())]
    for stream in _dss_streams(pdf):
        if any(k in stream for k in ("/F", "/FFilter", "/FDecodeParms")):
            problems.append("DSS có luồng tham chiếu tệp ngoài (6.1.7)")
    return problems


def _dss_streams(pdf):
    dss = pdf.Root.get("/DSS")
    if dss is None:
        return
    for key in ("/Certs", "/OCSPs", "/CRLs"):
        yield from dss.get(key, [])


def _resources_problems(resources, seen) -> list[str]:
    import pikepdf

    if resources is None:
        return []
    problems = []
    for font in resources.get("/Font", {}).values():
        fonts = list(font.get("/DescendantFonts", [])) if font.get("/Subtype") == "/Type0" else [font]
        for f in fonts:
            desc = f.get("/FontDescriptor")
            if desc is None or not any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                problems.append(f"phông {f.get('/BaseFont')} không được nhúng (font not embedded, 6.2.11.4)")
            if f.get("/Subtype") == "/CIDFontType2" and "/CIDToGIDMap" not in f:
                problems.append(f"phông {f.get('/BaseFont')} thiếu CIDToGIDMap (6.2.11.3)")
    for gs in resources.get("/ExtGState", {}).values():
        if "/TR" in gs or gs.get("/TR2", "/Default") != "/Default":
            problems.append("ExtGState có hàm chuyển /TR (6.2.5)")
    for xobj in resources.get("/XObject", {}).values():
        key = xobj.objgen
        if key in seen or not isinstance(xobj, pikepdf.Stream):
            continue
        seen.add(key)
        if xobj.get("/Subtype") == "/Form":
            problems += _resources_problems(xobj.get("/Resources"), seen)
    return problems


# --------------------------------------------------------------------------- signatures

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


def verify_pdf(pdf: bytes, trust_roots: list[bytes] | None, *, require_pdfa: bool = True) -> dict:
    """Verdict on one PDF: per-signature results and an overall ``ok``.

    ``trust_roots`` are PEM or DER certificates; with none, no chain can be trusted.
    The top-level fields describe the main (last non-timestamp) signature."""
    roots = [c for data in (trust_roots or []) for c in sign.load_certificates(data)]
    vi, en = [], []
    pdfa = pdfa_check(pdf)
    if not pdfa["ok"]:
        _messages(vi, en, "Tệp không đạt PDF/A-2b: " + "; ".join(pdfa["findings"][:5]),
                  "File is not PDF/A-2b: " + "; ".join(pdfa["findings"][:5]))
    try:
        signatures = sign.run_async(_verify_signatures(pdf, roots))
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
        vi.extend(s["messages_vi"])
        en.extend(s["messages_en"])
    main = next((s for s in reversed(signatures) if s["kind"] == "signature"), None)
    last = signatures[-1] if signatures else None
    # After the last signature or timestamp only validation data (DSS) may follow.
    ok = bool(signatures) and all(s["ok"] for s in signatures) and main is not None \
        and last["wholeDocumentCovered"] and (pdfa["ok"] or not require_pdfa)
    if ok:
        _messages(vi, en, f"Chữ ký hợp lệ ({main['level']}, {main['signer']})",
                  f"Signature valid ({main['level']}, {main['signer']})")
    elif last is not None and not last["wholeDocumentCovered"]:
        _messages(vi, en, "Tệp có nội dung thêm sau chữ ký cuối cùng",
                  "The file has content added after its last signature")
    return {
        "ok": ok,
        "intact": bool(main and main["intact"]),
        "wholeDocumentCovered": bool(last and last["wholeDocumentCovered"]) and all(
            s["wholeDocumentCovered"] for s in signatures),
        "chainTrusted": bool(signatures) and all(s["chainTrusted"] for s in signatures),
        "timestampOk": bool(main) and main["timestampOk"] is not False and all(
            s["timestampOk"] is not False for s in signatures),
        "pdfaOk": pdfa["ok"],
        "pdfaFindings": pdfa["findings"],
        "subfilter": main["subfilter"] if main else None,
        "level": main["level"] if main else None,
        "signer": main["signer"] if main else None,
        "signedAt": main["signedAt"] if main else None,
        "testSignature": bool(main and main["testSignature"]),
        "signatures": signatures,
        "messages_vi": vi,
        "messages_en": en,
    }


async def _verify_signatures(pdf: bytes, roots) -> list[dict]:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import (DocumentSecurityStore, async_validate_pdf_signature,
                                         async_validate_pdf_timestamp)

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    embedded = list(reader.embedded_signatures)
    has_dss = _has_dss(reader)
    dss = DocumentSecurityStore.read_dss(reader) if has_dss else None
    backend = None if has_dss else sign._fetcher_backend()
    try:
        if dss is not None:
            # B-LT and later: judge with the validation data embedded at signing time only.
            context = dss.as_validation_context({"trust_roots": list(roots), "allow_fetching": False,
                                                 "revocation_mode": "soft-fail"})
        else:
            context = sign.validation_context(roots, (), "soft-fail", backend)
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
        if any(r.get("adesLongTerm") == "PASSED" for r in results):
            # The AdES LTA process validated the chain of document timestamps as proof of
            # existence; older timestamps whose TSA certificates have since expired count.
            for r in results[:-1]:
                if r["kind"] == "timestamp" and not r["chainTrusted"] and r["intact"] and r["valid"]:
                    r.update(chainTrusted=True, ok=r["wholeDocumentCovered"], timestampOk=r["wholeDocumentCovered"],
                             messages_vi=[], messages_en=[])
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


def _signature_verdict(sig, status, has_dss: bool, later_ts: bool, long_term: str | None = None) -> dict:
    vi, en = [], []
    name = _field(sig)
    subfilter = str(sig.sig_object.get("/SubFilter", "")).lstrip("/")
    signer = sign.common_name(sig.signer_cert)
    has_ts = "signature_time_stamp_token" in _unsigned_attr_names(sig)
    level = pades_level(has_ts, has_dss, later_ts) if subfilter == sign.PADES_SUBFILTER else None
    covered = _covered(status)
    ts_status = status.timestamp_validity
    timestamp_ok = None if not has_ts else bool(ts_status and ts_status.intact and ts_status.valid
                                                and ts_status.trusted)
    test = sign.DEV_SIGNER_CN in signer or "TEST" in signer.upper()
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
    if subfilter != sign.PADES_SUBFILTER:
        _messages(vi, en, f"Chữ ký {name}: định dạng {subfilter}, không phải PAdES",
                  f"Signature {name}: subfilter {subfilter}, not PAdES")
    if test:
        _messages(vi, en, f"Chữ ký {name}: {sign.TEST_MARK}",
                  f"Signature {name}: TEST signature without legal value")
    signed_at = status.signer_reported_dt
    return {
        "field": name, "kind": "signature", "subfilter": subfilter, "level": level, "signer": signer,
        "certificateSha256": sign.certificate_sha256(sig.signer_cert),
        "signedAt": signed_at.astimezone(sign.VIETNAM_TZ).isoformat() if signed_at else None,
        "timestampAt": (ts_status.timestamp.astimezone(sign.VIETNAM_TZ).isoformat()
                        if ts_status is not None else None),
        "intact": bool(status.intact), "valid": bool(status.valid),
        "wholeDocumentCovered": covered,
        "coversWholeFile": status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        "chainTrusted": trusted, "timestampOk": timestamp_ok, "testSignature": test, "adesLongTerm": long_term,
        "ok": bool(status.intact and status.valid and trusted and covered and timestamp_ok is not False),
        "messages_vi": vi, "messages_en": en,
    }


def _timestamp_verdict(sig, status) -> dict:
    vi, en = [], []
    name = _field(sig)
    covered = _covered(status)
    ok = bool(status.intact and status.valid and status.trusted and covered)
    if not ok:
        _messages(vi, en, f"Dấu thời gian tài liệu {name}: không hợp lệ, không tin cậy hoặc không bao trùm tài liệu",
                  f"Document timestamp {name}: invalid, untrusted or not covering the document")
    tsa_cert = sig.signer_cert
    return {
        "field": name, "kind": "timestamp", "subfilter": str(sig.sig_object.get("/SubFilter", "")).lstrip("/"),
        "level": None, "signer": sign.common_name(tsa_cert),
        "certificateSha256": sign.certificate_sha256(tsa_cert),
        "signedAt": status.timestamp.astimezone(sign.VIETNAM_TZ).isoformat() if status.timestamp else None,
        "tsaCertificateExpires": tsa_cert["tbs_certificate"]["validity"]["not_after"].native.isoformat(),
        "intact": bool(status.intact), "valid": bool(status.valid), "wholeDocumentCovered": covered,
        "coversWholeFile": status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        "chainTrusted": bool(status.trusted), "timestampOk": ok, "testSignature": False, "ok": ok,
        "messages_vi": vi, "messages_en": en,
    }


# --------------------------------------------------------------------------- dossiers

def trust_roots_bytes(settings) -> list[bytes]:
    return [c.dump() for c in sign.trust_roots_from_settings(settings)]


def verify_dossier(store, code: str, settings) -> list[dict]:
    """One verdict per document of a stored dossier: stored SHA-256 and size against the
    manifest, signature, PDF/A, and the manifest's signature record against the file."""
    from storage.base import sha256

    manifest = require_manifest(store, code)
    roots = trust_roots_bytes(settings)
    verdicts = []
    for doc in manifest.get("documents", []):
        doc_id, pdf_info = doc.get("docId"), doc.get("pdf") or {}
        checks, vi, en = {}, [], []
        try:
            data = store.get(pdf_info["key"])
        except (NotFound, KeyError):
            verdicts.append({"docId": doc_id, "ok": False, "checks": {"stored": False},
                             "message_vi": f"{doc_id}: không tìm thấy tệp PDF đã lưu",
                             "message_en": f"{doc_id}: stored PDF not found", "details": None})
            continue
        checks["sha256"] = sha256(data) == pdf_info.get("sha256")
        checks["size"] = len(data) == pdf_info.get("size")
        if not checks["sha256"]:
            vi.append("mã băm SHA-256 của tệp khác với manifest (tệp đã bị thay đổi)")
            en.append("the file's SHA-256 differs from the manifest (file altered)")
        if not checks["size"]:
            vi.append("kích thước tệp khác với manifest")
            en.append("file size differs from the manifest")
        details = verify_pdf(data, roots)
        checks["signature"] = bool(details["signatures"]) and all(s["ok"] for s in details["signatures"]) \
            and details["wholeDocumentCovered"]
        checks["pdfa"] = details["pdfaOk"]
        recorded = doc.get("signature") or {}
        main = next((s for s in reversed(details["signatures"]) if s["kind"] == "signature"), None)
        checks["manifestSignature"] = bool(main) and (
            not recorded.get("certificateSha256") or recorded["certificateSha256"] == main["certificateSha256"]) \
            and (not recorded.get("level") or not details.get("level") or recorded["level"] == details["level"])
        altered = _altered_objects(store, [*doc.get("originals", []), doc.get("text"), doc.get("words")])
        checks["otherObjects"] = not altered
        if altered:
            vi.append("bản gốc/văn bản OCR bị thiếu hoặc bị thay đổi: " + ", ".join(altered))
            en.append("original or OCR text missing or altered: " + ", ".join(altered))
        if not checks["manifestSignature"]:
            vi.append("chữ ký trong tệp không khớp với bản ghi chữ ký trong manifest")
            en.append("the file's signature does not match the manifest's signature record")
        ok = all(checks.values())
        if not ok:
            vi += [m for m in details["messages_vi"] if not m.startswith("Chữ ký hợp lệ")]
            en += [m for m in details["messages_en"] if not m.startswith("Signature valid")]
        else:
            vi += details["messages_vi"]
            en += details["messages_en"]
        verdicts.append({
            "docId": doc_id, "ok": ok, "checks": checks,
            "message_vi": f"{doc_id}: {'ĐẠT' if ok else 'KHÔNG ĐẠT'}: " + "; ".join(dict.fromkeys(vi)),
            "message_en": f"{doc_id}: {'PASS' if ok else 'FAIL'}: " + "; ".join(dict.fromkeys(en)),
            "details": details,
        })
    return verdicts


def _altered_objects(store, objects: list[dict | None]) -> list[str]:
    """Keys of the manifest's other objects (originals, OCR text) whose bytes are missing or
    differ from their recorded SHA-256: fixity of the lossless master, re-read every time."""
    from storage.base import sha256

    altered = []
    for obj in filter(None, objects):
        try:
            if sha256(store.get(obj["key"])) != obj["sha256"]:
                altered.append(obj["key"])
        except NotFound:
            altered.append(obj["key"])
    return altered


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


def renew_timestamps(store, code: str, settings, *, within_days: int = 90, now: datetime | None = None) -> list[dict]:
    """Add a fresh document timestamp (B-LTA) to each document of the dossier whose newest
    timestamp's TSA certificate expires within ``within_days``; store the new bytes, then
    the manifest with the new SHA-256 and size, document by document: a failure part-way
    leaves every document that was renewed matching its manifest, and a retry goes on."""

    tsa_url = settings.sign.get("tsa_url")
    if not tsa_url:
        raise sign.SigningError("Gia hạn dấu thời gian cần SOHOA_TSA_URL (timestamp renewal needs SOHOA_TSA_URL)")
    now = now or datetime.now(timezone.utc)
    with dossier_lock(settings.home, code):
        return _renew_locked(store, code, settings, tsa_url, within_days, now)


def _renew_locked(store, code, settings, tsa_url, within_days, now) -> list[dict]:
    from storage import keys

    from . import audit
    from .manifest import dumps

    manifest = require_manifest(store, code)
    roots = sign.trust_roots_from_settings(settings)
    revocation = "soft-fail" if sign.uses_development_key(settings) else "hard-fail"
    results = []
    for doc in manifest.get("documents", []):
        doc_id, info = doc.get("docId"), doc.get("pdf") or {}
        data = store.get(info["key"], sha256=info.get("sha256"))  # never extend an altered file
        expires = last_timestamp_expiry(data)
        if expires is None:
            results.append({"docId": doc_id, "renewed": False, "expires": None,
                            "message_vi": f"{doc_id}: không có dấu thời gian để gia hạn (mức B-B)",
                            "message_en": f"{doc_id}: no timestamp to renew (level B-B)"})
            continue
        if expires - now > timedelta(days=within_days):
            results.append({"docId": doc_id, "renewed": False, "expires": expires.isoformat(),
                            "message_vi": f"{doc_id}: chưa cần gia hạn (chứng thư TSA hết hạn {expires:%Y-%m-%d})",
                            "message_en": f"{doc_id}: no renewal needed (TSA certificate expires {expires:%Y-%m-%d})"})
            continue
        renewed = sign.add_document_timestamp(data, tsa_url, roots, revocation_mode=revocation)
        stored = store.put(info["key"], renewed, "application/pdf",
                           {"dossier": code, "doc-id": doc_id, "kind": "pdf", "maintenance": manifest.get("maintenance")},
                           retain=True)
        doc["pdf"] = {**info, "sha256": stored.sha256, "size": stored.size}
        if doc.get("signature"):
            doc["signature"]["level"] = "B-LTA"
        stamp = sign.vietnam_now().isoformat()
        manifest.setdefault("events", []).append({
            "at": stamp, "type": "timestamp-renewal", "docId": doc_id, "outcome": "success",
            "detail": f"document timestamp added; previous TSA certificate expires {expires.isoformat()}"})
        manifest["updated"] = stamp
        store.put(keys.manifest(code), dumps(manifest), "application/json", {"dossier": code, "kind": "manifest"})
        audit.record(settings.home, "renew", dossier=code, docId=doc_id, sha256=stored.sha256)
        results.append({"docId": doc_id, "renewed": True, "expires": expires.isoformat(), "sha256": stored.sha256,
                        "message_vi": f"{doc_id}: đã thêm dấu thời gian tài liệu mới",
                        "message_en": f"{doc_id}: fresh document timestamp added"})
    return results


# --------------------------------------------------------------------------- CLI handlers

def _codes(args, store) -> list[str]:
    """The dossiers named on the command line (or all with --all); says so when there are none."""
    from storage import keys

    if getattr(args, "all", False):
        codes = keys.codes_from_keys(store.list(keys.PREFIX))
    else:
        codes = list(getattr(args, "codes", None) or [])
    if not codes:
        print("Chưa chỉ định hồ sơ: nêu mã hồ sơ hoặc dùng --all (no dossier given: CODE ... or --all)",
              file=sys.stderr)
    return codes


def cli_verify(args, settings) -> int:
    """``sohoa verify [CODE ...|--all] [--json]``: per-document verdicts; 1 if anything fails."""
    from storage import open_store

    store = open_store(settings)
    codes = _codes(args, store)
    if not codes:
        return 2
    report, failed = {}, False
    for code in codes:
        try:
            verdicts = verify_dossier(store, code, settings)
        except SohoaError as exc:
            verdicts = [{"docId": None, "ok": False, "checks": {}, "message_vi": f"{code}: {exc}",
                         "message_en": f"{code}: {exc}", "details": None}]
        failed |= not verdicts or not all(v["ok"] for v in verdicts)
        report[code] = verdicts
    if getattr(args, "json", False):
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        for code, verdicts in report.items():
            print(f"Hồ sơ / dossier {code}:")
            if not verdicts:
                print("  KHÔNG ĐẠT: hồ sơ không có tài liệu / FAIL: dossier has no documents")
            for v in verdicts:
                print(f"  {v['message_vi']}\n  {v['message_en']}")
    return 1 if failed else 0


def cli_renew(args, settings) -> int:
    """``sohoa renew [CODE ...|--all] [--days N] [--json]``: B-LTA renewal; 1 on any failure."""
    from storage import open_store

    store = open_store(settings)
    codes = _codes(args, store)
    if not codes:
        return 2
    days = int(getattr(args, "days", None) or 90)
    report, failed = {}, False
    for code in codes:
        try:
            report[code] = renew_timestamps(store, code, settings, within_days=days)
        except SohoaError as exc:
            failed = True
            report[code] = [{"docId": None, "renewed": False, "message_vi": f"{code}: {exc}",
                             "message_en": f"{code}: {exc}"}]
    if getattr(args, "json", False):
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        for code, results in report.items():
            print(f"Hồ sơ / dossier {code}:")
            for r in results:
                print(f"  {r['message_vi']}\n  {r['message_en']}")
    return 1 if failed else 0
