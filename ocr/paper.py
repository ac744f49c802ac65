"""The physical size of a scanned page: which resolution turns its pixels into paper.

A scan's header may state no resolution, or one that cannot be true of a paper page (phones
and many exports write 72 or 96 dpi). ``page_resolution`` keeps the header's resolution when
it is plausible; otherwise it takes the resolution that makes the pixel size a standard
paper size (the first in ``PAPERS`` whose proportions match within ``ASPECT_TOLERANCE``:
A4 first, so an A3, A4 or A5 sheet, which share their proportions, counts as the A4 most
dossiers are on); otherwise ``DEFAULT_DPI``, so receipts and odd sizes keep their own
proportions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MM_PER_INCH = 25.4
# (name, short side mm, long side mm), most likely first
PAPERS = (
    ("A4", 210.0, 297.0),
    ("Letter", 215.9, 279.4),
    ("Legal", 215.9, 355.6),
    ("A5", 148.0, 210.0),
    ("B5", 176.0, 250.0),
    ("A3", 297.0, 420.0),
    ("ID card", 53.98, 85.6),
)
ASPECT_TOLERANCE = 0.03
DEFAULT_DPI = 300.0
MIN_DPI, MAX_DPI = 100.0, 1200.0
# a stated resolution is plausible when the page's long side is this long (ID card to A3)
MIN_LONG_SIDE_IN, MAX_LONG_SIDE_IN = 3.0, 17.5


@dataclass(frozen=True)
class Resolution:
    dpi: float
    source: str          # "header", "paper-size" or "default"
    paper: str | None = None  # the standard size matched, for "paper-size"


def page_resolution(size: tuple[int, int], stated: tuple[float, float] | None) -> Resolution:
    """The resolution of a scan of ``size`` pixels whose header says ``stated`` (None: nothing)."""
    long_px, short_px = max(size), min(size)
    dpi = float((stated or (0, 0))[0] or 0)
    if MIN_DPI <= dpi <= MAX_DPI and MIN_LONG_SIDE_IN <= long_px / dpi <= MAX_LONG_SIDE_IN:
        return Resolution(dpi, "header")
    aspect = short_px / long_px if long_px else 0.0
    for name, short_mm, long_mm in PAPERS:
        if abs(aspect - short_mm / long_mm) <= ASPECT_TOLERANCE * short_mm / long_mm:
            # fitted by area, so both sides are off by half the proportion mismatch at most
            fitted = math.sqrt(long_px * short_px / (long_mm * short_mm)) * MM_PER_INCH
            return Resolution(round(fitted, 2), "paper-size", name)
    return Resolution(DEFAULT_DPI, "default")
