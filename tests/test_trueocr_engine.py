"""TrueOCR behind the OcrEngine contract (ocr/trueocr_engine.py), read through sohoa's page stage."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr import process_page
from ocr.page import archive_image
from ocr.trueocr_engine import TrueOcrEngine
from tests.pagegen import PageSpec, installed_families, render_page


@pytest.fixture(scope="module")
def engine():
    return TrueOcrEngine("vie")


@pytest.fixture(scope="module")
def text_page(engine):
    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=2.5, orientation=180, degradation=2, seed=21))
    return page, process_page(page.image, page.dpi, engine)


def test_identity_and_languages(engine):
    import trueocr
    version = engine.version()
    assert version.startswith(f"trueocr {trueocr.__version__}|models ") and len(version.split("models ")[1]) == 16
    assert version == TrueOcrEngine("vie").version()
    assert engine.has_language("vie") and not engine.has_language("eng")
    assert engine.name == "trueocr" and engine.lang == "vie"


def test_page_words_found_boxes_and_line_order(text_page):
    page, result = text_page
    assert result["orientation"] == 180
    truth, found = Counter(page.text.split()), Counter(result["text"].split())
    hits = sum(min(n, found[w]) for w, n in truth.items())
    assert hits / sum(truth.values()) >= 0.88
    width, height = result["image"].size
    gray = np.asarray(archive_image(result["image"], result["placement"]).convert("L"))
    lines = [w["line"] for w in result["words"]]
    assert lines[0] == 0 and all(b - a in (0, 1) for a, b in zip(lines, lines[1:]))  # reading order from 0
    for word in result["words"]:
        assert set(word) == {"text", "x0", "y0", "x1", "y1", "conf", "line"}
        assert 0 <= word["x0"] < word["x1"] <= width and 0 <= word["y0"] < word["y1"] <= height
        assert 0 <= word["conf"] <= 100 and word["text"] and " " not in word["text"]
    on_ink = [(gray[w["y0"]:w["y1"], w["x0"]:w["x1"]] < 128).mean() > 0.05 for w in result["words"]]
    assert sum(on_ink) >= 0.98 * len(on_ink)
    # the words of a line follow each other left to right without overlapping
    by_line: dict[int, list[dict]] = {}
    for word in result["words"]:
        by_line.setdefault(word["line"], []).append(word)
    for words in by_line.values():
        assert all(a["x1"] <= b["x0"] for a, b in zip(words, words[1:]))


def _line_image(text: str, scale_px: int = 48) -> np.ndarray:
    from tests.pagegen import FONT_FAMILIES
    font = ImageFont.truetype(str(FONT_FAMILIES[installed_families()[0]][0]), scale_px)
    image = Image.new("L", (60 + int(font.getlength(text)), 2 * scale_px), 255)
    ImageDraw.Draw(image).text((30, scale_px // 3), text, font=font, fill=0)
    return np.asarray(image)


def test_one_line_words_are_split_on_their_ink(engine):
    gray = _line_image("Ủy ban nhân dân tỉnh Quảng Ngãi")
    words = engine.read(gray, psm=7)
    assert [w["text"] for w in words] == ["Ủy", "ban", "nhân", "dân", "tỉnh", "Quảng", "Ngãi"]
    assert {w["line"] for w in words} == {0}
    ink_columns = np.flatnonzero((gray < 128).any(axis=0))
    assert words[0]["x0"] == ink_columns[0] and words[-1]["x1"] == ink_columns[-1] + 1
    for a, b in zip(words, words[1:]):
        assert a["x1"] < b["x0"] and not (gray[:, a["x1"]:b["x0"]] < 128).any()  # cut in the gap
    # boxes come back in the caller's pixels when it enlarged the image
    import cv2
    bigger = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    scaled = engine.read(bigger, psm=7, scale=2.0)
    assert [w["text"] for w in scaled] == [w["text"] for w in words]
    assert all(abs(s["x0"] - w["x0"]) <= 2 and abs(s["x1"] - w["x1"]) <= 2 for s, w in zip(scaled, words))


def test_blank_image_reads_nothing(engine):
    assert engine.read(np.full((200, 400), 255, np.uint8)) == []
    assert engine.read(np.full((200, 400), 255, np.uint8), psm=7) == []


def test_models_loaded_ahead_in_a_thread_are_loaded_once_and_shared_with_pages_forked_after():
    """``load`` in a thread while a read starts: one load in the process (not one per caller),
    and a page process forked afterwards reads without loading them again."""
    import multiprocessing
    import threading

    from ocr import trueocr_engine

    trueocr_engine._loaded.cache_clear()
    gray = np.full((120, 700), 255, np.uint8)
    ImageDraw.Draw(image := Image.fromarray(gray)).text((20, 30), "Xin chào", fill=0,
                                                       font=ImageFont.load_default(size=48))
    loading = threading.Thread(target=TrueOcrEngine("vie").load)
    loading.start()
    words = TrueOcrEngine("vie").read(np.asarray(image), psm=7)
    loading.join()
    assert words and trueocr_engine._loaded.cache_info().misses == 1

    def child(answer):
        TrueOcrEngine("vie").read(np.asarray(image), psm=7)
        answer.put(trueocr_engine._loaded.cache_info().misses)

    answer = multiprocessing.get_context("fork").Queue()
    forked = multiprocessing.get_context("fork").Process(target=child, args=(answer,))
    forked.start()
    assert answer.get(timeout=60) == 1  # the parent's load, nothing more
    forked.join(60)
    assert forked.exitcode == 0


def test_a_reading_the_caller_would_abandon_stops_after_the_widest_lines(engine, monkeypatch):
    """Turned over, a page shows it in its widest lines: the reading stops after those
    (FIRST_LOOK_LINES of the page's lines) instead of reading every line first, which is what
    tesseract, reading beside it, was kept waiting for. The right way up, the same words come out
    with the caller looking as without, and every line is read once."""
    from ocr import orientation, trueocr_engine
    from ocr.engine import ReadingAbandoned

    recognised = []
    read_lines = trueocr_engine.read_lines
    monkeypatch.setattr(trueocr_engine, "read_lines",
                        lambda models, gray, boxes: recognised.append(len(boxes)) or read_lines(models, gray, boxes))
    page = render_page(PageSpec(layout="text", dpi=300, skew_deg=0.0, orientation=0, degradation=1, seed=41))
    upright = np.asarray(page.image.convert("L"))
    shown = []

    def turned_over(words, reader):
        shown.append(words)
        return orientation.page_reads_turned_over(words, reader)

    with pytest.raises(ReadingAbandoned):
        engine.read(np.ascontiguousarray(upright[::-1, ::-1]), abandon_if=turned_over)
    assert recognised == [trueocr_engine.FIRST_LOOK_LINES] and len(shown) == 1
    assert len({w["line"] for w in shown[0]}) <= trueocr_engine.FIRST_LOOK_LINES <= len(shown[0]) / 5

    recognised.clear()
    plain = engine.read(upright)
    lines = recognised[0]
    assert lines > 2 * trueocr_engine.FIRST_LOOK_LINES
    recognised.clear()
    shown.clear()
    assert engine.read(upright, abandon_if=turned_over) == plain
    assert recognised == [trueocr_engine.FIRST_LOOK_LINES, lines - trueocr_engine.FIRST_LOOK_LINES]
    assert len(shown) == 1 and orientation.page_reads_upright(shown[0])
