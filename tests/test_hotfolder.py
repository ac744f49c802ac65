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


# --------------------------------------------------------------------------- the hands-on review's findings

def _events(folder, handle, **kw):
    from pipeline import hotfolder

    seen = []
    taken = hotfolder.run(folder, handle, settle=0.05, poll=0.02, once=True,
                          on_event=lambda kind, hot, detail: seen.append((kind, hot.path.name, detail)), **kw)
    return taken, seen


def test_a_file_the_scanner_writes_on_while_it_is_read_is_not_marked_done_and_is_read_again(tmp_path):
    """A multi-page TIFF is a valid shorter TIFF at every page boundary: a scanner pausing longer
    than the settle time got its first pages signed and the file moved to done/ (the scanner then
    finished it there), with no word (hot-folder review)."""
    from pipeline.hotfolder import Taken

    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    scan = folder / CODE / "scan_0003.tif"
    scan.write_bytes(b"page 1, page 2")
    reads = []

    def handle(hot):
        reads.append(hot.path.read_bytes())
        if len(reads) == 1:
            with open(hot.path, "ab") as f:  # the scanner writes page 3 while the first read goes on
                f.write(b", page 3")
        return Taken(CODE, f"{CODE}.{len(reads):03d}")

    taken, seen = _events(folder, handle)
    assert reads == [b"page 1, page 2", b"page 1, page 2, page 3"] and taken == 1  # one file
    assert seen[0][0] == "changed" and f"{CODE}.001 vừa lưu từ phần đã đọc, có thể thiếu trang" in seen[0][2]
    assert seen[1][:2] == ("done", "scan_0003.tif")
    assert (folder / "done" / CODE / "scan_0003.tif").read_bytes() == b"page 1, page 2, page 3"


def test_a_file_changed_in_done_after_it_was_taken_is_reported(tmp_path):
    from pipeline import hotfolder

    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    (folder / CODE / "don.pdf").write_bytes(b"two pages")
    seen = []
    ticks = iter(range(10**6))

    def sleep(_):
        done = folder / "done" / CODE / "don.pdf"
        if done.exists() and done.stat().st_size == 9:
            done.write_bytes(b"two pages and a third")  # the scanner's handle still open, writing on
        if len(seen) >= 2:
            raise KeyboardInterrupt

    try:
        hotfolder.run(folder, lambda hot: hotfolder.Taken(CODE, f"{CODE}.001"), settle=0, poll=0,
                      on_event=lambda kind, hot, detail: seen.append((kind, detail)), clock=lambda: next(ticks),
                      sleep=sleep)
    except KeyboardInterrupt:
        pass
    assert [k for k, _ in seen] == ["done", "changed-in-done"]
    assert f"tài liệu {CODE}.001 có thể thiếu trang" in seen[1][1]


def test_a_file_that_cannot_be_moved_or_is_gone_never_stops_the_watch(tmp_path):
    """Any error moving a file ended the watch (exit 70, "nothing was stored", though it was): a file
    deleted while read, moved by the operator, a done/ the service may not write (hot-folder review)."""
    from pipeline.hotfolder import Taken

    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        (folder / CODE / name).write_bytes(name.encode())
    done = []

    def handle(hot):
        if hot.path.name == "1.jpg":
            hot.path.unlink()  # deleted while it was read: stored all the same
        if hot.path.name == "2.jpg":
            (folder / CODE / "3.jpg").rename(tmp_path / "3.jpg")  # the operator moves the next one away
        done.append(hot.path.name)
        return Taken(CODE, f"{CODE}.00{len(done)}")

    taken, seen = _events(folder, handle)
    assert done == ["1.jpg", "2.jpg"] and taken == 2
    assert seen[0][0] == "left" and "tệp 1.jpg không còn ở đó" in seen[0][2]
    assert seen[1][:2] == ("done", "2.jpg")


def test_documents_go_in_in_the_natural_order_of_their_names(tmp_path):
    """scan_1 ... scan_12 went in as 1, 10, 11, 12, 2, ... for ever (hot-folder review)."""
    from pipeline.hotfolder import Taken

    folder = tmp_path / "may-quet"
    (folder / CODE).mkdir(parents=True)
    for n in (12, 3, 1, 10, 2, 11):
        (folder / CODE / f"scan_{n}.jpg").write_bytes(b"x" * n)
    order = []
    _events(folder, lambda hot: order.append(hot.path.name) or Taken(CODE))
    assert order == [f"scan_{n}.jpg" for n in (1, 2, 3, 10, 11, 12)]


def test_links_folders_inside_a_dossier_and_temporary_names_are_left_alone_and_said_once(tmp_path):
    folder = tmp_path / "may-quet"
    (folder / CODE / "2026-12-05").mkdir(parents=True)
    (folder / CODE / "2026-12-05" / "3.jpg").write_bytes(b"x")
    outside = tmp_path / "ngoai" / "rieng.jpg"
    outside.parent.mkdir()
    outside.write_bytes(b"not the scanner's")
    (folder / CODE / "lien-ket.jpg").symlink_to(outside)
    for name in ("a.pdf.filepart", "b.pdf.sb-1a2b3c-XyZ", "c.pdf~"):
        (folder / CODE / name).write_bytes(b"uploading")
    (folder / CODE / "rong.pdf").write_bytes(b"")  # empty: taken (and refused) once it has stayed empty
    handled = []

    def handle(hot):
        handled.append(hot.path.name)
        raise ValueError("tệp rỗng")

    _, seen = _events(folder, handle)
    assert handled == ["rong.pdf"] and outside.read_bytes() == b"not the scanner's"
    left = sorted(detail for kind, _, detail in seen if kind == "left")
    assert len(left) == 2 and "2026-12-05 là thư mục con trong thư mục hồ sơ" in left[0]
    assert "lien-ket.jpg là liên kết (symlink)" in left[1]
    assert (folder / CODE / "a.pdf.filepart").exists() and (folder / CODE / "c.pdf~").exists()


def test_the_watch_refuses_the_data_folder_and_a_folder_it_cannot_read_no_longer_ends_it(tmp_path):
    """Watching SOHOA_HOME moved the database and the development key into failed/ (hot-folder
    review); an unmounted share ended the watch."""
    import pytest

    from pipeline import hotfolder
    from pipeline.errors import UsageError

    home = tmp_path / "home"
    home.mkdir()
    settings = config.load({"SOHOA_HOME": str(home)})
    for folder in (home, tmp_path, home / "store" / "dossiers"):
        folder.mkdir(parents=True, exist_ok=True)
        with pytest.raises(UsageError, match="chứa dữ liệu của sohoa"):
            service.watch(settings, folder, once=True)
    share = tmp_path / "may-quet"
    share.mkdir()
    seen = []
    looks = iter(range(3))

    def sleep(_):
        if next(looks) == 0:
            share.rename(tmp_path / "da-thao")  # the share unmounted
        if len(seen) > 0:
            raise KeyboardInterrupt

    try:
        hotfolder.run(share, lambda hot: hotfolder.Taken(CODE), settle=0, poll=0, sleep=sleep,
                      on_event=lambda kind, hot, detail: seen.append((kind, detail)))
    except KeyboardInterrupt:
        pass
    assert seen and seen[0][0] == "unreadable" and "không đọc được thư mục" in seen[0][1]


def test_a_dossier_folder_that_cannot_be_read_or_a_share_error_stops_only_itself(tmp_path, monkeypatch):
    """One unreadable dossier folder threw away every look, and an error of the share while a
    file was looked at ended the watch (review of the rework)."""
    from pathlib import Path

    from pipeline.hotfolder import Taken

    folder = tmp_path / "may-quet"
    for code in (CODE, "H23.50-261201-0022", "H23.50-261201-0023"):
        (folder / code).mkdir(parents=True)
        (folder / code / "don.pdf").write_bytes(code.encode())
    locked, flaky = folder / "H23.50-261201-0022", folder / "H23.50-261201-0023" / "don.pdf"
    listing, looking = Path.iterdir, Path.stat

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied")
        return listing(self)

    def stat(self, **kw):
        if self == flaky and flaky_down[0]:
            raise OSError(112, "Host is down")
        return looking(self, **kw)

    flaky_down = [False]
    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(Path, "stat", stat)
    handled = []

    def handle(hot):
        handled.append(hot.path.parent.name)
        flaky_down[0] = True  # the share drops under the next file
        return Taken(hot.dossier)

    taken, seen = _events(folder, handle)
    assert handled == [CODE] and taken == 1
    said = [detail for kind, _, detail in seen if kind == "left"]
    assert any("H23.50-261201-0022 không đọc được (Permission denied)" in d for d in said), said
    flaky_down[0] = False  # the share back
    assert (folder / "done" / CODE / "don.pdf").is_file() and flaky.is_file()
