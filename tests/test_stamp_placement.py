"""Where the visible NĐ 30 stamp goes: on free paper at the top right of page 1, never on
ink (text, the national motto, red seals, blue signatures, an earlier stamp or signature),
and in a white band above the scan only when the top of the page has no room.

Fixtures are made here: pages rendered by tests/pagegen.py, PDF/A built as the ingest
builds it (pipeline.pages.encode_image, pipeline.pdfa.build_pdfa), signed with the
development key. Ink is judged independently of sohoa's mask: grey < 160 or a colour whose
channels differ by more than 60."""
from __future__ import annotations

import functools
import io
from datetime import datetime, timezone

import numpy as np
import pikepdf
import pikepdf.pdfa
import pytest
from PIL import Image, ImageDraw

from pipeline.config import SigningSettings
from pipeline.pages import encode_image
from pipeline.pdfa import DocumentMeta, PageRender, build_pdfa
from pipeline.signing import appearance, keys, pades, validation
from pipeline.signing.pdfa_signed import pdfa_check
from tests.pagegen import PageSpec, render_page

AGENCY = "Ủy ban nhân dân phường Hoàn Kiếm, thành phố Hà Nội"
DPI = 300
MM = DPI / 25.4
A4 = (595.0, 842.0)


# --------------------------------------------------------------------------- fixtures

def independent_ink(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB")).astype(np.int16)
    grey = np.asarray(image.convert("L"))
    return (grey < 160) | (rgb.max(axis=2) - rgb.min(axis=2) > 60)


def paper_colour(image: Image.Image):
    pixels = np.asarray(image)[::8, ::8]  # most of a page is paper
    value = np.median(pixels.reshape(-1, *pixels.shape[2:]), axis=0)
    return tuple(int(v) for v in value) if np.ndim(value) else int(value)


@functools.cache
def admin_scan() -> Image.Image:
    """An administrative page (agency | national motto header, red seal, blue signature)
    scanned at 300 dpi, its header moved up so the motto is 12 mm from the top edge."""
    page = render_page(PageSpec(layout="admin", seed=2, font_pt=13, degradation=1))
    image, shift = page.image, round(8 * MM)  # pagegen sets the header 20 mm from the top
    moved = Image.new(image.mode, image.size, paper_colour(image))
    moved.paste(image.crop((0, shift, image.width, image.height)), (0, 0))
    return moved


@functools.cache
def admin_scan_with_gap() -> Image.Image:
    """The same page with 30 mm of paper opened between the header and the title, as many
    documents have: free paper in the top third, but not in the corner the motto takes."""
    image = admin_scan()
    inner = independent_ink(image)[:, image.width // 10: -image.width // 10]  # no edge shadow
    blank = ~inner.any(axis=1)
    start = round(12 * MM)
    while not blank[start]:  # the header
        start += 1
    runs = []  # the first run of blank rows longer than 5 mm below the header's top
    for row in range(start, image.height):
        if blank[row]:
            runs.append(row)
            if len(runs) > 5 * MM:
                break
        else:
            runs = []
    cut = runs[len(runs) // 2]
    gap = round(30 * MM)
    out = Image.new(image.mode, image.size, paper_colour(image))
    out.paste(image.crop((0, 0, image.width, cut)), (0, 0))
    out.paste(image.crop((0, cut, image.width, image.height - gap)), (0, cut + gap))
    return out


@functools.cache
def dark_top_scan(mode: str) -> Image.Image:
    """An A4 page at 150 dpi whose whole top third is ink: a dark block and lines of text."""
    dpi = 150
    image = Image.new("RGB", (round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)), (246, 243, 236))
    draw = ImageDraw.Draw(image)
    third = image.height // 3
    draw.rectangle((0, 0, image.width, third // 2), fill=(25, 25, 25))
    for y in range(third // 2 + 8, third + 20, 14):
        draw.rectangle((0, y, image.width, y + 8), fill=(20, 20, 20))  # text lines, edge to edge
    return bitonal(image) if mode == "1" else image.convert(mode)


def bitonal(image: Image.Image) -> Image.Image:
    return image.convert("L").point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE)


def pdfa_of(image: Image.Image, dpi: int = DPI) -> bytes:
    data, encoding, colour = encode_image(image, 85)
    render = PageRender(data, encoding, image.width, image.height, (dpi, dpi), colour)
    return build_pdfa([render], DocumentMeta("Giấy xác nhận", "tl-1", "HS-2025-0001",
                                             datetime(2025, 3, 1, tzinfo=timezone.utc)))


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """The development key and its CA (as trust root)."""
    home = tmp_path_factory.mktemp("sohoa-home")
    signing = SigningSettings(agency_name=AGENCY)
    signer = keys.load_signer(signing, home)
    return signer, [c.dump() for c in keys.trust_roots(signing, home)]


def widgets(pdf: bytes) -> list[tuple[float, float, float, float]]:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return [tuple(float(v) for v in a.Rect) for a in doc.pages[0].get("/Annots", [])
                if a.get("/Subtype") == "/Widget"]


def media_box(pdf: bytes) -> tuple[float, ...]:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return tuple(float(v) for v in doc.pages[0].mediabox)


def ink_under(image: Image.Image, dpi: int, rect, grow_mm: float = 0.0) -> int:
    """Dark or coloured pixels of the scan under ``rect`` (PDF points, the scan drawn from
    the page origin), the rectangle grown by ``grow_mm`` on every side."""
    scale, grow = dpi / 72, grow_mm / 25.4 * 72
    height_pt = image.height / scale
    x0, y0, x1, y1 = rect[0] - grow, rect[1] - grow, rect[2] + grow, rect[3] + grow
    cols = slice(max(0, int(x0 * scale)), max(0, int(np.ceil(x1 * scale))))
    rows = slice(max(0, int((height_pt - y1) * scale)), max(0, int(np.ceil((height_pt - y0) * scale))))
    return int(independent_ink(image)[rows, cols].sum())


def intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def corner_box(page_box, size):
    """Where the stamp went before issue 9: 18 pt from the top and right edges."""
    x0, y0, x1, y1 = page_box
    m = appearance.STAMP_MARGIN
    return (x1 - m - size[0], y1 - m - size[1], x1 - m, y1 - m)


# --------------------------------------------------------------------------- signed pages

@pytest.mark.parametrize("mode", ["RGB", "L", "1"])  # colour JPEG, grey JPEG, 1-bit Flate
def test_stamp_lands_on_free_paper_below_the_motto_not_on_it(dev, mode):
    signer, roots = dev
    scan = bitonal(admin_scan_with_gap()) if mode == "1" else admin_scan_with_gap().convert(mode)
    pdf = pdfa_of(scan)
    signed, record = pades.sign_pdf(pdf, signer, organisation=AGENCY)

    (rect,) = widgets(signed)
    width_pt, height_pt = scan.width * 72 / DPI, scan.height * 72 / DPI
    assert media_box(signed) == media_box(pdf), "free paper found: the page keeps its size"
    assert record.stamp == {"box": list(rect), "bandPt": 0.0}
    assert ink_under(scan, DPI, rect, grow_mm=1.0) == 0, rect
    assert rect[0] >= width_pt / 2 and rect[2] <= width_pt - appearance.STAMP_MARGIN + 0.01
    assert rect[1] >= height_pt * 2 / 3 and rect[3] <= height_pt - appearance.STAMP_MARGIN + 0.01
    # the fixture means something: the old fixed place prints over the motto
    old = corner_box((0, 0, width_pt, height_pt), (rect[2] - rect[0], rect[3] - rect[1]))
    assert ink_under(scan, DPI, old) > 1000
    assert pdfa_check(signed).ok
    assert validation.verify_pdf(signed, roots).ok


def test_on_a_skewed_scan_drawn_turned_the_stamp_still_finds_free_paper(dev):
    """sohoa's PDF draws a skewed scan as it is, turned by its skew and clipped to the sheet: the
    ink the stamp keeps clear of is the ink of the page as shown (level), not of the image's box."""
    from ocr.page import archive_image, straighten

    signer, roots = dev
    level = admin_scan_with_gap()
    scan = level.rotate(1.5, Image.Resampling.BICUBIC, fillcolor=paper_colour(level))
    placement = straighten(scan, DPI, 0, 1.5).placement
    shown = archive_image(scan, placement)
    data, encoding, colour = encode_image(scan, 85)
    pdf = build_pdfa([PageRender(data, encoding, scan.width, scan.height, (DPI, DPI), colour, [], placement)],
                     DocumentMeta("Giấy xác nhận", "tl-1", "HS-2025-0001", datetime(2025, 3, 1, tzinfo=timezone.utc)))
    signed, record = pades.sign_pdf(pdf, signer, organisation=AGENCY)

    (rect,) = widgets(signed)
    assert record.stamp["bandPt"] == 0.0
    assert ink_under(shown, DPI, rect, grow_mm=1.0) == 0, rect
    old = corner_box(media_box(pdf), (rect[2] - rect[0], rect[3] - rect[1]))
    assert ink_under(shown, DPI, old) > 1000  # the motto is in the corner
    assert validation.verify_pdf(signed, roots).ok and pdfa_check(signed).ok


def test_the_stamp_adds_little_to_the_document_and_still_draws_its_lines(dev):
    """The stamp's glyph outlines are stored deflated, each letter's outline the same bytes
    wherever it occurs: uncompressed (as pyHanko writes a form XObject) they came to 60-75 KB a
    document, a tenth of a page's scan."""
    signer, roots = dev
    pdf = pdfa_of(admin_scan_with_gap())
    signed, _ = pades.sign_pdf(pdf, signer, organisation=AGENCY)
    with pikepdf.open(io.BytesIO(signed)) as doc:
        (widget,) = [a for a in doc.pages[0].Annots if a.get("/Subtype") == "/Widget"]
        forms = [widget.AP.N]
        for form in forms:  # the appearance and the form XObjects it draws
            forms += [x for x in form.get("/Resources", {}).get("/XObject", {}).values()]
        drawn = b"".join(form.read_bytes() for form in forms)
        stored = sum(len(form.read_raw_bytes()) for form in forms)
    assert drawn.count(b" c\n") > 1000  # the outlines' curves are all there
    # as drawn at first: 74 KB and ~84 KB; deflated, each glyph placed anew: 25 and 35 KB
    assert stored < 15_000 and len(signed) - len(pdf) < 30_000
    assert validation.verify_pdf(signed, roots).ok and pdfa_check(signed).ok


def test_admin_page_with_no_room_at_the_top_keeps_the_motto_readable(dev):
    signer, roots = dev
    scan = admin_scan()
    pdf = pdfa_of(scan)
    signed, record = pades.sign_pdf(pdf, signer, organisation=AGENCY)

    (rect,) = widgets(signed)
    assert ink_under(scan, DPI, rect, grow_mm=1.0) == 0, rect
    # header, title and body fill the top third edge to edge: the stamp needs the band
    height_pt = scan.height * 72 / DPI
    assert record.stamp["bandPt"] > 0 and rect[1] >= height_pt
    assert media_box(signed)[3] == pytest.approx(height_pt + record.stamp["bandPt"], abs=0.01)
    assert validation.verify_pdf(signed, roots).ok


@pytest.mark.parametrize("mode", ["1", "L"])
def test_top_third_all_ink_gains_a_band_above_the_scan(dev, mode):
    signer, roots = dev
    scan = dark_top_scan(mode)
    pdf = pdfa_of(scan, 150)
    x0, y0, x1, y1 = media_box(pdf)
    signed, record = pades.sign_pdf(pdf, signer)

    band = record.stamp["bandPt"]
    (rect,) = widgets(signed)
    assert band > rect[3] - rect[1] + appearance.STAMP_MARGIN
    assert media_box(signed) == pytest.approx((x0, y0, x1, y1 + band), abs=0.01)
    assert record.stamp["box"] == list(rect)
    assert rect[1] >= y1 + appearance.CLEARANCE_PT - 0.01, "the stamp sits in the band, clear of the scan"
    assert rect[3] <= y1 + band - appearance.STAMP_MARGIN + 0.01 and rect[2] == pytest.approx(
        x1 - appearance.STAMP_MARGIN, abs=0.01)
    assert signed.startswith(pdf), "the band is part of the signing revision"
    with pikepdf.open(io.BytesIO(signed)) as doc:  # the scan stays where it was
        content = pikepdf.unparse_content_stream(pikepdf.parse_content_stream(doc.pages[0], "cm Do"))
    assert content.startswith(f"{x1 - x0:.3f} 0 0 {y1 - y0:.3f} 0 0 cm".encode())
    verdict = pdfa_check(signed)
    assert verdict.ok, verdict.findings
    result = validation.verify_pdf(signed, roots)
    assert result.ok and result.test_signature, result.messages_en


@pytest.mark.parametrize("scan", ["gap", "band"])
def test_signing_a_signed_pdf_again_keeps_the_first_stamp_visible(dev, scan):
    signer, _ = dev
    pdf = pdfa_of(admin_scan_with_gap()) if scan == "gap" else pdfa_of(dark_top_scan("L"), 150)
    once, first = pades.sign_pdf(pdf, signer)
    twice, second = pades.sign_pdf(once, signer)

    assert twice.startswith(once)
    (rect_one,), rects = widgets(once), widgets(twice)
    assert len(rects) == 2 and rect_one in rects
    (rect_two,) = [r for r in rects if r != rect_one]
    assert not intersects(rect_one, rect_two)
    grown = (rect_one[0] - appearance.CLEARANCE_PT, rect_one[1] - appearance.CLEARANCE_PT,
             rect_one[2] + appearance.CLEARANCE_PT, rect_one[3] + appearance.CLEARANCE_PT)
    assert not intersects(grown, rect_two), "the clearance holds around the earlier stamp too"
    # page 1 of a signed file never changes (a new band would count against the first signature)
    assert second.stamp["bandPt"] == 0.0 and media_box(twice) == media_box(once)
    assert pdfa_check(twice).ok


def test_page_without_image_keeps_the_corner(dev):
    signer, _ = dev
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=A4)
    buf = io.BytesIO()
    pikepdf.pdfa.save(pdf, buf, "2b")
    signed, record = pades.sign_pdf(buf.getvalue(), signer)
    (rect,) = widgets(signed)
    assert rect == pytest.approx(corner_box((0, 0, *A4), (rect[2] - rect[0], rect[3] - rect[1])))
    assert record.stamp["bandPt"] == 0.0


# --------------------------------------------------------------------------- the ink mask

@pytest.mark.parametrize("mode", ["RGB", "L", "1"])
def test_page_ink_is_read_from_every_page_image_encoding(mode):
    """Colour JPEG, grey JPEG and 1-bit Flate: a block at a known place is ink, paper is not."""
    dpi = 150
    image = Image.new("RGB", (round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)), (244, 240, 232))
    block = (round(120 * dpi / 25.4), round(10 * dpi / 25.4), round(150 * dpi / 25.4), round(30 * dpi / 25.4))
    ImageDraw.Draw(image).rectangle(block, fill=(15, 15, 15))
    image = bitonal(image) if mode == "1" else image.convert(mode)
    page = appearance.read_page_one(pdfa_of(image, dpi))

    cells = page.scale * 72 / 25.4  # mask cells per mm
    ink_rows, ink_cols = np.nonzero(page.ink)
    assert ink_rows.min() == pytest.approx(10 * cells, abs=2) and ink_rows.max() == pytest.approx(30 * cells, abs=2)
    assert ink_cols.min() == pytest.approx(120 * cells, abs=2) and ink_cols.max() == pytest.approx(150 * cells, abs=2)
    assert page.box == pytest.approx((0, 0, image.width * 72 / dpi, image.height * 72 / dpi))


def test_ink_is_text_seals_and_signatures_not_paper_tint_or_shading():
    paper = (240, 234, 222)
    image = Image.new("RGB", (600, 400), paper)
    draw = ImageDraw.Draw(image)
    draw.line((20, 20, 300, 20), fill=(30, 30, 30), width=1)             # a thin text stroke
    draw.ellipse((50, 100, 150, 200), outline=(214, 110, 112), width=3)   # a pale red seal ring
    draw.line((200, 150, 400, 170), fill=(60, 80, 190), width=2)          # a blue signature
    pixels = np.asarray(image).astype(np.float32)
    pixels *= (1 - 0.15 * np.linspace(0, 1, 600))[None, :, None]          # uneven light
    pixels += np.random.default_rng(1).normal(0, 4, pixels.shape)         # scanner noise
    ink = appearance.ink_of_pixels(np.clip(pixels, 0, 255).astype(np.uint8))

    assert ink[20, 20:300].mean() > 0.9
    assert ink[100:201, 50:151].any() and ink[150, 52] | ink[150, 51] | ink[150, 50]
    assert ink[150:171, 200:401].sum() > 150
    assert not ink[250:, :].any(), "tint, light fall-off and noise are paper"
    grey = np.asarray(Image.new("L", (100, 100), 250))
    assert not appearance.ink_of_pixels(grey).any()


# --------------------------------------------------------------------------- the search

PAGE = (0.0, 0.0) + A4
SCALE = appearance.MASK_DPI / 72
SIZE = (200.0, 46.0)


def mask(*rects_mm) -> np.ndarray:
    """A page mask with ink in the given (left, top, right, bottom) rectangles, mm from the top left."""
    grid = np.zeros((int(np.ceil(A4[1] * SCALE)), int(np.ceil(A4[0] * SCALE))), bool)
    cells = SCALE * 72 / 25.4
    for left, top, right, bottom in rects_mm:
        grid[round(top * cells):round(bottom * cells), round(left * cells):round(right * cells)] = True
    return grid


def clear_of(box, rects_mm, clearance=appearance.CLEARANCE_PT) -> bool:
    pt = 72 / 25.4
    return not any(intersects((box[0] - clearance, box[1] - clearance, box[2] + clearance, box[3] + clearance),
                              (left * pt, A4[1] - bottom * pt, right * pt, A4[1] - top * pt))
                   for left, top, right, bottom in rects_mm)


def test_free_corner_is_the_top_right_corner():
    placement = appearance.place_stamp(mask(), SCALE, PAGE, SIZE)
    assert placement.box == pytest.approx(corner_box(PAGE, SIZE)) and placement.band_pt == 0


def test_ink_in_the_corner_moves_the_stamp_left_on_the_same_line():
    ink = [(195, 0, 210, 25)]  # a mark in the top-right corner only
    placement = appearance.place_stamp(mask(*ink), SCALE, PAGE, SIZE)
    box = placement.box
    assert box[3] == pytest.approx(A4[1] - appearance.STAMP_MARGIN), "same height as the corner"
    assert clear_of(box, ink) and box[0] >= A4[0] / 2 and placement.band_pt == 0
    assert box[2] > 195 * 72 / 25.4 - appearance.CLEARANCE_PT - 3, "as far right as the clearance allows"


def test_a_motto_across_the_right_half_moves_the_stamp_down_under_it():
    ink = [(95, 12, 200, 38)]  # motto block, 12 mm from the top
    placement = appearance.place_stamp(mask(*ink), SCALE, PAGE, SIZE)
    box = placement.box
    assert clear_of(box, ink) and placement.band_pt == 0
    assert box[2] == pytest.approx(A4[0] - appearance.STAMP_MARGIN), "still right-aligned"
    assert A4[1] - 38 * 72 / 25.4 - box[3] < appearance.CLEARANCE_PT + 3, "just under the motto"


def test_right_half_full_goes_left_before_a_band():
    ink = [(100, 0, 210, 100)]
    placement = appearance.place_stamp(mask(*ink), SCALE, PAGE, SIZE)
    assert placement.band_pt == 0 and clear_of(placement.box, ink)
    assert placement.box[3] == pytest.approx(A4[1] - appearance.STAMP_MARGIN)


def test_widget_rectangles_count_as_ink():
    corner = corner_box(PAGE, SIZE)
    placement = appearance.place_stamp(mask(), SCALE, PAGE, SIZE, obstacles=[corner])
    assert not intersects(placement.box, corner) and placement.band_pt == 0
    grown = (corner[0] - appearance.CLEARANCE_PT, corner[1] - appearance.CLEARANCE_PT,
             corner[2] + appearance.CLEARANCE_PT, corner[3] + appearance.CLEARANCE_PT)
    assert not intersects(placement.box, grown)


def test_top_third_all_ink_means_a_band():
    ink = [(0, 0, 210, 100)]
    placement = appearance.place_stamp(mask(*ink), SCALE, PAGE, SIZE)
    x0, y0, x1, y1 = placement.box
    assert placement.band_pt == pytest.approx(appearance.STAMP_MARGIN + SIZE[1] + 2 * appearance.CLEARANCE_PT,
                                              abs=0.01)
    assert y0 >= A4[1] + appearance.CLEARANCE_PT and y1 == pytest.approx(
        A4[1] + placement.band_pt - appearance.STAMP_MARGIN)
    assert x1 == pytest.approx(A4[0] - appearance.STAMP_MARGIN) and (x1 - x0, y1 - y0) == pytest.approx(SIZE)


def test_a_page_that_must_not_change_is_searched_whole_and_may_have_no_place():
    ink = [(0, 0, 210, 100)]
    placement = appearance.place_stamp(mask(*ink), SCALE, PAGE, SIZE, band=False)
    assert placement.band_pt == 0 and clear_of(placement.box, ink) and placement.box[1] < A4[1] * 2 / 3
    assert appearance.place_stamp(mask((0, 0, 210, 297)), SCALE, PAGE, SIZE, band=False) is None
