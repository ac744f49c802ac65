"""The service layer: one function per operation, the only entry the doors use.

The command line (``api.cli``), the HTTP API and the workers call these and nothing else of
``pipeline``: each takes the typed ``Settings`` and the operation's arguments, opens what it
needs (object store, index, signer, page executor), writes the audit line, and returns a
frozen result (``pipeline.models``) or raises a ``SohoaError`` or storage error, which each
door reports through ``pipeline.errors.describe``.

    ingest   scan   scanners   show   export   link   search   reindex   verify   renew   page_cache   audit_log
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import closing, nullcontext
from dataclasses import replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from storage import db, index as search_index, jobs as job_table
from storage.base import ObjectStore
from storage.local import LocalStore

from . import audit, bulk as bulk_runner, dossier, hotfolder, jobs, manifest as mf, receipts
from .bulk import BulkProgress, BulkResult
from .checks import TrustPolicy, verify_stored_dossier
from .config import Settings
from .errors import (ConfigError, Conflict, InputError, IntegrityError, JobFailed, NotFound, SigningError, SohoaError, Unsupported,
                     UsageError, describe)
from .executor import PageExecutor, Progress, limit_native_threads
from .ingest import IngestContext, check_title
from .models import (JobView, AuditReport, CacheReport, SystemInfo, DocumentLink, DocumentVerdict, DossierReport, DossierView, ExportResult,
                     IngestRequest, IngestSummary, ReindexResult, RenewalResult, SearchHit, SearchResult)
from .pages import PageCache
from .runtime import database, development_pki, ingest_context, open_store, page_executor, signer_for
from .renewal import renew_stored_dossier
from .repository import dossier_codes, require_manifest
from .scanner import ScannerDevice, ScanResult, ScanSettings, list_devices, scan_pages
from .signing.certificates import REVOCATION_MODES
from .signing.keys import Signer, development_ca_fingerprints, trust_roots


# --------------------------------------------------------------------------- what operations run on

# --------------------------------------------------------------------------- intake

def ingest(settings: Settings, request: IngestRequest, *, signer: Signer | None = None,
           executor: PageExecutor | None = None, progress: Progress | None = None) -> IngestSummary:
    """Add one document (the request's files' pages, in order) to a dossier, signed and indexed.

    Recorded as a job (``sohoa status``, ``sohoa retry``). Without a broker it runs here, pages
    over this machine's cores; with SOHOA_BROKER_URL its pages go to the workers, which also
    sign, and this call waits for the outcome."""
    dossier.validate_key(request.dossier_code)  # before a token login or a development-key warning
    remote = bool(settings.broker.url)
    if signer is None and not request.unsigned and not remote:
        with closing(signer_for(settings)) as own:
            return ingest(settings, request, signer=own, executor=executor, progress=progress)
    ctx = ingest_context(settings, signer=signer, executor=executor or page_executor(settings, request.jobs),
                         progress=progress)
    submitted = jobs.submit(ctx, request)
    if submitted.duplicate is not None:
        return submitted.duplicate
    if remote:
        if not submitted.resumed:
            _send(settings, submitted.job)
        return _await(settings, ctx, submitted.job, progress)
    return jobs.run_locally(ctx, submitted.job)


def _send(settings: Settings, job_id: str) -> None:
    """Hand the job's pending pages to the workers (its finishing task when none is pending)."""
    from . import tasks

    tasks.configure(settings)
    _, pending = jobs.pending_work(database(settings), job_id)
    if pending:
        tasks.send_pages(job_id, pending)
    else:
        tasks.send_finish(settings, job_id, jobs.view(database(settings), job_id).dossier)


def _await(settings: Settings, ctx: IngestContext, job_id: str, progress: Progress | None,
           poll: float = 0.5) -> IngestSummary:
    """Follow a job the workers run until it is done (its document) or failed (its error)."""
    import time

    db = database(settings)
    while True:
        job = jobs.view(db, job_id)
        if progress:
            progress(job.pages_done + job.pages_failed, job.pages_total)
        if job.state == "done":
            return jobs.summary_of_done(ctx, job_id)
        if job.state == "failed":
            raise JobFailed(job_id, job.error)
        time.sleep(poll)


def status(settings: Settings, ref: str) -> tuple[JobView, ...]:
    """A job by its id, or every job of a dossier, oldest first."""
    db = database(settings)
    if re.fullmatch(r"[0-9a-f]{32}", ref):
        return (jobs.view(db, ref),)
    code = dossier.validate_key(ref)
    found = tuple(JobView.from_row(j) for j in job_table.find(db, dossier=code))
    if not found:
        raise NotFound(f"Không có lượt xử lý nào của hồ sơ {code}", "no job for this dossier")
    return found


def retry(settings: Settings, job_id: str, *, progress: Progress | None = None) -> IngestSummary:
    """Run a failed (or stalled) job again; the pages it finished are not redone."""
    db = database(settings)
    jobs.reopen(db, job_id)
    if settings.broker.url:
        _send(settings, job_id)
        return _await(settings, ingest_context(settings), job_id, progress)
    with closing(signer_for(settings)) as signer:
        return jobs.run_locally(ingest_context(settings, signer=signer, executor=page_executor(settings),
                                               progress=progress), job_id)


def worker(settings: Settings, queues: Sequence[str] = ("pages", "finish"), concurrency: int | None = None,
           loglevel: str = "INFO") -> None:
    """Run a Celery worker on ``queues`` until stopped (needs SOHOA_BROKER_URL)."""
    from . import tasks

    if not settings.broker.url:
        raise ConfigError("Chạy worker cần SOHOA_BROKER_URL (ví dụ redis://127.0.0.1:6379/0)",
                          "a worker needs SOHOA_BROKER_URL")
    database(settings)  # refuse to start on a database whose schema is not this version's
    limit_native_threads()
    app = tasks.configure(settings)
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={','.join(queues)}",
            f"--hostname=sohoa-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)


def bulk(settings: Settings, source: Path, *, report: Path | None = None,
         progress: BulkProgress | None = None) -> BulkResult:
    """Convert a backlog: every document of a folder tree or CSV, with a report of every input."""
    source = Path(source)
    if settings.broker.url:
        from . import tasks

        tasks.configure(settings)
        db_ = database(settings)
        return bulk_runner.run(source, ingest_context(settings), send=partial(_send, settings),
                               send_finish=lambda job: tasks.send_finish(settings, job, jobs.view(db_, job).dossier),
                               report=report, progress=progress, work=settings.home / "work" / "split")
    with closing(signer_for(settings)) as signer:
        return bulk_runner.run(source, ingest_context(settings, signer=signer, executor=page_executor(settings)),
                               report=report, progress=progress, work=settings.home / "work" / "split")


def watch(settings: Settings, folder: Path, *, settle: float = 5.0, poll: float = 1.0, once: bool = False,
          on_event=None) -> int:
    """Take every file a scanner drops into ``folder`` (see ``pipeline.hotfolder``): each one
    document of the dossier its sub-folder names, or its receipt's QR code says. Returns the
    number of files taken (with ``once``, when none is left waiting; otherwise runs until stopped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"Không có thư mục {folder} để theo dõi", "watch folder does not exist")
    remote = bool(settings.broker.url)
    with closing(signer_for(settings)) if not remote else nullcontext() as signer:
        def handle(hot: hotfolder.HotFile) -> str:
            code = hot.dossier if hot.dossier is not None else receipt_code(settings, hot.path)
            summary = ingest(settings, IngestRequest(code, (str(hot.path),), hot.title), signer=signer)
            return summary.dossier_code

        audit.record(database(settings), "watch", "started", folder=str(folder))
        return hotfolder.run(folder, handle, settle=settle, poll=poll, once=once, on_event=on_event)


def receipt_code(settings: Settings, path: Path) -> str:
    """The dossier code of the receipt QR code on a file's first page; InputError when there is
    none, it cannot be read, or it holds no valid dossier code."""
    from ocr.receipt import read_qr_codes

    from .inputs import load_page, read_source

    source = read_source(str(path), settings.ocr.max_pixels)
    image, dpi = load_page(source.name, source.kind, source.data, 1, settings.ocr.max_pixels)
    reading = read_qr_codes(image, dpi[0] if dpi else None)
    codes = list(dict.fromkeys(c for text in reading.texts for c in receipts.find_codes(text)))
    if len(codes) == 1:
        return codes[0]
    if len(codes) > 1:
        raise InputError(source.name, f"trang đầu có nhiều mã hồ sơ khác nhau ({', '.join(codes)}); "
                                      "đặt tệp vào thư mục mang mã hồ sơ", 1)
    if reading.unreadable:
        raise InputError(source.name, "trang đầu có mã QR nhưng không đọc được; quét lại phiếu tiếp nhận "
                                      "hoặc đặt tệp vào thư mục mang mã hồ sơ", 1)
    raise InputError(source.name, "không biết tệp thuộc hồ sơ nào: tệp không nằm trong thư mục mang mã hồ sơ "
                                  "và trang đầu không có mã QR của phiếu tiếp nhận", 1)


def db_upgrade(settings: Settings) -> tuple[str | None, str | None]:
    """Migrate the shared database to this version's schema (at install and after each update)."""
    before, after = db.upgrade(db.create_engine(settings.db_url))
    if before != after:
        audit.record(database(settings), "db-upgrade", before=before, after=after)
    return before, after


def scan(settings: Settings, request: IngestRequest, *, device: str | None = None, source: str = "adf",
         resolution: int = 300, mode: str = "color", pages: int | None = None, max_pages: int = 100,
         signer: Signer | None = None, executor: PageExecutor | None = None, progress: Progress | None = None,
         on_page=None) -> tuple[ScanResult, IngestSummary]:
    """Scan one bundle of paper on the counter's scanner (SANE) and ingest it as one document.

    The dossier code and title are checked before any paper moves. The scanned pages are
    working copies under SOHOA_HOME/work/scans: removed once the document is stored, kept (and
    named in the error) when the ingest fails, so ``sohoa ingest`` can retry without rescanning."""
    code = dossier.validate_key(request.dossier_code)
    check_title(request.title)
    scan_settings = ScanSettings(device=device, source=source, resolution=resolution, mode=mode,
                                 pages=pages, max_pages=max_pages)
    work = settings.home / "work" / "scans"
    work.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"{code}-", dir=work))
    try:
        scanned = scan_pages(scan_settings, out, on_page=on_page)
    except BaseException as e:
        shutil.rmtree(out, ignore_errors=True)
        audit.record(database(settings), "scan", "failure", dossier=code, device=device or "",
                     reason=f"{type(e).__name__}: {e}")
        raise
    audit.record(database(settings), "scan", "success", dossier=code, device=scanned.device,
                 pages=scanned.reported_pages, source=scanned.source, resolution=scanned.resolution)
    try:
        summary = ingest(settings, replace(request, files=tuple(str(f) for f in scanned.files)),
                         signer=signer, executor=executor, progress=progress)
    except BaseException as e:
        if isinstance(e, SohoaError):
            e.message_vi += (f"\nCác trang đã quét được giữ tại {out}; số hóa lại không cần quét lại: "
                             f"sohoa ingest --dossier {code} --title \"...\" {out}/page-*.tif")
        raise
    shutil.rmtree(out, ignore_errors=True)
    return scanned, summary


def scanners() -> list[ScannerDevice]:
    """The scanners SANE finds on this machine (USB and network)."""
    return list_devices()


# --------------------------------------------------------------------------- retrieval

def show(settings: Settings, code: str) -> DossierView:
    code = dossier.validate_key(code)
    manifest = require_manifest(open_store(settings), code)
    audit.record(database(settings), "show", dossier=code)
    return DossierView.from_manifest(manifest)


def export(settings: Settings, code: str, out: Path) -> ExportResult:
    """Each document's signed PDF (fixity checked on the way) and the manifest they came from, into ``out``."""
    code = dossier.validate_key(code)
    store = open_store(settings)
    manifest = require_manifest(store, code)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise Conflict(f"'{out}' đã có và không phải là thư mục; chọn thư mục khác cho --out",
                       "export target exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for d in manifest["documents"]:
        target = (out / f"{d['docId']}.pdf").resolve()
        if target.parent != out:  # the manifest schema allows no such docId; checked again at the edge
            raise IntegrityError(f"Mã tài liệu '{d['docId']}' trong manifest trỏ ra ngoài thư mục xuất; không xuất",
                                 "docId escapes the export folder")
        data = store.get(d["pdf"]["key"], sha256=d["pdf"]["sha256"])
        target.write_bytes(data)
        written.append(str(target))
    (out / "manifest.json").write_bytes(mf.dumps(manifest))  # the very manifest the files came from
    audit.record(database(settings), "export", dossier=code, out=str(out))
    return ExportResult(code, str(out), (*written, str(out / "manifest.json")))


def link(settings: Settings, code: str, doc_id: str | None = None, expires: int = 900) -> tuple[DocumentLink, ...]:
    """Short-lived download links (presigned URLs) for a dossier's documents on S3."""
    code = dossier.validate_key(code)
    store = open_store(settings)
    if not hasattr(store, "presigned_url"):
        raise Unsupported("Liên kết tải xuống chỉ có với kho S3 (SOHOA_STORAGE=s3); "
                          "với kho cục bộ hãy dùng 'sohoa export'", "presigned links need the S3 store")
    manifest = require_manifest(store, code)
    docs = [d for d in manifest["documents"] if doc_id in (None, d["docId"])]
    if not docs:
        raise NotFound(f"Hồ sơ {code} không có tài liệu {doc_id}", "no such document")
    links = []
    for d in docs:
        store.get(d["pdf"]["key"], sha256=d["pdf"]["sha256"])  # never hand out a link to altered bytes
        links.append(DocumentLink(d["docId"], store.presigned_url(d["pdf"]["key"], expires), expires))
    audit.record(database(settings), "link", dossier=code, docIds=[d["docId"] for d in docs], expires=expires)
    return tuple(links)


def search(settings: Settings, query: str, *, code_prefix: str | None = None, limit: int = 20) -> SearchResult:
    """Pages whose words match, with or without diacritics, in four tiers: the exact phrase, the
    phrase without diacritics, all words near each other, all words; an empty query is refused."""
    if limit < 1:
        raise UsageError("--limit phải lớn hơn 0", "limit must be positive")
    hits = search_index.search(database(settings), query, code_prefix=code_prefix, limit=limit)
    audit.record(database(settings), "search", query=query, codePrefix=code_prefix, hits=len(hits))
    return SearchResult(query, tuple(SearchHit(h["dossierCode"], h["docId"], h["page"], h["snippet"], h["score"],
                                               h["exact"], h.get("tier", "all")) for h in hits))


def reindex(settings: Settings) -> ReindexResult:
    """Rebuild the search index from object storage alone."""
    totals = search_index.reindex(open_store(settings), database(settings))
    outcome = "success" if not totals["errors"] else "partial"
    audit.record(database(settings), "reindex", outcome, dossiers=totals["dossiers"], documents=totals["documents"],
                 pages=totals["pages"], errors=len(totals["errors"]))
    return ReindexResult(totals["dossiers"], totals["documents"], totals["pages"], tuple(totals["errors"]))


# --------------------------------------------------------------------------- archive

def verify_dossier(settings: Settings, code: str) -> tuple[DocumentVerdict, ...]:
    """One verdict per document of the dossier (see ``pipeline.checks``)."""
    return _verify(settings, open_store(settings), _trust_policy(settings), code)


def verify(settings: Settings, codes: Sequence[str] = (), *, all_dossiers: bool = False) -> DossierReport:
    """Verdicts for the dossiers named (or every dossier); one that cannot be read is a failed verdict
    and the others are still judged."""
    store, policy = _once(open_store, settings), _once(_trust_policy, settings)
    results = _each_dossier(
        _codes(store, codes, all_dossiers), lambda code: _verify(settings, store(), policy(), code),
        lambda code, report: DocumentVerdict(None, False, {}, f"{code}: {report.message_vi}",
                                             f"{code}: {report.detail or report.message_vi}"))
    return DossierReport(results, any(not verdicts or not all(v.ok for v in verdicts) for verdicts in results.values()))


def renew_dossier(settings: Settings, code: str, *, within_days: int = 90,
                  now: datetime | None = None) -> tuple[RenewalResult, ...]:
    """B-LTA: a fresh document timestamp on each document whose TSA certificate expires within ``within_days``."""
    return _renew(settings, open_store(settings), trust_roots(settings.signing, settings.home), code,
                  within_days, now)


def renew(settings: Settings, codes: Sequence[str] = (), *, all_dossiers: bool = False,
          within_days: int = 90) -> DossierReport:
    store, roots = _once(open_store, settings), _once(lambda s: trust_roots(s.signing, s.home), settings)
    failed = set()

    def refused(code: str, report) -> RenewalResult:
        failed.add(code)
        return RenewalResult(None, False, f"{code}: {report.message_vi}", f"{code}: {report.detail or report.message_vi}")

    results = _each_dossier(_codes(store, codes, all_dossiers),
                            lambda code: _renew(settings, store(), roots(), code, within_days, None), refused)
    return DossierReport(results, bool(failed))


def _trust_policy(settings: Settings) -> TrustPolicy:
    development_pki(settings, create=False)  # the deployment's development CA, when it has one
    return TrustPolicy(tuple(c.dump() for c in trust_roots(settings.signing, settings.home)),
                       settings.signing.revocation_policy, development_ca_fingerprints(settings.home))


def _verify(settings: Settings, store: ObjectStore, policy: TrustPolicy, code: str) -> tuple[DocumentVerdict, ...]:
    code = dossier.validate_key(code)
    try:
        verdicts = verify_stored_dossier(store, code, policy)
    except Exception as exc:
        audit.record(database(settings), "verify", "failure", dossier=code, reason=f"{type(exc).__name__}: {exc}")
        raise
    audit.record(database(settings), "verify", "success" if verdicts and all(v.ok for v in verdicts) else "failure",
                 dossier=code, documents=len(verdicts), passed=sum(v.ok for v in verdicts),
                 revocation=policy.revocation)
    return verdicts


def _renew(settings: Settings, store: ObjectStore, roots: list, code: str, within_days: int,
           now: datetime | None) -> tuple[RenewalResult, ...]:
    code = dossier.validate_key(code)
    if not settings.signing.tsa_url:
        raise SigningError("Gia hạn dấu thời gian cần SOHOA_TSA_URL", "timestamp renewal needs SOHOA_TSA_URL")
    return renew_stored_dossier(
        store, database(settings), code, tsa_url=settings.signing.tsa_url, trust_roots=roots,
        revocation_mode=REVOCATION_MODES[settings.signing.revocation_policy],
        within_days=within_days, now=now or datetime.now(timezone.utc))


def _each_dossier(codes: list[str], run, on_error) -> dict[str, tuple]:
    """``run(code)`` for each dossier; a dossier whose operation fails with an expected error gets
    ``(on_error(code, report),)`` and the others still run. An unexpected error stops the batch."""
    results = {}
    for code in codes:
        try:
            results[code] = run(code)
        except Exception as exc:
            report = describe(exc)
            if not report.expected:
                raise
            results[code] = (on_error(code, report),)
    return results


def page_cache(settings: Settings, *, clear: bool = False) -> CacheReport:
    """What the page cache holds (pages finished by ingests that then failed), or clear it."""
    cache = PageCache(open_store(settings))
    pages, size = cache.clear() if clear else cache.usage()
    if clear:
        audit.record(database(settings), "cache-clear", pages=pages, bytes=size)
    return CacheReport(pages, size, clear)


def info(settings: Settings) -> SystemInfo:
    """The data home, store, index, signing key and versions this installation uses."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    signing = settings.signing
    key = "development" if signing.development else ("pkcs11" if signing.pkcs11_module else "pkcs12")
    storage = ({"kind": "s3", "endpoint": settings.s3.endpoint, "bucket": settings.s3.bucket,
                "lockMode": settings.s3.lock_mode} if settings.storage == "s3"
               else {"kind": "local", "path": str(settings.home / "store")})
    local = settings.home / "store"
    dossiers = None if settings.storage != "local" else len(dossier_codes(LocalStore(local))) if local.is_dir() else 0
    try:
        from ocr.recognise import TesseractEngine

        tesseract = TesseractEngine(settings.ocr.lang, settings.ocr.tessdata).version().split("|")[0]
    except Exception:  # tesseract missing: say so rather than fail the whole report
        tesseract = None
    return SystemInfo(
        home=str(settings.home), home_origin=settings.home_origin, dossiers=dossiers, storage=storage,
        index={"database": redacted(settings.db_url)},
        signing={"key": key, "path": signing.p12 or signing.pkcs11_module, "token": signing.pkcs11_token,
                 "level": signing.level, "tsa": signing.tsa_url, "revocation": signing.revocation_policy,
                 "trustRoots": list(signing.trust_roots), "agency": signing.agency_name},
        versions={"sohoa": installed("sohoa"), "tesseract": tesseract, "pyhanko": installed("pyHanko"),
                  "pikepdf": installed("pikepdf"), "ocrLanguage": settings.ocr.lang})


def is_new_home(settings: Settings) -> bool:
    """A local data home with no dossier yet (a fresh home, or the wrong one)."""
    return settings.storage == "local" and not any((settings.home / "store" / "dossiers").glob("*/manifest.json"))


def redacted(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def audit_log(settings: Settings, last: int = 20) -> AuditReport:
    """The last ``last`` lines of the audit log, and whether its hash chain is intact."""
    db = database(settings)
    intact, count, broken_at = audit.verify_chain(db)
    return AuditReport(intact, broken_at or count, tuple(audit.tail(db, last)) if intact else ())


def _once(make, settings: Settings):
    """``make(settings)`` on first use, then the same object: a batch over many dossiers opens the
    store and reads the trust roots once. A failure is not kept, so each dossier reports it, as
    when each dossier is verified on its own."""
    made = []

    def get():
        if not made:
            made.append(make(settings))
        return made[0]

    return get


def _codes(store, codes: Sequence[str], all_dossiers: bool) -> list[str]:
    """The dossiers a batch runs on: those named, or every one in the store (``store()``)."""
    if all_dossiers:
        return dossier_codes(store())
    if not codes:
        raise UsageError("Chưa chỉ định hồ sơ: nêu mã hồ sơ hoặc dùng --all", "no dossier given: CODE ... or --all")
    return list(codes)
