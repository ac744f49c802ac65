"""QR codes (ISO/IEC 18004) on a scanned page: the dossier code the one-stop system prints on
its receipt (phiếu tiếp nhận). Page image in, decoded payloads out; no I/O, no sohoa policy
(what a payload means is decided in ``pipeline.receipts``).

Strategy, cheapest first, stopping as soon as every symbol found is decoded:

1. **Locate** on the whole page in grayscale at a working resolution of about 150 dpi with
   OpenCV's ArUco-based detector (``cv2.QRCodeDetectorAruco``: fast, and it finds skewed,
   blurred and upside-down symbols that the classic detector misses), then with the classic
   ``cv2.QRCodeDetector``, then the ArUco detector again on an adaptive binarisation, and last
   at up to 300 dpi (small symbols of many modules), each pass only while some symbol is
   still unknown or undecoded. A page without a QR code costs these four passes and the
   finder check of step 4: about 0.15-0.25 s for an A4 page at 200-300 dpi on one core.
2. **Decode** each located symbol from a crop of the *full-resolution* page around it, trying in
   turn: as is, the brightest channel (a red seal over the symbol turns white), a slight
   Gaussian smoothing (the jagged module edges of a 1-bit scan), Otsu binarisation, an unsharp
   mask (blur), 2x upscaling, adaptive binarisation, a 1.5x downscale, each with both
   detectors and with the corners found on the page (``decode`` without re-detection). The
   first variant that decodes wins.
3. A symbol that was located but that no variant decodes is counted in ``unreadable``: the
   caller reports it, it never just disappears.
4. So is a symbol that no detector locates because one finder pattern is hidden (a sticky note,
   a staple, a torn corner): two or more finder patterns (a square ring around a square, areas
   7x7 : 5x5 : 3x3 modules) of one size, as far apart as in a QR code, away from every symbol
   located, count as one unreadable symbol. One contour pass at the working resolution.

Symbol positions are de-duplicated across passes (two quads whose centres lie within half a
symbol of each other are one symbol), and payloads are returned in reading order (top to
bottom, then left to right, on the page as scanned).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

WORKING_DPI = 150          # resolution of the locating passes
FINE_DPI = 300             # the last locating pass, for small symbols of many modules
ASSUMED_PAGE_INCHES = 11.69  # long side of A4, for an image that states no believable resolution
MIN_PAGE_INCHES, MAX_PAGE_INCHES = 5.5, 17.0  # long side of A6 .. A3
MIN_SYMBOL_MM = 6.0        # smaller quads are noise (a printed QR code is at least ~10 mm)
MAX_SYMBOL_MM = 120.0
CROP_MARGIN = 0.35         # share of the symbol's side added around it for its quiet zone
MAX_CROP_PX = 1400         # a crop larger than this is scaled down before decoding
FINDER_MM = (1.5, 20.0)    # side of a finder pattern (7 modules) that a printed QR code may have
FINDER_SPACING_MAX = 14.0  # finder centres at most this many finder sides apart (version 14)


@dataclass(frozen=True)
class QrReading:
    """What the QR codes on one page say.

    ``texts``: every decoded payload, de-duplicated, in reading order; ``unreadable``: symbols
    located on the page whose content could not be decoded; ``attempts``: detector and decoder
    calls made (diagnostics: a page without QR code costs 5, a clean receipt 2, a symbol no
    variant decodes about 30)."""

    texts: tuple[str, ...] = ()
    unreadable: int = 0
    attempts: int = 0

    @property
    def found(self) -> bool:
        return bool(self.texts) or self.unreadable > 0

    def to_json(self) -> dict:
        return {"texts": list(self.texts), "unreadable": self.unreadable, "attempts": self.attempts}


@dataclass
class _Symbol:
    quad: np.ndarray        # 4x2 corners in full-resolution page pixels
    text: str | None = None

    @property
    def centre(self) -> np.ndarray:
        return self.quad.mean(axis=0)

    @property
    def side(self) -> float:
        return float(np.mean([np.linalg.norm(self.quad[i] - self.quad[(i + 1) % 4]) for i in range(4)]))


class _Reader:
    def __init__(self) -> None:
        self.aruco = cv2.QRCodeDetectorAruco()
        self.classic = cv2.QRCodeDetector()
        self.attempts = 0

    def detect_decode(self, detector, gray: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(payload or '' when located but not decoded, 4x2 corners) for every symbol found."""
        self.attempts += 1
        try:
            ok, texts, points, _ = detector.detectAndDecodeMulti(gray)
        except cv2.error:
            return []
        if not ok or points is None:
            return []
        return [(text or "", np.asarray(quad, dtype=np.float32).reshape(4, 2)) for text, quad in zip(texts, points)]

    def decode_at(self, detector, gray: np.ndarray, quad: np.ndarray) -> str:
        self.attempts += 1
        try:
            text, _ = detector.decode(gray, quad.reshape(1, 4, 2).astype(np.float32))
        except cv2.error:
            return ""
        return text or ""


def _planes(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """(grayscale page, RGB pixels or None for a page without colour). The brightest channel,
    which turns a red seal over a symbol white, is computed later on the symbol's crop only."""
    if image.mode in ("L", "1", "I", "I;16", "F"):
        return np.asarray(image.convert("L")), None
    rgb = np.asarray(image.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), rgb


def _page_dpi(image: Image.Image, dpi: float | None) -> float:
    if dpi and dpi > 0:
        return float(dpi)
    stated = image.info.get("dpi")
    try:
        value = float(stated[0])
    except (TypeError, ValueError, IndexError):
        value = 0.0
    # a stated resolution is believed only when it makes a paper size (A6 to A3): many scanners
    # and converters write 72 dpi whatever they scanned at
    if 50 <= value <= 2400 and MIN_PAGE_INCHES <= max(image.size) / value <= MAX_PAGE_INCHES:
        return value
    return max(image.size) / ASSUMED_PAGE_INCHES


def _plausible(quad: np.ndarray, dpi: float) -> bool:
    """A quad a printed QR code could make: size within bounds, roughly square, convex."""
    sides = [float(np.linalg.norm(quad[i] - quad[(i + 1) % 4])) for i in range(4)]
    mm = dpi / 25.4
    if min(sides) < MIN_SYMBOL_MM * mm or max(sides) > MAX_SYMBOL_MM * mm:
        return False
    if max(sides) > 2.0 * min(sides):
        return False
    return bool(cv2.isContourConvex(quad.reshape(-1, 1, 2).astype(np.float32)))


def _merge(symbols: list[_Symbol], found: list[tuple[str, np.ndarray]]) -> None:
    """Add newly found symbols; one already known keeps its place and gains a decoded text."""
    for text, quad in found:
        candidate = _Symbol(quad, text or None)
        for known in symbols:
            if np.linalg.norm(known.centre - candidate.centre) < 0.5 * max(known.side, candidate.side):
                if known.text is None and candidate.text:
                    known.text = candidate.text
                break
        else:
            symbols.append(candidate)


def _variants(crop: np.ndarray, bright: np.ndarray | None):
    """Images of one symbol to try, cheapest and likeliest first: (name, image, scale)."""
    yield "as-is", crop, 1.0
    if bright is not None:
        yield "brightest-channel", bright, 1.0
    yield "smoothed", cv2.GaussianBlur(crop, (0, 0), 1.0), 1.0  # the jagged edges of a 1-bit scan
    _, otsu = cv2.threshold(cv2.GaussianBlur(crop, (3, 3), 0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield "otsu", otsu, 1.0
    soft = cv2.GaussianBlur(crop, (0, 0), 2.0)
    sharp = cv2.addWeighted(crop, 2.0, soft, -1.0, 0)
    yield "sharpened", sharp, 1.0
    _, sharp_otsu = cv2.threshold(sharp, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield "sharpened-otsu", sharp_otsu, 1.0
    up = cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    yield "upscaled", up, 2.0
    block = max(15, (min(crop.shape[:2]) // 8) | 1)
    yield "adaptive", cv2.adaptiveThreshold(crop, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY,
                                            block, 10), 1.0
    yield "downscaled", cv2.resize(crop, None, fx=1 / 1.5, fy=1 / 1.5, interpolation=cv2.INTER_AREA), 1 / 1.5


def _decode_symbol(reader: _Reader, symbol: _Symbol, gray: np.ndarray, rgb: np.ndarray | None) -> str | None:
    """Decode one located symbol from the full-resolution page, trying variants of its crop."""
    side = symbol.side
    x0, y0 = np.floor(symbol.quad.min(axis=0) - CROP_MARGIN * side).astype(int)
    x1, y1 = np.ceil(symbol.quad.max(axis=0) + CROP_MARGIN * side).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(gray.shape[1], x1), min(gray.shape[0], y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = min(1.0, MAX_CROP_PX / max(x1 - x0, y1 - y0))

    def fit(part: np.ndarray) -> np.ndarray:
        part = np.ascontiguousarray(part)
        return part if scale == 1.0 else cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    crop = fit(gray[y0:y1, x0:x1])
    bright = fit(rgb[y0:y1, x0:x1].max(axis=2)) if rgb is not None else None
    local_quad = (symbol.quad - np.array([x0, y0], dtype=np.float32)) * scale
    for _name, image, factor in _variants(crop, bright):
        for detector in (reader.aruco, reader.classic):
            for text, _ in reader.detect_decode(detector, image):
                if text:
                    return text
        text = reader.decode_at(reader.classic, image, local_quad * factor)
        if text:
            return text
    return None


def read_qr_codes(image: Image.Image, dpi: float | None = None) -> QrReading:
    """Every QR code on a scanned page: decoded payloads and the count of symbols located but
    not decoded. ``dpi`` defaults to the image's stated resolution, else an A4 page is assumed."""
    page_dpi = _page_dpi(image, dpi)
    gray, rgb = _planes(image)
    reader = _Reader()
    symbols: list[_Symbol] = []

    def locate(detector, plane: np.ndarray, factor: float) -> None:
        found = [(text, quad / factor) for text, quad in reader.detect_decode(detector, plane)]
        _merge(symbols, [(text, quad) for text, quad in found if _plausible(quad, page_dpi)])

    def at(target_dpi: float) -> tuple[np.ndarray, float]:
        factor = min(1.0, target_dpi / page_dpi)
        if factor > 0.95:
            return gray, 1.0
        return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), factor

    small, factor = at(WORKING_DPI)
    passes = (
        lambda: locate(reader.aruco, small, factor),
        lambda: locate(reader.classic, small, factor),
        lambda: locate(reader.aruco, _binarised(small), factor),
        lambda: locate(reader.aruco, *at(FINE_DPI)) if page_dpi > 1.2 * WORKING_DPI else None,
    )
    for run in passes:
        run()
        if symbols and all(s.text for s in symbols):
            break
    for symbol in symbols:
        if symbol.text is None:
            symbol.text = _decode_symbol(reader, symbol, gray, rgb)

    ordered = sorted(symbols, key=lambda s: (round(float(s.centre[1]) / max(s.side, 1.0)), float(s.centre[0])))
    texts: list[str] = []
    for symbol in ordered:
        if symbol.text and symbol.text not in texts:
            texts.append(symbol.text)
    unreadable = sum(1 for s in symbols if not s.text)
    reader.attempts += 1
    unreadable += _partial_symbols(small, factor, page_dpi, symbols)
    return QrReading(tuple(texts), unreadable, reader.attempts)


def _finder_patterns(gray: np.ndarray, dpi: float) -> list[tuple[float, float, float]]:
    """(x, y, side) of the QR finder patterns on a page: a dark square ring around a dark square,
    areas 7x7 : 5x5 : 3x3 modules, all three squarish and concentric."""
    mm = dpi / 25.4
    block = max(15, round(12 * mm) | 1)
    ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 15)
    contours, hierarchy = cv2.findContours(ink, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    tree = hierarchy[0]
    lo, hi = (FINDER_MM[0] * mm) ** 2, (FINDER_MM[1] * mm) ** 2
    found = []
    for outer in range(len(contours)):
        hole = tree[outer][2]
        if hole < 0 or tree[hole][0] >= 0 or tree[hole][1] >= 0:  # exactly one hole
            continue
        inner = tree[hole][2]
        if inner < 0 or tree[inner][0] >= 0 or tree[inner][1] >= 0:  # exactly one square in it
            continue
        areas = [cv2.contourArea(contours[k]) for k in (outer, hole, inner)]
        if not lo <= areas[0] <= hi or min(areas) <= 0:
            continue
        if not (1.4 <= areas[0] / areas[1] <= 3.0 and 1.6 <= areas[1] / areas[2] <= 4.5):
            continue
        rects = [cv2.minAreaRect(contours[k]) for k in (outer, hole, inner)]
        if any(not (0.7 <= w / max(h, 1e-6) <= 1.43) or a < 0.75 * w * h
               for ((_, _), (w, h), _), a in zip(rects, areas)):
            continue
        centres = np.array([r[0] for r in rects])
        side = float(np.sqrt(areas[0]))
        if np.linalg.norm(centres - centres[0], axis=1).max() > 0.15 * side:
            continue
        found.append((float(centres[0][0]), float(centres[0][1]), side))
    return found


def _partial_symbols(small: np.ndarray, factor: float, page_dpi: float, symbols: list[_Symbol]) -> int:
    """Symbols no detector located whose finder patterns are on the page (a note or a torn
    corner over the third one): two or more finder patterns of one size, as far apart as in a
    QR code, away from every symbol already located. Each such group counts as unreadable."""
    finders = [(x / factor, y / factor, side / factor) for x, y, side in _finder_patterns(small, page_dpi * factor)]
    finders = [f for f in finders
               if not any(np.linalg.norm(s.centre - f[:2]) < 0.9 * s.side for s in symbols)]
    group = list(range(len(finders)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, (xi, yi, si) in enumerate(finders):
        for j in range(i):
            xj, yj, sj = finders[j]
            if max(si, sj) > 1.3 * min(si, sj):
                continue
            distance = float(np.hypot(xi - xj, yi - yj)) / ((si + sj) / 2)
            if 1.9 <= distance <= FINDER_SPACING_MAX:
                group[root(i)] = root(j)
    sizes: dict[int, int] = {}
    for i in range(len(finders)):
        sizes[root(i)] = sizes.get(root(i), 0) + 1
    return sum(1 for n in sizes.values() if n >= 2)


def _binarised(gray: np.ndarray) -> np.ndarray:
    block = max(15, round(6 * WORKING_DPI / 25.4) | 1)  # a ~6 mm neighbourhood
    return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 12)
