"""Many machines with Celery: real Redis, real `sohoa worker` processes, a real database.

The workers share one broker, one object store and one database (PostgreSQL here, as a
province would run it); each runs in its own process group, so a test can kill one
outright (SIGKILL) in the middle of its work.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.s3 import S3Store
from tests.conftest import save_page

SOHOA = str(Path(sys.executable).with_name("sohoa"))
CODES = [f"H23.50-261201-{n:04d}" for n in range(11, 16)]


@pytest.fixture
def cluster(tmp_path, redis_url, pg_url, pg_engine):
    """Start and stop `sohoa worker` processes sharing one home, broker and database."""
    env = {**os.environ, "SOHOA_HOME": str(tmp_path / "home"), "SOHOA_BROKER_URL": redis_url,
           "SOHOA_DATABASE_URL": pg_url, "SOHOA_BROKER_VISIBILITY_TIMEOUT": "12", "SOHOA_JOBS": "1"}
    for name in ("SOHOA_STORAGE", "SOHOA_S3_ENDPOINT"):
        env.pop(name, None)
    workers: list[subprocess.Popen] = []

    class Cluster:
        def __init__(self):
            self.env, self.home, self.engine = env, tmp_path / "home", pg_engine

        def start_worker(self, *extra: str) -> subprocess.Popen:
            log = open(tmp_path / f"worker-{len(workers)}.log", "w")
            proc = subprocess.Popen([SOHOA, "worker", "--concurrency", "1", *extra], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            workers.append(proc)
            return proc

        def kill(self, proc: subprocess.Popen) -> None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

        def sohoa(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
            return subprocess.run([SOHOA, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)

        def pages_by_worker(self) -> dict[str, int]:
            with pg_engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT worker, count(*) FROM job_pages WHERE state = 'done' "
                                            "GROUP BY worker")).all()
            return dict(rows)

        def jobs(self) -> int:
            with pg_engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar()

        def pages_done(self) -> int:
            with pg_engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM job_pages WHERE state = 'done'")).scalar()

    yield Cluster()
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _multipage_tiff(rendered, path: Path, pages: int) -> Path:
    """One scanned file of ``pages`` pages (four different sheets, repeated)."""
    sheets = [rendered(f"w{n}", layout="text", seed=300 + n, dpi=150).image.convert("L") for n in range(4)]
    frames = [sheets[n % 4] for n in range(pages)]
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(150, 150), compression="tiff_deflate")
    return path


def _backlog(rendered, root: Path) -> dict[str, list[str]]:
    """A folder of unseen paper dossiers: one folder per dossier, one file per document."""
    planned = {}
    for i, code in enumerate(CODES):
        folder = root / code
        folder.mkdir(parents=True)
        titles = ["Đơn đề nghị", "Giấy tờ kèm theo"][: 1 + i % 2]
        for k, title in enumerate(titles, start=1):
            page = rendered(f"b{i}{k}", layout="text", seed=400 + 10 * i + k, dpi=150)
            save_page(page, folder / f"{k:02d}_{title}.png")
        planned[code] = titles
    return planned


def test_a_process_pointed_at_another_broker_sends_its_tasks_there(redis_url, tmp_path):
    """Celery's connection and producer pools, made for the first broker a process used, were kept
    when the settings named another: tasks went to the old broker (found when a suite's worker
    process had used a broker relay, then its uploads failed "Connection refused")."""
    import redis

    from pipeline import config, tasks

    gone = config.load({"SOHOA_HOME": str(tmp_path / "a"), "SOHOA_BROKER_URL": "redis://127.0.0.1:1/1"})
    tasks.configure(gone)
    assert tasks.app.amqp.producer_pool is not None  # made for the first broker
    tasks.configure(config.load({"SOHOA_HOME": str(tmp_path / "b"), "SOHOA_BROKER_URL": redis_url}))
    tasks.app.send_task("sohoa.fixity", queue="sohoa-test-probe")
    assert redis.Redis.from_url(redis_url).llen("sohoa-test-probe") == 1


def test_two_workers_share_the_pages_of_a_20_page_document(cluster, rendered, tmp_path):
    cluster.start_worker()
    cluster.start_worker()
    scan = _multipage_tiff(rendered, tmp_path / "hoso.tif", 20)
    done = cluster.sohoa("ingest", "--dossier", CODES[0], "--title", "Hồ sơ 20 trang", "--json", scan)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["docId"] == f"{CODES[0]}.001" and len(result["pages"]) == 20
    by_worker = cluster.pages_by_worker()
    # both workers took pages; on a loaded machine a page may outlive the broker's visibility
    # timeout and be handed out again, and its second taker then finds it done ("(reused)")
    assert sum(by_worker.values()) == 20 and len(set(by_worker) - {"(reused)"}) == 2, by_worker
    status = cluster.sohoa("status", CODES[0], "--json")
    assert json.loads(status.stdout)[0]["state"] == "done" and json.loads(status.stdout)[0]["pagesDone"] == 20


def test_a_worker_killed_mid_run_loses_nothing_and_a_second_bulk_does_nothing(cluster, rendered, tmp_path):
    """The check of the issue: two workers convert a backlog while one is killed (SIGKILL) in the
    middle of its work; every dossier ends complete and exactly once, the report accounts for
    every input, and a second `sohoa bulk` over the same folder processes nothing again."""
    planned = _backlog(rendered, tmp_path / "kho")
    inputs = sum(len(t) for t in planned.values())
    victim = cluster.start_worker()
    cluster.start_worker()
    bulk = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho"), "--report", str(tmp_path / "bao-cao")],
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while cluster.pages_done() < 1:  # both workers are busy by now: the victim dies mid-task
        assert time.monotonic() < deadline and bulk.poll() is None, "no page finished"
        time.sleep(0.2)
    cluster.kill(victim)
    out, err = bulk.communicate(timeout=600)
    assert bulk.returncode == 0, err

    for code, titles in planned.items():
        manifest = json.loads((cluster.home / "store" / "dossiers" / code / "manifest.json").read_text())
        assert [d["title"] for d in manifest["documents"]] == titles  # each once, in the folder's order
        assert len({d["inputSha256"] for d in manifest["documents"]}) == len(titles)
    report = json.loads((tmp_path / "bao-cao.json").read_text())
    assert report["totals"]["documents"] == inputs and report["totals"]["done"] == inputs
    assert sorted(i["source"] for i in report["items"]) == sorted(
        p.relative_to(tmp_path / "kho").as_posix() for p in (tmp_path / "kho").rglob("*.png"))
    csv_rows = (tmp_path / "bao-cao.csv").read_text(encoding="utf-8-sig").strip().splitlines()
    assert len(csv_rows) == inputs + 1

    again = cluster.sohoa("bulk", tmp_path / "kho", "--json")
    assert again.returncode == 0, again.stderr
    totals = json.loads(again.stdout)["totals"]
    assert (totals["skipped"], totals["done"], totals["failed"]) == (inputs, 0, 0)
    audit = cluster.sohoa("audit", "--last", "5")
    assert audit.returncode == 0, audit.stderr  # one log for every worker, its chain intact


def test_a_failed_job_is_retried_without_redoing_finished_pages(cluster, rendered, tmp_path):
    """Pages fail on a badly installed worker (no OCR models): the job fails naming the file
    and page; once a sound worker runs, `sohoa retry` finishes it and the pages finished before
    are not done again."""
    scan = _multipage_tiff(rendered, tmp_path / "hoso.tif", 6)
    sound = cluster.start_worker()
    ingest = subprocess.Popen([SOHOA, "ingest", "--dossier", CODES[1], "--title", "Đơn", str(scan)],
                              env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while cluster.pages_done() < 2:
        assert time.monotonic() < deadline and ingest.poll() is None, "no page finished"
        time.sleep(0.2)
    cluster.kill(sound)
    cluster.env["TESSDATA_PREFIX"] = str(tmp_path / "no-models")
    broken = cluster.start_worker()
    del cluster.env["TESSDATA_PREFIX"]
    _, err = ingest.communicate(timeout=300)
    assert ingest.returncode != 0 and "hoso.tif, trang" in err, err
    status = json.loads(cluster.sohoa("status", CODES[1], "--json").stdout)[-1]
    assert status["state"] == "failed" and status["pagesFailed"] >= 1 and status["pagesDone"] >= 2, status
    assert f"sohoa retry {status['job']}" in err
    with cluster.engine.connect() as conn:
        finished = conn.execute(sa.text("SELECT number, worker, updated FROM job_pages WHERE job_id = :j AND "
                                        "state = 'done'"), {"j": status["job"]}).all()

    cluster.kill(broken)
    cluster.start_worker()
    retried = cluster.sohoa("retry", status["job"], "--json")
    assert retried.returncode == 0, retried.stderr
    assert len(json.loads(retried.stdout)["pages"]) == 6
    after = json.loads(cluster.sohoa("status", status["job"], "--json").stdout)[0]
    assert (after["state"], after["attempts"], after["pagesDone"]) == ("done", 2, 6)
    with cluster.engine.connect() as conn:
        for number, worker, updated in finished:  # not done again
            assert conn.execute(sa.text("SELECT worker, updated FROM job_pages WHERE job_id = :j AND number = :n"),
                                {"j": status["job"], "n": number}).one() == (worker, updated)


def test_the_object_store_stopped_during_a_job_recovers_by_retry(cluster, rendered, tmp_path, rgw, s3_settings):
    """The S3 server goes away for a while in the middle of a document: the tasks wait and retry
    with backoff, and the document completes once the store is back, with no operator action."""
    from tests.services import rgw_outage

    cluster.env.update({"SOHOA_STORAGE": "s3", "SOHOA_S3_ENDPOINT": s3_settings["endpoint"],
                        "SOHOA_S3_ACCESS_KEY": s3_settings["access_key"],
                        "SOHOA_S3_SECRET_KEY": s3_settings["secret_key"], "SOHOA_S3_BUCKET": s3_settings["bucket"]})
    cluster.start_worker()
    cluster.start_worker()
    scan = _multipage_tiff(rendered, tmp_path / "hoso.tif", 8)
    ingest = subprocess.Popen([SOHOA, "ingest", "--dossier", CODES[2], "--title", "Hồ sơ", "--json", str(scan)],
                              env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while cluster.pages_done() < 1:
        assert time.monotonic() < deadline and ingest.poll() is None, ingest.stderr and ingest.stderr.read()
        time.sleep(0.2)
    restart = rgw_outage(rgw)
    try:
        time.sleep(15)
        assert ingest.poll() is None  # waiting, not failed
    finally:
        restart()
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert len(json.loads(out)["pages"]) == 8
    status = json.loads(cluster.sohoa("status", CODES[2], "--json").stdout)
    assert [(j["state"], j["attempts"]) for j in status] == [("done", 1)]


def test_a_bulk_run_on_workers_waits_out_a_storage_outage_and_ends_every_dossier_once(
        cluster, rendered, tmp_path, rgw, s3_settings):
    """Found by the ops review: the gateway away for 30 seconds stopped `sohoa bulk` on workers at
    once (exit 8, no report), and the jobs it had sent stayed "đang xử lý" for good: the run itself
    sends each document's finishing task. It now waits the outage out, as the workers do."""
    from tests.services import rgw_outage

    cluster.env.update({"SOHOA_STORAGE": "s3", "SOHOA_S3_ENDPOINT": s3_settings["endpoint"],
                        "SOHOA_S3_ACCESS_KEY": s3_settings["access_key"],
                        "SOHOA_S3_SECRET_KEY": s3_settings["secret_key"], "SOHOA_S3_BUCKET": s3_settings["bucket"]})
    planned = _backlog(rendered, tmp_path / "kho")
    for n in range(16):  # more documents to send, so that the gateway goes while they are sent
        code = f"H23.50-261202-{n + 40:04d}"
        (tmp_path / "kho" / code).mkdir()
        save_page(rendered(f"outage{n}", layout="text", seed=990 + n, dpi=72), tmp_path / "kho" / code / "01_Đơn.png")
        planned[code] = ["Đơn"]
    cluster.start_worker()
    cluster.start_worker()
    bulk = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho"), "--json", "--report", str(tmp_path / "bao-cao")],
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not cluster.jobs():  # the run has reached the store and sends its first documents
        assert time.monotonic() < deadline and bulk.poll() is None, "no document sent"
        time.sleep(0.05)
    restart = rgw_outage(rgw)
    try:
        time.sleep(30)
        assert bulk.poll() is None, bulk.stderr.read()  # waiting, not stopped
    finally:
        restart()
    out, err = bulk.communicate(timeout=600)
    assert bulk.returncode == 0, [(i["dossier"], i.get("error"), i.get("job")) for i in json.loads(out)["items"] if i["status"] != "done"][:3] if out else err
    totals = json.loads(out)["totals"]
    assert totals["done"] == sum(len(t) for t in planned.values()) and totals["failed"] == 0, totals
    store = S3Store.connect(s3_settings["endpoint"], s3_settings["access_key"], s3_settings["secret_key"],
                            bucket=s3_settings["bucket"])
    for code, titles in planned.items():
        manifest = json.loads(store.get(f"dossiers/{code}/manifest.json"))
        assert [d["title"] for d in manifest["documents"]] == titles, code  # each once, in order


def test_one_scan_in_many_dossiers_of_a_bulk_run_ends_every_dossier_done(cluster, rendered, tmp_path):
    """Found by the ops review: the same file in 16 dossiers of one run (a form, an identity card
    copied into each) shares its pages' cached results; the first document finished cleared them,
    and the others failed "Kết quả trang 1 … không còn; chạy lại" (or "Không tìm thấy đối tượng
    work/pages/…"). A result other open jobs name is kept for them; one gone anyway is read again."""
    page = rendered("shared", layout="text", seed=991, dpi=72)
    codes = [f"H23.50-261202-{n:04d}" for n in range(60, 68)]
    for code in codes:
        (tmp_path / "kho" / code).mkdir(parents=True)
        save_page(page, tmp_path / "kho" / code / "01_Bản sao CCCD.png")
    cluster.start_worker()
    cluster.start_worker()
    run = cluster.sohoa("bulk", tmp_path / "kho", "--report", tmp_path / "bao-cao.csv")
    report = json.loads((tmp_path / "bao-cao.json").read_text(encoding="utf-8"))
    assert run.returncode == 0, [(i["dossier"], i.get("error")) for i in report["items"] if i["status"] != "done"]
    assert report["totals"]["done"] == len(codes)
    # the progress counts every page once it is known: the total fell as documents ended ("trang 6/19",
    # then "8/18"; the chaos review)
    shown = [(int(a), int(b)) for a, b in re.findall(r"trang (\d+)/(\d+)", run.stderr)]
    assert shown and shown[-1] == (len(codes), len(codes)), run.stderr
    assert all(a <= b for a, b in shown) and [b for _, b in shown] == sorted(b for _, b in shown), shown


def test_rabbitmq_is_a_broker_too(cluster, rendered, tmp_path, amqp_url):
    """RabbitMQ (127.0.0.1:5672, guest/guest, started with the machine) in place of Redis."""
    cluster.env["SOHOA_BROKER_URL"] = amqp_url
    cluster.start_worker()
    scan = _multipage_tiff(rendered, tmp_path / "hoso.tif", 3)
    done = cluster.sohoa("ingest", "--dossier", CODES[3], "--title", "Qua RabbitMQ", "--json", scan)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["pages"]) == 3


def test_an_agencys_documents_are_signed_only_on_its_own_signing_queue(cluster, rendered, tmp_path):
    """With SOHOA_SIGNING_AGENCIES, a document of that agency waits, pages done, until the worker
    holding the agency's key (queue sign.<agency>) takes it."""
    cluster.env["SOHOA_SIGNING_AGENCIES"] = "H23.50"
    cluster.start_worker("--queues", "pages,finish")
    scan = _multipage_tiff(rendered, tmp_path / "hoso.tif", 2)
    ingest = subprocess.Popen([SOHOA, "ingest", "--dossier", CODES[4], "--title", "Ký riêng", "--json", str(scan)],
                              env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while cluster.pages_done() < 2:
        assert time.monotonic() < deadline and ingest.poll() is None, "pages not done"
        time.sleep(0.2)
    time.sleep(5)
    assert ingest.poll() is None  # nobody else may sign it
    status = json.loads(cluster.sohoa("status", CODES[4], "--json").stdout)[0]
    assert status["state"] == "running" and status["pagesDone"] == 2
    cluster.start_worker("--queues", "sign.h23.50")
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err
    assert json.loads(out)["docId"] == f"{CODES[4]}.001"


def test_an_upload_over_http_is_converted_by_the_workers(cluster, rendered, tmp_path):
    """With a broker the API only records the job and hands its pages to the workers; the
    worker signs and the job is followed over HTTP to done."""
    from fastapi.testclient import TestClient

    from api.http import create_app
    from pipeline import config, service

    cluster.start_worker()
    settings = config.load(cluster.env)
    service.add_user(settings, "lan", "operator", ("H23.50",), None)
    token = {"Authorization": f"Bearer {service.create_token(settings, 'lan')[1]}"}
    page = save_page(rendered("w-http", layout="text", seed=331, dpi=150), tmp_path / "trang.png").read_bytes()
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/api/v1/dossiers/{CODES[1]}/documents", headers=token, data={"title": "Đơn"},
                             files=[("files", ("trang.png", page, "image/png"))])
        assert answer.status_code == 202
        deadline = time.monotonic() + 300
        while (job := client.get(answer.headers["location"], headers=token).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
    assert job["state"] == "done", job["error"]
    assert list(cluster.pages_by_worker().values()) == [1] and not [*cluster.pages_by_worker()][0].startswith("(")


def test_intake_pages_are_read_ahead_by_the_workers_and_the_confirmed_job_reuses_them(cluster, rendered, tmp_path):
    """With a broker, a page added to an intake draft is read by a worker before the operator
    confirms (pipeline.early); the confirmed job finds it done and only finishes the document."""
    from pipeline import config, service
    from pipeline.access import Principal
    from pipeline.pages import PageCache
    from pipeline.runtime import open_store

    cluster.start_worker()
    settings = config.load(cluster.env)
    who = Principal("lan", "operator", ("H23.50",), via="web")
    page = save_page(rendered("w-early", layout="text", seed=332, dpi=150), tmp_path / "trang.png").read_bytes()
    draft = service.intake_create(settings, CODES[2], who)
    draft = service.intake_add(settings, draft.id, [("trang.png", page)], who)
    cache, deadline = PageCache(open_store(settings)), time.monotonic() + 300
    while cache.usage()[0] < 1:  # read by the worker while nothing is confirmed
        assert time.monotonic() < deadline, "the worker did not read the page ahead"
        time.sleep(0.5)
    job, _ = service.intake_submit(settings, draft.id, "Đơn", who)
    service.run_job(settings, job.id)
    while (view := service.job_for(settings, job.id, who)).state not in ("done", "failed"):
        assert time.monotonic() < deadline, view
        time.sleep(0.5)
    assert view.state == "done", view.error
    assert cluster.pages_by_worker() == {"(reused)": 1}


def test_a_process_forked_after_the_database_was_used_opens_connections_of_its_own(pg_url, pg_engine):
    """A worker checks the schema, then Celery forks its pool: each forked process took the
    parent's pooled connection, one socket for several processes, and a page task failed on a
    connection another had left in a transaction (the bad-input review)."""
    import multiprocessing

    from storage import db

    def backend(engine) -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()

    url = pg_url + ("&" if "?" in pg_url else "?") + "application_name=sohoa-fork-test"  # an engine of its own
    parents = backend(db.engine_for(url))  # its one connection, now in the parent's pool
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    children = [context.Process(target=lambda: answers.put(backend(db.engine_for(url)))) for _ in range(2)]
    for child in children:
        child.start()
    found = {answers.get(timeout=60) for _ in children}
    for child in children:
        child.join(30)
    assert parents not in found and len(found) == 2
    assert backend(db.engine_for(url)) == parents  # the parent's connection is still its own, and works
