"""Ingest: one call adds one document, made of the given files' pages, to a dossier.

    read and check inputs -> store originals -> pages in parallel (ocr.page)
    -> PDF/A-2b (validated) -> sign -> store PDF, text, words -> manifest last -> index

Nothing becomes visible until the manifest naming it is stored, so a crash at any step
leaves the dossier as it was (plus originals and cached page results, which make the
retry cheaper). The same files in the same order are recognised and not added twice.
"""
from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

from storage import keys
from storage.base import ObjectStore

from . import audit, dossier, manifest as mf
from .errors import InputError, IntegrityError, NotFound, SohoaError
from .inputs import Source, read_source
from .pages import run_pages
from .pdfa import DocumentMeta, PageRender, build_pdfa


def load_manifest(store: ObjectStore, code: str) -> dict | None:
    """The dossier's manifest, None if the dossier does not exist; IntegrityError if unreadable."""
    try:
        data = store.get(keys.manifest(code))
    except NotFound:
        return None
    try:
        return mf.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"Manifest của hồ sơ {code} bị hỏng, không đọc được "
                             f"(damaged manifest: {e}); chưa thay đổi gì") from None


def require_manifest(store: ObjectStore, code: str) -> dict:
    """The dossier's manifest; NotFound when the dossier does not exist."""
    manifest = load_manifest(store, code)
    if manifest is None:
        raise NotFound(f"Không tìm thấy hồ sơ {code} (dossier not found: no manifest)")
    return manifest


@contextmanager
def dossier_lock(home: Path, code: str):
    """One writer per dossier on this machine: manifest updates are read-modify-write."""
    path = Path(home) / "locks" / f"{code}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ingest(settings, store: ObjectStore, code: str, files: list[str], title: str,
           signer=None, jobs: int | None = None, index=None, maintenance: str | None = None,
           paper_file_code: str | None = None) -> dict:
    """Add one document to dossier ``code``; returns a summary for the operator."""
    code = dossier.validate(code)
    if not files:
        raise SohoaError("Chưa chọn tệp nào để số hóa (no input files)")
    try:
        sources = [read_source(f, settings.max_pixels) for f in files]
    except InputError as e:
        audit.record(settings.home, "ingest", "failure", dossier=code, file=e.file, page=e.page, reason=e.reason)
        raise
    with dossier_lock(settings.home, code):
        current = load_manifest(store, code) or mf.new(code, title, audit.now_vn(), paper_file_code, maintenance)
        current = mf.with_dossier_fields(current, maintenance=maintenance, paper_file_code=paper_file_code)
        digest = mf.input_digest([s.sha256 for s in sources])
        if existing := mf.find_document(current, digest):
            audit.record(settings.home, "ingest", "duplicate", dossier=code, docId=existing["docId"])
            return summary(current, existing, duplicate=True)
        doc_id = dossier.doc_id(code, mf.next_sequence(current))
        try:
            originals = [store_original(store, code, doc_id, s, current["maintenance"]) for s in sources]
            results = process_pages(settings, sources, jobs)
            document = assemble_document(store, current, doc_id, title, sources, originals, results, digest, signer)
            updated = mf.with_document(current, document, audit.now_vn())
            store.put(keys.manifest(code), mf.dumps(updated), "application/json", {"dossier": code, "kind": "manifest"})
        except BaseException as e:
            audit.record(settings.home, "ingest", "failure", dossier=code, docId=doc_id, reason=f"{type(e).__name__}: {e}")
            raise
        audit.record(settings.home, "ingest", "success", dossier=code, docId=doc_id, sha256=document["pdf"]["sha256"])
        result = summary(updated, document, duplicate=False)
        # Still under the lock: the index entry of a dossier is rebuilt from its manifest, so two
        # ingests must not index in the opposite order to the one they stored in.
        if index is not None:
            try:
                index(updated, {doc_id: [r["text"] for r in results]})
            except Exception as e:  # the dossier is safely stored; the index can be rebuilt from storage
                audit.record(settings.home, "index", "failure", dossier=code, docId=doc_id, reason=str(e))
                result["warnings"] = [f"Chưa cập nhật được chỉ mục tìm kiếm ({type(e).__name__}: {e}); "
                                      "hồ sơ đã được lưu an toàn, hãy chạy 'sohoa reindex'."]
    return result


def store_original(store: ObjectStore, code: str, doc_id: str, source: Source, maintenance: str | None) -> dict:
    """The citizen's bytes, unchanged, before any processing (the lossless master)."""
    info = store.put(keys.original(code, source.sha256, source.ext), source.data, source.media_type,
                     {"dossier": code, "doc-id": doc_id, "kind": "original", "filename": source.name,
                      "maintenance": maintenance}, retain=True)
    return {"key": info.key, "sha256": info.sha256, "size": info.size, "filename": source.name,
            "mediaType": source.media_type, "pages": source.page_count}


def process_pages(settings, sources: list[Source], jobs: int | None) -> list[dict]:
    work = settings.home / "work" / "pages"
    work.mkdir(parents=True, exist_ok=True)
    tasks = [{"path": s.path, "file": s.name, "kind": s.kind, "sha256": s.sha256, "page": p,
              "lang": settings.ocr_lang, "max_pixels": settings.max_pixels, "work_dir": str(work)}
             for s in sources for p in range(1, s.page_count + 1)]
    results = run_pages(tasks, settings.jobs if jobs is None else jobs)
    failed = [r for r in results if "error" in r]
    if failed:
        for r in failed:
            audit.record(settings.home, "page", "failure", file=r["file"], page=r["page"], reason=r["error"])
        done = len(results) - len(failed)
        raise SohoaError(f"{len(failed)}/{len(results)} trang lỗi, tài liệu chưa được lưu "
                         f"({done} trang đã xử lý xong sẽ không phải làm lại khi chạy lại):\n"
                         + "\n".join(f"  - {r['error']}" for r in failed))
    return results


def assemble_document(store, dossier_manifest, doc_id, title, sources, originals, results, digest, signer) -> dict:
    code, now = dossier_manifest["dossierCode"], audit.now_vn()
    renders = [PageRender(r["image"], r["encoding"], r["width"], r["height"], tuple(r["dpi"]), r["colorMode"], r["words"])
               for r in results]
    pdf = build_pdfa(renders, DocumentMeta(title=title, doc_id=doc_id, dossier_code=code, created=now))
    signature = None
    if signer is not None:
        from .sign import sign_pdf

        pdf, signature = sign_pdf(pdf, signer)
    meta = {"dossier": code, "doc-id": doc_id}
    pdf_info = store.put(keys.document_pdf(code, doc_id), pdf, "application/pdf",
                         meta | {"kind": "pdf", "maintenance": dossier_manifest["maintenance"]}, retain=True)
    text = "\f".join(r["text"] for r in results).encode("utf-8")
    text_info = store.put(keys.document_text(code, doc_id), text, "text/plain; charset=utf-8", meta | {"kind": "text"})
    words = json.dumps([r["words"] for r in results], ensure_ascii=False).encode("utf-8")
    words_info = store.put(keys.document_words(code, doc_id), words, "application/json", meta | {"kind": "words"})
    sources_by_page = [(s, p) for s in sources for p in range(1, s.page_count + 1)]
    pages = [mf.page_entry(n, {"file": s.name, "page": p, "sha256": s.sha256}, r)
             for n, ((s, p), r) in enumerate(zip(sources_by_page, results), start=1)]
    return {"docId": doc_id, "sequence": int(doc_id.rsplit(".", 1)[1]), "title": title, "created": now.isoformat(),
            "numberOfPage": len(pages), "format": "PDF/A-2b", "language": "vi", "confidenceLevel": "02",
            "inputSha256": digest, "originals": originals, "pdf": pdf_info.to_json(), "text": text_info.to_json(),
            "words": words_info.to_json(), "signature": signature, "pages": pages}


def summary(manifest: dict, document: dict, duplicate: bool) -> dict:
    return {"dossierCode": manifest["dossierCode"], "docId": document["docId"], "title": document["title"],
            "duplicate": duplicate, "pages": [{"number": p["number"], "file": p["source"]["file"],
                                               "page": p["source"]["page"], "orientation": p["orientation"],
                                               "skew_deg": p["skew_deg"], "ocrConfidence": p["ocrConfidence"],
                                               "flags": p["flags"]} for p in document["pages"]],
            "pdf": document["pdf"], "signature": document.get("signature")}
