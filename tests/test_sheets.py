"""A page with no text takes its quarter turn from its neighbours (pipeline.sheets): in a stack
fed to the scanner sideways, an empty back page or one with only a seal is turned with its
front instead of staying sideways between upright pages in the signed PDF."""
from __future__ import annotations

import io
import json
import subprocess

import numpy as np
import pikepdf
from PIL import Image

from pipeline.models import PageResult
from pipeline.sheets import turns
from tests.conftest import manifest_of, save_page

CODE = "H23.50-261201-0007"
A4_300 = (2480, 3508)


def page(orientation: int = 0, size=A4_300, dpi=(300, 300), blank: bool = False) -> PageResult:
    """A finished page as the page stage gives it: ``size`` is the page's, after its quarter turn."""
    return PageResult("scan.pdf", 1, image_key="k", encoding="jpeg", width=size[0], height=size[1], dpi=dpi,
                      color_mode="rgb", orientation=orientation, flags=("blank",) if blank else ())


def test_a_blank_page_takes_the_turn_of_the_page_before_it_fed_sideways():
    assert turns([page(90), page(blank=True, size=A4_300[::-1]), page(270)]) == [0, 90, 0]
    # the first page of a document is the back of nothing: it takes the page after it
    assert turns([page(blank=True, size=A4_300[::-1]), page(270)]) == [270, 0]
    # two empty pages in a row take the nearest page with text
    assert turns([page(90), page(blank=True, size=A4_300[::-1]), page(blank=True, size=A4_300[::-1])]) == [0, 90, 90]
    # upside down: the back of a sheet fed upside down comes out upside down too
    assert turns([page(180), page(blank=True, size=A4_300)]) == [0, 180]
    # the same paper at another resolution is the same paper
    assert turns([page(90), page(blank=True, size=(1754, 1240), dpi=(150, 150))]) == [0, 90]


def test_a_blank_page_stays_as_scanned_beside_upright_pages_or_on_other_paper():
    landscape = A4_300[::-1]
    assert turns([page(0), page(blank=True, size=landscape), page(0)]) == [0, 0, 0]  # a landscape sheet
    assert turns([page(180), page(blank=True, size=A4_300[::-1])]) == [0, 0]  # a landscape sheet among upside-down pages
    assert turns([page(90), page(blank=True, size=A4_300)]) == [0, 0]  # fed the other way: another paper
    assert turns([page(90), page(blank=True, size=(3300, 2550))]) == [0, 0]  # US Letter beside A4
    assert turns([page(blank=True, size=landscape)]) == [0]
    assert turns([page(90), page(90)]) == [0, 0]  # pages with text keep their own


def red(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return (rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 40)


def test_a_stack_fed_sideways_comes_out_upright_with_its_seal_only_back_page(cli, home, rendered, tmp_path):
    front = save_page(rendered("sheets_front", layout="admin", orientation=90, dpi=200, seed=31), tmp_path / "p1.jpg",
                      quality=90)
    back = rendered("sheets_back", layout="seal", orientation=90, dpi=200, seed=32)
    upright_back = rendered("sheets_back_upright", layout="seal", orientation=0, dpi=200, seed=32)
    empty = rendered("sheets_empty", layout="blank", dpi=200, seed=33)  # portrait as scanned: left as it is
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Đơn đề nghị", "--json", front,
                         save_page(back, tmp_path / "p2.png"), save_page(empty, tmp_path / "p3.png"))
    assert code == 0, err
    document = json.loads(out)
    entries = manifest_of(home, CODE)["documents"][0]["pages"]
    assert [(p["orientation"], p["width"] < p["height"], "blank" in p["flags"]) for p in entries] == [
        (90, True, False), (90, True, True), (0, True, True)]

    pdf_path = home / "store" / document["pdf"]["key"]
    with pikepdf.open(pdf_path) as pdf:
        boxes = [[float(v) for v in p.mediabox] for p in pdf.pages]
        assert all(box[3] > box[2] for box in boxes), boxes  # every page shown portrait
        assert all("/Rotate" not in p.obj for p in pdf.pages)  # turned in the image, not by the viewer
    shown = subprocess.run(["pdftoppm", "-r", "50", "-f", "2", "-l", "2", "-png", str(pdf_path)],
                           capture_output=True, check=True).stdout
    shown = Image.open(io.BytesIO(shown))
    expected = upright_back.image.resize(shown.size)
    seal, drawn = red(expected), red(shown)
    assert seal.sum() > 200
    # the seal is where it is on the sheet held upright (turned the other way it would be elsewhere)
    assert (seal & drawn).sum() >= 0.8 * seal.sum() and (drawn & ~seal).sum() <= 0.2 * seal.sum()
