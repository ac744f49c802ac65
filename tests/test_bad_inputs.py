"""Issue 2 item 9: every bad input is refused with its file (and page) named, nothing partial
is stored, and what was stored before stays intact."""
from __future__ import annotations

import io

import pikepdf
import pytest
from PIL import Image, TiffImagePlugin

from tests.conftest import manifest_of, save_page, stored_keys

CODE = "H23.50-261201-0002"


@pytest.fixture
def good_page(rendered, tmp_path):
    return save_page(rendered("good", layout="text", seed=31, dpi=200), tmp_path / "good.png")


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buf, "JPEG", dpi=(200, 200))
    return buf.getvalue()


def corrupt_jpeg(d):
    data = bytearray(_jpeg_bytes())
    data[200:] = b"\x00" * (len(data) - 200)
    (d / "corrupt.jpg").write_bytes(bytes(data))
    return d / "corrupt.jpg", None


def truncated_png(d):
    buf = io.BytesIO()
    Image.new("RGB", (800, 600), "white").save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[:-200])
    return d / "truncated.png", None


def zero_bytes(d):
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg", None


def png_named_jpg(d):
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buf, "PNG")
    (d / "scan.jpg").write_bytes(buf.getvalue())
    return d / "scan.jpg", None


def text_file(d):
    (d / "notes.txt").write_text("không phải ảnh quét", encoding="utf-8")
    return d / "notes.txt", None


def encrypted_pdf(d):
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(d / "locked.pdf", encryption=pikepdf.Encryption(owner="a", user="b"))
    return d / "locked.pdf", None


def pdf_without_pages(d):
    pikepdf.new().save(d / "empty.pdf")
    return d / "empty.pdf", None


def too_many_pixels(d):
    Image.new("L", (3000, 3000), 255).save(d / "huge.png")
    return d / "huge.png", None


def directory(d):
    (d / "folder.jpg").mkdir()
    return d / "folder.jpg", None


def tiff_with_truncated_second_page(d):
    path = d / "two.tif"
    with TiffImagePlugin.AppendingTiffWriter(str(path), True) as tf:
        for _ in range(2):
            Image.new("L", (600, 800), 255).save(tf, format="TIFF", compression="raw")
            tf.newFrame()
    path.write_bytes(path.read_bytes()[:-100_000])  # into the second frame's pixel data
    return path, 2


def pdf_with_a_huge_second_page(d):
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(216, 288))  # 3 x 4 inches: within the test limit
    pdf.add_blank_page(page_size=(14400, 14400))  # 200 x 200 inches: 3.6 gigapixels at 300 dpi
    pdf.save(d / "huge.pdf")
    return d / "huge.pdf", 2


BAD = [corrupt_jpeg, truncated_png, zero_bytes, png_named_jpg, text_file, encrypted_pdf, pdf_without_pages,
       too_many_pixels, directory, tiff_with_truncated_second_page, pdf_with_a_huge_second_page]


@pytest.mark.parametrize("make_bad", BAD, ids=[f.__name__ for f in BAD])
def test_bad_input_is_refused_naming_file_and_page_and_nothing_is_stored(make_bad, cli, home, good_page, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("SOHOA_MAX_PIXELS", "5000000")
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn lần 1", good_page)
    assert code == 0, err
    before_keys, before_manifest = stored_keys(home), manifest_of(home, CODE)

    bad, page = make_bad(tmp_path)
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Đơn lần 2", good_page, bad)
    assert code != 0
    assert bad.name in err and "LỖI" in err
    if page is not None:
        assert f"trang {page}" in err
    assert stored_keys(home) == before_keys, "a refused ingest stored something"
    assert manifest_of(home, CODE) == before_manifest


def test_invalid_dossier_code_is_refused_before_anything(cli, home, good_page):
    code, _, err = cli("ingest", "--dossier", "../../etc/passwd", "--title", "x", good_page)
    assert code != 0 and "Mã hồ sơ không hợp lệ" in err
    assert stored_keys(home) == []


def test_a_tiff_whose_second_page_header_is_damaged_names_the_file_and_page(cli, home, tmp_path):
    """Found while writing the worker tests: Pillow raised TypeError ("Missing dimensions") when
    it seeked to a damaged second page, which came out as an unexpected error (exit 70)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    first, second = Image.new("L", (1200, 1600), 255), Image.new("L", (1200, 1600), 200)
    first.save(buf, "TIFF", save_all=True, append_images=[second], compression="tiff_deflate", dpi=(150, 150))
    data = bytearray(buf.getvalue())
    for i in range(int(len(data) * 0.75), len(data) - 200):  # the second page's header and data
        data[i] ^= 0x5A
    bad = tmp_path / "hai-trang.tif"
    bad.write_bytes(bytes(data))
    code, _, err = cli("ingest", "--dossier", "H23.50-261201-0061", "--title", "Đơn", bad)
    assert code == 3, err
    assert "hai-trang.tif, trang 2" in err and "Lỗi không mong đợi" not in err
