"""Clean-up of the OCR copy of a page; the archive image is never touched here.

Everything returns new arrays: the OCR copy is a grey image in which paper is white and only
black-ish ink is left (seals, blue ink, scanner borders, lid shadows and ruling lines removed).
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ocr.geometry import ruling_lines

# a chromatic pixel: its strongest channel exceeds its weakest by this much
CHROMA_THRESHOLD = 60
# in the background-normalised grey image, anything lighter than this is paper
PAPER_LEVEL = 200


def paper_colour(image: Image.Image, outside: np.ndarray | None = None):
    """The fill colour of the sheet (median pixel), in the image's own mode. ``outside``: a mask
    of the image's pixels that are not the sheet (``dark_border_mask``), left out."""
    if image.mode == "1":
        return 1
    factor = 8 if min(image.size) > 64 else 1
    small = np.asarray(image.reduce(factor) if factor > 1 else image)
    pixels = small.reshape(-1, small.shape[-1]) if small.ndim == 3 else small.ravel()
    if outside is not None and outside.any():
        sheet = ~outside[::factor, ::factor][:small.shape[0], :small.shape[1]].ravel()
        if sheet.any():
            pixels = pixels[sheet]
    if small.ndim == 2:
        return int(np.median(pixels))
    return tuple(int(v) for v in np.median(pixels, axis=0)[:3])


def on_canvas(image: Image.Image, size: tuple[int, int], at: tuple[int, int], colour) -> Image.Image:
    """A canvas of ``size`` painted ``colour`` with ``image`` laid on it at ``at`` (its upper left
    corner, which may lie outside the canvas: what falls outside is cut)."""
    out = Image.new(image.mode, size, colour)
    out.paste(image, at)
    return out


def percentile_u8(gray: np.ndarray, q: float, mask: np.ndarray | None = None) -> float:
    """``np.percentile(gray, q)`` (of ``gray[mask > 0]`` with a mask; linear interpolation) of a
    grey page, from its histogram: neither a copy nor a partial sort of millions of pixels."""
    if gray.dtype != np.uint8:
        return float(np.percentile(gray if mask is None else gray[mask > 0], q))
    counts = np.cumsum(cv2.calcHist([gray], [0], mask, [256], [0, 256]).ravel())
    if not counts[-1]:
        return float("nan")
    rank = q / 100 * (int(counts[-1]) - 1)
    lo, hi = int(np.floor(rank)), int(np.ceil(rank))
    at_lo, at_hi = (int(np.searchsorted(counts, k, side="right")) for k in (lo, hi))
    return float(at_lo + (at_hi - at_lo) * (rank - lo))


def to_gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.uint8)


def ink_gray(image: Image.Image) -> np.ndarray:
    """Grey image where coloured marks (red seals, blue signatures) are pale, black ink stays dark.

    Reddish pixels are read through the red channel, bluish ones through their brightest channel;
    a black letter under a translucent red seal stays dark in red, while the seal is pale in red.
    """
    if image.mode != "RGB":
        return to_gray(image)
    rgb = np.asarray(image)
    r, g, b = cv2.split(rgb)
    hi = cv2.max(cv2.max(r, g), b)
    lo = cv2.min(cv2.min(r, g), b)
    chromatic = cv2.subtract(hi, lo) > CHROMA_THRESHOLD
    reddish = chromatic & (r >= g) & (r >= b)
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.copyto(out, hi, where=chromatic)
    np.copyto(out, r, where=reddish)
    return out


def colour_text_gray(image: Image.Image) -> np.ndarray:
    """Grey image of a page written in coloured ink (``quality.written_in_colour``): blue or
    violet ink as dark as its luminance, where ``ink_gray`` would make it pale as a signature;
    red seals still pale, read through the red channel."""
    rgb = np.asarray(image)
    r, g, b = cv2.split(rgb)
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.copyto(out, r, where=_chromatic(r, g, b) & (r >= g) & (r >= b))
    return out


def _chromatic(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels whose channels spread by more than ``CHROMA_THRESHOLD``: colour, not grey."""
    return cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)) > CHROMA_THRESHOLD


def normalise_background(gray: np.ndarray) -> np.ndarray:
    """Divide by a smooth estimate of the paper so uneven light and tint become white paper."""
    h, w = gray.shape
    factor = 1 / 16
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # a grey closing fills letters with the surrounding paper
    k = max(3, int(min(small.shape) * 0.03) | 1)
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    background = cv2.GaussianBlur(background, (0, 0), 2)
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(gray, np.maximum(background, 1), scale=255)


def dark_border_mask(gray: np.ndarray, dpi: float) -> np.ndarray:
    """Large dark regions that touch the image edge: scanner bed, lid shadow, rotation corners."""
    paper = percentile_u8(gray, 90)
    dark = (gray < 0.55 * paper).astype(np.uint8)
    if not (dark[0].any() or dark[-1].any() or dark[:, 0].any() or dark[:, -1].any()):
        return np.zeros(gray.shape, bool)  # nothing dark reaches an edge (most scans): nothing to label
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    h, w = gray.shape
    min_extent = 0.15 * dpi  # 4 mm along the edge
    mask = np.zeros_like(dark, dtype=bool)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    for label in edge_labels:
        if label == 0:
            continue
        bw, bh = stats[label, cv2.CC_STAT_WIDTH], stats[label, cv2.CC_STAT_HEIGHT]
        if max(bw, bh) >= min_extent and (bw >= 0.2 * w or bh >= 0.2 * h):
            mask |= labels == label
    return mask


def border_colour(image: Image.Image, dpi: float, border: np.ndarray | None = None):
    """The colour of a dark scanner bed around the sheet, in the image's mode, or None if the scan
    has no such border (less than 1 % of the image). ``border``: the image's ``dark_border_mask``
    when the caller has it already."""
    border = dark_border_mask(to_gray(image), dpi) if border is None else border
    sides_dark = sum(float(edge.mean()) > 0.5 for edge in (border[0], border[-1], border[:, 0], border[:, -1]))
    if border.mean() < 0.01 or sides_dark < 3:  # a lid shadow darkens one side, a bed surrounds the sheet
        return None
    if image.mode == "1":
        return 0
    pixels = np.asarray(image)[border]
    if pixels.ndim == 1:
        return int(np.median(pixels))
    return tuple(int(v) for v in np.median(pixels, axis=0)[:3])


def shadow_box(gray: np.ndarray, dpi: float) -> tuple[int, int, int, int] | None:
    """Bounding box without the rows and columns along the edges that are mostly dark border
    (a scanner lid's shadow), or None if there are none."""
    border = dark_border_mask(gray, dpi)
    if border.mean() < 0.002:
        return None
    h, w = gray.shape
    rows, cols = border.mean(axis=1) > 0.5, border.mean(axis=0) > 0.5
    y0 = int(np.argmin(rows)) if rows[0] else 0
    y1 = h - int(np.argmin(rows[::-1])) if rows[-1] else h
    x0 = int(np.argmin(cols)) if cols[0] else 0
    x1 = w - int(np.argmin(cols[::-1])) if cols[-1] else w
    if (x0, y0, x1, y1) == (0, 0, w, h) or (x1 - x0) < 0.5 * w or (y1 - y0) < 0.5 * h:
        return None
    return x0, y0, x1, y1


def paper_box(gray: np.ndarray, dpi: float) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the sheet on a straightened scan surrounded by a dark bed:
    the largest bright region, letters filled in; None if it is not clearly smaller than the scan."""
    factor = min(1.0, 50 / dpi)
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    level = 0.55 * percentile_u8(small, 90)
    bright = (small > level).astype(np.uint8)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if count < 2:
        return None
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[label, :4])
    shave = 1  # a low-resolution pixel of the sheet's soft edge
    x0, y0 = round((x + shave) / factor), round((y + shave) / factor)
    x1, y1 = round((x + w - shave) / factor), round((y + h - shave) / factor)
    x1, y1 = min(x1, gray.shape[1]), min(y1, gray.shape[0])
    if (x1 - x0) * (y1 - y0) > 0.98 * gray.size or (x1 - x0) < 0.5 * gray.shape[1] or (y1 - y0) < 0.5 * gray.shape[0]:
        return None
    return x0, y0, x1, y1


def ink_gray_mask(image: Image.Image, dpi: float, level: int = 160, border: np.ndarray | None = None,
                  gray: np.ndarray | None = None) -> np.ndarray:
    """Black-ink marks (rules included) of a page, without scanner borders (``border``: the
    image's ``dark_border_mask``, ``gray`` its ``ink_gray``, when the caller has them already)."""
    gray = normalise_background(ink_gray(image) if gray is None else gray)
    return (gray < level) & ~(dark_border_mask(to_gray(image), dpi) if border is None else border)


def black_ink_mask(image: Image.Image, dpi: float, ink: np.ndarray | None = None) -> np.ndarray:
    """Marks of black (neutral) ink only: ``ink_gray_mask`` without the dark parts of a red seal or
    a blue signature, nor their fringes. On a grey or bitonal scan colour cannot be told apart.
    ``ink``: the image's ``ink_gray_mask`` when the caller has it already."""
    ink = ink_gray_mask(image, dpi) if ink is None else ink
    if image.mode != "RGB":
        return ink
    chromatic = _chromatic(*cv2.split(np.asarray(image)))
    reach = 2 * max(1, round(dpi / 150)) + 1
    coloured = cv2.dilate(chromatic.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
    return ink & ~coloured


def marks_apart_from_colour(image: Image.Image, black: np.ndarray, marks: np.ndarray, dpi: float) -> np.ndarray:
    """Of ``marks`` (``quality.mark_stats`` rows of ``black``, the RGB scan's ``black_ink_mask``),
    those that neither touch coloured ink nor come within a pixel or two of it: where a thin blue
    signature crosses a seal, blur and the scanner's JPEG wash its colour out in places, and the
    dark grey pieces left are the signature's, not black text. Colour is judged against the paper
    (each channel divided by its own background): tinted paper, kraft or yellow, and the edges of
    black letters on it are no coloured ink. Each mark is looked at in its own box, with no label
    image of the whole page. On paper itself strongly coloured (saturated yellow: a channel with
    nothing to divide by) colour tells nothing apart, and ``marks`` are returned as they are."""
    paper = paper_colour(image)
    if max(paper) - min(paper) > CHROMA_THRESHOLD:
        return marks
    balanced = cv2.merge([normalise_background(channel) for channel in cv2.split(np.asarray(image))])
    colour_ink = _chromatic(*cv2.split(balanced)) & (cv2.cvtColor(balanced, cv2.COLOR_RGB2GRAY) < PAPER_LEVEL)
    reach = 2 * max(1, round(dpi / 100)) + 3
    near = cv2.dilate(colour_ink.astype(np.uint8), np.ones((reach, reach), np.uint8)).view(bool)
    apart = [not (near[y:y + h, x:x + w] & black[y:y + h, x:x + w]).any() for x, y, w, h, _ in marks]
    return marks[np.array(apart, dtype=bool)]


def unred_ink(image: Image.Image, dpi: float, gray: np.ndarray, border: np.ndarray,
              level: int = 160) -> tuple[np.ndarray, float]:
    """Marks of any ink but red in an RGB scan (black, blue, violet: ``gray`` is its
    ``colour_text_gray``), without a red seal's dark parts nor their fringes, nor scanner borders
    (``border``: its ``dark_border_mask``); and the share of their pixels that are coloured."""
    r, g, b = cv2.split(np.asarray(image))
    chromatic = _chromatic(r, g, b)
    reddish = chromatic & (r >= g) & (r >= b)
    reach = 2 * max(1, round(dpi / 150)) + 1
    red = cv2.dilate(reddish.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
    ink = (normalise_background(gray) < level) & ~border & ~red
    return ink, cv2.countNonZero((ink & chromatic).view(np.uint8)) / max(1, cv2.countNonZero(ink.view(np.uint8)))


def ocr_copy(image: Image.Image, dpi: float, remove_lines: bool = True,
             level: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """The grey page tesseract reads (paper white; seals, blue ink, borders and ruling lines gone)
    and the ink mask before the rules were taken out (for finding table grids)."""
    gray = normalise_background(ink_gray(image))
    gray[dark_border_mask(to_gray(image), dpi)] = 255
    ink = gray < level
    if remove_lines:
        # rules are looked for among all marks darker than paper: a faint rule thresholded at the
        # ink level breaks into dashes that tesseract reads as "|" and quotes
        marks = gray < PAPER_LEVEL
        rules = ruling_lines(marks, min_length=max(15, int(dpi * 0.45)))
        text = ink & ~rules
        # a blurred rule has a grey fringe a pixel or two wide on each side; it goes as well
        reach = 2 * max(1, round(dpi / 100)) + 1
        fringe = cv2.dilate(rules.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
        gray[fringe & ~text] = 255
    # paper noise and faint fringes are nothing tesseract should try to read
    gray[gray > PAPER_LEVEL] = 255
    return gray, ink
