"""Orientation and deskew on rendered pages whose quarter turn and skew are known."""
from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from ocr import cleanup, geometry
from ocr.orientation import ink_for_geometry, measure
from ocr.recognise import TesseractEngine
from tests.pagegen import PageSpec, render_page


def angle_error(measured: float, truth: float) -> float:
    return abs((measured - truth + 45) % 90 - 45)


# every layout in every quarter turn, with a skew drawn within +-15 degrees; 200 dpi keeps it quick
CASES = [(layout, turn, round(random.Random(f"{layout}{turn}").uniform(-15, 15), 2))
         for layout in ("text", "admin", "table") for turn in (0, 90, 180, 270)]


@pytest.mark.parametrize("layout,turn,skew", CASES)
def test_orientation_and_skew_found_on_every_layout_and_quarter_turn(layout, turn, skew):
    page = render_page(PageSpec(layout=layout, dpi=200, orientation=turn, skew_deg=skew, degradation=2,
                                seed=11 + turn))
    found = measure(page.image, 200.0, TesseractEngine("vie"))
    assert found.orientation == turn, found
    assert angle_error(found.skew_deg, skew) <= 0.25, found


def test_deskew_error_within_bounds_over_15_degrees():
    """Mean error <= 0.1 and worst <= 0.5 degrees over text, admin-with-seal and table pages."""
    errors = []
    rng = random.Random(5)
    for i in range(9):
        layout = ("text", "admin", "table")[i % 3]
        skew = round(rng.uniform(-15, 15), 2)
        page = render_page(PageSpec(layout=layout, dpi=300, skew_deg=skew, degradation=1 + i % 3, seed=40 + i,
                                    color="gray" if i % 4 == 3 else "rgb"))
        found = geometry.estimate_skew(ink_for_geometry(page.image, 300.0), 300.0)
        assert not found.vertical
        errors.append(angle_error(found.angle_deg, skew))
    assert sum(errors) / len(errors) <= 0.1, errors
    assert max(errors) <= 0.5, errors


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_straighten_keeps_the_page_size_and_mode(turn):
    page = render_page(PageSpec(layout="text", dpi=100, skew_deg=10, color="bitonal", seed=2))
    straight = geometry.straighten(page.image, turn + 10, cleanup.paper_colour(page.image))
    assert straight.mode == "1"
    w, h = page.image.size
    assert straight.size == ((w, h) if turn in (0, 180) else (h, w))
    corner = np.asarray(straight.convert("L"))[:5, :5]
    assert corner.min() == 255  # the uncovered corner is paper, not a black wedge
    grown = geometry.straighten(page.image, 10, 1, keep_size=False)
    assert grown.width > w and grown.height > h


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_of_a_sparse_page(turn):
    """Two lines of text on a page: too little for tesseract's OSD alone."""
    page = render_page(PageSpec(layout="text", dpi=200, orientation=turn, skew_deg=-4.2, degradation=2, seed=31,
                                max_body_lines=2))
    found = measure(page.image, 200.0, TesseractEngine("vie"))
    assert found.orientation == turn, found
    assert angle_error(found.skew_deg, -4.2) <= 0.25, found


def _column_of_short_lines() -> Image.Image:
    """An A4 page at 200 dpi holding one tall column of short left-aligned lines (13 pt), as a
    list, a poem or a half-width letter: taller than it is wide, with no line across the page."""
    from PIL import ImageDraw, ImageFont

    from tests.pagegen import FONT_FAMILIES
    words = ("Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015 Ủy ban nhân dân tỉnh "
             "quyết định giao nhiệm vụ cho Sở Nội vụ chủ trì phối hợp với các cơ quan đơn vị liên quan").split()
    font = ImageFont.truetype(str(FONT_FAMILIES["dejavu-serif"][0]), 34)
    page = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(page)
    for n, y in enumerate(range(150, 2190, 60)):
        start = (n * 7) % len(words)
        draw.text((150, y), " ".join((words[start:] + words)[:8]), fill=0, font=font)
    return page


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_a_tall_column_of_short_lines_is_not_taken_for_lines_running_down(turn):
    """Before, the line axis favoured the text block's shorter side: such a page, upright, was
    turned on its side and its words read down the column (tesseract, reading vertical text, at a
    confidence of 96)."""
    page = geometry.quarter_turn(_column_of_short_lines(), -turn)  # content turned counter-clockwise
    found = measure(page, 200.0, TesseractEngine("vie"))
    assert found.orientation == turn, found


@pytest.mark.parametrize("seed, turn", [(2, 0), (5, 0), (32, 90)])
def test_the_line_axis_of_a_150_dpi_table_page(seed, turn):
    """Rendered tables of short cells at 150 dpi whose line axis was found the wrong way before (5
    of the 40 tables of seeds 0-39; bench/README.md, "twelfth pass"), the page turned on its side."""
    skew = round(random.Random(seed).uniform(-6, 6), 2)
    page = render_page(PageSpec(layout="table", dpi=150, color="gray", degradation=1 + seed % 2, orientation=turn,
                                skew_deg=skew, seed=seed * 100 + turn))
    found = measure(page.image, 150.0, TesseractEngine("vie"))
    assert found.orientation == turn, found


@pytest.mark.parametrize("seed, skew", [(0, -2.0), (4, 2.0)])
@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_the_line_axis_of_a_dense_list_of_short_entries(seed, skew, turn):
    """A ruled list of short entries down the whole page (a list of citizens, 8 pt, 150-dpi grey):
    its columns of entries, as regular as its lines, took the line axis before (16 of 72 rendered
    lists, every turn of 150-dpi grey seeds 0, 2, 4 and 5; bench/README.md, "thirteenth pass"),
    and the page was read on its side."""
    page = render_page(PageSpec(layout="list", dpi=150, color="gray", degradation=1, orientation=turn,
                                skew_deg=skew, seed=seed))
    skew_found = geometry.estimate_skew(ink_for_geometry(page.image, 150.0), 150.0)
    assert skew_found.vertical == (turn % 180 == 90)
    assert angle_error(skew_found.angle_deg, skew) <= 0.3


@pytest.mark.parametrize("turn", [0, 90])
def test_a_page_of_one_line_has_its_axis(turn):
    """One line of text spans fewer rows than the line measure's window: the page is measured
    (an exception from numpy, and the page lost, in 22fe348), its line found running its way."""
    page = render_page(PageSpec(layout="text", dpi=300, max_body_lines=1, orientation=turn, skew_deg=1.0,
                                degradation=1, seed=3))
    found = geometry.estimate_skew(ink_for_geometry(page.image, 300.0), 300.0)
    assert found.vertical == (turn == 90)
    assert angle_error(found.angle_deg, 1.0) <= 0.3


@pytest.mark.parametrize("mode", ["RGB", "L", "1"])
@pytest.mark.parametrize("angle, expand", [(-1.37, True), (4.2, False), (0.05, True), (-12.5, True)])
def test_the_rotation_made_in_strips_keeps_pillows_pixels(mode, angle, expand):
    """The archive image keeps the pixels Pillow's own rotation gives (only made faster): at most
    one grey level apart, in a handful of values; a bitonal page exactly."""
    from PIL import Image

    page = render_page(PageSpec(layout="admin", dpi=200, skew_deg=0.0, orientation=0, degradation=2, seed=5))
    image = page.image.convert(mode).crop((0, 0, 901, 1203))  # odd sizes: strips of unequal height
    resample = Image.Resampling.NEAREST if mode == "1" else Image.Resampling.BICUBIC
    fill = {"RGB": (250, 248, 240), "L": 247, "1": 1}[mode]
    ours = geometry.rotate(image, angle, resample, expand, fill, parts=3)
    pillows = image.rotate(angle, resample=resample, expand=expand, fillcolor=fill)
    assert ours.mode == pillows.mode and ours.size == pillows.size
    difference = np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(pillows, dtype=np.int16))
    assert difference.max() <= (0 if mode == "1" else 1)
    assert (difference > 0).mean() < 1e-5


def test_a_page_opened_from_its_file_turns_as_the_same_page_decoded():
    """Pillow decodes a file when its pixels are first needed: the two strips of a bicubic turn
    once both asked at once, and one of them failed ("image file is truncated")."""
    import io

    page = render_page(PageSpec(layout="text", dpi=150, degradation=1, color="rgb", seed=31, max_body_lines=8)).image
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=80, progressive=True)
    decoded = Image.open(io.BytesIO(buf.getvalue()))
    decoded.load()
    expected = np.asarray(geometry.rotate(decoded, 1.3, Image.Resampling.BICUBIC, True, (255, 255, 255)))
    for _ in range(3):
        lazy = Image.open(io.BytesIO(buf.getvalue()))
        assert np.array_equal(np.asarray(geometry.rotate(lazy, 1.3, Image.Resampling.BICUBIC, True, (255, 255, 255))),
                              expected)
