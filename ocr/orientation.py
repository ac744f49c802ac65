"""Orientation and skew of a scan, combining independent signals.

1. The projection-profile skew search (ocr.geometry) gives the skew angle and the axis of the
   text lines (horizontal -> 0 or 180, vertical -> 90 or 270), judged on text with ruling lines
   removed, so tables cannot mislead it.
2. Between the two remaining candidates, the engine's fastest recogniser (``OcrEngine.fastest``:
   TrueOCR when the page is voted on) reads the densest band of text both ways up; upright
   Vietnamese reads with far higher confidence than upside-down glyphs. The first way up (the
   one not turned over, what nearly every scan is) is read first, and when that reading alone
   is plainly upright text, the other is not read at all.
3. When neither reading is decisive (little text), tesseract's OSD votes.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

import cv2
import numpy as np
from PIL import Image

from ocr import cleanup, geometry
from ocr.engine import OcrEngine

PROBE_DPI = 300
PROBE_HEIGHT_MM = 60
# the winning reading must beat the other by this share of its score, else OSD is asked
DECISIVE_MARGIN = 0.25
T = TypeVar("T")


def reading_figures(words: list[dict], min_words: int = 1) -> tuple[float, float] | None:
    """A reading's mean confidence and the share of its words that are confident words (80 or
    more) of two letters or more; None for a reading of fewer than ``min_words`` words."""
    if len(words) < max(1, min_words):
        return None
    confident = sum(1 for w in words if w["conf"] >= 80 and _letters(w) >= 2)
    return sum(w["conf"] for w in words) / len(words), confident / len(words)


@dataclass(frozen=True)
class Upright:
    """A reading that is, on its own, plainly text the right way up: this many words at least,
    their mean confidence and the share of them that are confident words (80 or more) of two
    letters or more at least these."""
    min_words: int
    min_mean_conf: float
    min_confident_share: float

    def __call__(self, words: list[dict]) -> bool:
        figures = reading_figures(words, self.min_words)
        return figures is not None and figures[0] >= self.min_mean_conf and figures[1] >= self.min_confident_share


@dataclass(frozen=True)
class TurnedOver:
    """A reading that is, on its own, plainly text turned over: this many words at least, their
    mean confidence and their share of confident words both below these."""
    min_words: int
    max_mean_conf: float
    max_confident_share: float

    def __call__(self, words: list[dict]) -> bool:
        figures = reading_figures(words, self.min_words)
        return figures is not None and figures[0] < self.max_mean_conf and figures[1] < self.max_confident_share


# The band read by each recogniser. On the first 21 real scans (the tune part), tesseract read
# upright bands at a mean of 81-95 with a confident share of 0.72-0.98, the same bands upside
# down at 35-48 and 0.02-0.17 ("orientation in one read"); TrueOCR read them at 94.8-98.4 and
# 0.88-0.99 upright, 67.5-75.9 and 0.18-0.42 upside down ("sixth pass", bench/README.md).
BAND_UPRIGHT = {"tesseract": Upright(20, 70, 0.5), "trueocr": Upright(20, 85, 0.65)}
# The same for a whole page as the page stage reads it (both recognisers voted, ocr.page), which
# reads a page turned over at a higher mean confidence than tesseract reads a band: on the tune
# part of the real scans (21 JPEG scans), upright pages read at a mean of 93.4-95.4 with a
# confident share of 0.86-0.97, the same pages turned over at 64.1-70.6 and 0.18-0.35
# (bench/README.md, "orientation from the page's own reading").
PAGE_UPRIGHT = Upright(20, 82, 0.6)
# A whole page read by the fastest recogniser alone (``OcrEngine.fastest``), which ends first
# when two vote. TrueOCR read the tune part's upright pages at a mean of 98.1-98.8 with a
# confident share of 0.89-0.97, the same pages turned over at 70.6-76.3 and 0.29-0.41; 12 heavily
# degraded generated pages at 97.7-98.9 and 0.91-0.97 upright, 71.2-78.1 and 0.27-0.49 turned over
# (bench/README.md, "seventh pass"). The bounds sit between, a little nearer the turned-over
# figures: taking an upright page for one turned over costs a second reading of it, missing one
# only the wait for tesseract.
PAGE_TURNED_OVER = {"trueocr": TurnedOver(20, 85, 0.6)}
# Words of three letters or more read taller than wide: on the real scans, at most 1.3 % of a page's
# (tune part) and 2.3 % (held out) when it was straightened about the right axis, 98.4-100 % when
# about the wrong one (forced); on rendered pages at most 1.4 %, and 98.2-100 % on text and
# administrative pages about the wrong axis (bench/README.md, "thirteenth pass"): half is far from
# both. A table straightened about the wrong axis reads as garbage rather than down the page (0-13 %
# tall), flagged by its low confidence instead. Five such words at least: fewer say little.
READ_DOWN_SHARE = 0.5
READ_DOWN_MIN_WORDS = 5


@dataclass(frozen=True)
class PageGeometry:
    orientation: int   # counter-clockwise quarter turn of the content in the scan
    skew_deg: float    # counter-clockwise angle of the lines once the quarter turn is undone
    evidence: str      # which signal decided the orientation (for the benchmark)


def ink_for_geometry(image: Image.Image, dpi: float) -> np.ndarray:
    """Black-ink marks of the scan (seals and blue ink left out, scanner border too)."""
    return cleanup.ink_gray_mask(image, dpi)


@dataclass(frozen=True)
class TextLines:
    skew_deg: float  # as PageGeometry's
    likely: int      # the quarter turn that lays the lines flat without turning the page over
                     # (0 or 90): what nearly every scan needs; the other candidate is likely + 180


def text_lines(mask: np.ndarray, dpi: float, likely: int | None = None) -> TextLines:
    """The skew and axis of the text lines (``mask``: the page's ``ink_for_geometry``); given
    ``likely`` (0 or 90), the skew of the lines taken to run that way."""
    skew = geometry.estimate_skew(mask, dpi, vertical=None if likely is None else likely % 180 == 90)
    return TextLines(skew.angle_deg, 90 if skew.vertical else 0)


def measure(image: Image.Image, dpi: float, engine: OcrEngine, mask: np.ndarray | None = None,
            lines: TextLines | None = None) -> PageGeometry:
    """``mask``: the page's ``ink_for_geometry``, ``lines`` its ``text_lines``, when the caller
    has them already."""
    mask = ink_for_geometry(image, dpi) if mask is None else mask
    lines = text_lines(mask, dpi) if lines is None else lines
    first, second = lines.likely, lines.likely + 180
    probe = _probe_band(mask, dpi, first + lines.skew_deg)
    if probe is None:
        return PageGeometry(first, lines.skew_deg, "no text")
    reader = engine.fastest()
    words_first = reader.read(probe, psm=6, dpi=PROBE_DPI)
    if reads_upright(words_first, reader.name):
        return PageGeometry(first, lines.skew_deg, "reading")
    words_second = reader.read(np.ascontiguousarray(probe[::-1, ::-1]), psm=6, dpi=PROBE_DPI)
    if reads_upright(words_second, reader.name):
        return PageGeometry(second, lines.skew_deg, "reading")
    score_first, score_second = _score(words_first), _score(words_second)
    best, other = max(score_first, score_second), min(score_first, score_second)
    chosen = first if score_first >= score_second else second
    if best > 0 and (best - other) >= DECISIVE_MARGIN * best:
        return PageGeometry(chosen, lines.skew_deg, "reading")
    osd = _osd_rotation(probe, engine)
    if osd is not None and (osd + first) % 360 in (first, second):
        return PageGeometry((osd + first) % 360, lines.skew_deg, "osd")
    return PageGeometry(chosen, lines.skew_deg, "reading-weak")


def measure_while(image: Image.Image, dpi: float, engine: OcrEngine, mask: np.ndarray,
                  straighten: Callable[[int, float], T], lines: TextLines | None = None) -> tuple[PageGeometry, T]:
    """``measure``, and ``straighten(orientation, skew_deg)`` for what it found, side by side:
    the page is straightened the likely way up while tesseract reads whether that is right (a
    process of its own, so both cores work on one page), and again only when it is not (a page
    turned over). ``lines``: the page's ``text_lines``, when the caller has them already."""
    lines = text_lines(mask, dpi) if lines is None else lines
    with ThreadPoolExecutor(1, thread_name_prefix="orientation") as reader:
        deciding = reader.submit(measure, image, dpi, engine, mask, lines)
        straightened = straighten(lines.likely, lines.skew_deg)
        found = deciding.result()
    if found.orientation != lines.likely:
        straightened = straighten(found.orientation, found.skew_deg)
    return found, straightened


def _probe_band(mask: np.ndarray, dpi: float, turn_ccw_deg: float) -> np.ndarray | None:
    """The band of the straightened page (turned by the first candidate) with the most text,
    as a white page with black ink at PROBE_DPI, ruling lines removed."""
    factor = PROBE_DPI / dpi
    ink = mask.astype(np.uint8) * 255
    if abs(factor - 1) > 0.05:
        ink = cv2.resize(ink, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    straight = _turned(255 - ink, turn_ccw_deg, 255) < 128
    text = geometry.remove_ruling_lines(straight, int(PROBE_DPI * 0.45))
    rows = text.sum(axis=1).astype(np.float64)
    if rows.sum() < (PROBE_DPI / 10) ** 2:
        return None
    band = int(PROBE_HEIGHT_MM / 25.4 * PROBE_DPI)
    if band >= len(rows):
        top = 0
    else:
        window = np.convolve(rows, np.ones(band), mode="valid")
        top = int(np.argmax(window))
    cols = np.nonzero(text[top:top + band].any(axis=0))[0]
    if len(cols) == 0:
        return None
    pad = PROBE_DPI // 10
    x0, x1 = max(0, cols[0] - pad), min(text.shape[1], cols[-1] + pad)
    return np.where(text[top:top + band, x0:x1], 0, 255).astype(np.uint8)


def _turned(gray: np.ndarray, total_ccw_deg: float, fill: int) -> np.ndarray:
    """``geometry.straighten`` (canvas grown) for a grey array, by OpenCV with bilinear
    interpolation: ~10x faster than Pillow's bicubic on a whole page, and the probe only
    needs the shapes of the ink."""
    quarter = round(total_ccw_deg / 90) * 90
    residual = total_ccw_deg - quarter
    turned = np.ascontiguousarray(np.rot90(gray, k=(-quarter // 90) % 4))  # counter-clockwise, as PIL's
    if abs(residual) < 1e-9:
        return turned
    h, w = turned.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -residual, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    grown = (int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin)))
    matrix[0, 2] += grown[0] / 2 - w / 2
    matrix[1, 2] += grown[1] / 2 - h / 2
    return cv2.warpAffine(turned, matrix, grown, flags=cv2.INTER_LINEAR, borderValue=fill)


def _score(words: list[dict]) -> float:
    return float(sum(w["conf"] for w in words if _letters(w) >= 2 and w["conf"] > 30))


def reads_upright(words: list[dict], reader: str = "tesseract") -> bool:
    """Whether a band's reading by ``reader`` (an engine's name) is, on its own, plainly text the right way up."""
    return BAND_UPRIGHT.get(reader, BAND_UPRIGHT["tesseract"])(words)


def page_reads_upright(words: list[dict]) -> bool:
    """Whether the page stage's reading of a whole page is, on its own, plainly text the right way up."""
    return PAGE_UPRIGHT(words)


def page_reads_turned_over(words: list[dict], reader: str) -> bool:
    """Whether ``reader``'s (an engine's name) reading of a whole page alone is plainly text
    turned over; False for a reader without measured bounds."""
    turned_over = PAGE_TURNED_OVER.get(reader)
    return turned_over is not None and turned_over(words)


def page_reads_down(words: list[dict]) -> bool:
    """Whether a reading of a straightened page runs down it: more than READ_DOWN_SHARE of its
    words of three letters or more (READ_DOWN_MIN_WORDS at least) taller than they are wide.
    Tesseract reads lines turned on their side as vertical text, at a confidence as high as
    upright text, so only the words' shapes show that the page was straightened about the wrong axis."""
    long, tall = _long_and_tall(words)
    return long >= READ_DOWN_MIN_WORDS and tall > READ_DOWN_SHARE * long


def page_reads_across(words: list[dict]) -> bool:
    """Whether a reading of a straightened page runs across it: READ_DOWN_MIN_WORDS words of three
    letters or more at least, not most of them taller than wide (``page_reads_down``)."""
    long, tall = _long_and_tall(words)
    return long >= READ_DOWN_MIN_WORDS and tall <= READ_DOWN_SHARE * long


def _long_and_tall(words: list[dict]) -> tuple[int, int]:
    """How many words have three letters or more, and how many of those are taller than wide."""
    long = [w for w in words if _letters(w) >= 3]
    return len(long), sum(1 for w in long if w["y1"] - w["y0"] > w["x1"] - w["x0"])


def _letters(word: dict) -> int:
    return sum(ch.isalpha() for ch in word["text"])


def _osd_rotation(gray: np.ndarray, engine: OcrEngine) -> int | None:
    """The engine's own orientation detection (tesseract OSD) on the band, padded white."""
    padded = cv2.copyMakeBorder(gray, 50, 50, 50, 50, cv2.BORDER_CONSTANT, value=255)
    return engine.orientation(padded)
