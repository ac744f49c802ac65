"""Page geometry: text-line skew, quarter-turn axis, and the straightening rotation.

The skew finder is a coarse-to-fine projection-profile search on the ink pixels: for a
candidate angle every ink pixel is projected on the normal of the text lines, and the
sharper the histogram of those projections (sum of squared bin counts), the better the
lines are aligned.  Projecting pixel coordinates instead of rotating images keeps each
candidate to one ``np.bincount``.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

COARSE_RANGE_DEG = 20.0
COARSE_STEP_DEG = 0.5
COARSE_DPI = 75
FINE_DPI = 200
MAX_POINTS = 400_000
# a skew under this is left as scanned, as Leptonica's pixDeskew leaves it (OCRmyPDF 17 turns a
# page by any angle tesseract reports): resampling the whole page would soften every stroke of the
# record to move a line's end by at most ~4 px across an A4 page at 300 dpi
MIN_DESKEW_DEG = 0.1
# structure in a profile finer than this is taken for text lines, broader for blocks: two lines of
# 13-pt text, the width of a list's number column (lines spaced wider, as double-spaced large type,
# count for less)
LINE_WINDOW_IN = 0.4


@dataclass(frozen=True)
class SkewEstimate:
    angle_deg: float      # counter-clockwise angle of the text lines (PIL rotate convention)
    vertical: bool        # True when the lines run top-bottom (page turned by 90 or 270)


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Dark marks on paper, robust to uneven lighting: compare with a local background."""
    background = cv2.medianBlur(cv2.resize(gray, None, fx=0.125, fy=0.125, interpolation=cv2.INTER_AREA), 5)
    background = cv2.resize(background, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    normalised = cv2.divide(gray, np.maximum(background, 1), scale=255)
    _, mask = cv2.threshold(normalised, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    # Otsu on a nearly empty page picks noise; ink must also be clearly darker than paper
    mask[normalised > 200] = 0
    return mask > 0


def _points(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs - mask.shape[1] / 2.0, ys - mask.shape[0] / 2.0], axis=1).astype(np.float32)
    if len(pts) > MAX_POINTS:
        pts = pts[np.random.default_rng(seed).choice(len(pts), MAX_POINTS, replace=False)]
    return pts


def _profile_scores(pts: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Sharpness of the projection profile of the points for each candidate line angle."""
    if len(pts) == 0:
        return np.zeros(len(angles_deg))
    scores = np.empty(len(angles_deg))
    radius = float(np.abs(pts).max()) * 1.5 + 2
    for i, a in enumerate(np.radians(angles_deg)):
        # a line turned counter-clockwise by a (y axis down) keeps y*cos(a) + x*sin(a) constant
        proj = pts[:, 1] * np.cos(a) + pts[:, 0] * np.sin(a)
        counts = np.bincount((proj + radius).astype(np.int64), minlength=int(2 * radius) + 1).astype(np.float64)
        scores[i] = float(np.dot(counts, counts))
    return scores


def _refine(pts: np.ndarray, centre: float, half_width: float, step: float) -> tuple[float, float]:
    angles = np.arange(centre - half_width, centre + half_width + step / 2, step)
    scores = _profile_scores(pts, angles)
    k = int(np.argmax(scores))
    best = float(angles[k])
    if 0 < k < len(angles) - 1:  # parabola through the peak and its neighbours
        s0, s1, s2 = scores[k - 1], scores[k], scores[k + 1]
        denom = s0 - 2 * s1 + s2
        if denom < 0:
            best += step * 0.5 * (s0 - s2) / denom
    return best, float(scores[k])


def _resize_mask(mask: np.ndarray, factor: float) -> np.ndarray:
    if abs(factor - 1) < 1e-3:
        return mask
    small = cv2.resize(mask.astype(np.uint8) * 255, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small > 64


def ruling_lines(mask: np.ndarray, min_length: int, bridge: int = 1) -> np.ndarray:
    """Long straight horizontal and vertical strokes of a mask (table rules, underlines).

    ``bridge`` closes gaps of up to that many pixels along a stroke first, so a faint rule broken
    into dashes by thresholding still counts as one."""
    m = mask.astype(np.uint8)
    found = np.zeros_like(m)
    for along in ((min_length, 1), (1, min_length)):
        closing = (bridge, 1) if along[1] == 1 else (1, bridge)
        joined = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, closing)) if bridge > 1 else m
        found |= cv2.morphologyEx(joined, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
    return found.astype(bool) & mask


def remove_ruling_lines(mask: np.ndarray, min_length: int) -> np.ndarray:
    """The mask without long straight horizontal and vertical strokes."""
    return mask & ~ruling_lines(mask, min_length)


def rotate_mask(mask: np.ndarray, angle_deg: float) -> np.ndarray:
    """Counter-clockwise rotation (PIL convention) about the centre, same canvas."""
    h, w = mask.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    return cv2.warpAffine(mask.astype(np.uint8) * 255, matrix, (w, h), flags=cv2.INTER_NEAREST) > 0


def estimate_skew(mask: np.ndarray, dpi: float, vertical: bool | None = None) -> SkewEstimate:
    """Angle of the text lines in a binary ink mask, and whether they run vertically (or, given
    ``vertical``, the angle of the lines taken to run that way)."""
    coarse = _resize_mask(mask, min(1.0, COARSE_DPI / dpi))
    pts = _points(coarse)
    if len(pts) < 50:
        return SkewEstimate(0.0, bool(vertical))
    angles = np.arange(-COARSE_RANGE_DEG, COARSE_RANGE_DEG + 1e-6, COARSE_STEP_DEG)
    horizontal_scores = _profile_scores(pts, angles)
    vertical_scores = _profile_scores(pts[:, ::-1] * np.array([-1, 1], np.float32), angles)
    angle_h = float(angles[int(np.argmax(horizontal_scores))])
    angle_v = float(angles[int(np.argmax(vertical_scores))])
    if vertical is None:
        vertical = _text_runs_vertically(coarse, angle_h, angle_v, dpi=COARSE_DPI if dpi > COARSE_DPI else dpi)
    coarse_angle = angle_v if vertical else angle_h

    fine_mask = _resize_mask(mask, min(1.0, FINE_DPI / dpi))
    pts = _points(fine_mask)
    if vertical:
        # turning the page by 90 degrees clockwise lays vertical lines down: (x, y) -> (-y, x)
        pts = pts[:, ::-1] * np.array([-1, 1], np.float32)
    angle, _ = _refine(pts, coarse_angle, 0.75, 0.1)
    angle, _ = _refine(pts, angle, 0.12, 0.02)
    return SkewEstimate(float(angle), vertical)


def _text_runs_vertically(coarse: np.ndarray, angle_h: float, angle_v: float, dpi: float) -> bool:
    """Decide the line axis on text alone: ruling lines of tables run both ways, text lines one way."""
    min_length = max(8, int(dpi * 0.8))
    straight = rotate_mask(coarse, -angle_h)
    text_only = remove_ruling_lines(straight, min_length)
    pts = _points(text_only)
    if len(pts) < 50:
        return False
    straight_v = rotate_mask(coarse, -angle_v)
    pts_v = _points(remove_ruling_lines(straight_v, min_length))
    window = max(3, round(LINE_WINDOW_IN * dpi))
    return _line_structure(pts_v[:, ::-1] * np.array([-1, 1], np.float32), window) > _line_structure(pts, window)


def _line_structure(pts: np.ndarray, window: int) -> float:
    """How much of the points' profile across rows (the energy of its bin counts) lies in structure
    finer than ``window`` rows, as a share of the whole: most for lines of text, little for a few
    broad blocks.

    Across its lines, a page's profile rises and falls with every line; along them, it is made of
    the blocks the text fills: its columns, a table's columns, a column of short lines. A sharper
    profile (``_profile_scores``) does not tell the two apart: it favoured the text block's shorter
    side (a tall column of short lines was turned on its side) and, relative to the ink spread
    evenly, the columns of a dense list of short entries (16 of 72 rendered lists turned)."""
    if len(pts) == 0:
        return 0.0
    counts = np.bincount((pts[:, 1] - pts[:, 1].min()).astype(np.int64)).astype(np.float64)
    counts = np.pad(counts, (0, max(0, window - len(counts))))  # one line of text: the empty rows past it
    fine = counts - np.convolve(counts, np.ones(window) / window, mode="same")
    return float(np.dot(fine, fine) / np.dot(counts, counts))


def deskew_angle(skew_deg: float) -> float:
    """The part of a measured skew that straightening undoes: none under MIN_DESKEW_DEG."""
    return skew_deg if abs(skew_deg) >= MIN_DESKEW_DEG else 0.0


def straighten(image: Image.Image, total_ccw_deg: float, fill, keep_size: bool = True,
               resample: Image.Resampling | None = None) -> Image.Image:
    """Rotate clockwise by ``total_ccw_deg``: the quarter turns exactly (width and height swap), the
    rest in one resampling about the centre, the corners it uncovers filled with ``fill``. With
    ``keep_size`` the canvas keeps the page's size, else it grows so that nothing is cut.
    ``resample``: by default nearest neighbour for a bitonal image, else bicubic."""
    quarter = round(total_ccw_deg / 90) * 90
    residual = total_ccw_deg - quarter
    turned = quarter_turn(image, quarter)
    if abs(residual) < 1e-9:
        return image.copy() if turned is image else turned
    if resample is None:
        resample = Image.Resampling.NEAREST if image.mode == "1" else Image.Resampling.BICUBIC
    return rotate(turned, -residual, resample, expand=not keep_size, fill=fill)


def quarter_turn(image: Image.Image, ccw_deg: int) -> Image.Image:
    """``image`` turned clockwise by ``ccw_deg`` (a multiple of 90) exactly; the image itself when
    that is no turn (no copy of a colour page: 26 MB, 0.04 CPU-s)."""
    pil_turn = -ccw_deg % 360  # PIL turns counter-clockwise
    return image if pil_turn == 0 else image.transpose(
        {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}[pil_turn])


def rotate(image: Image.Image, ccw_deg: float, resample: Image.Resampling, expand: bool, fill,
           parts: int = 2) -> Image.Image:
    """``image.rotate(ccw_deg, resample, expand, fillcolor=fill)`` made in ``parts`` horizontal
    strips at once: Pillow resamples without holding the interpreter, and the bicubic rotation of
    a 300-dpi colour page (0.4 s) is the longest step of a page before it is read. The affine map
    is Pillow's own (``Image.rotate``), moved down to each strip's first row; rounding then
    differs by one grey level in about one value in a million. Nearest-neighbour rotation (a
    bitonal page) is fast and Pillow's fixed-point stepping would not line up: made whole."""
    if resample == Image.Resampling.NEAREST or parts < 2:
        return image.rotate(ccw_deg, resample=resample, expand=expand, fillcolor=fill)
    image.load()  # a file opened lazily is decoded here once, not by each strip's thread at once
    w, h = image.size
    angle = -math.radians(ccw_deg % 360.0)
    matrix = [round(math.cos(angle), 15), round(math.sin(angle), 15), 0.0,
              round(-math.sin(angle), 15), round(math.cos(angle), 15), 0.0]

    def mapped(x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = matrix
        return a * x + b * y + c, d * x + e * y + f

    matrix[2], matrix[5] = mapped(-w / 2, -h / 2)
    matrix[2] += w / 2
    matrix[5] += h / 2
    if expand:
        xs, ys = zip(*(mapped(x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))))
        grown = (math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys)))
        matrix[2], matrix[5] = mapped(-(grown[0] - w) / 2.0, -(grown[1] - h) / 2.0)
        w, h = grown
    rows = [h * k // parts for k in range(parts + 1)]

    def strip(k: int) -> Image.Image:
        a, b, c, d, e, f = matrix
        return image.transform((w, rows[k + 1] - rows[k]), Image.Transform.AFFINE,
                               (a, b, c + b * rows[k], d, e, f + e * rows[k]), resample, fillcolor=fill)

    with ThreadPoolExecutor(parts, thread_name_prefix="rotate") as pool:
        strips = list(pool.map(strip, range(parts)))
    rotated = Image.new(image.mode, (w, h))
    for top, piece in zip(rows, strips):
        rotated.paste(piece, (0, top))
    return rotated
