"""Read-ahead: a draft's pages are read while the operator still reviews them at the counter.

Each page added to an intake draft is handed, as the page task ingest will make of it, to a
reader in the background; the result lands in the page cache (``pipeline.pages``) under the
same content key ingest will ask for, so when the operator confirms the draft its job finds
the pages done and only builds, signs and stores the document. Reading ahead never changes a
result: a page whose cached result is missing, stale or failed is simply read again by the job.

Where the pages are read:
- with a broker, a ``sohoa.read_ahead`` task on the pages queue, for any worker;
- without one, a small pool of this process's own (the web server's), at lower CPU priority
  than the server itself, so that the previews and thumbnails the operator waits for come
  first. ``wait`` lets the confirmed document's job wait for the pages already being read
  instead of reading them a second time.

A draft page is read as the file it came in (its page number in the uploaded file): that is
what ingest reads when the operator keeps a file's pages together and in order; a page taken
out of its file is read again by the job.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor, wait as wait_all
from functools import partial
from typing import Callable, Iterable

from .config import OcrSettings, Settings
from .executor import run_in_pool, start_pool_process
from .ingest import page_task
from .models import PageTask

log = logging.getLogger(__name__)

NICENESS = 5  # the background readers yield the cores to the server's own requests


def draft_tasks(draft, ocr: OcrSettings) -> list[PageTask]:
    """The page tasks of an intake draft's pages, each read as the file it came in."""
    files = {f.id: f for f in draft.files}
    tasks = []
    for p in draft.pages:
        whole = files.get(p.file_id)
        if whole is not None and whole.pages > 1 and whole.kind:
            tasks.append(page_task(ocr, key=whole.key, file=whole.name, kind=whole.kind, sha256=whole.sha256,
                                   page=p.page))
        else:
            tasks.append(page_task(ocr, key=p.key, file=p.file, kind=p.kind, sha256=p.sha256, page=1))
    return tasks


# ----------------------------------------------------------------- the embedded readers

_lock = threading.Lock()
_pools: dict[Settings, ProcessPoolExecutor] = {}  # one per deployment this process serves
_reading: dict[tuple[str, int], Future] = {}  # (original's SHA-256, page) -> its reading


def _local_pool(settings: Settings) -> ProcessPoolExecutor:
    if settings not in _pools:
        from .runtime import open_store

        # spawned, not forked: the web server's threads, locks and signal handlers stay behind
        # (a child forked from a request thread can hang on a lock held at that moment). One
        # reader more than the cores (as LocalPoolExecutor): a page dropped while every reader is
        # busy starts at once, not after a whole page (bench intake, 3 pages on 2 cores: last page
        # to signed, median of six, 5.32 s with 2 readers, 5.05 s with 3)
        _pools[settings] = ProcessPoolExecutor(max_workers=settings.ocr.jobs or (os.cpu_count() or 1) + 1,
                                               mp_context=multiprocessing.get_context("spawn"),
                                               initializer=start_pool_process,
                                               initargs=(partial(open_store, settings), os.getpid(), NICENESS))
    return _pools[settings]


def stop() -> None:
    """Stop this process's readers (a server shutting down): readings not started are dropped
    (the job reads those pages itself), the processes end once their current page is read."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
        _reading.clear()
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)


def read_ahead(settings: Settings, tasks: Iterable[PageTask]) -> int:
    """Start reading the pages not already being read; returns how many were started."""
    tasks = list(tasks)
    if not settings.ocr.read_ahead or not tasks:
        return 0
    if settings.broker.url:
        from . import tasks as celery_tasks

        celery_tasks.configured(settings)
        for task in tasks:
            celery_tasks.send_read_ahead(task.to_json())
        return len(tasks)
    started = 0
    with _lock:
        for ended in [k for k, f in _reading.items() if f.done()]:
            del _reading[ended]
        pool = _local_pool(settings)
        for task in tasks:
            if (task.sha256, task.page) not in _reading:
                _reading[(task.sha256, task.page)] = pool.submit(run_in_pool, task.to_json(),
                                                                 settings.broker.page_time_limit)
                started += 1
    return started


def wait(tasks: Iterable[PageTask], timeout: float) -> bool:
    """Wait, at most ``timeout`` seconds, for this process's readings of these pages to end (a
    job about to read them itself; never a request the operator waits on). True when every one
    of the pages was read here, without error: the job only has to fetch their results. The
    readings are the job's then: a later job of the same files (whose results went with the
    first document) does not count on them."""
    tasks = list(tasks)
    if not (futures := _readings(tasks)):
        return False
    done, _ = wait_all(futures.values(), timeout=timeout)
    with _lock:
        for key, future in futures.items():
            if future.done() and _reading.get(key) is future:
                del _reading[key]
    return len(futures) == len({(t.sha256, t.page) for t in tasks}) == len(done) and all(
        not f.cancelled() and f.exception() is None and not f.result().get("error") for f in done)


def when_read(tasks: Iterable[PageTask], then: Callable[[], None]) -> None:
    """Call ``then`` once this process's readings of these pages have ended: at once when none is
    under way, else from a thread of its own (its failure is logged). For what must stay in the
    store while they run: a confirmed draft's files, which the pages still queued behind the
    others are read from after the confirmation."""
    if not (futures := _readings(tasks)):
        then()
        return

    def later() -> None:
        wait_all(futures.values())
        try:
            then()
        except Exception as e:
            log.warning("after read-ahead: %s: %s", type(e).__name__, e)

    threading.Thread(target=later, name="after-read-ahead", daemon=True).start()


def _readings(tasks: Iterable[PageTask]) -> dict[tuple[str, int], Future]:
    """This process's readings of these pages, by (original's SHA-256, page)."""
    keys = {(t.sha256, t.page) for t in tasks}
    with _lock:
        return {key: _reading[key] for key in keys if key in _reading}
