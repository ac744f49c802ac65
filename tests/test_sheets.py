"""A page with no text takes its quarter turn from its neighbours (pipeline.sheets): in a stack
fed to the scanner sideways, an empty back page or one with only a seal is turned with its
front instead of staying sideways between upright pages in the signed PDF."""
from __future__ import annotations

import io
import json
import re
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pikepdf
from PIL import Image

from pipeline.models import PageResult
from pipeline import sheets
from tests.conftest import manifest_of, save_page

CODE = "H23.50-261201-0007"
REAL = Path(__file__).parent / "data" / "realscans"
A4_300 = (2480, 3508)


def page(orientation: int = 0, size=A4_300, dpi=(300, 300), blank: bool = False) -> PageResult:
    """A finished page as the page stage gives it: ``size`` is the page's, after its quarter turn."""
    return PageResult("scan.pdf", 1, image_key="k", encoding="jpeg", width=size[0], height=size[1], dpi=dpi,
                      color_mode="rgb", orientation=orientation, flags=("blank",) if blank else ())


def turns(results: list[PageResult]) -> list[int]:
    return sheets.turns([sheets.Sheet.of(r) for r in results])


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


def test_the_nearest_page_with_text_decides_the_one_before_on_a_tie():
    side = A4_300[::-1]
    assert turns([page(90), page(blank=True, size=side), page(270)]) == [0, 90, 0]
    assert turns([page(90), page(blank=True, size=side), page(blank=True, size=side), page(blank=True, size=side),
                  page(270)]) == [0, 90, 90, 270, 0]
    assert turns([page(blank=True, size=side)] * 3) == [0, 0, 0]  # no page with text: nothing to go by
    failed = PageResult("scan.pdf", 2, error="hỏng")
    assert turns([page(90), failed, page(blank=True, size=side)]) == [0, 0, 90]  # a failed page tells nothing


def test_a_page_found_blank_only_once_straightened_keeps_its_own_turn():
    """The page stage (and the counter's preview) flags blank a page whose straightened copy
    shows no ink: it was turned and straightened by its own lines, so it is not turned again."""
    from pipeline.intake import Flag, Page

    straightened = replace(page(blank=True), orientation=180, skew_deg=0.8)
    assert turns([page(180), straightened]) == [0, 0]

    def draft_page(orientation: int, skew: float, blank: bool) -> Page:
        flags = (Flag("blank", "Trang trắng (không thấy chữ)", True),) if blank else ()
        return Page("p", "f", "a.jpg", 1, "jpeg", "k", "s", "t", 1654, 2339, 200.0, "header", orientation, skew,
                    flags, "0")

    draft = [draft_page(180, 0.5, False), draft_page(180, 0.8, True), draft_page(0, 0.0, True)]
    assert sheets.turns([p.sheet for p in draft]) == [0, 0, 180]


def test_a_turned_page_keeps_every_pixel_and_its_two_resolutions():
    """A bitonal fax page (204 x 98 dpi, an odd width) turned a quarter: the same pixels turned,
    still 1-bit and lossless, its resolutions swapped with its sides; a 4:2:2 JPEG keeps its
    colour at full resolution once its half-resolution axis would run down the page."""
    from PIL import JpegImagePlugin

    from ocr.geometry import quarter_turn
    from pipeline.pages import encode_image

    rng = np.random.default_rng(3)
    fax = Image.fromarray(rng.random((1123, 1729)) > 0.5).convert("1")
    data, encoding, mode = encode_image(fax, 75)
    result = replace(page(blank=True), encoding=encoding, color_mode=mode, width=1729, height=1123, dpi=(204, 98))
    turned = sheets.turned_result(result, 90)
    assert (turned.width, turned.height, turned.dpi, turned.orientation) == (1123, 1729, (98, 204), 90)
    image = Image.frombytes("1", (turned.width, turned.height), zlib.decompress(
        sheets.turned_image(result, data, 90, 75)))
    assert image.tobytes() == quarter_turn(fax, 90).tobytes()

    colour = Image.fromarray((rng.random((300, 200, 3)) * 255).astype(np.uint8))
    for sampling, kept in ((1, 0), (2, 2), (0, 0)):
        data, encoding, mode = encode_image(colour, 80, sampling)
        result = replace(page(blank=True), encoding=encoding, width=200, height=300)
        shown = Image.open(io.BytesIO(sheets.turned_image(result, data, 270, 80)))
        assert shown.size == (300, 200) and JpegImagePlugin.get_sampling(shown) == kept


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


def redness_centre(image: Image.Image) -> np.ndarray:
    """Where the red is, as fractions of the width and height (a pale red in a small thumbnail too)."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    weight = np.clip(rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) / 2 - 10, 0, None)
    ys, xs = np.indices(weight.shape)
    return np.array([(xs * weight).sum() / weight.sum() / weight.shape[1], (ys * weight).sum() / weight.sum() / weight.shape[0]])


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


def login(client, name: str, password: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form).group(1)
    assert client.post("/login", data={"name": name, "password": password, "login_csrf": token},
                       follow_redirects=False).status_code == 303


def kept_bytes(kept, view: str) -> bytes:
    """The stored view of the page ``view`` names."""
    page_id = view.split("/pages/")[1].split("/")[0]
    return next(p for p in kept if p.name.startswith(page_id)).read_bytes()


def test_the_operator_sees_the_blank_back_page_turned_as_the_document_will_show_it(tmp_path, rendered):
    """At the counter, the draft's thumbnail of a seal-only back page fed sideways is turned with
    its front, and says why, as the stored document will show it."""
    from fastapi.testclient import TestClient

    from api.http import create_app
    from pipeline import config, service

    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_COOKIE_SECURE": "false"})
    service.add_user(settings, "lan", "operator", ("H23.50",), "mat-khau-dai-du")
    front = rendered("sheets_front", layout="admin", orientation=90, dpi=200, seed=31)
    back = rendered("sheets_back", layout="seal", orientation=90, dpi=200, seed=32)
    upright_back = rendered("sheets_back_upright", layout="seal", orientation=0, dpi=200, seed=32)
    files = [("files", (name, save_page(p, tmp_path / name).read_bytes(), "image/png"))
             for name, p in (("mat-truoc.png", front), ("mat-sau.png", back))]
    with TestClient(create_app(settings)) as client:
        login(client, "lan", "mat-khau-dai-du")
        csrf = {"X-CSRF-Token": re.search(r'name="csrf" value="([^"]+)"', client.get("/intake").text).group(1)}
        draft_url = client.post("/intake", data={"code": CODE}, headers=csrf, follow_redirects=False).headers["location"]
        page = client.post(draft_url + "/pages", headers=csrf, files=files)
        assert page.status_code == 200, page.text
        thumbs = re.findall(r'src="(/intake/[^"]+/thumb[^"]*)"', page.text)
        assert len(thumbs) == 2 and not thumbs[0].endswith("?turn=90") and thumbs[1].endswith("?turn=90")
        assert "Xoay 90° như trang có chữ bên cạnh" in page.text
        shown = Image.open(io.BytesIO(client.get(thumbs[1]).content))
        assert shown.height > shown.width
        # the seal sits where it does on the sheet held upright (turned the other way, it would not)
        assert np.allclose(redness_centre(shown), redness_centre(upright_back.image), atol=0.05)
        assert client.get(thumbs[1].replace("?turn=90", "?turn=45")).status_code == 404
        # each thumbnail opens the page large enough to judge whether it can be read (160 px could
        # not say; found by the web review), turned and placed as the thumbnail is
        views = re.findall(r'href="(/intake/[^"]+/view[^"]*)"', page.text)
        assert [v.replace("/view", "/thumb") for v in views] == thumbs
        for view, thumb in zip(views, thumbs):
            large = Image.open(io.BytesIO(client.get(view).content))
            small = Image.open(io.BytesIO(client.get(thumb).content))
            assert large.format == "JPEG" and large.width == 1240 and large.height > large.width
            assert abs(large.height / large.width - small.height / small.width) < 0.02
        large = Image.open(io.BytesIO(client.get(views[1]).content))
        assert np.allclose(redness_centre(large), redness_centre(upright_back.image), atol=0.05)
        # made once and kept with the draft: a page is decoded whole to make it (review)
        kept = list((tmp_path / "home" / "store").rglob("views/*.jpg"))
        assert len(kept) == 2 and client.get(views[1]).content == kept_bytes(kept, views[1])
        # a citizen's page is not left in the counter PC's browser cache, where it was shown after
        # logout and to the next operator for an hour (web security review)
        for url in (thumbs[1], views[1]):
            assert "no-store" in client.get(url).headers["cache-control"], url


def test_a_real_sheet_fed_sideways_comes_out_upright_front_and_back(cli, home, tmp_path, monkeypatch):
    """46-TB: a real notice and its back, empty but for its seal showing through, both fed turned
    a quarter: the back is shown upright with its front, not left on its side."""
    monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")  # the turn does not depend on the recogniser
    from bench.pdf_drawing import fed_turned

    fed = []
    for name in ("46-TB-p1.jpg", "46-TB-p2.jpg"):
        fed.append(tmp_path / f"{Path(name).stem}.png")
        fed[-1].write_bytes(fed_turned((REAL / name).read_bytes(), 90))
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Thông báo", "--unsigned", "--json", *fed)
    assert code == 0, err
    entries = manifest_of(home, CODE)["documents"][0]["pages"]
    assert [(p["orientation"], "blank" in p["flags"]) for p in entries] == [(90, False), (90, True)]
    with pikepdf.open(home / "store" / json.loads(out)["pdf"]["key"]) as pdf:
        boxes = [[float(v) for v in p.mediabox] for p in pdf.pages]
    assert all(box[3] > box[2] for box in boxes), boxes
    with Image.open(REAL / "46-TB-p2.jpg") as back:
        assert (entries[1]["width"], entries[1]["height"]) == back.size  # the page as the paper is
