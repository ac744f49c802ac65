"""Fuzz target ``inputs``: the input loaders, ``pipeline.inputs.read_source`` then
``load_page`` on the first and last page it counted, on bytes written to a file whose
extension is the one its content calls for (a mismatched one is refused before any decoding).

Property: the loaders either refuse the file with an ``InputError`` that names it (and a page
number within the file when one is given), or return a page count of at least 1 and pages in
mode RGB, L or 1 within the pixel limit, with a stated resolution in the accepted range.
Any other exception, a hang past the per-input time limit or a memory blow-up is a finding."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from tests.fuzz import Finding

PROPERTY = ("only InputError naming the file (page within the file); else >= 1 page, each page "
            "RGB/L/1 within the pixel limit, stated dpi 10-9600")
ENTRY_POINTS = "pipeline.inputs.read_source, load_page (first and last page)"
MAX_PIXELS = 2_000_000  # the same check as the default 150 million, cheaper to reach
EXT = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "pdf": ".pdf"}
DICTIONARY = [
    # PDF structure and the keys the page geometry reads
    "%PDF-1.4", "obj", "endobj", "stream", "endstream", "xref", "trailer", "startxref", "/Root", "/Pages",
    "/Kids", "/Count", "/Page", "/MediaBox", "/CropBox", "/Rotate", "/Resources", "/XObject", "/Subtype",
    "/Image", "/Width", "/Height", "/BitsPerComponent", "/ColorSpace", "/DeviceGray", "/DeviceRGB",
    "/DeviceCMYK", "/Indexed", "/ICCBased", "/Filter", "/DecodeParms", "/DCTDecode", "/FlateDecode",
    "/CCITTFaxDecode", "/JBIG2Decode", "/JPXDecode", "/Length", "/Encrypt", "/ImageMask", "/SMask",
    " R", "[0 0 1e30 1e30]", "-1", "4294967296", "null", "<<", ">>",
    # PNG chunks
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"pHYs", b"tRNS", b"iCCP", b"zTXt", b"acTL", b"fcTL",
    # JPEG markers
    b"\xff\xc0", b"\xff\xc2", b"\xff\xc4", b"\xff\xda", b"\xff\xdb", b"\xff\xdd", b"\xff\xe0", b"\xff\xe1",
    # TIFF: headers and the tags Pillow reads (little-endian ids)
    b"II*\x00", b"MM\x00*", b"\x00\x01", b"\x01\x01", b"\x02\x01", b"\x03\x01", b"\x06\x01", b"\x11\x01",
    b"\x15\x01", b"\x16\x01", b"\x17\x01", b"\x1a\x01", b"\x1c\x01", b"\x40\x01", b"\x4a\x01",
    b"\xff\xff\xff\x7f",
]

INSTRUMENT = ("PIL", "pipeline.inputs")  # Pillow's plugins are Python: their branches guide the fuzzer
_scratch: tempfile.TemporaryDirectory | None = None


def _work() -> Path:
    """Where each input is written as a file: the run's scratch directory (tests.fuzz.run sets
    SOHOA_FUZZ_SCRATCH), else a temporary directory removed when the process ends."""
    global _scratch
    if os.environ.get("SOHOA_FUZZ_SCRATCH"):
        path = Path(os.environ["SOHOA_FUZZ_SCRATCH"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="sohoa-fuzz-inputs-")
    return Path(_scratch.name)


def instrumented_imports() -> None:
    import PIL.Image  # noqa: F401
    import PIL.JpegImagePlugin  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401
    import PIL.TiffImagePlugin  # noqa: F401

    import pipeline.inputs  # noqa: F401


def _check_refusal(error, path: Path, pages: int | None) -> None:
    if error.file != str(path) or not error.message_vi.startswith(f"Tệp không hợp lệ: {path}"):
        raise Finding(f"InputError does not name the file: {error.message_vi!r}")
    if error.page is not None and (error.page < 1 or (pages is not None and error.page > pages)):
        raise Finding(f"InputError names page {error.page} of a file of {pages} pages")


def test_one_input(data: bytes) -> None:
    from pipeline import inputs
    from pipeline.errors import InputError

    path = _work() / f"scan{EXT.get(inputs.sniff(data), '.bin')}"
    path.write_bytes(data)
    try:
        source = inputs.read_source(path, MAX_PIXELS)
    except InputError as e:
        _check_refusal(e, path, None)
        return
    if source.page_count < 1:
        raise Finding(f"accepted with {source.page_count} pages")
    for page in sorted({1, source.page_count}):
        try:
            image, dpi = inputs.load_page(str(path), source.kind, source.data, page, MAX_PIXELS)
        except InputError as e:
            _check_refusal(e, path, source.page_count)
            continue
        if image.mode not in ("RGB", "L", "1"):
            raise Finding(f"page {page} loaded in mode {image.mode}")
        if not 1 <= image.width * image.height <= MAX_PIXELS:
            raise Finding(f"page {page} loaded at {image.width}x{image.height}")
        if dpi is not None and not all(10 <= v <= 9600 for v in dpi):
            raise Finding(f"page {page} states {dpi} dpi")


# --------------------------------------------------------------------------- seeds

def _image(mode: str, size=(48, 36)):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((3, 3, size[0] - 4, size[1] - 6), outline="black")
    ImageDraw.Draw(img).line((2, size[1] - 3, size[0] - 3, size[1] - 3), fill=(200, 30, 30))
    if mode == "I;16":
        return img.convert("L").convert("I").point(lambda v: v * 256).convert("I;16")
    return img.convert(mode)


def _save(img, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _pdf_seeds() -> dict[str, bytes]:
    import pikepdf

    seeds = {
        "pillow-rgb.pdf": _save(_image("RGB"), "PDF", resolution=150),
        "pillow-gray.pdf": _save(_image("L"), "PDF", resolution=200),
        "pillow-bitonal.pdf": _save(_image("1"), "PDF", resolution=300),
        "pillow-2pages.pdf": _save(_image("RGB"), "PDF", resolution=100, save_all=True,
                                   append_images=[_image("L", (36, 48))]),
    }
    pdf = pikepdf.new()  # a born-digital page (no image), turned a quarter
    pdf.add_blank_page(page_size=(40, 30))
    pdf.pages[0].obj.Rotate = 90
    pdf.pages[0].obj.Contents = pdf.make_stream(b"0 0 m 20 20 l S")
    buf = io.BytesIO()
    pdf.save(buf, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    seeds["pikepdf-rotated-vector.pdf"] = buf.getvalue()
    return seeds


def seeds() -> dict[str, bytes]:
    """Small files of every kind and mode the loaders take: the fuzzer mutates these."""
    out = {
        "rgb.jpg": _save(_image("RGB"), "JPEG", dpi=(200, 200), quality=60),
        "gray-progressive.jpg": _save(_image("L"), "JPEG", progressive=True, dpi=(300, 300)),
        "cmyk.jpg": _save(_image("CMYK"), "JPEG"),
        "rgb.png": _save(_image("RGB"), "PNG", dpi=(150, 150)),
        "gray.png": _save(_image("L"), "PNG"),
        "palette.png": _save(_image("P"), "PNG"),
        "bitonal.png": _save(_image("1"), "PNG", dpi=(300, 300)),
        "16bit.png": _save(_image("I;16"), "PNG"),
        "rgba.png": _save(_image("RGBA"), "PNG"),
        "la.png": _save(_image("LA"), "PNG"),
        "rgb-lzw.tif": _save(_image("RGB"), "TIFF", compression="tiff_lzw", dpi=(200, 200)),
        "gray-packbits.tif": _save(_image("L"), "TIFF", compression="packbits"),
        "bitonal-g4.tif": _save(_image("1"), "TIFF", compression="group4", dpi=(300, 300)),
        "cmyk.tif": _save(_image("CMYK"), "TIFF"),
        "3pages.tif": _save(_image("RGB"), "TIFF", save_all=True, dpi=(100, 100),
                            append_images=[_image("L"), _image("1", (36, 48))]),
    }
    out.update(_pdf_seeds())
    return out


def write_seeds(directory: Path) -> int:
    for name, data in seeds().items():
        (directory / name).write_bytes(data)
    return len(seeds())

