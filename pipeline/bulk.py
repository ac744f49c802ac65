"""Bulk conversion of a paper backlog: every document a source folder or CSV names
(``pipeline.bulk_plan``), each one job, and a report accounting for every input.

Without a broker the documents run one after another in this process, each over this
machine's cores; with SOHOA_BROKER_URL every document is submitted first and the workers
share the pages, while this process follows the jobs in the database. Resumable: a document
the dossier already holds (the same files, by content hash) is reported as ``skipped`` and
not processed; one still being converted by an earlier run is followed, not sent again. One
bad document never stops the batch: it is reported with its error.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from . import audit, jobs
from .bulk_plan import BulkDocument, plan as plan_source
from .bulk_report import BulkOutcome, totals, write_report
from .errors import describe
from .ingest import IngestContext
from .models import IngestRequest, IngestSummary

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


def run(source: Path, ctx: IngestContext, *, send: Callable[[str], None] | None = None,
        send_finish: Callable[[str], None] | None = None, report: Path | None = None,
        progress: BulkProgress | None = None, poll: float = 1.0) -> BulkResult:
    """Convert every document of ``source``; ``send(job)`` hands a job's pages to the workers and
    ``send_finish(job)`` its finishing task (None: everything runs here).

    With workers, a dossier's documents are finished one after the other in the source's
    order: a document's finishing task is sent once its pages are settled and the documents
    before it in the same dossier are settled too."""
    started = audit.now_vn()
    batch = uuid.uuid4().hex
    planned = plan_source(Path(source))
    outcomes: dict[int, BulkOutcome] = {}
    order = [*planned.documents, *planned.problems]
    for n, problem in enumerate(planned.problems, start=len(planned.documents)):
        outcomes[n] = BulkOutcome.invalid(problem)
    audit.record(ctx.db, "bulk", "started", source=str(source), batch=batch, documents=len(planned.documents),
                 invalid=len(planned.problems))
    pages_before, following = 0, {}  # pages of documents settled; job -> (position, document)
    show = progress or (lambda *a: None)

    for n, doc in enumerate(planned.documents):
        show(len(outcomes), len(order), pages_before, pages_before)
        local = replace(ctx, progress=(lambda done, total, base=pages_before:
                                       show(len(outcomes), len(order), base + done, base + total)))
        try:
            submitted = jobs.submit(local, _request(doc), batch=batch, source=doc.source,
                                    kind="ingest" if send is None else "bulk")
            if submitted.duplicate is not None:
                outcomes[n] = _outcome(doc, "skipped", submitted.duplicate)
            elif send is None:
                outcomes[n] = _outcome(doc, "done", jobs.run_locally(local, submitted.job), submitted.job)
            else:
                if not submitted.resumed:
                    send(submitted.job)
                following[submitted.job] = (n, doc)
                continue
        except Exception as exc:  # this document failed; the batch goes on
            report_ = describe(exc)
            error = report_.message_vi if report_.expected else f"{report_.message_vi} ({report_.detail})"
            outcomes[n] = BulkOutcome(doc.source, doc.dossier, doc.title, "failed", error=error)
        pages_before += outcomes[n].pages

    finishing: set[str] = set()
    while following:  # the workers' jobs, followed in the shared database
        done_pages = pages_before
        total_pages = pages_before
        for job_id, (n, doc) in sorted(following.items(), key=lambda item: item[1][0]):
            job = jobs.view(ctx.db, job_id)
            done_pages += job.pages_done + job.pages_failed
            total_pages += job.pages_total
            earlier_pending = any(m < n and d.dossier == doc.dossier for m, d in following.values())
            if (job.state in ("queued", "running", "finishing") and job_id not in finishing and not earlier_pending
                    and job.pages_done + job.pages_failed == job.pages_total):
                send_finish(job_id)
                finishing.add(job_id)
            if job.state == "done":
                outcomes[n] = _outcome(doc, "done", jobs.summary_of_done(ctx, job_id), job_id)
            elif job.state == "failed":
                outcomes[n] = BulkOutcome(doc.source, doc.dossier, doc.title, "failed", pages=job.pages_total,
                                          error=(job.error or {}).get("message"), job=job_id)
            else:
                continue
            del following[job_id]
        show(len(outcomes), len(order), done_pages, total_pages)
        if following:
            time.sleep(poll)

    ordered = tuple(outcomes[n] for n in range(len(order)))
    result = BulkResult(str(source), batch, ordered)
    counted = result.totals
    audit.record(ctx.db, "bulk", "finished", source=str(source), batch=batch,
                 **{k: v for k, v in counted.items() if isinstance(v, int)})
    if report is not None:
        written = write_report(Path(report), ordered, {"source": str(source), "started": started,
                                                        "finished": audit.now_vn(), "batch": batch})
        result = replace(result, report=tuple(str(p) for p in written))
    return result


def _request(doc: BulkDocument) -> IngestRequest:
    return IngestRequest(doc.dossier, tuple(doc.files), doc.title)


def _outcome(doc: BulkDocument, status: str, summary: IngestSummary, job: str | None = None) -> BulkOutcome:
    return BulkOutcome(doc.source, doc.dossier, doc.title, status, doc_id=summary.doc_id, pages=len(summary.pages),
                       job=job)
