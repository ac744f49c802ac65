"""The Celery application: page tasks fan out over every worker, one finishing task per document.

    sohoa.page(job, n)    queue "pages"             straighten, read, leave the page in the store
    sohoa.read_ahead(t)   queue "pages"             an intake page read before its document is
                                                    confirmed, into the page cache (pipeline.early)
    sohoa.finish(job)     queue "finish" or         build, sign, store, commit, index
                          "sign.<agency>"
    sohoa.fixity()        queue "finish"            one slice of rolling fixity (primary, replica),
                                                    sent by Celery beat every SOHOA_FIXITY_INTERVAL s:
                                                    ``sohoa verify --all --fixity-only`` spread so that
                                                    every object is re-read within SOHOA_FIXITY_DAYS
                                                    (changed, missing and extra objects alike)

The last page to settle sends its document's finishing task. A document whose dossier code
belongs to one of SOHOA_SIGNING_AGENCIES is finished on that agency's own queue,
``sign.<agency>`` (lower case), which only the host holding the agency's token consumes; the
others on "finish". Tasks carry JSON only (a job id and a page number); they are acknowledged
after they ran (a worker killed mid-task leaves its task to another worker) and may run
twice, which changes nothing (see ``pipeline.jobs``). Transient failures of the store or the
database are retried with backoff; a bad page or a refused document is recorded in its job.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import partial

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from . import dossier, fixity as rolling_fixity, jobs, replication, runtime
from .config import Settings
from .executor import limit_native_threads
from .ingest import IngestContext
from .pages import run_page_json
from .signing.devpki import expiring

PAGES, FINISH = "pages", "finish"
TRANSIENT = (*jobs.TRANSIENT, ConnectionError, TimeoutError)
RETRY = dict(autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=30)

app = Celery("sohoa", set_as_current=False)
_state: dict = {}  # this process's settings and, once opened, its store and signer


def _soft(time_limit: int) -> int:
    """A task's soft time limit: 90 % of its hard one, so that it can still record why it stopped."""
    return int(time_limit * .9)


def configure(settings: Settings) -> Celery:
    """Point the application at the settings' broker (both the doors that send and the workers)."""
    _state.clear()
    _state["settings"] = settings
    broker = settings.broker
    if app.conf.broker_url != broker.url:  # the pools made for another broker would still be used
        app._pool = None
        app.amqp._producer_pool = None
    app.conf.update(
        broker_url=broker.url, broker_connection_retry_on_startup=True,
        # Redis: tasks of a worker that died are put back once their visibility timeout has
        # passed, by a sweep every few seconds (kombu's default sweeps only every ~100 s)
        broker_transport_options={"visibility_timeout": broker.visibility_timeout,
                                  "unacked_restore_interval": max(1, min(10, broker.visibility_timeout // 3)),
                                  "unacked_restore_throttle": 1},
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=PAGES, worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        task_annotations={
            "sohoa.page": {"time_limit": broker.page_time_limit, "soft_time_limit": _soft(broker.page_time_limit)},
            "sohoa.read_ahead": {"time_limit": broker.page_time_limit,
                                 "soft_time_limit": _soft(broker.page_time_limit)},
            "sohoa.finish": {"time_limit": broker.finish_time_limit,
                             "soft_time_limit": _soft(broker.finish_time_limit)},
            "sohoa.fixity": {"time_limit": settings.fixity.interval,
                             "soft_time_limit": _soft(settings.fixity.interval)}},
        beat_schedule=beat_schedule(settings),
    )
    return app


def configured(settings: Settings) -> Celery:
    """The application pointed at these settings' broker, configured once for them: a door
    calls this before every task it sends."""
    return app if _state.get("settings") is settings else configure(settings)


def beat_schedule(settings: Settings) -> dict:
    """What Celery beat sends: one fixity slice every SOHOA_FIXITY_INTERVAL seconds (hourly by
    default), on the "finish" queue every general worker takes; a slice not started within one
    interval expires (the next one does its work)."""
    interval = settings.fixity.interval
    return {"sohoa-fixity": {"task": "sohoa.fixity", "schedule": float(interval),
                             "options": {"queue": FINISH, "expires": interval}}}


def finish_queue(settings: Settings, code: str) -> str:
    """The queue a document of dossier ``code`` is finished (signed) on."""
    agency = dossier.parse_key(code)["agency"]
    for own in sorted(settings.broker.signing_agencies, key=len, reverse=True):
        if agency == own or agency.startswith(own + "."):
            return f"sign.{own.lower()}"
    return FINISH


def send_pages(job_id: str, numbers: list[int]) -> None:
    for number in numbers:
        page.apply_async((job_id, number), queue=PAGES)


def send_read_ahead(task: dict) -> None:
    read_ahead.apply_async((task,), queue=PAGES)


def send_finish(settings: Settings, job_id: str, code: str) -> None:
    finish.apply_async((job_id,), queue=finish_queue(settings, code))


def _settings() -> Settings:
    if "settings" not in _state:
        from .config import load  # a worker started by ``celery -A pipeline.tasks`` reads its own environment

        configure(load())
    return _state["settings"]


def _store():
    if "store" not in _state:
        _state["store"] = runtime.open_store(_settings())
    return _state["store"]


def _replica():
    if "replica" not in _state:
        _state["replica"] = replication.open_replica(_settings())
    return _state["replica"]


def _context() -> IngestContext:
    """The finishing context, its signer opened once per worker process (a token login)."""
    settings = _settings()
    held = _state.get("signer")
    if held is not None and held.source == "development" and expiring(held.certificate):
        # a worker outlives the development key's five years: the deployment's renewed key is taken
        _state.pop("signer").close()
    if "signer" not in _state:
        _state["signer"] = runtime.signer_for(settings)
    return runtime.ingest_context(settings, store=_store(), signer=_state["signer"])


@app.task(name="sohoa.page", bind=True, acks_late=True, **RETRY)
def page(self, job_id: str, number: int) -> None:
    limit_native_threads()
    settings = _settings()
    db = runtime.database(settings)
    # the page stage reports whatever interrupted it as its page's error: past the soft limit, it was time
    soft_limit = _soft(settings.broker.page_time_limit)
    try:
        done, failed, total = jobs.run_page(_store(), db, job_id, number, worker=jobs.process_name(),
                                            time_limit=soft_limit)
    except SoftTimeLimitExceeded:
        done, failed, total = jobs.settle(db, job_id, number, jobs.over_time(jobs.page_task(db, job_id, number),
                                                                             soft_limit))
    except TRANSIENT:
        raise
    except Exception as exc:  # the worker's fault, not the page's: the page fails with it, so that its job
        # ends failed with the reason and can be retried (it stayed "running", no error, until a retry)
        logging.getLogger(__name__).exception("job %s, page %s", job_id, number)
        done, failed, total = jobs.settle(db, job_id, number, jobs.worker_fault(jobs.page_task(db, job_id, number),
                                                                                exc))
    if done + failed == total:
        job = jobs.view(db, job_id)
        if job.kind != "bulk":  # a bulk run finishes its documents itself, in order
            send_finish(settings, job_id, job.dossier)


@app.task(name="sohoa.read_ahead", bind=True, acks_late=True, **RETRY)
def read_ahead(self, task: dict) -> None:
    """An intake page read before its document is confirmed (``pipeline.early``): the result
    only fills the page cache; a failure is left for the document's own job to report."""
    limit_native_threads()
    soft_limit = _soft(_settings().broker.page_time_limit)
    try:  # its own deadline first, as a job's page: nothing it started is left running
        run_page_json(task, _store(), jobs.page_limit_within(soft_limit))
    except SoftTimeLimitExceeded:
        return


@app.task(name="sohoa.finish", bind=True, acks_late=True, **RETRY)
def finish(self, job_id: str) -> None:
    try:
        ctx = _context()
    except TRANSIENT:
        raise
    except Exception as exc:  # the agency's key will not open: recorded on the job, which a retry runs again
        jobs.fail_with_notice(runtime.ingest_context(_settings(), store=_store()), job_id, exc)
        return
    try:
        jobs.finish(ctx, job_id)
    except TRANSIENT:
        raise
    except Exception:
        return  # recorded in the job (``jobs.finish``); retrying would fail the same way


@app.task(name="sohoa.fixity", bind=True, acks_late=True, **RETRY)
def fixity(self) -> None:
    """One slice of rolling fixity on the primary and the replica, recorded as ``sohoa fixity``
    records it (``pipeline.fixity.run_recorded``). It stops reading at 80 % of the interval,
    saving how far it got."""
    settings = _settings()
    db = runtime.database(settings)
    rolling_fixity.run_recorded(_store(), _replica(), db, settings.webhook, settings.fixity.days,
                                interval=settings.fixity.interval, budget=settings.fixity.interval * .8,
                                now=datetime.now(timezone.utc), held=partial(jobs.held_originals, db))
