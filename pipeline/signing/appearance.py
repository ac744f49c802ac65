"""The visible signature stamp: NĐ 30/2020 Phụ lục I for an organisation's signature on an
electronic copy, top right of page 1, text only (copy type, copying body, signing time in
Vietnam time), Times-style font at 10 pt in black, drawn as the font's glyph outlines so that
text extraction reads the paper's words and not the stamp (``OutlinedLines``).

The stamp never covers ink. ``read_page_one`` turns the scan drawn on page 1 into an ink
mask (anything clearly darker than the paper or clearly coloured: text, a red seal, a blue
signature, a stamp printed by an earlier signing) and lists the annotations already there
(an earlier signature's widget); ``place_stamp`` then looks for free paper in the top third
of the page, right half first, from the top-right corner leftwards then downwards. Only when
there is none does the page gain a white band above the scan to hold the stamp.
"""
from __future__ import annotations

import io
import math
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from pipeline.errors import SigningError

from .certificates import TEST_MARK, VIETNAM_TZ

FONT_CANDIDATES = (
    "/usr/share/texmf/fonts/opentype/public/tex-gyre/texgyretermes-regular.otf",
    "/usr/share/fonts/opentype/tex-gyre/texgyretermes-regular.otf",
    "/usr/share/fonts/truetype/freefont/FreeSerif.ttf",
)
FONT_SIZE = 10
LEADING = 12
STAMP_PADDING = 4
STAMP_MARGIN = 18  # points between the stamp and the top and right page edges (and any edge)
CLEARANCE_PT = 2 / 25.4 * 72  # free paper kept between the stamp and any ink: 2 mm
SEARCH_FRACTION = 1 / 3  # the stamp stays in the top third of page 1
MASK_DPI = 50  # resolution of the ink mask the search runs on: one cell is about 0.5 mm
DECODE_DPI = 75  # at least this resolution of the scan is looked at before it is reduced to the mask
DARK_FRACTION = 0.75  # darker than 75 % of the paper's brightness: ink (blocks, bold text)
LOCAL_CONTRAST = 40  # darker by this (0-255) than the brightest paper nearby: ink (thin strokes)
LOCAL_WINDOW_MM = 4.0
COLOUR_DELTA = 35  # a hue this far (0-255) from the paper's: ink (red seals, blue signatures)


def vietnamese_letters() -> str:
    """Every precomposed Vietnamese letter (NFC), lower and upper case, plus đ/Đ."""
    vowels = "aăâeêioôơuưy"
    tones = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
    letters = {unicodedata.normalize("NFC", v + t) for v in vowels for t in tones}
    letters |= {c.upper() for c in letters} | {"đ", "Đ"}
    return "".join(sorted(letters))


def font_path() -> str:
    """The first Times-style font on the known Debian paths that covers Vietnamese."""
    from fontTools.ttLib import TTFont

    needed = set(vietnamese_letters())
    for candidate in FONT_CANDIDATES:
        if not os.path.isfile(candidate):
            continue
        with TTFont(candidate, lazy=True) as font:
            cmap = font.getBestCmap()
        if all(ord(c) in cmap for c in needed):
            return candidate
    raise SigningError(
        "Không tìm thấy phông chữ kiểu Times có đủ chữ tiếng Việt để vẽ chữ ký; cài gói Debian "
        "fonts-texgyre hoặc fonts-freefont-ttf",
        "no Times-style font with Vietnamese coverage found: " + ", ".join(FONT_CANDIDATES))


def stamp_lines(copy_type: str, organisation: str, signed_at: datetime, test: bool) -> list[str]:
    """NĐ 30/2020 Phụ lục I: copy type, copying body, signing time (Vietnam time, ISO 8601)."""
    lines = [copy_type, organisation, signed_at.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")]
    if test:
        lines.append(TEST_MARK)
    return [unicodedata.normalize("NFC", line) for line in lines]


class TextMeasure:
    """Advance widths of a font at FONT_SIZE, to size the stamp box without scaling text."""

    def __init__(self, path: str, size: float = FONT_SIZE):
        from fontTools.ttLib import TTFont

        with TTFont(path) as font:
            self._cmap = font.getBestCmap()
            self._hmtx = {name: metrics for name, metrics in font["hmtx"].metrics.items()}
            self._scale = size / font["head"].unitsPerEm

    def width(self, text: str) -> float:
        return sum(self._hmtx[self._cmap.get(ord(c), ".notdef")][0] for c in text) * self._scale


def wrap_lines(lines: list[str], max_width: float, measure) -> list[str]:
    """Break lines that do not fit at word boundaries (a long agency name wraps, not shrinks)."""
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and measure(candidate) > max_width:
                out.append(current)
                current = word
            else:
                current = candidate
        out.append(current)
    return out


def stamp_box(page_box: tuple[float, float, float, float], lines: list[str], measure) -> tuple[list[str], tuple]:
    """The wrapped lines and the stamp rectangle in the top-right corner of the page box."""
    x0, y0, x1, y1 = page_box
    max_text = (x1 - x0) / 2 - STAMP_MARGIN - 2 * STAMP_PADDING - 2  # the stamp stays in the right half
    lines = wrap_lines(lines, max_text, measure)
    width = max(measure(line) for line in lines) + 2 * STAMP_PADDING + 2
    height = len(lines) * LEADING + 2 * STAMP_PADDING + 2
    right, top = x1 - STAMP_MARGIN, y1 - STAMP_MARGIN
    return lines, (round(right - width, 2), round(top - height, 2), round(right, 2), round(top, 2))


class OutlinedLines:
    """The stamp's lines drawn as filled glyph outlines in black: the same Times-style font,
    size and leading, shaped by HarfBuzz as pyHanko would, but with no text operators. The
    stamp is the signature's appearance, not words of the paper: as outlines it stays out of
    every text extractor (pdftotext, pdf.js, search engines), which would otherwise read it
    into the digitised text of page 1. Its words are in the signature dictionary (/Reason,
    /Location, /M), where a reader's signature panel shows them."""

    def __init__(self, lines: list[str], font: str, size: float = FONT_SIZE, leading: float = LEADING):
        self.lines, self.font, self.size, self.leading = lines, font, size, leading

    def operators(self) -> tuple[bytes, float, float]:
        """(content stream, width, height) of the lines, baseline of the first line one
        leading minus the descent below the top, the box's origin at its bottom left."""
        import uharfbuzz as hb
        from fontTools.pens.basePen import BasePen
        from fontTools.ttLib import TTFont

        with open(self.font, "rb") as f:
            data = f.read()
        face = hb.Face(data)
        hb_font = hb.Font(face)
        ops: list[str] = []

        class PdfPathPen(BasePen):
            def _moveTo(self, p):
                ops.append(f"{p[0]:g} {p[1]:g} m")

            def _lineTo(self, p):
                ops.append(f"{p[0]:g} {p[1]:g} l")

            def _curveToOne(self, p1, p2, p3):
                ops.append(" ".join(f"{v:g}" for p in (p1, p2, p3) for v in p) + " c")

            def _closePath(self):
                ops.append("h")

        with TTFont(io.BytesIO(data)) as tt:
            scale = self.size / tt["head"].unitsPerEm
            descent = -tt["hhea"].descent * scale
            glyphs, order = tt.getGlyphSet(), tt.getGlyphOrder()
            height = len(self.lines) * self.leading + 2
            width = 0.0
            for i, line in enumerate(self.lines):
                buf = hb.Buffer()
                buf.add_str(line)
                buf.guess_segment_properties()
                buf.language = "vi"
                hb.shape(hb_font, buf, {})
                x, baseline = 0.0, height - (i + 1) * self.leading + descent
                for info, pos in zip(buf.glyph_infos, buf.glyph_positions):
                    # each glyph in its own font units, placed by a matrix: a letter's outline is
                    # then the same bytes wherever it occurs, which deflate stores once
                    ops.append(f"q {scale:g} 0 0 {scale:g} {x + pos.x_offset * scale:.2f} "
                               f"{baseline + pos.y_offset * scale:.2f} cm")
                    glyphs[order[info.codepoint]].draw(PdfPathPen(glyphs))
                    ops.append("f Q")
                    x += pos.x_advance * scale
                width = max(width, x)
        return ("0 0 0 rg\n" + "\n".join(ops) + "\n").encode("ascii"), width, height


def _stamp_style(lines: list[str], font: str):
    from pyhanko.pdf_utils.content import RawContent
    from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, InnerScaling, Margins, SimpleBoxLayoutRule
    from pyhanko.stamp import StaticContentStamp, StaticStampStyle

    class CompressedStamp(StaticContentStamp):
        """pyHanko writes a stamp's form XObject uncompressed: the outlines of a three-line stamp
        are 60-75 KB of path operators, a tenth of a page's scan; deflated, ~10 KB."""

        def as_form_xobject(self):
            xobject = super().as_form_xobject()
            xobject.compress()
            return xobject

    class OutlinedStampStyle(StaticStampStyle):
        def create_stamp(self, writer, box, text_params):
            return CompressedStamp(writer=writer, style=self, box=box)

    stream, width, height = OutlinedLines(lines, font).operators()
    return OutlinedStampStyle(
        background=RawContent(stream, box=BoxConstraints(width=width, height=height)),
        background_opacity=1.0,
        border_width=0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MAX,
            margins=Margins.uniform(STAMP_PADDING), inner_content_scaling=InnerScaling.NO_SCALING),
    )


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class StampPlacement:
    """Where the stamp goes: ``box`` (x0, y0, x1, y1) in PDF points of page 1 as it will be,
    and ``band_pt``, the height of the white band added above the page top (0: none)."""

    box: tuple[float, float, float, float]
    band_pt: float = 0.0

    def to_json(self) -> dict:
        return {"box": list(self.box), "bandPt": self.band_pt}


@dataclass(frozen=True)
class PageOne:
    """What the placement needs to know of page 1: its visible box (normalised), its ink as a
    boolean grid over that box (row 0 at the top, ``scale`` cells per point), the rectangles
    of its annotations (an earlier signature's widget, ...), and whether the document is
    signed already (then page 1 must not change: no band)."""

    box: tuple[float, float, float, float]
    ink: np.ndarray
    scale: float
    annotations: tuple[tuple[float, float, float, float], ...] = field(default=())
    signed: bool = False


def ink_of_pixels(pixels: np.ndarray) -> np.ndarray:
    """Boolean ink mask of a scan (H x W grey or H x W x 3 RGB, uint8): pixels clearly darker
    than the paper, darker than the paper around them (thin strokes), or clearly more
    colourful than it (seals, signatures). The paper is the scan's 95th percentile of
    brightness and its median colourfulness."""
    import cv2

    colour = pixels.ndim == 3
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if colour else np.ascontiguousarray(pixels)
    paper = max(_percentile(grey, 95), 128)
    ink = grey < DARK_FRACTION * paper
    window = max(3, round(LOCAL_WINDOW_MM / 25.4 * DECODE_DPI))
    nearby = cv2.dilate(grey, cv2.getStructuringElement(cv2.MORPH_RECT, (window, window)))
    ink |= cv2.subtract(nearby, grey) > LOCAL_CONTRAST
    if colour:
        chroma = _chroma(pixels)
        ink |= chroma > _percentile(chroma, 50) + COLOUR_DELTA
    return ink


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """max(R, G, B) - min(R, G, B): 0 for grey, black and white; high for red or blue ink."""
    import cv2

    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    return cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))


def _percentile(channel: np.ndarray, q: float) -> int:
    counts = np.bincount(channel[::2, ::2].ravel(), minlength=256).cumsum()
    return int(np.searchsorted(counts, counts[-1] * q / 100))


def read_page_one(pdf: bytes | Path, *, mask_dpi: float = MASK_DPI) -> PageOne:
    """Page 1's box, ink mask and annotations, and whether the document is signed already.
    The ink comes from the images page 1's content stream draws, where it draws them (sohoa's
    PDFs draw one scan over the whole page, turned by its skew and clipped to the sheet when it
    was deskewed); a page without images has no ink."""
    import pikepdf

    with pikepdf.open(pdf if isinstance(pdf, Path) else io.BytesIO(pdf)) as doc:
        page = doc.pages[0]
        x0, y0, x1, y1 = (float(v) for v in page.cropbox)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        scale = mask_dpi / 72
        ink = np.zeros((math.ceil((box[3] - box[1]) * scale), math.ceil((box[2] - box[0]) * scale)), bool)
        for image, ctm, clip in _placed_images(page):
            _paint_image(ink, scale, box, image, ctm, clip)
        return PageOne(box, ink, scale, _annotation_rects(page), _has_signature(doc))


def _placed_images(page):
    """(image XObject, CTM, clip) for every image the page's content stream draws directly; clip:
    the page-space box (x0, y0, x1, y1) of the clipping rectangles in force, or None (sohoa clips
    a deskewed scan to its sheet: what lies outside, such as a scanner's black bed, is not seen)."""
    import pikepdf

    xobjects = page.obj.get("/Resources", {}).get("/XObject", {})
    ctm, clip, stack, rect = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), None, [], None
    for operands, operator in pikepdf.parse_content_stream(page, "q Q cm Do re W"):
        op = str(operator)
        if op == "q":
            stack.append((ctm, clip))
        elif op == "Q" and stack:
            ctm, clip = stack.pop()
        elif op == "cm" and len(operands) == 6:
            ctm = _concat(tuple(float(v) for v in operands), ctm)
        elif op == "re" and len(operands) == 4:
            x, y, w, h = (float(v) for v in operands)
            corners = [_apply(ctm, px, py) for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
            xs, ys = [p[0] for p in corners], [p[1] for p in corners]
            rect = (min(xs), min(ys), max(xs), max(ys))
        elif op == "W" and rect is not None:
            clip = rect if clip is None else (max(clip[0], rect[0]), max(clip[1], rect[1]),
                                              min(clip[2], rect[2]), min(clip[3], rect[3]))
        elif op == "Do" and operands:
            xobject = xobjects.get(str(operands[0]))
            if xobject is not None and xobject.get("/Subtype") == "/Image":
                yield xobject, ctm, clip


def _apply(m, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _concat(m, n):
    """The PDF matrix product m x n of two (a b c d e f) matrices."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + b * c2, a * b2 + b * d2, c * a2 + d * c2, c * b2 + d * d2,
            e * a2 + f * c2 + e2, e * b2 + f * d2 + f2)


def _paint_image(ink: np.ndarray, scale: float, box, xobject, ctm, clip=None) -> None:
    """OR the ink of one image, drawn with ``ctm`` and seen inside ``clip`` (page space), into
    the page mask."""
    import cv2

    a, b, c, d, e, f = ctm
    width_pt, height_pt = math.hypot(a, b), math.hypot(c, d)
    if width_pt < 1e-6 or height_pt < 1e-6:
        return
    pixels = _decoded(xobject, (width_pt, height_pt))
    if pixels is None:
        return
    mask = ink_of_pixels(pixels)  # row 0 at the image's top
    cols, rows = max(1, round(width_pt * scale)), max(1, round(height_pt * scale))
    # a trace of ink in a cell keeps the cell's area average above 0
    coverage = cv2.resize(mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
    if abs(b) <= 1e-6 and abs(c) <= 1e-6:
        # drawn upright (a scan sohoa kept as it is): its cells fall on the mask's cells
        left, top = min(e, e + a), max(f, f + d)
        seen = np.zeros_like(ink)
        col0, row0 = math.floor((left - box[0]) * scale), math.floor((box[3] - top) * scale)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + rows, ink.shape[0]), min(col0 + cols, ink.shape[1])
        if r0 < r1 and c0 < c1:
            placed = (coverage > 0)[::-1 if d < 0 else 1, ::-1 if a < 0 else 1]
            seen[r0:r1, c0:c1] = placed[r0 - row0:r1 - row0, c0 - col0:c1 - col0]
    else:
        # turned (a deskewed scan): the image's cell (x, y), y from its top, lies at the unit
        # square's (x / cols, 1 - y / rows), which the CTM takes to the page
        to_mask = np.float32([[scale * a / cols, -scale * c / rows, scale * (c + e - box[0])],
                              [-scale * b / cols, scale * d / rows, scale * (box[3] - d - f)]])
        seen = cv2.warpAffine(coverage, to_mask, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    if clip is not None:
        x0, x1 = (max(0, min(ink.shape[1], round((v - box[0]) * scale))) for v in (clip[0], clip[2]))
        y0, y1 = (max(0, min(ink.shape[0], round((box[3] - v) * scale))) for v in (clip[3], clip[1]))
        inside = np.zeros_like(ink)
        inside[y0:y1, x0:x1] = True
        seen &= inside
    ink |= seen


def _decoded(xobject, placed_pt: tuple[float, float]) -> np.ndarray | None:
    """The image's pixels (grey or RGB, uint8), reduced to about DECODE_DPI on the page:
    a JPEG is decoded at 1/2, 1/4 or 1/8 scale directly (libjpeg's DCT scaling)."""
    import pikepdf

    target = (max(1, round(placed_pt[0] / 72 * DECODE_DPI)), max(1, round(placed_pt[1] / 72 * DECODE_DPI)))
    try:
        image = pikepdf.PdfImage(xobject).as_pil_image()
    except Exception:  # noqa: BLE001 - an image sohoa cannot read holds no ink it can see
        return None
    with image:
        if image.format == "JPEG":
            image.draft(image.mode, target)
        factor = min(image.width // target[0], image.height // target[1])
        if image.mode not in ("L", "RGB"):
            image = image.convert("L" if image.mode in ("1", "LA", "I", "I;16") else "RGB")
        if factor >= 2:
            image = image.reduce(factor)  # box average: a thin stroke stays a darker trace
        return np.asarray(image)


def _has_signature(doc) -> bool:
    form = doc.Root.get("/AcroForm")
    fields = form.get("/Fields", []) if form is not None else []
    return any(f.get("/FT") == "/Sig" and "/V" in f for f in fields)


def _annotation_rects(page) -> tuple[tuple[float, float, float, float], ...]:
    """The rectangles of page 1's visible annotations (widgets of earlier signatures, ...)."""
    rects = []
    for annot in page.obj.get("/Annots", []):
        try:
            if annot.get("/Subtype") == "/Popup" or int(annot.get("/F", 0)) & 2:
                continue
            x0, y0, x1, y1 = (float(v) for v in annot.Rect)
        except Exception:  # noqa: BLE001 - a damaged annotation is skipped
            continue
        if x0 != x1 and y0 != y1:
            rects.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return tuple(rects)


def place_stamp(ink: np.ndarray, scale: float, page_box, size: tuple[float, float],
                obstacles=(), *, clearance: float = CLEARANCE_PT, margin: float = STAMP_MARGIN,
                search: float = SEARCH_FRACTION, band: bool = True) -> StampPlacement | None:
    """Where a stamp of ``size`` (width, height, points) goes on a page of ``page_box``.

    ``ink`` is a boolean grid over the page box (row 0 at the top, ``scale`` cells per point);
    ``obstacles`` are rectangles (points) to avoid as well. The stamp keeps ``margin`` from
    the page edges and ``clearance`` from ink and obstacles, and lies in the top ``search``
    part of the page. Candidates run from the top-right corner (today's place, ``margin``
    from the top and right edges) leftwards, then down, one cell at a time: first with the
    stamp in the right half of the page, then anywhere across it. When nothing is free, the
    page is to gain a band of ``band_pt`` above its top, and the stamp goes in that band;
    without ``band`` (a page that must not change) the whole page is searched instead, and
    None means no place at all."""
    found = _first_free(_blocked(ink, scale, page_box, obstacles, clearance), scale, page_box, size,
                        margin, search)
    if found is not None:
        return StampPlacement(found)
    if not band:
        return place_stamp(ink, scale, page_box, size, obstacles, clearance=clearance, margin=margin,
                           search=1.0, band=False) if search < 1 else None
    x0, y0, x1, y1 = page_box
    width, height = size
    band_pt = round(margin + height + 2 * clearance, 2)  # room under the stamp to the scan's top
    right, top = x1 - margin, y1 + band_pt - margin
    return StampPlacement(_rounded((right - width, top - height, right, top)), band_pt)


def _first_free(blocked: np.ndarray, scale: float, page_box, size, margin: float, search: float):
    """The first free box in the search order of ``place_stamp``, or None."""
    x0, y0, x1, y1 = page_box
    width, height = size
    step = 1 / scale
    rights = x1 - margin - step * np.arange(max(0, math.floor((x1 - x0 - 2 * margin - width) * scale) + 1))
    tops = y1 - margin - step * np.arange(max(0, math.floor(((y1 - y0) * search - margin - height) * scale) + 1))
    if not (len(rights) and len(tops)):
        return None
    free = _free(blocked, scale, page_box, rights - width, rights, tops - height, tops)
    for leftmost in ((x0 + x1) / 2, x0 + margin):  # the right half first, then the whole width
        candidates = free & (rights - width >= leftmost - 1e-6)[None, :]
        if candidates.any():
            j, i = np.unravel_index(np.argmax(candidates), candidates.shape)  # topmost, then rightmost
            return _rounded((rights[i] - width, tops[j] - height, rights[i], tops[j]))
    return None


def _rounded(box) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 2) for v in box)


def _blocked(ink: np.ndarray, scale: float, page_box, obstacles, clearance: float) -> np.ndarray:
    """Ink and obstacles, grown by the clearance (plus one cell for the grid's rounding)."""
    import cv2

    x0, _, _, y1 = page_box
    grid = ink.astype(np.uint8)
    for ax0, ay0, ax1, ay1 in obstacles:
        c0, c1 = max(0, math.floor((ax0 - x0) * scale)), min(grid.shape[1], math.ceil((ax1 - x0) * scale))
        r0, r1 = max(0, math.floor((y1 - ay1) * scale)), min(grid.shape[0], math.ceil((y1 - ay0) * scale))
        if c0 < c1 and r0 < r1:
            grid[r0:r1, c0:c1] = 1
    reach = math.ceil(clearance * scale) + 1
    return cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1)))


def _free(blocked: np.ndarray, scale: float, page_box, lefts, rights, bottoms, tops) -> np.ndarray:
    """For every (top, right) pair: whether the box covers no blocked cell (summed-area table)."""
    x0, _, _, y1 = page_box
    table = np.zeros((blocked.shape[0] + 1, blocked.shape[1] + 1), np.int32)
    table[1:, 1:] = blocked.cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)

    def cells(values, limit, rounding):
        return np.clip(rounding(values * scale + (1e-6 if rounding is np.floor else -1e-6)), 0, limit).astype(int)

    c0, c1 = cells(lefts - x0, blocked.shape[1], np.floor), cells(rights - x0, blocked.shape[1], np.ceil)
    r0, r1 = cells(y1 - tops, blocked.shape[0], np.floor), cells(y1 - bottoms, blocked.shape[0], np.ceil)
    r0, r1 = r0[:, None], r1[:, None]
    return (table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]) == 0
