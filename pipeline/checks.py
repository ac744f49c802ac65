"""Judging a stored dossier: each document's fixity against its manifest, its signature and
PDF/A, the manifest's signature record against the file, and the other objects it lists
(originals, OCR text), re-read every time. Reads only; writes nothing.
"""
from __future__ import annotations

from storage.base import ObjectStore, sha256
from storage.errors import NotFound as ObjectNotFound

from .models import DocumentVerdict
from .repository import require_manifest
from .signing.validation import verify_pdf


def verify_stored_dossier(store: ObjectStore, code: str, trust_roots: list[bytes]) -> tuple[DocumentVerdict, ...]:
    manifest = require_manifest(store, code)
    return tuple(verify_stored_document(store, doc, trust_roots) for doc in manifest.get("documents", []))


def verify_stored_document(store: ObjectStore, doc: dict, trust_roots: list[bytes]) -> DocumentVerdict:
    doc_id, pdf_info = doc.get("docId"), doc.get("pdf") or {}
    try:
        data = store.get(pdf_info["key"])
    except (ObjectNotFound, KeyError):
        return DocumentVerdict(doc_id, False, {"stored": False}, f"{doc_id}: không tìm thấy tệp PDF đã lưu",
                               f"{doc_id}: stored PDF not found")
    checks, vi, en = {}, [], []
    checks["sha256"] = sha256(data) == pdf_info.get("sha256")
    checks["size"] = len(data) == pdf_info.get("size")
    if not checks["sha256"]:
        vi.append("mã băm SHA-256 của tệp khác với manifest (tệp đã bị thay đổi)")
        en.append("the file's SHA-256 differs from the manifest (file altered)")
    if not checks["size"]:
        vi.append("kích thước tệp khác với manifest")
        en.append("file size differs from the manifest")
    details = verify_pdf(data, trust_roots)
    checks["signature"] = bool(details.signatures) and all(s.ok for s in details.signatures) \
        and details.whole_document_covered
    checks["pdfa"] = details.pdfa_ok
    recorded = doc.get("signature") or {}
    main = details.main_signature
    checks["manifestSignature"] = bool(main) and (
        not recorded.get("certificateSha256") or recorded["certificateSha256"] == main.certificate_sha256) \
        and (not recorded.get("level") or not details.level or recorded["level"] == details.level)
    altered = altered_objects(store, [*doc.get("originals", []), doc.get("text"), doc.get("words")])
    checks["otherObjects"] = not altered
    if altered:
        vi.append("bản gốc/văn bản OCR bị thiếu hoặc bị thay đổi: " + ", ".join(altered))
        en.append("original or OCR text missing or altered: " + ", ".join(altered))
    if not checks["manifestSignature"]:
        vi.append("chữ ký trong tệp không khớp với bản ghi chữ ký trong manifest")
        en.append("the file's signature does not match the manifest's signature record")
    ok = all(checks.values())
    if ok:
        vi += details.messages_vi
        en += details.messages_en
    else:
        vi += [m for m in details.messages_vi if not m.startswith("Chữ ký hợp lệ")]
        en += [m for m in details.messages_en if not m.startswith("Signature valid")]
    return DocumentVerdict(
        doc_id, ok, checks,
        f"{doc_id}: {'ĐẠT' if ok else 'KHÔNG ĐẠT'}: " + "; ".join(dict.fromkeys(vi)),
        f"{doc_id}: {'PASS' if ok else 'FAIL'}: " + "; ".join(dict.fromkeys(en)),
        details)


def altered_objects(store: ObjectStore, objects: list[dict | None]) -> list[str]:
    """Keys of the manifest's other objects (originals, OCR text) whose bytes are missing or
    differ from their recorded SHA-256: fixity of the lossless master, re-read every time."""
    altered = []
    for obj in filter(None, objects):
        try:
            if sha256(store.get(obj["key"])) != obj["sha256"]:
                altered.append(obj["key"])
        except ObjectNotFound:
            altered.append(obj["key"])
    return altered
