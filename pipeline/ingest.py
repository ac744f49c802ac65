"""Ingest: one call adds one document, made of the given files' pages, to a dossier.

    read and check inputs -> store originals -> pages (executor: ocr.page on each)
    -> PDF/A-2b (validated) -> sign -> store PDF, text, words -> manifest last -> index

Nothing becomes visible until the manifest naming it is stored, so a crash at any step
leaves the dossier as it was (plus originals and cached page results, which make the
retry cheaper). The same files in the same order are recognised and not added twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from storage import keys
from storage.base import ObjectStore

from . import audit, dossier, manifest as mf
from .config import OcrSettings
from .errors import InputError, InputErrors, PagesFailed, UsageError
from .executor import PageExecutor, Progress
from .inputs import Source, read_source
from .models import IngestRequest, IngestSummary, PageResult, PageSummary, PageTask
from .pages import PageCache
from .pdfa import DocumentMeta, PageRender, build_pdfa
from .repository import dossier_lock, load_manifest, save_manifest
from .signing.keys import Signer
from .signing.pades import sign_pdf

IndexUpdate = Callable[[dict, dict[str, list[str]]], None]


@dataclass(frozen=True)
class IngestContext:
    """What an ingest runs on; the service layer builds it from the settings."""

    store: ObjectStore
    home: Path                   # audit log and dossier locks
    executor: PageExecutor
    page_cache: PageCache
    ocr: OcrSettings
    signer: Signer | None = None
    index: IndexUpdate | None = None
    progress: Progress | None = None  # (pages done, pages in all)


def ingest(request: IngestRequest, ctx: IngestContext) -> IngestSummary:
    """Add one document to the request's dossier; returns what the operator is shown."""
    code = dossier.validate(request.dossier_code)
    title = check_title(request.title)
    if not request.files:
        raise UsageError("Chưa chọn tệp nào để số hóa", "no input files")
    if (ctx.signer is None) != request.unsigned:
        raise UsageError("Tài liệu phải được ký số; lưu không ký chỉ khi chọn rõ (--unsigned)"
                         if ctx.signer is None else "Đã chọn lưu không ký nhưng lại có khóa ký",
                         "a signer is required unless the request says unsigned, and only then")
    sources = read_sources(request.files, ctx, code)
    with dossier_lock(ctx.home, code):
        current = load_manifest(ctx.store, code) or mf.new(
            code, title, audit.now_vn(), request.paper_file_code, request.maintenance)
        current = mf.with_dossier_fields(current, maintenance=request.maintenance,
                                         paper_file_code=request.paper_file_code, now=audit.now_vn(),
                                         allow_change=request.change_recorded)
        digest = mf.input_digest([s.sha256 for s in sources])
        if existing := mf.find_document(current, digest):
            audit.record(ctx.home, "ingest", "duplicate", dossier=code, docId=existing["docId"])
            renamed = () if existing["title"] == title else (
                f"Các tệp này đã được số hóa thành tài liệu {existing['docId']} với tên «{existing['title']}»; "
                f"tên mới «{title}» không được dùng (tên đã ghi không bị đổi).",)
            return summary(current, existing, duplicate=True, warnings=renamed)
        doc_id = dossier.doc_id(code, mf.next_sequence(current))
        try:
            originals = [store_original(ctx.store, code, doc_id, s, current["maintenance"]) for s in sources]
            results = process_pages(ctx, sources)
            document = assemble_document(ctx, current, doc_id, title, sources, originals, results, digest)
            updated = mf.with_document(current, document, audit.now_vn())
            updated = save_manifest(ctx.store, code, updated)
            ctx.page_cache.discard(r.image_key for r in results)
        except BaseException as e:
            audit.record(ctx.home, "ingest", "failure", dossier=code, docId=doc_id, reason=f"{type(e).__name__}: {e}")
            raise
        audit.record(ctx.home, "ingest", "success", dossier=code, docId=doc_id, sha256=document["pdf"]["sha256"])
        # Still under the lock: the index entry of a dossier is rebuilt from its manifest, so two
        # ingests must not index in the opposite order to the one they stored in.
        warnings = update_index(ctx, updated, doc_id, results)
    return summary(updated, document, duplicate=False, warnings=warnings,
                   reused_pages=sum(r.cached for r in results))


MAX_TITLE = 1000  # TT 05/2025: title at most 1000 characters


def check_title(title: str) -> str:
    """The document title, NFC and trimmed; refused when blank or too long (before any work)."""
    import unicodedata

    cleaned = unicodedata.normalize("NFC", " ".join((title or "").split()))
    if not cleaned:
        raise UsageError("Tên tài liệu (--title) không được để trống", "blank title")
    if len(cleaned) > MAX_TITLE:
        raise UsageError(f"Tên tài liệu dài {len(cleaned)} ký tự, tối đa {MAX_TITLE}", "title too long")
    return cleaned


def read_sources(files, ctx: IngestContext, code: str) -> list[Source]:
    """Every input read and checked before anything is stored: all bad files named together, and
    a file given twice (the same bytes) refused rather than silently doubling a page."""
    sources, bad = [], []
    for f in files:
        try:
            sources.append(read_source(f, ctx.ocr.max_pixels))
        except InputError as e:
            bad.append(e)
    for e in bad:
        audit.record(ctx.home, "ingest", "failure", dossier=code, file=e.file, page=e.page, reason=e.reason)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise InputErrors(bad)
    seen: dict[str, str] = {}
    twice = []
    for s in sources:
        if s.sha256 in seen:
            twice.append(f"{seen[s.sha256]} và {s.path}")
        seen.setdefault(s.sha256, s.path)
    if twice:
        raise UsageError("Cùng một tệp được đưa vào hai lần (trang sẽ bị lặp): " + "; ".join(twice)
                         + ". Nếu giấy có hai trang giống hệt nhau, hãy quét lại trang đó.", "the same file given twice")
    return sources


def store_original(store: ObjectStore, code: str, doc_id: str, source: Source, maintenance: str | None) -> dict:
    """The citizen's bytes, unchanged, before any processing (the lossless master)."""
    info = store.put(keys.original(code, source.sha256, source.ext), source.data, source.media_type,
                     {"dossier": code, "doc-id": doc_id, "kind": "original", "filename": source.name,
                      "maintenance": maintenance}, retain=True)
    return {"key": info.key, "sha256": info.sha256, "size": info.size, "filename": source.name,
            "mediaType": source.media_type, "pages": source.page_count}


def page_tasks(sources: list[Source], ocr: OcrSettings) -> list[PageTask]:
    return [PageTask(path=s.path, file=s.name, kind=s.kind, sha256=s.sha256, page=p, lang=ocr.lang,
                     tessdata=ocr.tessdata, jpeg_quality=ocr.jpeg_quality, max_pixels=ocr.max_pixels)
            for s in sources for p in range(1, s.page_count + 1)]


def process_pages(ctx: IngestContext, sources: list[Source]) -> list[PageResult]:
    """Every page's result, in order; PagesFailed listing every failed file and page otherwise."""
    results = ctx.executor.run(page_tasks(sources, ctx.ocr), ctx.progress)
    failed = [r for r in results if not r.ok]
    if failed:
        for r in failed:
            audit.record(ctx.home, "page", "failure", file=r.file, page=r.page, reason=r.error)
        done = len(results) - len(failed)
        raise PagesFailed(f"{len(failed)}/{len(results)} trang lỗi, tài liệu chưa được lưu "
                          f"({done} trang đã xử lý xong sẽ không phải làm lại khi chạy lại):\n"
                          + "\n".join(f"  - {r.error}" for r in failed),
                          failures=tuple((r.file, r.page, r.error) for r in failed))
    return results


def assemble_document(ctx: IngestContext, dossier_manifest: dict, doc_id: str, title: str, sources: list[Source],
                      originals: list[dict], results: list[PageResult], digest: str) -> dict:
    """Build, sign and store the document's PDF/A, text and words; returns its manifest entry."""
    store, code, now = ctx.store, dossier_manifest["dossierCode"], audit.now_vn()
    renders = [PageRender(ctx.page_cache.image(r.image_key), r.encoding, r.width, r.height, r.dpi, r.color_mode,
                          list(r.words)) for r in results]
    pdf = build_pdfa(renders, DocumentMeta(title=title, doc_id=doc_id, dossier_code=code, created=now))
    signature = None
    if ctx.signer is not None:  # else the request chose to store unsigned; the entry records it
        pdf, record = sign_pdf(pdf, ctx.signer)
        signature = record.to_json()
    meta = {"dossier": code, "doc-id": doc_id}
    pdf_info = store.put(keys.document_pdf(code, doc_id), pdf, "application/pdf",
                         meta | {"kind": "pdf", "maintenance": dossier_manifest["maintenance"]}, retain=True)
    text = "\f".join(r.text for r in results).encode("utf-8")
    text_info = store.put(keys.document_text(code, doc_id), text, "text/plain; charset=utf-8", meta | {"kind": "text"})
    words = json.dumps([list(r.words) for r in results], ensure_ascii=False).encode("utf-8")
    words_info = store.put(keys.document_words(code, doc_id), words, "application/json", meta | {"kind": "words"})
    sources_by_page = [(s, p) for s in sources for p in range(1, s.page_count + 1)]
    pages = [mf.page_entry(n, {"file": s.name, "page": p, "sha256": s.sha256}, r)
             for n, ((s, p), r) in enumerate(zip(sources_by_page, results), start=1)]
    return {"docId": doc_id, "sequence": int(doc_id.rsplit(".", 1)[1]), "title": title, "created": now.isoformat(),
            "numberOfPage": len(pages), "format": "PDF/A-2b", "language": "vi", "confidenceLevel": "02",
            "inputSha256": digest, "originals": originals, "pdf": pdf_info.to_json(), "text": text_info.to_json(),
            "words": words_info.to_json(), "signature": signature, "pages": pages,
            "pdfVersions": [{**pdf_info.to_json(), "at": now.isoformat(), "reason": "signed" if signature else "stored"}],
            **({"unsigned": True} if signature is None else {})}


def update_index(ctx: IngestContext, manifest: dict, doc_id: str, results: list[PageResult]) -> tuple[str, ...]:
    """Index the new document; an index outage is a warning, since the dossier is safely stored
    and the index can be rebuilt from storage."""
    if ctx.index is None:
        return ()
    try:
        ctx.index(manifest, {doc_id: [r.text for r in results]})
    except Exception as e:
        audit.record(ctx.home, "index", "failure", dossier=manifest["dossierCode"], docId=doc_id, reason=str(e))
        return (f"Chưa cập nhật được chỉ mục tìm kiếm ({type(e).__name__}: {e}); "
                "hồ sơ đã được lưu an toàn, hãy chạy 'sohoa reindex'.",)
    return ()


def summary(manifest: dict, document: dict, duplicate: bool, warnings: tuple[str, ...] = (),
            reused_pages: int = 0) -> IngestSummary:
    return IngestSummary(manifest["dossierCode"], document["docId"], document["title"], duplicate,
                         tuple(PageSummary.from_manifest(p) for p in document["pages"]), document["pdf"],
                         document.get("signature"), warnings, reused_pages)
