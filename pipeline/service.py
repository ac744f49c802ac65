"""The service layer: one function per operation, the only entry the doors use.

The command line (``api.cli``), the HTTP API and the workers call these and nothing else of
``pipeline``: each takes the typed ``Settings`` and the operation's arguments, opens what it
needs (object store, index, signer, page executor), writes the audit line, and returns a
frozen result (``pipeline.models``) or raises a ``SohoaError`` or storage error, which each
door reports through ``pipeline.errors.describe``.

    ingest   scan   scanners   show   export   link   search   reindex   verify   renew   page_cache   audit_log
    audit_anchor   audit_verify   bulk   watch   status   retry   discard   worker   db_upgrade   notices

For the HTTP API and the web interface (``api.http``, ``api.web``) besides: users, tokens and
logins; uploads recorded as jobs (``accept_upload``) and run (``run_job``); the counter's intake
drafts (``intake_*``); jobs, documents, checklists, a dossier's access log and the quarterly
report as the user may see them (``Principal``: role and agency scope, ``visible``); every event
inside ``acting(who)`` names that user in the access log.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from contextlib import closing, contextmanager, nullcontext
from dataclasses import replace
from functools import partial
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from storage import db, index as search_index, jobs as job_table, keys
from storage.base import ObjectStore
from storage.errors import IntegrityError as ChangedInStore, RetentionError
from storage.local import LocalStore

from storage import accounts

from . import access, audit, bulk as bulk_runner, dossier, events, hotfolder, jobs, manifest as mf, pdfa, receipts, report
from .access import Principal
from .privacy import mask_id_numbers
from .bulk import BulkProgress, BulkResult
from .checks import TrustPolicy, verify_stored_dossier
from .config import Settings
from .errors import (BrokerUnavailable, ConfigError, Conflict, InputError, IntegrityError, JobFailed, NotFound, SigningError, SohoaError, Unsupported,
                     UsageError, describe)
from .executor import PageExecutor, Progress, limit_native_threads
from .ingest import IngestContext, check_title
from .models import (JobView, AuditReport, CacheReport, SystemInfo, DocumentLink, DocumentVerdict, DocumentView, DossierReport, DossierView, ExportResult,
                     IngestRequest, IngestSummary, ReindexResult, RenewalResult, SearchHit, SearchResult, TitleHit,
                     FLAG_VI)
from .pages import PageCache, code_version, load_engine
from .runtime import database, development_pki, ingest_context, key_trouble, open_store, page_executor, signer_for
from .renewal import renew_stored_dossier
from .repository import dossier_codes, extend_locks, held_or_refused, load_manifest, require_manifest
from .scanner import ScannerDevice, ScanResult, ScanSettings, list_devices, scan_pages
from .signing.certificates import REVOCATION_MODES
from .signing.devpki import DEV_DIR_NAME
from .signing.keys import Signer, SignerLoading, development_ca_fingerprints, trust_roots

log = logging.getLogger(__name__)


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
        # loaded beside the work that needs no signer yet: reading the inputs, a page's reading
        with closing(SignerLoading(partial(_loaded_ahead, settings))) as own:
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


def _loaded_ahead(settings: Settings) -> Signer:
    """What an ingest loads in its signer's thread, beside the inputs' check: the signer, the
    PDF/A checker that signing runs before and after it, and the recognisers' models (a one-page
    document's reading needs them last of the three; a document of more pages has them loaded by
    the main thread meanwhile, see ``jobs.run_locally``)."""
    signer = signer_for(settings)
    pdfa.load_checker()
    load_engine(settings.ocr)
    return signer


def _send(settings: Settings, job_id: str) -> None:
    """Hand the job's pending pages to the workers (its finishing task when none is pending). A
    broker that cannot be reached fails the job with that reason (it was left queued for ever,
    with nothing to send it again): its files are stored, and ``sohoa retry`` sends it once the
    broker is back."""
    pending = job_table.pages_to_do(database(settings), job_id)
    try:
        with _broker(settings, job_id) as tasks:
            if pending:
                tasks.send_pages(job_id, pending)
            else:
                tasks.send_finish(settings, job_id, jobs.view(database(settings), job_id).dossier)
    except BrokerUnavailable as error:
        jobs.fail(database(settings), job_id, error)
        raise


def _send_unless_moving(settings: Settings, job_id: str, resumed: bool = False) -> None:
    """``_send`` for a bulk run's new job; of a job an earlier run made (``resumed``), only its
    pages still to do, and only once it has stalled (its tasks are in the queue unless they were
    lost with a broker restarted without them): its finishing task is the bulk run's to send,
    in the dossier's order (sent here, a document could be committed before an earlier one)."""
    if not resumed:
        _send(settings, job_id)
        return
    job = job_table.get(database(settings), job_id)
    pending = job_table.pages_to_do(database(settings), job_id)
    if job is None or not pending or not jobs.stalled(job, _time_limits(settings), workers=True):
        return
    with _broker(settings, job_id) as tasks:
        tasks.send_pages(job_id, pending)


def _send_finish(settings: Settings, job_id: str) -> None:
    """The job's finishing task to the workers (a bulk run sends it, in the dossier's order)."""
    with _broker(settings) as tasks:
        tasks.send_finish(settings, job_id, jobs.view(database(settings), job_id).dossier)


@contextmanager
def _broker(settings: Settings, job_id: str | None = None):
    """``pipeline.tasks``, configured, to send with: a broker that cannot be reached is raised as
    BrokerUnavailable (with the retry of ``job_id`` to run once it is back)."""
    from kombu.exceptions import OperationalError

    from . import tasks

    tasks.configured(settings)
    try:
        yield tasks
    except (OperationalError, OSError) as exc:
        raise _broker_unreachable(settings, exc, job_id) from None


def _broker_unreachable(settings: Settings, exc: BaseException, job_id: str | None = None) -> BrokerUnavailable:
    then = (f"; giấy tờ đã nhận được giữ nguyên, chạy lại bằng 'sohoa retry {job_id}' (hoặc nút Chạy lại) khi hàng "
            "đợi hoạt động trở lại") if job_id else ""
    return BrokerUnavailable(f"Không kết nối được hàng đợi việc cho các worker ({redacted(settings.broker.url or '')})"
                             f"{then}", f"broker unreachable: {type(exc).__name__}: {redacted(str(exc))}")


def _await(settings: Settings, ctx: IngestContext, job_id: str, progress: Progress | None,
           poll: float = 0.5) -> IngestSummary:
    """Follow a job the workers run until it is done (its document) or failed (its error). The
    job goes on in the workers while the database or the store is unreachable: this waits for
    them, up to ``jobs.OUTAGE_WAIT`` seconds at a time."""
    import time

    db = database(settings)
    unreachable_since = None
    while True:
        try:
            job = jobs.view(db, job_id)
            if progress:
                progress(job.pages_done + job.pages_failed, job.pages_total)
            if job.state == "done":
                return jobs.summary_of_done(ctx, job_id)
        except jobs.TRANSIENT:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > jobs.OUTAGE_WAIT:
                raise
            time.sleep(2)
            continue
        unreachable_since = None
        if job.state == "failed":
            raise JobFailed(job_id, job.error)
        if job.state == job_table.DISCARDED:  # given up while this door followed it
            raise jobs.discarded(job_id, job.dossier)
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
    jobs.reopen(open_store(settings), db, job_id, time_limits=_time_limits(settings),
                workers=bool(settings.broker.url))
    if settings.broker.url:
        _send(settings, job_id)
        return _await(settings, ingest_context(settings), job_id, progress)
    with closing(SignerLoading(partial(signer_for, settings))) as signer:  # a failure to load fails the job
        return jobs.run_locally(ingest_context(settings, signer=signer, executor=page_executor(settings),
                                               progress=progress), job_id)


def quiet_for(settings: Settings, state: str) -> float:
    """How long a job in ``state`` must not move before a retry takes it (``jobs.stalled``)."""
    return jobs.quiet_for(state, _time_limits(settings))


def _time_limits(settings: Settings) -> tuple[float, float]:
    """The longest a page, and a document's finishing, may take: a job that has not moved for
    longer is stalled, and may be run again while not failed."""
    return settings.broker.page_time_limit, settings.broker.finish_time_limit


def discard(settings: Settings, job_id: str, reason: str) -> JobView:
    """Give up a failed job for good, with the reason (``pipeline.jobs.discard``: its originals stay)."""
    return jobs.discard(database(settings), job_id, reason)


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


def beat(settings: Settings, loglevel: str = "INFO") -> None:
    """Run Celery beat until stopped: it sends the periodic tasks (a rolling fixity slice every
    SOHOA_FIXITY_INTERVAL seconds) to the workers. One beat per deployment; its schedule's
    state is kept in SOHOA_HOME."""
    from . import tasks

    if not settings.broker.url:
        raise ConfigError("Chạy beat cần SOHOA_BROKER_URL (ví dụ redis://127.0.0.1:6379/0)",
                          "beat needs SOHOA_BROKER_URL")
    settings.home.mkdir(parents=True, exist_ok=True)
    tasks.configure(settings).start(["beat", f"--loglevel={loglevel}",
                                     f"--schedule={settings.home / 'celerybeat-schedule'}"])


def bulk(settings: Settings, source: Path, *, report: Path | None = None,
         progress: BulkProgress | None = None) -> BulkResult:
    """Convert a backlog: every document of a folder tree or CSV, with a report of every input."""
    source = Path(source)
    if settings.broker.url:
        from . import tasks

        tasks.configure(settings)
        return bulk_runner.run(source, ingest_context(settings), send=partial(_send_unless_moving, settings),
                               send_finish=partial(_send_finish, settings),
                               report=report, progress=progress, work=settings.home / "work" / "split")
    # a key that will not open stops the run at once; the development key's banner waits for the first
    # document to sign (it came before "không tồn tại" and every other refusal of the source)
    with closing(SignerLoading(partial(signer_for, settings)).settled()) as signer:
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
    _refuse_watching_the_data(settings, folder)
    remote = bool(settings.broker.url)
    with closing(signer_for(settings)) if not remote else nullcontext() as signer:
        def handle(hot: hotfolder.HotFile) -> hotfolder.Taken:
            code = hot.dossier if hot.dossier is not None else receipt_code(settings, hot.path)
            summary = ingest(settings, IngestRequest(code, (str(hot.path),), hot.title), signer=signer)
            notes = [f"đã có: trùng tài liệu {summary.doc_id}, không thêm gì"] if summary.duplicate else []
            notes += [f"trang {p.number}: " + ", ".join(FLAG_VI.get(f, f) for f in p.flags) + ", cần xem lại"
                      for p in summary.pages if p.flags]
            return hotfolder.Taken(summary.dossier_code, summary.doc_id, tuple(notes))

        audit.record(database(settings), "watch", "started", folder=str(folder))
        return hotfolder.run(folder, handle, settle=settle, poll=poll, once=once, on_event=on_event)


def _refuse_watching_the_data(settings: Settings, folder: Path) -> None:
    """A hot folder moves every file it holds: SOHOA_HOME (its database, its development key, a
    local store) must not be in it, nor it in the store (a deployment's DEPLOY_SCANS_DIR set to
    the data directory moved the database and the key into failed/: hot-folder review)."""
    watched, home = folder.resolve(), settings.home.resolve()
    if home.is_relative_to(watched) or any(watched.is_relative_to(home / p) for p in ("store", DEV_DIR_NAME)):
        raise UsageError(f"Không theo dõi {folder}: thư mục này chứa dữ liệu của sohoa ({home}: cơ sở dữ liệu, "
                         "khóa ký, kho) hoặc nằm trong kho; chọn thư mục riêng cho máy quét",
                         "the watch folder holds or is inside SOHOA_HOME's data")


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
    """Short-lived download links (presigned URLs) for a dossier's documents on S3, valid
    ``expires`` seconds (1 to 7 days' worth)."""
    code = dossier.validate_key(code)
    if not 1 <= expires <= 7 * 86400:
        raise UsageError("Thời hạn liên kết (--expires) phải từ 1 đến 604.800 giây (7 ngày)",
                         "link expiry: 1 s to 7 days")
    store = open_store(settings)
    if not hasattr(store, "presigned_url"):
        raise Unsupported("Liên kết tải xuống chỉ có với kho S3 (SOHOA_STORAGE=s3); "
                          "với kho cục bộ hãy tải tệp trực tiếp (API: bỏ link=true; dòng lệnh: 'sohoa export')",
                          "presigned links need the S3 store")
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


def now_vn() -> datetime:
    """Now in Vietnam's time (+07:00), as reports, manifests and the access log write it: a
    progress line printed beside them in the server's own time (often UTC) was 7 hours off."""
    return audit.now_vn()


def code_prefix_in(query: str) -> str | None:
    """The search box's query as a dossier-code prefix, when it reads as one (``dossier.code_prefix_in``)."""
    return dossier.code_prefix_in(query)


def parse_day(text: str) -> date | None:
    """A date as an archivist writes it (31/12/2019) or ISO; None when it is neither (``dossier.parse_day``)."""
    return dossier.parse_day(text)


def dossiers_by_code(settings: Settings, prefix: str, *, limit: int = 50, scope: Sequence[str] = (),
                     offset: int = 0) -> tuple[dict, ...]:
    """The dossiers whose code starts with ``prefix`` (any case), in the scope, in code order, the
    first ``offset`` left out: an officer who types a code, or the start of one, in the search box
    (``dossier.code_prefix_in``)."""
    found = search_index.dossiers_by_code(database(settings), prefix, scope, limit, offset)
    audit.record(database(settings), "search-codes", codePrefix=prefix.strip().upper(), hits=len(found))
    return tuple(found)


MAX_SEARCH_OFFSET = 900  # a next page of hits is ranked among offset + limit candidates


def search(settings: Settings, query: str, *, code_prefix: str | None = None, limit: int = 20,
           scope: Sequence[str] = (), offset: int = 0) -> SearchResult:
    """Pages whose words match, with or without diacritics, in four tiers: the exact phrase, the
    phrase without diacritics, all words near each other, all words; an empty query is refused.
    With the first page of hits, the dossiers and documents whose title holds the words (``titles``).
    ``scope``: only dossiers of these agency codes; ``offset``: the first hits left out (a next
    page; ``more`` says whether one follows). Snippets show no citizen ID number whole."""
    if limit < 1:
        raise UsageError("--limit phải lớn hơn 0", "limit must be positive")
    if not 0 <= offset <= MAX_SEARCH_OFFSET:
        raise UsageError(f"Vị trí bắt đầu phải từ 0 đến {MAX_SEARCH_OFFSET}", "offset out of range")
    # matches marked with characters no page holds while identity numbers are masked: a bracket
    # of the page's own next to a number would otherwise be read as a mark (review of 9f9aeeb)
    hits = search_index.search(database(settings), query, code_prefix=code_prefix, limit=limit + 1, scope=scope,
                               mark=_INNER_MARK, offset=offset)
    more, hits = len(hits) > limit, hits[:limit]
    titles = () if offset else search_index.titles(database(settings), query, code_prefix, limit, scope)
    audit.record(database(settings), "search", query=query, codePrefix=code_prefix, hits=len(hits),
                 **({"titles": len(titles)} if titles else {}), **({"offset": offset} if offset else {}))
    return SearchResult(query, tuple(SearchHit(h["dossierCode"], h["docId"], h["page"], _shown(h["snippet"]),
                                               h["score"], h["exact"], h.get("tier", "all"), h.get("title"))
                                     for h in hits), offset, more,
                        tuple(TitleHit(t["dossierCode"], t["docId"], t["title"], t["exact"]) for t in titles))


_INNER_MARK = ("\ue000", "\ue001")  # private-use characters: never in a page's text


def _shown(snippet: str) -> str:
    """A snippet as answered: identity numbers masked, the page's own square brackets written
    full-width (［1］: the marks are the only [ and ] in a snippet), then its matches between
    ``storage.index.MARK``."""
    masked = mask_id_numbers(snippet, _INNER_MARK).translate(_PAGE_BRACKETS)
    return masked.replace(_INNER_MARK[0], search_index.MARK[0]).replace(_INNER_MARK[1], search_index.MARK[1])


_PAGE_BRACKETS = str.maketrans({"[": "\uff3b", "]": "\uff3d"})


def index_behind_store(settings: Settings) -> bool:
    """Whether the search index holds no dossier while the store holds some: a lost or new index
    database, which ``sohoa reindex`` rebuilds (a search then silently found nothing)."""
    if search_index.holds_a_dossier(database(settings)):
        return False
    store = open_store(settings)  # the first dossier with a manifest will do (review: not a look at each)

    def has_manifest(name: str) -> bool:
        try:
            return store.exists(keys.manifest(name))
        except Exception:  # a folder no dossier code names
            return False

    return any(has_manifest(name) for name in store.children(keys.PREFIX))


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


def verify(settings: Settings, codes: Sequence[str] = (), *, all_dossiers: bool = False,
           signatures: bool = True, on_dossier: Callable[[str, tuple], None] | None = None) -> DossierReport:
    """Verdicts for the dossiers named (or every dossier); one that cannot be read is a failed verdict
    and the others are still judged. An archivist's (or a scheduled) check: each dossier's fixity
    check and signature validation are recorded as its preservation events (``pipeline.events``);
    ``verify_dossier``, what an officer's view of a dossier runs, records only the access.

    With ``all_dossiers`` the whole store's objects are checked first (``pipeline.fixity.sweep``,
    what rolling fixity spreads over its cycle): every object re-read, changed, missing and extra
    objects reported in ``objects`` and as a failed verdict of their dossier. ``signatures=False``
    (``--fixity-only``): that check alone, no signature validation (seconds per thousand
    documents rather than a second per document); ``results`` then holds only the dossiers
    with a problem. ``on_dossier(code, verdicts)``: called as each dossier's signatures are judged
    (a long run shows its progress, and what was shown stays shown if it is stopped)."""
    store, policy = _once(open_store, settings), _once(_trust_policy, settings)
    if signatures:
        policy()  # a trust root that cannot be read is this machine's setting, not every dossier's fault
    objects = _check_objects(settings, store(), codes, all_dossiers) if all_dossiers or not signatures else None
    results, unindexed = {}, ()
    if signatures:
        judged = _codes(store, codes, all_dossiers)
        if all_dossiers:  # an older database restored: search misses what came after it (the ops review)
            unindexed = tuple(sorted(set(judged) - set(search_index.dossier_codes(database(settings)))))
        results = _each_dossier(
            judged, lambda code: _verify(settings, store(), policy(), code, preserve=True),
            lambda code, report: DocumentVerdict(None, False, {}, f"{code}: {report.message_vi}",
                                                 f"{code}: {report.detail or report.message_vi}"),
            on_dossier)
    for code, problems in _by_dossier(objects).items():
        results[code] = tuple(results.get(code, ())) + (_objects_verdict(code, problems),)
    failed = any(not verdicts or not all(v.ok for v in verdicts) for verdicts in results.values())
    return DossierReport(results, failed or bool(objects and not objects.ok),
                         objects.to_json() if objects is not None else None, unindexed)


def _check_objects(settings: Settings, store: ObjectStore, codes: Sequence[str], all_dossiers: bool):
    """The store's objects (or the named dossiers'), each re-read: changed, missing, extra (the
    originals of jobs not done are held for them, not extra). A dossier with a problem gets a
    failed fixity check event; the run, one access-log line."""
    from . import fixity as rolling

    def on_dossier(code: str, problems) -> None:
        if problems and store.exists(keys.manifest(code)):
            events.record(store, code, "fixity check", "failure", detail="whole-store object check (verify --all)",
                          outcome_detail="; ".join(f"{p.key}: {p.outcome}" for p in problems),
                          objects=[p.key for p in problems])

    held = partial(jobs.held_originals, database(settings))
    if all_dossiers:
        found = rolling.sweep(store, on_dossier=on_dossier, held=held,
                              expected=rolling.known_dossiers(database(settings)))
    else:
        found = rolling.sweep(store, on_dossier=on_dossier, held=held, codes=[dossier.validate_key(c) for c in _codes(
            lambda: store, codes, False)])
    audit.record(database(settings), "verify-objects", "success" if found.ok else "failure",
                 dossiers=found.dossiers, documents=found.documents, objects=found.objects,
                 changed=found.count("mismatch"), missing=found.count("missing"), extra=found.count("extra"),
                 held=found.held, seconds=round(found.seconds, 3))
    return found


def _by_dossier(objects) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for problem in (objects.problems if objects is not None else ()):
        grouped.setdefault(keys.code_of(problem.key) or problem.key.rstrip("/").rsplit("/", 1)[-1], []).append(problem)
    return grouped


_OBJECT_OUTCOME = {"mismatch": ("THAY ĐỔI", "CHANGED"), "missing": ("THIẾU", "MISSING"), "extra": ("THỪA", "EXTRA")}


def _objects_verdict(code: str, problems) -> DocumentVerdict:
    return DocumentVerdict(
        None, False, {"objects": False},
        f"{code}: KHÔNG ĐẠT: đối tượng trong kho: " + "; ".join(f"{_OBJECT_OUTCOME[p.outcome][0]} {p.key}" for p in problems),
        f"{code}: FAIL: stored objects: " + "; ".join(f"{_OBJECT_OUTCOME[p.outcome][1]} {p.key}" for p in problems))


def dossier_events(settings: Settings, code: str) -> list[dict]:
    """The dossier's preservation events, oldest first: those its manifest records (ingestion,
    signing, changes, timestamp renewals) and those stored with it (fixity checks, validations,
    replication, packaging, disposal); see ``pipeline.events``."""
    store = open_store(settings)
    code = dossier.validate_key(code)
    manifest = load_manifest(store, code)
    if manifest is None and not store.list(keys.dossier_events(code)):
        raise NotFound(f"Không tìm thấy hồ sơ {code}", "dossier not found: no manifest and no events")
    return events.history(store, code, manifest or {})  # a disposed dossier keeps its events


# --------------------------------------------------------------------------- hand-over to the archive

def package(settings: Settings, code: str, out: Path) -> Path:
    """The dossier's E-ARK SIP written as ``out/<code>`` (``pipeline.package``); the packaging is
    recorded with the dossier as a preservation event, and in the access log, failure included."""
    from . import package as sip

    store, db = open_store(settings), database(settings)
    code = dossier.validate_key(code)
    try:
        path = sip.build_sip(store, code, out, agency=settings.signing.agency_name)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if store.exists(keys.manifest(code)):
            events.record(store, code, "information package creation", "failure",
                          detail=f"E-ARK SIP of {code} into {out}", outcome_detail=reason)
        audit.record(db, "package", "failure", dossier=code, reason=reason)
        raise
    events.record(store, code, "information package creation", "success", detail=f"E-ARK SIP written to {path}")
    audit.record(db, "package", dossier=code, path=str(path))
    return path


def closed_dossiers(settings: Settings, before: date) -> list[str]:
    """The dossiers closed before ``before``: their last document was added earlier (the
    manifest's ``endDate``, else the day it was last updated)."""
    store, found = open_store(settings), []
    for code in dossier_codes(store):
        try:
            manifest = load_manifest(store, code) or {}
        except IntegrityError:  # listed: packaging it fails and says why, the others still go
            found.append(code)
            continue
        last = mf.closing_day(manifest)
        if last and date.fromisoformat(last) < before:
            found.append(code)
    return found


def package_bulk(settings: Settings, before: date, out: Path) -> dict[str, dict]:
    """An E-ARK SIP for each dossier closed before ``before``; a dossier already packaged in
    ``out`` is skipped, one that fails is reported and the others still go."""
    results: dict[str, dict] = {}
    for code in closed_dossiers(settings, before):
        if (Path(out) / code).exists():
            results[code] = {"outcome": "skipped", "path": str(Path(out) / code)}
            continue
        try:
            results[code] = {"outcome": "packaged", "path": str(package(settings, code, out))}
        except Exception as exc:
            report = describe(exc)
            if not report.expected:
                raise
            results[code] = {"outcome": "failed", "error": report.message_vi}
    return results


def import_package(settings: Settings, sip_dir: Path) -> str:
    """Store the dossier of an E-ARK SIP (every file checked before anything is stored), index it
    and record the import; returns its code."""
    from . import package as sip

    store, db = open_store(settings), database(settings)
    try:
        code = sip.import_sip(store, sip_dir)
    except Exception as exc:
        audit.record(db, "import-package", "failure", path=str(sip_dir), reason=f"{type(exc).__name__}: {exc}")
        raise
    search_index.index_dossier(db, *search_index.read_dossier(store, code))
    audit.record(db, "import-package", dossier=code, path=str(sip_dir))
    return code


# --------------------------------------------------------------------------- retention and disposal

def retention_report(settings: Settings, as_of: date | None = None):
    """Every dossier with its due date and status (``pipeline.disposal``), as of ``as_of``."""
    from . import disposal

    return disposal.report(open_store(settings), settings.s3.retention_days, as_of or audit.now_vn().date())


def relock(settings: Settings, codes: Sequence[str] = (), *, all_dossiers: bool = False) -> dict[str, tuple]:
    """Lock every write-once object of each dossier until at least the day it is due, in the
    primary store and in the replica when one is configured (``repository.extend_locks``); a lock
    already as long is left as it is. Objects stored before 0.3.1 were locked for their period
    from the day they were stored, up to a year short of the due day, and are otherwise extended
    only when their dossier next changes. Returns {code: (versions extended in the primary, in
    the replica)}, or ``(error message,)`` for a dossier whose manifest cannot be read."""
    from . import replication

    store, replica = open_store(settings), replication.open_replica(settings)

    def run(code: str) -> tuple:
        manifest = require_manifest(store, code)
        return extend_locks(store, manifest), extend_locks(replica, manifest) if replica is not None else 0

    results = _each_dossier(_codes(lambda: store, codes, all_dossiers), run, lambda code, report: report.message_vi)
    extended = [r for r in results.values() if len(r) == 2]
    audit.record(database(settings), "relock", "success" if len(extended) == len(results) else "failure",
                 dossiers=len(results), primary=sum(r[0] for r in extended), replica=sum(r[1] for r in extended),
                 failed=len(results) - len(extended))
    return results


def legal_hold(settings: Settings, code: str, reason: str, *, release: bool = False) -> dict:
    """Place or release the dossier's legal hold (on the replica's copies too); recorded."""
    from . import disposal, replication

    store, code = open_store(settings), dossier.validate_key(code)
    record = disposal.hold(store, code, reason, audit.current_actor(), release=release)
    replica = replication.open_replica(settings)
    if replica is not None:
        replication.replicate(store, replica, [code])
        for key in replica.list(keys.dossier_prefix(code)):
            if disposal.held_object(key):
                replica.legal_hold(key, not release)
    audit.record(database(settings), "legal-hold-release" if release else "legal-hold", dossier=code,
                 reason=record["reason"])
    return record


def dispose(settings: Settings, code: str, reason: str, approver_token: str) -> dict:
    """Dispose of a due dossier with the approval of the archivist whose API token is given
    (``pipeline.disposal``), in the primary store and on the replica; returns the record."""
    from . import disposal

    db, store, code = database(settings), open_store(settings), dossier.validate_key(code)
    approver = access.by_token(db, approver_token.strip(), ip=None)
    if approver is None:
        audit.record(db, "dispose", "denied", dossier=code, reason="approval token unknown or revoked")
        raise UsageError("Mã phê duyệt (token) không hợp lệ hoặc đã bị thu hồi; không hủy gì",
                         "approver token unknown or revoked")
    from . import replication

    replica = replication.open_replica(settings)
    try:
        record = disposal.dispose(store, db, code, reason=reason, default_days=settings.s3.retention_days,
                                  approver={"name": approver.name, "role": approver.role,
                                            "agencies": approver.agencies},
                                  copies=(replica,) if replica is not None else ())
        disposed_on_replica(settings, code, record)
    except Exception as exc:  # the replica's refusal too: the primary's removal is then on record
        audit.record(db, "dispose", "failure", dossier=code, approver=approver.name,
                     reason=f"{type(exc).__name__}: {exc}")
        raise
    outcome = "already" if record.get("already") else "success" if record["complete"] else "partial"
    audit.record(db, "dispose", outcome, dossier=code, approver=approver.name, removed=len(record["removed"]),
                 kept=len(record["kept"]))
    return record


def disposed_on_replica(settings: Settings, code: str, record: dict) -> None:
    """Carry a disposal to the second copy: what was removed goes there too, and the disposal
    record and event are copied (nothing, without a replica)."""
    from . import replication

    replica = replication.open_replica(settings)
    if replica is not None:
        for obj in record["removed"]:
            replica.delete(obj["key"])
        replication.replicate(open_store(settings), replica, [code])


# --------------------------------------------------------------------------- second copy and rolling fixity

def _replica(settings: Settings) -> ObjectStore:
    """The store SOHOA_REPLICA_* names; ConfigError when none is configured."""
    from . import replication

    replica = replication.open_replica(settings)
    if replica is None:
        raise ConfigError("Chưa cấu hình bản sao thứ hai: đặt SOHOA_REPLICA_S3_ENDPOINT (kho S3 khác) hoặc "
                          "SOHOA_REPLICA_DIR (thư mục trên phương tiện khác)", "no replica configured (SOHOA_REPLICA_*)")
    return replica


def replicate(settings: Settings, codes: Sequence[str] = (), *, check_only: bool = False, read: bool = False):
    """Copy to the replica every stored object it lacks or holds with other bytes, the SHA-256
    checked on both sides (``read``: re-hash the replica's copies and repair the damaged ones);
    with ``check_only`` copy nothing and report what is missing, different or extra there. Each
    dossier that gained copies gets a replication event (``pipeline.events``), itself copied."""
    from . import replication

    store, replica = open_store(settings), _replica(settings)
    chosen = [dossier.validate_key(c) for c in codes] or None
    if check_only:
        found = replication.check(store, replica, chosen, read=True)
    else:
        found = replication.replicate(store, replica, chosen, read=read)
        touched = _record_replication(store, found)
        if touched:  # the events just written go to the replica as well
            replication.replicate(store, replica, touched)
    audit.record(database(settings), "replicate-check" if check_only else "replicate",
                 "success" if found.ok else "failure", target=found.target, objects=found.objects,
                 copied=len(found.copied), bytes=found.bytes_copied, missing=len(found.missing),
                 different=len(found.different), extra=len(found.extra), failed=len(found.failed),
                 seconds=round(found.seconds, 3))
    return found


def _record_replication(store: ObjectStore, found) -> list[str]:
    """One replication event per dossier whose objects were copied or failed to copy."""
    by_code: dict[str, list[str]] = {}
    failed: dict[str, list[str]] = {}
    for key in found.copied:
        if (code := keys.code_of(key)) is not None:
            by_code.setdefault(code, []).append(key)
    for key, reason in found.failed:
        if (code := keys.code_of(key)) is not None:
            failed.setdefault(code, []).append(f"{key}: {reason}")
    touched = []
    for code in sorted(set(by_code) | set(failed)):
        if not store.exists(keys.manifest(code)):
            continue
        events.record(store, code, "replication", "failure" if code in failed else "success",
                      detail=f"{len(by_code.get(code, []))} object(s) copied to {found.target}, SHA-256 checked there",
                      outcome_detail="; ".join(failed.get(code, [])), objects=by_code.get(code, []))
        touched.append(code)
    return touched


def restore(settings: Settings, codes: Sequence[str] = (), *, read: bool = True):
    """Rebuild an emptied (or partial, or damaged) primary store from the replica, each dossier's
    manifest written last, every SHA-256 checked; then ``sohoa reindex`` and ``sohoa verify --all``.
    ``read``: the primary's objects are re-read and re-hashed, so one changed under its recorded
    SHA-256 (bit rot, a truncated manifest) is replaced too; without it only records are compared."""
    from . import replication

    store, replica = open_store(settings), _replica(settings)
    chosen = [dossier.validate_key(c) for c in codes] or None
    found = replication.restore(replica, store, chosen, read=read)
    audit.record(database(settings), "restore", "success" if found.ok else "failure", source=found.source,
                 objects=found.objects, copied=len(found.copied), bytes=found.bytes_copied,
                 extra=len(found.extra), failed=len(found.failed), seconds=round(found.seconds, 3))
    return found


def fixity(settings: Settings, *, status_only: bool = False, limit: int | None = None):
    """One slice of rolling fixity on the primary and the replica (``pipeline.fixity``), or with
    ``status_only`` how far each cycle is; one report per store. Each dossier read gets a fixity
    check event (in the primary); problems are logged, counted in the cycle and sent as
    ``fixity.failed`` notices."""
    from . import fixity as rolling, replication

    store, replica = open_store(settings), replication.open_replica(settings)
    days = settings.fixity.days
    if status_only:
        return tuple(rolling.status(s, store, days, label=label)
                     for label, s in (("primary", store), ("replica", replica)) if s is not None)
    db = database(settings)
    return rolling.run_recorded(store, replica, db, settings.webhook, days, interval=settings.fixity.interval,
                                limit=limit, held=partial(jobs.held_originals, db))


def fixity_counters(settings: Settings) -> dict[str, dict]:
    """Per copy: objects checked and problems found in the current fixity cycle, and when it
    started (for /metrics: cheap, read from the cycle's cursor)."""
    from . import fixity as rolling

    return {label: {"checked": c.checked, "problems": c.problems, "cycle_started": c.cycle_started.timestamp()}
            for label, c in rolling.cursors(open_store(settings)).items()}


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


def _verify(settings: Settings, store: ObjectStore, policy: TrustPolicy, code: str,
            preserve: bool = False) -> tuple[DocumentVerdict, ...]:
    code = dossier.validate_key(code)
    try:
        verdicts = verify_stored_dossier(store, code, policy)
    except Exception as exc:
        audit.record(database(settings), "verify", "failure", dossier=code, reason=f"{type(exc).__name__}: {exc}")
        if preserve and store.exists(keys.manifest(code)):
            events.record_verification(store, code, (), failure=f"{type(exc).__name__}: {exc}")
        raise
    if preserve:
        events.record_verification(store, code, verdicts)
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


def _each_dossier(codes: list[str], run, on_error, done: Callable[[str, tuple], None] | None = None
                  ) -> dict[str, tuple]:
    """``run(code)`` for each dossier; a dossier whose operation fails with an expected error gets
    ``(on_error(code, report),)`` and the others still run. An unexpected error stops the batch.
    ``done(code, result)`` after each."""
    results = {}
    for code in codes:
        try:
            results[code] = run(code)
        except Exception as exc:
            report = describe(exc)
            if not report.expected:
                raise
            results[code] = (on_error(code, report),)
        if done is not None:
            done(code, results[code])
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
        index={"database": redacted(settings.db_url),
               "broker": redacted(settings.broker.url) if settings.broker.url else None},
        signing={"key": key, "path": signing.p12 or signing.pkcs11_module, "token": signing.pkcs11_token,
                 "level": signing.level, "tsa": signing.tsa_url, "revocation": signing.revocation_policy,
                 "trustRoots": list(signing.trust_roots), "agency": signing.agency_name},
        versions={"sohoa": installed("sohoa"), "databaseSchema": db.head_revision(), "tesseract": tesseract,
                  "pyhanko": installed("pyHanko"),
                  "pikepdf": installed("pikepdf"), "trueocr": installed("trueocr"), "ocrLanguage": settings.ocr.lang,
                  "ocrEngine": settings.ocr.engine,
                  # what every worker's page results must share (pipeline.jobs.finish reads others again)
                  "pageStage": code_version()})


def close_connections() -> None:
    """Close this process's database connections (a command ending its process calls this)."""
    db.close_all()


def is_new_home(settings: Settings) -> bool:
    """A local data home with no dossier yet (a fresh home, or the wrong one): not one whose store
    was lost, which its embedded database outlives."""
    return (settings.storage == "local" and not any((settings.home / "store" / "dossiers").glob("*/manifest.json"))
            and (settings.index.database_url is not None or not (settings.home / "index.sqlite3").exists()))


def redacted(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def audit_log(settings: Settings, last: int = 20) -> AuditReport:
    """The last ``last`` lines of the audit log, and whether its hash chain is intact."""
    db = database(settings)
    intact, count, broken_at = audit.verify_chain(db)
    return AuditReport(intact, broken_at or count, tuple(audit.tail(db, last)) if intact else ())


def audit_anchor(settings: Settings, *, force: bool = False):
    """Anchor the access log's head in the object store (COMPLIANCE retention, RFC 3161 token when
    SOHOA_TSA_URL is set); None when nothing was logged since the last anchor (unless ``force``)."""
    from . import anchors

    return anchors.anchor(database(settings), open_store(settings), tsa_url=settings.signing.tsa_url,
                          retention_days=settings.audit.retention_days, force=force)


def audit_verify(settings: Settings):
    """The access log's chain checked row by row and against every anchor (see ``pipeline.anchors``)."""
    from . import anchors

    roots = trust_roots(settings.signing, settings.home) if settings.signing.tsa_url else None
    return anchors.verify(database(settings), open_store(settings), trust_roots=roots)


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


# --------------------------------------------------------------------------- users and the HTTP doors

ROLE_NAMES_VI = access.ROLE_NAMES_VI  # how the doors name each role
flag_label = report.flag_label        # how the doors name each page flag


def acting(who: Principal):
    """Inside, every event of the access log names ``who``: their name, role and address."""
    return audit.acting(who.name, who.role, who.ip, who.via)


def page_format(data: bytes) -> str | None:
    """The page format of an upload from its first bytes, as ingest reads it (jpeg, png, tiff, pdf), or None."""
    from .inputs import sniff

    return sniff(data)


def check_code(code: str) -> str:
    """A dossier code (one-stop or archive) as typed or scanned, checked; DossierCodeError with a hint otherwise."""
    return dossier.validate_key(code)


def visible(who: Principal, code: str) -> str:
    """The dossier code, checked, if the user's agency scope covers it; NotFound otherwise, the
    same answer as for a dossier that does not exist."""
    code = dossier.validate_key(code)
    if not who.sees(code):
        raise NotFound(f"Không tìm thấy hồ sơ {code}", "dossier not found: no manifest")
    return code


def record_denied(settings: Settings, who: Principal, method: str, path: str, permission: str) -> None:
    """A request refused because the user's role lacks the permission."""
    with acting(who):
        audit.record(database(settings), "denied", "failure", path=path, method=method, permission=permission)


def job_counts(settings: Settings) -> dict[str, int]:
    return job_table.count_by_state(database(settings))


def jobs_quiet_seconds(settings: Settings) -> dict[str, float]:
    """For each open state, seconds since its least recently moved job last moved (the metrics)."""
    now = datetime.now(timezone.utc)
    return {state: max(0.0, (now - datetime.fromisoformat(at)).total_seconds())
            for state, at in job_table.quiet_since(database(settings)).items()}


def add_user(settings: Settings, name: str, role: str, agencies: Sequence[str] = (),
             password: str | None = None) -> Principal:
    """A user of the HTTP API and web interface (see ``pipeline.access`` for roles and scope)."""
    return access.add_user(database(settings), name, role, agencies, password)


def users(settings: Settings) -> list[dict]:
    return [{k: v for k, v in u.items() if k != "password_hash"} for u in accounts.list_users(database(settings))]


def create_token(settings: Settings, name: str) -> tuple[str, str]:
    """(token id, token): the token is shown once; only its hash is kept."""
    return access.create_token(database(settings), name)


def revoke_token(settings: Settings, token_id: str) -> None:
    access.revoke_token(database(settings), token_id)


def tokens(settings: Settings, name: str | None = None) -> list[dict]:
    """The API tokens (of user ``name``): id, user, created, last used (to the minute), revoked."""
    if name is not None and accounts.get_user(database(settings), name) is None:
        raise NotFound(f"Không có người dùng '{name}'", "no such user")
    return accounts.list_tokens(database(settings), name)


def set_user_disabled(settings: Settings, name: str, disabled: bool) -> int:
    """Lock a user out (its tokens revoked, its sessions ended) or let it back in; the tokens revoked."""
    return access.set_disabled(database(settings), name, disabled)


def by_token(settings: Settings, token: str, ip: str | None) -> Principal | None:
    """The user of an API token; a lookup of the last few seconds is trusted (``pipeline.access``)."""
    return access.by_token(database(settings), token, ip=ip, cached=True)


def recent_credentials(settings: Settings, *, token: str | None = None, session: str | None = None,
                       ip: str | None = None):
    """What ``by_token`` or ``by_session`` found for these credentials in the last few seconds,
    without the database (cheap enough for the event loop); None when not known lately."""
    if token is not None:
        return access.recent_token(database(settings), token, ip=ip)
    return access.recent_session(database(settings), session or "", ip=ip)


def login(settings: Settings, name: str, password: str, ip: str | None, earlier_session: str = ""):
    """A web login (``access.login``); the session ``earlier_session`` names, live in the same
    browser, ended once the password is right."""
    found = access.login(database(settings), name, password, ip=ip, hours=settings.api.session_hours,
                         idle_minutes=settings.api.session_idle_minutes)
    if found is not None and earlier_session:
        access.end_earlier_session(database(settings), earlier_session, ip=ip)
    return found


def by_session(settings: Settings, secret: str, ip: str | None):
    return access.by_session(database(settings), secret, ip=ip, cached=True, hours=settings.api.session_hours,
                             idle_minutes=settings.api.session_idle_minutes)


def logout(settings: Settings, secret: str, who: Principal) -> None:
    access.logout(database(settings), secret, who)


def accept_upload(settings: Settings, code: str, title: str, files: Sequence[tuple[str, bytes]],
                  who: Principal, handed_in: Sequence[tuple[str, bytes]] = (), source: str | None = None, *,
                  maintenance: str | None = None, paper_file_code: str | None = None,
                  paper_dates: tuple[str, str] | None = None) -> tuple[JobView | None, IngestSummary | None]:
    """Store an uploaded document's files and record its job; (job, None), or (None, the document)
    when the dossier already holds these very files. The pages are converted by ``run_job``.
    ``handed_in``: files kept unchanged beside them, not read (``IngestRequest.handed_in``);
    ``source``: what the job came from (a counter's draft), recorded with it; the dossier's fields
    as ``IngestRequest`` takes them (checked, and a recorded one not changed, as ``ingest`` does)."""
    code = dossier.validate_key(code)
    check_title(title)
    if not files:
        raise UsageError("Chưa có tệp nào: chọn các trang cần số hóa", "no files")
    folder = Path(tempfile.mkdtemp(prefix=f"{code}-", dir=_work(settings)))
    named = {}  # where each file is kept here -> its name as sent
    try:
        paths = []
        for n, (name, data) in enumerate([*files, *handed_in], start=1):
            safe = _upload_file_name(name, n)
            path = folder / f"{n:04d}" / safe  # each in its own folder: two files may share a name
            named[str(path)] = dossier.visible_text(Path((name or "").replace("\\", "/")).name) or safe
            path.parent.mkdir()
            path.write_bytes(data)
            paths.append(str(path))
        # the document is signed later, by run_job here or by a worker: a key that will not open
        # fails the job then, with its reason, after the citizen's files are stored (retry once
        # it is fixed), as with workers and as ``sohoa ingest`` does; /readyz names it meanwhile
        ctx = replace(ingest_context(settings), remote_signing=True)
        request = IngestRequest(code, tuple(paths[:len(files)]), title, handed_in=tuple(paths[len(files):]),
                                maintenance=maintenance, paper_file_code=paper_file_code, paper_dates=paper_dates)
        submitted = jobs.submit(ctx, request, submitted_by=who.name, source=source)
    except SohoaError as error:  # name each file as the user did, not by its place or name on this server
        for kept, sent in sorted(named.items(), key=lambda item: -len(item[0])):
            error.message_vi, error.detail = error.message_vi.replace(kept, sent), error.detail.replace(kept, sent)
        error.message_vi = re.sub(re.escape(str(folder)) + r"/\d{4}/", "", error.message_vi)
        error.detail = re.sub(re.escape(str(folder)) + r"/\d{4}/", "", error.detail)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the originals are in the object store by now
    if submitted.duplicate is not None:
        return None, submitted.duplicate
    if not submitted.resumed:
        return submitted.view, None
    running = job_table.get(database(settings), submitted.job) or {}
    started_by = running.get("submitted_by")
    dates = list(dossier.paper_dates(*paper_dates, today=audit.now_vn().date())) if paper_dates else None
    asked = {"maintenance": maintenance, "paper_file_code": paper_file_code, "paperDates": dates}
    if differ := [f for f, value in asked.items() if value is not None and value != running.get("request", {}).get(f)]:
        names = {"maintenance": "thời hạn bảo quản", "paper_file_code": "mã hồ sơ giấy", "paperDates": "thời gian"}
        raise Conflict(f"Các tệp này đang được số hóa (lượt xử lý {submitted.job}) với "
                       f"{', '.join(names[f] for f in differ)} khác với lần gửi này; chờ lượt đó xong rồi đổi nếu cần",
                       f"the same files are being converted with other dossier fields: {', '.join(differ)}")
    if who.role == "operator" and started_by != who.name:  # its link would answer 404 to this operator
        by = f"của người dùng khác ({started_by})" if started_by else "số hóa hàng loạt hoặc bằng dòng lệnh"
        raise Conflict(f"Các tệp này đang được số hóa trong một lượt xử lý {by}, bắt đầu lúc "
                       f"{_when_vi(submitted.view.created)}; tài liệu sẽ có trong hồ sơ {code} khi xong, gửi lại "
                       "sau đó sẽ nhận được tài liệu", "the same files are being converted in another user's job")
    return replace(submitted.view, resumed=True), None


def _when_vi(iso: str) -> str:
    """An ISO time as a message shows it: 14:05 ngày 05/12/2026, Vietnam time (it showed the ISO text)."""
    try:
        return f"{datetime.fromisoformat(iso).astimezone(audit.VN):%H:%M ngày %d/%m/%Y}"
    except (TypeError, ValueError):
        return str(iso)


# the counter's intake drafts (pipeline.intake): pages previewed straightened, reordered, then confirmed

def intake_create(settings: Settings, code: str, who: Principal):
    """A new draft of a document of the dossier; the user's open draft of that dossier that has
    no page yet, when there is one: the same code typed twice listed two drafts no one could tell
    apart (the counter review)."""
    from . import intake

    store, code = open_store(settings), visible(who, code)
    if empty := [d for d in intake.list_open(store, who.name) if d.dossier_code == code and not d.pages]:
        return empty[0]
    draft = intake.create(store, code, who.name)
    audit.record(database(settings), "intake", "started", dossier=draft.dossier_code, draft=draft.id)
    return draft


def intake_drafts(settings: Settings, who: Principal):
    from . import intake

    return intake.list_open(open_store(settings), who.name)


def intake_draft(settings: Settings, draft_id: str, who: Principal):
    from . import intake

    return intake.get(open_store(settings), draft_id, who.name)


# how long an upload to a draft waits for another still being read (a page sent again after a
# reload, while the first request reads on), and a confirmation for one
DRAFT_UPLOAD_WAIT, DRAFT_CONFIRM_WAIT = 300.0, 3.0


def _draft_held(settings: Settings, draft_id: str, wait: float, busy_vi: str):
    """One upload, replacement or confirmation of a draft at a time, on every web process (the
    database's lock, as a dossier's). Two uploads at once both took a page for new, and a
    confirmation during an upload signed the pages read so far and dropped the rest without a
    word (the counter review). Conflict with ``busy_vi`` after ``wait`` seconds."""
    return held_or_refused(database(settings), _intake_source(draft_id), wait, busy_vi)


def intake_add(settings: Settings, draft_id: str, files: Sequence[tuple[str, bytes]], who: Principal,
               refused: Sequence[tuple[str, str]] = ()):
    """Each file stored as sent, then split into pages, each previewed (orientation, skew, flags);
    ``refused``: files the door would not take, (name, why), listed with the draft's errors."""
    from . import intake

    store = open_store(settings)
    with _draft_held(settings, draft_id, DRAFT_UPLOAD_WAIT, "Bản nháp vẫn đang nhận trang từ một lần tải lên trước; "
                                                            "chờ lần đó xong rồi thêm lại; chưa thêm gì"):
        before = {p.id for p in intake.get(store, draft_id, who.name).pages}
        draft = intake.add_files(store, draft_id, files, max_pixels=settings.ocr.max_pixels, owner=who.name,
                                 lang=settings.ocr.lang, tessdata=settings.ocr.tessdata,
                                 time_limit=settings.broker.page_time_limit, refused=refused)
    _read_ahead(settings, draft, before)
    return draft


def intake_replace(settings: Settings, draft_id: str, page_id: str, name: str, data: bytes, who: Principal):
    from . import intake

    store = open_store(settings)
    with _draft_held(settings, draft_id, DRAFT_UPLOAD_WAIT, "Bản nháp vẫn đang nhận trang từ một lần tải lên; chờ "
                                                            "lần đó xong rồi thay trang; chưa thay gì"):
        before = {p.id for p in intake.get(store, draft_id, who.name).pages}
        draft = intake.replace(store, draft_id, page_id, name, data, max_pixels=settings.ocr.max_pixels,
                               owner=who.name, lang=settings.ocr.lang, tessdata=settings.ocr.tessdata,
                               time_limit=settings.broker.page_time_limit)
    _read_ahead(settings, draft, before)
    return draft


def _read_ahead(settings: Settings, draft, before: set[str]) -> None:
    """Start reading the draft's new pages (``pipeline.early``); a failure to start is no error
    of the upload: the job reads them in any case."""
    from . import early

    new = replace(draft, pages=tuple(p for p in draft.pages if p.id not in before))
    try:
        early.read_ahead(settings, early.draft_tasks(new, settings.ocr))
    except Exception as e:
        log.warning("read-ahead of draft %s not started: %s: %s", draft.id, type(e).__name__, e)


def intake_move(settings: Settings, draft_id: str, page_id: str, position: int, who: Principal):
    from . import intake

    return intake.move(open_store(settings), draft_id, page_id, position, who.name)


def intake_remove(settings: Settings, draft_id: str, page_id: str, who: Principal):
    from . import intake

    return intake.remove(open_store(settings), draft_id, page_id, who.name)


def intake_clear_errors(settings: Settings, draft_id: str, who: Principal):
    from . import intake

    return intake.clear_errors(open_store(settings), draft_id, who.name)


def intake_discard(settings: Settings, draft_id: str, who: Principal) -> None:
    from . import intake

    intake.discard(open_store(settings), draft_id, who.name)
    audit.record(database(settings), "intake", "discarded", draft=draft_id)


def intake_confirmed_job(settings: Settings, draft_id: str, who: Principal) -> str | None:
    """The job the user's draft became when it was confirmed (its source names the draft), or
    None: a confirmation sent twice (a double click) is shown that job."""
    found = job_table.find(database(settings), source=_intake_source(draft_id), submitted_by=who.name, newest=1)
    return found[0]["id"] if found else None


def _intake_source(draft_id: str) -> str:
    return f"intake:{draft_id}"


def intake_thumbnail(settings: Settings, draft_id: str, page_id: str, who: Principal, turn: int = 0) -> bytes:
    from . import intake

    return intake.thumbnail(open_store(settings), draft_id, page_id, who.name, turn)


def intake_page_view(settings: Settings, draft_id: str, page_id: str, who: Principal, turn: int = 0) -> bytes:
    from . import intake

    return intake.page_view(open_store(settings), draft_id, page_id, who.name, settings.ocr.max_pixels, turn)


def intake_submit(settings: Settings, draft_id: str, title: str,
                  who: Principal) -> tuple[JobView | None, IngestSummary | None]:
    """The draft's pages, in their order, as one document of its dossier (``accept_upload``); the
    draft leaves the operator's open drafts once the job holds them, and is discarded once the
    pages this process is still reading ahead from its files are read (the job reuses them)."""
    from . import early, intake

    store = open_store(settings)
    with _draft_held(settings, draft_id, DRAFT_CONFIRM_WAIT, "Bản nháp vẫn đang nhận trang từ một lần tải lên chưa "
                                                             "xong; chờ các trang hiện đủ rồi xác nhận lại; chưa số hóa gì"):
        draft = intake.get(store, draft_id, who.name)
        with tempfile.TemporaryDirectory(dir=_work(settings)) as folder:
            paths = intake.materialise(store, draft_id, Path(folder), who.name)
            accepted = accept_upload(settings, visible(who, draft.dossier_code), title,
                                     [(p.name, p.read_bytes()) for p in paths], who,
                                     handed_in=intake.handed_in(store, draft_id, who.name),
                                     source=_intake_source(draft_id))
        intake.close(store, draft_id, who.name)
    early.when_read(early.draft_tasks(draft, settings.ocr), partial(intake.discard, store, draft_id, who.name))
    return accepted


def _upload_file_name(name: str | None, n: int) -> str:
    """The name an uploaded file is given in the work folder: the user's, composed (a Mac sends
    Vietnamese letters decomposed), with anything but letters, digits, dots and dashes made "_",
    and its end kept within 120 bytes, the extension included (a file system takes 255; a long
    Vietnamese name cut to 100 letters was still 300 bytes, and the upload failed)."""
    import unicodedata

    safe = re.sub(r"[^\w.\-]+", "_", unicodedata.normalize("NFC", Path((name or "").replace("\\", "/")).name))[-120:]
    while len(safe.encode("utf-8")) > 120:  # a letter takes 1 to 4 bytes
        safe = safe[1:]
    return safe if safe.strip(".") else f"page-{n}"  # "", "." and ".." name no file of their own


def _work(settings: Settings) -> Path:
    work = settings.home / "work" / "uploads"
    work.mkdir(parents=True, exist_ok=True)
    return work


def run_job(settings: Settings, job_id: str) -> None:
    """Convert a recorded job: hand it to the workers when a broker is configured, else here."""
    if settings.broker.url:
        _send(settings, job_id)
        return
    from . import early

    try:
        prepared, pending = jobs.pending_work(database(settings), job_id)
        # pages this process is reading ahead (an intake draft's): wait for them rather than read twice;
        # when all of them were read, their results are fetched here, without starting page processes
        read = early.wait([prepared.tasks[n - 1] for n in pending], timeout=settings.broker.page_time_limit)
        executor = page_executor(settings, jobs=1 if read else None)
        # loaded beside the pages' work; one that fails to load fails the job (jobs.run_locally, finish)
        with closing(SignerLoading(partial(signer_for, settings))) as signer:
            jobs.run_locally(ingest_context(settings, signer=signer, executor=executor), job_id)
    finally:
        jobs.not_here(job_id)  # when it was queued here (queue_here)


def jobs_for(settings: Settings, who: Principal, limit: int = 50) -> tuple[JobView, ...]:
    """The latest jobs a user may see, oldest first: an operator its own uploads, others every job
    in scope."""
    return job_page(settings, who, limit)[0]


def job_page(settings: Settings, who: Principal, limit: int = 50, offset: int = 0, code: str | None = None,
             state: str | None = None) -> tuple[tuple[JobView, ...], bool]:
    """``jobs_for``'s jobs, the ``offset`` newest left out, of one dossier or in one state when
    given, oldest first; and whether older ones follow."""
    if code is not None:
        code = visible(who, code)
    rows = job_table.find(database(settings), newest=limit + 1, skip=offset, agencies=tuple(who.agencies),
                          submitted_by=who.name if who.role == "operator" else None, dossier=code,
                          states=(state,) if state else None)
    return tuple(JobView.from_row(r) for r in rows[-limit:]), len(rows) > limit


def job_for(settings: Settings, job_id: str, who: Principal) -> JobView:
    """One job, if the user may see it (NotFound otherwise: its existence is not revealed)."""
    job = job_table.get(database(settings), job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
    if job is None or not who.sees(job["dossier"]) or (who.role == "operator" and job.get("submitted_by") != who.name):
        raise NotFound(f"Không có lượt xử lý {job_id}", "no such job")
    return JobView.from_row(job)


def job_review(settings: Settings, job: JobView) -> tuple[dict, ...]:
    """The lines of a done job's document (a job ``job_for`` gave the user) that a person should read
    against the page (``ocr.review``): the operator who scanned the papers sees them at once."""
    if job.state != "done" or not job.doc_id:
        return ()
    manifest = load_manifest(open_store(settings), job.dossier) or {"documents": []}
    found = [d for d in manifest["documents"] if d["docId"] == job.doc_id]
    return DocumentView.from_manifest(found[0]).review if found else ()


def reopen_job(settings: Settings, job_id: str, who: Principal) -> JobView:
    """A failed (or stalled) job the user may see, queued again for ``run_job``; its finished pages are kept."""
    job_for(settings, job_id, who)
    jobs.reopen(open_store(settings), database(settings), job_id, time_limits=_time_limits(settings),
                workers=bool(settings.broker.url))
    return jobs.view(database(settings), job_id)


def queue_here(settings: Settings, job_id: str) -> None:
    """A job this server will convert itself, after the answer (no broker): recorded as waiting
    in this process, so that another one takes it up if this one stops first (``resume_left_behind``)."""
    jobs.queue_here(database(settings), job_id)


def resume_left_behind(settings: Settings) -> tuple[str, ...]:
    """Without a broker, the jobs a server stopped before it converted them (an upgrade, a crash)
    queued again for this server to run (``queue_here`` then ``run_job``); their ids. Nobody else
    would take them up, and a retry was refused until they had not moved for a page's time limit.
    One another server process queued again first is left to it."""
    if settings.broker.url:
        return ()
    db, resumed = database(settings), []
    for job_id in jobs.left_behind(db):
        try:
            jobs.reopen(open_store(settings), db, job_id, time_limits=_time_limits(settings), workers=False)
        except SohoaError:  # taken up by another process since, or done; or its dossier disposed of
            continue
        jobs.queue_here(db, job_id)
        audit.record(db, "job", "resume", job=job_id)
        resumed.append(job_id)
    return tuple(resumed)


def discard_job(settings: Settings, job_id: str, reason: str, who: Principal) -> JobView:
    """A failed job the user may see, given up for good (``pipeline.jobs.discard``)."""
    job_for(settings, job_id, who)
    return jobs.discard(database(settings), job_id, reason)


def document_pdf_record(settings: Settings, code: str, doc_id: str) -> dict:
    """The manifest's record of a document's signed PDF ({key, sha256, size}, and the document's
    ``title``), its bytes not read: what a conditional or HEAD request is answered from."""
    code = dossier.validate_key(code)
    manifest = require_manifest(open_store(settings), code)
    found = [d for d in manifest["documents"] if d["docId"] == doc_id]
    if not found:
        raise NotFound(f"Hồ sơ {code} không có tài liệu {doc_id}", "no such document")
    return {**found[0]["pdf"], "title": found[0].get("title") or ""}


def document_pdf(settings: Settings, code: str, doc_id: str, *, pdf: dict | None = None,
                 part: str | None = None) -> tuple[bytes, str]:
    """(the signed PDF, its SHA-256), fixity checked, recorded as a download (``part``: the byte
    range sent, when only a part is). ``pdf``: its record (``document_pdf_record``) when the
    caller has it: the bytes it names are read, never another version's."""
    pdf = pdf or document_pdf_record(settings, code, doc_id)
    try:
        data = open_store(settings).get(pdf["key"], sha256=pdf["sha256"])
    except ChangedInStore as changed:  # said as an officer can act on it (it was the store's key: the counter review)
        audit.record(database(settings), "download", "failure", dossier=dossier.validate_key(code), docId=doc_id,
                     reason="integrity")
        raise IntegrityError(f"Tệp PDF đã ký của tài liệu {doc_id} (hồ sơ {code}) không còn khớp mã băm SHA-256 ghi "
                             "khi lưu: bản trong kho đã bị hỏng hoặc bị sửa, nên không được tải về. Hãy báo quản trị "
                             f"hệ thống khôi phục từ bản sao (sohoa restore {code})",
                             f"{pdf['key']}: {changed.detail or changed}") from None
    audit.record(database(settings), "download", dossier=dossier.validate_key(code), docId=doc_id,
                 **({"range": part} if part else {}))
    return data, pdf["sha256"]


def dossier_access(settings: Settings, code: str, limit: int = 10_000) -> tuple[dict, ...]:
    """Who did what with a dossier, oldest first (a data subject's "who read my dossier")."""
    code = dossier.validate_key(code)
    db = database(settings)
    events = audit.tail(db, limit, dossier=code)
    audit.record(db, "access-log-read", dossier=code, events=len(events))
    return tuple(events)


def set_checklist(settings: Settings, code: str, procedure: str, required: Sequence[str], by: str) -> dict:
    """A dossier's procedure code and the papers it requires (names, in the one-stop system's words)."""
    code = dossier.validate_key(code)
    procedure = dossier.visible_text(procedure)
    papers = [shown for p in required if (shown := dossier.visible_text(p))]
    if not procedure or len(procedure) > 100:
        raise UsageError("Thiếu mã thủ tục (tối đa 100 ký tự)", "procedure code: 1-100 characters")
    if not papers or len(papers) > 100 or any(len(p) > 300 for p in papers):
        raise UsageError("Danh sách giấy tờ phải có từ 1 đến 100 mục, mỗi mục tối đa 300 ký tự",
                         "required papers: 1-100 items of at most 300 characters")
    db = database(settings)
    accounts.set_checklist(db, code, procedure, [{"name": p} for p in dict.fromkeys(papers)],
                           audit.now_vn().isoformat(), by)
    audit.record(db, "checklist", dossier=code, procedure=procedure, required=len(papers))
    return checklist(settings, code)


def checklist(settings: Settings, code: str) -> dict:
    """The dossier's required papers and which are still missing: a paper counts as present when a
    document of the dossier has its name as title (compared without case or diacritics)."""
    code = dossier.validate_key(code)
    found = accounts.get_checklist(database(settings), code)
    if found is None:
        return {"dossierCode": code, "procedure": None, "required": [], "missing": []}
    manifest = load_manifest(open_store(settings), code) or {"documents": []}

    def key(title: str) -> str:
        return " ".join(search_index.fold(title or "").lower().split())

    titles = {key(d["title"]) for d in manifest["documents"]}
    # a paper confirmed a moment ago is not missing: the counter offered it again as the next one
    # to scan, and it was digitised twice under one name (the counter review)
    converting = {key(j["title"]) for j in job_table.find(database(settings), dossier=code, states=job_table.ACTIVE)}
    required = [p["name"] for p in found["required"]]
    return {"dossierCode": code, "procedure": found["procedure"], "required": required,
            "missing": [p for p in required if key(p) not in titles | converting],
            "converting": [p for p in required if key(p) in converting - titles],
            "updated": found["updated"], "updatedBy": found["updated_by"]}


def warm_up(settings: Settings) -> None:
    """Load before a server process's first request what serving uploads loads on first use:
    the image decoders a file is checked with, the hash an unknown name's login is checked
    against and, with a broker, the task client and its connection. Otherwise a burst of uploads
    (or of logins) just after a start waits behind it, once per process. A broker that does not
    answer is not an error here (``readiness`` reports it)."""
    from PIL import Image

    Image.init()
    access.dummy_hash()
    if settings.broker.url:
        from . import tasks

        try:
            with tasks.configured(settings).producer_or_acquire() as producer:
                producer.connection.ensure_connection(max_retries=1, interval_start=0)
        except Exception as exc:
            log.warning("broker not reached while warming up (%s)", type(exc).__name__)


def stop_reading_ahead() -> None:
    """A server shutting down stops its own page readers (``pipeline.early``)."""
    from . import early

    early.stop()


def database_ready(settings: Settings) -> None:
    """Refuse to start a server on a database whose schema is not this version's."""
    database(settings)


def readiness(settings: Settings) -> dict[str, str | None]:
    """Each dependency's problem, or None when it answers: the store, the database, the broker;
    without a broker, the agency's signing key as this process last found it (``runtime.key_trouble``:
    every upload's job fails at signing while it will not open)."""
    problems: dict[str, str | None] = {}

    def check(name: str, probe) -> None:
        try:
            probe()
            problems[name] = None
        except Exception as exc:
            problems[name] = describe(exc).message_vi

    def store() -> None:
        opened = open_store(settings)
        opened.exists("system/readiness-probe")
        locks = getattr(opened, "object_lock_enabled", None)
        if locks is not None and not locks():  # every document would be refused (the ops review: ready until then)
            raise RetentionError(f"Bucket '{opened.bucket}' không bật khóa đối tượng (object lock): không lưu được "
                                 "tài liệu nào; dùng bucket có object lock (sohoa tự tạo khi bucket chưa tồn tại)",
                                 "bucket without object lock")

    check("store", store)
    check("database", lambda: db.check_schema(database(settings)))
    if settings.broker.url:
        from kombu import Connection

        def broker() -> None:
            try:
                with Connection(settings.broker.url, connect_timeout=3) as conn:
                    conn.ensure_connection(max_retries=1)
            except Exception as exc:
                raise _broker_unreachable(settings, exc) from None

        check("broker", broker)
    else:
        # a level the settings cannot sign at fails every job, after the citizen has left: said
        # before any job, as a key that will not open is said once a job found it (web review)
        trouble = _signing_settings_problem(settings)
        if trouble is None and not settings.signing.development:
            trouble = key_trouble(settings)
        if trouble is not None or not settings.signing.development:
            problems["signer"] = trouble
    return problems


def _signing_settings_problem(settings: Settings) -> str | None:
    """What in the signing settings alone keeps every job from being signed, or None
    (``signing.keys.signing_plan``)."""
    from .signing.keys import signing_plan

    try:
        signing_plan(settings.signing, settings.home)
    except (SigningError, ConfigError) as exc:
        return exc.message_vi
    return None


def digitisation_report(settings: Settings, quarter: str, agencies: Sequence[str] = ()):
    """The quarterly digitisation report of ``agencies`` (none: every agency), see ``pipeline.report``."""
    found = report.digitisation_report(database(settings), open_store(settings), quarter, agencies)
    audit.record(database(settings), "report", quarter=quarter, agencies=list(agencies))
    return found


def report_file(found, kind: str) -> bytes:
    """The report as a CSV ("csv", UTF-8 with BOM) or Excel ("xlsx") file, or its chart ("svg")."""
    return {"csv": report.to_csv, "xlsx": report.to_xlsx, "svg": lambda r: report.chart_svg(r).encode("utf-8")}[kind](found)


def notices(settings: Settings, *, state: str | None = None, dossier: str | None = None, deliver: bool = False,
            requeue: bool = False, limit: int = 50) -> dict:
    """The notices to the one-stop system (``pipeline.notices``): with ``requeue`` the failed ones
    are sent again from now, with ``deliver`` the due ones are sent here and now; then the newest."""
    from . import notices as outbox

    db = database(settings)
    requeued = outbox.requeue(db) if requeue else 0
    round_ = None
    if deliver:
        if not settings.webhook.url:
            raise ConfigError("Chưa cấu hình SOHOA_WEBHOOK_URL: không có nơi nhận thông báo", "no SOHOA_WEBHOOK_URL")
        round_ = outbox.deliver_due(db, settings.webhook.url, settings.webhook.secret)
    return {"counts": outbox.counts(db), "requeued": requeued,
            "delivered": None if round_ is None else {"sent": round_.sent, "failed": round_.failed,
                                                      "retried": round_.retried},
            "notices": outbox.list_notices(db, dossier=dossier, state=state, limit=limit)}


def periodic_tasks(settings: Settings) -> list[tuple[str, object]]:
    """What a long-running server does on its own, each a callable taking a stop event: anchor
    the access log's head every SOHOA_AUDIT_ANCHOR_INTERVAL seconds; deliver due notices."""
    from . import anchors, notices

    tasks = [("audit-anchor", lambda stop: anchors.run_periodically(
        lambda: (database(settings), open_store(settings)), settings.audit.anchor_interval, stop,
        tsa_url=settings.signing.tsa_url, retention_days=settings.audit.retention_days))]
    if settings.webhook.url:
        tasks.append(("notices", lambda stop: notices.run_periodically(
            lambda: database(settings), settings.webhook.url, settings.webhook.secret, 10, stop)))
    return tasks
