"""The page image sohoa keeps (pipeline.pages): every pixel of the scan at the scan's resolution,
never resampled (the PDF draws a skewed scan turned), its colours (a red seal stays red),
SOHOA_JPEG_QUALITY obeyed, and the scanner's own JPEG kept byte for byte when the page needed no
quarter turn and that JPEG is no larger. Pages run through the real page stage on a local object store.
"""
from __future__ import annotations

import hashlib
import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from ocr import cleanup, orientation
from ocr.page import Placement
from pipeline.models import PageTask
from pipeline.pages import PageCache, run_page
from storage.local import LocalStore
from tests.pagegen import PageSpec, render_page

SEAL_PAGE = PageSpec(layout="seal", dpi=300, degradation=1, color="rgb", seed=5)


def stored_page(tmp_path, data: bytes, kind: str, quality: int = 75):
    """(page result, stored image bytes) of page 1 of ``data`` through the page stage."""
    store = LocalStore(tmp_path / f"store-{kind}-{quality}")
    store.put("originals/scan", data)
    task = PageTask(key="originals/scan", file=f"scan.{kind}", kind=kind, sha256=hashlib.sha256(data).hexdigest(),
                    page=1, engine="tesseract", jpeg_quality=quality)
    cache = PageCache(store)
    result = run_page(task, cache)
    assert result.error is None, result.error
    return result, cache.image(result.image_key)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, dpi=(300, 300), **options)
    return buf.getvalue()


def red(pixels: np.ndarray, margin: int = 60) -> np.ndarray:
    """Pixels clearly red: red above green by ``margin`` and above blue by two thirds of it."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r - g > margin) & (r - b > margin * 2 // 3)


def test_the_page_image_keeps_the_scans_pixels_resolution_and_red_seal(tmp_path):
    scan = render_page(SEAL_PAGE).image
    result, image = stored_page(tmp_path, encoded(scan, "PNG"), "png")
    kept = Image.open(io.BytesIO(image))
    assert (result.encoding, result.color_mode, kept.mode) == ("jpeg", "rgb", "RGB")
    assert kept.size == scan.size == (result.width, result.height)
    assert result.dpi == (300, 300)
    seal, kept = red(np.asarray(scan)), np.asarray(kept)
    assert seal.sum() > 10_000, "the test page has no seal"
    assert (seal & red(kept, 30)).sum() >= 0.98 * seal.sum()  # the seal is still red where it was red
    assert (red(kept) & ~red(np.asarray(scan), 30)).sum() <= 0.02 * seal.sum()  # and no red bled around it
    # a PNG scan's colour is at full resolution: so is the kept page's (no chroma subsampling)
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(image))) == 0


def test_a_scanners_4_2_0_jpeg_is_kept_at_its_own_chroma_resolution(tmp_path):
    """Re-encoding a scanner's 4:2:0 JPEG at 4:4:4 would spend bytes on colour detail the scan
    never had; at 4:2:0 it loses nothing more than the scanner did."""
    page = render_page(PageSpec(layout="admin", dpi=300, degradation=1, color="rgb", seed=6, skew_deg=1.0)).image
    for sampling in (2, 0):
        data = encoded(page, "JPEG", quality=92, subsampling=sampling)
        result, image = stored_page(tmp_path / str(sampling), data, "jpeg")
        assert result.skew_deg != 0 and image != data  # a scan larger than sohoa's encoding is encoded again
        assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(image))) == sampling


def test_jpeg_quality_setting_sets_the_size(tmp_path):
    data = encoded(render_page(SEAL_PAGE).image, "PNG")
    low, high = (len(stored_page(tmp_path, data, "png", quality)[1]) for quality in (40, 95))
    assert low < 0.6 * high


def test_an_unchanged_page_keeps_the_scanners_jpeg_byte_for_byte(tmp_path):
    """(Kept when it is no larger than sohoa's own encoding: a scanner's small JPEG.)"""
    data = encoded(render_page(SEAL_PAGE).image, "JPEG", quality=50, optimize=True, progressive=True)
    result, image = stored_page(tmp_path, data, "jpeg")
    assert result.encoding == "jpeg" and "blank" in result.flags
    assert image == data


@pytest.mark.parametrize("skew", [0.0, -0.06])
def test_a_page_within_a_tenth_of_a_degree_of_level_keeps_the_scanners_jpeg(tmp_path, skew):
    """A skew under 0.1° is left as scanned (as Leptonica's pixDeskew leaves it): resampling would
    soften every stroke, and the scanner's JPEG would be encoded a second time, larger."""
    scan = render_page(PageSpec(layout="text", dpi=300, degradation=1, color="rgb", seed=21, skew_deg=skew,
                                max_body_lines=8)).image
    data = encoded(scan, "JPEG", quality=50, optimize=True)
    result, image = stored_page(tmp_path, data, "jpeg")
    assert result.skew_deg == 0 and len(result.words) > 100
    assert image == data


def test_a_cmyk_scan_is_reencoded_in_its_true_colours(tmp_path):
    """An Adobe CMYK JPEG would print wrong in a reader that takes it for DeviceRGB: it is never
    passed through, the kept page is RGB and shows the same red seal."""
    scan = render_page(SEAL_PAGE).image
    data = encoded(scan.convert("CMYK"), "JPEG", quality=60)
    result, image = stored_page(tmp_path, data, "jpeg")
    kept = Image.open(io.BytesIO(image))
    assert image != data and kept.mode == "RGB" and result.color_mode == "rgb"
    assert (red(np.asarray(scan)) & red(np.asarray(kept))).sum() >= 0.9 * red(np.asarray(scan)).sum()


def test_a_skewed_scan_is_kept_as_scanned_and_the_pdf_shows_it_level_without_its_black_bed(tmp_path):
    """Deskewing no longer resamples the scan: the PDF draws the scanner's own JPEG turned by the
    skew, clipped to the sheet, the rest painted paper. What a reader shows is level, with no black
    scanner bed, and the kept bytes are the scan's (a resampled page is softer and was encoded again)."""
    from pdf2image import convert_from_bytes

    from pipeline.pdfa import DocumentMeta, PageRender, build_pdfa

    page = render_page(PageSpec(layout="text", dpi=300, degradation=1, color="rgb", seed=21, skew_deg=2.5,
                                black_border_mm=8, max_body_lines=12))
    data = encoded(page.image, "JPEG", quality=50, optimize=True)
    result, image = stored_page(tmp_path, data, "jpeg")
    assert abs(result.skew_deg - 2.5) < 0.2 and result.placement is not None
    assert image == data  # the scanner's bytes, not a resampled copy
    pdf = build_pdfa([PageRender(image, result.encoding, result.width, result.height, (300, 300), result.color_mode,
                                 list(result.words), Placement.from_json(result.placement))],
                     DocumentMeta("t", "t", "H23.50-261201-0001", datetime(2026, 1, 1)))
    (shown,) = convert_from_bytes(pdf, dpi=100)
    assert abs(shown.width - result.width / 3) <= 1 and abs(shown.height - result.height / 3) <= 1
    lines = orientation.text_lines(cleanup.ink_gray_mask(shown, 100), 100)
    assert lines.likely == 0 and abs(lines.skew_deg) < 0.2  # level on screen
    gray = np.asarray(shown.convert("L"))
    edge = round(100 / 25.4 * 3)  # the outer 3 mm, inside the 8-mm bed of the scan
    assert all((strip < 80).mean() < 0.01 for strip in (gray[:edge], gray[-edge:], gray[:, :edge], gray[:, -edge:]))


@pytest.mark.parametrize("dpi", [(300, 300), (300, 150)])
def test_the_pdf_shows_a_deskewed_page_where_its_words_were_read(tmp_path, dpi):
    """The words' boxes are in the pixels of the page as deskewed; the PDF turns the scan itself,
    and must land each stroke on those pixels, for a scan of two resolutions too (a fax)."""
    from bench.pdf_drawing import agreement, rendered_dark
    from ocr.page import archive_image, straighten
    from pipeline.pages import encode_image
    from pipeline.pdfa import DocumentMeta, PageRender, build_pdfa

    page = render_page(PageSpec(layout="text", dpi=300, degradation=1, color="gray", seed=22, skew_deg=3.0,
                                max_body_lines=10)).image
    scan = page.resize((page.width, round(page.height * dpi[1] / dpi[0])), Image.Resampling.BOX)
    placement = straighten(scan, dpi[0], 0, 3.0).placement
    expected = np.asarray(archive_image(scan, placement)) < 128
    data, encoding, colour = encode_image(scan, 90)
    pdf = build_pdfa([PageRender(data, encoding, scan.width, scan.height, dpi, colour, [], placement)],
                     DocumentMeta("t", "t", "H23.50-261201-0001", datetime(2026, 1, 1)))
    (tmp_path / "p.pdf").write_bytes(pdf)
    shown = rendered_dark(tmp_path / "p.pdf", dpi)
    assert abs(shown.shape[0] - expected.shape[0]) <= 1 and abs(shown.shape[1] - expected.shape[1]) <= 1
    covered, _ = agreement(expected, shown)
    assert expected.sum() > 20_000 and covered >= 0.95, covered


REALSCANS = Path(__file__).resolve().parent / "data" / "realscans"


@pytest.mark.parametrize("name", ["46-TB-p1.jpg", "11CT-p1.tif", "H14-1999-1180-ND-001-020-p2.jpg"])
def test_on_real_scans_the_pdf_shows_every_stroke_where_the_page_stage_placed_it(tmp_path, name):
    """Real paper, through the whole page stage: a colour JPEG skewed 1.6 degrees, a bitonal G4
    TIFF (turned by nearest neighbour) and a 1999 page whose resolution comes from its paper size
    (254.5 dpi, no header). pdftoppm's rendering of the PDF at the page's resolution holds the
    archive page's strokes where ``archive_image`` puts them (the words' boxes are in those
    pixels), and no stroke elsewhere. All 38 real scans of the source set passed so."""
    from bench.pdf_drawing import drawn

    page = drawn(REALSCANS / name)
    assert page["placed"] and abs(page["skew_deg"]) > 0.2, page  # drawn turned by the PDF
    (rows, cols), (rows_expected, cols_expected) = page["size"]
    assert abs(rows - rows_expected) <= 1 and abs(cols - cols_expected) <= 1, page
    assert page["dark"] > 50_000 and page["covered"] >= 0.99 and page["extra"] <= 0.01, page


def test_the_manifest_says_how_a_deskewed_page_is_drawn(cli, home, tmp_path):
    """The PDF holds the scan as scanned and turns it: the manifest records how (``placement``),
    so that the page as shown can be drawn again from the PDF's image and the manifest alone,
    years later, without reading the PDF's content stream."""
    import pikepdf

    from bench.pdf_drawing import agreement, rendered_dark
    from ocr.page import archive_image
    from tests.conftest import manifest_of

    code = "H23.50-261203-0083"
    page = render_page(PageSpec(layout="text", dpi=200, degradation=1, color="rgb", seed=83, skew_deg=2.5,
                                max_body_lines=8))
    scan = tmp_path / "lech.png"
    page.image.save(scan, dpi=page.dpi)
    exit_code, out, err = cli("ingest", "--dossier", code, "--title", "Đơn", "--unsigned", "--json", str(scan))
    assert exit_code == 0, err
    (document,) = manifest_of(home, code)["documents"]
    (entry,) = document["pages"]
    assert round(entry["placement"]["skewDeg"], 3) == entry["skewDeg"] != 0
    placement = Placement.from_json(entry["placement"])
    pdf_path = home / "store" / document["pdf"]["key"]
    with pikepdf.open(pdf_path) as pdf:
        image = pikepdf.PdfImage(next(iter(pdf.pages[0].get_images(recursive=False).values()))).as_pil_image()
    assert image.size == tuple(entry["placement"]["size"])
    expected = np.asarray(archive_image(image, placement).convert("L")) < 128
    covered, extra = agreement(expected, rendered_dark(pdf_path, entry["dpi"]))
    assert expected.sum() > 20_000 and covered >= 0.99 and extra <= 0.01, (covered, extra)


def test_a_quarter_turn_swaps_the_scans_two_resolutions(tmp_path):
    """A scan stated at 200 x 201 dpi and lying on its side: once turned, the page's rows were the
    scan's columns, so its resolution across is the scan's 201 (the PDF page keeps its size in mm)."""
    scan = render_page(PageSpec(layout="admin", dpi=200, degradation=1, color="gray", seed=24, orientation=90,
                                max_body_lines=6)).image
    buf = io.BytesIO()
    scan.save(buf, "PNG", dpi=(200, 201))
    result, _ = stored_page(tmp_path, buf.getvalue(), "png")
    assert result.orientation == 90 and (result.width, result.height) == (scan.height, scan.width)
    assert tuple(round(v) for v in result.dpi) == (201, 200)
