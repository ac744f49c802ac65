"""A corpus of bad (and awkward) input files, as an intake desk receives them.

One small function per kind: ``make(directory) -> path``, pure (it writes only into
``directory``, from nothing but the libraries), documented in one line. ``KINDS`` lists them
all in order; ``build(directory)`` writes the whole corpus. The tests that feed them to the
command line and the upload API decide what each should give (tests/test_bad_inputs.py); a
fuzzing or acceptance run may use the same files as seeds.

Pages are small (300x400 px) so that those which convert cost little OCR.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import pikepdf
from PIL import Image, ImageDraw, TiffImagePlugin

W, H = 300, 400
LEGACY_TCVN3 = b"C\xe9ng h\xdfa x\xb7 h\xe9i ch\xf1 ngh\xaba"   # "Cộng hòa xã hội chủ nghĩa" in TCVN3 (ABC)
LEGACY_VNI = b"Coo\xe4ng hoa\xf8 xa\xf5 hoo\xe4i"              # the same words in VNI-Windows, as bytes


# ----------------------------------------------------------------------------- helpers

def page_image(mode: str = "L", size: tuple[int, int] = (W, H), text: bool = False) -> Image.Image:
    """A small white page, blank (no OCR is spent on it) or with a few black lines of text."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for n, y in enumerate(range(30, size[1] - 30, 28) if text else ()):
        draw.text((24, y), f"DON DE NGHI {n + 1}  CONG HOA XA HOI", fill=0)
    return img.convert(mode)


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _write(d: Path, name: str, data: bytes) -> Path:
    path = Path(d) / name
    path.write_bytes(data)
    return path


def _pdf_with_image(img: Image.Image | None = None, *, page_pt: tuple[float, float] = (216, 288)) -> pikepdf.Pdf:
    """A one-page scanned PDF: the image (JPEG) drawn over the whole page."""
    img = img or page_image("L")
    assert img.mode in ("L", "RGB")
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=page_pt)
    page = pdf.pages[0]
    stream = pikepdf.Stream(pdf, _encoded(img, "JPEG", quality=80))
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height, stream.BitsPerComponent = img.width, img.height, 8
    stream.ColorSpace = pikepdf.Name.DeviceGray if img.mode == "L" else pikepdf.Name.DeviceRGB
    stream.Filter = pikepdf.Name.DCTDecode
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream))
    page.Contents = pikepdf.Stream(pdf, f"q {page_pt[0]} 0 0 {page_pt[1]} 0 0 cm /Im0 Do Q".encode())
    return pdf


def _pdf_bytes(pdf: pikepdf.Pdf, **kw) -> bytes:
    buf = io.BytesIO()
    pdf.save(buf, **kw)
    return buf.getvalue()


def _pdf_with_text_layer(legacy: bytes) -> bytes:
    """A scanned page with an invisible text layer whose bytes are a legacy 8-bit encoding."""
    pdf = _pdf_with_image(page_image("L", text=True))
    page = pdf.pages[0]
    page.Resources.Font = pikepdf.Dictionary(F1=pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding))
    escaped = legacy.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    text = b"BT 3 Tr /F1 12 Tf 20 250 Td (" + escaped + b") Tj ET\n"
    page.Contents = pikepdf.Stream(pdf, page.Contents.read_bytes() + b"\n" + text)
    return _pdf_bytes(pdf)


def _set_mediabox(box) -> bytes:
    pdf = _pdf_with_image()
    pdf.pages[0].MediaBox = pikepdf.Array(box)
    return _pdf_bytes(pdf)


def _tiff_pages(count: int, size: tuple[int, int]) -> bytes:
    """A little-endian TIFF of ``count`` blank bitonal pages at 300 dpi, written by hand (Pillow
    takes seconds for a thousand frames): every page's IFD points at the same white strip."""
    width, height = size
    strip = b"\x00" * (((width + 7) // 8) * height)  # WhiteIsZero: 0 is white
    rational_at = 8 + len(strip)
    first_ifd = rational_at + 8
    out = bytearray(b"II*\x00" + struct.pack("<I", first_ifd) + strip + struct.pack("<II", 300, 1))
    entries = [(256, 3, width), (257, 3, height), (258, 3, 1), (259, 3, 1), (262, 3, 0), (273, 4, 8),
               (277, 3, 1), (278, 3, height), (279, 4, len(strip)), (282, 5, rational_at), (283, 5, rational_at),
               (296, 3, 2)]
    ifd_size = 2 + 12 * len(entries) + 4
    for n in range(count):
        out += struct.pack("<H", len(entries))
        for tag, typ, value in entries:
            out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
        out += struct.pack("<I", first_ifd + (n + 1) * ifd_size if n + 1 < count else 0)
    return bytes(out)


# ----------------------------------------------------------------------------- images

def zero_bytes(d):
    """A file of 0 bytes named .jpg (a scan that never finished writing)."""
    return _write(d, "empty.jpg", b"")


def truncated_jpeg(d):
    """A JPEG cut in the middle of its entropy-coded data."""
    data = _encoded(page_image("RGB"), "JPEG", quality=90, dpi=(100, 100))
    return _write(d, "cut.jpg", data[: len(data) // 2])


def corrupt_jpeg(d):
    """A JPEG whose bytes after the first 200 are zeros (a failed copy from a USB stick)."""
    data = bytearray(_encoded(page_image("RGB"), "JPEG", dpi=(100, 100)))
    data[200:] = b"\x00" * (len(data) - 200)
    return _write(d, "corrupt.jpg", bytes(data))


def _scan_data_damaged(fill: Callable[[int], bytes]) -> bytes:
    """A JPEG page of text whose coded data holds ``fill(n)`` over 300 bytes in its middle, its end intact."""
    data = bytearray(_encoded(page_image("RGB", text=True), "JPEG", quality=90, dpi=(100, 100)))
    middle = (data.index(b"\xff\xda") + len(data)) // 2
    data[middle:middle + 300] = fill(300)
    return bytes(data)


def jpeg_zeroed_scan_data(d):
    """A JPEG whose coded data has a run of zeros in its middle (a bad sector): Pillow showed the rest grey."""
    return _write(d, "zeroed.jpg", _scan_data_damaged(bytes))


def jpeg_noisy_scan_data(d):
    """A JPEG whose coded data has random bytes, none 0xFF, in its middle (a failed copy): Pillow took it."""
    return _write(d, "noisy.jpg", _scan_data_damaged(lambda n: bytes((i * 97 + 31) % 255 for i in range(n))))


def jpeg_soi_only(d):
    """Only the JPEG start-of-image marker and three bytes of a header."""
    return _write(d, "header.jpg", b"\xff\xd8\xff\xe0\x00\x10JF")


def truncated_png(d):
    """A PNG cut before its end (IEND and part of IDAT missing)."""
    data = _encoded(Image.new("RGB", (800, 600), "white"), "PNG")
    return _write(d, "truncated.png", data[:-200])


def png_corrupt_idat(d):
    """A PNG whose compressed pixel data is overwritten with noise (bad CRC and zlib stream)."""
    data = bytearray(_encoded(page_image("L"), "PNG", dpi=(100, 100)))
    start = data.index(b"IDAT") + 4
    for i in range(start + 8, min(len(data) - 16, start + 400)):
        data[i] = (data[i] * 31 + 7) & 0xFF
    return _write(d, "noise.png", bytes(data))


def png_text_chunk_bomb(d):
    """A PNG with a zTXt chunk that inflates to 64 MiB (a metadata decompression bomb)."""
    data = _encoded(page_image("L"), "PNG", dpi=(100, 100))
    payload = b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9)
    body = b"zTXt" + payload
    chunk = struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    at = data.index(b"IDAT") - 4
    return _write(d, "comment.png", data[:at] + chunk + data[at:])


def truncated_tiff(d):
    """A one-page uncompressed TIFF cut in half."""
    data = _encoded(page_image("L"), "TIFF", dpi=(100, 100))
    return _write(d, "cut.tif", data[: len(data) // 2])


def tiff_bad_ifd_offset(d):
    """A TIFF whose first IFD offset points far past the end of the file."""
    data = bytearray(_encoded(page_image("L"), "TIFF", dpi=(100, 100)))
    data[4:8] = struct.pack("<I", 0x7FFF0000) if data[:2] == b"II" else struct.pack(">I", 0x7FFF0000)
    return _write(d, "ifd.tif", bytes(data))


def tiff_corrupt_deflate(d):
    """A deflate-compressed TIFF whose strip (pixel) data is noise; its header is intact."""
    data = bytearray(_encoded(page_image("L", text=True), "TIFF", compression="tiff_deflate", dpi=(100, 100)))
    with Image.open(io.BytesIO(bytes(data))) as img:
        start, size = img.tag_v2[273][0], img.tag_v2[279][0]
    for i in range(start + 2, start + size):
        data[i] ^= 0xA5
    return _write(d, "deflate.tif", bytes(data))


def tiff_truncated_second_page(d):
    """A two-page TIFF cut inside the second page's pixel data."""
    path = Path(d) / "two.tif"
    with TiffImagePlugin.AppendingTiffWriter(str(path), True) as tf:
        for _ in range(2):
            Image.new("L", (600, 800), 255).save(tf, format="TIFF", compression="raw")
            tf.newFrame()
    path.write_bytes(path.read_bytes()[:-100_000])
    return path


def tiff_damaged_second_header(d):
    """A two-page TIFF whose second page's header (IFD) is scrambled."""
    data = bytearray(_encoded(Image.new("L", (600, 800), 255), "TIFF", save_all=True,
                              append_images=[Image.new("L", (600, 800), 200)], compression="tiff_deflate",
                              dpi=(150, 150)))
    for i in range(int(len(data) * 0.75), len(data) - 200):
        data[i] ^= 0x5A
    return _write(d, "hai-trang.tif", bytes(data))


def text_file(d):
    """A plain text file given as a page."""
    path = Path(d) / "notes.txt"
    path.write_text("không phải ảnh quét", encoding="utf-8")
    return path


def png_named_jpg(d):
    """A PNG whose name says .jpg."""
    return _write(d, "scan.jpg", _encoded(page_image("L"), "PNG"))


def jpeg_named_pdf(d):
    """A JPEG whose name says .pdf."""
    return _write(d, "scan.pdf", _encoded(page_image("L"), "JPEG"))


def pdf_named_tif(d):
    """A PDF whose name says .tif."""
    return _write(d, "scan.tif", _pdf_bytes(_pdf_with_image()))


def no_extension(d):
    """A JPEG with no extension at all."""
    return _write(d, "scan", _encoded(page_image("L"), "JPEG"))


def upper_case_extension(d):
    """A JPEG named SCAN.JPG (cameras and old scanners write upper case)."""
    return _write(d, "SCAN.JPG", _encoded(page_image("RGB"), "JPEG", dpi=(100, 100)))


def vietnamese_file_name(d):
    """A PNG named with Vietnamese letters and spaces: 'Tờ khai số 1 (bản sao).png'."""
    return _write(d, "Tờ khai số 1 (bản sao).png", _encoded(page_image("L"), "PNG", dpi=(100, 100)))


def one_pixel_png(d):
    """A 1x1 PNG."""
    return _write(d, "dot.png", _encoded(Image.new("L", (1, 1), 255), "PNG"))


def thin_strip_png(d):
    """A 3000x2 PNG: a sliver, not a page."""
    return _write(d, "strip.png", _encoded(Image.new("L", (3000, 2), 255), "PNG"))


def png_bomb_header(d):
    """A 1 KiB PNG whose header claims 100000x100000 pixels (decompression bomb)."""
    head = b"\x89PNG\r\n\x1a\n"
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(b"\x00" * 1000)
    chunk = lambda body: struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return _write(d, "bomb.png", head + chunk(ihdr) + chunk(idat) + chunk(b"IEND"))


def png_bomb_real(d):
    """A 40 KiB PNG that really inflates to 36 Mpx (6000x6000 grey): over a 5 Mpx limit."""
    img = Image.new("L", (6000, 6000), 255)
    return _write(d, "zeros.png", _encoded(img, "PNG", optimize=False, compress_level=9))


def tiff_bomb_header(d):
    """A small TIFF whose header claims 200000x200000 pixels."""
    data = bytearray(_encoded(Image.new("L", (64, 64), 255), "TIFF"))
    # rewrite ImageWidth (256) and ImageLength (257) entries of the first IFD
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for n in range(count):
        at = ifd + 2 + 12 * n
        tag, typ = struct.unpack("<HH", data[at:at + 4])
        if tag in (256, 257):
            data[at + 2:at + 12] = struct.pack("<HII", 4, 1, 200_000)
    return _write(d, "bomb.tif", bytes(data))


def jpeg_bomb_header(d):
    """A JPEG whose frame header claims 65000x65000 pixels."""
    data = bytearray(_encoded(Image.new("L", (64, 64), 255), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    return _write(d, "bomb.jpg", bytes(data))


def too_many_pixels(d):
    """A real 3000x3000 PNG: 9 Mpx, over a 5 Mpx limit (SOHOA_MAX_PIXELS)."""
    return _write(d, "huge.png", _encoded(Image.new("L", (3000, 3000), 255), "PNG"))


def gray16_png(d):
    """A 16-bit greyscale PNG (medical and archive scanners)."""
    img = page_image("L").point(lambda v: v * 257, "I").convert("I;16")
    return _write(d, "gray16.png", _encoded(img, "PNG", dpi=(100, 100)))


def gray16_tiff(d):
    """A 16-bit greyscale TIFF."""
    img = page_image("L").point(lambda v: v * 257, "I").convert("I;16")
    return _write(d, "gray16.tif", _encoded(img, "TIFF", dpi=(100, 100)))


def int32_tiff(d):
    """A 32-bit integer greyscale TIFF holding 8-bit values, as converters write one."""
    import numpy as np
    img = Image.fromarray(np.asarray(page_image("L", text=True), dtype=np.int32))
    return _write(d, "int32.tif", _encoded(img, "TIFF", dpi=(100, 100)))


def uint32_tiff(d):
    """A 32-bit unsigned integer grey TIFF over the whole range (white 4,294,967,295), as ImageMagick writes one."""
    import numpy as np
    grey = np.asarray(page_image("L", text=True), dtype=np.uint64) * 16843009  # 255 -> 2**32 - 1
    img = Image.frombuffer("I", (W, H), grey.astype(np.uint32).tobytes(), "raw", "I;32N", 0, 1)
    data = bytearray(_encoded(img, "TIFF", dpi=(100, 100)))  # Pillow marks it signed (SampleFormat 2)
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack_from("<H", data, entry)[0] == 339:
            struct.pack_into("<H", data, entry + 8, 1)
    return _write(d, "uint32.tif", bytes(data))


def _plain_tiff(values, *, photometric: int = 1, extra_samples: tuple[int, ...] = (), subfile_type: int = 0,
                twelve_bits: bool = False, more: tuple[tuple, ...] = ()) -> bytes:
    """An uncompressed TIFF of one strip per page at 100 dpi, written field by field: Pillow writes
    neither signed 16-bit samples, nor deep pages whose zero is white (``photometric`` 0), nor CMYK
    with alpha (5 and ``extra_samples`` (2,)), nor a page marked as another's thumbnail
    (``subfile_type`` 1), nor 12-bit samples (``twelve_bits``: grey values 0-4,095 of an even
    width, packed). ``values``: a numpy array, rows x columns, with a third axis for several
    samples (its type gives the bits and the sample format); ``more``: further pages, each
    (values, {the same keywords})."""
    import numpy as np
    pages = [(values, dict(photometric=photometric, extra_samples=extra_samples, subfile_type=subfile_type,
                           twelve_bits=twelve_bits))]
    plain = {"photometric": 1, "extra_samples": (), "subfile_type": 0, "twelve_bits": False}
    pages += [(v, {**plain, **kw}) for v, kw in more]
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for number, (page, options) in enumerate(pages):
        height, width = page.shape[:2]
        samples = page.shape[2] if page.ndim == 3 else 1
        pixels = page.astype(page.dtype.newbyteorder("<")).tobytes()
        bits = 8 * page.dtype.itemsize
        if options["twelve_bits"]:  # two samples in three bytes, the first sample's high bits first
            a, b = page[:, 0::2].astype("u2"), page[:, 1::2].astype("u2")
            packed = [a >> 4, ((a & 0xF) << 4) | (b >> 8), b & 0xFF]
            pixels, bits = np.stack(packed, axis=2).astype("u1").tobytes(), 12
        fields = [(254, 4, options["subfile_type"]), (256, 4, width), (257, 4, height),
                  (258, 3, bits if samples == 1 else "bits"), (259, 3, 1), (262, 3, options["photometric"]),
                  (273, 4, "pixels"), (277, 3, samples), (278, 4, height), (279, 4, len(pixels)),
                  (282, 5, "dpi"), (283, 5, "dpi"), (284, 3, 1), (296, 3, 2)]
        if options["extra_samples"]:
            fields.append((338, 3, options["extra_samples"][0]))
        fields.append((339, 3, {"u": 1, "i": 2, "f": 3}[page.dtype.kind]))
        here = len(out)
        dpi_at = here + 2 + 12 * len(fields) + 4
        places = {"dpi": dpi_at, "bits": dpi_at + 8, "pixels": dpi_at + 8 + 2 * samples}
        out += struct.pack("<H", len(fields))
        for tag, kind, value in fields:
            count = samples if value == "bits" else 1
            value = places[value] if isinstance(value, str) else value
            if kind == 3 and count == 1:
                out += struct.pack("<HHIHH", tag, kind, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, kind, count, value)
        next_at = places["pixels"] + len(pixels) + (len(pixels) % 2)
        out += struct.pack("<I", next_at if number + 1 < len(pages) else 0)
        out += struct.pack("<II", 100, 1) + struct.pack(f"<{samples}H", *[bits] * samples) + pixels
        out += b"\x00" * (next_at - len(out))
    return bytes(out)


def int16_tiff(d):
    """A signed 16-bit grey TIFF over the whole range (black -32,768, white 32,767), as some converters write one."""
    import numpy as np
    grey = np.asarray(page_image("L", text=True), dtype=np.int32) * 257 - 32_768
    return _write(d, "int16.tif", _plain_tiff(grey.astype(np.int16)))


def white_is_zero_tiff(d):
    """A 16-bit grey TIFF whose zero is white (PhotometricInterpretation 0), as film scanners write one."""
    import numpy as np
    grey = (255 - np.asarray(page_image("L", text=True), dtype=np.uint16)) * 257
    return _write(d, "white-is-zero.tif", _plain_tiff(grey, photometric=0))


def cmyk_alpha_tiff(d):
    """A CMYK TIFF with an alpha channel (ExtraSamples 2), as Photoshop saves one: no decoder in Pillow."""
    import numpy as np
    ink = 255 - np.asarray(page_image("L", text=True), dtype=np.uint8)
    cmyka = np.stack([np.zeros_like(ink)] * 3 + [ink, np.full_like(ink, 255)], axis=2)
    return _write(d, "cmyk-alpha.tif", _plain_tiff(cmyka, photometric=5, extra_samples=(2,)))


def tiff_with_thumbnail(d):
    """A page followed by its own small preview, marked so (NewSubfileType 1), as scanners write one."""
    import numpy as np
    page = np.asarray(page_image("L", text=True), dtype=np.uint8)
    preview = np.asarray(page_image("L", (W // 4, H // 4), text=False), dtype=np.uint8)
    return _write(d, "thumbnail.tif", _plain_tiff(page, more=((preview, {"subfile_type": 1}),)))


def png_transparent_paper(d):
    """A palette PNG whose paper is a transparent black (tRNS), as an editor exports a scan cut out."""
    img = page_image("L", text=True).convert("P")
    paper = img.getpixel((0, 0))
    palette = img.getpalette()
    palette[3 * paper:3 * paper + 3] = [0, 0, 0]  # the paper's colour black, but transparent
    img.putpalette(palette)
    return _write(d, "transparent.png", _encoded(img, "PNG", transparency=paper, dpi=(100, 100)))


def png16_transparent_paper(d):
    """A 16-bit grey PNG whose paper is a transparent black (tRNS), as an editor exports a 16-bit scan cut out."""
    import numpy as np
    page = np.asarray(page_image("L", text=True), dtype=np.uint32)
    values = np.where(page == 255, 0, page * 257 + 1).astype(">u2")
    return _write(d, "transparent16.png", _png(values.shape[1], values.shape[0], 16, 0,
                                              [row.tobytes() for row in values], b"\x00\x00"))


def _png(width: int, height: int, depth: int, colour_type: int, rows: list[bytes], trns: bytes) -> bytes:
    """A PNG written chunk by chunk (Pillow writes no tRNS for 16-bit grey)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", trns)
            + chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + row for row in rows))) + chunk(b"IEND", b""))


def mpo_phone_photo(d):
    """A phone's photo of a page saved as MPO (Ultra HDR: the photo, then a small gain map)."""
    gain_map = page_image("L", (W // 4, H // 4)).convert("RGB")
    return _write(d, "phone.jpg", _encoded(page_image("RGB", text=True), "MPO", save_all=True,
                                          append_images=[gain_map], dpi=(100, 100)))


def jpeg_12_bit(d):
    """A JPEG whose frame header says 12 bits per sample (medical and archive cameras): no decoder in Pillow."""
    data = bytearray(_encoded(page_image("L", text=True), "JPEG", dpi=(100, 100)))
    at = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[at + 4] = 12
    return _write(d, "12bit.jpg", bytes(data))


def tiff_webp_compressed(d):
    """A TIFF whose page is compressed as WebP (COMPRESSION_WEBP, 50001), which this libtiff may not decode."""
    import numpy as np
    data = bytearray(_plain_tiff(np.asarray(page_image("L", text=True), dtype=np.uint8)))
    (count,) = struct.unpack_from("<H", data, 8)
    for entry in range(10, 10 + 12 * count, 12):
        if struct.unpack_from("<H", data, entry)[0] == 259:
            struct.pack_into("<H", data, entry + 8, 50001)
    return _write(d, "webp.tif", bytes(data))


def float32_tiff(d):
    """A 32-bit floating-point greyscale TIFF of values from 0 to 1."""
    import numpy as np
    img = Image.fromarray(np.asarray(page_image("L", text=True), dtype=np.float32) / 255, "F")
    return _write(d, "float32.tif", _encoded(img, "TIFF", dpi=(100, 100)))


def cmyk_jpeg(d):
    """A CMYK JPEG (print workflows; Adobe-inverted)."""
    return _write(d, "cmyk.jpg", _encoded(page_image("CMYK"), "JPEG", dpi=(100, 100)))


def cmyk_tiff(d):
    """A CMYK TIFF."""
    return _write(d, "cmyk.tif", _encoded(page_image("CMYK"), "TIFF", dpi=(100, 100)))


def palette_png(d):
    """An 8-bit palette PNG with colours."""
    img = page_image("RGB")
    ImageDraw.Draw(img).rectangle((200, 20, 280, 60), fill=(200, 0, 0))
    return _write(d, "palette.png", _encoded(img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", dpi=(100, 100)))


def rgba_png(d):
    """An RGBA PNG with a transparent background."""
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    img.paste(page_image("RGBA"), mask=page_image("L").point(lambda v: 255 - v))
    return _write(d, "alpha.png", _encoded(img, "PNG", dpi=(100, 100)))


def la_png(d):
    """A grey-plus-alpha (LA) PNG."""
    return _write(d, "la.png", _encoded(page_image("LA"), "PNG", dpi=(100, 100)))


def tiff_g4_noisy_strip(d):
    """A two-page G4 TIFF whose second page's strip has random bytes in it: Pillow left the lines below them white."""
    pages = [page_image("1", text=True), page_image("1", text=True)]
    data = bytearray(_encoded(pages[0], "TIFF", compression="group4", save_all=True, append_images=pages[1:],
                              dpi=(100, 100)))
    second = Image.open(io.BytesIO(bytes(data)))
    second.seek(1)
    at, length = second.tag_v2[273][0], second.tag_v2[279][0]
    data[at + length // 3:at + length // 3 + 40] = bytes((i * 89 + 7) % 256 for i in range(40))
    return _write(d, "g4-nhieu.tif", bytes(data))


def bitonal_g4_tiff(d):
    """A bitonal CCITT G4 TIFF (what office scanners write)."""
    return _write(d, "g4.tif", _encoded(page_image("1"), "TIFF", compression="group4", dpi=(100, 100)))


def progressive_jpeg(d):
    """A progressive JPEG (phones and web exports)."""
    return _write(d, "progressive.jpg", _encoded(page_image("RGB"), "JPEG", progressive=True, dpi=(100, 100)))


def jpeg_wrong_exif_orientation(d):
    """An upright page whose EXIF says 'rotate 90' (a phone held sideways)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(d, "exif.jpg", _encoded(page_image("RGB"), "JPEG", exif=exif.tobytes(), dpi=(100, 100)))


def png_bogus_dpi(d):
    """A PNG stating 1 dot per metre (0.0254 dpi) as its resolution."""
    data = _encoded(page_image("L"), "PNG")
    body = b"pHYs" + struct.pack(">IIB", 1, 1, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    at = data.index(b"IDAT") - 4
    return _write(d, "dpi.png", data[:at] + chunk + data[at:])


def tiff_200_pages(d):
    """A bitonal TIFF of 200 small blank pages (a thick dossier through the feeder)."""
    return _write(d, "hai-tram-trang.tif", _tiff_pages(200, (100, 140)))


def tiff_too_many_pages(d):
    """A TIFF of 1,001 small pages: over the per-file page limit."""
    return _write(d, "nghin-trang.tif", _tiff_pages(1001, (32, 32)))


def gif_named_jpg(d):
    """A GIF named .jpg."""
    return _write(d, "anh.jpg", _encoded(page_image("L"), "GIF"))


def webp_named_jpg(d):
    """A WebP named .jpg (saved from a chat app)."""
    return _write(d, "zalo.jpg", _encoded(page_image("RGB"), "WEBP"))


def bmp_named_jpg(d):
    """A BMP named .jpg."""
    return _write(d, "paint.jpg", _encoded(page_image("RGB"), "BMP"))


def heic_named_jpg(d):
    """An HEIC (iPhone photo) container named .jpg: its ISO-BMFF 'ftypheic' header."""
    box = struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0) + b"mif1heic"
    return _write(d, "IMG_0001.jpg", box + b"\x00" * 2000)


def svg_named_png(d):
    """An SVG drawing named .png."""
    svg = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"><text>x</text></svg>'
    return _write(d, "logo.png", svg.encode())


def directory(d):
    """A directory named like a page."""
    path = Path(d) / "folder.jpg"
    path.mkdir()
    return path


def named_pipe(d):
    """A named pipe (FIFO) called scan.jpg: reading it would block for ever."""
    import os

    path = Path(d) / "pipe.jpg"
    os.mkfifo(path)
    return path


# ----------------------------------------------------------------------------- PDFs

def zip_named_pdf(d):
    """A ZIP archive (an e-form export) named .pdf."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("to-khai.xml", "<a/>")
    return _write(d, "ho-so.pdf", buf.getvalue())


def html_named_pdf(d):
    """A web portal's HTML error page saved as .pdf."""
    return _write(d, "tai-ve.pdf", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")


def pdf_header_then_garbage(d):
    """'%PDF-1.7' followed by nothing a PDF reader can use."""
    return _write(d, "garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8)


def pdf_encrypted_user_password(d):
    """A PDF that needs a password to open."""
    return _write(d, "locked.pdf", _pdf_bytes(_pdf_with_image(), encryption=pikepdf.Encryption(owner="a", user="b")))


def pdf_encrypted_owner_only(d):
    """A PDF with only an owner password (opens without one; printing/copying 'restricted')."""
    return _write(d, "restricted.pdf", _pdf_bytes(_pdf_with_image(), encryption=pikepdf.Encryption(
        owner="chu-so-huu", user="", allow=pikepdf.Permissions(extract=False, modify_other=False))))


def pdf_no_pages(d):
    """A PDF with a page tree and zero pages."""
    return _write(d, "empty.pdf", _pdf_bytes(pikepdf.new()))


def pdf_truncated(d):
    """A scanned PDF cut at 60 % (its xref and trailer missing)."""
    data = _pdf_bytes(_pdf_with_image(), compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return _write(d, "cut.pdf", data[: int(len(data) * 0.6)])


def pdf_damaged_xref(d):
    """A scanned PDF whose xref offsets are all wrong (a reader must rebuild it)."""
    data = _pdf_bytes(_pdf_with_image(), object_stream_mode=pikepdf.ObjectStreamMode.disable)
    at = data.rindex(b"xref")
    table = data[at:].replace(b" 00000 n", b" 00000 n")
    broken = bytearray(table)
    for i in range(len(b"xref\n0 6\n"), len(broken) - 60):
        if chr(broken[i]).isdigit() and broken[i - 1:i] != b" ":
            broken[i] = ord("9")
    return _write(d, "xref.pdf", data[:at] + bytes(broken))


def pdf_page_tree_loop(d):
    """A PDF whose page tree holds its own root as a kid (a loop)."""
    pdf = _pdf_with_image()
    root = pdf.Root.Pages
    root.Kids.append(root)
    root.Count = 2
    return _write(d, "loop.pdf", _pdf_bytes(pdf))


def pdf_page_is_own_parent(d):
    """A PDF whose page names itself as its /Parent (an object referring to itself)."""
    pdf = _pdf_with_image()
    page = pdf.pages[0].obj
    page.Parent = page
    return _write(d, "self.pdf", _pdf_bytes(pdf))


def pdf_recursive_form(d):
    """A page that draws a form XObject which draws itself (infinite recursion when rendered)."""
    pdf = _pdf_with_image()
    form = pikepdf.Stream(pdf, b"q 0.9 0 0 0.9 5 5 cm /Fm0 Do Q")
    form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 216, 288]
    form = pdf.make_indirect(form)
    form.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=form))
    page = pdf.pages[0]
    page.Resources.XObject.Fm0 = form
    page.Contents = pikepdf.Stream(pdf, page.Contents.read_bytes() + b"\n/Fm0 Do")
    return _write(d, "recursive.pdf", _pdf_bytes(pdf))


def pdf_javascript(d):
    """A scanned PDF with an OpenAction that runs JavaScript and a JavaScript name tree."""
    pdf = _pdf_with_image()
    js = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('x');")))
    pdf.Root.OpenAction = js
    pdf.Root.Names = pikepdf.Dictionary(JavaScript=pikepdf.Dictionary(Names=[pikepdf.String("a"), js]))
    return _write(d, "script.pdf", _pdf_bytes(pdf))


def pdf_embedded_file(d):
    """A scanned PDF carrying an embedded file (an .exe named invoice) and a file annotation."""
    pdf = _pdf_with_image()
    spec = pikepdf.AttachedFileSpec(pdf, b"MZ\x90\x00" + b"\x00" * 64, filename="hoa-don.exe")
    pdf.attachments["hoa-don.exe"] = spec
    return _write(d, "attached.pdf", _pdf_bytes(pdf))


def pdf_tcvn3_text_layer(d):
    """A scanned page whose text layer is TCVN3 (ABC) bytes shown through a WinAnsi font."""
    return _write(d, "tcvn3.pdf", _pdf_with_text_layer(LEGACY_TCVN3))


def pdf_vni_text_layer(d):
    """A scanned page whose text layer is VNI-Windows bytes shown through a WinAnsi font."""
    return _write(d, "vni.pdf", _pdf_with_text_layer(LEGACY_VNI))


def pdf_already_signed(d):
    """A scanned PDF already carrying a PAdES signature (self-signed certificate)."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND xa thu nghiem")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path = Path(d) / ".signer-cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    signer = signers.SimpleSigner(
        signing_cert=load_cert_from_pemder(str(cert_path)), cert_registry=None,
        signing_key=load_private_key_from_pemder_data(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), None))
    cert_path.unlink()
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(_pdf_bytes(_pdf_with_image()))),
                     signers.PdfSignatureMetadata(field_name="Sig1"), signer=signer, output=out)
    return _write(d, "da-ky.pdf", out.getvalue())


def pdf_huge_second_page(d):
    """A PDF whose second page is 200x200 inches (3.6 gigapixels at 300 dpi)."""
    pdf = _pdf_with_image()
    pdf.add_blank_page(page_size=(14400, 14400))
    return _write(d, "huge.pdf", _pdf_bytes(pdf))


def pdf_absurd_page_box(d):
    """A PDF whose MediaBox is 10^8 points (2 million inches) wide."""
    return _write(d, "box.pdf", _set_mediabox([0, 0, 99_999_999, 99_999_999]))


def pdf_zero_size_box(d):
    """A PDF whose MediaBox has no area ([0 0 0 0])."""
    return _write(d, "zero-box.pdf", _set_mediabox([0, 0, 0, 0]))


def pdf_negative_box(d):
    """A scanned PDF whose MediaBox runs backwards ([216 288 0 0])."""
    return _write(d, "negative-box.pdf", _set_mediabox([216, 288, 0, 0]))


def pdf_bad_box_values(d):
    """A PDF whose MediaBox holds names, not numbers."""
    pdf = _pdf_with_image()
    pdf.pages[0].MediaBox = pikepdf.Array([pikepdf.Name.A, pikepdf.Name.B, pikepdf.Name.C, pikepdf.Name.D])
    return _write(d, "names-box.pdf", _pdf_bytes(pdf))


def pdf_rotated_page(d):
    """A scanned page with /Rotate 90."""
    pdf = _pdf_with_image()
    pdf.pages[0].Rotate = 90
    return _write(d, "rotated.pdf", _pdf_bytes(pdf))


def pdf_invalid_rotate(d):
    """A scanned page with /Rotate 45 (only multiples of 90 are valid)."""
    pdf = _pdf_with_image()
    pdf.pages[0].Rotate = 45
    return _write(d, "rotate-45.pdf", _pdf_bytes(pdf))


def pdf_image_bomb(d):
    """A page drawing a 60000x60000 image XObject from a few kilobytes of Flate data."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(216, 288))
    page = pdf.pages[0]
    stream = pikepdf.Stream(pdf, zlib.compress(b"\xff" * (1 << 20), 9))
    stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    stream.Width, stream.Height, stream.BitsPerComponent = 60000, 60000, 8
    stream.ColorSpace, stream.Filter = pikepdf.Name.DeviceGray, pikepdf.Name.FlateDecode
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream))
    page.Contents = pikepdf.Stream(pdf, b"q 216 0 0 288 0 0 cm /Im0 Do Q")
    return _write(d, "image-bomb.pdf", _pdf_bytes(pdf))


def _pdf_with_encoded(data: bytes, filter_name: str, colour_space: bool = True) -> bytes:
    """A one-page PDF drawing ``data`` as a 200x200 image with ``filter_name``, whatever ``data`` says."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(216, 288))
    stream = pikepdf.Stream(pdf, data)
    stream.Type, stream.Subtype, stream.Filter = pikepdf.Name.XObject, pikepdf.Name.Image, pikepdf.Name(filter_name)
    stream.Width, stream.Height, stream.BitsPerComponent = 200, 200, 8
    if colour_space:
        stream.ColorSpace = pikepdf.Name.DeviceGray
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b"q 216 0 0 288 0 0 cm /Im0 Do Q")
    return _pdf_bytes(pdf)


def pdf_jpeg_header_bomb(d):
    """A page image of 200x200 by its dictionary whose JPEG header says 20000x20000 (774 MB to render 1 KB)."""
    # what poppler allocates is the header's size (the bad-input review)
    jpeg = bytearray(_encoded(Image.new("L", (200, 200), 255), "JPEG", progressive=True))
    at = jpeg.index(b"\xff\xc2")
    jpeg[at + 5:at + 9] = struct.pack(">HH", 20000, 20000)
    return _write(d, "jpeg-header-bomb.pdf", _pdf_with_encoded(bytes(jpeg), "/DCTDecode"))


def pdf_jpx_header_bomb(d):
    """The same with a JPEG 2000 image whose header and codestream say 14000x14000."""
    jp2 = bytearray(_encoded(Image.new("L", (200, 200), 255), "JPEG2000"))
    at = jp2.index(b"ihdr")
    jp2[at + 4:at + 12] = struct.pack(">II", 14000, 14000)
    at = jp2.index(b"\xff\x51")
    jp2[at + 6:at + 14] = struct.pack(">II", 14000, 14000)
    return _write(d, "jpx-header-bomb.pdf", _pdf_with_encoded(bytes(jp2), "/JPXDecode", colour_space=False))


def pdf_jpeg_cut_short(d):
    """A scanned page whose JPEG stream ends halfway through its coded data (poppler drew the rest grey)."""
    jpeg = _encoded(page_image("L", (200, 200), text=True), "JPEG", quality=90)
    return _write(d, "jpeg-cut.pdf", _pdf_with_encoded(jpeg[: len(jpeg) * 2 // 3], "/DCTDecode"))


def pdf_ccitt_noisy(d):
    """A bitonal scanned page whose CCITT G4 stream has random bytes in it (poppler drew the rest white)."""
    page = page_image("1", text=True)
    tiff = Image.open(io.BytesIO(_encoded(page, "TIFF", compression="group4")))
    at, length = tiff.tag_v2[273][0], tiff.tag_v2[279][0]
    g4 = bytearray(tiff.fp.getvalue()[at:at + length])
    g4[length // 3:length // 3 + 40] = bytes((i * 89 + 7) % 256 for i in range(40))
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(216, 288))
    stream = pikepdf.Stream(pdf, bytes(g4))
    stream.Type, stream.Subtype, stream.Filter = pikepdf.Name.XObject, pikepdf.Name.Image, pikepdf.Name.CCITTFaxDecode
    stream.Width, stream.Height, stream.BitsPerComponent = W, H, 1
    stream.ColorSpace = pikepdf.Name.DeviceGray
    stream.DecodeParms = pikepdf.Dictionary(K=-1, Columns=W, Rows=H)
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b"q 216 0 0 288 0 0 cm /Im0 Do Q")
    return _write(d, "ccitt-nhieu.pdf", _pdf_bytes(pdf))


def pdf_jpx_not_an_image(d):
    """A page image filtered as JPEG 2000 whose bytes are a JP2 signature and zeros (it crashed, exit 70)."""
    data = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 200
    return _write(d, "jpx-hong.pdf", _pdf_with_encoded(data, "/JPXDecode", colour_space=False))


def pdf_certificate_encrypted(d):
    """A PDF encrypted for certificates (/Adobe.PubSec): it was called damaged."""
    pdf = _pdf_with_image()
    data = _pdf_bytes(pdf, encryption=pikepdf.Encryption(owner="o", user="", R=4, aes=True))
    return _write(d, "ma-hoa-chung-thu.pdf", data.replace(b"/Filter /Standard", b"/Filter /Adobe.PubSec"))


def pdf_broken_content_stream(d):
    """A scanned page whose content stream ends in operators that do not exist."""
    pdf = _pdf_with_image()
    page = pdf.pages[0]
    page.Contents = pikepdf.Stream(pdf, page.Contents.read_bytes() + b"\n1 2 foo ] >> BT ( unterminated")
    return _write(d, "content.pdf", _pdf_bytes(pdf))


def pdf_too_many_pages(d):
    """A PDF of 1,001 blank pages: over the per-file page limit."""
    pdf = pikepdf.new()
    for _ in range(1001):
        pdf.add_blank_page(page_size=(72, 72))
    return _write(d, "nghin-trang.pdf", _pdf_bytes(pdf))


def pdf_cropped_to_the_scan(d):
    """A scan drawn on a 40-inch sheet (MediaBox) whose CropBox shows only the scan, as an editor crops a page."""
    pdf = _pdf_with_image(page_image("L", text=True))
    pdf.pages[0].obj["/MediaBox"] = pikepdf.Array([0, 0, 2880, 2880])
    pdf.pages[0].obj["/CropBox"] = pikepdf.Array([0, 0, 216, 288])
    return _write(d, "cropped.pdf", _pdf_bytes(pdf))


def pdf_missing_mediabox(d):
    """A scanned page with no MediaBox anywhere in its page tree."""
    pdf = _pdf_with_image()
    del pdf.pages[0].obj["/MediaBox"]
    return _write(d, "no-box.pdf", _pdf_bytes(pdf))


KINDS: list[Callable[[Path], Path]] = [
    zero_bytes, truncated_jpeg, corrupt_jpeg, jpeg_zeroed_scan_data, jpeg_noisy_scan_data, jpeg_soi_only, truncated_png, png_corrupt_idat, png_text_chunk_bomb,
    truncated_tiff, tiff_bad_ifd_offset, tiff_corrupt_deflate, tiff_truncated_second_page, tiff_damaged_second_header,
    text_file, png_named_jpg, jpeg_named_pdf, pdf_named_tif, no_extension, upper_case_extension,
    vietnamese_file_name, one_pixel_png, thin_strip_png, png_bomb_header, png_bomb_real, tiff_bomb_header,
    jpeg_bomb_header, too_many_pixels, gray16_png, gray16_tiff, int32_tiff, uint32_tiff, float32_tiff,
    int16_tiff, white_is_zero_tiff, cmyk_alpha_tiff, tiff_with_thumbnail, png_transparent_paper, png16_transparent_paper, mpo_phone_photo,
    jpeg_12_bit, tiff_webp_compressed, cmyk_jpeg, cmyk_tiff, palette_png, rgba_png, la_png,
    bitonal_g4_tiff, tiff_g4_noisy_strip, progressive_jpeg, jpeg_wrong_exif_orientation, png_bogus_dpi, tiff_200_pages,
    tiff_too_many_pages, gif_named_jpg, webp_named_jpg, bmp_named_jpg, heic_named_jpg, svg_named_png, directory,
    named_pipe,
    zip_named_pdf, html_named_pdf, pdf_header_then_garbage, pdf_encrypted_user_password, pdf_encrypted_owner_only,
    pdf_no_pages, pdf_truncated, pdf_damaged_xref, pdf_page_tree_loop, pdf_page_is_own_parent, pdf_recursive_form,
    pdf_javascript, pdf_embedded_file, pdf_tcvn3_text_layer, pdf_vni_text_layer, pdf_already_signed,
    pdf_huge_second_page, pdf_absurd_page_box, pdf_zero_size_box, pdf_negative_box, pdf_bad_box_values,
    pdf_rotated_page, pdf_invalid_rotate, pdf_image_bomb, pdf_broken_content_stream, pdf_too_many_pages,
    pdf_missing_mediabox, pdf_cropped_to_the_scan, pdf_jpeg_header_bomb, pdf_jpx_header_bomb, pdf_jpx_not_an_image,
    pdf_certificate_encrypted, pdf_jpeg_cut_short, pdf_ccitt_noisy,
]


def build(directory: Path) -> dict[str, Path]:
    """Write every kind into its own sub-directory of ``directory``; {kind: path}."""
    made = {}
    for make in KINDS:
        sub = Path(directory) / make.__name__
        sub.mkdir(parents=True, exist_ok=True)
        made[make.__name__] = make(sub)
    return made
