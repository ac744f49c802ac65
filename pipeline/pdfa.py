"""Two-layer PDF/A-2b: each page is the scan image with invisible OCR text on its words.

``build_pdfa`` is pure: page renders and document metadata in, validated PDF bytes out;
``write_pdfa`` writes the same to a file, taking the pages one at a time from any iterable
(a 100-page document is never held as a list of page images plus the PDF's bytes).
The text layer uses a one-glyph "glyphless" TrueType font (built here with fontTools and
embedded, as PDF/A asks) drawn in text render mode 3 (invisible); codes are Unicode code
points (Identity-H) and a ToUnicode map makes them extractable, so pdftotext and a
viewer's search and selection find the words where they are printed.

Validation is pikepdf's allowlist validator on the bytes written; anything it does not
approve is a PdfaError, never a silent plain PDF.
"""
from __future__ import annotations

import errno
import gc
import importlib
import io
import math
import os
import shutil
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

import pikepdf
from pikepdf import Array, Dictionary, Name, Stream

from .errors import PdfaError

if TYPE_CHECKING:
    from ocr.page import Placement

FLAVOUR = "2b"
GLYPH_ADVANCE = 500  # font units per glyph, unitsPerEm 1000
ASCENT, DESCENT = 800, -200
WORD_GAP = 0.25        # least gap between two words of a line, in font sizes
WORD_MIN_SHARE = 0.6   # a word's glyphs keep at least this share of its box width


@dataclass
class PageRender:
    """One page ready for the PDF: encoded image plus words in page pixels. Without a placement
    the image is the page; with one (``ocr.page.Placement``) the image is drawn as it says, not
    resampled, and its size is the page's."""

    image: bytes
    encoding: str  # "jpeg" (DCTDecode) or "flate1" (1-bit, FlateDecode)
    width: int
    height: int
    dpi: tuple[int, int]
    color_mode: str  # rgb | gray | bitonal
    words: list[dict] = field(default_factory=list)
    placement: Placement | None = None


@dataclass
class DocumentMeta:
    title: str
    doc_id: str
    dossier_code: str
    created: datetime
    language: str = "vi"
    producer: str = "sohoa"
    keywords: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def glyphless_font() -> bytes:
    """A TrueType font whose only real glyph is empty and 500 units wide."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", "glyph"])
    fb.setupCharacterMap({0x20: "glyph"})
    pen = TTGlyphPen(None)
    empty = pen.glyph()
    fb.setupGlyf({".notdef": empty, "glyph": empty})
    fb.setupHorizontalMetrics({".notdef": (GLYPH_ADVANCE, 0), "glyph": (GLYPH_ADVANCE, 0)})
    fb.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    fb.setupNameTable({"familyName": "GlyphLessFont", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=ASCENT, sTypoDescender=DESCENT, usWinAscent=ASCENT, usWinDescent=-DESCENT)
    fb.setupPost()
    out = io.BytesIO()
    fb.save(out)
    return out.getvalue()


def _to_unicode_cmap() -> bytes:
    """Identity code -> Unicode for the BMP, each range within one high byte, no surrogates."""
    highs = [h for h in range(256) if not 0xD8 <= h <= 0xDF]
    lines = ["/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap",
             "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
             "/CMapName /Adobe-Identity-UCS def", "/CMapType 2 def",
             "1 begincodespacerange", "<0000> <FFFF>", "endcodespacerange"]
    for start in range(0, len(highs), 100):
        chunk = highs[start:start + 100]
        lines.append(f"{len(chunk)} beginbfrange")
        lines += [f"<{h:02X}00> <{h:02X}FF> <{h:02X}00>" for h in chunk]
        lines.append("endbfrange")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines).encode("ascii")


def _font(pdf: pikepdf.Pdf) -> pikepdf.Object:
    font_file = Stream(pdf, glyphless_font())
    descriptor = Dictionary(Type=Name.FontDescriptor, FontName=Name("/GlyphLessFont"), Flags=4,
                            FontBBox=Array([0, DESCENT, GLYPH_ADVANCE, ASCENT]), ItalicAngle=0,
                            Ascent=ASCENT, Descent=DESCENT, CapHeight=ASCENT, StemV=80,
                            FontFile2=pdf.make_indirect(font_file))
    # Every CID (a Unicode code point) draws glyph 1, the empty one.
    cid_to_gid = Stream(pdf, zlib.compress(b"\x00\x01" * 65536), Filter=Name.FlateDecode)
    cid_font = Dictionary(Type=Name.Font, Subtype=Name.CIDFontType2, BaseFont=Name("/GlyphLessFont"),
                          CIDSystemInfo=Dictionary(Registry=pikepdf.String("Adobe"),
                                                   Ordering=pikepdf.String("Identity"), Supplement=0),
                          FontDescriptor=pdf.make_indirect(descriptor), DW=GLYPH_ADVANCE,
                          CIDToGIDMap=pdf.make_indirect(cid_to_gid))
    to_unicode = Stream(pdf, zlib.compress(_to_unicode_cmap()), Filter=Name.FlateDecode)
    return pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type0, BaseFont=Name("/GlyphLessFont"),
                                        Encoding=Name("/Identity-H"), DescendantFonts=Array([pdf.make_indirect(cid_font)]),
                                        ToUnicode=pdf.make_indirect(to_unicode)))


def _hex(text: str) -> str:
    return "".join(f"{ord(c):04X}" for c in text if ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF)


def text_layer(words: list[dict], page_height_pt: float, scale: tuple[float, float]) -> str:
    """Content-stream operators drawing each word invisibly over its box.

    Words of one line share the line's height and baseline, so extraction sees one line.
    Between two words of a line there is always a space character *and* a visible gap:
    poppler (pdftotext) drops space characters and breaks words by the gap between glyphs
    (more than a tenth of the font size), while pdfminer and pdf.js also read the space
    itself. Tesseract's boxes of neighbouring words often touch on real scans, so where the
    printed gap is too small each word's glyphs are narrowed from the right (never below
    WORD_MIN_SHARE of the word) to leave WORD_GAP of the font size before the next word, and
    where that is not enough (a one-letter word overlapping the next), the next word starts
    a little later.
    """
    sx, sy = scale
    by_line: dict = {}
    for w in words:
        if w["text"].strip():
            by_line.setdefault(w.get("line", id(w)), []).append(w)
    ops = ["BT", "3 Tr"]
    for line in by_line.values():
        top = min(w["y0"] for w in line)
        bottom = max(w["y1"] for w in line)
        size = max((bottom - top) * sy, 1.0)
        baseline = page_height_pt - bottom * sy - DESCENT / 1000 * size
        gap = WORD_GAP * size
        start = line[0]["x0"] * sx
        for i, w in enumerate(line):
            end = max(w["x1"] * sx, start + 0.5)
            nxt = line[i + 1]["x0"] * sx if i + 1 < len(line) else None
            if nxt is not None and nxt - end < gap:
                end = max(start + WORD_MIN_SHARE * (end - start), nxt - gap)
            ops.append(_stretched(w["text"], start, end, baseline, size))
            if nxt is not None:
                # where even the narrowed word leaves too little room, the next one starts later
                following = max(nxt, end + gap)
                ops.append(_stretched(" ", end, following, baseline, size))
                start = following
    ops.append("ET")
    return "\n".join(ops)


def _stretched(text: str, left: float, right: float, baseline: float, size: float) -> str:
    natural = len(text) * GLYPH_ADVANCE / 1000 * size
    return (f"/F0 {size:.2f} Tf {100 * (right - left) / natural:.2f} Tz "
            f"1 0 0 1 {left:.2f} {baseline:.2f} Tm <{_hex(text)}> Tj")


def _image_xobject(pdf: pikepdf.Pdf, page: PageRender) -> Stream:
    colour = Name.DeviceRGB if page.color_mode == "rgb" else Name.DeviceGray
    if page.encoding == "jpeg":
        return Stream(pdf, page.image, Type=Name.XObject, Subtype=Name.Image, Width=page.width,
                      Height=page.height, ColorSpace=colour, BitsPerComponent=8, Filter=Name.DCTDecode)
    if page.encoding == "flate1":
        return Stream(pdf, page.image, Type=Name.XObject, Subtype=Name.Image, Width=page.width,
                      Height=page.height, ColorSpace=Name.DeviceGray, BitsPerComponent=1, Filter=Name.FlateDecode)
    raise ValueError(f"unknown page image encoding {page.encoding!r}")


def _add_page(pdf: pikepdf.Pdf, page: PageRender, font: pikepdf.Object) -> None:
    sx, sy = 72 / page.dpi[0], 72 / page.dpi[1]
    w_pt, h_pt = page.width * sx, page.height * sy
    content = image_drawing(page, (sx, sy)) + "\n" + text_layer(page.words, h_pt, (sx, sy))
    pdf.add_blank_page(page_size=(w_pt, h_pt))
    pg = pdf.pages[-1]
    pg.obj.Resources = Dictionary(XObject=Dictionary(Im0=pdf.make_indirect(_image_xobject(pdf, page))),
                                  Font=Dictionary(F0=font))
    pg.obj.Contents = pdf.make_indirect(Stream(pdf, zlib.compress(content.encode("ascii")), Filter=Name.FlateDecode))


def image_drawing(page: PageRender, scale: tuple[float, float]) -> str:
    """The content-stream operators that draw the page's image (``PageRender``), ``scale`` points
    per pixel: the scan over the whole page, or the page painted paper, clipped to the sheet and
    the scan drawn turned by its skew. A viewer then resamples the scan once, at the resolution it
    shows the page, instead of sohoa resampling it once more for good."""
    sx, sy = scale
    w_pt, h_pt = page.width * sx, page.height * sy
    if page.placement is None:
        return f"q {w_pt:.3f} 0 0 {h_pt:.3f} 0 0 cm /Im0 Do Q"
    placed = page.placement
    paper = placed.paper
    if isinstance(paper, int):
        fill = f"{paper / (1 if page.color_mode == 'bitonal' else 255):.4f} g"
    else:
        fill = " ".join(f"{v / 255:.4f}" for v in paper[:3]) + " rg"
    x0, y0, x1, y1 = placed.sheet
    cx, cy = placed.centre
    angle = math.radians(placed.skew_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    return "\n".join([
        f"q {fill} 0 0 {w_pt:.3f} {h_pt:.3f} re f",
        f"{x0 * sx:.3f} {h_pt - y1 * sy:.3f} {(x1 - x0) * sx:.3f} {(y1 - y0) * sy:.3f} re W n",
        # clockwise by the skew about the image's centre, as the words' page pixels were turned:
        # the turn is made in pixels, so a scan of two resolutions (a fax: 204 x 98 dpi) is
        # scaled to pixels, turned and scaled back (PDF's y axis points up)
        f"1 0 0 1 {cx * sx:.3f} {h_pt - cy * sy:.3f} cm "
        f"{cos:.8f} {-sin * sy / sx:.8f} {sin * sx / sy:.8f} {cos:.8f} 0 0 cm",
        f"{w_pt:.3f} 0 0 {h_pt:.3f} {-w_pt / 2:.3f} {-h_pt / 2:.3f} cm /Im0 Do Q"])


def build_pdfa(pages: list[PageRender], meta: DocumentMeta) -> bytes:
    """The document's PDF/A-2b bytes, validated; PdfaError if validation fails."""
    out = io.BytesIO()
    _save(_document(pages, meta), meta, out)
    return out.getvalue()


def write_pdfa(pages: Iterable[PageRender], meta: DocumentMeta, path: Path) -> None:
    """The document's PDF/A-2b written to ``path``, validated; PdfaError if validation fails
    (then nothing is at ``path``). Each page's image is copied into the document as it comes,
    so a generator of pages holds one page's image at a time besides the document."""
    _save(_document(pages, meta), meta, Path(path))


def _document(pages: Iterable[PageRender], meta: DocumentMeta) -> pikepdf.Pdf:
    pdf = pikepdf.new()
    font = _font(pdf)
    for page in pages:
        _add_page(pdf, page, font)
    if len(pdf.pages) == 0:
        raise PdfaError("Tài liệu không có trang nào (document has no pages)")
    with pdf.open_metadata(set_pikepdf_as_editor=False) as xmp:
        xmp["dc:title"] = meta.title
        xmp["dc:language"] = [meta.language]
        xmp["dc:identifier"] = meta.doc_id
        xmp["dc:source"] = meta.dossier_code
        xmp["dc:subject"] = [meta.dossier_code, meta.doc_id, *meta.keywords]
        xmp["dc:description"] = f"Hồ sơ {meta.dossier_code}, tài liệu {meta.doc_id} (bản số hóa)"
        xmp["pdf:Keywords"] = "; ".join([meta.dossier_code, meta.doc_id, *meta.keywords])
        xmp["pdf:Producer"] = meta.producer
        xmp["xmp:CreatorTool"] = meta.producer
        xmp["xmp:CreateDate"] = meta.created.isoformat()
        xmp["xmp:ModifyDate"] = meta.created.isoformat()
    return pdf


def _save(pdf: pikepdf.Pdf, meta: DocumentMeta, out: BinaryIO | Path) -> None:
    """Written and validated by pikepdf (through a temporary file, whose bytes it copies into a
    stream, or which it moves to a path)."""
    import pikepdf.pdfa

    try:
        with pdf, collector_paused():
            pikepdf.pdfa.prepare(pdf, FLAVOUR)
            _metadata_date(pdf, meta.created)
            if isinstance(out, Path):
                _room_for(pdf, out.parent)
            pikepdf.pdfa.save(pdf, out, FLAVOUR, repair=False, deterministic_id=True)
    except pikepdf.pdfa.PdfaError as e:
        findings = "; ".join(str(f) for f in list(e.report.findings)[:5]) if getattr(e, "report", None) else str(e)
        raise PdfaError(f"Tệp PDF/A-2b của {meta.doc_id} không hợp lệ (PDF/A validation failed): {findings}") from None


def _room_for(pdf: pikepdf.Pdf, folder: Path) -> None:
    """OSError (ENOSPC) when ``folder``'s disk has no room for the document, before qpdf writes it:
    a write of qpdf's that fails aborts the whole process (a worker's pool process, ``sohoa
    ingest`` itself: a full temporary folder, the bulk review), where Python's own writes raise.
    Its streams' encoded bytes and a tenth more: what the file holds, and a margin."""
    needed = sum(len(o.read_raw_bytes()) for o in pdf.objects if isinstance(o, Stream)) * 11 // 10 + (1 << 20)
    if shutil.disk_usage(folder).free < needed:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))


def _metadata_date(pdf: pikepdf.Pdf, when: datetime) -> None:
    """xmp:MetadataDate and xmp:ModifyDate in the document's own time (Vietnam time), like its
    other dates; pikepdf stamps both with the UTC time when it prepares the metadata."""
    import re

    stamp = when.isoformat()
    xml = pdf.Root.Metadata.read_bytes().decode("utf-8")
    for name in ("xmp:MetadataDate", "xmp:ModifyDate"):
        xml = re.sub(rf"(<{name}>)[^<]*(</{name}>)", rf"\g<1>{stamp}\g<2>", xml)
        xml = re.sub(rf'({name}=")[^"]*(")', rf"\g<1>{stamp}\g<2>", xml)
    pdf.Root.Metadata.write(xml.encode("utf-8"))
    offset = when.strftime("%z")  # the Info dictionary's date, from which a save refreshes the XMP one
    pdf.docinfo["/ModDate"] = when.strftime("D:%Y%m%d%H%M%S") + f"{offset[:3]}'{offset[3:]}'"


_PAUSES = threading.Lock()
_paused = 0              # pauses open now
_resume = False          # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while pikepdf checks PDF/A. Its validator records every
    warning raised while it parses content, so a ResourceWarning from some unrelated object
    finalised by a collection at that moment (an unclosed file anywhere in the process) would
    fail the check. Pausing costs nothing; a full collection before each check, as before, took
    0.1 s once the whole pipeline was imported, four times per document. Nested and threaded
    uses share one pause, which ends with the last."""
    global _paused, _resume
    with _PAUSES:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _PAUSES:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


def load_checker() -> None:
    """Import pikepdf's PDF/A writer and checker now (with fontTools and jsonschema, ~0.2 s):
    it is imported when first used otherwise, so that a command that builds no document
    does not wait for it."""
    importlib.import_module("pikepdf.pdfa")


def validate(data: bytes | Path) -> tuple[bool, list[str]]:
    """Validate PDF/A-2b bytes (or a file: read as the check goes, not held whole); (passed, findings)."""
    import pikepdf.pdfa

    with collector_paused():
        report = pikepdf.pdfa.validate_written(data if isinstance(data, Path) else io.BytesIO(data), FLAVOUR)
    return report.passed, [str(f) for f in report.findings]
