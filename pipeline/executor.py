"""How page tasks are run: the executor contract and the local process pool.

An executor runs page tasks, possibly elsewhere, and returns their results in task order; a
page that fails comes back as a ``PageResult`` with ``error`` set, never as an exception, and each
result is also handed to ``settled`` in the caller's process as its page finishes. The
tasks and results cross to the workers as JSON (``run_page_json``), and a worker reads the
original from the object store and leaves the page there, so the same contract fits the
local pool and the Celery workers (``pipeline.tasks``).
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from typing import Callable, Protocol, Sequence

from storage.base import ObjectStore

from .models import PageResult, PageTask
from .pages import borrowed_originals, discard_originals, run_page_json

PARENT_CHECK_SECONDS = 1.0  # how often a pool process looks whether its parent is still there


Progress = Callable[[int, int], None]  # (pages done, pages in all), called as pages finish
Settled = Callable[[int, PageResult], None]  # (index of the task, its result), called as each page finishes


class PageExecutor(Protocol):
    def run(self, tasks: Sequence[PageTask], progress: Progress | None = None,
            settled: Settled | None = None) -> list[PageResult]: ...


def limit_native_threads() -> None:
    """Once per worker process: pages are parallel, so tesseract's OpenMP threads would
    oversubscribe the cores (measured 9.6 s against 2.2 s per page on 2 cores). Tesseract
    reads the limit from its environment; an operator's explicit setting wins."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")


_process_store: ObjectStore | None = None  # a pool process's own connection to the store


def start_pool_process(open_store: Callable[[], ObjectStore], parent: int, niceness: int = 0) -> None:
    """A pool process's initializer. ``parent``: the process id of the pool's owner (which may be
    gone by the time a spawned process gets here); ``niceness``: lower the CPU priority by this much."""
    global _process_store
    threading.Thread(target=_leave_with, args=(parent,), name="leave-with-parent", daemon=True).start()
    if niceness:
        os.nice(niceness)
    limit_native_threads()
    _process_store = open_store()


def _leave_with(parent: int) -> None:
    """End this pool process once the process that started it is gone. A pool's processes wait
    for work from their parent; one killed (a server stopped by SIGKILL, or whose shutdown never
    reached its pool) would otherwise leave them waiting for ever, a few hundred MB each."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    discard_originals()
    os._exit(0)


def run_in_pool(payload: dict, time_limit: float | None = None) -> dict:
    """``run_page_json`` in a process started by ``start_pool_process``."""
    return run_page_json(payload, _process_store, time_limit)


class LocalPoolExecutor:
    """Pages over ``jobs`` processes of this machine (0: every core, and one more for the pages
    left over at the end), results in task order.

    ``open_store`` is called once in each process (it must pickle: a module-level function
    or a ``functools.partial`` of one). A page still being read ``time_limit`` seconds after it
    started fails as over its time (``pages.run_page``)."""

    def __init__(self, open_store: Callable[[], ObjectStore], jobs: int = 0, time_limit: float | None = None):
        self.open_store = open_store
        self.jobs = jobs or os.cpu_count() or 1
        self.every_core = not jobs  # the machine's cores are all this run's (no SOHOA_JOBS limit)
        self.time_limit = time_limit

    def _processes(self, tasks: int) -> int:
        """One process per page, up to one more than the cores when every core is this run's: with
        as many processes as cores, the pages left over at the end (a 3-page document on 2 cores:
        the third) run on one core while the others idle; one more process keeps every core busy
        to the end, the operating system sharing the cores between the pages."""
        return min(tasks, self.jobs + 1 if self.every_core and tasks > self.jobs else self.jobs)

    def run(self, tasks: Sequence[PageTask], progress: Progress | None = None,
            settled: Settled | None = None) -> list[PageResult]:
        payloads = [t.to_json() for t in tasks]
        report = progress or (lambda done, total: None)
        record = settled or (lambda index, result: None)
        report(0, len(tasks))
        if self.jobs == 1 or len(tasks) <= 1:
            limit_native_threads()
            store, results = self.open_store(), []
            with borrowed_originals():  # this process may be a server that lives on: it keeps no copy
                for index, payload in enumerate(payloads):
                    results.append(PageResult.from_json(run_page_json(payload, store, self.time_limit)))
                    record(index, results[-1])
                    report(len(results), len(tasks))
            return results
        with ProcessPoolExecutor(max_workers=self._processes(len(tasks)), initializer=start_pool_process,
                                 initargs=(self.open_store, os.getpid())) as pool:
            futures = {pool.submit(run_in_pool, p, self.time_limit): n for n, p in enumerate(payloads)}
            results: list = [None] * len(tasks)
            for done, future in enumerate(as_completed(futures), start=1):
                index = futures[future]
                results[index] = PageResult.from_json(future.result())
                record(index, results[index])
                report(done, len(tasks))
            return results

    @contextmanager
    def stream(self):
        """One pool for many documents: yields ``submit(task) -> future`` whose ``result()`` is the
        page's ``PageResult``, so that a bulk run keeps every core busy with the pages of the next
        documents while it finishes the current one (documents of one page would otherwise run
        one at a time)."""
        if self.jobs == 1:
            limit_native_threads()
            store = self.open_store()
            with borrowed_originals():
                yield lambda task: _Ready(PageResult.from_json(run_page_json(task.to_json(), store, self.time_limit)))
            return
        with ProcessPoolExecutor(max_workers=self.jobs, initializer=start_pool_process,
                                 initargs=(self.open_store, os.getpid())) as pool:
            yield lambda task: _Decoded(pool.submit(run_in_pool, task.to_json(), self.time_limit))


class _Ready:
    def __init__(self, result: PageResult):
        self._result = result

    def result(self) -> PageResult:
        return self._result

    def add_done_callback(self, callback) -> None:
        callback(self)


class _Decoded:
    def __init__(self, future):
        self._future = future

    def result(self) -> PageResult:
        return PageResult.from_json(self._future.result())

    def add_done_callback(self, callback) -> None:
        self._future.add_done_callback(lambda _: callback(self))
