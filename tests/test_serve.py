"""``sohoa serve`` checked as a new user would (issue 13, "How it will be checked"): users and
tokens made with the command line, three scanned pages uploaded over HTTP and followed to
done, found without diacritics, verified and downloaded; refusals for no one and for the
wrong role; the access log holds the reads, and ``sohoa audit verify`` passes, then fails
after a row is edited and after anchored rows are cut from the end."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from storage.index import fold
from tests.conftest import audit_events, save_page
from tests.services import sohoa_serve

SOHOA = str(Path(sys.executable).with_name("sohoa"))
CODE = "H23.50-261201-0201"


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database in WAL mode (the file alone may lack recent rows)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def tamper(database: Path, sql: str) -> None:
    """What someone with the database's rights can do: drop the append-only triggers, then write."""
    with sqlite3.connect(database) as db:
        db.execute("DROP TRIGGER access_log_no_update")
        db.execute("DROP TRIGGER access_log_no_delete")
        db.execute(sql)


@pytest.fixture
def served(tmp_path, rendered):
    home = tmp_path / "home"
    env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_AUDIT_ANCHOR_INTERVAL": "3600"}
    env.pop("SOHOA_DATABASE_URL", None), env.pop("SOHOA_STORAGE", None), env.pop("SOHOA_BROKER_URL", None)

    def sohoa(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([SOHOA, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300)

    tokens = {}
    for name, role, agency in (("lan", "operator", "H23.50"), ("minh", "officer", "H23.50"),
                               ("hoa", "officer", "H99"), ("thu", "archivist", "H23.50")):
        assert sohoa("user", "add", name, "--role", role, "--agency", agency, stdin="mat-khau-dai-du\n").returncode == 0
        made = sohoa("token", "create", name)
        assert made.returncode == 0 and "chỉ hiện một lần" in made.stderr
        tokens[name] = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with sohoa_serve(env, tmp_path / "serve.log") as base:
        pages = [rendered(f"serve{n}", layout=layout, seed=40 + n, dpi=200, skew_deg=skew)
                 for n, (layout, skew) in enumerate((("text", 1.5), ("admin", -2.0), ("text", 0.0)))]
        files = [("files", (f"trang-{n}.png", save_page(p, tmp_path / f"trang-{n}.png").read_bytes(), "image/png"))
                 for n, p in enumerate(pages, start=1)]
        yield {"base": base, "tokens": tokens, "sohoa": sohoa, "home": home, "files": files, "pages": pages}


def test_a_new_user_uploads_finds_verifies_downloads_and_the_log_holds_it(served):
    base, tokens, sohoa = served["base"], served["tokens"], served["sohoa"]
    with httpx.Client(base_url=base, timeout=60) as http:
        # as the operator: three scanned pages to a new dossier, followed to done
        answer = http.post(f"/api/v1/dossiers/{CODE}/documents", headers=tokens["lan"],
                           data={"title": "Hồ sơ đăng ký hộ kinh doanh"}, files=served["files"])
        assert answer.status_code == 202 and answer.headers["location"].startswith("/api/v1/jobs/")
        deadline = time.monotonic() + 300
        while (job := http.get(answer.headers["location"], headers=tokens["lan"]).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "done" and job["pagesDone"] == job["pages"] == 3, job

        # as the officer: found by a word typed without diacritics, verdict read, PDF downloaded
        text = " ".join(p.text for p in served["pages"])
        word = max((w.strip(".,;:()") for w in text.split() if w.isalpha() and fold(w) != w.lower()), key=len)
        hits = http.get("/api/v1/search", params={"q": fold(word)}, headers=tokens["minh"]).json()["hits"]
        assert hits and hits[0]["dossierCode"] == CODE
        verdict = http.get(f"/api/v1/dossiers/{CODE}/verify", headers=tokens["minh"]).json()
        assert [d["docId"] for d in verdict["documents"]] == [job["docId"]] and verdict["documents"][0]["checks"]["signature"]
        pdf = http.get(f"/api/v1/dossiers/{CODE}/documents/{job['docId']}/pdf", headers=tokens["minh"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

        # as no one: 401; as the operator on officer routes: 403; another agency's officer: nothing
        for path in (f"/api/v1/dossiers/{CODE}", "/api/v1/search?q=don", f"/api/v1/dossiers/{CODE}/verify"):
            assert http.get(path).status_code == 401
            assert http.get(path, headers=tokens["lan"]).status_code == 403
        assert http.get("/api/v1/search", params={"q": fold(word)}, headers=tokens["hoa"]).json()["hits"] == []
        assert http.get(f"/api/v1/dossiers/{CODE}", headers=tokens["hoa"]).status_code == 404

    events = audit_events(served["home"])
    minh = {e["action"] for e in events if e["actor"] == "minh" and e.get("dossier", CODE) == CODE}
    assert {"search", "verify", "download"} <= minh
    denied = [e for e in events if e["actor"] == "lan" and e["action"] == "denied"]
    assert len(denied) == 3 and all(e["ip"] == "127.0.0.1" for e in denied)
    # the server anchors the log when it starts
    assert any(e["action"] == "audit-anchor" for e in events)

    assert sohoa("audit", "anchor").returncode == 0
    assert sohoa("audit", "verify").returncode == 0
    database = served["home"] / "index.sqlite3"
    kept = database.with_suffix(".kept")
    copy_database(database, kept)

    # someone with database rights edits one row: the chain breaks there
    tamper(database, "UPDATE access_log SET actor = 'ai-do' WHERE action = 'download'")
    edited = sohoa("audit", "verify")
    assert edited.returncode == 1 and "LỖI" in edited.stderr

    # ... or cuts rows the last anchor covers off the end: the chain still links, the anchor does not
    for stale in database.parent.glob(database.name + "*"):
        stale.unlink()
    copy_database(kept, database)
    tamper(database, "DELETE FROM access_log WHERE id > (SELECT max(id) - 3 FROM access_log)")
    cut = sohoa("audit", "verify")
    assert cut.returncode == 1 and "LỖI" in cut.stderr, cut.stdout + cut.stderr


def _serving_processes(port: int) -> list[int]:
    """The processes answering on ``port``: the ``sohoa serve`` that was started and the
    processes it started to serve from."""
    lines = {p: " ".join(p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"])}
    served = [p for p, line in lines.items() if "sohoa serve" in line and f"--port {port}" in line]
    spawned = []
    for server in served:
        try:
            children = server.children()
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    spawned.append(child.pid)
            except psutil.NoSuchProcess:
                continue
    return [p.pid for p in served] + spawned


def test_several_processes_answer_on_one_port_and_the_metrics_count_them_all(tmp_path):
    """SOHOA_API_PROCESSES=2: two processes serve the port (the requests of both show in the
    /metrics of whichever answers the scrape), and stopping ``sohoa serve`` stops them all."""
    env = {**os.environ, "SOHOA_HOME": str(tmp_path / "home"), "SOHOA_AUDIT_ANCHOR_INTERVAL": "3600",
           "SOHOA_API_PROCESSES": "2"}
    env.pop("SOHOA_DATABASE_URL", None), env.pop("SOHOA_STORAGE", None), env.pop("SOHOA_BROKER_URL", None)
    run = dict(env=env, capture_output=True, text=True, timeout=300)
    assert subprocess.run([SOHOA, "user", "add", "thu", "--role", "archivist", "--no-password"], **run).returncode == 0
    token = subprocess.run([SOHOA, "token", "create", "thu"], **run).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with sohoa_serve(env, tmp_path / "serve.log", ready_within=240) as base:
        port = int(base.rsplit(":", 1)[1])
        assert len(_serving_processes(port)) == 3  # the supervisor and the two it serves from
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(30):
                assert http.get("/api/v1/jobs", headers=auth).status_code == 200
            for _ in range(2):  # whichever process answers the scrape counts the 30
                page = http.get("/metrics", headers=auth).text
                assert 'sohoa_http_requests_total{method="GET",route="/api/v1/jobs",status="200"} 30.0' in page, page
    assert "(2 tiến trình)" in (tmp_path / "serve.log").read_text()
    deadline = time.monotonic() + 30
    while _serving_processes(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _serving_processes(port) == []


def test_uploads_a_server_left_queued_when_it_was_stopped_are_converted_by_the_next_one(tmp_path, rendered):
    """The embedded default (no broker): a server killed while uploads waited in its own queue (a
    machine restarted, an upgrade) left them "đang chờ" for good; the next server did not take them
    up, and `sohoa retry` was refused until they had not moved for the page time limit (upgrade
    review). The next server takes them up when it starts."""
    env = {**os.environ, "SOHOA_HOME": str(tmp_path / "home"), "SOHOA_AUDIT_ANCHOR_INTERVAL": "3600"}
    env.pop("SOHOA_DATABASE_URL", None), env.pop("SOHOA_STORAGE", None), env.pop("SOHOA_BROKER_URL", None)
    run = dict(env=env, capture_output=True, text=True, timeout=300)
    assert subprocess.run([SOHOA, "user", "add", "lan", "--role", "operator", "--agency", "H23.50",
                           "--no-password"], **run).returncode == 0
    auth = {"Authorization": f"Bearer {subprocess.run([SOHOA, 'token', 'create', 'lan'], **run).stdout.strip()}"}
    uploads = []
    for n in range(3):
        page = save_page(rendered(f"left{n}", layout="text", seed=70 + n, dpi=200), tmp_path / f"trang-{n}.png")
        uploads.append((f"Tài liệu {n + 1}", page.read_bytes()))
    with sohoa_serve(env, tmp_path / "serve-1.log") as base:
        with httpx.Client(base_url=base, timeout=60, headers=auth) as http:
            jobs = []
            for title, png in uploads:
                answer = http.post(f"/api/v1/dossiers/{CODE}/documents", data={"title": title},
                                   files=[("files", ("trang.png", png, "image/png"))])
                assert answer.status_code == 202, answer.text
                jobs.append(answer.json()["job"]["job"])
        port = int(base.rsplit(":", 1)[1])
        for pid in _serving_processes(port):
            with contextlib.suppress(psutil.NoSuchProcess):
                for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                    process.kill()  # SIGKILL: nothing recorded
    with sohoa_serve(env, tmp_path / "serve-2.log") as base:
        with httpx.Client(base_url=base, timeout=60, headers=auth) as http:
            assert http.get(f"/api/v1/jobs/{jobs[-1]}").json()["state"] != "done"  # left in the queue
            deadline = time.monotonic() + 240
            states = {}
            while time.monotonic() < deadline:
                states = {job: http.get(f"/api/v1/jobs/{job}").json()["state"] for job in jobs}
                if set(states.values()) <= {"done", "failed"}:
                    break
                time.sleep(1)
            assert set(states.values()) == {"done"}, states


def test_a_job_waiting_in_a_live_process_is_not_taken_up_however_long_it_has_waited(tmp_path, rendered):
    """Review: the start-up resume took every job quiet for the page time limit, so a document
    waiting its turn behind a long one in a live server's queue, or a bulk run's next document, was
    run twice. Only a job whose process is known to be gone is taken up."""
    from datetime import timedelta

    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from api.http import create_app
    from pipeline import audit, config, jobs, service
    from pipeline.runtime import database
    from storage import jobs as job_table
    from storage.locks import holder_name

    settings = config.load({"SOHOA_HOME": str(tmp_path / "home")})
    service.add_user(settings, "lan", "operator", ("H23.50",), None)
    auth = {"Authorization": f"Bearer {service.create_token(settings, 'lan')[1]}"}
    pngs = [save_page(rendered(f"waiting{n}", layout="text", seed=81 + n, dpi=150), tmp_path / f"t{n}.png").read_bytes()
            for n in range(2)]
    with TestClient(create_app(settings, background=False)) as client:  # recorded, never run
        job = client.post(f"/api/v1/dossiers/{CODE}/documents", headers=auth, data={"title": "Đơn"},
                          files=[("files", (f"t{n}.png", png, "image/png")) for n, png in enumerate(pngs)]
                          ).json()["job"]["job"]
    alive = subprocess.Popen(["sleep", "60"])
    ended = subprocess.Popen(["true"])
    ended.wait()
    def at(minutes: int) -> str:
        return (audit.now_vn() - timedelta(hours=2) + timedelta(minutes=minutes)).isoformat()

    def named(process: int | None) -> str | None:
        return None if process is None else f"{holder_name().rpartition(':')[0]}:{process}"

    db = database(settings)
    try:
        # (page 1's process, when), (page 2's process, when), when the job row last moved: expected
        for first, second, row, expected in (
                ((None, 0), (None, 0), 0, []),                            # recorded, never taken
                ((alive.pid, 0), (alive.pid, 0), 0, []),                  # waiting in a live process
                ((ended.pid, 0), (ended.pid, 0), 0, [job]),               # its process gone
                ((jobs.REUSED, 5), (ended.pid, 1), 1, [job]),             # a result reused last (review)
                ((ended.pid, 1), (ended.pid, 2), 9, [job]),               # killed while finishing (review)
                ((ended.pid, 1), (None, 3), 3, [])):                      # made runnable again by a retry
            with db.begin() as conn:
                for number, (process, minutes) in enumerate((first, second), start=1):
                    conn.execute(sa.update(job_table.job_pages).where(
                        job_table.job_pages.c.job_id == job, job_table.job_pages.c.number == number).values(
                        worker=process if process == jobs.REUSED else named(process), updated=at(minutes)))
                conn.execute(sa.update(job_table.jobs).where(job_table.jobs.c.id == job).values(updated=at(row)))
            assert jobs.left_behind(db) == expected, (first, second, row)
    finally:
        alive.kill()
