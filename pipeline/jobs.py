"""Jobs: a document converted page by page, by this process or by workers on many machines.

    submit       check the request, store the originals, record a job with one row per page
    run_page     any worker: one page, its result left in the object store, its row settled
    finish       once every page is settled: the document built, signed, committed; job done

The job's state lives in the shared database and its originals and pages in the object
store, never on one machine's disk, so any step may run on any machine and be run again:
a page done twice counts once, and finishing twice stores one document (the dossier's
manifest knows the files by their hash). ``run_locally`` runs the same steps in this process
(the embedded default, no broker); ``pipeline.tasks`` runs them as Celery tasks.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from storage import jobs as job_table
from storage.base import ObjectStore
import sqlalchemy as sa

from storage.errors import DatabaseError, LockTimeout, StorageUnavailable
from storage.locks import gone, holder_name

from . import audit, ingest, manifest as mf, notices
from .errors import Conflict, ExitCode, NotFound, describe
from .ingest import IngestContext, PreparedDocument
from .models import IngestRequest, IngestSummary, JobView, PageResult
from .pages import PageCache, cache_key, code_version, disk_full, load_engine, over_time, run_page as process_page
from .repository import dossier_lock, load_manifest, refuse_if_disposed, require_manifest
from .signing.keys import SignerLoading, loaded

log = logging.getLogger(__name__)
# an outage of the store or the database, or a dossier held too long: try the same step again later
TRANSIENT = (StorageUnavailable, DatabaseError, LockTimeout, sa.exc.OperationalError, sa.exc.InterfaceError)
OUTAGE_WAIT = 300  # seconds a door following jobs waits out an outage of the database or the store


@dataclass(frozen=True)
class Submitted:
    """What submitting a document gave: a job to follow, or the document the dossier already has."""

    job: str | None
    duplicate: IngestSummary | None = None
    resumed: bool = False  # the same files were already being converted: that job is followed
    view: JobView | None = None  # the job as it was when submitted


def submit(ctx: IngestContext, request: IngestRequest, *, batch: str | None = None,
           source: str | None = None, kind: str = "ingest", submitted_by: str | None = None) -> Submitted:
    """Check the request and store its originals; a job for its pages (none when the dossier
    already holds these files, the running job when they are being converted). ``kind`` "bulk":
    the caller sends the finishing task itself, so that a dossier's documents are committed in
    the source's order, whichever worker finishes its pages first."""
    prepared = ingest.prepare(request, ctx)
    if isinstance(prepared, IngestSummary):
        return Submitted(None, prepared)
    row, created = job_table.create(ctx.db, new_job_id(), kind=kind, dossier=prepared.dossier,
                                    title=prepared.title, request=prepared.to_json(), input_sha256=prepared.digest,
                                    pages=len(prepared.tasks), now=_now(), batch=batch, source=source,
                                    submitted_by=submitted_by)
    if not created:
        return Submitted(row["id"], resumed=True, view=JobView.from_row(row))
    audit.record(ctx.db, "job", "queued", dossier=prepared.dossier, job=row["id"], pages=len(prepared.tasks))
    return Submitted(row["id"], view=JobView.from_row(row))


def _job(db, job_id: str) -> dict:
    """The job's row with its pages; NotFound when there is no such job."""
    job = job_table.get(db, job_id)
    if job is None:
        raise NotFound(f"Không có lượt xử lý {job_id}", "no such job")
    return job


def view(db, job_id: str) -> JobView:
    return JobView.from_row(_job(db, job_id))


def views(db, job_ids: list[str]) -> list[JobView]:
    """Several jobs at once, in one query per few hundred; NotFound when one does not exist."""
    found = [JobView.from_row(row) for row in job_table.find(db, ids=job_ids)]
    if missing := set(job_ids) - {job.id for job in found}:
        raise NotFound(f"Không có lượt xử lý {', '.join(sorted(missing))}", "no such job")
    return found


def pending_work(db, job_id: str) -> tuple[PreparedDocument, list[int]]:
    """The job's document as submitted (its originals and page tasks) and the pages still to do:
    those not done, and those done by another version of the page stage or its recognisers (their
    cache key is not this installation's; see ``finish``)."""
    prepared, numbers, _ = _pending(_job(db, job_id))
    return prepared, numbers


def work_here(ctx: IngestContext, job_id: str) -> tuple[PreparedDocument, list[int]]:
    """``pending_work``, for this process to do now: the results of pages another version made,
    which it lists again although done, leave the page cache first (nothing refers to them once
    the pages are read again, and they hold a citizen's papers)."""
    prepared, numbers, outdated = _pending(_job(ctx.db, job_id))
    PageCache(ctx.store).discard(outdated)
    return prepared, numbers


def _pending(job: dict) -> tuple[PreparedDocument, list[int], list[str]]:
    """(document, pages still to do, cache keys of the outdated results among them)."""
    prepared = PreparedDocument.from_json(job["request"])
    outdated = {p["number"]: p["result_key"] for p, task in zip(job["pages"], prepared.tasks)
                if p["state"] == "done" and p["result_key"] and p["result_key"] != cache_key(task)}
    numbers = [p["number"] for p in job["pages"] if p["state"] != "done" or p["number"] in outdated]
    return prepared, numbers, list(outdated.values())


SOFT_LIMIT_MARGIN = 3.0  # seconds between a page's own deadline and its worker's soft time limit


def page_limit_within(soft_limit: float) -> float:
    """The seconds a page read by a worker may take: SOFT_LIMIT_MARGIN less than the worker's soft
    time limit, which counts from the task's start, a moment earlier. What the page started,
    tesseract or pdftoppm, is killed at its own deadline; the interruption left it running for
    minutes (the bad-input review)."""
    return max(1.0, soft_limit - SOFT_LIMIT_MARGIN)


def run_page(store: ObjectStore, db, job_id: str, number: int, *, worker: str | None = None,
             time_limit: float | None = None) -> tuple[int, int, int]:
    """Do one page of a job (from the shared page results when any worker did it before);
    returns the job's (pages done, pages failed, pages in all). A store outage raises, so the
    task is retried; a bad page settles as failed, and one still being read ``SOFT_LIMIT_MARGIN``
    seconds before ``time_limit`` (the worker's soft time limit) is stopped and settles as over
    its time."""
    started = time.monotonic()
    job = _job(db, job_id)
    if job["state"] in job_table.FINAL:
        return job["pages_done"], job["pages_failed"], job["pages_total"]
    task = PreparedDocument.from_json(job["request"]).tasks[number - 1]
    own = page_limit_within(time_limit) if time_limit is not None else None
    result = process_page(task, PageCache(store), own)
    if own is not None and not result.ok and (result.error == over_time(task, own).error
                                              or time.monotonic() - started >= own):
        result = over_time(task, time_limit)  # said with the worker's limit, as when it interrupts
    return settle(db, job_id, number, result, worker)


def worker_fault(task, exc: BaseException) -> PageResult:
    """A page a worker could not do for a reason of its own (not the page's, not an outage): the
    error's first line only (a database error's next lines are its statement and parameters)."""
    said = (str(exc).strip().splitlines() or [""])[0][:200]
    return PageResult(task.file, task.page, error=f"Lỗi xử lý {task.file}, trang {task.page}: lỗi của worker "
                                                  f"({type(exc).__name__}: {said}); chạy lại lượt xử lý")


def page_task(db, job_id: str, number: int):
    """The job's page ``number`` as submitted (its file and page in that file)."""
    return PreparedDocument.from_json(_job(db, job_id)["request"]).tasks[number - 1]


REUSED = "(reused)"  # the page's worker when its result was already in the store


def settle(db, job_id: str, number: int, result: PageResult, worker: str | None = None) -> tuple[int, int, int]:
    return job_table.page_settled(db, job_id, number, state="done" if result.ok else "failed", now=_now(),
                                  result_key=result.image_key, error=result.error,
                                  worker=REUSED if result.cached else worker)


def finish(ctx: IngestContext, job_id: str) -> IngestSummary:
    """Commit the job's document once every page is settled; the job records the outcome. A job
    already done returns its document again (a redelivered task changes nothing)."""
    job = _job(ctx.db, job_id)
    prepared = PreparedDocument.from_json(job["request"])
    if job["state"] == "done":
        return _summary_of(ctx, prepared.dossier, job["doc_id"])
    if not job_table.set_state(ctx.db, job_id, "finishing", now=_now(), only_from=job_table.ACTIVE):
        # failed (a finishing task sent again after the job failed: only a retry runs it again),
        # given up, or finished by another finishing task since it was read
        job = _job(ctx.db, job_id)
        if job["state"] == "done":
            return _summary_of(ctx, prepared.dossier, job["doc_id"])
        raise _not_runnable(job)
    cache = PageCache(ctx.store)
    found = [(row, task, cache.result(row["result_key"]) if row["state"] == "done" and row["result_key"] else None)
             for row, task in zip(job["pages"], prepared.tasks)]
    gone = [row["number"] for row, _, stored in found if row["state"] == "done" and stored is None]
    other_version = [row["number"] for row, _, stored in found if stored is not None and stored.code != code_version()]
    if (gone or other_version) and (stored_already := _stored_document(ctx, prepared)) is not None:
        # another finishing task of this job stored the document and cleared its pages from the
        # cache, and has not recorded the job done yet (a page task redelivered after an outage
        # settles its page again and sends one more finishing task)
        cache.discard(row["result_key"] for row, _, stored in found if stored is not None)
        return _record_done(ctx, job, stored_already)
    results = []
    for row, task, stored in found:
        if row["number"] in other_version:
            stored = _read_again(ctx, job, row, task, cache, stored.code)
        elif stored is not None and row["worker"] == REUSED:
            stored = PageResult.from_json({**stored.to_json(), "cached": True})
        elif row["number"] in gone:
            # cleared from the cache: the same file's page in another document, finished first (the
            # ops review: one scan in 16 dossiers of a bulk run failed them "không còn", to retry)
            stored = _read_again(ctx, job, row, task, cache, None, gone=True)
        results.append(stored or PageResult(task.file, task.page, error=row["error"] or "trang chưa xử lý xong"))
    try:
        summary = ingest.finish(prepared, results, ctx)
    except TRANSIENT:
        raise
    except Exception as exc:
        if (outage := disk_full(exc)) is not None:
            # this machine's disk, full while the PDF was written or signed: an outage waited out,
            # as in the page stage; it was "Lỗi không mong đợi", for good (the bulk review)
            raise outage from None
        if not describe(exc).expected:  # the traceback, which no one recorded (the bulk review)
            log.error("finishing job %s failed unexpectedly", job_id, exc_info=exc)
        notice = notices.notify_failed(ctx.db, ctx.webhook, job, exc)  # in the outbox before the job fails
        fail(ctx.db, job_id, exc)
        notices.deliver_soon(ctx.db, ctx.webhook, notice)
        raise
    return _record_done(ctx, job, summary)


REREAD = "(read again when finishing)"  # the page's worker when the finishing task read it again


def _read_again(ctx: IngestContext, job: dict, row: dict, task, cache: PageCache, read_by: str | None,
                gone: bool = False) -> PageResult:
    """The page read again by this process, whose result was made by another version of the page
    stage (a worker not yet upgraded, or one upgraded before this one): its image and words may
    not mean what this version's PDF makes of them (a deskewed page drawn unturned), so it is not
    built from, and leaves the cache; or (``gone``) whose result is no longer in the cache. It is
    read within the page time limit. Every worker should run one version; this keeps a document
    right when they do not (``pending_work`` spares the embedded default this: there such pages go
    through the page pool with the others)."""
    if gone:
        log.warning("job %s: the result of page %d of %s is no longer in the cache: reading it again",
                    job["id"], task.page, task.file)
    else:
        log.warning("job %s: page %d of %s was read by page stage %s, this worker runs %s: reading it again",
                    job["id"], task.page, task.file, read_by or "(older)", code_version())
    audit.record(ctx.db, "page", "reread", dossier=job["dossier"], job=job["id"], file=task.file, page=task.page,
                 readBy=read_by or None, version=code_version(), **({"gone": True} if gone else {}))
    result = process_page(task, cache, getattr(ctx.executor, "time_limit", None))
    result = replace(result, cached=False)  # read for this document, even when another finishing task was first
    settle(ctx.db, job["id"], row["number"], result, REREAD)
    if not gone:  # a result read again because it was gone is the same file's, maybe others' too: kept
        cache.discard([row["result_key"]])
    return result


def _record_done(ctx: IngestContext, job: dict, summary: IngestSummary) -> IngestSummary:
    notice = notices.notify_stored(ctx.db, ctx.webhook, job, summary)  # in the outbox before the job is done
    job_table.set_state(ctx.db, job["id"], "done", now=_now(), doc_id=summary.doc_id, error=None)
    notices.deliver_soon(ctx.db, ctx.webhook, notice)
    _settle_earlier_failures(ctx.db, job, summary)
    return summary


def _settle_earlier_failures(db, job: dict, summary: IngestSummary) -> None:
    """The dossier's failed jobs of these very files (a bulk run stopped, then run again, which
    made new jobs) given up, saying which job stored them: ``sohoa status`` offered their retry."""
    if not job.get("input_sha256"):
        return
    said = {"code": "superseded", "exit": 0, "message": f"Các tệp này đã được số hóa ở lượt xử lý {job['id']} "
            f"(tài liệu {summary.doc_id}); lượt này không cần chạy lại", "detail": f"done by job {job['id']}"}
    files = _file_hashes(job)
    for earlier in job_table.find(db, dossier=job["dossier"], states=("failed",)):
        if earlier["id"] != job["id"] and (earlier["input_sha256"] == job["input_sha256"]
                                           or _file_hashes(earlier) == files):  # or in another order (review)
            _give_up(db, earlier, said["detail"], error=said)


def _file_hashes(job: dict) -> list[str]:
    """The SHA-256s of a job's files, sorted: the same files in any order."""
    return sorted(o.get("sha256") or "" for o in (job.get("request") or {}).get("originals") or ())


def _stored_document(ctx: IngestContext, prepared: PreparedDocument) -> IngestSummary | None:
    """The document of these very files when the dossier holds it already, else None."""
    manifest = load_manifest(ctx.store, prepared.dossier)
    document = manifest and mf.find_document(manifest, prepared.digest)
    return ingest.summary(manifest, document, duplicate=False) if document else None


def fail_with_notice(ctx: IngestContext, job_id: str, exc: BaseException) -> None:
    """``fail``, with the one-stop system's notice of it queued first, as ``finish`` does."""
    notice = notices.notify_failed(ctx.db, ctx.webhook, _job(ctx.db, job_id), exc)
    fail(ctx.db, job_id, exc)
    notices.deliver_soon(ctx.db, ctx.webhook, notice)


def fail(db, job_id: str, exc: BaseException) -> None:
    """Record why the job failed (what ``sohoa status`` shows and ``sohoa retry`` can undo); a job
    done or given up meanwhile stays so."""
    report = describe(exc)
    job_table.set_state(db, job_id, "failed", now=_now(), only_from=RUNNABLE, error=json.dumps(
        {"code": report.code, "exit": int(report.exit_code), "message": report.message_vi, "detail": report.detail,
         "server": report.exit_code in SERVER_FAULTS}, ensure_ascii=False))


# failures of the deployment, not of the citizen's papers: the operator who scanned them can do
# nothing but tell an administrator, and press "Chạy lại" once it is mended (the counter review: an
# operator read "đặt SOHOA_TSA_URL" with no word of whose it was)
SERVER_FAULTS = frozenset({ExitCode.PDFA, ExitCode.SIGNING, ExitCode.STORAGE, ExitCode.RETENTION, ExitCode.CONFIG,
                           ExitCode.DATABASE, ExitCode.BROKER, ExitCode.INTERNAL})


def run_locally(ctx: IngestContext, job_id: str) -> IngestSummary:
    """Every pending page through this machine's executor, then finish: the embedded default.
    Whatever stops it is recorded on the job when the database can still record it: an outage
    (store, database, disk full), the operator's Ctrl-C, a broken page pool. No worker will take
    the job up again; ``sohoa retry`` will, at once, from its last page."""
    _RUN_HERE.add(job_id)
    try:
        return _run_here(ctx, job_id)
    except BaseException as exc:
        record_stop(ctx, job_id, exc)
        raise
    finally:
        _RUN_HERE.discard(job_id)


_RUN_HERE: set[str] = set()  # the jobs this process is running now, or will (``run_locally``, ``queue_here``)


def _run_here(ctx: IngestContext, job_id: str) -> IngestSummary:
    prepared, numbers = work_here(ctx, job_id)
    if len(numbers) > 1 and isinstance(ctx.signer, SignerLoading):
        # the pages' processes are forked next, when no thread may be importing: the recognisers'
        # models, which they share, are loaded here while the signer's thread still imports
        load_engine(ctx.ocr)
        try:
            ctx = replace(ctx, signer=loaded(ctx.signer))
        except Exception as exc:  # a key that will not open: before any page is read
            fail_with_notice(ctx, job_id, exc)
            raise
    here = process_name()
    # each page recorded as it finishes, by this process: another process (the job's page,
    # ``sohoa status``) sees the job running and its pages done
    ctx.executor.run([prepared.tasks[n - 1] for n in numbers], ctx.progress,
                     settled=lambda index, result: settle(ctx.db, job_id, numbers[index], result, here))
    return finish(ctx, job_id)


def record_stop(ctx: IngestContext, job_id: str, exc: BaseException) -> None:
    """What stopped a job run in this process (``run_locally``, a bulk run here) recorded on it:
    when still active (``finish`` records what it refuses), failed with ``exc``'s reason, or done
    when its document was committed just before it stopped."""
    try:
        job = _job(ctx.db, job_id)
        if job["state"] not in job_table.ACTIVE:
            return
        if job["state"] == "finishing" and not isinstance(exc, TRANSIENT):
            stored = _stored_document(ctx, PreparedDocument.from_json(job["request"]))
            if stored is not None:
                _record_done(ctx, job, stored)
                return
        fail(ctx.db, job_id, exc)
    except Exception as error:  # the database itself is what failed: the job stays as it was, retry still works
        log.warning("job %s: its stop (%s) could not be recorded: %s", job_id, type(exc).__name__, error)


RUNNABLE = job_table.ACTIVE + ("failed",)  # what a retry may queue again, and a failure be recorded on
UNFINISHED = RUNNABLE + (job_table.DISCARDED,)  # jobs whose originals no manifest names


def held_originals(db, code: str) -> dict[str, str]:
    """The originals stored for the dossier's jobs not done (queued, running, failed, discarded):
    key -> job id. No manifest names them until their document is committed, yet they are kept,
    for the work, for the retry, or (a discarded job's) as what the citizen handed in, until the
    dossier is disposed of: a fixity check must not call them extra, and must miss them if gone."""
    return {o["key"]: job_id for job_id, request in job_table.requests_of(db, code, UNFINISHED)
            for o in (*(request.get("originals") or ()), *(request.get("handedIn") or ()))}


def reopen(store: ObjectStore, db, job_id: str, *, time_limits: tuple[float, float], workers: bool) -> list[int]:
    """A failed (or stalled) job queued again; returns the pages still to do (finished pages are
    kept); one not failed only once it has stalled (``stalled``). Under the dossier's lock, which
    a disposal holds: a job is either queued again before a disposal looks for running jobs, or
    given up by it."""
    job = _job(db, job_id)
    with dossier_lock(db, job["dossier"]):
        refuse_if_disposed(store, job["dossier"])
        job = _job(db, job_id)
        if job["state"] == "done":
            raise Conflict(f"Lượt xử lý {job_id} đã xong (tài liệu {job['doc_id']}); không cần chạy lại",
                           "job already done")
        _refuse_while_moving(job, time_limits, workers)
        _refuse_out_of_order(db, job)
        # a bulk run's document retried alone (the first of its dossier not done, as the guard
        # above makes sure) is finished by its own pages, as any other: no bulk run sends it
        pages = job_table.reopen(db, job_id, now=_now(), only_from=RUNNABLE,
                                 kind="ingest" if job["kind"] == "bulk" else None)
        if pages is None:  # done or given up since it was read
            raise _not_runnable(_job(db, job_id))
    audit.record(db, "job", "retry", dossier=job["dossier"], job=job_id, pages=len(pages))
    return pages


def queue_here(db, job_id: str) -> None:
    """The job waits in this process's own queue (``run_locally`` takes it, or ``not_here`` lets
    it go): were this process stopped before it ran the job, nobody would take it up but
    ``left_behind``, and ``sohoa retry`` may at once."""
    _RUN_HERE.add(job_id)
    job_table.hand_to(db, job_id, holder_name(), now=_now())


def not_here(job_id: str) -> None:
    """The job queued here is no longer this process's to run (it ran, or could not start)."""
    _RUN_HERE.discard(job_id)


def left_behind(db) -> list[str]:
    """The jobs queued or running without workers whose process is known to be gone (a server
    stopped for an upgrade, or killed, while uploads waited in its queue), oldest first. Not a job
    merely quiet for long (``stalled``'s time rule): one waiting its turn in a live process (a
    server's queue, a bulk run's next documents) is that process's to run (review)."""
    found = []
    for listed in job_table.find(db, states=job_table.ACTIVE):
        job = _job(db, listed["id"])
        if job["id"] not in _RUN_HERE and (holder := _holder(job)) is not None and _gone(holder):
            found.append(job["id"])
    return found


def _holder(job: dict) -> str | None:
    """The process last known to hold the job: the one that last read or queued one of its pages.
    A page settled from a result already stored names none (skipped: the job's finishing, a row of
    its own, is done by the process that read its pages); a page made runnable again since (a
    retry) or never taken names none either, and then no process is known (review)."""
    for _, worker in sorted(((p["updated"], p["worker"]) for p in job["pages"] if p["updated"]),
                            key=lambda move: move[0], reverse=True):
        if worker != REUSED:
            return worker
    return None


def stalled(job: dict, time_limits: tuple[float, float], workers: bool) -> bool:
    """Whether an active job (a row with its pages) has stopped moving: neither it nor any of its
    pages has moved for longer than a page, or its finishing, may take (``time_limits``), or,
    without ``workers``, its pages were last read by a process of this machine that is gone
    (killed, or its database lost while it ran: it could not record the job failed). Workers'
    tasks are redelivered by the broker when their process dies: there only the time tells."""
    moved, by = _last_moved(job)
    if not workers and job["id"] not in _RUN_HERE and by and _gone(by):
        return True
    return audit.now_vn() >= moved + timedelta(seconds=quiet_for(job["state"], time_limits))


def quiet_for(state: str, time_limits: tuple[float, float]) -> float:
    """How long a job in ``state`` must not move to be stalled: the longest a page may take, or
    its finishing while it finishes."""
    return time_limits[1] if state == "finishing" else time_limits[0]


def _last_moved(job: dict) -> tuple[datetime, str | None]:
    """(when, by which process if known) the job or one of its pages last moved: of the same
    second, a page before the job row (its first page moves both), and a page a process read
    before one none has read yet."""
    moved, _, by = max(((datetime.fromisoformat(t), is_page, by) for t, is_page, by in (
        (job["updated"], False, None), *((p["updated"], True, p["worker"]) for p in job["pages"])) if t),
        key=lambda movement: (*movement[:2], movement[2] is not None))
    return moved, by


def _refuse_while_moving(job: dict, time_limits: tuple[float, float], workers: bool) -> None:
    """A job still moving is not queued again: its pages would be sent twice (found when a retry
    was posted twice for a job already queued)."""
    if job["state"] not in job_table.ACTIVE or stalled(job, time_limits, workers):
        return
    moved, _ = _last_moved(job)
    from_ = moved + timedelta(seconds=quiet_for(job["state"], time_limits))
    doing = "đang chờ xử lý" if job["state"] == "queued" else "đang xử lý"
    raise Conflict(f"Lượt xử lý {job['id']} {doing} ({job['pages_done']}/{job['pages_total']} trang xong, thay đổi lần "
                   f"cuối lúc {moved:%H:%M:%S}); chỉ chạy lại lượt xử lý bị lỗi, hoặc lượt không tiến triển gì "
                   f"đến {from_:%H:%M %d/%m/%Y}", f"job is {job['state']} and moved at {moved.isoformat()}")


def new_job_id() -> str:
    """32 hex digits in the order the jobs were made (a UUIDv7, RFC 9562, its 12 bits after the
    millisecond taken from the clock too): the jobs a bulk run makes in one second, which their
    creation time cannot tell apart, are told apart by their ids."""
    ns = time.time_ns()
    ms, below = divmod(ns, 1_000_000)
    value = (ms << 80) | (0x7 << 76) | (below * 4096 // 1_000_000 << 64) | (0b10 << 62) | secrets.randbits(62)
    return f"{value:032x}"


def _made_after(job: dict, other: dict) -> bool:
    """Whether ``job`` is known to have been made after ``other`` (jobs of older versions, with
    random ids, made in the same second are not)."""
    made, other_made = datetime.fromisoformat(job["created"]), datetime.fromisoformat(other["created"])
    if made != other_made:
        return made > other_made
    ordered = all(len(j["id"]) == 32 and j["id"][12] == "7" and j["id"][16] in "89ab" for j in (job, other))
    return ordered and job["id"] > other["id"]


def process_name() -> str:
    """This process, as a page row's ``worker`` names it (``storage.locks.holder_name``)."""
    return holder_name()


def _gone(name: str) -> bool:
    """Whether the process ``process_name`` gave is known to be no longer running the job: gone
    from this machine, or this very process (which is not running it, ``_RUN_HERE``)."""
    return name == holder_name() or gone(name)


def _refuse_out_of_order(db, job: dict) -> None:
    """A bulk run commits a dossier's documents in its source's order; a job of it run alone while
    another document of the same dossier and run is not finished could be committed before an
    earlier one (found when a stalled bulk run's second document was retried before its first).
    The first of them unfinished may run: the others wait for it."""
    if not job.get("batch"):  # only a bulk run gives its jobs a batch (run here or by workers)
        return
    others = [j for j in job_table.find(db, dossier=job["dossier"], batch=job["batch"], states=RUNNABLE)
              if j["id"] != job["id"] and not _made_after(j, job)]  # the ones after it wait for it
    if others:
        raise Conflict(f"Lượt xử lý {job['id']} thuộc một đợt số hóa hàng loạt có {len(others)} tài liệu của "
                       f"hồ sơ {job['dossier']} đứng trước nó chưa xong; hãy chạy lại 'sohoa bulk' trên cùng nguồn "
                       "để các tài liệu được lưu đúng thứ tự (trang đã xong không phải làm lại), hoặc bỏ tài liệu không thể số hóa "
                       "bằng 'sohoa discard'",
                       "documents before it in this dossier and bulk run are unfinished: run the bulk again")


def discard(db, job_id: str, reason: str) -> JobView:
    """Give up a failed job: it is never run again and leaves the jobs waiting for a retry. Its
    originals stay with the dossier (what the citizen handed in is kept, and fixity-checked,
    until the dossier is disposed of); the access log records who gave it up and why."""
    reason = audit.stated_reason(reason)
    job = _job(db, job_id)
    if not _give_up(db, job, reason):
        job = _job(db, job_id)
        if job["state"] == job_table.DISCARDED:
            raise discarded(job_id, job["dossier"])
        if job["state"] == "done":
            raise Conflict(f"Lượt xử lý {job_id} đã xong (tài liệu {job['doc_id']}); không có gì để bỏ",
                           "job already done")
        raise Conflict(f"Lượt xử lý {job_id} {'đang chờ xử lý' if job['state'] == 'queued' else 'đang xử lý'}; "
                       f"chỉ bỏ được lượt xử lý bị lỗi", f"job is {job['state']}")
    return view(db, job_id)


def discard_for_disposal(db, code: str, approval: dict) -> list[str]:
    """The dossier's failed jobs given up as its disposal is carried out (no retry may bring a
    document back into a dossier being disposed of); returns their ids."""
    reason = f"dossier disposed of: approved by {approval['by']} ({approval['reason']})"
    return [job["id"] for job in job_table.find(db, dossier=code, states=("failed",)) if _give_up(db, job, reason)]


def _give_up(db, job: dict, reason: str, error: dict | None = None) -> bool:
    """The failed job discarded, recorded in the access log with the reason and its originals'
    SHA-256 (``error``: what the job says of it instead of its failure); False when it was not
    failed (any more)."""
    said = {"error": json.dumps(error, ensure_ascii=False)} if error else {}
    if not job_table.set_state(db, job["id"], job_table.DISCARDED, now=_now(), only_from=("failed",), **said):
        return False
    request = job["request"]
    audit.record(db, "job", "discard", dossier=job["dossier"], job=job["id"], reason=reason,
                 originals=[o["sha256"] for o in request.get("originals") or ()],
                 **({"handedIn": [o["sha256"] for o in request["handedIn"]]} if request.get("handedIn") else {}))
    return True


def _not_runnable(job: dict) -> Conflict:
    """The error of a step asked of a job that no worker may take up (done, failed, given up)."""
    if job["state"] == "done":
        return Conflict(f"Lượt xử lý {job['id']} đã xong (tài liệu {job['doc_id']})", "job already done")
    if job["state"] == "failed":
        return Conflict(f"Lượt xử lý {job['id']} đã lỗi; chạy lại bằng: sohoa retry {job['id']}", "job failed")
    return discarded(job["id"], job["dossier"])


def discarded(job_id: str, code: str) -> Conflict:
    """The error of a step asked of a job given up."""
    return Conflict(f"Lượt xử lý {job_id} của hồ sơ {code} đã bị bỏ; không chạy lại được "
                    f"(gửi lại giấy tờ thành lượt xử lý mới nếu cần)", "job discarded")


def summary_of_done(ctx: IngestContext, job_id: str) -> IngestSummary:
    job = _job(ctx.db, job_id)
    return _summary_of(ctx, job["dossier"], job["doc_id"])


def _summary_of(ctx: IngestContext, code: str, doc_id: str) -> IngestSummary:
    manifest = require_manifest(ctx.store, code)
    document = next(d for d in manifest["documents"] if d["docId"] == doc_id)
    return ingest.summary(manifest, document, duplicate=False)


def _now() -> str:
    return audit.now_vn().isoformat()
