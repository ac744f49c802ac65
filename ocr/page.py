"""One scanned page in, the archive image plus its OCR out: sohoa's per-page OCR stage.

``process_page(image, dpi, lang)`` returns
  image        the archive image: same mode as the input, quarter turn undone, deskewed (white/paper
               fill, canvas grown so nothing is cut), cropped of a black scanner border; nothing else
  orientation  0/90/180/270, counter-clockwise quarter turn of the content in the scan
  skew_deg     small counter-clockwise angle of the text lines once the quarter turn is undone
  words        [{text, x0, y0, x1, y1, conf, line}] in the returned image's pixels, reading order
  text         NFC, one line per ``line`` id, in reading order
  confidence   mean word confidence, 0 when there are no words
  flags        subset of blank, blurry, cut_off, low_confidence
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ocr import cleanup, geometry, layout, orientation as orient, quality, recognise

INK_LEVEL = 160  # grey level below which the cleaned OCR copy counts as ink


@dataclass(frozen=True)
class OcrOptions:
    """Recognition choices; the defaults are the measured best (see bench/README.md)."""
    psm: int = 3
    upscale_below_dpi: float = 250   # scans under this resolution are enlarged for tesseract
    target_dpi: float = 300
    binarise: bool = False           # hand tesseract a binary image instead of the cleaned grey
    remove_lines: bool = True
    tables: bool = True              # reorder words by ruling-grid cells, re-read empty cells
    columns: bool = True             # read two-column headers column by column


DEFAULT_OPTIONS = OcrOptions()


def process_page(image: Image.Image, dpi: tuple[int, int], lang: str = "vie") -> dict:
    """Straighten and OCR one scanned page (see the module docstring for the result)."""
    return process_page_with(image, dpi, lang, DEFAULT_OPTIONS)


def process_page_with(image: Image.Image, dpi: tuple[int, int], lang: str, options: OcrOptions) -> dict:
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    resolution = float((dpi or (300, 300))[0] or 300)

    geometry_found = orient.measure(image, resolution, lang)
    archive = geometry.straighten(image, geometry_found.orientation + geometry_found.skew_deg,
                                  cleanup.paper_colour(image))
    box = cleanup.paper_box(cleanup.to_gray(archive), resolution)
    if box is not None:
        archive = archive.crop(box)

    ocr_gray = cleanup.ocr_copy(archive, resolution, remove_lines=options.remove_lines)
    text_mask = ocr_gray < INK_LEVEL
    flags = quality.page_flags_before_ocr(cleanup.to_gray(archive), text_mask, resolution)
    words: list[dict] = []
    if "blank" not in flags:
        words = _read_words(ocr_gray, archive, resolution, lang, options)
    confidence = round(float(np.mean([w["conf"] for w in words])), 2) if words else 0.0
    if "blank" not in flags and quality.is_low_confidence(confidence, len(words)):
        flags.append("low_confidence")
    return {
        "image": archive,
        "orientation": int(geometry_found.orientation) % 360,
        "skew_deg": round(float(geometry_found.skew_deg), 3),
        "words": words,
        "text": recognise.words_to_text(words),
        "confidence": confidence,
        "flags": flags,
    }


def _read_words(ocr_gray: np.ndarray, archive: Image.Image, resolution: float, lang: str,
                options: OcrOptions) -> list[dict]:
    scale = options.target_dpi / resolution if resolution < options.upscale_below_dpi else 1.0
    ocr_input = ocr_gray
    if scale != 1.0:
        ocr_input = cv2.resize(ocr_gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    if options.binarise:
        _, ocr_input = cv2.threshold(ocr_input, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    words = recognise.recognise_words(ocr_input, lang=lang, psm=options.psm,
                                      dpi=int(round(resolution * scale)), scale=scale)
    grid = None
    if options.tables:
        grid = layout.find_grid(cleanup.ink_gray_mask(archive, resolution), resolution)
    if grid is not None:
        words = words + _read_empty_cells(ocr_gray, grid, words, resolution, lang, scale)
        return layout.order_by_cells(words, grid)
    return layout.order_columns(words) if options.columns else words


def _read_empty_cells(ocr_gray: np.ndarray, grid: layout.Grid, words: list[dict], resolution: float,
                      lang: str, scale: float) -> list[dict]:
    """Tesseract's page layout drops lone short cell contents (a row number "7"); read each inked
    cell that got no word on its own, all in one tesseract call on a strip of those cells."""
    filled = {grid.cell_of((w["x0"] + w["x1"]) / 2, (w["y0"] + w["y1"]) / 2) for w in words}
    inset = max(3, int(resolution * 0.02))
    crops, origins = [], []
    for index, (x0, y0, x1, y1) in enumerate(grid.cells()):
        row, col = divmod(index, len(grid.xs) - 1)
        if (row, col) in filled or x1 - x0 <= 2 * inset or y1 - y0 <= 2 * inset:
            continue
        crop = ocr_gray[y0 + inset:y1 - inset, x0 + inset:x1 - inset]
        if (crop < INK_LEVEL).sum() < (resolution / 50) ** 2:
            continue
        crops.append(crop)
        origins.append((x0 + inset, y0 + inset))
    if not crops:
        return []
    gap = int(resolution * 0.25)
    width = max(c.shape[1] for c in crops) + 2 * gap
    height = sum(c.shape[0] + gap for c in crops) + gap
    strip = np.full((height, width), 255, np.uint8)
    offsets, y = [], gap
    for crop in crops:
        strip[y:y + crop.shape[0], gap:gap + crop.shape[1]] = crop
        offsets.append(y)
        y += crop.shape[0] + gap
    if scale != 1.0:
        strip = cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    found = recognise.recognise_words(strip, lang=lang, psm=6, dpi=int(round(resolution * scale)), scale=scale)
    line_base = max((w["line"] for w in words), default=-1) + 1
    placed = []
    for word in found:
        k = int(np.searchsorted(offsets, (word["y0"] + word["y1"]) / 2)) - 1
        if k < 0:
            continue
        dx, dy = origins[k][0] - gap, origins[k][1] - offsets[k]
        placed.append(dict(word, x0=word["x0"] + dx, x1=word["x1"] + dx, y0=word["y0"] + dy, y1=word["y1"] + dy,
                           line=line_base + word["line"]))
    return placed
