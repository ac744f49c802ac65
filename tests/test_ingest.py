"""Issue 2: scanned pages in, validated two-layer PDF/A e-dossier out, on the embedded default."""
from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import unicodedata
from collections import Counter

import pikepdf
import pytest
from PIL import TiffImagePlugin

from pipeline import pdfa
from tests.conftest import manifest_of, save_page, stored_keys, audit_events, cached_pages, interruptible

CODE = "H23.50-261201-0001"


def words_found(truth: str, text: str) -> float:
    truth_words = unicodedata.normalize("NFC", truth).split()
    found = Counter(unicodedata.normalize("NFC", text).split())
    hits = sum(min(c, found[w]) for w, c in Counter(truth_words).items())
    return hits / max(1, len(truth_words))


def pdftotext(path, page: int | None = None, *extra: str) -> str:
    args = ["pdftotext", *extra] + (["-f", str(page), "-l", str(page)] if page else []) + [str(path), "-"]
    return subprocess.run(args, capture_output=True, check=True).stdout.decode("utf-8")


@pytest.fixture(scope="module")
def dossier_run(tmp_path_factory, rendered):
    """One ingest of five pages from three files (JPEG; 2-page TIFF grey + bitonal G4; PDF)."""
    import os

    from api import cli

    root = tmp_path_factory.mktemp("ingest")
    home = root / "home"
    pages = [
        rendered("admin90", layout="admin", orientation=90, skew_deg=3.0, seed=11),
        rendered("table_gray", layout="table", color="gray", skew_deg=-2.0, seed=12, dpi=200),
        rendered("text_bitonal", layout="text", color="bitonal", skew_deg=1.0, seed=13, degradation=0, dpi=200),
        rendered("text_pdf", layout="text", skew_deg=-4.0, seed=14, dpi=200),
    ]
    jpg = save_page(pages[0], root / "p1.jpg", quality=88)
    tif = root / "p2.tif"  # two frames: grey (LZW) then bitonal CCITT G4
    with TiffImagePlugin.AppendingTiffWriter(str(tif), True) as tf:
        for frame, compression in ((pages[1].image, "tiff_lzw"), (pages[2].image, "group4")):
            frame.save(tf, format="TIFF", dpi=(200, 200), compression=compression)
            tf.newFrame()
    pdf_in = root / "p3.pdf"
    pages[3].image.save(pdf_in, "PDF", resolution=200.0)
    old = os.environ.get("SOHOA_HOME")
    os.environ["SOHOA_HOME"] = str(home)
    try:
        out = io.StringIO()
        from contextlib import redirect_stdout

        with redirect_stdout(out):
            code = cli.main(["ingest", "--dossier", CODE, "--title", "Tờ khai đăng ký hộ kinh doanh", "--json",
                             str(jpg), str(tif), str(pdf_in)])
        export_dir = root / "export"
        with redirect_stdout(io.StringIO()):
            export_code = cli.main(["export", CODE, "--out", str(export_dir)])
    finally:
        if old is None:
            os.environ.pop("SOHOA_HOME")
        else:
            os.environ["SOHOA_HOME"] = old
    return {"code": code, "result": json.loads(out.getvalue()), "home": home, "pages": pages,
            "inputs": [jpg, tif, pdf_in], "export": export_dir, "export_code": export_code}


def test_ingest_succeeds_and_exports_one_pdf_per_document(dossier_run):
    assert dossier_run["code"] == 0 and dossier_run["export_code"] == 0
    exported = sorted(p.name for p in dossier_run["export"].iterdir())
    assert exported == [f"{CODE}.001.pdf", "manifest.json"]


def test_page_count_and_order_follow_the_inputs(dossier_run):
    pdf_path = dossier_run["export"] / f"{CODE}.001.pdf"
    with pikepdf.open(pdf_path) as pdf:
        assert len(pdf.pages) == 4
    for number, page in enumerate(dossier_run["pages"], start=1):
        assert words_found(page.text, pdftotext(pdf_path, number)) >= 0.85, f"page {number} out of order or unread"
    sources = [(p["file"], p["page"]) for p in dossier_run["result"]["pages"]]
    assert [(s["source"]["file"], s["source"]["page"])
            for s in manifest_of(dossier_run["home"], CODE)["documents"][0]["pages"]] == \
        [("p1.jpg", 1), ("p2.tif", 1), ("p2.tif", 2), ("p3.pdf", 1)] == sources


def test_exported_file_is_valid_pdfa_2b_with_metadata(dossier_run):
    """The signed file is PDF/A-2b: the revision that was signed (a byte prefix of the file, the
    signature being an incremental update) passes pikepdf's validator outright, and what the
    signature adds passes the PDF/A-2 rules pikepdf's allowlist leaves unchecked (AcroForm)."""
    from pipeline.signing.pdfa_signed import pdfa_check, unsigned_base_revision

    data = (dossier_run["export"] / f"{CODE}.001.pdf").read_bytes()
    base = unsigned_base_revision(data)
    assert base is not None and data.startswith(base) and len(base) < len(data)
    passed, findings = pdfa.validate(base)
    assert passed, findings
    verdict = pdfa_check(data)
    assert verdict.ok, verdict.findings
    with pikepdf.open(io.BytesIO(data)) as pdf:
        meta = pdf.open_metadata()
        assert meta["dc:title"] == "Tờ khai đăng ký hộ kinh doanh"
        assert meta["pdfaid:part"] == "2" and meta["pdfaid:conformance"] == "B"
        assert CODE in meta["dc:source"] and f"{CODE}.001" in meta["dc:identifier"]
        assert "vi" in meta["dc:language"]
        assert meta["xmp:CreateDate"].endswith("+07:00")
    with pikepdf.open(io.BytesIO(base)) as pdf:  # the PDF/A as sohoa wrote it; pyHanko's signing revision
        meta = pdf.open_metadata()                # then stamps its ModifyDate in UTC (the same instant)
        assert all(meta[k].endswith("+07:00") for k in ("xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate"))


def test_images_keep_scan_resolution_and_colour(dossier_run):
    pages = manifest_of(dossier_run["home"], CODE)["documents"][0]["pages"]
    assert [p["colorMode"] for p in pages] == ["rgb", "gray", "bitonal", "rgb"]
    assert [p["dpi"][0] for p in pages] == [300, 200, 200, 200]
    with pikepdf.open(dossier_run["export"] / f"{CODE}.001.pdf") as pdf:
        for pg, entry in zip(pdf.pages, pages):
            (img,) = [pikepdf.PdfImage(x) for x in pg.get_images().values()]
            assert (img.width, img.height) == (entry["width"], entry["height"])
            width_in = float(pg.mediabox[2]) / 72
            assert abs(img.width / width_in - entry["dpi"][0]) < 1  # never downsampled
        assert pikepdf.PdfImage(next(iter(pdf.pages[0].get_images().values()))).mode == "RGB"  # 24-bit colour kept


def test_orientation_and_skew_are_measured_and_recorded(dossier_run):
    pages = manifest_of(dossier_run["home"], CODE)["documents"][0]["pages"]
    truth = [(p.spec.orientation, p.spec.skew_deg) for p in dossier_run["pages"]]
    for entry, (orientation, skew) in zip(pages, truth):
        assert entry["orientation"] == orientation
        assert abs(entry["skewDeg"] - skew) < 0.5


def test_text_layer_sits_on_the_printed_words(dossier_run):
    """The invisible word lies where OCR read it: its box in the PDF matches the image's word box."""
    home = dossier_run["home"]
    doc = manifest_of(home, CODE)["documents"][0]
    words = json.loads((home / "store" / doc["words"]["key"]).read_text(encoding="utf-8"))
    page = doc["pages"][3]
    target = max((w for w in words[3] if len(w["text"]) >= 6), key=lambda w: w["conf"])
    html = pdftotext(dossier_run["export"] / f"{CODE}.001.pdf", 4, "-bbox")
    boxes = [tuple(map(float, m[:4])) for m in re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">' + re.escape(target["text"]) + "<", html)]
    assert boxes, f"{target['text']!r} not found in the text layer"
    k = 72 / page["dpi"][0]
    expected = (target["x0"] * k, target["y0"] * k, target["x1"] * k, target["y1"] * k)
    assert min(max(abs(a - b) for a, b in zip(box, expected)) for box in boxes) < 6  # points, within a line height


def test_text_is_searchable_and_nfc(dossier_run):
    text = pdftotext(dossier_run["export"] / f"{CODE}.001.pdf")
    assert text == unicodedata.normalize("NFC", text)
    truth = " ".join(p.text for p in dossier_run["pages"])
    assert words_found(truth, text) >= 0.9


def test_manifest_hashes_match_the_stored_bytes_and_originals_are_unchanged(dossier_run):
    home = dossier_run["home"]
    m = manifest_of(home, CODE)
    assert m["schema"] == "sohoa.manifest/2" and m["manifestVersion"] == 1 and m["confidenceLevel"] == "02" and m["paperFileCode"] == CODE
    assert m["totalDoc"] == 1 and m["numberOfPage"] == 4
    doc = m["documents"][0]
    for obj in [doc["pdf"], doc["text"], doc["words"], *doc["originals"]]:
        data = (home / "store" / obj["key"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == obj["sha256"] and len(data) == obj["size"]
    for original, path in zip(doc["originals"], dossier_run["inputs"]):
        assert (home / "store" / original["key"]).read_bytes() == path.read_bytes()
    exported = (dossier_run["export"] / f"{CODE}.001.pdf").read_bytes()
    assert hashlib.sha256(exported).hexdigest() == doc["pdf"]["sha256"]


def test_reingest_of_same_bytes_creates_no_duplicate(dossier_run, monkeypatch, capsys):
    from api.cli import main

    home = dossier_run["home"]
    monkeypatch.setenv("SOHOA_HOME", str(home))
    before = stored_keys(home)
    manifest_before = manifest_of(home, CODE)
    code = main(["ingest", "--dossier", CODE, "--title", "lần hai", "--json", *map(str, dossier_run["inputs"])])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["duplicate"] is True
    assert stored_keys(home) == before
    assert manifest_of(home, CODE)["documents"] == manifest_before["documents"]


def test_blank_page_is_flagged_not_dropped(cli, home, rendered, tmp_path):
    text = save_page(rendered("plain", layout="text", seed=21, dpi=200), tmp_path / "a.png")
    blank = save_page(rendered("blank", layout="blank", seed=22, dpi=200), tmp_path / "b.png")
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", "--json", text, blank)
    assert code == 0, err
    pages = json.loads(out)["pages"]
    assert len(pages) == 2 and "blank" in pages[1]["flags"] and "blank" not in pages[0]["flags"]
    code, out, _ = cli("show", CODE)
    assert "1 trang cần kiểm tra" in out and "trang 2 (b.png tr.1): trang trắng" in out


def test_crash_mid_ingest_leaves_nothing_visible_and_retry_completes(cli, home, rendered, tmp_path, monkeypatch):
    """A failure after the pages are done (here: the PDF step dies) shows no document; the
    retry reuses the finished pages (content-addressed cache) and completes the dossier."""
    import pipeline.ingest as ingest_module

    page = save_page(rendered("crash", layout="text", seed=41, dpi=200), tmp_path / "c.png")
    real_build = ingest_module.write_pdfa

    def dies(*a, **k):
        raise OSError("mất điện giữa chừng")

    monkeypatch.setattr(ingest_module, "write_pdfa", dies)
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", page)
    assert code != 0 and "mất điện giữa chừng" in err and "có thể chạy lại" in err
    assert not (home / "store" / "dossiers" / CODE / "manifest.json").exists()
    assert not list((home / "store").rglob("*.pdf"))
    events = audit_events(home)
    assert events[-1]["action"] == "ingest" and events[-1]["outcome"] == "failure"
    cached = cached_pages(home)
    assert cached, "finished pages were not kept for the retry"

    code, out, _ = cli("cache")
    assert code == 0 and "1 trang" in out

    monkeypatch.setattr(ingest_module, "write_pdfa", real_build)
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", "--json", page)
    assert code == 0, err
    assert json.loads(out)["reusedPages"] == 1  # nothing recomputed
    assert manifest_of(home, CODE)["totalDoc"] == 1
    assert not cached_pages(home)  # the cache only serves retries


def test_while_a_document_is_read_here_other_processes_see_its_pages_done(home, rendered, tmp_path):
    """Without workers, a job's pages were recorded only once the last was read: `sohoa status`
    in another terminal, and the job's page at the counter, showed "đang chờ, 0/N" until it
    was done. Each page is now recorded as it finishes, and the job shows as running."""
    from pipeline import config, service
    from pipeline.models import IngestRequest
    from pipeline.runtime import database
    from storage import jobs as job_table

    files = [str(save_page(rendered(f"seen-{n}", layout="text", seed=43 + n, dpi=150), tmp_path / f"{n}.png"))
             for n in (1, 2, 3)]
    settings = config.load({"SOHOA_HOME": str(home)})
    seen = []

    def progress(done: int, total: int) -> None:
        if 0 < done < total:  # what another process reads from the shared database meanwhile
            job = job_table.find(database(settings), dossier=CODE)[-1]
            seen.append((job["state"], job_table.get(database(settings), job["id"])["pages_done"]))

    summary = service.ingest(settings, IngestRequest(CODE, tuple(files), "Đơn", jobs=1), progress=progress)
    assert len(summary.pages) == 3
    assert seen == [("running", 1), ("running", 2)]


class IngestElsewhere:
    """`sohoa ingest` of four pages in another process (another terminal), one page at a time,
    followed in the shared database until its first page is recorded."""

    def __init__(self, home, rendered, tmp_path, seed: int):
        import os
        import sys
        import time
        from pathlib import Path

        from pipeline import config
        from pipeline.runtime import database
        from storage import jobs as job_table

        files = [str(save_page(rendered(f"elsewhere-{seed + n}", layout="text", seed=seed + n, dpi=200),
                               tmp_path / f"{n}.png")) for n in (1, 2, 3, 4)]
        self.env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_JOBS": "1"}
        self.sohoa, self.home, self.jobs = str(Path(sys.executable).with_name("sohoa")), home, job_table
        self.run = subprocess.Popen([self.sohoa, "ingest", "--dossier", CODE, "--title", "Đơn", *files], env=self.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                    preexec_fn=interruptible)
        self.db, deadline = database(config.load({"SOHOA_HOME": str(home)})), time.monotonic() + 300
        while not (job := next(iter(job_table.find(self.db, dossier=CODE)), None)) or not self.job(job["id"])[
                "pages_done"]:
            assert time.monotonic() < deadline and self.run.poll() is None, "no page was read"
            time.sleep(0.1)
        self.id = job["id"]

    def job(self, job_id: str | None = None) -> dict:
        return self.jobs.get(self.db, job_id or self.id)

    def stop(self, signal_number: int) -> str:
        import os

        os.killpg(self.run.pid, signal_number)
        return self.run.communicate(timeout=120)[1]

    def sohoa_(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.sohoa, *args], env=self.env, capture_output=True, text=True, timeout=600)

    def retried_from(self, kept: dict) -> dict:
        """`sohoa retry`, then the job: done, its pages read before not read again, one document."""
        again = self.sohoa_("retry", self.id, "--json")
        assert again.returncode == 0, again.stderr
        after = self.job()
        assert (after["state"], after["pages_done"]) == ("done", 4)
        assert {p["number"]: p["updated"] for p in after["pages"] if p["number"] in kept} == kept  # not read again
        assert len(manifest_of(self.home, CODE)["documents"]) == 1
        return after


def test_an_ingest_stopped_with_ctrl_c_is_recorded_as_stopped_and_goes_on_from_its_last_page(
        home, rendered, tmp_path):
    """Ctrl-C left the job 'đang chờ' for ever, with none of its pages recorded. It is now
    recorded as stopped, with the pages read so far, and `sohoa retry` goes on from there at
    once (a job still moving is not run again)."""
    import signal

    ingest = IngestElsewhere(home, rendered, tmp_path, seed=47)
    err = ingest.stop(signal.SIGINT)  # the operator presses Ctrl-C
    assert ingest.run.returncode == 130 and "Đã dừng theo yêu cầu" in err, err
    stopped = ingest.job()
    assert stopped["state"] == "failed" and "Đã dừng theo yêu cầu" in stopped["error"]
    kept = {p["number"]: p["updated"] for p in stopped["pages"] if p["state"] == "done"}
    assert 1 <= len(kept) < 4
    assert ingest.retried_from(kept)["attempts"] == 2


def test_a_job_running_here_is_not_retried_and_one_whose_process_was_killed_is_at_once(home, rendered, tmp_path):
    """Without workers, `sohoa retry` of a job another terminal is still reading is refused
    (its pages would be read twice); once that process is killed (SIGKILL: it records nothing),
    the retry goes on from its last recorded page at once, not after the page time limit."""
    import signal

    ingest = IngestElsewhere(home, rendered, tmp_path, seed=53)
    refused = ingest.sohoa_("retry", ingest.id)
    assert refused.returncode == 12 and "đang xử lý" in refused.stderr, refused.stderr
    ingest.stop(signal.SIGKILL)
    killed = ingest.job()
    assert killed["state"] == "running"  # as the killed process left it
    ingest.retried_from({p["number"]: p["updated"] for p in killed["pages"] if p["state"] == "done"})


def test_a_retry_takes_a_job_once_even_when_its_pages_were_last_read_by_a_process_now_gone(home):
    """A page failed by a process since gone: the first retry takes the job, a second one at once
    was taken too (the page still named the gone process), and pages of one second read by a
    process and by none made the retry a 500 (a name compared with None)."""
    import subprocess
    import sys

    import pytest

    from pipeline import audit, config, jobs
    from pipeline.errors import Conflict
    from pipeline.runtime import database, open_store
    from storage import jobs as job_table
    from storage.locks import holder_name

    settings = config.load({"SOHOA_HOME": str(home)})
    db, store, now = database(settings), open_store(settings), audit.now_vn().isoformat()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = holder_name().rpartition(":")[0] + ":" + ended.stdout.strip()
    limits = dict(time_limits=(600, 1800), workers=False)
    for n, job in ((1, "a" * 32), (2, "b" * 32)):
        job_table.create(db, job, kind="ingest", dossier=CODE, title="Đơn", request={"originals": []},
                         input_sha256=f"{n}" * 64, pages=2, now=now)
        job_table.page_settled(db, job, 1, state="failed", now=now, error="hỏng", worker=gone)
    job_table.set_state(db, "a" * 32, "failed", now=now)
    assert jobs.reopen(store, db, "a" * 32, **limits) == [1, 2]
    with pytest.raises(Conflict, match="đang chờ xử lý"):
        jobs.reopen(store, db, "a" * 32, **limits)  # the same retry a second time
    # running, its pages of one second: page 1 by a gone process, page 2 by none yet
    assert jobs.reopen(store, db, "b" * 32, **limits) == [1, 2]  # its reader is gone: at once
    # a lock or page holder named by the version before (host:pid) is still known gone
    import socket

    from storage.locks import gone as known_gone

    assert known_gone(f"{socket.gethostname()}:{ended.stdout.strip()}") and not known_gone(holder_name())


def test_page_cache_is_cleared_on_request(cli, home, rendered, tmp_path, monkeypatch):
    import pipeline.ingest as ingest_module

    page = save_page(rendered("cache", layout="text", seed=42, dpi=200), tmp_path / "c.png")
    monkeypatch.setattr(ingest_module, "write_pdfa", lambda *a, **k: (_ for _ in ()).throw(OSError("hỏng")))
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] != 0
    assert cached_pages(home)
    code, out, _ = cli("cache", "--clear")
    assert code == 0 and "Đã xóa bộ đệm trang: 1 trang" in out
    assert not cached_pages(home)


def test_second_document_gets_next_sequence_and_show_lists_both(cli, home, rendered, tmp_path):
    a = save_page(rendered("seq_a", layout="text", seed=51, dpi=200), tmp_path / "a.png")
    b = save_page(rendered("seq_b", layout="table", seed=52, dpi=200), tmp_path / "b.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn đề nghị", a)[0] == 0
    # a right-to-left override showed "kê fdp.exe" as "kê exe.pdf" and reversed the page after it;
    # NUL and a zero-width space went into the signed PDF (web security review): left out
    assert cli("ingest", "--dossier", CODE, "--title", "Bảng\u200b kê \u202efdp.exe\u202c\x00", b)[0] == 0
    code, out, _ = cli("show", CODE, "--json")
    manifest = json.loads(out)
    assert manifest["documents"][1]["title"] == "Bảng kê fdp.exe"
    assert [d["docId"] for d in manifest["documents"]] == [f"{CODE}.001", f"{CODE}.002"]
    assert manifest["totalDoc"] == 2 and manifest["numberOfPage"] == 2
    code, out, _ = cli("show", CODE)
    assert "Đơn đề nghị" in out and "Bảng kê" in out


def test_the_same_files_in_another_order_are_refused_naming_the_document_that_holds_them(cli, home, rendered,
                                                                                        tmp_path):
    """Backlog review: a page order corrected in a bulk inventory and run again stored a second
    document of the same pages, without a word. A signed document is not changed: it is named."""
    from pipeline.errors import ExitCode

    a = save_page(rendered("order_a", layout="text", seed=61, dpi=150), tmp_path / "a.png")
    b = save_page(rendered("order_b", layout="text", seed=62, dpi=150), tmp_path / "b.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Biên bản", a, b)[0] == 0
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Biên bản", b, a)
    assert code == ExitCode.CONFLICT and f"đã có tài liệu {CODE}.001 («Biên bản») gồm đúng các tệp này" in err, err
    code, out, _ = cli("show", CODE, "--json")
    assert [d["docId"] for d in json.loads(out)["documents"]] == [f"{CODE}.001"]


def test_a_failed_job_of_the_same_files_in_another_order_is_given_up_once_they_are_stored(cli, home, rendered,
                                                                                         tmp_path):
    """Review of the above: a bulk run stopped left a job of (a, b) failed; the order corrected to
    (b, a) stored the document, and `sohoa status` still offered the first job's retry, which would
    have stored the pages a second time. It is given up, saying which job stored its files; and a
    job of the other order finished later is refused where the document is committed."""
    from pipeline import config, jobs, service
    from pipeline.runtime import database
    from storage import jobs as job_table

    settings = config.load({"SOHOA_HOME": str(home)})
    a = save_page(rendered("order_c", layout="text", seed=63, dpi=150), tmp_path / "a.png")
    b = save_page(rendered("order_d", layout="text", seed=64, dpi=150), tmp_path / "b.png")
    who = service.add_user(settings, "lan", "operator", ("H23.50",), None)
    first, _ = service.accept_upload(settings, CODE, "Biên bản", [("a.png", a.read_bytes()), ("b.png", b.read_bytes())],
                                     who)
    job_table.set_state(database(settings), first.id, "failed", now="2026-12-05T09:00:00+07:00")
    later, _ = service.accept_upload(settings, CODE, "Biên bản", [("a.png", a.read_bytes()), ("b.png", b.read_bytes())],
                                     who)  # the same order again: a new job of the failed one's files
    assert cli("ingest", "--dossier", CODE, "--title", "Biên bản", b, a)[0] == 0
    assert jobs.view(database(settings), first.id).state == "discarded"
    with pytest.raises(Exception, match="theo thứ tự khác"):
        service.run_job(settings, later.id)
    code, out, _ = cli("show", CODE, "--json")
    assert [d["docId"] for d in json.loads(out)["documents"]] == [f"{CODE}.001"]


def test_export_refuses_a_stored_file_whose_bytes_changed(cli, home, rendered, tmp_path):
    page = save_page(rendered("tamper", layout="text", seed=61, dpi=200), tmp_path / "t.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] == 0
    pdf = next((home / "store").rglob("*.pdf"))
    pdf.chmod(0o644)
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    pdf.write_bytes(bytes(data))
    code, _, err = cli("export", CODE, "--out", tmp_path / "out")
    assert code != 0 and "SHA-256" in err


def test_the_development_keys_banner_comes_with_a_signature_not_before_a_trivial_refusal(cli, home, rendered,
                                                                                         tmp_path):
    """Backlog review: fourteen lines of development-key warning came before "không tồn tại" and
    every other refusal of the inputs; they are said once a document is to be signed."""
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", tmp_path / "khong-co.png")
    assert code != 0 and "không tồn tại" in err and "THỬ NGHIỆM" not in err, err
    code, _, err = cli("bulk", tmp_path / "khong-co")
    assert code != 0 and "không tồn tại" in err and "THỬ NGHIỆM" not in err, err
    page = save_page(rendered("banner", layout="text", seed=65, dpi=150), tmp_path / "a.png")
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", page)
    assert code == 0 and "khóa THỬ NGHIỆM" in err, err


def test_unknown_dossier_is_reported(cli, home):
    code, _, err = cli("show", "H23.50-261201-0999")
    assert code != 0 and "Không tìm thấy hồ sơ" in err


def test_sohoa_entry_point_runs_as_a_command(home, rendered, tmp_path):
    import os
    import sys
    from pathlib import Path

    page = save_page(rendered("cmd", layout="text", seed=71, dpi=200), tmp_path / "p.png")
    exe = Path(sys.executable).with_name("sohoa")
    env = {**os.environ, "SOHOA_HOME": str(home)}
    run = subprocess.run([str(exe), "ingest", "--dossier", CODE, "--title", "Đơn", "--jobs", "1", str(page)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert f"Tài liệu {CODE}.001 đã số hóa: 1 trang" in run.stdout
    bad = subprocess.run([str(exe), "ingest", "--dossier", "XYZ", "--title", "Đơn", str(page)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "Mã hồ sơ không hợp lệ" in bad.stderr


def test_maintenance_code_is_taken_once_and_never_silently_replaced(cli, home, rendered, tmp_path):
    a = save_page(rendered("mnt_a", layout="text", seed=101, dpi=200), tmp_path / "a.png")
    b = save_page(rendered("mnt_b", layout="text", seed=102, dpi=200), tmp_path / "b.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", a)[0] == 0
    assert manifest_of(home, CODE)["maintenance"] is None
    assert cli("ingest", "--dossier", CODE, "--title", "Bản sao", "--maintenance", "01", b)[0] == 0
    manifest = manifest_of(home, CODE)
    assert manifest["maintenance"] == "01" and manifest["totalDoc"] == 2
    pdf_meta = json.loads((home / "store" / (manifest["documents"][1]["pdf"]["key"] + ".meta.json")).read_text())
    assert pdf_meta["metadata"]["maintenance"] == "01"  # decides the write-once period on S3
    before = stored_keys(home)
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Khác", "--maintenance", "06", a, b)
    assert code != 0 and "đã có thời hạn bảo quản 01" in err
    assert stored_keys(home) == before


def test_a_damaged_manifest_is_reported_by_dossier_and_does_not_stop_verify_all(cli, home, rendered, tmp_path):
    page = save_page(rendered("dmg", layout="text", seed=103, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] == 0
    damaged = home / "store" / "dossiers" / "H23.50-261201-0099" / "manifest.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"schema": "sohoa.manifest/1", "documents": [', encoding="utf-8")
    code, _, err = cli("show", "H23.50-261201-0099")
    assert code != 0 and "Manifest của hồ sơ H23.50-261201-0099 bị hỏng" in err
    code, out, _ = cli("verify", "--all")
    assert code != 0
    assert f"{CODE}.001: ĐẠT" in out and "H23.50-261201-0099" in out and "bị hỏng" in out


def test_a_72_dpi_header_on_a_300_dpi_scan_gives_an_a4_page(cli, home, rendered, tmp_path):
    page = rendered("dpi72", layout="text", seed=104, dpi=300)
    path = tmp_path / "phone.jpg"
    page.image.save(path, dpi=(72, 72), quality=90)
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Ảnh chụp", "--json", path)
    assert code == 0, err
    entry = manifest_of(home, CODE)["documents"][0]["pages"][0]
    assert all(abs(v - 300) < 0.5 for v in entry["dpi"]) and entry["dpiSource"] == "paper-size:A4"
    pdf = next((home / "store").rglob("*.pdf"))
    with pikepdf.open(pdf) as doc:
        width_mm = float(doc.pages[0].mediabox[2]) / 72 * 25.4
    assert abs(width_mm - 210) < 3  # A4, not a 72-dpi poster


def test_page_cache_is_not_reused_across_ocr_models(tmp_path):
    import dataclasses

    from pipeline.models import PageTask
    from pipeline.pages import cache_key

    task = PageTask(key="dossiers/X/originals/p.png", file="p.png", kind="png", sha256="a" * 64, page=1)
    default = cache_key(task)
    assert cache_key(task) == default
    assert cache_key(dataclasses.replace(task, tessdata=str(tmp_path / "best-model"))) != default
    assert cache_key(dataclasses.replace(task, page=2)) != default
    assert cache_key(dataclasses.replace(task, jpeg_quality=75)) != default


def test_verify_checks_the_stored_original_too(cli, home, rendered, tmp_path):
    page = save_page(rendered("fixity", layout="text", seed=105, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] == 0
    assert cli("verify", CODE)[0] == 0
    original = next((home / "store").rglob("originals/*.png"))
    original.chmod(0o644)
    data = bytearray(original.read_bytes())
    data[-20] ^= 0x01
    original.write_bytes(bytes(data))
    code, out, _ = cli("verify", CODE)
    assert code != 0 and "KHÔNG ĐẠT" in out and "bản gốc" in out


@pytest.mark.parametrize("pages", [1, 3])
def test_a_signing_key_that_does_not_open_fails_the_job_and_a_retry_signs_once_it_does(
        cli, home, rendered, tmp_path, monkeypatch, pki, pages):
    """The signing key is opened while the pages are read: a wrong password fails the job with
    the key's own message, the citizen's files are kept, and once the password is right a retry
    signs the document with that key."""
    from tests.pki import harness

    code_ = f"H23.50-261202-{7700 + pages:04d}"
    page = rendered("key-sheet", layout="text", dpi=300, seed=951, max_body_lines=4, color="gray", degradation=0)
    files = []
    for n in range(pages):
        files.append(tmp_path / f"trang-{n + 1}.png")
        page.image.crop((250, 200 + 40 * n, 1450, 700 + 40 * n)).save(files[-1], dpi=(300, 300))
    monkeypatch.setenv("SOHOA_SIGN_P12", str(pki.p12("signer-rsa")))
    monkeypatch.setenv("SOHOA_SIGN_P12_PASSWORD", "không phải mật khẩu")
    monkeypatch.setenv("SOHOA_SIGN_LEVEL", "B-B")
    code, out, err = cli("ingest", "--dossier", code_, "--title", "Đơn", *files)
    assert code != 0 and "sai mật khẩu" in err, err
    assert not (home / "store" / "dossiers" / code_ / "manifest.json").exists()
    originals = [k for k in stored_keys(home) if "/originals/" in k and not k.endswith(".meta.json")]
    assert len(originals) == pages
    code, out, err = cli("status", code_, "--json")
    job = json.loads(out)[-1]
    assert job["state"] == "failed" and "sai mật khẩu" in job["error"]["message"], job

    monkeypatch.setenv("SOHOA_SIGN_P12_PASSWORD", harness.P12_PASSWORD)
    code, out, err = cli("retry", job["job"], "--json")
    assert code == 0, err
    document = manifest_of(home, code_)["documents"]
    assert len(document) == 1 and len(document[0]["pages"]) == pages
    signature = document[0]["signature"]
    assert (signature["signer"], signature["testSignature"]) == ("UBND phường Hoàn Kiếm (RSA)", False)


def _original_copy_in_child(root: str, task: dict) -> str:
    from pathlib import Path

    from pipeline import pages
    from pipeline.models import PageTask
    from storage.local import LocalStore

    return str(pages._originals.path(LocalStore(Path(root)), PageTask.from_json(task)))


def test_a_forked_page_process_fetches_originals_into_a_folder_of_its_own(tmp_path):
    """The processes of a page pool are forked from one that may have read a page itself (a
    server's one-page job): each must fetch an original into a folder of its own. Sharing the
    folder they inherited, two of them fetching one original at once truncated the file the
    other was reading ("cannot identify image file" on one page of a 200-page TIFF). And a pool's
    process removes its copies when it ends (they were left in the temporary folder for ever)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path as _Path

    from pipeline import pages
    from pipeline.models import PageTask
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    data = b"\x00" * 5000
    key = "dossiers/H23.50-261202-0042/originals/" + hashlib.sha256(data).hexdigest()
    store.put(key, data)
    task = PageTask(key=key, file="a.tif", kind="tiff", sha256=hashlib.sha256(data).hexdigest(), page=1)
    mine = pages._originals.path(store, task)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        theirs = _Path(pool.submit(_original_copy_in_child, str(tmp_path / "store"), task.to_json()).result())
        assert theirs.parent != mine.parent and theirs.read_bytes() == data
    assert mine.read_bytes() == data
    assert not theirs.parent.exists()  # the pool's process removed its copies when it ended


def test_no_copy_of_a_citizens_original_is_left_in_the_temporary_folder(cli, home, rendered, tmp_path):
    """A one-page document is read in the process that took it (a web server's, which lives on):
    its copy of the original goes with the job. And the copies of a process killed outright
    (SIGKILL, out of memory) are removed by the next process that fetches an original, while
    those of a process still running are left alone."""
    import os
    import shutil
    import signal
    import sys
    import tempfile
    from pathlib import Path as _Path

    from pipeline import pages

    holder = ("import sys, time\nfrom pipeline import pages\n"
              "folder, _ = pages._locked_folder(pages._Originals.PREFIX)\n"
              "(folder / ('0' * 64)).write_bytes(b'a citizen scan')\nprint(folder, flush=True)\ntime.sleep(120)\n")

    def process_with_copies():
        proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True,
                                cwd=str(_Path(__file__).resolve().parents[1]))
        return proc, _Path(proc.stdout.readline().strip())

    pages.discard_originals()  # this test process as a new one: it holds no copy yet
    killed, abandoned = process_with_copies()
    running, live = process_with_copies()
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert abandoned.is_dir() and live.is_dir()
        page = save_page(rendered("plain", layout="text", seed=21, dpi=200), tmp_path / "trang.png")
        code, _, err = cli("ingest", "--dossier", CODE, "--title", "Tờ khai", page)
        assert code == 0, err
        assert not abandoned.exists()
        assert (live / ("0" * 64)).exists()
        mine = list(_Path(tempfile.gettempdir()).glob(f"{pages._Originals.PREFIX}{os.getpid()}-*"))
        assert mine == []
    finally:
        running.kill()
        running.wait()
        killed.stdout.close()
        running.stdout.close()
        shutil.rmtree(live, ignore_errors=True)
