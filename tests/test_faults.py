"""Faults in the middle of the work: nothing lost, nothing twice, every job ends done or failed
with its reason and can be retried once the fault is gone.

Faults are real: a `tesseract` on PATH that crashes (SIGSEGV) or hangs on one page, the disk
under SOHOA_HOME filled (a small tmpfs), the connections to the broker (RabbitMQ) and to the
database (PostgreSQL) cut by a TCP relay the workers reach them through, the relay refusing
new connections until it is restored. Faults tested elsewhere (a worker killed with SIGKILL, a
bulk run killed, the S3 server stopped) are listed in the same table of docs/robustness.md.
The worker tests share one set-up: two `sohoa worker` processes, a RabbitMQ virtual host and a
PostgreSQL database of their own. Pages are small (a half sheet at 100 dpi, four lines).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import keys
from storage.local import LocalStore
from tests.conftest import audit_events, manifest_of, stored_keys
from tests.doc_tables import check_table
from tests.services import free_port, throwaway_pg_database

SOHOA = str(Path(sys.executable).with_name("sohoa"))
ROWS: dict[str, tuple[str, str, str, str]] = {}  # fault -> table row, filled by the tests as they run

# ---------------------------------------------------------------------------- fault injectors

WRAPPER = """#!/bin/sh
# tesseract, but on a square page image (the marked page) it does what the fault file says;
# "hang-always": on every image
if [ -n "$SOHOA_TEST_TESSERACT_FAULT" ] && [ -s "$SOHOA_TEST_TESSERACT_FAULT" ] && [ -f "$1" ]; then
  [ "$(cat "$SOHOA_TEST_TESSERACT_FAULT")" = "hang-always" ] && exec sleep 120
  w=$(od -An -t u4 -j 18 -N 4 "$1" | tr -d ' '); h=$(od -An -t u4 -j 22 -N 4 "$1" | tr -d ' ')
  if [ "$w" = "$h" ]; then
    case "$(cat "$SOHOA_TEST_TESSERACT_FAULT")" in
      crash) kill -SEGV $$ ;;
      hang) exec sleep 120 ;;
    esac
  fi
fi
exec {real} "$@"
"""


def tesseract_wrapper(folder: Path) -> tuple[Path, Path]:
    """A `tesseract` in ``folder``/bin that crashes or hangs on square images while the fault
    file holds ``crash`` or ``hang``; returns (bin folder, fault file)."""
    real = shutil.which("tesseract")
    assert real, "tesseract is not installed"
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    script = folder / "bin" / "tesseract"
    script.write_text(WRAPPER.replace("{real}", real))
    script.chmod(0o755)
    fault = folder / "tesseract-fault"
    fault.write_text("")
    return folder / "bin", fault


class Relay:
    """A TCP relay on 127.0.0.1 to a service; ``cut()`` drops every connection through it and
    refuses new ones (what clients see of a restarted or unreachable server), ``restore()``
    accepts again on the same port."""

    def __init__(self, target_port: int):
        self.target, self.port = target_port, free_port()
        self.lock, self.conns, self.listener = threading.Lock(), [], None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): no connection slips through
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.cut()


# ---------------------------------------------------------------------------- pages


@pytest.fixture(scope="module")
def sheets(tmp_path_factory, rendered):
    """Small pages cut from 300 dpi sheets (four lines of text): ``a.png``, ``b.png``, ``c.png``
    (1200 x 500) and ``vuong.png`` (500 x 500, the square page the faulty tesseract picks)."""
    folder = tmp_path_factory.mktemp("sheets")
    sizes = {"a.png": (1200, 500), "b.png": (1200, 500), "c.png": (1200, 500), "vuong.png": (500, 500)}
    for n, (name, (w, h)) in enumerate(sizes.items()):
        page = rendered(f"fault-{name}", layout="text", dpi=300, seed=900 + n, max_body_lines=4, color="gray",
                        degradation=0)
        page.image.crop((250, 200, 250 + w, 200 + h)).save(folder / name, dpi=(300, 300))
    return folder


def _status(run, ref: str) -> list[dict]:
    code, out, err = run("status", ref, "--json")
    assert code == 0, err
    return json.loads(out)


def _sql(home: Path, query: str, **params) -> list[tuple]:
    """Rows of the embedded database under ``home``."""
    engine = sa.create_engine(f"sqlite:///{home / 'index.sqlite3'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def row(fault: str, where: str, outcome: str, test: str) -> None:
    ROWS[fault] = (fault, where, outcome, test)


@pytest.fixture
def faulty_tesseract(tmp_path, monkeypatch):
    """The embedded default (no broker, SQLite, local store) with the faulty tesseract first on PATH."""
    folder, fault = tesseract_wrapper(tmp_path / "tess")
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    monkeypatch.setenv("SOHOA_TEST_TESSERACT_FAULT", str(fault))
    monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")
    monkeypatch.setenv("SOHOA_JOBS", "1")
    return fault


def test_tesseract_crashing_on_one_page_fails_the_job_naming_it_and_a_retry_finishes(
        cli, home, sheets, faulty_tesseract, monkeypatch, tmp_path):
    code_ = "H23.50-261202-0101"
    files = [sheets / "a.png", sheets / "vuong.png", sheets / "b.png"]
    faulty_tesseract.write_text("crash")
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Đơn", *files)
    assert code == 13, err  # pages failed: nothing stored
    assert "vuong.png, trang 1" in err and "TesseractError" in err and "1/3 trang lỗi" in err, err
    assert not (home / "store" / "dossiers" / code_ / "manifest.json").exists()
    assert not [k for k in stored_keys(home) if "/documents/" in k]  # no PDF, text or words of it
    originals = [k for k in stored_keys(home) if "/originals/" in k and not k.endswith(".meta.json")]
    assert len(originals) == 3  # the citizen's files are kept
    job = _status(cli, code_)[-1]
    assert job["state"] == "failed" and "vuong.png, trang 1" in job["error"]["message"], job
    assert job["error"]["server"] is False  # a page's failure: not said to be the server's
    assert (job["pagesDone"], job["pagesFailed"]) == (2, 1)
    finished = _sql(home, "SELECT number, updated FROM job_pages WHERE job_id = :j AND state = 'done' "
                          "ORDER BY number", j=job["job"])
    # the kept originals wait for the retry: the archive's checks re-read them and call none extra;
    # bytes under a dossier that no job and no manifest accounts for still are
    stray = keys.original("H23.50-261202-0102", "0" * 64, "png")
    LocalStore(home / "store").put(stray, b"not a citizen's file", "image/png")
    code, out, err = cli("verify", "--all", "--fixity-only")
    assert code == 1 and "0 thay đổi, 0 thiếu, 1 thừa - KHÔNG ĐẠT" in out, out
    assert f"THỪA (extra): {stray}" in out and out.count("THỪA") == 1, out
    # an original no job holds: what leaves one is said (a database restored older than the store)
    assert "không lượt xử lý nào trong cơ sở dữ liệu giữ" in out and "bản sao lưu cơ sở dữ liệu mới nhất" in out, out
    assert "3 bản gốc được giữ cho lượt xử lý chưa thành tài liệu" in out, out
    monkeypatch.setenv("SOHOA_FIXITY_DAYS", "1")
    monkeypatch.setenv("SOHOA_FIXITY_INTERVAL", str(7 * 24 * 3600))  # the whole cycle in one slice
    code, out, err = cli("fixity")  # the rolling check (the Celery beat task's)
    assert code == 1 and f"THỪA (extra): {stray}" in out and out.count("THỪA") == 1, out
    assert "không lượt xử lý nào trong cơ sở dữ liệu giữ" in out, out
    assert "trong đó 3 bản gốc được giữ cho lượt xử lý chưa thành tài liệu" in out, out
    LocalStore(home / "store").delete(stray)
    # one of them gone: the retry could never finish, and the check says so, naming the job
    kept = home / "store" / originals[1]
    kept.rename(tmp_path / "away")
    code, out, err = cli("verify", "--all", "--fixity-only")
    assert code == 1 and f"THIẾU (missing): {originals[1]} (bản gốc giữ cho lượt xử lý {job['job']}" in out, out
    (tmp_path / "away").rename(kept)

    faulty_tesseract.write_text("")  # the fault is gone
    code, out, err = cli("retry", job["job"], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [p["file"] for p in result["pages"]] == ["a.png", "vuong.png", "b.png"]
    assert _sql(home, "SELECT number, updated FROM job_pages WHERE job_id = :j AND number != 2 ORDER BY number",
                j=job["job"]) == finished  # the finished pages were not done again
    assert [d["docId"] for d in manifest_of(home, code_)["documents"]] == [f"{code_}.001"]
    after = _status(cli, job["job"])[0]
    assert (after["state"], after["attempts"], after["pagesDone"]) == ("done", 2, 3)
    code, out, err = cli("verify", "--all", "--fixity-only")  # its originals now named by the manifest
    assert code == 0 and "0 thay đổi, 0 thiếu, 0 thừa - ĐẠT" in out and "được giữ" not in out, out
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Đơn", *files, "--json")
    assert code == 0 and json.loads(out)["duplicate"] is True  # the same files again: no second document
    assert _sql(home, "SELECT doc_id FROM documents WHERE dossier_code = :c", c=code_) == [(f"{code_}.001",)]
    row("tesseract crashes (SIGSEGV) on one page", "embedded",
        "job `failed`: \"1/3 trang lỗi ... vuong.png, trang 1: TesseractError\"; originals kept, no document; "
        "meanwhile `sohoa verify --all` and rolling fixity re-read the 3 kept originals and call none extra "
        "(held for the job; a stray object beside them is extra); "
        "`sohoa retry` → `done`, the 2 finished pages not redone, 1 document, indexed once",
        "test_faults.py::test_tesseract_crashing_on_one_page_fails_the_job_naming_it_and_a_retry_finishes")


def test_a_failed_job_given_up_is_never_run_again_and_its_originals_stay_with_the_dossier(
        cli, home, sheets, faulty_tesseract):
    """A failed job waited for a retry for ever: nothing could take it off the list. ``sohoa
    discard`` gives it up, with a reason in the access log; the citizen's files stay, checked."""
    code_ = "H23.50-261202-0103"
    files = [sheets / "a.png", sheets / "vuong.png"]
    faulty_tesseract.write_text("crash")
    assert cli("ingest", "--dossier", code_, "--title", "Đơn", *files)[0] == 13
    job = _status(cli, code_)[-1]["job"]
    faulty_tesseract.write_text("")  # a retry would now finish: the refusals below are the discard's
    code, out, err = cli("discard", job, "--reason", "nhầm")
    assert code == 2 and "lý do" in err, err
    assert _status(cli, job)[0]["state"] == "failed"
    code, out, err = cli("discard", job, "--reason", "Quét nhầm giấy tờ của hồ sơ khác")
    assert code == 0 and "Đã bỏ lượt xử lý" in out and "Bản gốc đã nhận vẫn được giữ" in out, out
    code, out, err = cli("status", code_)
    assert "đã bỏ (không chạy lại)" in out and "sohoa retry" not in out, out
    for again in (("retry", job), ("discard", job, "--reason", "Quét nhầm giấy tờ của hồ sơ khác")):
        code, out, err = cli(*again)
        assert code == 12 and "đã bị bỏ; không chạy lại được" in err, (again, err)
    assert _status(cli, job)[0]["state"] == "discarded"
    assert not [k for k in stored_keys(home) if "/documents/" in k]
    given_up = [e for e in audit_events(home) if e["action"] == "job" and e["outcome"] == "discard"]
    assert [(e["job"], e["reason"], len(e["originals"])) for e in given_up] == [
        (job, "Quét nhầm giấy tờ của hồ sơ khác", 2)]
    code, out, err = cli("verify", "--all", "--fixity-only")  # the originals kept, and counted as such
    assert code == 0 and "0 thừa - ĐẠT" in out and "2 bản gốc được giữ" in out, out
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Đơn", *files, "--json")
    assert code == 0, err  # the same papers sent again are a new job, not the discarded one
    (done,) = [j for j in _status(cli, code_) if j["job"] != job]  # both may be created within one second
    assert done["state"] == "done"
    code, out, err = cli("discard", done["job"], "--reason", "Quét nhầm giấy tờ của hồ sơ khác")
    assert code == 12 and "đã xong" in err, err
    row("a failed job given up (`sohoa discard JOB --reason`)", "embedded",
        "refused without a reason of 10 characters; then `discarded`: `sohoa retry` and a second discard refused "
        "(exit 12), the access log names who and why with the originals' SHA-256; the 2 originals stay and "
        "`verify --all` counts them held, not extra; the same files sent again make a new job; a done job "
        "cannot be discarded",
        "test_faults.py::test_a_failed_job_given_up_is_never_run_again_and_its_originals_stay_with_the_dossier")


def test_tesseract_hanging_on_one_page_of_an_embedded_ingest_is_stopped_at_the_page_time_limit(
        cli, home, sheets, faulty_tesseract, monkeypatch):
    """Without workers nothing stopped a tesseract that never ends: the command (or a web
    server's job) waited for ever. The page's time limit stops it there too: the page fails,
    named, the other is done, and a retry finishes the document."""
    code_ = "H23.50-261202-0102"
    monkeypatch.setenv("SOHOA_PAGE_TIME_LIMIT", "10")
    files = [sheets / "a.png", sheets / "vuong.png"]
    faulty_tesseract.write_text("hang")  # the square page's tesseract sleeps 120 s
    started = time.monotonic()
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Treo", *files)
    waited = time.monotonic() - started
    assert code == 13, err
    assert "vuong.png, trang 1: quá thời hạn 10 giây cho một trang" in err, err
    assert waited < 60, waited
    job = _status(cli, code_)[-1]
    assert (job["state"], job["pagesDone"], job["pagesFailed"]) == ("failed", 1, 1), job
    assert not (home / "store" / "dossiers" / code_ / "manifest.json").exists()
    faulty_tesseract.write_text("")
    code, out, err = cli("retry", job["job"], "--json")
    assert code == 0, err
    after = _status(cli, job["job"])[0]
    assert (after["state"], after["attempts"], after["pagesDone"]) == ("done", 2, 2)
    assert [d["docId"] for d in manifest_of(home, code_)["documents"]] == [f"{code_}.001"]
    row("tesseract hangs on one page of an embedded ingest", "embedded, SOHOA_PAGE_TIME_LIMIT=10",
        "tesseract killed at the limit; job `failed`: \"vuong.png, trang 1: quá thời hạn 10 giây cho "
        "một trang\"; the other page done; `sohoa retry` → `done` (attempt 2), 1 document",
        "test_faults.py::test_tesseract_hanging_on_one_page_of_an_embedded_ingest_is_stopped_at_the_page_time_limit")


def test_a_tesseract_that_never_ends_stops_an_intake_preview_at_the_page_time_limit(tmp_path, sheets,
                                                                                    faulty_tesseract):
    """The counter's upload previews each page (its orientation read by tesseract) before it
    answers: a tesseract that never ends held the operator's upload for ever. It is stopped at
    the page's time limit; the page is reported, named, the upload answers, and the same file
    sent again once tesseract works is added."""
    from pipeline import intake
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    draft = intake.create(store, "H23.50-261202-0103", "thu")
    files = [("a.png", (sheets / "a.png").read_bytes())]
    faulty_tesseract.write_text("hang-always")
    started = time.monotonic()
    after = intake.add_files(store, draft.id, files, max_pixels=150_000_000, owner="thu", time_limit=10)
    waited = time.monotonic() - started
    assert waited < 60, waited
    assert not after.pages
    assert [(e.file, e.page) for e in after.errors] == [("a.png", None)]
    assert "quá thời hạn 10 giây khi xem trước trang" in after.errors[0].message
    faulty_tesseract.write_text("")
    again = intake.add_files(store, draft.id, files, max_pixels=150_000_000, owner="thu", time_limit=10)
    assert [p.file for p in again.pages] == ["a.png"] and len(again.errors) == 1  # the first refusal stays listed
    row("tesseract hangs while an intake page is previewed", "counter upload, SOHOA_PAGE_TIME_LIMIT=10",
        "tesseract killed at the limit; the upload answers with \"a.png: quá thời hạn 10 giây khi xem trước "
        "trang\", no page added; the file sent again is added",
        "test_faults.py::test_a_tesseract_that_never_ends_stops_an_intake_preview_at_the_page_time_limit")


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB file system (tmpfs) to fill; unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.fail(f"Cannot mount a small tmpfs for the disk-full test (needs root): {done.stderr}", pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler to delete."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_under_sohoa_home_stores_nothing_partial_and_the_job_is_retried(
        cli, sheets, small_disk, tmp_path, monkeypatch):
    from pipeline import config, service
    from pipeline.models import IngestRequest

    home = small_disk / "home"
    monkeypatch.setenv("SOHOA_HOME", str(home))
    monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")
    monkeypatch.setenv("SOHOA_JOBS", "1")
    code_ = "H23.50-261202-0201"
    files = [sheets / "a.png", sheets / "c.png"]

    # full before the ingest: refused with what to do, nothing of it stored
    filler = fill(small_disk)
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Đơn", *files)
    assert code == 15 and "Hết chỗ trống trên đĩa" in err and "index.sqlite3" in err, err
    assert stored_keys(home) == [] and not list(small_disk.rglob(".tmp-*"))
    filler.unlink()

    # the store's disk fills once every page is read (the database is elsewhere): the job fails
    # with the reason, the dossier holds nothing half-written, and a retry finishes it
    monkeypatch.setenv("SOHOA_DATABASE_URL", f"sqlite:///{tmp_path / 'index.sqlite3'}")
    settings = config.load()

    def fill_when_read(done: int, total: int) -> None:
        if total and done == total:
            fill(small_disk)

    with pytest.raises(Exception) as raised:
        service.ingest(settings, IngestRequest(code_, tuple(files), "Đơn"), progress=fill_when_read)
    assert "Hết chỗ trống trên đĩa của kho lưu trữ" in str(raised.value), raised.value
    assert f"khi ghi dossiers/{code_}/documents/{code_}.001.pdf" in str(raised.value), raised.value
    job = _status(cli, code_)[-1]
    assert job["state"] == "failed" and "Hết chỗ trống trên đĩa" in job["error"]["message"], job
    assert job["pagesDone"] == 2
    assert not [k for k in stored_keys(home) if "/documents/" in k or k.endswith("manifest.json")]
    assert not list(small_disk.rglob(".tmp-*"))
    (small_disk / "filler").unlink()
    code, out, err = cli("retry", job["job"], "--json")
    assert code == 0, err
    assert [d["docId"] for d in manifest_of(home, code_)["documents"]] == [f"{code_}.001"]
    assert _status(cli, job["job"])[0]["state"] == "done"
    row("disk full under SOHOA_HOME before an ingest", "embedded (tmpfs of 8 MB)",
        "exit 15 \"Hết chỗ trống trên đĩa chứa cơ sở dữ liệu …index.sqlite3; hãy giải phóng chỗ trống rồi chạy lại\"; "
        "nothing stored, no temporary file",
        "test_faults.py::test_a_full_disk_under_sohoa_home_stores_nothing_partial_and_the_job_is_retried")
    row("disk of the store full while the document is written", "embedded (tmpfs of 8 MB)",
        "job `failed`: \"Hết chỗ trống trên đĩa của kho lưu trữ … khi ghi …pdf\"; no PDF, no manifest; "
        "space freed, `sohoa retry` → `done`, 1 document",
        "test_faults.py::test_a_full_disk_under_sohoa_home_stores_nothing_partial_and_the_job_is_retried")


def test_the_database_lost_during_an_embedded_ingest_is_named_and_the_job_retried(
        cli, home, sheets, monkeypatch):
    """No broker, a shared PostgreSQL: the connection drops once the pages are read. The officer
    is told which database to check; nothing of the document is stored; the job (which the
    database could not mark failed) is retried to one document, its pages not read again."""
    from pipeline import config, runtime, service
    from pipeline.errors import describe
    from pipeline.models import IngestRequest
    from storage import db
    from storage import jobs as job_table
    from storage.errors import DatabaseError

    code_ = "H23.50-261202-0401"
    files = [sheets / "a.png", sheets / "b.png"]
    with throwaway_pg_database("sohoa_faults") as pg_url:
        db.upgrade(db.create_engine(pg_url))
        relay = Relay(sa.engine.make_url(pg_url).port or 5432)
        try:
            monkeypatch.setenv("SOHOA_DATABASE_URL", sa.engine.make_url(pg_url).set(  # trust: the password is unused
                port=relay.port, password="mat-khau-bi-mat").render_as_string(hide_password=False))
            monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")
            monkeypatch.setenv("SOHOA_JOBS", "1")

            def cut_when_read(done: int, total: int) -> None:
                if total and done == total:
                    relay.cut()

            with pytest.raises(DatabaseError) as raised:
                service.ingest(config.load(), IngestRequest(code_, tuple(files), "Đơn"), progress=cut_when_read)
            message = raised.value.message_vi
            assert message.startswith(f"Không kết nối được cơ sở dữ liệu 127.0.0.1:{relay.port}/sohoa_faults"), message
            assert "mat-khau-bi-mat" not in f"{raised.value} {raised.value.detail}"  # the secret is never shown
            assert describe(raised.value).exit_code == 15  # what the command line exits with
            assert not [k for k in stored_keys(home) if "/documents/" in k or k.endswith("manifest.json")]
            relay.restore()
            job = _status(cli, code_)[-1]
            # as the outage left it: its pages read, each recorded as it finished; the process that
            # ran it is no longer running it, so it is retried at once
            assert job["state"] == "running" and job["pagesDone"] == 2, job
            rows = lambda: [(p["number"], p["worker"], p["updated"])  # noqa: E731
                            for p in job_table.get(runtime.database(config.load()), job["job"])["pages"]]
            read = rows()
            code, out, err = cli("retry", job["job"], "--json")
            assert code == 0, err
            assert len(json.loads(out)["pages"]) == 2 and rows() == read  # not read again
            assert [d["docId"] for d in manifest_of(home, code_)["documents"]] == [f"{code_}.001"]
            assert _status(cli, job["job"])[0]["state"] == "done"
        finally:
            relay.close()
    row("database (PostgreSQL) connection lost during an embedded ingest", "embedded, PostgreSQL",
        f"\"{message.split(';')[0].replace(str(relay.port), 'PORT').split('/sohoa_faults')[0]}/…; hãy kiểm tra máy chủ "
        "cơ sở dữ liệu rồi chạy lại\" (exit 15), no password shown; nothing stored; the pages read before it "
        "recorded; `sohoa retry` at once → `done`, pages not read again",
        "test_faults.py::test_the_database_lost_during_an_embedded_ingest_is_named_and_the_job_retried")


# ---------------------------------------------------------------------------- with workers


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed (is RabbitMQ running on 127.0.0.1:5672?): "
                    f"{done.stdout}{done.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Two `sohoa worker` processes (one page at a time each) with a RabbitMQ virtual host and
    a PostgreSQL database of their own, both reached through relays that a test can cut, and
    the faulty tesseract first on their PATH (harmless until its fault file says otherwise)."""
    from storage import db

    root = tmp_path_factory.mktemp("fault-workers")
    vhost = f"sohoa-faults-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    procs: list[subprocess.Popen] = []
    try:
        with throwaway_pg_database("sohoa_faults") as pg_url:
            direct = db.create_engine(pg_url)
            db.upgrade(direct)
            broker, database = Relay(5672), Relay(sa.engine.make_url(pg_url).port or 5432)
            tess_bin, fault = tesseract_wrapper(root)
            env = {**os.environ, "SOHOA_HOME": str(root / "home"), "SOHOA_JOBS": "1",
                   "SOHOA_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{broker.port}/{vhost}",
                   "SOHOA_DATABASE_URL": sa.engine.make_url(pg_url).set(port=database.port).render_as_string(
                       hide_password=False),
                   "SOHOA_OCR_ENGINE": "tesseract", "SOHOA_PAGE_TIME_LIMIT": "20",
                   "PATH": f"{tess_bin}:{os.environ['PATH']}", "SOHOA_TEST_TESSERACT_FAULT": str(fault)}
            for name in ("SOHOA_STORAGE", "SOHOA_S3_ENDPOINT"):
                env.pop(name, None)

            class Workers:
                def __init__(self):
                    self.env, self.home, self.engine = env, root / "home", direct
                    self.broker, self.database, self.fault = broker, database, fault

                def sohoa(self, *args, timeout: float = 600) -> subprocess.CompletedProcess:
                    return subprocess.run([SOHOA, *map(str, args)], env=env, capture_output=True, text=True,
                                          timeout=timeout)

                def start(self, *args) -> subprocess.Popen:
                    return subprocess.Popen([SOHOA, *map(str, args)], env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)

                def pages_done(self, job_or_code: str) -> int:
                    with direct.connect() as conn:
                        return conn.execute(sa.text(
                            "SELECT count(*) FROM job_pages p JOIN jobs j ON j.id = p.job_id WHERE p.state = 'done' "
                            "AND (j.dossier = :r OR j.id = :r)"), {"r": job_or_code}).scalar()

                def wait_pages(self, code: str, n: int, proc: subprocess.Popen, within: float = 300) -> None:
                    deadline = time.monotonic() + within
                    while self.pages_done(code) < n:
                        assert time.monotonic() < deadline and proc.poll() is None, proc.poll() and proc.stderr.read()
                        time.sleep(0.2)

                def check_once(self, code: str, titles: list[str]) -> None:
                    """Each document of the dossier once, in its manifest and in the index."""
                    manifest = manifest_of(self.home, code)
                    assert [d["title"] for d in manifest["documents"]] == titles
                    with direct.connect() as conn:
                        indexed = conn.execute(sa.text("SELECT doc_id FROM documents WHERE dossier_code = :c "
                                                       "ORDER BY doc_id"), {"c": code}).scalars().all()
                    assert indexed == [d["docId"] for d in manifest["documents"]]
                    pdfs = [k for k in stored_keys(self.home) if k.startswith(f"dossiers/{code}/documents/")
                            and k.endswith(".pdf")]
                    assert len(pdfs) == len(titles), pdfs  # no second copy left by a redelivered task

            for n in range(2):
                log = open(root / f"worker-{n}.log", "w")
                procs.append(subprocess.Popen([SOHOA, "worker", "--concurrency", "1"], env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
            yield Workers()
            for proc in procs:
                assert proc.poll() is None, f"a worker died: {(root / 'worker-0.log').read_text()[-3000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        _rabbitmqctl("delete_vhost", vhost)


def test_the_broker_connection_cut_mid_job_loses_no_page_and_stores_once(workers, sheets):
    code_ = "H23.50-261202-0301"
    files = [sheets / n for n in ("a.png", "b.png", "c.png", "a.png")][:3]
    ingest = workers.start("ingest", "--dossier", code_, "--title", "Qua môi giới", "--json", *files)
    workers.wait_pages(code_, 1, ingest)
    workers.broker.cut()  # every worker loses the broker mid-task; nobody can reconnect
    time.sleep(5)
    workers.broker.restore()
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert len(json.loads(out)["pages"]) == 3
    status = json.loads(workers.sohoa("status", code_, "--json").stdout)
    assert [(j["state"], j["attempts"], j["pagesDone"]) for j in status] == [("done", 1, 3)]
    workers.check_once(code_, ["Qua môi giới"])
    row("broker connection cut for 5 s mid-job (RabbitMQ)", "2 workers, PostgreSQL",
        "workers reconnect, unacknowledged tasks redelivered; job `done` at attempt 1, 3/3 pages, "
        "1 document, indexed once",
        "test_faults.py::test_the_broker_connection_cut_mid_job_loses_no_page_and_stores_once")


def test_a_job_that_cannot_be_handed_to_the_workers_fails_with_the_reason_and_is_retried(workers, sheets, tmp_path):
    """The broker down when a document is sent: `sohoa ingest` said "Lỗi không mong đợi" (exit
    70) and left the job 'đang chờ' for ever (an upload's job too, with no retry offered). The
    job now fails with the reason, its files kept, exit 16; `sohoa retry` sends it once the
    broker is back."""
    code_ = "H23.50-261202-0304"
    workers.broker.cut()
    try:
        sent = workers.sohoa("ingest", "--dossier", code_, "--title", "Khi mất hàng đợi", sheets / "a.png",
                             timeout=300)
    finally:
        workers.broker.restore()
    assert sent.returncode == 16, sent.stderr
    assert "Không kết nối được hàng đợi việc cho các worker" in sent.stderr and "guest:***@" in sent.stderr
    job = json.loads(workers.sohoa("status", code_, "--json").stdout)[-1]
    assert job["state"] == "failed" and "hàng đợi" in job["error"]["message"], job
    assert any(k.startswith(f"dossiers/{code_}/originals/") for k in stored_keys(workers.home))
    retried = workers.sohoa("retry", job["job"], "--json")
    assert retried.returncode == 0, retried.stderr
    workers.check_once(code_, ["Khi mất hàng đợi"])
    # a bulk run's document: its retry never finished (the pages of a bulk job leave the
    # finishing task to the bulk run, and none was running)
    backlog = tmp_path / "kho" / "H23.50-261202-0305"
    backlog.mkdir(parents=True)
    shutil.copy(sheets / "b.png", backlog / "01_Don.png")
    (tmp_path / "kho" / "H23.50-261202-0306").mkdir()
    shutil.copy(sheets / "c.png", tmp_path / "kho" / "H23.50-261202-0306" / "01_To khai.png")
    workers.broker.cut()
    try:
        run = workers.sohoa("bulk", tmp_path / "kho", "--json", timeout=300)
    finally:
        workers.broker.restore()
    items = json.loads(run.stdout)["items"]
    assert run.returncode == 1 and "hàng đợi" in items[0]["error"], run.stdout
    # the next documents are not stored to fail alike: the run stops sending, and says how to go on
    assert items[1]["status"] == "stopped" and "sohoa bulk" in items[1]["error"], items
    assert not [k for k in stored_keys(workers.home) if k.startswith("dossiers/H23.50-261202-0306/")]
    job = json.loads(workers.sohoa("status", "H23.50-261202-0305", "--json").stdout)[-1]
    retried = workers.sohoa("retry", job["job"], "--json", timeout=300)
    assert retried.returncode == 0, retried.stderr
    workers.check_once("H23.50-261202-0305", ["Don"])
    again = workers.sohoa("bulk", tmp_path / "kho", "--json", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    workers.check_once("H23.50-261202-0306", ["To khai"])
    row("broker unreachable when a document is sent", "2 workers, PostgreSQL",
        "exit 16 \"Không kết nối được hàng đợi việc cho các worker (amqp://guest:***@…)\"; job `failed` with that "
        "reason, its original stored; `sohoa retry` once the broker is back → `done`, 1 document (a bulk run's "
        "document too, finished by its own pages; the run stops sending the next ones, `stopped`, done by running it "
        "again)",
        "test_faults.py::test_a_job_that_cannot_be_handed_to_the_workers_fails_with_the_reason_and_is_retried")


def test_the_database_unreachable_mid_job_is_waited_out(workers, sheets):
    code_ = "H23.50-261202-0302"
    files = [sheets / n for n in ("b.png", "c.png", "a.png")]
    ingest = workers.start("ingest", "--dossier", code_, "--title", "Khi mất CSDL", "--json", *files)
    workers.wait_pages(code_, 1, ingest)
    workers.database.cut()  # connections dropped, new ones refused
    time.sleep(5)
    workers.database.restore()
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert len(json.loads(out)["pages"]) == 3
    status = json.loads(workers.sohoa("status", code_, "--json").stdout)
    assert [(j["state"], j["attempts"], j["pagesDone"]) for j in status] == [("done", 1, 3)]
    workers.check_once(code_, ["Khi mất CSDL"])
    row("database (PostgreSQL) unreachable for 5 s mid-job", "2 workers, RabbitMQ",
        "tasks retried with backoff, the waiting `sohoa ingest` keeps waiting; job `done` at attempt 1, "
        "1 document, indexed once", "test_faults.py::test_the_database_unreachable_mid_job_is_waited_out")


def test_tesseract_hanging_on_one_page_is_stopped_at_the_time_limit_and_retried(workers, sheets):
    code_ = "H23.50-261202-0303"
    files = [sheets / n for n in ("a.png", "vuong.png")]
    workers.fault.write_text("hang")
    try:
        done = workers.sohoa("ingest", "--dossier", code_, "--title", "Treo", *files, timeout=300)
    finally:
        workers.fault.write_text("")
    assert done.returncode == 13, done.stderr
    assert "vuong.png, trang 1: quá thời hạn 18 giây" in done.stderr, done.stderr
    assert _left_running(workers.home) == []  # the hung tesseract was killed, not left to its own end
    job = json.loads(workers.sohoa("status", code_, "--json").stdout)[-1]
    assert (job["state"], job["pagesDone"], job["pagesFailed"]) == ("failed", 1, 1), job
    assert not (workers.home / "store" / "dossiers" / code_ / "manifest.json").exists()
    retried = workers.sohoa("retry", job["job"], "--json")
    assert retried.returncode == 0, retried.stderr
    after = json.loads(workers.sohoa("status", job["job"], "--json").stdout)[0]
    assert (after["state"], after["attempts"], after["pagesDone"]) == ("done", 2, 2)
    workers.check_once(code_, ["Treo"])
    row("tesseract hangs on one page", "2 workers, SOHOA_PAGE_TIME_LIMIT=20",
        "stopped 3 s before the soft limit, tesseract killed; job `failed`: \"vuong.png, trang 1: quá thời hạn 18 "
        "giây cho một trang\"; worker alive; `sohoa retry` → `done` (attempt 2), 1 document",
        "test_faults.py::test_tesseract_hanging_on_one_page_is_stopped_at_the_time_limit_and_retried")


def _left_running(home: Path) -> list[str]:
    """Recognisers and renderers the workers of ``home`` started that still run (after a job
    ended, none should)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            name = (proc / "comm").read_text().strip()
            if name in ("tesseract", "pdftoppm", "sleep") and \
                    f"SOHOA_HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name} {name}")
        except OSError:  # not a process, or one that ended meanwhile
            continue
    return found


def test_a_pdf_page_too_slow_to_rasterise_is_stopped_at_the_time_limit_and_poppler_with_it(workers, tmp_path):
    """A page painted with a pattern a fiftieth of a point wide keeps pdftoppm busy for many
    minutes. The worker's time limit failed the job naming the page, but each attempt left its
    pdftoppm running at full speed (the bad-input review): retries piled them up."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    tile = pikepdf.Stream(pdf, b"0 g 0 0 0.01 0.01 re f", Type=pikepdf.Name.Pattern, PatternType=1, PaintType=1,
                          TilingType=1, BBox=[0, 0, 0.02, 0.02], XStep=0.02, YStep=0.02,
                          Resources=pikepdf.Dictionary())
    page.Resources = pikepdf.Dictionary(Pattern=pikepdf.Dictionary(P0=tile))
    page.Contents = pikepdf.Stream(pdf, b"/Pattern cs /P0 scn 0 0 595 842 re f")
    slow = tmp_path / "hoa van.pdf"
    pdf.save(slow)
    code_ = "H23.50-261202-0304"
    done = workers.sohoa("ingest", "--dossier", code_, "--title", "Hoa văn", slow, timeout=300)
    assert done.returncode == 13, done.stderr
    assert "hoa van.pdf, trang 1: quá thời hạn 18 giây" in done.stderr, done.stderr
    assert _left_running(workers.home) == []
    row("a PDF page too slow to rasterise (a pattern 0.02 pt wide)", "2 workers, SOHOA_PAGE_TIME_LIMIT=20",
        "stopped 3 s before the soft limit, pdftoppm killed with it (it ran on for minutes); job `failed`: "
        "\"hoa van.pdf, trang 1: quá thời hạn 18 giây cho một trang\"",
        "test_faults.py::test_a_pdf_page_too_slow_to_rasterise_is_stopped_at_the_time_limit_and_poppler_with_it")


def _a_page_of_another_version(home, rendered, tmp_path, code: str):
    """A job of two pages, both read, page 1's result as a worker of another version left it: its
    own reading (every word "CŨCŨ"), under its own key (the key names the page stage's version).
    Returns (context, job id, files, page 2's row)."""
    from tests.conftest import save_page
    from pipeline import config, jobs, service
    from pipeline.ingest import IngestContext
    from pipeline.models import IngestRequest
    from pipeline.pages import PageCache
    from storage import jobs as job_table, keys

    files = [save_page(rendered(f"two-versions-{n}", layout="text", seed=81 + n, dpi=200, max_body_lines=5),
                       tmp_path / f"{n}.png") for n in (1, 2)]
    settings = config.load({"SOHOA_HOME": str(home)})
    ctx = IngestContext(store=service.open_store(settings), db=service.database(settings),
                        executor=service.page_executor(settings, 1), ocr=settings.ocr)
    job = jobs.submit(ctx, IngestRequest(code, tuple(str(f) for f in files), "Đơn", unsigned=True)).job
    for number in (1, 2):
        jobs.run_page(ctx.store, ctx.db, job, number, worker="w1")
    first, second = job_table.get(ctx.db, job)["pages"]
    older = {k: v for k, v in json.loads(ctx.store.get(keys.page_result(first["result_key"], "json"))).items()
             if k != "code"}
    older_key = "0" * 64
    older.update(image_key=older_key, words=[{**w, "text": "CŨCŨ"} for w in older["words"]])
    older["text"] = " ".join(w["text"] for w in older["words"])
    ctx.store.put(keys.page_result(older_key, "img"), ctx.store.get(keys.page_result(first["result_key"], "img")),
                  "application/octet-stream", {"kind": "page-image"})
    ctx.store.put(keys.page_result(older_key, "json"), json.dumps(older, ensure_ascii=False).encode(),
                  "application/json", {"kind": "page-result"})
    PageCache(ctx.store).discard([first["result_key"]])
    job_table.page_settled(ctx.db, job, 1, state="done", now="2026-12-03T00:00:00+07:00", result_key=older_key,
                           error=None, worker="w0")
    return ctx, job, files, second


def _built_from_this_version(ctx, rendered, code: str, doc_id: str) -> None:
    from storage import keys

    text = ctx.store.get(keys.document_text(code, doc_id)).decode()
    assert "CŨCŨ" not in text  # read again: not the other version's words
    truth = rendered("two-versions-1").truth_lines[0].split()
    assert sum(word in text for word in truth) >= len(truth) - 2, text


def test_a_page_read_by_another_version_of_the_page_stage_is_read_again_before_the_document_is_built(
        home, rendered, tmp_path):
    """Workers of two versions at once (an upgrade under way): a page result left by a worker of
    another version may not mean what this version's PDF makes of it (the scan deskewed by the
    page stage, or turned by the PDF), so the finishing worker reads that page again itself, and
    the other version's result leaves the page cache with the rest."""
    from tests.conftest import audit_events, cached_pages
    from pipeline import jobs
    from storage import jobs as job_table

    code = "H23.50-261203-0081"
    ctx, job, files, second = _a_page_of_another_version(home, rendered, tmp_path, code)
    summary = jobs.finish(ctx, job)
    _built_from_this_version(ctx, rendered, code, summary.doc_id)
    rereads = [e for e in audit_events(home) if e["action"] == "page" and e["outcome"] == "reread"]
    assert [(e["file"], e["page"], e["readBy"]) for e in rereads] == [(files[0].name, 1, None)]
    pages = job_table.get(ctx.db, job)["pages"]
    assert [(p["state"], p["worker"]) for p in pages] == [("done", jobs.REREAD), ("done", "w1")]
    assert pages[1]["result_key"] == second["result_key"]  # a page of this version is not read again
    assert job_table.get(ctx.db, job)["state"] == "done" and summary.reused_pages == 0
    assert cached_pages(home) == []
    row("a page read by a worker of another version (an upgrade under way)", "workers",
        "the finishing worker reads that page again itself, within the page time limit (audit `page` `reread`, "
        "with the other version when its result names one); the document is built from this version's "
        "readings only; the other version's result leaves the cache",
        "test_faults.py::test_a_page_read_by_another_version_of_the_page_stage_is_read_again_before_the_document_is_built")


def test_a_retry_here_reads_a_page_of_another_version_again_with_the_pending_pages(home, rendered, tmp_path):
    """Without workers (a retry, the web server, a bulk run here), such a page is one of the pages
    still to do: read again by the page pool, within its time limit, with the others."""
    from tests.conftest import audit_events, cached_pages
    from pipeline import jobs
    from storage import jobs as job_table

    code = "H23.50-261203-0082"
    ctx, job, _, _ = _a_page_of_another_version(home, rendered, tmp_path, code)
    assert jobs.pending_work(ctx.db, job)[1] == [1]
    summary = jobs.run_locally(ctx, job)
    _built_from_this_version(ctx, rendered, code, summary.doc_id)
    assert not [e for e in audit_events(home) if e["action"] == "page" and e["outcome"] == "reread"]
    assert [p["worker"] for p in job_table.get(ctx.db, job)["pages"]] == [jobs.process_name(), "w1"]  # read here
    assert cached_pages(home) == []
    row("a page read by another version, the job retried without workers", "embedded",
        "the page is one of those still to do: read again by the page pool with the others; the document is built "
        "from this version's readings only; the other version's result leaves the cache",
        "test_faults.py::test_a_retry_here_reads_a_page_of_another_version_again_with_the_pending_pages")


# faults whose trials live in other files, as those tests assert them
ELSEWHERE = [
    ("worker killed (SIGKILL) mid-task during a bulk run", "2 workers, Redis, PostgreSQL",
     "its tasks redelivered to the other worker; every dossier complete once, in order; a second `sohoa bulk` "
     "skips every input", "test_workers.py::test_a_worker_killed_mid_run_loses_nothing_and_a_second_bulk_does_nothing"),
    ("`sohoa bulk` killed (SIGKILL) halfway", "embedded",
     "run again: finished documents skipped, the rest converted; each document once, in order",
     "test_bulk.py::test_a_bulk_run_killed_halfway_is_resumed_and_nothing_is_converted_twice"),
    ("S3 server (Ceph RGW) stopped for 15 s mid-job", "2 workers, Redis, PostgreSQL",
     "tasks retried with backoff, the ingest waits; job `done` at attempt 1 with no operator action",
     "test_workers.py::test_the_object_store_stopped_during_a_job_recovers_by_retry"),
    ("worker without OCR models (every page fails)", "workers, Redis, PostgreSQL",
     "job `failed` naming file and page; `sohoa retry` on a sound worker → `done`, finished pages not redone",
     "test_workers.py::test_a_failed_job_is_retried_without_redoing_finished_pages"),
    ("disposal approved while the dossier has a job queued, and one failed", "embedded",
     "refused while a job is queued, running or finishing, nothing touched; then the failed job is given up "
     "(`discarded`, retry refused) and its original removed and listed in the disposal record with the job; "
     "`verify --all` and rolling fixity find nothing left; the disposed code refuses a new ingest and a counter draft",
     "test_disposal.py::test_disposal_waits_for_running_jobs_removes_failed_jobs_files_and_the_code_takes_no_new_"
     "document"),
    ("disposal cut short before its manifest (the store's lock on it)", "embedded",
     "the pending record stays; an upload and a retry of the dossier are refused (\"đang được hủy\"), nothing "
     "stored; once the lock runs out a second run finishes, nothing left over",
     "test_disposal.py::test_a_disposal_cut_short_closes_its_code_to_uploads_and_retries_until_it_is_finished"),
    ("a discard landing while a finishing task commits, or between a retry's check and its update", "embedded",
     "the first to move the job wins: the discard is refused while the job is finishing (it ends `done`), the "
     "retry refused once the job is discarded",
     "test_disposal.py::test_a_discard_racing_a_finishing_task_or_a_retry_leaves_one_of_them_whole"),
]
HERE = ["tesseract crashes (SIGSEGV) on one page", "a failed job given up (`sohoa discard JOB --reason`)",
        "tesseract hangs on one page of an embedded ingest",
        "tesseract hangs while an intake page is previewed", "tesseract hangs on one page",
        "a PDF page too slow to rasterise (a pattern 0.02 pt wide)",
        "disk full under SOHOA_HOME before an ingest", "disk of the store full while the document is written",
        "database (PostgreSQL) connection lost during an embedded ingest",
        "broker connection cut for 5 s mid-job (RabbitMQ)", "broker unreachable when a document is sent",
        "database (PostgreSQL) unreachable for 5 s mid-job",
        "a page read by a worker of another version (an upgrade under way)",
        "a page read by another version, the job retried without workers"]


def test_the_faults_table_in_the_docs_is_what_the_tests_observed():
    missing = [fault for fault in HERE if fault not in ROWS]
    assert not missing, f"run the whole of tests/test_faults.py: the table needs every trial ({missing} not run)"
    check_table("faults", ("Fault", "Where", "Outcome", "Test"), [ROWS[fault] for fault in HERE] + ELSEWHERE)


def test_a_second_finishing_task_after_the_document_was_stored_ends_the_job_done(cli, home, rendered, tmp_path):
    """After an outage longer than the broker's visibility timeout, a page task is delivered twice,
    settles its page again and sends one more finishing task. One that reads the job after the
    first stored the document and cleared its pages from the cache, but before that one recorded
    the job done, once found every page "gone", queued them again and failed the job."""
    from tests.conftest import audit_events, cached_pages, save_page
    from pipeline import config, jobs, service
    from pipeline.ingest import IngestContext
    from storage import jobs as job_table

    code = "H23.50-261201-0079"
    scan = save_page(rendered("finished-twice", layout="text", seed=79, dpi=200, max_body_lines=6), tmp_path / "p.png")
    exit_code, out, err = cli("ingest", "--dossier", code, "--title", "Đơn", "--unsigned", "--json", str(scan))
    assert exit_code == 0, err
    doc_id = json.loads(out)["docId"]
    settings = config.load({"SOHOA_HOME": str(home)})
    db = service.database(settings)
    exit_code, out, _ = cli("status", code, "--json")
    (job,) = json.loads(out)
    # the second task reads the job as the first left it before recording it done
    assert job_table.set_state(db, job["job"], "finishing", now="2026-12-03T00:00:00+07:00")
    ctx = IngestContext(store=service.open_store(settings), db=db, executor=service.page_executor(settings, 1),
                        ocr=settings.ocr)
    assert jobs.finish(ctx, job["job"]).doc_id == doc_id
    exit_code, out, _ = cli("status", code, "--json")
    (after,) = json.loads(out)
    assert (after["state"], after["attempts"], after["pagesDone"], after["docId"]) == ("done", 1, 1, doc_id)
    assert len(manifest_of(home, code)["documents"]) == 1
    # nothing read again and left in the cache: the page was gone because its document is stored
    assert not [e for e in audit_events(home) if e["action"] == "page" and e["outcome"] == "reread"]
    assert cached_pages(home) == []



def test_a_page_task_failing_for_a_reason_of_its_worker_fails_the_page_and_the_job_ends(home, rendered, tmp_path,
                                                                                        monkeypatch):
    """A worker's own fault (its database connection left in a transaction by another process,
    the bad-input review) raised out of the page task: the job stayed "running", no error, until
    someone retried it. Now the page fails with the reason and the job ends failed, for `sohoa retry`."""
    from tests.conftest import save_page
    from pipeline import config, jobs, service, tasks
    from pipeline.ingest import IngestContext
    from pipeline.models import IngestRequest
    from storage import jobs as job_table

    scan = save_page(rendered("worker-fault", layout="text", seed=5, dpi=200, max_body_lines=4), tmp_path / "to.png")
    settings = config.load({"SOHOA_HOME": str(home)})
    ctx = IngestContext(store=service.open_store(settings), db=service.database(settings),
                        executor=service.page_executor(settings, 1), ocr=settings.ocr)
    job = jobs.submit(ctx, IngestRequest("H23.50-261202-0305", (str(scan),), "Đơn", unsigned=True)).job
    monkeypatch.setitem(tasks._state, "settings", settings)
    finishing = []
    monkeypatch.setattr(tasks, "send_finish", lambda _settings, job_id, code: finishing.append(job_id))

    def garbled(*args, **kwargs):
        raise sa.exc.ProgrammingError("UPDATE job_pages SET error = %(error)s", {"error": "riêng tư"},
                                      Exception("can't change 'autocommit' now"))

    monkeypatch.setattr(tasks.jobs, "run_page", garbled)
    tasks.page(job, 1)
    [page] = job_table.get(ctx.db, job)["pages"]
    assert page["state"] == "failed", page
    assert "to.png, trang 1: lỗi của worker (ProgrammingError" in page["error"] and "riêng tư" not in page["error"]
    assert finishing == [job]  # every page settled: its document is finished, and the job ends failed with it
    with pytest.raises(Exception, match="lỗi của worker"):
        jobs.finish(ctx, job)
    assert job_table.get(ctx.db, job)["state"] == "failed"


def test_a_document_stored_as_the_database_went_away_is_indexed_when_its_finishing_runs_again(home, rendered,
                                                                                               tmp_path, monkeypatch):
    """The database lost between the document's store and its index (the chaos review: an
    outage as a bulk run committed): the retried finishing found the document stored and took
    it as a duplicate, so it was done, in the bulk report, and never found by search."""
    from tests.conftest import cached_pages, save_page
    from pipeline import audit, config, jobs, service
    from pipeline.models import IngestRequest
    from storage import jobs as job_table
    from storage.errors import DatabaseError

    code = "H23.50-261202-0306"
    scan = save_page(rendered("lost-index", layout="text", seed=83, dpi=200, max_body_lines=5), tmp_path / "p.png")
    settings = config.load({"SOHOA_HOME": str(home)})
    ctx = service.ingest_context(settings, executor=service.page_executor(settings, 1))
    job = jobs.submit(ctx, IngestRequest(code, (str(scan),), "Đơn", unsigned=True)).job
    jobs.run_page(ctx.store, ctx.db, job, 1)
    real = audit.record

    def database_gone(db, action, outcome=None, **fields):
        if (action, outcome) == ("ingest", "success"):
            raise DatabaseError("Không kết nối được cơ sở dữ liệu", "database unreachable")
        return real(db, action, outcome, **fields)

    monkeypatch.setattr(audit, "record", database_gone)
    with pytest.raises(DatabaseError):
        jobs.finish(ctx, job)
    assert len(manifest_of(home, code)["documents"]) == 1  # stored, not yet indexed
    word = next(w for w in rendered("lost-index").truth_lines[0].split() if len(w) > 3)
    assert code not in {h.dossier_code for h in service.search(settings, word).hits}
    monkeypatch.setattr(audit, "record", real)

    assert jobs.finish(ctx, job).doc_id == f"{code}.001"  # the task retried
    assert code in {h.dossier_code for h in service.search(settings, word).hits}
    # its creation is in the access log, late, not taken for a duplicate of itself
    events = [(e["action"], e["outcome"], e.get("docId")) for e in audit.tail(ctx.db, 20, dossier=code)]
    assert ("ingest", "success", f"{code}.001") in events and ("ingest", "duplicate", f"{code}.001") not in events
    assert job_table.get(ctx.db, job)["state"] == "done"
    assert cached_pages(home) == []  # its page results are not left behind either


def test_a_full_temporary_disk_while_the_pdf_is_written_is_said_and_the_job_retried(
        cli, sheets, small_disk, tmp_path, monkeypatch):
    """The bulk review filled the finishing worker's temporary folder: writing the PDF/A or signing
    it failed "Lỗi không mong đợi" (exit 70), with no traceback anywhere, as if for good. It is the
    machine's disk, named with what to do; with workers the finishing task waits it out (an
    outage, as in the page stage), and here a retry once there is room finishes the document."""
    import tempfile

    from pipeline import config, service
    from pipeline.models import IngestRequest

    home = tmp_path / "home"
    monkeypatch.setenv("SOHOA_HOME", str(home))
    monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")
    monkeypatch.setenv("SOHOA_JOBS", "1")
    code_ = "H23.50-261205-0203"
    settings = config.load()
    filled = []

    def fill_when_read(done: int, total: int) -> None:
        if total and done == total and not filled:
            monkeypatch.setattr(tempfile, "tempdir", str(small_disk))  # the folder the PDF is written in
            filled.append(fill(small_disk))

    with pytest.raises(Exception) as raised:
        service.ingest(settings, IngestRequest(code_, (sheets / "a.png",), "Đơn"), progress=fill_when_read)
    assert filled and "Hết chỗ trống trên đĩa của máy xử lý" in str(raised.value), raised.value
    job = _status(cli, code_)[-1]
    assert job["state"] == "failed" and job["error"]["code"] != "internal", job
    assert "Hết chỗ trống trên đĩa của máy xử lý" in job["error"]["message"] and job["error"]["server"], job
    assert not [k for k in stored_keys(home) if "/documents/" in k or k.endswith("manifest.json")]
    filled[0].unlink()
    code, out, err = cli("retry", job["job"], "--json")
    assert code == 0, err
    assert [d["docId"] for d in manifest_of(home, code_)["documents"]] == [f"{code_}.001"]


def test_a_full_disk_on_the_machine_reading_a_page_is_an_outage_to_wait_out_not_a_bad_page(home, rendered, tmp_path,
                                                                                            monkeypatch):
    """A worker's temporary folder full (the chaos review): every page failed as if it were bad,
    "OSError: [Errno 28] No space left on device", and no retry came once space was freed. Now it
    is an outage (retried as a store outage is), said in Vietnamese with the machine and folder;
    a decoder's own OSError stays the page's error."""
    import errno
    import socket

    from tests.conftest import save_page
    from pipeline import config, jobs, pages, service
    from pipeline.models import IngestRequest
    from storage import jobs as job_table
    from storage.errors import StorageUnavailable

    scan = save_page(rendered("disk-full", layout="text", seed=84, dpi=200, max_body_lines=4), tmp_path / "p.png")
    settings = config.load({"SOHOA_HOME": str(home)})
    ctx = service.ingest_context(settings, executor=service.page_executor(settings, 1))
    job = jobs.submit(ctx, IngestRequest("H23.50-261202-0307", (str(scan),), "Đơn", unsigned=True)).job

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/sohoa-originals-1/p.png")

    monkeypatch.setattr(pages, "load_page", full)
    with pytest.raises(StorageUnavailable) as raised:
        jobs.run_page(ctx.store, ctx.db, job, 1)
    assert raised.value.message_vi.startswith(f"Hết chỗ trống trên đĩa của máy xử lý {socket.gethostname()} "
                                              "(/tmp/sohoa-originals-1/p.png)")
    assert job_table.get(ctx.db, job)["pages"][0]["state"] != "failed"  # not settled: the task is retried

    def damaged(*args, **kwargs):
        raise OSError("image file is truncated")

    monkeypatch.setattr(pages, "load_page", damaged)
    jobs.run_page(ctx.store, ctx.db, job, 1)
    [page] = job_table.get(ctx.db, job)["pages"]
    assert page["state"] == "failed" and "image file is truncated" in page["error"]


def test_a_document_held_behind_a_failed_one_on_workers_ends_failed_and_the_next_run_converts_it(workers, sheets,
                                                                                                 tmp_path):
    """Every page failing on a broken worker (the chaos review): the document held behind its
    dossier's failed first one stayed "đang xử lý" for good, `sohoa retry` refused it, and the next
    run, on sound workers, finished it with its old errors; only a third run converted it."""
    from PIL import Image, ImageDraw

    code_ = "H23.50-261202-0309"
    source = tmp_path / "nguon"
    (source / code_).mkdir(parents=True)
    shutil.copy(sheets / "vuong.png", source / code_ / "1 Đơn.png")
    other = Image.open(sheets / "vuong.png")
    ImageDraw.Draw(other).rectangle((10, 10, 30, 30), fill=0)  # another square page: the fault takes it too
    other.save(source / code_ / "2 Tờ khai.png", dpi=(300, 300))
    workers.fault.write_text("crash")
    try:
        first = workers.sohoa("bulk", source, "--json", timeout=300)
    finally:
        workers.fault.write_text("")
    items = {i["source"]: i for i in json.loads(first.stdout)["items"]}
    held = items[f"{code_}/2 Tờ khai.png"]
    assert (items[f"{code_}/1 Đơn.png"]["status"], held["status"]) == ("failed", "held"), first.stdout
    [job] = json.loads(workers.sohoa("status", held["job"], "--json").stdout)
    assert job["state"] == "failed" and "giữ đúng thứ tự" in job["error"]["message"], job

    second = workers.sohoa("bulk", source, "--json", timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [i["status"] for i in json.loads(second.stdout)["items"]] == ["done", "done"]
    workers.check_once(code_, ["Đơn", "Tờ khai"])
