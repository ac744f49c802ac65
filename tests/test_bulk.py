"""`sohoa bulk` on the embedded default (no broker): a backlog converted document by document,
a bad file reported without stopping the batch, and a run killed halfway resumed by running it
again, nothing converted twice."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import interruptible, manifest_of, save_page

SOHOA = str(Path(sys.executable).with_name("sohoa"))
CODES = [f"H23.50-261201-{n:04d}" for n in range(41, 45)]


def backlog(rendered, root: Path, codes=CODES, *, dpi: int = 150, seed: int = 800) -> dict[str, list[str]]:
    """A folder per dossier holding one or two documents of one page each; the titles planned."""
    planned = {}
    for i, code in enumerate(codes):
        (root / code).mkdir(parents=True)
        titles = ["Đơn đề nghị", "Bản sao giấy tờ"][: 1 + i % 2]
        for k, title in enumerate(titles, start=1):
            save_page(rendered(f"bulk{seed}-{i}{k}", layout="text", seed=seed + 10 * i + k, dpi=dpi),
                      root / code / f"{k:02d} - {title}.png")
        planned[code] = titles
    return planned


def test_a_bulk_run_killed_halfway_is_resumed_and_nothing_is_converted_twice(home, rendered, tmp_path):
    planned = backlog(rendered, tmp_path / "kho")
    inputs = sum(len(t) for t in planned.values())
    env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_JOBS": "1"}
    first = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho")], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (home / "store" / "dossiers" / CODES[1] / "manifest.json").exists():
        assert time.monotonic() < deadline and first.poll() is None, "the first run did not get going"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the power goes off
    first.wait()

    again = subprocess.run([SOHOA, "bulk", str(tmp_path / "kho"), "--report", str(tmp_path / "bao-cao.json"),
                            "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    totals = json.loads(again.stdout)["totals"]
    assert totals["documents"] == inputs and totals["done"] + totals["skipped"] == inputs
    assert totals["skipped"] >= 2 and totals["done"] >= 1  # what the first run finished is not redone
    for code, titles in planned.items():
        assert [d["title"] for d in manifest_of(home, code)["documents"]] == titles  # once each, in order
    report = json.loads((tmp_path / "bao-cao.json").read_text(encoding="utf-8"))
    assert len(report["items"]) == inputs and (tmp_path / "bao-cao.csv").is_file()


def test_a_second_bulk_run_of_a_source_being_converted_is_refused_naming_why(home, rendered, tmp_path):
    """The bulk review started two runs of one source: both converted and reported the same
    documents (pages read twice, every document counted done by both; one run's Ctrl-C failed the
    other's documents). The second is now refused at once, saying another run holds the source,
    also when the same backlog is copied elsewhere; once the first has ended, a run goes through."""
    import shutil

    planned = backlog(rendered, tmp_path / "kho")
    inputs = sum(len(t) for t in planned.values())
    env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_JOBS": "1"}
    first = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho")], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, dossiers = time.monotonic() + 300, home / "store" / "dossiers"
        while not (dossiers.exists() and any(dossiers.glob("*/originals"))):  # a first original stored
            assert time.monotonic() < deadline and first.poll() is None, "the first run did not get going"
            time.sleep(0.1)
        shutil.copytree(tmp_path / "kho", tmp_path / "ban-sao-kho")  # the same backlog, mounted elsewhere
        for source in ("kho", "ban-sao-kho"):
            second = subprocess.run([SOHOA, "bulk", str(tmp_path / source)], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert second.returncode == 12, (source, second.stderr)
            assert "đang được một lượt 'sohoa bulk' khác số hóa" in second.stderr, second.stderr
    finally:
        assert first.wait(timeout=600) == 0, first.stderr.read()
    again = subprocess.run([SOHOA, "bulk", str(tmp_path / "kho"), "--json"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["totals"]["skipped"] == inputs, again.stderr


def test_one_bad_file_never_stops_the_batch(cli, home, rendered, tmp_path):
    root = tmp_path / "kho"
    (root / CODES[0]).mkdir(parents=True)
    save_page(rendered("bulk-ok", layout="text", seed=851, dpi=150), root / CODES[0] / "Đơn.png")
    (root / CODES[1]).mkdir()
    save_page(rendered("bulk-ok5", layout="text", seed=855, dpi=150), root / CODES[1] / "Bản khai trước.png")
    (root / CODES[1] / "Hỏng.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    save_page(rendered("bulk-ok4", layout="text", seed=854, dpi=150), root / CODES[1] / "Tờ khai sau.png")
    (root / "khong-phai-ma-ho-so").mkdir()
    save_page(rendered("bulk-ok2", layout="text", seed=852, dpi=150), root / "khong-phai-ma-ho-so" / "Đơn.png")
    (root / CODES[2]).mkdir()
    save_page(rendered("bulk-ok3", layout="text", seed=853, dpi=150), root / CODES[2] / "Tờ khai.png")

    code, out, err = cli("bulk", root, "--report", tmp_path / "bao-cao.csv")
    assert code == 1, err  # something failed: the exit status says so, the report says what
    # without a terminal (cron, a service's log) the run says how far it is (it said nothing until the end)
    lines = re.findall(r"^\d\d:\d\d:\d\d tài liệu (\d+)/(\d+), trang \d+/\d+$", err, re.M)
    assert len(lines) >= 2 and lines[-1][0] == lines[-1][1], err
    assert "Hỏng.png" in out and "khong-phai-ma-ho-so" in out
    report = json.loads((tmp_path / "bao-cao.json").read_text(encoding="utf-8"))
    status = {item["source"]: item["status"] for item in report["items"]}
    # the good document after the bad one in the same dossier is held back, and said so apart; the
    # one before it, still being read when the bad one was refused, is stored (it was held too)
    assert status == {f"{CODES[0]}/Đơn.png": "done", f"{CODES[1]}/Bản khai trước.png": "done",
                      f"{CODES[1]}/Hỏng.png": "failed", f"{CODES[1]}/Tờ khai sau.png": "held",
                      f"{CODES[2]}/Tờ khai.png": "done", "khong-phai-ma-ho-so/Đơn.png": "invalid"}
    failed = next(i for i in report["items"] if i["status"] == "failed")
    assert "Hỏng.png" in failed["error"]
    held = next(i for i in report["items"] if i["status"] == "held")
    assert "giữ đúng thứ tự" in held["error"] and "sohoa bulk" in held["error"]
    assert report["totals"]["held"] == 1 and "GIỮ LẠI" in out and "1 giữ lại" in out
    csv = (tmp_path / "bao-cao.csv").read_text(encoding="utf-8-sig").splitlines()
    assert csv[0].startswith("Nguồn,Mã hồ sơ,Tên tài liệu") and len(csv) == 7
    assert [d["title"] for d in manifest_of(home, CODES[1])["documents"]] == ["Bản khai trước"]
    assert any("giữ lại (held)" in line for line in csv)


def test_a_report_that_cannot_be_written_is_refused_before_anything_is_converted(cli, home, rendered, tmp_path):
    """Its folder missing, the run converted and stored everything, then ended in "Lỗi không mong
    đợi: FileNotFoundError" (exit 70) saying nothing was added, with no summary (archive review)."""
    root = tmp_path / "kho"
    (root / CODES[0]).mkdir(parents=True)
    save_page(rendered("bulk-report", layout="text", seed=856, dpi=150), root / CODES[0] / "Đơn.png")
    code, out, err = cli("bulk", root, "--report", tmp_path / "khong-co" / "bao-cao")
    assert code == 2 and "Không ghi được báo cáo vào thư mục" in err and "không tồn tại" in err, err
    assert not (home / "store" / "dossiers" / CODES[0]).exists()


def test_a_source_folder_whose_name_is_not_utf8_is_converted_and_reported(cli, home, rendered, tmp_path):
    """The source's own name in an old share's bytes: the access log could not take the path, and
    the command and its report were lost (review)."""
    root = (os.fsencode(tmp_path) + b"/quet-\xe9t\xe9").decode("utf-8", "surrogateescape")
    os.makedirs(os.path.join(root, CODES[0]))
    save_page(rendered("bulk-latin1", layout="text", seed=857, dpi=150), Path(root) / CODES[0] / "Đơn.png")
    code, out, err = cli("bulk", root, "--report", tmp_path / "bao-cao")
    assert code == 0, err
    report = json.loads((tmp_path / "bao-cao.json").read_text(encoding="utf-8"))
    assert report["source"].endswith("quet-\ufffdt\ufffd") and report["totals"]["done"] == 1


def test_a_continuous_scan_is_split_at_the_receipts_and_held_pages_are_reported(cli, home, tmp_path):
    """One TIFF from the feeder holding three dossiers; the second receipt's QR code is
    destroyed, so its pages are reported and held back, never merged into the first dossier."""
    from tests.receiptgen import ReceiptSpec, ordinary_page, render_receipt

    a, b, c = "H23.50-261201-0051", "H23.50-261201-0052", "H23.50-261201-0053"
    pages = [render_receipt(ReceiptSpec(code=a, skew_deg=3.0)), ordinary_page(seed=1, max_body_lines=6),
             ordinary_page(seed=2, max_body_lines=6),
             render_receipt(ReceiptSpec(code=b, destroyed=True)), ordinary_page(seed=3, max_body_lines=6),
             render_receipt(ReceiptSpec(code=c, payload=f"https://dichvucong.gov.vn/tra-cuu?ma={c}")),
             ordinary_page(seed=4, max_body_lines=6)]
    scan = tmp_path / "lo-quet.tif"
    grey = [p.convert("L") for p in pages]
    grey[0].save(scan, save_all=True, append_images=grey[1:], dpi=(200, 200), compression="tiff_deflate")

    code, out, err = cli("bulk", scan, "--report", tmp_path / "bao-cao", "--json")
    assert code == 1, err  # pages were held back: the run says so
    result = json.loads(out)
    assert [(i["dossier"], i["status"], i["source"]) for i in result["items"]] == [
        (a, "done", "lo-quet.tif: trang 1"), (a, "done", "lo-quet.tif: trang 2-3"),
        (c, "done", "lo-quet.tif: trang 6"), (c, "done", "lo-quet.tif: trang 7"),
        ("", "invalid", "lo-quet.tif: trang 4-5")]
    held = result["items"][-1]
    assert "trang 4" in held["error"] and "không đọc được" in held["error"]
    assert [d["numberOfPage"] for d in manifest_of(home, a)["documents"]] == [1, 2]
    assert manifest_of(home, a)["documents"][0]["title"].startswith("Phiếu tiếp nhận")
    assert not (home / "store" / "dossiers" / b).exists()

    code, out, _ = cli("bulk", scan, "--json")  # the same scan again: nothing converted twice
    assert [i["status"] for i in json.loads(out)["items"]] == ["skipped"] * 4 + ["invalid"]


def test_a_document_of_a_stalled_bulk_run_is_not_retried_ahead_of_the_others_of_its_dossier(cli, home):
    """A bulk run stopped with both documents of a dossier queued: `sohoa retry` of the second
    stored it as the dossier's first document. Retrying one of them alone is refused, pointing to
    the bulk run, which keeps the order; once the others are settled it runs. `sohoa status` of a
    job left waiting without workers says how to go on (it said only "đang chờ")."""
    import pytest

    from pipeline import config, jobs
    from pipeline.errors import Conflict
    from pipeline.runtime import database, open_store
    from storage import jobs as job_table

    settings = config.load({"SOHOA_HOME": str(home)})
    db, code = database(settings), CODES[0]
    for n in (1, 2):  # as a bulk run without workers makes them (kind "ingest"; with workers "bulk")
        job_table.create(db, f"{n}" * 32, kind="ingest", dossier=code, title=f"Văn bản {n}",
                         request={"originals": []}, input_sha256=f"{n}" * 64, pages=1, now="2026-12-04T10:00:00+07:00",
                         batch="dot-1", source=f"kho/{code}/{n:02d}.png")
    code_, out, err = cli("status", code)
    assert code_ == 0 and out.count("chạy lại 'sohoa bulk' trên cùng nguồn") == 2, out + err
    with pytest.raises(Conflict) as refused:
        jobs.reopen(open_store(settings), db, "2" * 32, time_limits=(600, 1800), workers=False)
    assert "sohoa bulk" in refused.value.message_vi and code in refused.value.message_vi
    job_table.set_state(db, "1" * 32, "done", now="2026-12-04T10:01:00+07:00")
    assert jobs.reopen(open_store(settings), db, "2" * 32, time_limits=(600, 1800), workers=False) == [1]

    # the first unfinished document of the dossier may run alone (it was refused too: two jobs
    # made in the same second could not be told apart; their ids now tell them apart)
    first, second = jobs.new_job_id(), jobs.new_job_id()
    for n, job in ((1, first), (2, second)):
        job_table.create(db, job, kind="ingest", dossier=CODES[1], title=f"Văn bản {n}", request={"originals": []},
                         input_sha256=f"{n + 2}" * 64, pages=1, now="2026-12-04T10:00:00+07:00", batch="dot-2",
                         source=f"kho/{CODES[1]}/{n:02d}.png")
    with pytest.raises(Conflict, match="1 tài liệu của hồ sơ .* đứng trước nó chưa xong"):
        jobs.reopen(open_store(settings), db, second, time_limits=(600, 1800), workers=False)
    assert jobs.reopen(open_store(settings), db, first, time_limits=(600, 1800), workers=False) == [1]


def test_a_bulk_run_stopped_with_ctrl_c_writes_its_report_so_far(home, rendered, tmp_path):
    """Ctrl-C ended a bulk run with no report at all: the report is now written, each document
    settled as it was, the others 'chưa xong' with how to go on; running again finishes them."""
    planned = backlog(rendered, tmp_path / "kho", seed=870)
    inputs = sum(len(t) for t in planned.values())
    env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_JOBS": "1"}
    run = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho"), "--report", str(tmp_path / "dung")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=interruptible)
    deadline = time.monotonic() + 300
    while not (home / "store" / "dossiers" / CODES[0] / "manifest.json").exists():
        assert time.monotonic() < deadline and run.poll() is None, "the run did not get going"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)  # the operator presses Ctrl-C
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Báo cáo đến lúc dừng" in err and "Đang dừng: ghi lại các trang đã xong" in err  # at once (review)
    report = json.loads((tmp_path / "dung.json").read_text(encoding="utf-8"))
    status = [item["status"] for item in report["items"]]
    assert report["stopped"] is True and len(status) == inputs and status[0] == "done" and "stopped" in status
    stopped = next(i for i in report["items"] if i["status"] == "stopped")
    assert "sohoa bulk" in stopped["error"] and report["totals"]["stopped"] == status.count("stopped")
    again = subprocess.run([SOHOA, "bulk", str(tmp_path / "kho"), "--json"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    for code, titles in planned.items():
        assert [d["title"] for d in manifest_of(home, code)["documents"]] == titles
        # the jobs Ctrl-C stopped no longer wait for a retry once the run again stored their files (review)
        shown = subprocess.run([SOHOA, "status", code, "--json"], env=env, capture_output=True, text=True, timeout=60)
        states = [(j["state"], (j["error"] or {}).get("code")) for j in json.loads(shown.stdout)]
        assert all(state != "failed" for state, _ in states), states


def test_a_document_committed_just_before_ctrl_c_is_reported_done_and_the_others_retried_at_once(
        home, rendered, tmp_path, monkeypatch):
    """Ctrl-C pressed just after a document was committed, before the run had noted it: the report
    called it 'chưa xong' and its job stayed 'đang hoàn tất' (CI saw it once). It is reported done,
    its job done; the documents still being read are recorded stopped, so `sohoa retry` takes them
    at once (before, it waited out the page time limit), and running the batch again ends them."""
    import pytest

    from pipeline import config, ingest, service
    from pipeline.runtime import database
    from storage import jobs as job_table

    planned = backlog(rendered, tmp_path / "kho", codes=CODES[:2], seed=880)
    commit = ingest.finish

    def commit_then_ctrl_c(*args, **kwargs):
        commit(*args, **kwargs)
        monkeypatch.setattr(ingest, "finish", commit)
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "finish", commit_then_ctrl_c)
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_JOBS": "1"})
    with pytest.raises(KeyboardInterrupt):
        service.bulk(settings, tmp_path / "kho", report=tmp_path / "dung")
    report = json.loads((tmp_path / "dung.json").read_text(encoding="utf-8"))
    assert [item["status"] for item in report["items"]] == ["done", "stopped", "stopped"]
    states = {job["id"]: job["state"] for job in job_table.find(database(settings))}
    assert states[report["items"][0]["job"]] == "done"
    assert sorted(states.values()) == ["done", "failed", "failed"]  # stopped here: a retry takes them now
    assert service.bulk(settings, tmp_path / "kho").totals["done"] == 2
    for code, titles in planned.items():
        assert [d["title"] for d in manifest_of(home, code)["documents"]] == titles


def test_ctrl_c_while_a_documents_pages_are_handed_to_the_pool_leaves_no_job_waiting(home, rendered, tmp_path,
                                                                                      monkeypatch):
    """Ctrl-C after a document's job was made but before its pages were all handed to the page
    pool (with SOHOA_JOBS=1 the page is read right there) left that job 'queued', which `sohoa
    retry` then refused until the page time limit (found by the review of d46c3e0)."""
    import pytest

    from pipeline import config, jobs, service
    from pipeline.runtime import database
    from storage import jobs as job_table

    backlog(rendered, tmp_path / "kho", codes=CODES[:2], seed=890)
    work_here, calls = jobs.work_here, []

    def ctrl_c_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return work_here(*args, **kwargs)

    monkeypatch.setattr(jobs, "work_here", ctrl_c_at_the_third)
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_JOBS": "1"})
    with pytest.raises(KeyboardInterrupt):
        service.bulk(settings, tmp_path / "kho")
    states = [job["state"] for job in job_table.find(database(settings))]
    assert len(states) == 3 and "queued" not in states and "running" not in states, states


def test_a_rerun_sends_a_stalled_document_its_pages_but_never_its_finishing_task(home):
    """A bulk rerun found a document of an earlier run stalled with all its pages done, and sent
    its finishing task itself: committed before an earlier document of its dossier still being
    read. It now sends such a job only its pages still to do; the finishing is the run's, in order.
    (The broker here cannot be reached: whatever is sent fails loudly.)"""
    import pytest

    from pipeline import config, service
    from pipeline.errors import BrokerUnavailable
    from pipeline.runtime import database
    from storage import jobs as job_table

    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"})
    db, old = database(settings), "2026-12-04T10:00:00+07:00"
    for n, job in ((1, "c" * 32), (2, "d" * 32)):
        job_table.create(db, job, kind="bulk", dossier=CODES[0], title=f"Văn bản {n}", request={"originals": []},
                         input_sha256=f"{n + 4}" * 64, pages=2, now=old, batch="dot-3")
    for number in (1, 2):  # the second document read whole long ago, the first not
        job_table.page_settled(db, "d" * 32, number, state="done", now=old, worker="(reused)")
    service._send_unless_moving(settings, "d" * 32, resumed=True)  # nothing sent
    with pytest.raises(BrokerUnavailable):  # its pages still to do are sent again
        service._send_unless_moving(settings, "c" * 32, resumed=True)


def test_a_bulk_inventory_sets_each_dossiers_retention_paper_file_code_and_dates(cli, home, rendered, tmp_path):
    """An archive's inventory (CSV) gives its dossiers' maintenance codes, paper file references and
    dates; the e-dossiers record them, and retention counts from the paper file's last year."""
    page = save_page(rendered("bulk-inventory", layout="text", seed=861, dpi=150), tmp_path / "0001.png")
    listing = tmp_path / "muc-luc.csv"
    listing.write_text("tệp;mã hồ sơ;tên tài liệu;thời hạn bảo quản;mã hồ sơ giấy;ngày bắt đầu;ngày kết thúc\n"
                       f"{page.name};H15.50.05.13-2019-0301;Đơn;06;Phông 12, hộp 5, hồ sơ 123;03/02/2019;31/12/2019\n",
                       encoding="utf-8")
    code, out, err = cli("bulk", listing)
    assert code == 0, out + err
    manifest = manifest_of(home, "H15.50.05.13-2019-0301")
    assert {k: manifest[k] for k in ("maintenance", "paperFileCode", "startDate", "endDate")} == {
        "maintenance": "06", "paperFileCode": "Phông 12, hộp 5, hồ sơ 123", "startDate": "2019-02-03",
        "endDate": "2019-12-31"}
    code, out, _ = cli("retention", "report")
    assert "đóng 31/12/2019" in out and "hạn hủy 01/01/2030" in out


def test_the_stopping_line_is_never_written_into_a_file_that_took_stderrs_place(tmp_path):
    """Review: the Ctrl-C line was written to descriptor 2, which a process started with stderr
    closed (`2>&-`, some supervisors) gives to the next file it opens: a report, say."""
    script = ("import sys\nfrom api import cli\nreport = open(sys.argv[1], 'w')\n"
              "try:\n    cli._say_stopping(2, None)\nexcept KeyboardInterrupt:\n    report.write('stopped')\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "report.txt")], cwd=Path(__file__).parents[1],
                          preexec_fn=lambda: os.close(2), timeout=120)
    assert done.returncode == 0 and (tmp_path / "report.txt").read_text() == "stopped"


def test_progress_lines_give_vietnams_time_as_the_report_does(monkeypatch):
    """A bulk run's progress lines gave the server's own time (UTC in a container) beside reports
    and manifests in Vietnam's (+07:00): seven hours apart (backlog review)."""
    import io
    from datetime import datetime, timedelta, timezone

    from api.cli import BulkProgressLog

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        shown = io.StringIO()
        BulkProgressLog(workers=False, stream=shown)(1, 1, 3, 3)
        printed = datetime.strptime(shown.getvalue()[:8], "%H:%M:%S")
        vietnam = datetime.now(timezone(timedelta(hours=7)))
        minutes = abs(printed.hour * 60 + printed.minute - (vietnam.hour * 60 + vietnam.minute)) % (24 * 60)
        assert min(minutes, 24 * 60 - minutes) <= 1, (shown.getvalue(), vietnam)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_bulk_run_that_cannot_reach_its_store_says_to_run_it_again(cli, home, rendered, tmp_path, monkeypatch):
    """Started while the store was down, the run stopped with "không phản hồi" alone (the chaos
    review): nothing said that running it again later resumes where it stopped."""
    from tests.services import free_port

    (tmp_path / "kho" / CODES[0]).mkdir(parents=True)
    save_page(rendered("bulk-down", layout="text", seed=861, dpi=100), tmp_path / "kho" / CODES[0] / "Đơn.png")
    monkeypatch.setenv("SOHOA_STORAGE", "s3")
    monkeypatch.setenv("SOHOA_S3_ENDPOINT", f"127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("SOHOA_S3_ACCESS_KEY", "khoa")
    monkeypatch.setenv("SOHOA_S3_SECRET_KEY", "bi-mat-khong-in-ra")
    code, out, err = cli("bulk", tmp_path / "kho")
    assert code == 8, err
    assert f"Chạy lại 'sohoa bulk {tmp_path / 'kho'}' khi kho" in err and "tài liệu đã số hóa được bỏ qua" in err, err
    assert "bi-mat-khong-in-ra" not in out + err
