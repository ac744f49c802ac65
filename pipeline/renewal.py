"""B-LTA timestamp renewal of a stored dossier: a fresh document timestamp on each document
whose protection ends soon: its newest timestamp's TSA certificate expires, or (a B-T file,
without validation data) its signer's certificate does (``validation.renewal_deadline``).

Document by document, under the dossier's lock: the renewed bytes are stored as a new
object beside the earlier versions (``<docId>.v2.pdf``, ...; never over them), then the
manifest naming it in the document's ``pdfVersions``, then the audit line. A process killed
at any point leaves a dossier whose manifest names only complete, verifying files, and a
retry goes on from there.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from storage import keys
from storage.base import ObjectStore

from . import audit, manifest as mf
from .models import RenewalResult
from .repository import dossier_lock, free_pdf_version, require_manifest, save_manifest
from .signing.certificates import vietnam_now
from .signing.pades import add_document_timestamp
from .signing.validation import renewal_deadline


def renew_stored_dossier(store: ObjectStore, db: Engine, code: str, *, tsa_url: str, trust_roots: list,
                         revocation_mode: str, within_days: int, now: datetime) -> tuple[RenewalResult, ...]:
    with dossier_lock(db, code):
        manifest = require_manifest(store, code)
        results = []
        for doc in manifest.get("documents", []):
            results.append(_renew_document(store, db, code, manifest, doc, tsa_url, trust_roots, revocation_mode,
                                           within_days, now))
        return tuple(results)


def _renew_document(store, db, code, manifest, doc, tsa_url, trust_roots, revocation_mode, within_days,
                    now) -> RenewalResult:
    doc_id, info = doc.get("docId"), doc.get("pdf") or {}
    data = store.get(info["key"], sha256=info.get("sha256"))  # never extend an altered file
    deadline = renewal_deadline(data)
    if deadline is None:
        return RenewalResult(doc_id, False, f"{doc_id}: không có dấu thời gian để gia hạn (mức B-B)",
                             f"{doc_id}: no timestamp to renew (level B-B)")
    expires, why = deadline
    ends_vi, ends_en = (("chứng thư TSA hết hạn", "TSA certificate expires") if why == "tsa" else
                        ("chứng thư người ký hết hạn, tệp chưa có dữ liệu kiểm tra dài hạn",
                         "signer's certificate expires, no validation data in the file"))
    if expires - now > timedelta(days=within_days):
        return RenewalResult(doc_id, False, f"{doc_id}: chưa cần gia hạn ({ends_vi} ngày {expires:%d/%m/%Y})",
                             f"{doc_id}: no renewal needed ({ends_en} {expires:%Y-%m-%d})",
                             expires=expires.isoformat())
    renewed = add_document_timestamp(data, tsa_url, trust_roots, revocation_mode=revocation_mode)
    # a new object beside the earlier ones, never over them: every signed version stays readable
    versions = doc.get("pdfVersions") or [{**info, "at": doc.get("created") or manifest.get("created")
                                           or now.isoformat(), "reason": "signed"}]
    number, abandoned = free_pdf_version(store, code, doc_id, len(versions) + 1)
    stored = store.put(keys.document_pdf(code, doc_id, number), renewed, "application/pdf",
                       {"dossier": code, "doc-id": doc_id, "kind": "pdf"} | mf.lock_metadata(manifest),
                       retain=True)  # locked until the dossier is due, not for its period from today
    stamp = vietnam_now().isoformat()
    doc["pdf"] = stored.to_json()
    doc["pdfVersions"] = [*versions, {**stored.to_json(), "at": stamp, "reason": "timestamp-renewal"}]
    if abandoned:
        doc["abandoned"] = [*doc.get("abandoned", []), *abandoned]
    if doc.get("signature"):
        doc["signature"]["level"] = "B-LTA"
    manifest.setdefault("events", []).append({
        "at": stamp, "type": "timestamp-renewal", "docId": doc_id, "outcome": "success",
        "detail": f"document timestamp added as {stored.key}; {ends_en} {expires.isoformat()}"})
    manifest["updated"] = stamp
    manifest.update(save_manifest(store, code, manifest))
    audit.record(db, "renew", dossier=code, docId=doc_id, sha256=stored.sha256, key=stored.key)
    now_ends, _ = renewal_deadline(renewed) or (expires, why)
    if now_ends <= expires:  # the TSA's certificate is the one that ends: its new timestamp ends with it
        return RenewalResult(doc_id, True, f"{doc_id}: đã thêm dấu thời gian tài liệu mới, nhưng chứng thư TSA của "
                                           f"nó cũng hết hạn ngày {now_ends:%d/%m/%Y}: thời hạn bảo vệ chưa được kéo "
                                           "dài; cần gia hạn bằng TSA có chứng thư mới hơn trước ngày đó",
                             f"{doc_id}: fresh document timestamp added, but its TSA certificate also expires "
                             f"{now_ends:%Y-%m-%d}: protection not extended; renew with a TSA whose certificate "
                             "ends later before then", expires=expires.isoformat(), sha256=stored.sha256)
    return RenewalResult(doc_id, True, f"{doc_id}: đã thêm dấu thời gian tài liệu mới (bảo vệ tới ngày "
                                       f"{now_ends:%d/%m/%Y})",
                         f"{doc_id}: fresh document timestamp added (protected until {now_ends:%Y-%m-%d})",
                         expires=expires.isoformat(), sha256=stored.sha256)
