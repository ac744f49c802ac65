"""One scanned page in, the page image, its placement on the page and its OCR out: sohoa's
per-page OCR stage.

``process_page(image, dpi, engine, options)`` returns
  image        the scan with its quarter turn undone, not resampled (the input itself when it needed no
               turn): same mode and pixel size as the input (a quarter turn swaps width and height)
  placement    how that image makes the archive page (``Placement``: deskewed, the corners the rotation
               uncovers and a black scanner bed or lid shadow outside the sheet painted the paper's
               colour), or None when the image is the archive page as it is: a page without black
               text (blank, only a seal or a signature) is kept as scanned; a page whose text is in
               blue or violet ink is read from a grey copy (``colour_text_gray``) and placed the
               same way. ``archive_image`` renders it
  orientation  0/90/180/270, counter-clockwise quarter turn of the content in the scan
  skew_deg     small counter-clockwise angle of the text lines once the quarter turn is undone, as
               undone: 0 when the lines were within ``geometry.MIN_DESKEW_DEG`` of level
  words        [{text, x0, y0, x1, y1, conf, line, alt?}] in the archive page's pixels, reading order
               (``alt``: another recogniser's reading of the stretch the word begins, see ocr.vote)
  text         NFC, one line per ``line`` id, in reading order
  confidence   mean word confidence, 0 when there are no words
  flags        subset of blank, blurry, cut_off, low_confidence
  review       the lines a person should read against the page (ocr.review)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from ocr import cleanup, geometry, layout, orientation as orient, paper, quality, recognise, review
from ocr.engine import OcrEngine, PageTimeUp, ReadingAbandoned

INK_LEVEL = 160  # grey level below which the cleaned OCR copy counts as ink
NUMBER = re.compile(r"[0-9][0-9./,-]*")
ASCII_CAPS = re.compile(r"[A-Z0-9./-]+")  # a code such as "STT": no Vietnamese letter either model could miss
STRIP_MAX_SIDE = 32_000  # the longest strip of cells handed to tesseract, which refuses over 32,767 pixels a side


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


def process_page(image: Image.Image, dpi: tuple[int, int], engine: OcrEngine | None = None,
                 options: OcrOptions = DEFAULT_OPTIONS) -> dict:
    """Straighten and OCR one scanned page (see the module docstring for the result).

    ``engine``: the recogniser (tesseract with the Vietnamese model when none is given).

    The text lines give the skew and whether they run across the page as scanned or down it.
    Across, the page is nearly always the right way up: it is straightened and read (given up as
    soon as the reading is plainly turned over, and read the other way up instead), and when that
    reading is plainly upright text (``ocr.orientation.page_reads_upright``) it is the page's;
    otherwise the orientation test reads the densest band both ways up (``measure``) and, when it
    finds the page the other way up, the page is straightened and read again. Down (a page on its
    side), the band test decides first and the page is straightened once. Either way, a reading whose words run down
    the page (``ocr.orientation.page_reads_down``: the line axis was wrong) is done again about
    the other axis."""
    engine = engine or recognise.TesseractEngine("vie")
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    resolution = paper.page_resolution(image.size, dpi).dpi

    # the scan's dark border and ink marks serve the blank check, the geometry and the sheet finder
    border = cleanup.dark_border_mask(cleanup.to_gray(image), resolution)
    gray = cleanup.ink_gray(image)
    ink = cleanup.ink_gray_mask(image, resolution, border=border, gray=gray)
    black = black_text_marks(image, resolution, ink)
    if (coloured := colour_text_gray(image, resolution, len(black), border)) is not None:
        # blue or violet text, typed or a citizen's handwriting, which the copy read here makes
        # pale as if it were a signature: the page is read from a grey copy where it is dark
        return _given_colour(process_page(coloured, dpi, engine, options), image, border)
    if quality.is_blank(black):
        # no black text at all (an empty back page, only a seal, a signature or noise): there are
        # no lines to straighten by, so the page is kept exactly as scanned
        return {"image": image, "placement": None, "orientation": 0, "skew_deg": 0.0, "words": [], "text": "",
                "confidence": 0.0, "flags": ["blank"], "review": []}

    def straightened(orientation: int, skew_deg: float) -> Straightened:
        return straighten(image, resolution, orientation, skew_deg, border=border, gray=gray)

    def read_along(lines: orient.TextLines) -> _Reading:
        if lines.likely == 0:
            # lines across the page as scanned: nearly always the right way up, as its reading shows.
            # A reading that plainly shows it turned over is given up as soon as it does, and the
            # page read the other way up straight away; the band test only settles a reading that
            # is plainly neither
            def read(orientation: int, **kw) -> _Reading:
                straight = straightened(orientation, lines.skew_deg)
                found = orient.PageGeometry(orientation, lines.skew_deg, "page reading")
                return _Reading(found, straight, *read_sheet(straight, resolution, engine, options, **kw))

            try:
                reading = read(0, abandon_if=orient.page_reads_turned_over)
            except ReadingAbandoned:
                reading = read(180)
            if orient.page_reads_upright(reading.words):
                return reading
            found = orient.measure(image, resolution, engine, mask=ink, lines=lines)
            if found.orientation == reading.found.orientation:
                return reading._replace(found=found)
            return read(found.orientation)._replace(found=found)
        # a page on its side is about as often turned one way as the other: the band test decides
        # before the page is straightened, once
        found = orient.measure(image, resolution, engine, mask=ink, lines=lines)
        straight = straightened(found.orientation, found.skew_deg)
        return _Reading(found, straight, *read_sheet(straight, resolution, engine, options))

    lines = orient.text_lines(ink, resolution)
    reading = read_along(lines)
    if orient.page_reads_down(reading.words):
        # its words came out taller than wide: the lines run down the page as straightened, so
        # the line axis was wrong, whatever misled it. The other axis is kept when its reading
        # runs across the page; out of time, the page keeps its first reading rather than be lost
        try:
            other = read_along(orient.text_lines(ink, resolution, likely=90 - lines.likely))
        except PageTimeUp:
            other = None
        if other is not None and orient.page_reads_across(other.words):
            reading = other
    found, straight, words, flags = reading
    confidence = round(float(np.mean([w["conf"] for w in words])), 2) if words else 0.0
    if "blank" not in flags and quality.is_low_confidence(confidence, len(words)):
        flags.append("low_confidence")
    placement = straight.placement
    if not placement.skew_deg and placement.sheet == (0, 0, *placement.size):
        placement = None  # the turned scan is the archive page as it is
    return {
        "image": geometry.quarter_turn(image, found.orientation),
        "placement": placement,
        "orientation": int(found.orientation) % 360,
        "skew_deg": round(float(straight.skew_deg), 3),
        "words": words,
        "text": recognise.words_to_text(words),
        "confidence": confidence,
        "flags": flags,
        "review": review.lines_to_review(words),
    }


def black_text_marks(image: Image.Image, resolution: float, ink: np.ndarray) -> np.ndarray:
    """``quality.mark_stats`` of the scan's black ink (``cleanup.black_ink_mask``; ``ink``: its
    ``cleanup.ink_gray_mask``), what tells a page with text from a blank one. On a colour page of
    few marks, only those apart from coloured ink count (``cleanup.marks_apart_from_colour``): pieces of
    a signature washed grey where it crosses a seal made a page of only those two a page of text,
    turned by whatever its reading found."""
    mask = cleanup.black_ink_mask(image, resolution, ink=ink)
    marks = quality.mark_stats(mask, resolution)
    if image.mode == "RGB" and len(marks) < quality.NEAR_BLANK_MARKS:
        marks = cleanup.marks_apart_from_colour(image, mask, marks, resolution)
    return marks


def colour_text_gray(image: Image.Image, resolution: float, black_marks: int,
                     border: np.ndarray | None = None) -> Image.Image | None:
    """The grey copy of an RGB scan to read when its text is in coloured ink
    (``quality.written_in_colour``; ``cleanup.colour_text_gray``), else None. Only a page with
    fewer than ``quality.FEW_BLACK_MARKS`` black marks is looked at again. ``border``: its
    ``cleanup.dark_border_mask`` when the caller has it."""
    if image.mode != "RGB" or black_marks >= quality.FEW_BLACK_MARKS:
        return None
    gray, ink, coloured = coloured_ink(image, resolution, border)
    if coloured < quality.COLOUR_TEXT_SHARE:  # what settles most pages, before the marks are counted
        return None
    marks = quality.mark_stats(ink, resolution)
    return Image.fromarray(gray) if quality.written_in_colour(coloured, marks, gray.shape) else None


def coloured_ink(image: Image.Image, resolution: float,
                 border: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Of an RGB scan: its ``cleanup.colour_text_gray``, the mask of its ink other than red
    (``cleanup.unred_ink``) and the share of that ink's pixels that are coloured. ``border``: its
    ``cleanup.dark_border_mask`` when the caller has it."""
    if border is None:
        border = cleanup.dark_border_mask(cleanup.to_gray(image), resolution)
    gray = cleanup.colour_text_gray(image)
    ink, coloured = cleanup.unred_ink(image, resolution, gray, border)
    return gray, ink, coloured


def _given_colour(result: dict, image: Image.Image, border: np.ndarray) -> dict:
    """The result of a page read from its grey copy, given back the colour scan as its image (the
    same size; its placement painted with the colour paper)."""
    placement = result["placement"]
    if placement is not None:
        placement = replace(placement, paper=cleanup.paper_colour(image, outside=border))
    return {**result, "image": geometry.quarter_turn(image, result["orientation"]), "placement": placement}


def read_sheet(straight: Straightened, resolution: float, engine: OcrEngine,
               options: OcrOptions = DEFAULT_OPTIONS, abandon_if=None) -> tuple[list[dict], list[str]]:
    """The words of a straightened page, in its archive image's pixels, and the flags read from
    its image (no words on a page flagged blank). ``abandon_if``: given to the engine's reading
    of the page (``OcrEngine.read``), which may then raise ReadingAbandoned."""
    ocr_gray, ink_with_rules = cleanup.ocr_copy(straight.sheet, resolution, remove_lines=options.remove_lines,
                                                level=INK_LEVEL)
    flags = quality.page_flags_before_ocr(cleanup.to_gray(straight.sheet), ocr_gray < INK_LEVEL, resolution)
    if "blank" in flags:
        return [], flags
    read = _read_words(ocr_gray, ink_with_rules, resolution, engine, options, abandon_if)
    return _moved(read, straight.dx, straight.dy, *straight.placement.size), flags


class _Reading(NamedTuple):
    found: orient.PageGeometry
    straight: Straightened
    words: list[dict]
    flags: list[str]


@dataclass(frozen=True)
class Placement:
    """How the scan, turned by its quarter turn, makes the archive page of ``size`` pixels: turned
    clockwise by ``skew_deg`` about its centre, which lands on ``centre``; seen only inside
    ``sheet`` (x0, y0, x1, y1, in page pixels; it may reach past the page); everything else painted
    ``paper`` (in the scan's mode). The PDF draws the scan so, without resampling it
    (``pipeline.pdfa``); ``archive_image`` renders the same page as pixels."""
    size: tuple[int, int]
    skew_deg: float
    centre: tuple[float, float]
    sheet: tuple[int, int, int, int]
    paper: int | tuple[int, ...]

    def resized(self, size: tuple[int, int]) -> Placement:
        """The same placement for the image and the page resized to ``size`` (a thumbnail)."""
        fx, fy = size[0] / self.size[0], size[1] / self.size[1]
        x0, y0, x1, y1 = self.sheet
        return Placement(size, self.skew_deg, (self.centre[0] * fx, self.centre[1] * fy),
                         (round(x0 * fx), round(y0 * fy), round(x1 * fx), round(y1 * fy)), self.paper)

    def to_json(self) -> dict:
        return {"size": list(self.size), "skewDeg": self.skew_deg, "centre": list(self.centre),
                "sheet": list(self.sheet), "paper": self.paper if isinstance(self.paper, int) else list(self.paper)}

    @classmethod
    def from_json(cls, d: dict) -> Placement:
        paper = d["paper"]
        return cls((int(d["size"][0]), int(d["size"][1])), float(d["skewDeg"]),
                   (float(d["centre"][0]), float(d["centre"][1])), tuple(int(v) for v in d["sheet"]),
                   paper if isinstance(paper, int) else tuple(int(v) for v in paper))


def archive_image(turned: Image.Image, placement: Placement | None) -> Image.Image:
    """The archive page as pixels: ``turned`` (the scan, its quarter turn undone) placed as
    ``placement`` says, deskewed by a bicubic rotation (nearest neighbour for a bitonal scan); the
    image itself when there is nothing to place."""
    if placement is None:
        return turned
    grown = geometry.straighten(turned, placement.skew_deg, placement.paper, keep_size=False) \
        if placement.skew_deg else turned
    left = round(grown.width / 2 - placement.centre[0])
    top = round(grown.height / 2 - placement.centre[1])
    x0, y0, x1, y1 = placement.sheet
    sheet = grown.crop((x0 + left, y0 + top, x1 + left, y1 + top))
    return cleanup.on_canvas(sheet, placement.size, (x0, y0), placement.paper)


@dataclass(frozen=True)
class Straightened:
    """A page turned upright and deskewed: ``sheet``, the grey page cropped to the paper (what is
    read: ``cleanup.ink_gray``, in which seals and blue ink are pale), and ``placement``, how the
    scan makes the archive page; a point of the sheet is at (x + dx, y + dy) on the archive page."""
    sheet: Image.Image
    placement: Placement

    @property
    def dx(self) -> int:
        return self.placement.sheet[0]

    @property
    def dy(self) -> int:
        return self.placement.sheet[1]

    @property
    def skew_deg(self) -> float:
        """The small angle undone: 0 when the lines were within geometry.MIN_DESKEW_DEG of level."""
        return self.placement.skew_deg


def straighten(image: Image.Image, resolution: float, orientation: int, skew_deg: float,
               border: np.ndarray | None = None, gray: np.ndarray | None = None) -> Straightened:
    """Turn the grey ``image`` (``cleanup.ink_gray``) by ``orientation`` (a quarter turn) and
    ``skew_deg`` (none under ``geometry.MIN_DESKEW_DEG``) on a canvas grown so that nothing is cut,
    then find the sheet. On a scan with a black bed around the sheet, the corners the rotation adds
    are filled like the bed, so that the sheet is the one bright rectangle left. Only this grey copy
    is resampled: the colour scan is placed on the archive page as it is (``Placement``).
    ``border``, ``gray``: the scan's ``cleanup.dark_border_mask`` and ``cleanup.ink_gray`` when the
    caller has them already."""
    gray = cleanup.ink_gray(image) if gray is None else gray
    border = cleanup.dark_border_mask(cleanup.to_gray(image), resolution) if border is None else border
    bed = cleanup.border_colour(image, resolution, border)
    paper = cleanup.paper_colour(image, outside=border)  # not a bed's or a lid shadow's
    bed_or_paper = bed if bed is not None else paper
    if image.mode == "1":
        fill = 255 * bed_or_paper
    else:  # the colour as the grey copy has it
        fill = int(cleanup.ink_gray(Image.new(image.mode, (1, 1), bed_or_paper))[0, 0])
    undone = geometry.deskew_angle(skew_deg)
    resample = Image.Resampling.NEAREST if image.mode == "1" else Image.Resampling.BICUBIC
    grown = geometry.straighten(Image.fromarray(gray), orientation + undone, fill, keep_size=False, resample=resample)
    find_sheet = cleanup.paper_box if bed is not None else cleanup.shadow_box
    box = find_sheet(np.asarray(grown), resolution) or (0, 0, *grown.size)
    sheet = grown.crop(box)
    width, height = image.size if orientation % 180 == 0 else image.size[::-1]
    left, top = (grown.width - width) // 2, (grown.height - height) // 2
    placement = Placement((width, height), undone, (grown.width / 2 - left, grown.height / 2 - top),
                          (box[0] - left, box[1] - top, box[2] - left, box[3] - top), paper)
    return Straightened(sheet, placement)


def _moved(words: list[dict], dx: int, dy: int, width: int, height: int) -> list[dict]:
    """Words read on the sheet, in the archive image's pixels: moved by (dx, dy), clipped to the
    image; a word wholly outside it (in a corner the kept canvas cuts) is dropped."""
    moved = []
    for w in words:
        x0, x1 = max(0, int(w["x0"]) + dx), min(width, int(w["x1"]) + dx)
        y0, y1 = max(0, int(w["y0"]) + dy), min(height, int(w["y1"]) + dy)
        if x0 < x1 and y0 < y1:
            moved.append(_plain_word({**w, "x0": x0, "y0": y0, "x1": x1, "y1": y1}))
    return moved


def _plain_word(word: dict) -> dict:
    """A word with plain Python values only (numpy integers creep in from the grid geometry); the
    other recogniser's reading of its stretch (``alt``, ocr.vote) is kept for the review."""
    plain = {"text": str(word["text"]), "x0": int(word["x0"]), "y0": int(word["y0"]), "x1": int(word["x1"]),
             "y1": int(word["y1"]), "conf": float(word["conf"]), "line": int(word["line"])}
    if word.get("alt") is not None:
        plain["alt"] = str(word["alt"])
    return plain


def _read_words(ocr_gray: np.ndarray, ink_with_rules: np.ndarray, resolution: float, engine: OcrEngine,
                options: OcrOptions, abandon_if=None) -> list[dict]:
    scale = options.target_dpi / resolution if resolution < options.upscale_below_dpi else 1.0
    grid = layout.find_grid(ink_with_rules, resolution) if options.tables else None
    if grid is None:
        words = _recognise(ocr_gray, resolution, engine, options, scale, options.psm, abandon_if=abandon_if)
        return layout.order_columns(words) if options.columns else words
    # a table is read cell by cell: on the whole page tesseract joins the last word of one cell
    # with the first of the next ("phòngUBND") and drops whole cells now and then
    outside = ocr_gray.copy()
    outside[grid.ys[0]:grid.ys[-1] + 1, grid.xs[0]:grid.xs[-1] + 1] = 255
    words = (_recognise(outside, resolution, engine, options, scale, options.psm, abandon_if=abandon_if)
             if (outside < INK_LEVEL).any() else [])
    short_cells, short_words = _read_short_cells(ocr_gray, grid, resolution, engine, options, scale)
    cell_words = _read_cells(ocr_gray, grid, resolution, engine, options, scale, skip=short_cells)
    return layout.order_by_cells(words + short_words + cell_words, grid)


def _recognise(gray: np.ndarray, resolution: float, engine: OcrEngine, options: OcrOptions, scale: float,
               psm: int, lang: str | None = None, abandon_if=None) -> list[dict]:
    if scale != 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    if options.binarise:
        _, gray = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return engine.read(gray, psm=psm, dpi=int(round(resolution * scale)), scale=scale, lang=lang, abandon_if=abandon_if)


def _read_short_cells(ocr_gray: np.ndarray, grid: layout.Grid, resolution: float, engine: OcrEngine,
                      options: OcrOptions, scale: float) -> tuple[set, list[dict]]:
    """Read the cells holding one short word (row numbers, codes: at most 10 mm wide) side by side as one text line.

    Alone in a cell, a "7" is dropped or misread by tesseract's page layout; in a line of such
    cells, one tesseract call reads them all as words (a line longer than tesseract takes, in
    several).  Returns the cells read and their words."""
    mm = resolution / 25.4
    pieces, cells = [], []
    for index, (x0, y0, x1, y1) in enumerate(grid.cells()):
        inset = max(2, int(0.4 * mm))
        ink = ocr_gray[y0 + inset:y1 - inset, x0 + inset:x1 - inset] < INK_LEVEL
        if ink.sum() < (0.3 * mm) ** 2:
            continue
        ys, xs = np.nonzero(ink)
        if ys.max() - ys.min() > 8 * mm or xs.max() - xs.min() > 10 * mm:
            continue
        top, left = y0 + inset + ys.min(), x0 + inset + xs.min()
        pieces.append(ocr_gray[top:y0 + inset + ys.max() + 1, left:x0 + inset + xs.max() + 1])
        cells.append(((index // (len(grid.xs) - 1), index % (len(grid.xs) - 1)), left, top))
    if not pieces:
        return set(), []
    gap = int(8 * mm)
    found: dict[int, list[dict]] = {}
    for batch in _side_by_side([p.shape[1] for p in pieces], gap, scale):
        read = _read_pieces_in_a_line([pieces[k] for k in batch], gap, int(3 * mm), resolution, engine, options, scale)
        found.update((batch[k], words) for k, words in read.items())
    placed = []
    for k, words in sorted(found.items()):
        _, left, top = cells[k]
        placed += [dict(word, x0=word["x0"] + left, x1=word["x1"] + left, y0=word["y0"] + top, y1=word["y1"] + top,
                        line=200_000 + k) for word in words]
    return {c[0] for c in cells}, placed


def _read_pieces_in_a_line(pieces: list[np.ndarray], gap: int, pad: int, resolution: float, engine: OcrEngine,
                           options: OcrOptions, scale: float) -> dict[int, list[dict]]:
    """The words of each piece (by its index), read with the others as one text line, in the piece's pixels."""
    height = max(p.shape[0] for p in pieces) + 2 * pad
    line = np.full((height, sum(p.shape[1] + gap for p in pieces) + gap), 255, np.uint8)
    starts, x = [], gap
    for piece in pieces:
        top = (height - piece.shape[0]) // 2  # centred: baselines of digits and letters roughly agree
        line[top:top + piece.shape[0], x:x + piece.shape[1]] = piece
        starts.append((x, top))
        x += piece.shape[1] + gap
    piece_starts = [x for x, _ in starts]

    def by_piece(words: list[dict]) -> dict[int, list[dict]]:
        grouped: dict[int, list[dict]] = {}
        for word in words:
            k = int(np.searchsorted(piece_starts, (word["x0"] + word["x1"]) / 2)) - 1
            if k >= 0:
                grouped.setdefault(k, []).append(word)
        return grouped

    found = by_piece(_recognise(line, resolution, engine, options, scale, psm=7))
    if engine.has_language("eng"):
        # the Vietnamese model reads lone numbers out of context as words or wrong numbers
        # ("8" -> "S", "11" -> "II" or "21"); tesseract's English model, installed with tesseract
        # itself, reads them right: where it sees a number, its reading wins
        english = by_piece(_recognise(line, resolution, engine, options, scale, psm=7, lang="eng"))
        for k, words in english.items():
            vietnamese = " ".join(w["text"] for w in found.get(k, []))
            if all(NUMBER.fullmatch(w["text"]) for w in words) or (
                    ASCII_CAPS.fullmatch(vietnamese) and all(ASCII_CAPS.fullmatch(w["text"]) for w in words)):
                found[k] = words
    return {k: [dict(word, x0=word["x0"] - starts[k][0], x1=word["x1"] - starts[k][0],
                     y0=word["y0"] - starts[k][1], y1=word["y1"] - starts[k][1]) for word in words]
            for k, words in found.items()}


def _side_by_side(lengths: list[int], gap: int, scale: float) -> list[list[int]]:
    """Indices of pieces of these lengths laid end to end, ``gap`` before each and after the last,
    in runs as long as tesseract takes once enlarged by ``scale`` (it refuses an image over
    32,767 pixels a side: a dense table's cells stacked in one strip went past it). A piece longer
    than that on its own (no cell of a page is) makes a run of its own."""
    if not lengths:
        return []
    limit = STRIP_MAX_SIDE / scale
    runs: list[list[int]] = [[]]
    length = gap
    for k, n in enumerate(lengths):
        if runs[-1] and length + n + gap > limit:
            runs.append([])
            length = gap
        runs[-1].append(k)
        length += n + gap
    return runs


def _read_cells(ocr_gray: np.ndarray, grid: layout.Grid, resolution: float, engine: OcrEngine, options: OcrOptions,
                scale: float, skip: set) -> list[dict]:
    """Read the inked cells of a ruled table (but those in ``skip``) each on its own: the cells are
    stacked into one strip (several, past what tesseract takes) and read as a uniform block of
    text in one tesseract call each."""
    inset = max(2, round(0.5 * resolution / 25.4))
    crops, origins = [], []
    for index, (x0, y0, x1, y1) in enumerate(grid.cells()):
        if divmod(index, len(grid.xs) - 1) in skip or x1 - x0 <= 2 * inset or y1 - y0 <= 2 * inset:
            continue
        crop = ocr_gray[y0 + inset:y1 - inset, x0 + inset:x1 - inset]
        if (crop < INK_LEVEL).sum() < (resolution / 60) ** 2:
            continue
        crops.append(crop)
        origins.append((x0 + inset, y0 + inset))
    gap = int(resolution * 0.2)
    placed = []
    for batch in _side_by_side([c.shape[0] for c in crops], gap, scale):
        width = max(crops[k].shape[1] for k in batch) + 2 * gap
        strip = np.full((sum(crops[k].shape[0] + gap for k in batch) + gap, width), 255, np.uint8)
        offsets, y = [], gap
        for k in batch:
            strip[y:y + crops[k].shape[0], gap:gap + crops[k].shape[1]] = crops[k]
            offsets.append(y)
            y += crops[k].shape[0] + gap
        for word in _recognise(strip, resolution, engine, options, scale, psm=6):
            n = int(np.searchsorted(offsets, (word["y0"] + word["y1"]) / 2)) - 1
            if n < 0:
                continue
            dx, dy = origins[batch[n]][0] - gap, origins[batch[n]][1] - offsets[n]
            # line ids repeat from run to run, but a cell lies in one run: order_by_cells groups by cell
            placed.append(dict(word, x0=word["x0"] + dx, x1=word["x1"] + dx, y0=word["y0"] + dy, y1=word["y1"] + dy,
                               line=100_000 + word["line"]))
    return placed
