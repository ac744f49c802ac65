"""One scanned page in, the archive image plus its OCR out: sohoa's per-page OCR stage."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ocr import cleanup, geometry, quality, recognise

OCR_TARGET_DPI = 300


def _measure_geometry(image: Image.Image, dpi: float) -> tuple[int, float]:
    """(orientation, skew_deg) of the scan, in the manifest's conventions."""
    gray = cleanup.normalise_background(cleanup.ink_gray(image))
    raw = cleanup.to_gray(image)
    mask = gray < 160
    mask &= ~cleanup.dark_border_mask(raw, dpi)
    skew = geometry.estimate_skew(mask, dpi)
    candidates = (90, 270) if skew.vertical else (0, 180)
    upright = geometry.straighten(Image.fromarray(np.where(mask, 0, 255).astype(np.uint8)), skew.angle_deg, 255)
    orientation = _pick_orientation(np.asarray(upright), candidates, dpi)
    return orientation, skew.angle_deg


def _pick_orientation(deskewed_gray: np.ndarray, candidates: tuple[int, int], dpi: float) -> int:
    small = deskewed_gray
    if dpi > OCR_TARGET_DPI:
        small = cv2.resize(small, None, fx=OCR_TARGET_DPI / dpi, fy=OCR_TARGET_DPI / dpi, interpolation=cv2.INTER_AREA)
    osd = recognise.detect_orientation(small)
    if osd is None:
        return candidates[0]
    # OSD's "rotate" is the clockwise turn that sets the page upright, i.e. our orientation
    rotate, _ = osd
    return rotate if rotate in candidates else candidates[0]


def process_page(image: Image.Image, dpi: tuple[int, int], lang: str = "vie") -> dict:
    """Straighten and OCR one page; see the module docstring of :mod:`ocr` for the contract."""
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    resolution = float(dpi[0] or 300)
    orientation, skew_deg = _measure_geometry(image, resolution)

    border_fill = cleanup.paper_colour(image)
    archive = geometry.straighten(image, orientation + skew_deg, border_fill)
    box = cleanup.paper_box(cleanup.to_gray(archive), resolution)
    if box is not None:
        archive = archive.crop(box)

    ocr_gray = cleanup.ocr_copy(archive, resolution)
    scale = 1.0
    if resolution < 250:
        scale = OCR_TARGET_DPI / resolution
        ocr_input = cv2.resize(ocr_gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    else:
        ocr_input = ocr_gray
    words = recognise.recognise_words(ocr_input, lang=lang, dpi=int(round(resolution * scale)), scale=scale)
    text = recognise.words_to_text(words)
    confidence = round(float(np.mean([w["conf"] for w in words])), 2) if words else 0.0

    text_mask = ocr_gray < 160
    flags = quality.page_flags(cleanup.to_gray(archive), text_mask, resolution, confidence, len(words))
    if "blank" in flags:
        words, text, confidence = [], "", 0.0
    return {
        "image": archive,
        "orientation": int(orientation) % 360,
        "skew_deg": round(float(skew_deg), 3),
        "words": words,
        "text": text,
        "confidence": confidence,
        "flags": flags,
    }
