"""Issue 17, intake latency: the pages dropped at the counter are read while the operator still
reviews them (pipeline.early), so that the confirmed document only has to be built, signed and
stored. Real intake drafts, real page cache, the embedded readers of the web server's process."""
from __future__ import annotations

import io
import time
from pathlib import Path

import psutil

from pipeline import config, service
from pipeline.access import Principal
from pipeline.pages import PageCache
from pipeline.runtime import database, open_store
from storage import jobs as job_table
from tests.pagegen import PageSpec, render_page

CODE = "H23.50-261202-0171"


def _jpeg(spec: PageSpec) -> bytes:
    out = io.BytesIO()
    render_page(spec).image.save(out, "JPEG", quality=90, dpi=(spec.dpi, spec.dpi))
    return out.getvalue()


def _pdf(*specs: PageSpec) -> bytes:
    images = [render_page(s).image for s in specs]
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=float(specs[0].dpi), save_all=True, append_images=images[1:])
    return out.getvalue()


def _wait_for(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the pages were not read ahead in time"
        time.sleep(0.5)


def test_pages_are_read_while_the_draft_is_reviewed_and_the_confirmed_job_reuses_them(tmp_path):
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_OCR_ENGINE": "tesseract"})
    who = Principal("an", "operator", ("H23.50",), via="web")
    cache = PageCache(open_store(settings))
    files = [("to-khai.jpg", _jpeg(PageSpec(layout="admin", skew_deg=2.0, seed=1711, dpi=200, max_body_lines=6))),
             ("giay-to.pdf", _pdf(PageSpec(layout="text", seed=1712, dpi=200, max_body_lines=6),
                                  PageSpec(layout="admin", orientation=90, seed=1713, dpi=200, max_body_lines=6)))]
    draft = service.intake_create(settings, CODE, who)
    draft = service.intake_add(settings, draft.id, files, who)
    assert len(draft.pages) == 3 and not draft.errors
    # nothing is confirmed yet, and every page's reading is already done or under way
    _wait_for(lambda: cache.usage()[0] == 3)

    job, duplicate = service.intake_submit(settings, draft.id, "Tờ khai và giấy tờ kèm theo", who)
    assert duplicate is None
    service.run_job(settings, job.id)
    done = service.job_for(settings, job.id, who)
    assert done.state == "done" and done.pages_done == 3
    rows = job_table.get(database(settings), job.id)["pages"]
    assert [r["worker"] for r in rows] == ["(reused)"] * 3  # no page was read a second time
    shown = service.show(settings, CODE)
    assert shown.documents[0].number_of_pages == 3
    assert cache.usage()[0] == 0  # the read-ahead results went with their document


def test_a_draft_confirmed_while_its_pages_are_still_queued_for_reading_is_not_read_twice(tmp_path):
    """The operator confirms as soon as the last page's preview shows, while the readers are still
    on the first page: the draft's files must stay in the store until the pages queued behind it
    are read (they were removed at once, the readings failed and the job read those pages again,
    about 2 s more at the counter), and the draft is gone from the operator's list at once."""
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_OCR_ENGINE": "tesseract",
                            "SOHOA_JOBS": "1"})  # one reader: the pages after the first wait their turn
    who = Principal("an", "operator", ("H23.50",), via="web")
    store = open_store(settings)
    files = [(f"trang-{n}.jpg", _jpeg(PageSpec(layout="text", seed=1740 + n, dpi=200, max_body_lines=5)))
             for n in (1, 2, 3)]
    draft = service.intake_create(settings, CODE, who)
    draft = service.intake_add(settings, draft.id, files, who)
    job, _ = service.intake_submit(settings, draft.id, "Tờ khai", who)
    assert service.intake_drafts(settings, who) == ()
    service.run_job(settings, job.id)
    assert service.job_for(settings, job.id, who).state == "done"
    rows = job_table.get(database(settings), job.id)["pages"]
    assert [r["worker"] for r in rows] == ["(reused)"] * 3  # no page was read a second time
    _wait_for(lambda: store.list(f"work/intake/{draft.id}/") == [], seconds=60)  # then the draft is discarded


def test_without_read_ahead_the_confirmed_job_reads_every_page_itself(tmp_path):
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_OCR_ENGINE": "tesseract",
                            "SOHOA_INTAKE_READ_AHEAD": "false"})
    who = Principal("an", "operator", ("H23.50",), via="web")
    draft = service.intake_create(settings, CODE, who)
    page = _jpeg(PageSpec(layout="admin", seed=1714, dpi=200, max_body_lines=6))
    draft = service.intake_add(settings, draft.id, [("to-khai.jpg", page)], who)
    job, _ = service.intake_submit(settings, draft.id, "Tờ khai", who)
    service.run_job(settings, job.id)
    assert service.job_for(settings, job.id, who).state == "done"
    assert [r["worker"] for r in job_table.get(database(settings), job.id)["pages"]] != ["(reused)"]


def test_two_deployments_served_by_one_process_read_ahead_into_their_own_stores(tmp_path):
    """Each deployment (its settings: home, store) has its own readers: a page is cached where its
    draft is, never in the first deployment's store."""
    caches = []
    for n in (1, 2):
        settings = config.load({"SOHOA_HOME": str(tmp_path / f"home{n}"), "SOHOA_OCR_ENGINE": "tesseract"})
        who = Principal("an", "operator", ("H23.50",), via="web")
        draft = service.intake_create(settings, CODE, who)
        page = _jpeg(PageSpec(layout="admin", seed=1720 + n, dpi=200, max_body_lines=4))
        service.intake_add(settings, draft.id, [(f"to-khai-{n}.jpg", page)], who)
        caches.append(PageCache(open_store(settings)))
    _wait_for(lambda: [c.usage()[0] for c in caches] == [1, 1])


def test_the_readers_of_a_server_killed_outright_do_not_outlive_it(tmp_path):
    """A web server stopped by SIGKILL (or whose shutdown never reaches its readers) must not leave
    its page readers behind: each holds a few hundred MB and would wait for work for ever."""
    import json
    import subprocess
    import sys

    script = f"""
import json, os
from pipeline import config, service
from pipeline.access import Principal
from pipeline.early import _pools
settings = config.load({{"SOHOA_HOME": {str(tmp_path / "home")!r}, "SOHOA_OCR_ENGINE": "tesseract"}})
who = Principal("an", "operator", ("H23.50",), via="web")
draft = service.intake_create(settings, {CODE!r}, who)
service.intake_add(settings, draft.id, [("trang.jpg", open({str(tmp_path / "trang.jpg")!r}, "rb").read())], who)
pool, = _pools.values()
print(json.dumps(sorted(pool._processes)), flush=True)
os.kill(os.getpid(), 9)
"""
    (tmp_path / "trang.jpg").write_bytes(_jpeg(PageSpec(layout="text", seed=1731, dpi=200, max_body_lines=4)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).resolve().parents[1]))
    readers = json.loads(done.stdout.splitlines()[0])
    assert readers, done.stderr

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    _wait_for(lambda: not any(alive(pid) for pid in readers), seconds=30)
