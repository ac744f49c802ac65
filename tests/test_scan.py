"""Scanning through SANE: the real ``scanimage`` (Debian sane-utils) against SANE's own ``test``
backend (libsane1), which emulates a flatbed and a document feeder that runs empty after 10
sheets, and can be told to fail every read with a SANE status (jammed, cover open, ...).

Each test points SANE at a configuration directory of its own (SANE_CONFIG_DIR: ``dll.conf``
naming only the test backend, ``test.conf`` with the number of test devices), so the tests
never probe this machine's USB or network and find exactly the devices they set up. Counting
tests scan at low resolution; one scan is at the default 300 dpi colour; the end-to-end test
ingests the scanned pages into a dossier and finds as many PDF pages as were scanned.
"""
from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from pipeline import config, service
from pipeline.errors import ExitCode, describe
from pipeline.models import IngestRequest
from pipeline.scanner import (BatchLog, ScannerError, ScanSettings, check_batch, check_page_count, list_devices,
                              parse_log, parse_options, resolve_mode, resolve_source, check_resolution, scan_pages)
from tests.conftest import manifest_of

CODE = "H23.50-261201-0077"
PATTERN = ("--test-picture", "Color pattern")
# a black grid of 10 mm squares: what the end-to-end test ingests. (The colour pattern, whose
# 4:4:4 JPEG is larger than one byte a pixel, trips Pillow's optimize=True buffer in
# pipeline.pages.encode_image: "broken data stream when writing image file".)
GRID = ("--test-picture", "Grid")
FEEDER = "Automatic Document Feeder"


@pytest.fixture(scope="module", autouse=True)
def sane_installed():
    """The suite never skips: without scanimage or SANE's test backend it fails, saying what to install."""
    missing = []
    if shutil.which("scanimage") is None:
        missing.append("scanimage (Debian package sane-utils)")
    if not glob.glob("/usr/lib/*/sane/libsane-test.so*") and not glob.glob("/usr/lib/sane/libsane-test.so*"):
        missing.append("SANE's test backend (Debian package libsane1)")
    if missing:
        pytest.fail("Missing: " + ", ".join(missing) + "; run scripts/setup.sh (packages/debian.txt lists sane-utils)",
                    pytrace=False)


def sane_config(path: Path, monkeypatch, devices: int = 1, backends: str = "test") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dll.conf").write_text(backends + "\n")
    (path / "test.conf").write_text(f"number_of_devices {devices}\n")
    monkeypatch.setenv("SANE_CONFIG_DIR", str(path))  # no trailing ':': /etc/sane.d is not read
    return path


VIRTUAL_SCAN_LIMIT_S = 30  # a 3-page scan of the test device takes well under a second, loaded
VIRTUAL_SCAN_TRIES = 3


@pytest.fixture
def sane(tmp_path, monkeypatch) -> Path:
    """One test device, ``test:0``.

    SANE's test backend now and then stalls under load: its reader thread waits forever (seen
    once in a loaded CI-like run, never in 20 runs at rest; on 2026-12-03 twice in a row, in one
    scan of a suite run beside other test runs). For a real scanner a stall is an error after
    ``ScanSettings.timeout_s``; here the virtual device gets 30 s and two more tries, so a stall
    of the test device cannot hang or fail the suite, and a scan that never works still fails."""
    import pipeline.scanner as scanner

    real = scanner._run_batch

    def run_batch(command, timeout_s, on_page):
        for _ in range(VIRTUAL_SCAN_TRIES):
            status, stderr, timed_out = real(command, min(timeout_s, VIRTUAL_SCAN_LIMIT_S), on_page)
            if not timed_out:
                break
        return status, stderr, timed_out

    monkeypatch.setattr(scanner, "_run_batch", run_batch)
    return sane_config(tmp_path / "sane", monkeypatch)


def raises_scanner_error(call, *words: str) -> ScannerError:
    with pytest.raises(ScannerError) as caught:
        call()
    error = caught.value
    report = describe(error)
    assert (report.exit_code, report.code) == (ExitCode.INPUT, "scanner")
    for word in words:
        assert word in error.message_vi, (word, error.message_vi)
    return error


# --------------------------------------------------------------------------- the feeder, for real

def test_feeder_gives_three_tiffs_at_300_dpi_colour(sane, tmp_path):
    seen = []
    result = scan_pages(ScanSettings(device="test", pages=3, extra_options=PATTERN), tmp_path / "scan",
                        on_page=seen.append)
    assert [f.name for f in result.files] == ["page-0001.tif", "page-0002.tif", "page-0003.tif"]
    assert (result.reported_pages, result.device, result.source, result.mode, result.resolution) == \
        (3, "test", FEEDER, "Color", 300)
    assert seen == [1, 2, 3]
    assert result.command[1:] == ("-d", "test", f"--batch={tmp_path / 'scan' / '.scanimage' / 'raw-%04d.tif'}",
                                  "--format=tiff", "--batch-count=3", "--source", FEEDER, "--mode", "Color",
                                  "--resolution", "300", *PATTERN)
    assert sorted(p.name for p in (tmp_path / "scan").iterdir()) == [f.name for f in result.files]
    # the same sheet scanned by scanimage alone: sohoa's files hold its pixels unchanged
    raw = tmp_path / "raw.tif"
    subprocess.run(["scanimage", "-d", "test", "--format=tiff", f"--output-file={raw}", "--source", FEEDER,
                    "--mode", "Color", "--resolution", "300", *PATTERN], check=True, capture_output=True)
    with Image.open(raw) as reference:
        expected = reference.tobytes()
    descriptions = set()
    for number, path in enumerate(result.files, start=1):
        with Image.open(path) as img:
            assert img.format == "TIFF" and img.mode == "RGB"
            assert img.info["dpi"] == (300, 300)
            assert img.size == (944, 1181)              # the test backend's 80 x 100 mm at 300 dpi
            assert img.info["compression"] == "tiff_adobe_deflate"
            assert img.tobytes() == expected
            assert f"page {number} of 3" in img.tag_v2[270] and "test" in img.tag_v2[270]
            descriptions.add(img.tag_v2[270])
    # identical sheets (the test backend always draws the same one) are distinct files
    assert len({p.read_bytes() for p in result.files}) == 3 and len(descriptions) == 3


def test_feeder_until_empty_is_the_whole_bundle_on_the_only_device(sane, tmp_path):
    seen = []
    result = scan_pages(ScanSettings(resolution=50, mode="gray"), tmp_path / "scan", on_page=seen.append)
    assert result.device == "test:0"                     # the only scanner found
    assert (result.reported_pages, len(result.files), result.feeder_empty) == (10, 10, True)
    assert seen == list(range(1, 11))
    with Image.open(result.files[-1]) as img:
        assert (img.mode, img.info["dpi"]) == ("L", (50, 50))


def test_bundle_larger_than_the_limit_is_refused(sane, tmp_path):
    out = tmp_path / "scan"
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test", resolution=30, max_pages=4), out),
                         "«test»", "dài hơn giới hạn 4 trang")
    assert not list(out.glob("*.tif")) and not (out / ".scanimage").exists()


def test_feeder_running_empty_before_the_pages_asked_for_is_refused(sane, tmp_path):
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test", resolution=30, pages=12), tmp_path / "s"),
                         "«test»", "hết giấy sau 10 trang", "chưa đủ 12 trang")


def test_a_jam_fails_the_scan_and_names_the_device(sane, tmp_path):
    out = tmp_path / "scan"
    error = raises_scanner_error(
        lambda: scan_pages(ScanSettings(device="test:0", resolution=30, pages=3,
                                        extra_options=("--read-return-value", "SANE_STATUS_JAMMED")), out),
        "Máy quét «test:0» báo lỗi ở trang 1: kẹt giấy", "Đã nhận 0 trang")
    assert "jammed" in error.detail
    assert not list(out.glob("*.tif"))


def test_cover_open_is_reported(sane, tmp_path):
    raises_scanner_error(
        lambda: scan_pages(ScanSettings(device="test", resolution=30, pages=2,
                                        extra_options=("--read-return-value", "SANE_STATUS_COVER_OPEN")), tmp_path / "s"),
        "«test»", "nắp máy quét đang mở")


def test_images_that_did_not_come_out_are_counted_against_the_report(sane, tmp_path):
    # the backend ends every page at once: scanimage reports 2 pages and writes 2 empty images
    out = tmp_path / "scan"
    raises_scanner_error(
        lambda: scan_pages(ScanSettings(device="test", resolution=30, pages=2, mode="gray",
                                        extra_options=("--read-return-value", "SANE_STATUS_EOF")), out),
        "Máy quét «test» báo 2 trang nhưng chỉ nhận được 0 ảnh", "ảnh trang 1, 2 rỗng hoặc hỏng")
    assert not list(out.glob("*.tif"))


def test_flatbed_scans_one_page_and_only_one(sane, tmp_path):
    result = scan_pages(ScanSettings(device="test", source="Flatbed", resolution=30), tmp_path / "scan")
    assert (result.source, result.reported_pages, len(result.files), result.feeder_empty) == ("Flatbed", 1, 1, False)
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test", source="flatbed", pages=3), tmp_path / "s2"),
                         "«test»", "mỗi lần một trang")


def test_duplex_on_a_device_without_it_is_refused_before_scanning(sane, tmp_path):
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test", source="ADF Duplex"), tmp_path / "s"),
                         "Máy quét «test» không quét được hai mặt", FEEDER)


def test_resolution_outside_the_device_range_is_refused(sane, tmp_path):
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test", resolution=2400), tmp_path / "s"),
                         "«test»", "2400 dpi", "từ 1 đến 1200 dpi")


# --------------------------------------------------------------------------- which scanner

def test_a_device_that_does_not_exist_is_named(sane, tmp_path):
    error = raises_scanner_error(lambda: scan_pages(ScanSettings(device="khongco:0"), tmp_path / "s"),
                                 "Không mở được máy quét «khongco:0»", "Máy quét tìm thấy: test:0")
    assert "open of device khongco:0 failed" in error.detail


def test_no_scanner_found(tmp_path, monkeypatch):
    sane_config(tmp_path / "sane", monkeypatch, backends="")
    assert list_devices() == []
    raises_scanner_error(lambda: scan_pages(ScanSettings(), tmp_path / "s"),
                         "Không tìm thấy máy quét nào", "máy quét: chưa chọn", "--device")


def test_several_scanners_must_be_chosen(tmp_path, monkeypatch):
    sane_config(tmp_path / "sane", monkeypatch, devices=2)
    assert [d.name for d in list_devices()] == ["test:0", "test:1"]
    assert str(list_devices()[0]) == "test:0 (Noname frontend-tester, virtual device)"
    raises_scanner_error(lambda: scan_pages(ScanSettings(), tmp_path / "s"),
                         "nhiều máy quét", "test:0 (Noname", "test:1 (Noname", "--device")


def test_scanimage_not_installed(sane, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    raises_scanner_error(lambda: scan_pages(ScanSettings(device="test"), tmp_path / "s"),
                         "Chưa cài chương trình quét scanimage", "sane-utils")


# --------------------------------------------------------------------------- pure parts

def test_page_count_check():
    check_page_count("fujitsu:fi-7160:1", 5, 5)
    error = raises_scanner_error(lambda: check_page_count("fujitsu:fi-7160:1", 5, 4, [3]),
                                 "Máy quét «fujitsu:fi-7160:1» báo 5 trang nhưng chỉ nhận được 4 ảnh",
                                 "ảnh trang 3 rỗng hoặc hỏng", "quét lại")
    assert error.device == "fujitsu:fi-7160:1"
    raises_scanner_error(lambda: check_page_count("test:0", 2, 3), "báo 2 trang nhưng lại nhận được 3 ảnh")


JAM_AT_START_OF_PAGE_3 = """\
Scanning 101 pages, incrementing by 1, numbering from 1
Scanning page 1
Scanned page 1. (scanner status = 5)
Scanning page 2
Scanned page 2. (scanner status = 5)
Scanning page 3
scanimage: sane_start: Document feeder jammed
Batch terminated, 2 pages scanned
"""
FEEDER_EMPTY_AFTER_2 = JAM_AT_START_OF_PAGE_3.replace("Document feeder jammed", "Document feeder out of documents")


def test_batch_outcome_from_scanimage_report():
    log = parse_log(JAM_AT_START_OF_PAGE_3)
    assert (log.pages, log.terminated, log.good_pages, log.feeder_empty) == (((1, 5), (2, 5)), 2, 2, False)
    # a jam before the next sheet: scanimage exits 6 after two good pages; the bundle is incomplete
    raises_scanner_error(lambda: check_batch("canon_dr:libusb:001:004", 6, log),
                         "«canon_dr:libusb:001:004» báo lỗi ở trang 3: kẹt giấy", "Đã nhận 2 trang")
    # the feeder running out ends a bundle (scanimage exits 7 when --batch-count was given)
    empty = parse_log(FEEDER_EMPTY_AFTER_2)
    check_batch("test:0", 7, empty)
    check_batch("test:0", 0, empty)
    nothing = parse_log("Scanning page 1\nscanimage: sane_start: Document feeder out of documents\n"
                        "Batch terminated, 0 pages scanned\n")
    raises_scanner_error(lambda: check_batch("test:0", 7, nothing), "Khay nạp của máy quét «test:0» không có giấy")
    refused = parse_log("scanimage: setting of option --source failed (Invalid argument)\n")
    raises_scanner_error(lambda: check_batch("test:0", 1, refused), "«test:0» không quét được", "--source")
    assert check_batch("test:0", 0, BatchLog(pages=((1, 0),))) is None


FUJITSU_A = """\

All options specific to device `fujitsu:fi-7160:1':
  Standard:
    --source Flatbed|ADF Front|ADF Back|ADF Duplex [ADF Front]
        Selects the scan source (such as a document-feeder).
    --mode Lineart|Halftone|Gray|Color [Lineart]
        Selects the scan mode (e.g., lineart, monochrome, or color).
    --resolution 50..600dpi (in steps of 1) [600]
        Sets the resolution of the scanned image.
"""
EPSON2_A = """\
    --mode Lineart|Gray|Color [Lineart]
    --depth 8|16 [inactive]
    --resolution 75|150|300|600|1200dpi [75]
    --source Flatbed|Automatic Document Feeder [Flatbed]
    --adf-mode Simplex|Duplex [inactive]
"""


def test_logical_choices_map_to_each_device_own_values():
    fujitsu = parse_options(FUJITSU_A)
    assert resolve_source("f", "adf", fujitsu) == ("ADF Front", ())
    assert resolve_source("f", "ADF Duplex", fujitsu) == ("ADF Duplex", ())
    assert resolve_source("f", "flatbed", fujitsu) == ("Flatbed", ())
    assert resolve_source("f", "ADF Back", fujitsu) == ("ADF Back", ())     # the device's own value
    assert resolve_mode("f", "color", fujitsu) == "Color" and resolve_mode("f", "lineart", fujitsu) == "Lineart"
    check_resolution("f", 300, fujitsu)
    epson = parse_options(EPSON2_A)
    assert epson["--resolution"].choices == ("75", "150", "300", "600", "1200")
    assert resolve_source("e", "duplex", epson) == (FEEDER, ("--adf-mode", "Duplex"))
    assert resolve_source("e", "adf", epson) == (FEEDER, ())
    raises_scanner_error(lambda: check_resolution("e", 200, epson), "«e»", "200 dpi", "75, 150, 300, 600, 1200")
    raises_scanner_error(lambda: resolve_source("e", "Transparency", epson), "«e»", "Transparency")
    raises_scanner_error(lambda: resolve_mode("e", "rainbow", epson), "«e»", "rainbow")


# --------------------------------------------------------------------------- scanned, then ingested

def test_scanned_pages_ingest_as_one_document(sane, home, tmp_path):
    scan = scan_pages(ScanSettings(device="test", pages=3, resolution=150, extra_options=GRID), tmp_path / "scan")
    settings = config.load()
    summary = service.ingest(settings, IngestRequest(CODE, tuple(str(f) for f in scan.files), "Tờ khai quét",
                                                     jobs=1))
    assert len(summary.pages) == scan.reported_pages == 3
    document = manifest_of(home, CODE)["documents"][0]
    assert document["numberOfPage"] == 3
    assert [o["filename"] for o in document["originals"]] == ["page-0001.tif", "page-0002.tif", "page-0003.tif"]
    for page in document["pages"]:
        assert (page["dpi"], page["dpiSource"], page["colorMode"]) == ([150, 150], "header", "rgb")
        assert (page["width"], page["height"]) == (472, 590)
    with pikepdf.open(home / "store" / document["pdf"]["key"]) as pdf:
        assert len(pdf.pages) == 3
        # 80 x 100 mm (page 1 may gain a white band above the scan for the signature stamp: the grid
        # leaves no free place on it)
        for page in pdf.pages[1:]:
            width, height = (float(v) for v in page.mediabox[2:])
            assert abs(width - 472 / 150 * 72) < 0.5 and abs(height - 590 / 150 * 72) < 0.5


def test_bitonal_pages_stay_one_bit_and_lossless(sane, tmp_path):
    result = scan_pages(ScanSettings(device="test", pages=1, resolution=100, mode="gray",
                                     extra_options=("--depth", "1", *GRID)), tmp_path / "scan")
    raw = tmp_path / "raw.tif"
    subprocess.run(["scanimage", "-d", "test", "--format=tiff", f"--output-file={raw}", "--source", FEEDER,
                    "--mode", "Gray", "--depth", "1", "--resolution", "100", *GRID], check=True, capture_output=True)
    with Image.open(result.files[0]) as img, Image.open(raw) as reference:
        assert (img.mode, img.info["compression"], img.info["dpi"]) == ("1", "group4", (100, 100))
        assert img.tobytes() == reference.tobytes()
