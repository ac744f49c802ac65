"""What a page of a document takes from the pages around it.

The page stage reads every page alone. A page with no text of its own (flagged ``blank``: an
empty back page, or one carrying only a seal or a signature) has no lines to tell its way up,
so the page stage keeps it exactly as scanned. In a stack fed to the scanner sideways it would
then stay sideways between pages turned upright, and an officer would have to turn it by hand.

``turns`` gives such a page the quarter turn of the nearest page with text (the one before on
a tie: the front of its sheet) when that page was found turned (on its side or upside down)
and its scan has the same paper size: the same stack through the same scanner. A blank page
next to upright pages, or of another paper size (a landscape form, a receipt), stays as
scanned. On its side, the page then faces the same way as the pages around it, but a page with
only a seal is not always the right way up: a duplex scanner shows the back of a sheet fed
sideways turned the other way when the paper was printed to flip on its long edge, and nothing
on a seal tells which happened. Upside down, front and back come out turned alike through a
simplex feeder, and through a duplex one on paper printed to flip on its long edge (the usual).

``turned_image`` and ``turned_result`` apply a turn to a finished page: its image is turned
exactly (a bitonal page stays lossless; a JPEG is encoded again at the page's quality and
chroma, full chroma for a 4:2:2 page turned on its side, once, on a page with no text), and its
size, resolution and orientation follow.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, replace
from typing import Sequence

from PIL import Image

from ocr.geometry import quarter_turn

from .models import PageResult
from .pages import FULL_CHROMA, encode_image, scan_subsampling

SAME_PAPER = 0.03  # relative difference in width and in height (inches) of one paper size


@dataclass(frozen=True)
class Sheet:
    """What ``turns`` needs to know of a page."""

    blank: bool                   # no text: kept as scanned by the page stage, no way up of its own
    orientation: int              # the quarter turn found on the page (0 for a blank one)
    inches: tuple[float, float]   # the page's width and height, its quarter turn undone

    @classmethod
    def of(cls, result: PageResult) -> "Sheet":
        return cls(_kept_as_scanned(result), result.orientation if result.ok else 0,
                   (result.width / result.dpi[0], result.height / result.dpi[1]) if result.ok else (0.0, 0.0))


def turns(sheets: Sequence[Sheet]) -> list[int]:
    """The quarter turn (counter-clockwise degrees of content, as ``orientation``) each page of
    one document takes from its neighbours: 0 for every page but a blank one whose nearest page
    with text (the one before on a tie) was found turned, at the same paper size."""
    text = [not s.blank and any(s.inches) for s in sheets]
    before, after = [None] * len(sheets), [None] * len(sheets)
    for i in range(1, len(sheets)):
        before[i] = i - 1 if text[i - 1] else before[i - 1]
    for i in range(len(sheets) - 2, -1, -1):
        after[i] = i + 1 if text[i + 1] else after[i + 1]
    found = [0] * len(sheets)
    for i, page in enumerate(sheets):
        if not page.blank:
            continue
        near = [j for j in (before[i], after[i]) if j is not None]
        if near:
            other = sheets[min(near, key=lambda j: (abs(j - i), j))]
            if other.orientation and _same_paper(page, other):
                found[i] = other.orientation
    return found


def turned_result(result: PageResult, turn: int) -> PageResult:
    """The finished page's result once its image is turned by ``turn``: size, resolution and
    orientation follow (it has no words to move)."""
    if not turn:
        return result
    side = turn % 180 != 0
    return replace(result, width=result.height if side else result.width, height=result.width if side else result.height,
                   dpi=result.dpi[::-1] if side else result.dpi, orientation=turn)


def turned_image(result: PageResult, image: bytes, turn: int, jpeg_quality: int) -> bytes:
    """The page's encoded image (as the page cache holds it) turned by ``turn``."""
    if not turn:
        return image
    if result.encoding == "flate1":
        scan = Image.frombytes("1", (result.width, result.height), zlib.decompress(image))
    else:
        scan = Image.open(io.BytesIO(image))
    sampling = scan_subsampling(result.encoding, image)
    if sampling == 1 and turn % 180:  # 4:2:2 halves the colour across only: turned, it would go down too
        sampling = FULL_CHROMA
    return encode_image(quarter_turn(scan, turn), jpeg_quality, sampling)[0]


def _kept_as_scanned(page: PageResult) -> bool:
    """The page stage found no black text and kept the scan as it is (``ocr.page.process_page``):
    a page flagged blank only once straightened and read has a turn and placement of its own."""
    return (page.ok and "blank" in page.flags and page.orientation == 0 and page.skew_deg == 0
            and page.placement is None)


def _same_paper(blank: Sheet, other: Sheet) -> bool:
    """Both scans of one paper size, the other compared as scanned (before its quarter turn)."""
    scanned = other.inches[::-1] if other.orientation % 180 else other.inches
    return all(abs(a - b) <= SAME_PAPER * b for a, b in zip(blank.inches, scanned))
