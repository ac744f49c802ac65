"""Ingest: one call adds one document, made of the given files' pages, to a dossier.

    prepare: read and check inputs -> store originals (before any processing)
    pages:   each page by the executor, anywhere (ocr.page; results in the object store)
    finish:  under the dossier's lock: PDF/A-2b (validated) -> sign -> store PDF, text,
             words -> manifest last -> index

``ingest`` runs the three in this process; the Celery tasks (``pipeline.tasks``) run the
same three on many machines. Nothing becomes visible until the manifest naming it is
stored, so a crash at any step leaves the dossier as it was (plus originals and finished
pages, which make the retry cheaper). The same files in the same order are recognised and
not added twice, before any work and again at the commit.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy.engine import Engine

from ocr.page import Placement
from storage import jobs as job_table, keys
from storage.base import ObjectStore

from . import audit, dossier, manifest as mf, sheets
from .config import OcrSettings, WebhookSettings
from .errors import Conflict, InputError, InputErrors, PagesFailed, UsageError, without_frames
from .executor import PageExecutor, Progress
from .inputs import EXTENSION, MEDIA_TYPES, Source, read_source, sniff
from .models import IngestRequest, IngestSummary, PageResult, PageSummary, PageTask
from .pages import PageCache
from .pdfa import DocumentMeta, PageRender, write_pdfa
from .repository import dossier_lock, free_pdf_version, load_manifest, refuse_if_disposed, save_manifest
from .signing.keys import Signer, SignerLoading, loaded
from .signing.pades import sign_pdf_file

IndexUpdate = Callable[[dict, dict[str, list[str]]], None]


@dataclass(frozen=True)
class IngestContext:
    """What an ingest runs on; the service layer builds it from the settings."""

    store: ObjectStore
    db: Engine                   # shared database: audit log, dossier locks
    executor: PageExecutor
    ocr: OcrSettings
    signer: Signer | SignerLoading | None = None
    index: IndexUpdate | None = None
    progress: Progress | None = None  # (pages done, pages in all)
    remote_signing: bool = False      # the document is finished and signed by a worker, not here
    webhook: WebhookSettings | None = None  # notices to the one-stop system (pipeline.notices); None: none


@dataclass(frozen=True)
class PreparedDocument:
    """A document whose originals are stored and whose pages are still to be done: everything
    the finishing step needs, as JSON, so that the pages and the finish may run anywhere."""

    dossier: str
    title: str
    digest: str                  # of the originals' SHA-256s in order: the same files are one document
    originals: tuple[dict, ...]  # the manifest's original entries, in order
    tasks: tuple[PageTask, ...]
    maintenance: str | None = None
    paper_file_code: str | None = None
    change_recorded: bool = False
    unsigned: bool = False
    handed_in: tuple[dict, ...] = ()  # the manifest's handedIn entries (``IngestRequest.handed_in``)
    paper_dates: tuple[str, str] | None = None

    def to_json(self) -> dict:
        return {**{f: getattr(self, f) for f in ("dossier", "title", "digest", "maintenance", "paper_file_code",
                                                  "change_recorded", "unsigned")},
                "originals": list(self.originals), "tasks": [t.to_json() for t in self.tasks],
                **({"handedIn": list(self.handed_in)} if self.handed_in else {}),
                **({"paperDates": list(self.paper_dates)} if self.paper_dates else {})}

    @classmethod
    def from_json(cls, data: dict) -> "PreparedDocument":
        data = dict(data)
        handed_in = tuple(data.pop("handedIn", ()))
        dates = data.pop("paperDates", None)
        return cls(**{**data, "originals": tuple(data["originals"]), "handed_in": handed_in,
                      "paper_dates": tuple(dates) if dates else None,
                      "tasks": tuple(PageTask.from_json(t) for t in data["tasks"])})


def ingest(request: IngestRequest, ctx: IngestContext) -> IngestSummary:
    """Add one document to the request's dossier; returns what the operator is shown."""
    prepared = prepare(request, ctx)
    if isinstance(prepared, IngestSummary):
        return prepared
    return finish(prepared, process_pages(ctx, prepared.tasks), ctx)


def prepare(request: IngestRequest, ctx: IngestContext) -> PreparedDocument | IngestSummary:
    """Check the request and its files, then store the originals (before any processing).

    Returns the summary of the existing document instead when the dossier already holds
    these files, in this order: nothing is stored or processed again."""
    code = dossier.validate_key(request.dossier_code)
    title = check_title(request.title)
    if not request.files:
        raise UsageError("Chưa chọn tệp nào để số hóa", "no input files")
    if not ctx.remote_signing and (ctx.signer is None) != request.unsigned:
        raise UsageError("Tài liệu phải được ký số; lưu không ký chỉ khi chọn rõ (--unsigned)"
                         if ctx.signer is None else "Đã chọn lưu không ký nhưng lại có khóa ký",
                         "a signer is required unless the request says unsigned, and only then")
    paper_dates = dossier.paper_dates(*request.paper_dates, today=audit.now_vn().date()) \
        if request.paper_dates else None
    sources = read_sources(request.files, ctx, code)
    digest = mf.input_digest([s.sha256 for s in sources])
    refuse_if_disposed(ctx.store, code)  # disposed of, or being disposed of (its manifest goes last)
    stored = load_manifest(ctx.store, code)
    current = _dossier_as_requested(stored, code, title, request.paper_file_code,
                                    request.maintenance, request.change_recorded, paper_dates)
    if existing := mf.find_document(current, digest):
        if stored is not None and _dossier_fields(current) != _dossier_fields(stored):
            current = _record_dossier_fields(ctx, code, title, request.paper_file_code, request.maintenance,
                                             request.change_recorded, paper_dates)
        return _duplicate(ctx, current, existing, title)
    refuse_reordered(ctx, current, [s.sha256 for s in sources])
    lock = mf.lock_metadata(current, audit.now_vn())
    originals = tuple(store_original(ctx.store, code, s, lock) for s in sources)
    handed_in = tuple(store_handed_in(ctx.store, code, Path(f), lock) for f in request.handed_in)
    tasks = tuple(page_task(ctx.ocr, key=o["key"], file=s.name, kind=s.kind, sha256=s.sha256, page=p)
                  for s, o in zip(sources, originals) for p in range(1, s.page_count + 1))
    return PreparedDocument(code, title, digest, originals, tasks, request.maintenance, request.paper_file_code,
                            request.change_recorded, request.unsigned, handed_in, paper_dates)


def refuse_reordered(ctx: IngestContext, current: dict, source_hashes: list[str]) -> None:
    """Conflict when the dossier holds these very files in another order: a page order corrected
    in a bulk inventory and run again made a second document of the same pages, without a word
    (backlog review). A signed document is not changed, so the stored one is named."""
    if (reordered := mf.find_reordered(current, source_hashes)) is None:
        return
    code = current["dossierCode"]
    audit.record(ctx.db, "ingest", "failure", dossier=code, docId=reordered["docId"], reason="reordered")
    raise Conflict(f"Hồ sơ {code} đã có tài liệu {reordered['docId']} («{reordered.get('title')}») gồm đúng các "
                   "tệp này theo thứ tự khác; không lưu thêm một tài liệu trùng trang. Tài liệu đã ký không "
                   "được sửa: nếu thứ tự đã lưu sai, hãy báo đơn vị lưu trữ",
                   f"the dossier holds these files in another order as {reordered['docId']}")


def page_task(ocr: OcrSettings, *, key: str, file: str, kind: str, sha256: str, page: int) -> PageTask:
    """The page task for a stored original's page under the OCR settings (also what an intake
    draft's page is read ahead as, ``pipeline.early``: the same task finds the same cached result)."""
    return PageTask(key=key, file=file, kind=kind, sha256=sha256, page=page, lang=ocr.lang, tessdata=ocr.tessdata,
                    jpeg_quality=ocr.jpeg_quality, max_pixels=ocr.max_pixels, engine=ocr.engine)


def finish(prepared: PreparedDocument, results: list[PageResult], ctx: IngestContext) -> IngestSummary:
    """Build, sign and store the document from its finished pages and commit it to the dossier's
    manifest, under the dossier's lock; idempotent: finishing the same files twice stores one
    document (a redelivered task finds it and returns it as a duplicate)."""
    code, title = prepared.dossier, prepared.title
    failed = [r for r in results if not r.ok]
    if failed:
        raise pages_failed(ctx, code, results)
    if prepared.unsigned:  # chosen when the document was submitted, wherever it is finished
        ctx = replace(ctx, signer=None)
    elif ctx.signer is None:
        raise UsageError("Không có khóa ký để ký tài liệu này", "no signer where the document is finished")
    else:
        ctx = replace(ctx, signer=loaded(ctx.signer))  # before the dossier's lock is taken
    with dossier_lock(ctx.db, code):
        refuse_if_disposed(ctx.store, code)  # disposed of since the files were accepted
        current = _dossier_as_requested(load_manifest(ctx.store, code), code, title, prepared.paper_file_code,
                                        prepared.maintenance, prepared.change_recorded, prepared.paper_dates)
        if existing := mf.find_document(current, prepared.digest):
            # stored by an earlier attempt of this finishing, whose record and index the database lost
            # (the document stayed out of search and of the access log for good, the chaos review):
            # both done now; or by another job of these files, which did both
            if audit.logged(ctx.db, "ingest", "success", dossier=code, docId=existing["docId"]):
                outcome = _duplicate(ctx, current, existing, title)  # indexed after that record, or warned
            else:
                audit.record(ctx.db, "ingest", "success", dossier=code, docId=existing["docId"],
                             sha256=existing["pdf"]["sha256"], recorded="late")
                outcome = summary(current, existing, duplicate=False, reused_pages=sum(r.cached for r in results),
                                  warnings=update_index(ctx, current, existing["docId"], results))
        else:
            outcome = _commit(ctx, prepared, current, results)
    done_with = [r.image_key for r in results]
    PageCache(ctx.store).discard(set(done_with) - job_table.results_shared(ctx.db, done_with))
    return outcome


def _commit(ctx: IngestContext, prepared: PreparedDocument, current: dict, results: list[PageResult]) -> IngestSummary:
    """Store the new document and commit it to the manifest (under the dossier's lock), then index it."""
    code = prepared.dossier
    # another job of these files in another order (a failed one retried) may have stored them since
    refuse_reordered(ctx, current, [o["sha256"] for o in prepared.originals])
    doc_id = dossier.doc_id(code, mf.next_sequence(current))
    try:
        document = assemble_document(ctx, current, doc_id, prepared, results)
        updated = save_manifest(ctx.store, code, mf.with_document(current, document, audit.now_vn()))
    except BaseException as e:
        audit.record(ctx.db, "ingest", "failure", dossier=code, docId=doc_id, reason=f"{type(e).__name__}: {e}")
        raise
    audit.record(ctx.db, "ingest", "success", dossier=code, docId=doc_id, sha256=document["pdf"]["sha256"])
    # Still under the lock: the index entry of a dossier is rebuilt from its manifest, so two
    # ingests must not index in the opposite order to the one they stored in.
    warnings = update_index(ctx, updated, doc_id, results)
    return summary(updated, document, duplicate=False, warnings=warnings, reused_pages=sum(r.cached for r in results))


def _dossier_as_requested(current: dict | None, code: str, title: str, paper_file_code: str | None,
                          maintenance: str | None, change_recorded: bool,
                          paper_dates: tuple[str, str] | None = None) -> dict:
    """The dossier's manifest (a new one for a new dossier) with the request's dossier fields;
    Conflict when they would change a recorded value without ``change_recorded``."""
    current = current or mf.new(code, title, audit.now_vn(), paper_file_code, maintenance)
    return mf.with_dossier_fields(current, maintenance=maintenance, paper_file_code=paper_file_code,
                                  now=audit.now_vn(), allow_change=change_recorded, paper_dates=paper_dates)


DOSSIER_FIELDS = ("maintenance", "paperFileCode", "startDate", "endDate", "datesFrom")


def _dossier_fields(manifest: dict) -> tuple:
    return tuple(manifest.get(f) for f in DOSSIER_FIELDS)


def _record_dossier_fields(ctx: IngestContext, code: str, title: str, paper_file_code: str | None,
                           maintenance: str | None, change_recorded: bool, paper_dates) -> dict:
    """Files already in the dossier, given again with its fields (a backlog's inventory run again
    to add dates or a maintenance code): the fields are recorded (they were dropped, as was the
    document, silently). Under the dossier's lock, from the manifest as it is then."""
    with dossier_lock(ctx.db, code):
        stored = load_manifest(ctx.store, code)
        current = _dossier_as_requested(stored, code, title, paper_file_code, maintenance, change_recorded,
                                        paper_dates)
        if stored is None or _dossier_fields(current) == _dossier_fields(stored):
            return current
        changed = [f for f, a, b in zip(DOSSIER_FIELDS, _dossier_fields(stored), _dossier_fields(current)) if a != b]
        now = audit.now_vn()
        current = {**current, "updated": now.isoformat()}
        if len(current["events"]) == len(stored["events"]):  # a value set for the first time (a change has its event)
            current["events"] = [*current["events"], {"at": now.isoformat(), "type": "change", "outcome": "success",
                                                      "detail": "recorded: " + ", ".join(changed)}]
        saved = save_manifest(ctx.store, code, current)
        audit.record(ctx.db, "dossier-fields", dossier=code, fields=changed)
        return saved


def _duplicate(ctx: IngestContext, current: dict, existing: dict, title: str) -> IngestSummary:
    audit.record(ctx.db, "ingest", "duplicate", dossier=current["dossierCode"], docId=existing["docId"])
    renamed = () if existing["title"] == title else (
        f"Các tệp này đã được số hóa thành tài liệu {existing['docId']} với tên «{existing['title']}»; "
        f"tên mới «{title}» không được dùng (tên đã ghi không bị đổi).",)
    return summary(current, existing, duplicate=True, warnings=renamed)


MAX_TITLE = 1000  # TT 05/2025: title at most 1000 characters


def check_title(title: str) -> str:
    """The document title, as ``dossier.visible_text`` keeps it; refused when blank or too long (before any work)."""
    cleaned = dossier.visible_text(title)
    if not cleaned:
        raise UsageError("Tên tài liệu không được để trống", "blank title")
    if len(cleaned) > MAX_TITLE:
        raise UsageError(f"Tên tài liệu dài {len(cleaned)} ký tự, tối đa {MAX_TITLE}", "title too long")
    return cleaned


def read_sources(files, ctx: IngestContext, code: str) -> list[Source]:
    """Every input read and checked before anything is stored: all bad files named together, and
    a file given twice (the same bytes) refused rather than silently doubling a page. The
    sources come back without their bytes (``store_original`` reads each file again), so that
    a document of many files is held one file at a time."""
    sources, bad = [], []
    for f in files:
        try:
            sources.append(replace(read_source(f, ctx.ocr.max_pixels), data=b""))
        except InputError as e:
            bad.append(without_frames(e))
    for refused in bad:
        audit.record(ctx.db, "ingest", "failure", dossier=code, file=refused.file, page=refused.page,
                     reason=refused.reason, **({"detail": refused.detail} if refused.detail else {}))
    if bad:
        try:
            raise bad[0] if len(bad) == 1 else InputErrors(bad)
        finally:  # this frame must not hold the error whose traceback holds it (``without_frames``)
            del bad, refused
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


def store_original(store: ObjectStore, code: str, source: Source, lock: dict) -> dict:
    """The citizen's bytes, unchanged, before any processing (the lossless master), under their
    content key: the same file sent again is the same object. A source read without its bytes
    is read again, and must still be the file that was checked. ``lock``: ``manifest.lock_metadata``."""
    data = source.data or _reread(source)
    info = store.put(keys.original(code, source.sha256, source.ext), data, source.media_type,
                     {"dossier": code, "kind": "original", "filename": source.name} | lock, retain=True)
    return {"key": info.key, "sha256": info.sha256, "size": info.size, "filename": source.name,
            "mediaType": source.media_type, "pages": source.page_count}


def store_handed_in(store: ObjectStore, code: str, path: Path, lock: dict) -> dict:
    """A file as the citizen handed it in, whose pages the document holds rearranged (split,
    reordered, some left out): its bytes unchanged under their content key, as an original's.
    It was checked when it was received (``pipeline.intake``); it is not read as pages here."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"không đọc được tệp ({e.strerror}) (file unreadable)") from None
    kind = sniff(data)
    media_type = MEDIA_TYPES.get(kind, "application/octet-stream")
    info = store.put(keys.original(code, hashlib.sha256(data).hexdigest(), EXTENSION.get(kind, "bin")), data, media_type,
                     {"dossier": code, "kind": "handed-in", "filename": path.name} | lock, retain=True)
    return {"key": info.key, "sha256": info.sha256, "size": info.size, "filename": path.name, "mediaType": media_type}


def _reread(source: Source) -> bytes:
    try:
        data = Path(source.path).read_bytes()
    except OSError as e:
        raise InputError(source.path, f"không đọc lại được tệp ({e.strerror}) (file unreadable after its check)") from None
    if hashlib.sha256(data).hexdigest() != source.sha256:
        raise InputError(source.path, "tệp đã bị thay đổi trong khi số hóa; hãy chạy lại "
                                      "(file changed after its check)")
    return data


def process_pages(ctx: IngestContext, tasks) -> list[PageResult]:
    """Every page's result, in order (failed pages carry their error)."""
    return ctx.executor.run(list(tasks), ctx.progress)


def pages_failed(ctx: IngestContext, code: str, results: list[PageResult]) -> PagesFailed:
    """The error for a document with failed pages, each failure in the audit log first."""
    failed = [r for r in results if not r.ok]
    for r in failed:
        audit.record(ctx.db, "page", "failure", dossier=code, file=r.file, page=r.page, reason=r.error)
    done = len(results) - len(failed)
    return PagesFailed(f"{len(failed)}/{len(results)} trang lỗi, tài liệu chưa được lưu "
                       f"({done} trang đã xử lý xong sẽ không phải làm lại khi chạy lại):\n"
                       + "\n".join(f"  - {r.error}" for r in failed),
                       failures=tuple((r.file, r.page, r.error) for r in failed))


def assemble_document(ctx: IngestContext, dossier_manifest: dict, doc_id: str, prepared: PreparedDocument,
                      results: list[PageResult]) -> dict:
    """Build, sign and store the document's PDF/A, text and words; returns its manifest entry."""
    store, code, now, title = ctx.store, dossier_manifest["dossierCode"], audit.now_vn(), prepared.title
    meta = {"dossier": code, "doc-id": doc_id}
    turns = sheets.turns([sheets.Sheet.of(r) for r in results])
    with tempfile.TemporaryDirectory(prefix="sohoa-pdf-") as work:
        pdf_path, signature = Path(work) / "document.pdf", None
        write_pdfa(_renders(PageCache(store), results, turns, prepared.tasks), DocumentMeta(title=title, doc_id=doc_id,
                                                                     dossier_code=code, created=now), pdf_path)
        if ctx.signer is not None:  # else the request chose to store unsigned; the entry records it
            signed_path = Path(work) / "signed.pdf"
            signature = sign_pdf_file(pdf_path, signed_path, ctx.signer).to_json()
            pdf_path.unlink()
            pdf_path = signed_path
        pdf = pdf_path.read_bytes()  # the object store takes bytes: the one whole copy of the document
    version, abandoned = free_pdf_version(store, code, doc_id, 1)
    pdf_info = store.put(keys.document_pdf(code, doc_id, version), pdf, "application/pdf",
                         meta | {"kind": "pdf"} | mf.lock_metadata(dossier_manifest, now), retain=True)
    del pdf
    text = "\f".join(r.text for r in results).encode("utf-8")
    text_info = store.put(keys.document_text(code, doc_id), text, "text/plain; charset=utf-8", meta | {"kind": "text"})
    words = json.dumps([list(r.words) for r in results], ensure_ascii=False).encode("utf-8")
    words_info = store.put(keys.document_words(code, doc_id), words, "application/json", meta | {"kind": "words"})
    pages = [mf.page_entry(n, {"file": t.file, "page": t.page, "sha256": t.sha256}, sheets.turned_result(r, turn))
             for n, (t, r, turn) in enumerate(zip(prepared.tasks, results, turns, strict=True), start=1)]
    return {"docId": doc_id, "sequence": int(doc_id.rsplit(".", 1)[1]), "title": title, "created": now.isoformat(),
            "numberOfPage": len(pages), "format": "PDF/A-2b", "language": "vi", "confidenceLevel": "02",
            "inputSha256": prepared.digest, "originals": list(prepared.originals),
            **({"handedIn": list(prepared.handed_in)} if prepared.handed_in else {}),
            "pdf": pdf_info.to_json(), "text": text_info.to_json(),
            "words": words_info.to_json(), "signature": signature, "pages": pages,
            "pdfVersions": [{**pdf_info.to_json(), "at": now.isoformat(), "reason": "signed" if signature else "stored"}],
            **({"unsigned": True} if signature is None else {}), **({"abandoned": abandoned} if abandoned else {})}


def _renders(cache: PageCache, results: list[PageResult], turns: list[int], tasks) -> Iterator[PageRender]:
    """The pages for the PDF, each page's image read from the cache when the PDF takes it (and
    turned like its neighbours when ``pipeline.sheets`` says so)."""
    for r, turn, task in zip(results, turns, tasks, strict=True):
        image = sheets.turned_image(r, cache.image(r.image_key), turn, task.jpeg_quality)
        r = sheets.turned_result(r, turn)
        yield PageRender(image, r.encoding, r.width, r.height, r.dpi, r.color_mode, list(r.words),
                         Placement.from_json(r.placement) if r.placement else None)


def update_index(ctx: IngestContext, manifest: dict, doc_id: str, results: list[PageResult]) -> tuple[str, ...]:
    """Index the new document; an index outage is a warning, since the dossier is safely stored
    and the index can be rebuilt from storage."""
    if ctx.index is None:
        return ()
    try:
        ctx.index(manifest, {doc_id: [r.text for r in results]})
    except Exception as e:
        audit.record(ctx.db, "index", "failure", dossier=manifest["dossierCode"], docId=doc_id, reason=str(e))
        return (f"Chưa cập nhật được chỉ mục tìm kiếm ({type(e).__name__}: {e}); "
                "hồ sơ đã được lưu an toàn, hãy chạy 'sohoa reindex'.",)
    return ()


def summary(manifest: dict, document: dict, duplicate: bool, warnings: tuple[str, ...] = (),
            reused_pages: int = 0) -> IngestSummary:
    return IngestSummary(manifest["dossierCode"], document["docId"], document["title"], duplicate,
                         tuple(PageSummary.from_manifest(p) for p in document["pages"]), document["pdf"],
                         document.get("signature"), warnings, reused_pages)
