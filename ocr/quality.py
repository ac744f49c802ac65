"""Quality flags an intake operator sees at once: blank, blurry, cut_off, low_confidence."""
from __future__ import annotations

import cv2
import numpy as np

from ocr.cleanup import percentile_u8

LOW_CONFIDENCE = 70.0
# blur (mm) beyond a perfectly focused scan at which a page is flagged; see blur_mm
BLURRY_MM = 0.25
# a perfectly sharp edge still spreads over about this many pixels (sampling, Sobel support)
SHARP_EDGE_PX = 1.85
MIN_MARKS_FOR_CONTENT = 8
# a page with fewer black marks than this is counted again without those touching coloured ink
NEAR_BLANK_MARKS = 100
# a page is written in coloured ink when at least this share of its ink other than red is
# coloured, in at least so many marks of letter size (see written_in_colour; bench/README)
COLOUR_TEXT_SHARE = 0.5
COLOUR_TEXT_MIN_MARKS = 40
# ... spread over at least this share of the page's width, along its lines or down them: a stamp
# ("CÔNG VĂN ĐẾN", "SAO Y BẢN CHÍNH", 5-8 cm wide) has letters enough but is no page of text
COLOUR_TEXT_SPREAD = 0.5
FEW_BLACK_MARKS = 1000  # a page with this many black marks or more is not looked at for coloured text (its cost)
CUT_OFF_MARGIN_MM = 1.5


def mark_stats(text_mask: np.ndarray, dpi: float) -> np.ndarray:
    """Stats rows (x, y, w, h, area) of connected ink marks of letter size (0.4 to 12 mm high)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(text_mask.astype(np.uint8), connectivity=8)
    stats = stats[1:]
    mm = dpi / 25.4
    heights = stats[:, 3]
    keep = (heights >= 0.4 * mm) & (heights <= 12 * mm) & (stats[:, 2] <= 40 * mm)
    return stats[keep]


def is_blank(marks: np.ndarray) -> bool:
    return len(marks) < MIN_MARKS_FOR_CONTENT


def written_in_colour(coloured_share: float, unred_marks: np.ndarray, page_shape: tuple[int, int]) -> bool:
    """A page whose text is in coloured ink, blue or violet, typed or written by hand: at least half
    of its ink other than red is coloured (``coloured_share``, of the pixels), in many marks of
    letter size (``unred_marks``, ``mark_stats`` rows) spread over the page (``page_shape``: its
    height and width in pixels). A blue signature on a page of black text is a small share of its
    ink, a signature alone a handful of marks, and a stamp alone a small patch of the page. Thin
    strokes lose their colour to the scanner's JPEG, so small type in blue counts partly as black:
    half is the line."""
    if coloured_share < COLOUR_TEXT_SHARE or len(unred_marks) < COLOUR_TEXT_MIN_MARKS:
        return False
    centres = unred_marks[:, :2] + unred_marks[:, 2:4] / 2
    low, high = np.percentile(centres, [5, 95], axis=0)
    return float((high - low).max()) >= COLOUR_TEXT_SPREAD * min(page_shape)


def blur_mm(gray: np.ndarray, text_mask: np.ndarray, dpi: float) -> float:
    """Blur of the ink edges in millimetres on paper, 0 for a perfectly focused scan.

    The width of an edge is the ink-to-paper contrast divided by the steepest gradients, so it
    does not depend on how dark the ink is.  A perfectly sharp edge still spans about
    SHARP_EDGE_PX pixels; blur adds to that in quadrature, and dividing by the resolution makes
    the figure the same for a 200- and a 300-dpi scan of the same paper.
    """
    ink = text_mask.astype(np.uint8)
    if cv2.countNonZero(ink) < 100:
        return 0.0
    near_ink = cv2.dilate(ink, np.ones((5, 5), np.uint8))
    near = near_ink.astype(bool)
    # the gradients in whole numbers (a 3x3 Sobel of 8-bit grey fits 16 bits), made into
    # magnitudes only near the ink: three float planes of a 300-dpi page were ~100 MB at once
    gx = cv2.Sobel(gray, cv2.CV_16S, 1, 0, ksize=3)[near].astype(np.float32) / 8
    gy = cv2.Sobel(gray, cv2.CV_16S, 0, 1, ksize=3)[near].astype(np.float32) / 8
    steep = float(np.percentile(cv2.magnitude(gx, gy), 99))
    contrast = percentile_u8(gray, 50, 1 - near_ink) - percentile_u8(gray, 5, ink)
    if steep <= 0 or contrast <= 0:
        return 0.0
    spread_px = contrast / steep
    return float(np.sqrt(max(0.0, spread_px ** 2 - SHARP_EDGE_PX ** 2))) / dpi * 25.4


def looks_cut_off(marks: np.ndarray, shape: tuple[int, int], dpi: float) -> bool:
    """Ink of letter size running into an edge of the sheet: the scan probably missed part of it."""
    if len(marks) == 0:
        return False
    h, w = shape
    margin = CUT_OFF_MARGIN_MM * dpi / 25.4
    x, y, bw, bh = marks[:, 0], marks[:, 1], marks[:, 2], marks[:, 3]
    touching = (x <= margin) | (y <= margin) | (x + bw >= w - margin) | (y + bh >= h - margin)
    return int(touching.sum()) >= 3


def page_flags_before_ocr(gray: np.ndarray, text_mask: np.ndarray, dpi: float) -> list[str]:
    """Flags read from the image alone; a blank page gets no other flag."""
    marks = mark_stats(text_mask, dpi)
    if is_blank(marks):
        return ["blank"]
    flags = []
    if blur_mm(gray, text_mask, dpi) > BLURRY_MM:
        flags.append("blurry")
    if looks_cut_off(marks, gray.shape, dpi):
        flags.append("cut_off")
    return flags


def is_low_confidence(confidence: float, word_count: int) -> bool:
    return word_count == 0 or confidence < LOW_CONFIDENCE
