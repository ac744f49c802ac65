"""Bulk conversion of a paper backlog: every document a source folder or CSV names
(``pipeline.bulk_plan``), each one job, and a report accounting for every input.

Without a broker the documents run in this process: their pages flow through one pool of
this machine's cores a few documents ahead, while each document is finished in turn; with SOHOA_BROKER_URL every document is submitted first and the workers
share the pages, while this process follows the jobs in the database. Resumable: a document
the dossier already holds (the same files, by content hash) is reported as ``skipped`` and
not processed; one still being converted by an earlier run is followed, not sent again. One
bad document never stops the batch: it is reported with its error.
"""
from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager, suppress
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from . import audit, jobs, receipts
from .bulk_plan import BulkDocument, BulkPlan, BulkProblem, plan as plan_source
from .bulk_report import BulkOutcome, check_writable, totals, write_report
from .errors import BrokerUnavailable, Conflict, describe, shown_text
from .ingest import IngestContext
from .models import IngestRequest, IngestSummary
from .repository import held_or_refused

log = logging.getLogger(__name__)

# (documents settled, documents in all, pages done, pages known so far)
BulkProgress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class BulkResult:
    source: str
    batch: str
    outcomes: tuple[BulkOutcome, ...]
    report: tuple[str, ...] = ()  # the CSV and JSON written

    @property
    def totals(self) -> dict:
        return totals(self.outcomes)

    def to_json(self) -> dict:
        return {"source": self.source, "batch": self.batch, "totals": self.totals,
                "report": list(self.report), "items": [o.to_json() for o in self.outcomes]}


def run(source: Path, ctx: IngestContext, *, send: Callable[[str, bool], None] | None = None,
        send_finish: Callable[[str], None] | None = None, report: Path | None = None,
        progress: BulkProgress | None = None, poll: float = 1.0, work: Path | None = None) -> BulkResult:
    """Convert every document of ``source``; ``send(job, resumed)`` hands a job's pages to the workers
    (one an earlier run made, ``resumed``, only when it has stalled) and
    ``send_finish(job)`` its finishing task (None: everything runs here). A ``source`` that is one
    PDF or TIFF is a continuous scan of many dossiers, split at their receipts' QR codes (its
    pages are written under ``work`` first, see ``plan_continuous_scan``).

    With workers, a dossier's documents are finished one after the other in the source's
    order: a document's finishing task is sent once its pages are settled and the documents
    before it in the same dossier are settled too."""
    if report is not None:
        check_writable(Path(report))
    started = audit.now_vn()
    batch = uuid.uuid4().hex
    source = Path(source)
    if source.is_file() and source.suffix.lower() in CONTINUOUS_SCANS:
        planned = plan_continuous_scan(source, work or source.parent, ctx.ocr.max_pixels)
    else:
        planned = plan_source(source)
    outcomes: dict[int, BulkOutcome] = {}
    order = [*planned.documents, *planned.problems]
    for n, problem in enumerate(planned.problems, start=len(planned.documents)):
        outcomes[n] = BulkOutcome.invalid(problem)
    with _claimed(ctx.db, planned.documents):  # one run of a source at a time, on every machine
        audit.record(ctx.db, "bulk", "started", source=str(source), batch=batch, documents=len(planned.documents),
                     invalid=len(planned.problems))
        show = progress or (lambda *a: None)
        try:
            if send is None:
                _run_here(ctx, planned.documents, outcomes, len(order), batch, show)
            else:
                _run_on_workers(ctx, planned.documents, outcomes, len(order), batch, show, send, send_finish, poll)
        except (KeyboardInterrupt, *jobs.TRANSIENT) as stop:
            # stopped by the operator, or by an outage longer than the run waits: what was settled is
            # reported, the rest says how to go on (an outage stopped a run with no report: the ops review)
            why = ("lượt chạy bị dừng" if isinstance(stop, KeyboardInterrupt) else
                   "kho lưu trữ hoặc cơ sở dữ liệu không phản hồi quá lâu")
            for n, doc in enumerate(planned.documents):
                outcomes.setdefault(n, BulkOutcome(doc.source, doc.dossier, doc.title, "stopped",
                                                   error=f"Chưa xong: {why}; chạy lại 'sohoa bulk' trên cùng "
                                                         "nguồn để tiếp tục (trang đã xong không phải làm lại)"))
            stopped = tuple(outcomes[n] for n in range(len(order)))
            try:
                audit.record(ctx.db, "bulk", "stopped", source=str(source), batch=batch,
                             **{k: v for k, v in totals(stopped).items() if isinstance(v, int)})
            except jobs.TRANSIENT:  # the database is what went away: the report still says it all
                log.warning("bulk: the stop could not be logged: the database is unreachable")
            if report is not None:
                write_report(Path(report), stopped, {"source": shown_text(str(source)), "started": started,
                                                     "finished": audit.now_vn(), "batch": batch, "stopped": True})
            raise

        ordered = tuple(outcomes[n] for n in range(len(order)))
        result = BulkResult(shown_text(str(source)), batch, ordered)
        counted = result.totals
        audit.record(ctx.db, "bulk", "finished", source=str(source), batch=batch,
                     **{k: v for k, v in counted.items() if isinstance(v, int)})
        if report is not None:
            written = write_report(Path(report), ordered, {"source": shown_text(str(source)), "started": started,
                                                            "finished": audit.now_vn(), "batch": batch})
            result = replace(result, report=tuple(str(p) for p in written))
        return result


CLAIM_WAIT = 2.0  # seconds a run waits for another run of the same source to let go of it


@contextmanager
def _claimed(db, documents: list[BulkDocument]):
    """Hold the claim on a source's documents (the database's lock, on every machine) for the run.
    Two runs of one source both converted and reported the same documents: pages read twice,
    every document counted done by both, and one run's Ctrl-C failing the other's (the bulk
    review). A source is its documents' dossiers, paths within it and titles, so the same backlog
    mounted elsewhere on another machine is the same source."""
    if not documents:
        yield
        return
    listed = "\n".join(sorted(f"{d.dossier}\t{d.source}\t{d.title}" for d in documents))
    claim = "bulk:" + hashlib.sha256(listed.encode("utf-8")).hexdigest()[:40]
    with held_or_refused(db, claim, CLAIM_WAIT, f"Nguồn này ({len(documents)} tài liệu) đang được một lượt 'sohoa "
                         "bulk' khác số hóa, trên máy này hoặc máy khác; chờ lượt đó xong, hoặc dừng nó, rồi chạy lại "
                         "trên cùng nguồn: tài liệu đã xong sẽ được bỏ qua"):
        yield


CONTINUOUS_SCANS = (".pdf", ".tif", ".tiff")
RECEIPT_TITLE = "Phiếu tiếp nhận và hẹn trả kết quả"


def plan_continuous_scan(scan: Path, work: Path, max_pixels: int) -> BulkPlan:
    """One continuous scan of many dossiers as documents: a page whose receipt QR code holds a
    valid dossier code starts a dossier and is its first document (the receipt page), the pages
    after it up to the next receipt are its second document. Pages whose dossier is not known (before
    the first receipt, after an unreadable or invalid receipt) are reported, never merged.

    The pages are decoded one at a time, twice (reading the codes, then writing each dossier's
    pages losslessly as PNG under ``work/<scan's SHA-256>/``, the same bytes on every run so a
    second run finds them converted)."""
    import hashlib

    from .inputs import read_source

    source = read_source(str(scan), max_pixels)
    split = receipts.split_scan(receipts.scan_pages([scan], max_pixels))
    folder = Path(work) / hashlib.sha256(source.data).hexdigest()[:32]
    where: dict[int, tuple[int, int]] = {}  # page index -> (group, part: 0 receipt, 1 the rest)
    for g, group in enumerate(split.groups):
        for p in group.pages:
            where[p.index] = (g, 0 if p.index == group.first.index else 1)
    files: dict[tuple[int, int], list[str]] = {}
    for index, (_, number, image) in enumerate(receipts.scan_pages([scan], max_pixels)):
        if index in where:
            target = folder / f"{where[index][0]:04d}-{where[index][1]}-{number:05d}.png"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".part")
                image.save(partial, "PNG", dpi=image.info.get("dpi") or (300, 300))
                partial.rename(target)
            files.setdefault(where[index], []).append(str(target))
    documents = []
    for g, group in enumerate(split.groups):
        for part in (0, 1):
            pages = [p for p in group.pages if where[p.index] == (g, part)]
            if pages:
                title = RECEIPT_TITLE if part == 0 else f"Giấy tờ của hồ sơ (quét liên tục, {_pages_of(pages, scan)})"
                documents.append(BulkDocument(group.code, title, tuple(files[(g, part)]),
                                              f"{scan.name}: {_pages_of(pages, scan)}"))
    problems = tuple(BulkProblem(f"{scan.name}: {_pages_of(list(h.pages), scan)}",
                                 next((p.message_vi for p in split.problems if p.blocking and p.index == h.pages[0].index),
                                      "không biết các trang này thuộc hồ sơ nào"))
                     for h in split.held)
    return BulkPlan(tuple(documents), problems)


def _pages_of(pages, scan: Path) -> str:
    numbers = [p.page for p in pages]
    return f"trang {numbers[0]}" if len(numbers) == 1 else f"trang {numbers[0]}-{numbers[-1]}"


def _run_on_workers(ctx: IngestContext, documents, outcomes: dict, inputs: int, batch: str, show, send,
                    send_finish, poll: float) -> None:
    """Every document submitted to the workers, then followed in the shared database (one query
    per look); a document's finishing task is sent once its pages are settled and no earlier
    document of its dossier is still open, so a dossier's documents are committed in order."""
    pages_before, following = 0, {}  # pages of documents settled; job -> (position, document)
    broken: dict[str, int] = {}  # dossier -> position of its first failed document: those after it are held
    unreachable = None  # the broker, once it could not be reached: nothing more is submitted
    for n, doc in enumerate(documents):
        show(len(outcomes), inputs, pages_before, pages_before)
        if unreachable is not None:
            outcomes[n] = BulkOutcome(doc.source, doc.dossier, doc.title, "stopped",
                                      error=f"Chưa gửi: {unreachable}; chạy lại 'sohoa bulk' trên cùng nguồn khi hàng "
                                            "đợi hoạt động trở lại")
            continue
        if _behind(broken, doc, n):
            outcomes[n] = _held(doc)
            continue
        try:
            submitted = _through_outage(lambda: jobs.submit(ctx, _request(doc), batch=batch, source=doc.source,
                                                            kind="bulk"))
            if submitted.duplicate is not None:
                outcomes[n] = _outcome(doc, "skipped", submitted.duplicate)
            else:
                # a job this run made before an outage cut its answer short is found again, "resumed":
                # its pages were never sent (the review: the run then waited for it for good)
                resumed = submitted.resumed and (submitted.view is None or submitted.view.batch != batch)
                send(submitted.job, resumed)
                following[submitted.job] = (n, doc)
                continue
        except jobs.TRANSIENT:  # an outage longer than the run waits: every later document would wait alike
            raise
        except Exception as exc:  # this document failed; the batch goes on
            outcomes[n] = _failed(doc, exc)
            broken.setdefault(doc.dossier, n)
            if isinstance(exc, BrokerUnavailable):  # every later one would be stored, then fail alike
                unreachable = exc.message_vi.split(";")[0]
        pages_before += outcomes[n].pages

    finishing: set[str] = set()
    settled = {"pages": pages_before}  # pages of the documents no longer followed
    while following:  # the store or the database away a while: the workers wait it out, so does this
        _through_outage(lambda: _look(ctx, following, outcomes, broken, finishing, settled, inputs, show,
                                      send_finish))
        if following:
            time.sleep(poll)


def _through_outage(call):
    """``call()``, again every 2 seconds while the store or the database cannot be reached, up to
    OUTAGE_WAIT seconds (a 30-second gateway outage stopped a bulk run: the ops review)."""
    since = time.monotonic()
    while True:
        try:
            return call()
        except jobs.TRANSIENT as exc:
            if time.monotonic() - since > jobs.OUTAGE_WAIT:
                raise
            log.warning("bulk: %s unreachable, waiting: %s", type(exc).__name__, exc)
            time.sleep(2)


def _look(ctx: IngestContext, following: dict, outcomes: dict, broken: dict, finishing: set, settled: dict,
          inputs: int, show, send_finish) -> None:
    """One look at the jobs followed: settled ones leave ``following`` with their outcome; a document
    whose pages are all settled, first open in its dossier, gets its finishing task."""
    done_pages = total_pages = settled["pages"]  # a document settled stays counted (the pages shown went down)
    first_open: dict[str, int] = {}  # dossier -> position of its first document not yet settled
    for n, doc in following.values():
        first_open[doc.dossier] = min(n, first_open.get(doc.dossier, n))
    for job in jobs.views(ctx.db, list(following)):
        n, doc = following[job.id]
        done_pages += job.pages_done + job.pages_failed
        total_pages += job.pages_total
        if _behind(broken, doc, n) and job.id not in finishing and job.state in ("queued", "running"):
            # (one finishing already, resumed from an earlier run, ends done or failed as it will)
            outcomes[n] = _held(doc, job.id)
            # ended as a run without workers ends it: left open it said "đang xử lý" for good, a
            # retry was refused, and the next run finished it with its old errors (the chaos review)
            jobs.fail(ctx.db, job.id, Conflict(outcomes[n].error, "held behind a failed document of its dossier"))
            settled["pages"] += job.pages_total
            del following[job.id]
            continue
        if (job.state in ("queued", "running", "finishing") and job.id not in finishing
                and first_open[doc.dossier] == n and job.pages_done + job.pages_failed == job.pages_total):
            try:
                send_finish(job.id)
                finishing.add(job.id)
            except BrokerUnavailable as exc:  # sent at a later look, once the broker is back
                log.warning("bulk: finishing task of job %s not sent: %s", job.id, exc.detail)
        if job.state == "done":
            outcomes[n] = _outcome(doc, "done", jobs.summary_of_done(ctx, job.id), job.id)
        elif job.state in ("failed", "discarded"):
            outcomes[n] = BulkOutcome(doc.source, doc.dossier, doc.title, "failed", pages=job.pages_total,
                                      error=(job.error or {}).get("message"), job=job.id)
            broken[doc.dossier] = min(n, broken.get(doc.dossier, n))
        else:
            continue
        settled["pages"] += job.pages_total
        del following[job.id]
    show(len(outcomes), inputs, done_pages, total_pages)


def _run_here(ctx: IngestContext, documents, outcomes: dict, inputs: int, batch: str, show) -> None:
    """The documents in this process: their pages through one pool of this machine's cores, a few
    documents ahead, while each document is finished here in the source's order."""
    counted = {"done": 0, "total": 0}
    window: deque = deque()  # (position, document, job, [(page number, future)])
    lookahead = 2 * getattr(ctx.executor, "jobs", 1)

    def page_done(_future) -> None:
        counted["done"] += 1
        show(len(outcomes), inputs, counted["done"], counted["total"])

    broken: dict[str, int] = {}  # dossier -> position of its first failed document: those after it are held

    def complete(n: int, doc: BulkDocument, job_id: str, futures) -> None:
        try:
            for number, future in futures:
                jobs.settle(ctx.db, job_id, number, future.result())
            if _behind(broken, doc, n):
                outcomes[n] = _held(doc, job_id)
                jobs.fail(ctx.db, job_id, Conflict(outcomes[n].error, "held behind a failed document of its dossier"))
            else:
                outcomes[n] = _outcome(doc, "done", jobs.finish(ctx, job_id), job_id)
        except Exception as exc:
            outcomes[n] = _failed(doc, exc, job_id)
            broken[doc.dossier] = min(n, broken.get(doc.dossier, n))
        except BaseException as exc:  # Ctrl-C: a document committed just before it is done
            jobs.record_stop(ctx, job_id, exc)
            with suppress(Exception):
                if jobs.view(ctx.db, job_id).state == "done":
                    outcomes[n] = _outcome(doc, "done", jobs.summary_of_done(ctx, job_id), job_id)
            raise
        show(len(outcomes), inputs, counted["done"], counted["total"])

    reading = []  # the job whose pages are being handed to the pool, not yet in the window
    try:
        with ctx.executor.stream() as submit:
            for n, doc in enumerate(documents):
                if _behind(broken, doc, n):
                    outcomes[n] = _held(doc)
                    continue
                try:
                    submitted = jobs.submit(ctx, _request(doc), batch=batch, source=doc.source)
                    reading[:] = [submitted.job] if submitted.job else []
                    if submitted.duplicate is not None:
                        outcomes[n] = _outcome(doc, "skipped", submitted.duplicate)
                        counted["done"] += len(submitted.duplicate.pages)
                        counted["total"] += len(submitted.duplicate.pages)
                    else:
                        prepared, pending = jobs.work_here(ctx, submitted.job)
                        tasks = prepared.tasks
                        counted["total"] += len(tasks)
                        counted["done"] += len(tasks) - len(pending)
                        futures = [(number, submit(tasks[number - 1])) for number in pending]
                        for _, future in futures:
                            future.add_done_callback(page_done)
                        window.append((n, doc, submitted.job, futures))
                    reading.clear()
                except Exception as exc:  # this document failed; the batch goes on
                    outcomes[n] = _failed(doc, exc)
                    broken.setdefault(doc.dossier, n)
                while len(window) > lookahead:
                    complete(*window.popleft())
            while window:
                complete(*window.popleft())
    except BaseException as exc:  # recorded on the documents still being read, as a run here does
        for job_id in [*reading, *(job_id for _, _, job_id, _ in window)]:
            jobs.record_stop(ctx, job_id, exc)
        raise


def _behind(broken: dict[str, int], doc: BulkDocument, n: int) -> bool:
    """The document comes after a failed document of its dossier (the ones before it, still being
    read when that one was refused, are stored: they keep the folder's order)."""
    return broken.get(doc.dossier, n) < n


def _held(doc: BulkDocument, job: str | None = None) -> BulkOutcome:
    """A document not committed because an earlier document of its dossier failed in this run:
    committing it would put the dossier's documents out of the folder's order. Its finished
    pages stay cached, so running the batch again after the fault is cheap."""
    return BulkOutcome(doc.source, doc.dossier, doc.title, "held", job=job,
                       error=f"Chưa lưu: một tài liệu trước đó của hồ sơ {doc.dossier} bị lỗi, tài liệu này "
                             "được giữ lại để giữ đúng thứ tự; hãy khắc phục tài liệu lỗi (hoặc bỏ nó khỏi nguồn "
                             "nếu không thể số hóa) rồi chạy lại 'sohoa bulk'; trang đã xong không phải làm lại")


def _failed(doc: BulkDocument, exc: Exception, job: str | None = None) -> BulkOutcome:
    report = describe(exc)
    error = report.message_vi if report.expected else f"{report.message_vi} ({report.detail})"
    return BulkOutcome(doc.source, doc.dossier, doc.title, "failed", error=error, job=job)


def _request(doc: BulkDocument) -> IngestRequest:
    return IngestRequest(doc.dossier, tuple(doc.files), doc.title, maintenance=doc.maintenance,
                         paper_file_code=doc.paper_file_code, paper_dates=doc.paper_dates)


def _outcome(doc: BulkDocument, status: str, summary: IngestSummary, job: str | None = None) -> BulkOutcome:
    return BulkOutcome(doc.source, doc.dossier, doc.title, status, doc_id=summary.doc_id, pages=len(summary.pages),
                       job=job)
