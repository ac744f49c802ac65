"""The visible signature stamp: NĐ 30/2020 Phụ lục I for an organisation's signature on an
electronic copy, top right of page 1, text only (copy type, copying body, signing time in
Vietnam time), Times-style font at 10 pt in black, the font embedded."""
from __future__ import annotations

import io
import logging
import os
import unicodedata
from datetime import datetime

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
STAMP_MARGIN = 18  # points between the stamp and the top and right page edges


class _DropCffRosNotice(logging.Filter):
    """pyHanko warns that a CFF font (TeX Gyre Termes) has no CIDSystemInfo (ROS) and then
    uses Identity, which is right for an embedded subset; keep operators' stderr clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No ROS metadata" not in record.getMessage()


logging.getLogger("pyhanko.pdf_utils.font.opentype").addFilter(_DropCffRosNotice())


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


def page_one_box(pdf: bytes) -> tuple[float, float, float, float]:
    """The visible area (CropBox, else MediaBox, inherited) of page 1, normalised."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        x0, y0, x1, y1 = (float(v) for v in doc.pages[0].cropbox)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _in_memory_font_factory():
    """pyHanko's GlyphAccumulatorFactory opens the font file and never closes it; the
    ResourceWarning that garbage collection emits later can land inside pikepdf's PDF/A
    content check (which records every warning raised while it parses) and fail it.
    This factory hands pyHanko the font's bytes instead of an open file."""
    from dataclasses import dataclass

    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

    @dataclass(frozen=True)
    class InMemoryGlyphAccumulatorFactory(GlyphAccumulatorFactory):
        def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
            with open(self.font_file, "rb") as f:
                handle = io.BytesIO(f.read())
            if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
                obj_stream = writer.prepare_object_stream()
            return GlyphAccumulator(writer=writer, font_handle=handle, font_size=self.font_size,
                                    ot_script_tag=self.ot_script_tag, ot_language_tag=self.ot_language_tag,
                                    writing_direction=self.writing_direction,
                                    bcp47_lang_code=self.bcp47_lang_code, obj_stream=obj_stream)

    return InMemoryGlyphAccumulatorFactory


def _stamp_style(lines: list[str], font: str):
    from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    text = "\n".join(lines).replace("%", "%%")  # stamp text is %-formatted by pyHanko
    return TextStampStyle(
        stamp_text=text,
        text_box_style=TextBoxStyle(
            font=_in_memory_font_factory()(font, font_size=FONT_SIZE, ot_script_tag="latn",
                                         ot_language_tag="VIT ", bcp47_lang_code="vi"),
            font_size=FONT_SIZE, leading=LEADING, border_width=0, text_color=(0, 0, 0),
            box_layout_rule=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MAX,
                                                margins=Margins.uniform(0),
                                                inner_content_scaling=InnerScaling.NO_SCALING)),
        border_width=0,
        background=None,
        inner_content_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MAX,
            margins=Margins.uniform(STAMP_PADDING), inner_content_scaling=InnerScaling.NO_SCALING),
    )
