"""process_page on rendered Vietnamese pages: the contract, accuracy, reading order, flags."""
from __future__ import annotations

import io
import json
import random
import unicodedata
from collections import Counter

import numpy as np
import psutil
import pytest
from PIL import Image

from bench.orientation_probe import CountingTesseract as CountingEngine
from ocr import process_page
from ocr.page import Placement, archive_image
from tests.pagegen import PageSpec, render_page


def archive(result: dict):
    """The archive page as pixels: the scan placed as the PDF places it."""
    return archive_image(result["image"], result["placement"])


def words_found(truth: str, text: str) -> float:
    expected, found = Counter(truth.split()), Counter(text.split())
    return sum(min(n, found[w]) for w, n in expected.items()) / max(1, sum(expected.values()))


@pytest.fixture(scope="module")
def text_page():
    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=4.3, orientation=90, degradation=2, seed=21))
    return page, process_page(page.image, page.dpi)


def test_result_follows_the_contract(text_page):
    page, result = text_page
    assert set(result) == {"image", "placement", "orientation", "skew_deg", "words", "text", "confidence", "flags",
                           "review"}
    placement = result["placement"]
    json.dumps({**{k: v for k, v in result.items() if k not in ("image", "placement")}, "placement": placement.to_json()})
    assert Placement.from_json(json.loads(json.dumps(placement.to_json()))) == placement
    # the scan itself, its quarter turn undone exactly: not resampled
    assert result["image"].tobytes() == page.image.transpose(Image.Transpose.ROTATE_270).tobytes()
    assert result["image"].mode == page.image.mode
    assert result["orientation"] == 90
    assert abs(result["skew_deg"] - 4.3) <= 0.2 and placement.skew_deg == pytest.approx(result["skew_deg"], abs=1e-3)
    width, height = result["image"].size
    assert placement.size == (width, height)
    assert height > width  # upright A4 again
    assert result["text"] == unicodedata.normalize("NFC", result["text"])
    lines: dict[int, list[str]] = {}
    for word in result["words"]:
        assert set(word) == {"text", "x0", "y0", "x1", "y1", "conf", "line"}
        assert 0 <= word["x0"] < word["x1"] <= width and 0 <= word["y0"] < word["y1"] <= height
        lines.setdefault(word["line"], []).append(word["text"])
    assert result["text"].split("\n") == [" ".join(ws) for ws in lines.values()]
    assert result["confidence"] == pytest.approx(np.mean([w["conf"] for w in result["words"]]), abs=0.01)
    assert result["flags"] == []
    assert {r["line"] for r in result["review"]} <= set(lines)  # lines to read again are lines of the page


def test_words_sit_on_their_ink(text_page):
    _, result = text_page
    gray = np.asarray(archive(result).convert("L"))
    for word in result["words"][::25]:
        box = gray[word["y0"]:word["y1"], word["x0"]:word["x1"]]
        assert (box < 128).mean() > 0.05, word


def test_text_page_words_found_and_character_error_rate(text_page):
    page, result = text_page
    assert words_found(page.text, result["text"]) >= 0.95
    from rapidfuzz.distance import Levenshtein
    truth, text = " ".join(page.text.split()), " ".join(result["text"].split())
    assert Levenshtein.distance(truth, text) / len(truth) <= 0.02


def test_admin_header_is_read_column_by_column():
    page = render_page(PageSpec(layout="admin", dpi=300, skew_deg=-2.7, degradation=1, seed=4))
    result = process_page(page.image, page.dpi)
    lines = result["text"].split("\n")
    agency, motto = page.header_left[0], page.header_right[0]
    assert agency in lines and motto in lines, lines[:8]
    assert lines.index(agency) < lines.index(page.header_left[1]) < lines.index(motto), lines[:8]
    assert words_found(page.text, result["text"]) >= 0.95
    # the seal and the signature stay in colour in the archive image
    rgb = np.asarray(archive(result)).astype(int)
    assert ((rgb[..., 0] - rgb[..., 1] > 100) & (rgb[..., 0] > 150)).sum() > 1000


def test_table_cells_are_read():
    page = render_page(PageSpec(layout="table", dpi=300, skew_deg=3.5, orientation=180, degradation=1, seed=8))
    result = process_page(page.image, page.dpi)
    assert result["orientation"] == 180
    text = result["text"]
    assert words_found(page.text, text) >= 0.95
    # nearly every cell's words are found, not only the long ones
    found_cells = sum(1 for cell in page.table_cells if words_found(cell, text) == 1.0)
    assert found_cells >= 0.9 * len(page.table_cells)
    assert "Nội dung công việc" in text


def test_gray_and_bitonal_scans_keep_their_mode():
    for color in ("gray", "bitonal"):
        page = render_page(PageSpec(layout="admin", dpi=200, skew_deg=1.5, color=color, degradation=1, seed=6))
        result = process_page(page.image, page.dpi)
        assert result["image"].mode == page.image.mode
        assert words_found(page.text, result["text"]) >= 0.9, color


def test_blank_page_is_flagged():
    page = render_page(PageSpec(layout="blank", dpi=200, degradation=2, seed=3))
    result = process_page(page.image, page.dpi)
    assert result["flags"] == ["blank"]
    assert result["words"] == [] and result["text"] == "" and result["confidence"] == 0


def test_blurry_page_is_flagged_and_a_sharp_one_is_not():
    sharp = render_page(PageSpec(layout="text", dpi=200, degradation=3, seed=12))
    blurry = render_page(PageSpec(layout="text", dpi=200, degradation=1, extra_blur_px=4.0, seed=12))
    assert "blurry" not in process_page(sharp.image, sharp.dpi)["flags"]
    assert "blurry" in process_page(blurry.image, blurry.dpi)["flags"]


def test_cut_off_page_is_flagged():
    page = render_page(PageSpec(layout="text", dpi=200, degradation=1, cut_off_fraction=0.4, seed=9))
    assert "cut_off" in process_page(page.image, page.dpi)["flags"]


def test_black_scanner_border_is_painted_paper_and_the_page_keeps_its_size():
    page = render_page(PageSpec(layout="text", dpi=200, skew_deg=2.0, black_border_mm=10, degradation=1, seed=13))
    result = process_page(page.image, page.dpi)
    gray = np.asarray(archive(result).convert("L"))
    edge = max(2, int(200 / 25.4 * 2))  # the outer 2 mm
    strips = [gray[:edge], gray[-edge:], gray[:, :edge], gray[:, -edge:]]
    assert all((strip < 80).mean() < 0.01 for strip in strips)
    assert archive(result).size == page.image.size
    assert words_found(page.text, result["text"]) >= 0.95
    assert "cut_off" not in result["flags"]


@pytest.mark.parametrize("turn", [0, 90])
def test_deskew_and_turn_keep_the_scanned_pixel_size(turn):
    page = render_page(PageSpec(layout="admin", dpi=150, orientation=turn, skew_deg=3.0, degradation=1, seed=17))
    result = process_page(page.image, page.dpi)
    w, h = page.image.size
    assert archive(result).size == ((w, h) if turn == 0 else (h, w))
    gray = np.asarray(archive(result).convert("L"))
    corners = [gray[:8, :8], gray[:8, -8:], gray[-8:, :8], gray[-8:, -8:]]
    assert all(c.mean() > 200 for c in corners)  # paper, no dark wedge


def test_resolution_from_the_header_a_standard_paper_size_or_a_default():
    from ocr.paper import page_resolution

    assert page_resolution((2480, 3508), (300, 300)).source == "header"
    assert page_resolution((1654, 2339), (200, 200)).dpi == 200
    # a 300-dpi A4 scan that says 72 dpi, and an A4 scan with no resolution at all
    assert abs(page_resolution((2480, 3508), (72, 72)).dpi - 300) < 1
    a4 = page_resolution((1667, 2425), None)
    assert (a4.source, a4.paper) == ("paper-size", "A4")
    assert abs(2425 / a4.dpi * 25.4 - 297) <= 0.02 * 297 and abs(1667 / a4.dpi * 25.4 - 210) <= 0.02 * 210
    letter = page_resolution((3300, 2550), None)  # landscape Letter
    assert letter.paper == "Letter" and abs(letter.dpi - 300) < 1
    card = page_resolution((1012, 638), (96, 96))
    assert card.paper == "ID card" and abs(1012 / card.dpi * 25.4 - 85.6) < 1
    receipt = page_resolution((600, 2400), None)  # a till receipt keeps its own proportions
    assert receipt.source == "default" and receipt.dpi == 300


@pytest.mark.parametrize("layout", ["blank", "seal", "signed"])
def test_a_page_without_text_is_flagged_blank_and_left_as_scanned(layout):
    """An empty back page, or one carrying only a seal, or a signature under a seal, has no lines
    to straighten by: it is neither turned nor rotated (a real back page with a pale seal once came
    out turned by 270 degrees and rotated by 20), and a signature's blue is not taken for text
    written in blue."""
    page = render_page(PageSpec(layout=layout, dpi=200, degradation=2, seed=23))
    result = process_page(page.image, page.dpi)
    assert result["flags"] == ["blank"] and result["orientation"] == 0 and result["skew_deg"] == 0
    assert result["placement"] is None and result["image"].tobytes() == page.image.tobytes()


@pytest.mark.parametrize("seed", [63, 68])
def test_a_page_of_only_a_signature_under_a_seal_saved_as_jpeg_is_blank_and_kept_as_scanned(seed):
    """Where the thin blue signature crosses the seal, blur and the scanner's JPEG wash its colour
    out: the grey pieces left counted as black text, and such pages came out read and turned."""
    page = render_page(PageSpec(layout="signed", dpi=200, degradation=3, seed=seed))
    scanned = io.BytesIO()
    page.image.save(scanned, "JPEG", quality=85)
    scan = Image.open(scanned)
    scan.load()
    result = process_page(scan, page.dpi)
    assert result["flags"] == ["blank"] and result["orientation"] == 0 and result["placement"] is None


@pytest.mark.parametrize("paper", [(170, 120, 80), (250, 225, 120)])
def test_one_line_of_black_text_on_kraft_or_yellow_paper_is_read_not_taken_for_a_signature(paper):
    """Judged in raw pixels, the tinted paper and the edges of its letters passed for coloured ink:
    every mark touched it, none counted, and the page came out blank (a review of d888f61)."""
    page = render_page(PageSpec(layout="text", seed=1306, dpi=200, skew_deg=1.2, max_body_lines=1))
    tinted = Image.fromarray((np.asarray(page.image, float) * np.array(paper) / 255).astype(np.uint8))
    result = process_page(tinted, page.dpi)
    assert "blank" not in result["flags"] and abs(result["skew_deg"] - 1.2) < 0.3
    assert words_found(page.text, result["text"]) >= 0.9


BALLPOINT, VIOLET = (30, 60, 170), (100, 40, 140)


@pytest.mark.parametrize("ink, layout, turn", [(BALLPOINT, "text", 0), (BALLPOINT, "admin", 90), (VIOLET, "text", 180)])
def test_a_page_typed_or_written_in_blue_or_violet_ink_is_read_and_kept_in_colour(ink, layout, turn):
    """Its ink was taken for a signature's and made pale: the page came out flagged blank, with
    no text, as scanned."""
    page = render_page(PageSpec(layout=layout, dpi=300, skew_deg=1.5, orientation=turn, degradation=1, seed=41,
                                ink=ink))
    result = process_page(page.image, page.dpi)
    assert "blank" not in result["flags"] and result["orientation"] == turn and abs(result["skew_deg"] - 1.5) < 0.3
    assert words_found(page.text, result["text"]) >= 0.95
    shown = np.asarray(archive(result), dtype=np.int16)
    assert archive(result).mode == "RGB" and ((shown[..., 2] - shown[..., 1]) > 60).sum() > 20_000  # its ink
    corners = shown[:8, :8].reshape(-1, 3)  # uncovered by the deskew: painted the colour paper, not red
    assert (np.abs(corners - np.median(shown.reshape(-1, 3), axis=0)) < 25).all()


def test_a_back_page_carrying_only_a_violet_received_stamp_is_blank_and_not_turned_by_the_stamp():
    """The stamp has letters enough to pass for text in colour, but it is no page of text: read in
    colour, the page was deskewed by the stamp's tilt (7 degrees)."""
    from PIL import ImageDraw, ImageFont

    from tests.pagegen import FONT_FAMILIES

    page = render_page(PageSpec(layout="blank", dpi=300, degradation=1, seed=7))
    stamp = Image.new("RGBA", (900, 420), (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    violet = (95, 45, 150, 230)
    draw.rectangle((5, 5, 895, 415), outline=violet, width=8)
    bold, plain = (ImageFont.truetype(str(FONT_FAMILIES["heros"][i]), size) for i, size in ((1, 52), (0, 44)))
    for y, text, font in ((30, "UBND XÃ AN BÌNH", bold), (110, "CÔNG VĂN ĐẾN", bold), (200, "Số: 1254", plain),
                          (270, "Ngày: 12/3/2024", plain), (340, "Chuyển: Phòng Tư pháp", plain)):
        draw.text((40, y), text, font=font, fill=violet)
    scan = page.image.copy()
    tilted = stamp.rotate(7, expand=True, resample=Image.Resampling.BICUBIC)
    scan.paste(tilted, (1300, 500), tilted)
    result = process_page(scan, page.dpi)
    assert result["flags"] == ["blank"] and result["placement"] is None and result["skew_deg"] == 0


@pytest.mark.parametrize("turn", [0, 180])
def test_an_upright_page_is_read_once_and_one_turned_over_still_comes_out_upright(turn):
    """The page's own reading shows it is upright: no separate reading for its orientation. A
    page turned over reads as no text does; the orientation test then turns it and it is read again."""
    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=-1.2, orientation=turn, degradation=1, seed=31))
    engine = CountingEngine()
    result = process_page(page.image, page.dpi, engine)
    assert result["orientation"] == turn
    assert words_found(page.text, result["text"]) >= 0.95
    if turn == 0:
        assert engine.modes == [3]  # the whole page, once
    else:
        assert engine.modes.count(3) == 2 and len(engine.modes) > 2  # read, turned over by the band test, read again


@pytest.mark.parametrize("turn", [90, 270, 180, 0])
def test_with_two_recognisers_the_orientation_test_is_read_by_the_faster_one(turn, monkeypatch):
    """Voted on by tesseract and TrueOCR, a page on its side or upside down comes out upright, and
    the densest band's readings that decide which way up a page on its side is are TrueOCR's (a
    fifth of tesseract's time): tesseract reads only the page itself, once on its side. Turned
    over, its first reading of the page is stopped as soon as TrueOCR's, which ends first, shows
    the text upside down, and the page is read the other way up at once, with no band test; an
    upright page's reading is never stopped."""
    from ocr import orientation
    from ocr.trueocr_engine import TrueOcrEngine
    from ocr.vote import VotingEngine

    band_tests = []
    measure = orientation.measure
    monkeypatch.setattr(orientation, "measure", lambda *a, **kw: band_tests.append(1) or measure(*a, **kw))
    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=2.1, orientation=turn, degradation=1, seed=37))
    tesseract = CountingEngine()
    result = process_page(page.image, page.dpi, VotingEngine(tesseract, TrueOcrEngine("vie")))
    assert result["orientation"] == turn
    assert words_found(page.text, result["text"]) >= 0.95
    assert tesseract.modes == ([3, 3] if turn == 180 else [3])
    assert tesseract.stopped == (1 if turn == 180 else 0)
    assert len(band_tests) == (1 if turn in (90, 270) else 0)


@pytest.fixture
def misled_axis(monkeypatch):
    """The line axis's first guess, and only it, turned a quarter: whatever might mislead it."""
    from ocr import orientation

    measured = orientation.text_lines

    def misled(mask, dpi, likely=None):
        if likely is None:
            likely = 90 - measured(mask, dpi).likely
        return measured(mask, dpi, likely=likely)

    monkeypatch.setattr(orientation, "text_lines", misled)


@pytest.mark.parametrize("turn", [0, 90])
def test_a_page_straightened_about_the_wrong_axis_is_read_about_the_other(turn, misled_axis):
    """Whatever misleads the line axis (it was a tall column of short lines until a3ee333), the
    page's own reading shows it: tesseract reads the lines turned on their side as vertical text,
    at a confidence as high as upright, but every word comes out taller than wide. The page is then
    read about the other axis and comes out upright, its words across the page."""
    page = render_page(PageSpec(layout="text", dpi=200, color="rgb", skew_deg=1.5, orientation=turn,
                                degradation=1, seed=41))
    engine = CountingEngine()
    result = process_page(page.image, page.dpi, engine)
    assert result["orientation"] == turn
    assert words_found(page.text, result["text"]) >= 0.95
    long = [w for w in result["words"] if sum(ch.isalpha() for ch in w["text"]) >= 3]
    assert sum(w["x1"] - w["x0"] > w["y1"] - w["y0"] for w in long) >= 0.95 * len(long)
    assert engine.modes.count(3) == 2  # read on its side, then about the other axis


def test_out_of_time_for_the_other_axis_a_page_keeps_its_first_reading(misled_axis, monkeypatch):
    """When the page's time runs out as it is read about the other axis, the page keeps its first
    reading (on its side, its words read down the page or flagged) rather than be lost."""
    from ocr import orientation
    from ocr.engine import PageTimeUp

    misled = orientation.text_lines

    def out_of_time(mask, dpi, likely=None):  # the other axis is asked for once the page has been read
        if likely is not None:
            raise PageTimeUp()
        return misled(mask, dpi)

    monkeypatch.setattr(orientation, "text_lines", out_of_time)
    page = render_page(PageSpec(layout="text", dpi=200, color="rgb", skew_deg=1.5, orientation=90,
                                degradation=1, seed=41))
    result = process_page(page.image, page.dpi)
    assert result["orientation"] in (0, 180)  # read as the misled axis had it, on its side
    assert len(result["words"]) > 100
    assert orientation.page_reads_down(result["words"]) or "low_confidence" in result["flags"]


def test_a_dense_list_comes_out_upright_and_read_cell_by_cell():
    """A list of citizens on its side (150-dpi grey, 8 pt, six columns of short entries) came out
    read on its side before: its columns took the line axis."""
    page = render_page(PageSpec(layout="list", dpi=150, color="gray", degradation=1, orientation=90, skew_deg=-2.0,
                                seed=0))
    result = process_page(page.image, page.dpi)
    assert result["orientation"] == 90 and result["flags"] == []
    assert words_found(page.text, result["text"]) >= 0.9


def test_cells_are_stacked_in_strips_tesseract_takes():
    """Tesseract refuses an image over 32,767 pixels a side, and fails the whole page: a list read
    on its side stacked its 300 cells into one strip 65,000 pixels tall. Cells now go in strips
    that stay under the limit once enlarged for tesseract, every cell once, in order."""
    from ocr.page import _side_by_side

    lengths = [random.Random(k).randint(20, 400) for k in range(500)]
    for gap, scale in ((60, 1.0), (30, 2.0), (40, 1.5)):
        runs = _side_by_side(lengths, gap, scale)
        assert [k for run in runs for k in run] == list(range(len(lengths)))
        assert all((sum(lengths[k] + gap for k in run) + gap) * scale <= 32_767 for run in runs)
        assert len(runs) > 1
    assert _side_by_side([100] * 10, 60, 1.0) == [list(range(10))]


def test_a_table_read_in_many_strips_reads_as_in_one(monkeypatch):
    """Cut into many strips (the limit lowered: a real page needs ~300 cells of text for two), a
    list's cells come out as from one strip: the same words, in the same cells and order."""
    from ocr import page as page_stage

    page = render_page(PageSpec(layout="list", dpi=150, color="gray", degradation=1, skew_deg=0.0, seed=2))
    whole = process_page(page.image, page.dpi)
    monkeypatch.setattr(page_stage, "STRIP_MAX_SIDE", 1500)
    engine = CountingEngine()
    cut = process_page(page.image, page.dpi, engine)
    assert engine.modes.count(6) > 5 and engine.modes.count(7) > 5  # cells in strips, short cells in lines
    assert cut["text"] == whole["text"] and words_found(page.text, cut["text"]) >= 0.9
    centres = lambda result: np.array([(w["x0"] + w["x1"], w["y0"] + w["y1"]) for w in result["words"]]) / 2
    # tesseract's boxes move a pixel or two with the strip around them, never to another cell
    assert np.abs(centres(cut) - centres(whole)).max() <= 3


def _child_names() -> list[str]:
    names = []
    for child in psutil.Process().children():
        try:
            names.append(child.name())
        except psutil.NoSuchProcess:  # ended meanwhile
            continue
    return names


@pytest.mark.parametrize("recognisers", ["tesseract", "vote"])
def test_a_stopped_reading_ends_early_and_leaves_no_tesseract_behind(recognisers):
    """Stopping a reading (tesseract alone, or tesseract and TrueOCR voting) ends it within a
    fraction of the reading's time, and no tesseract process is left running. The vote is
    stopped once TrueOCR, which ends first, has read: tesseract, still reading, must see the
    stop too."""
    import threading
    import time

    from ocr.engine import ReadingStopped
    from ocr.recognise import TesseractEngine
    from ocr.trueocr_engine import TrueOcrEngine
    from ocr.vote import VotingEngine

    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=0.0, orientation=0, degradation=1, seed=41))
    gray = np.asarray(page.image.convert("L"))
    engine = TesseractEngine("vie") if recognisers == "tesseract" else VotingEngine(TesseractEngine("vie"),
                                                                                     TrueOcrEngine("vie"))
    started = time.monotonic()
    whole = engine.read(gray)
    reading = time.monotonic() - started
    # the vote's stop must come once TrueOCR has read and tesseract still reads: timed from the
    # whole reading, which a loaded machine makes longer than the stopped one, then sooner if the
    # reading ended first
    for share in ((0.1 / reading,) if recognisers == "tesseract" else (0.6, 0.4, 0.25)):
        stop = threading.Event()
        after = share * reading
        threading.Timer(after, stop.set).start()
        started = time.monotonic()
        try:
            engine.read(gray, stop=stop)
        except ReadingStopped:
            break
    else:
        pytest.fail(f"the reading was never stopped (whole reading {reading:.1f} s)")
    assert time.monotonic() - started < after + max(0.5, reading / 4), reading
    assert "tesseract" not in _child_names()
    assert len(whole) > 100  # the same reading, not stopped, ends with the page's words


def test_grey_percentiles_from_histograms_are_numpys():
    """The page stage's grey-level percentiles (paper level, blur contrast) come from histograms;
    they must be numpy's own figures, or the flags and the border found would drift."""
    from ocr.cleanup import percentile_u8

    rng = np.random.default_rng(7)
    for shape in ((1, 1), (3, 5), (480, 640)):
        gray = rng.integers(0, 256, shape, dtype=np.uint8)
        mask = (rng.random(shape) < 0.3).astype(np.uint8)
        mask.flat[0] = 1
        for q in (0, 5, 50, 90, 99, 100):
            assert percentile_u8(gray, q) == pytest.approx(float(np.percentile(gray, q)), abs=1e-9)
            assert percentile_u8(gray, q, mask) == pytest.approx(float(np.percentile(gray[mask > 0], q)), abs=1e-9)
