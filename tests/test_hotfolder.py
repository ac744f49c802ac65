"""The hot folder a network scanner writes into: a file is taken once it stops changing, goes
to the dossier its sub-folder or its receipt QR code names, and ends in done/ or failed/."""
from __future__ import annotations

import json

from pipeline import config, service
from pipeline.hotfolder import Watcher
from tests.conftest import manifest_of, save_page
from tests.receiptgen import ReceiptSpec, render_receipt

CODE = "H23.50-261201-0021"


def test_files_go_to_their_dossier_and_end_in_done_or_failed(home, rendered, tmp_path):
    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    save_page(rendered("hot1", layout="text", seed=601, dpi=200), folder / CODE / "01_Tờ khai.png")
    receipt = render_receipt(ReceiptSpec(code="H23.50-261201-0022", dpi=200, skew_deg=2.0))
    receipt.save(folder / "phieu-tiep-nhan.png", dpi=(200, 200))
    (folder / "hong.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (folder / "dang-ghi.tif.part").write_bytes(b"still being written")

    events = []
    taken = service.watch(config.load({"SOHOA_HOME": str(home)}), folder, settle=0.2, poll=0.1, once=True,
                          on_event=lambda kind, hot, detail: events.append((kind, hot.path.name)))
    assert taken == 3 and sorted(events) == [("done", "01_Tờ khai.png"), ("done", "phieu-tiep-nhan.png"),
                                             ("failed", "hong.pdf")]
    assert [d["title"] for d in manifest_of(home, CODE)["documents"]] == ["Tờ khai"]
    assert [d["title"] for d in manifest_of(home, "H23.50-261201-0022")["documents"]] == ["phieu-tiep-nhan"]
    assert (folder / "done" / CODE / "01_Tờ khai.png").is_file()
    assert (folder / "done" / "H23.50-261201-0022" / "phieu-tiep-nhan.png").is_file()
    error = (folder / "failed" / "hong.pdf.error.txt").read_text(encoding="utf-8")
    assert "hong.pdf" in error and "thuộc hồ sơ nào" not in error  # the file is bad, said so
    assert (folder / "dang-ghi.tif.part").is_file()  # a file still being written is left alone


def test_a_loose_file_without_a_receipt_is_refused_with_the_reason(home, rendered, tmp_path):
    folder = tmp_path / "may-quet"
    folder.mkdir()
    save_page(rendered("hot2", layout="text", seed=602, dpi=200), folder / "trang.png")
    service.watch(config.load({"SOHOA_HOME": str(home)}), folder, settle=0.2, poll=0.1, once=True)
    error = (folder / "failed" / "trang.png.error.txt").read_text(encoding="utf-8")
    assert "trang.png" in error and "không có mã QR" in error


def test_a_file_is_taken_only_after_it_stops_changing(tmp_path):
    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    scan = folder / CODE / "don.pdf"
    watcher = Watcher(folder, settle=5.0)
    scan.write_bytes(b"%PDF-1.4 first part")
    assert watcher.ready(now=0.0) == ([], 1)
    scan.write_bytes(b"%PDF-1.4 first part, second part")  # the scanner is still writing
    assert watcher.ready(now=4.0) == ([], 1)
    assert watcher.ready(now=8.0) == ([], 1)  # 4 s unchanged: not yet
    ready, waiting = watcher.ready(now=9.5)
    assert [(h.path, h.dossier, h.title) for h in ready] == [(scan, CODE, "don")] and waiting == 0


def test_watch_from_the_command_line(cli, home, rendered, tmp_path):
    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    save_page(rendered("hot3", layout="text", seed=603, dpi=200), folder / CODE / "don.png")
    code, out, err = cli("watch", folder, "--once", "--settle", "0.2")
    assert code == 0, err
    assert "đã số hóa don.png" in out and "Đã nhận 1 tệp" in err
    assert json.loads(json.dumps(manifest_of(home, CODE)))["totalDoc"] == 1
