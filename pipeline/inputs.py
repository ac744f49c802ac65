"""Input files: read and check the citizen's bytes, then rasterise one page at a time.

``read_source`` runs before anything is stored or processed: it refuses what is not a
readable JPEG, PNG, TIFF or scanned PDF with an InputError naming the file (and the
page). ``load_page`` decodes a single page so a page task never holds the whole file's
rasters; it is what a worker on another machine would call with the original's bytes.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageSequence, UnidentifiedImageError

from ocr.engine import PageTimeUp, time_left

from .errors import ConfigError, InputError

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff", "pdf": "application/pdf"}
EXTENSIONS = {"jpeg": {".jpg", ".jpeg", ".jpe"}, "png": {".png"}, "tiff": {".tif", ".tiff"}, "pdf": {".pdf"}}
EXTENSION = {"jpeg": "jpg", "png": "png", "tiff": "tif", "pdf": "pdf"}  # the one sohoa writes files of a kind with
DEFAULT_DPI = 300
MIN_DPI, MAX_DPI = 72, 1200  # PDF pages are rasterised within this
STATED_MIN, STATED_MAX = 10, 9600  # a resolution an image file states outside this is junk
MAX_PAGES = 1000  # pages in one input file: a thicker bundle is split before scanning (docs/robustness.md)
MIN_SIDE = 32     # pixels: a narrower image cannot hold one readable line, whatever its resolution
# pixels: tesseract reads no image over 32,767 a side, JPEG none over 65,500 (a 1,200-dpi A1 sheet is 28,000)
MAX_SIDE = 30_000
RASTER_TIMEOUT = 300  # seconds poppler may take to rasterise one PDF page (or read a PDF's page count)


def _why(error: BaseException, file: str) -> str:
    """A library's message about the file, without the address of our in-memory copy of it."""
    text = re.sub(r"(stream )?<_io\.BytesIO object at 0x[0-9a-f]+>( \(([^)]*)\))?:?",
                  lambda m: f"{Path(file).name}" + (f" ({m.group(3)})" if m.group(3) else "") + (":" if m.group(0).endswith(":") else ""),
                  str(error))
    return text.strip()


@dataclass(frozen=True)
class Source:
    """One input file, read once, checked, with its page count."""

    path: str
    name: str
    kind: str  # jpeg | png | tiff | pdf
    data: bytes
    sha256: str
    page_count: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]

    @property
    def ext(self) -> str:
        return EXTENSION[self.kind]


def stated_extension(name: str) -> str:
    """A file name's extension as a person wrote it ('.jpg'), in lower case; '' when it has none, or
    what follows its last dot is no extension ('Biên bản ngày 15.3.2024', 'Nguyễn Văn A. CCCD')."""
    suffix = Path(name).suffix
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,4}", suffix) else ""


def without_extension(name: str) -> str:
    """The name without its stated extension (``stated_extension``): a document's title."""
    return name[:-len(stated_extension(name))] if stated_extension(name) else name


def sniff(data: bytes) -> str | None:
    """The file type from its first bytes; the extension is only checked against it."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    return None


def read_source(path: str | Path, max_pixels: int) -> Source:
    path = Path(path)
    name = path.name
    if path.is_dir():
        raise InputError(str(path), "là một thư mục, không phải tệp (is a directory)")
    if path.exists() and not path.is_file():  # a pipe or a device would block or never end
        raise InputError(str(path), "không phải tệp thông thường (not a regular file)")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "không tồn tại (file not found)") from None
    except OSError as e:
        raise InputError(str(path), f"không đọc được ({e.strerror})") from None
    if not data:
        raise InputError(str(path), "tệp rỗng, 0 byte (empty file)")
    kind = sniff(data)
    if kind is None:
        raise InputError(str(path), "không phải JPEG, PNG, TIFF hay PDF (unsupported file type)")
    if (stated := stated_extension(name)) and stated not in EXTENSIONS[kind]:  # none (a blob): the content says
        raise InputError(str(path), f"phần mở rộng '{path.suffix}' không khớp nội dung "
                                    f"{kind.upper()} (extension does not match content)")
    count = (_pdf_page_count(str(path), data, max_pixels) if kind == "pdf"
             else _image_page_count(str(path), data, max_pixels))
    return Source(str(path), name, kind, data, hashlib.sha256(data).hexdigest(), count)


def _vi(number: int) -> str:
    """A whole number as Vietnamese writes it: 150.000.000."""
    return f"{number:,}".replace(",", ".")


def _readable(data: bytes | Path):
    """What Pillow and pikepdf open: the bytes in memory, or the file (read as needed)."""
    return io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data


def open_image(file: str, data: bytes | Path, max_pixels: int) -> Image.Image:
    """Open (header only) with Pillow's decompression-bomb guard set to our limit for this call;
    every frame is checked again against the limit before it is decoded."""
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(_readable(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(file, f"ảnh vượt quá giới hạn {_vi(max_pixels)} điểm ảnh (image over pixel limit)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        layout = _tiff_layout(data) if isinstance(e, UnidentifiedImageError) else None
        if layout:
            raise InputError(file, f"kiểu TIFF này không đọc được ({layout}); hãy lưu lại trang thành TIFF 8 bit, "
                                   "PNG hoặc JPEG (unsupported kind of TIFF)") from None
        precision = _jpeg_precision(data) if isinstance(e, UnidentifiedImageError) else None
        if precision not in (None, 8):
            raise InputError(file, f"ảnh JPEG {precision} bit không đọc được; hãy lưu lại trang thành JPEG 8 bit, "
                                   f"PNG hoặc TIFF (unsupported {precision}-bit JPEG)") from None
        raise InputError(file, f"ảnh hỏng hoặc không đọc được ({_why(e, file)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


TIFF_PHOTOMETRIC = {0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr",
                    8: "CIELab", 9: "ICCLab", 10: "ITULab", 32844: "LogL", 32845: "LogLuv", 34892: "LinearRaw"}
TIFF_SAMPLE_FORMAT = {1: "", 2: ", signed", 3: ", floating point", 4: ", void", 5: ", complex", 6: ", complex float"}
TIFF_COMPRESSION = {1: "uncompressed", 2: "CCITT RLE", 3: "CCITT G3", 4: "CCITT G4", 5: "LZW", 6: "old JPEG", 7: "JPEG",
                    8: "Deflate", 32773: "PackBits", 32946: "Deflate", 34712: "JPEG 2000", 34887: "LERC",
                    34925: "LZMA", 50000: "Zstandard", 50001: "WebP", 50002: "JPEG XL"}


def _tiff_layout(data: bytes | Path) -> str | None:
    """What the first page of a TIFF Pillow cannot open holds, from its first directory, when
    that directory can be read ("CMYK, 5 samples of 8 bits, extra samples 2, LZW"): such a
    file is a kind of TIFF Pillow has no decoder for, not a damaged one."""
    from PIL import TiffImagePlugin

    def first(tag: int, default: int) -> int:
        value = directory.get(tag, default)
        value = int(value[0] if isinstance(value, tuple) and value else value)
        if not 0 <= value <= 65_535:  # every field described here is a SHORT
            raise ValueError(tag)
        return value

    try:
        with _readable(data) if isinstance(data, (bytes, bytearray)) else open(data, "rb") as f:
            header = f.read(8)
            if sniff(header) != "tiff":
                return None
            directory = TiffImagePlugin.ImageFileDirectory_v2(header)
            f.seek(directory.next)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Corrupt EXIF data": Pillow's word for a short directory
                directory.load(f)
        if 256 not in directory or 257 not in directory or not (273 in directory or 324 in directory):
            return None  # no size or no pixels: a damaged directory, not a kind of TIFF
        photometric, fmt, compression, samples = first(262, -1), first(339, 1), first(259, 1), first(277, 1)
        parts = [TIFF_PHOTOMETRIC.get(photometric, f"PhotometricInterpretation {photometric}"),
                 f"{samples} sample{'s' if samples != 1 else ''} of {first(258, 1)} bits"
                 f"{TIFF_SAMPLE_FORMAT.get(fmt, f', sample format {fmt}')}"]
        extra = directory.get(338)
        if extra:
            extra = extra if isinstance(extra, tuple) else (extra,)
            shown = " ".join(str(int(v)) for v in extra[:4]) + (" ..." if len(extra) > 4 else "")
            parts.append("extra samples " + shown)
        parts.append(TIFF_COMPRESSION.get(compression, f"compression {compression}"))
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error, EOFError):
        return None  # not even its first directory reads: a damaged file
    return ", ".join(parts)


def _image_page_count(file: str, data: bytes, max_pixels: int) -> int:
    """Every page's header first (count, size: cheap), then every page decoded; a JPEG read by
    libjpeg-turbo instead (``jpeg_damage``), a TIFF of CCITT or JPEG strips by libtiff too (``tiff_damage``)."""
    img = open_image(file, data, max_pixels)
    frames = page_frames(file, img, max_pixels)
    if img.format in ("JPEG", "MPO"):  # one page, decoded whole where it is processed
        if damage := jpeg_damage(data):
            raise InputError(file, f"ảnh bị cắt cụt hoặc hỏng (JPEG: {damage}): một phần trang sẽ hiện xám hoặc lệch "
                                   "màu; hãy quét lại trang hoặc chép lại tệp từ máy quét (truncated or corrupt image)", 1)
        return 1
    silent = False  # a page whose decoder reports damage only on stderr
    for number, index in enumerate(frames, start=1):
        img.seek(index)
        _load(file, img, number)
        silent = silent or img.format == "TIFF" and _tiff_field(img, 259, 1) in SILENT_ON_DAMAGE
    if silent and (damaged := tiff_damage(data, frames)):
        page, why = damaged
        raise InputError(file, f"ảnh bị cắt cụt hoặc hỏng (TIFF: {why}): một phần trang sẽ mất hoặc sai; hãy quét lại "
                               "trang hoặc chép lại tệp từ máy quét (truncated or corrupt image)", page)
    return len(frames)


SILENT_ON_DAMAGE = {2, 3, 4, 6, 7}  # TIFF compressions (CCITT, JPEG) Pillow decodes through damage; it raises on the others

# libtiff's decoders name themselves in their errors (Fax4Decode, LZWDecode, ZIPDecode, PackBitsDecode,
# JPEGLib for a JPEG strip): an error from another part (a tag it does not know) is no damage of the pixels
_DECODER_ERROR = re.compile(r"^(\w*Decode\w*|JPEGLib|OJPEG\w*): (?!Warning)(.+)$", re.MULTILINE)


def tiff_damage(data: bytes, frames: list[int]) -> tuple[int, str] | None:
    """(page, libtiff's message) of the first page of a TIFF whose coded data libtiff's decoder
    stops on, or None when every page in ``frames`` (directory numbers) reads whole. Pillow's
    libtiff prints such an error and returns the page with the rest of the strip white: a G4
    strip with random bytes in it was accepted with the lines below them gone. libtiff's own
    ``tiffinfo -D`` (libtiff-tools) exits 1 on them: on random bytes in 24 of 26 G4 and 16 of 25
    JPEG-in-TIFF copies of the real scans, of which Pillow refused none; on none of the 8 real TIFF
    scans (``python -m bench.damaged_scans``). Zeros in a G4 strip mostly decode as white lines, and
    go unseen by both. The bytes go to it in memory (memfd), never to disk."""
    fd = os.memfd_create("sohoa-tiff")
    try:
        with open(fd, "wb", closefd=False) as copy:
            copy.write(data)

        def decoder_error(*directory: str) -> str | None:
            try:
                done = subprocess.run(["tiffinfo", "-D", *directory, f"/dev/fd/{fd}"], pass_fds=(fd,),
                                      capture_output=True, timeout=RASTER_TIMEOUT)
            except FileNotFoundError:
                raise ConfigError("Thiếu chương trình tiffinfo (gói Debian libtiff-tools); hãy chạy scripts/setup.sh",
                                  "tiffinfo not found: install libtiff-tools") from None
            found = _DECODER_ERROR.search(done.stderr.decode("utf-8", "replace")) if done.returncode else None
            return f"{found[1]}: {found[2].strip().rstrip('.')}" if found else None

        if (whole := decoder_error()) is None:
            return None
        # tiffinfo reads one directory when given its number: the page it stops on is found one by one
        return next(((n, why) for n, index in enumerate(frames, start=1) if (why := decoder_error(f"-{index}"))),
                    (1, whole))
    except subprocess.TimeoutExpired:
        return None  # Pillow decoded every page already: a slow check is no reason to refuse them
    finally:
        os.close(fd)


_DECODED_AS = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}  # libjpeg-turbo's colour conversions; RGB else


def jpeg_damage(data: bytes) -> str | None:
    """What libjpeg finds wrong in a JPEG's bytes (its first image: an MPO's photo), or None when it
    reads clean. Pillow decodes through libjpeg's warnings and shows the blocks it could not read
    grey or smeared: a scan whose coded data holds zeros or random bytes (a failed copy, a bad
    sector) would be stored as if whole. libjpeg-turbo's own decoder (simplejpeg, strict) makes
    them errors, reading every coded block at 1/8 scale (a 300-dpi colour page: 0.01 s, a third of
    Pillow's draft decode it replaces). On 300 damaged copies of the 30 real JPEG scans it refused
    297, Pillow 181, and none of the scans themselves (``python -m bench.damaged_scans``)."""
    try:
        width, height, _, colour = simplejpeg.decode_jpeg_header(data)
        simplejpeg.decode_jpeg(data, colorspace=_DECODED_AS.get(colour, "RGB"), strict=True,
                               min_width=max(1, width // 8), min_height=max(1, height // 8))
    except ValueError as e:  # its message names the TurboJPEG call first: "tjDecompressHeader3(): ..."
        return re.sub(r"^\w+\(\): ", "", str(e).strip()) or type(e).__name__
    return None


def page_frames(file: str, img: Image.Image, max_pixels: int, until: int | None = None,
                sizes: bool = True) -> list[int]:
    """The frames of an image file that are its pages, their headers checked: every frame but a
    TIFF's reduced-resolution copies and masks (``_is_thumbnail``: a scanner's or a camera's
    preview), unless every frame is one; of an MPO (a phone's photo, Ultra HDR) only the first
    image, the photo itself: the others are its gain map, depth map or second view. ``until``:
    stop once that many pages are found (a page read on its own need not walk the rest);
    ``sizes=False``: the pages' sizes are left for the caller to check, page by page."""
    if img.format == "MPO":
        if sizes:
            _check_size(file, img.width, img.height, 1, max_pixels)
        return [0]
    pages, thumbnails, frames = [], [], ImageSequence.Iterator(img)
    while until is None or len(pages) < until:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, EOFError) as e:
            # Pillow reads the next page's header only when it seeks there: a damaged header of
            # page 2 raises here (TypeError "Missing dimensions", KeyError on a missing tag)
            raise InputError(file, f"phần đầu của trang bị hỏng ({type(e).__name__}: {e}) "
                                   "(damaged page header)", len(pages) + 1) from None
        index = len(pages) + len(thumbnails)
        kept = thumbnails if _is_thumbnail(frame) else pages
        kept.append((index, frame.width, frame.height))
        if len(kept) > MAX_PAGES:
            raise InputError(file, f"tệp có hơn {MAX_PAGES} trang; hãy chia thành nhiều tệp "
                                   f"(more than {MAX_PAGES} pages in one file)")
        if kept is pages and sizes:
            _check_size(file, frame.width, frame.height, len(pages), max_pixels)
    if not pages and sizes:
        for number, (_, width, height) in enumerate(thumbnails, start=1):
            _check_size(file, width, height, number, max_pixels)
    return [index for index, _, _ in pages or thumbnails]


THUMBNAIL_MAX_SIDE = 1024  # pixels: a frame marked as a preview but larger is kept as a page


def _is_thumbnail(frame: Image.Image) -> bool:
    """A TIFF frame that says it is a reduced-resolution copy of another or a transparency mask
    (NewSubfileType bits 0 and 2), not a page of its own, and is small enough to be one: a
    full-size page a scanner marked so by mistake is kept rather than lost (an extra page is
    seen and can be removed; a dropped one is not)."""
    return bool((_tiff_field(frame, 254, 0) or 0) & 0b101) and max(frame.size) <= THUMBNAIL_MAX_SIDE


def _check_size(file: str, width: int, height: int, page: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError(file, f"ảnh {width}x{height} vượt quá giới hạn {_vi(max_pixels)} điểm ảnh "
                               "(image over pixel limit)", page)
    if max(width, height) > MAX_SIDE:
        raise InputError(file, f"ảnh {width}x{height} có một cạnh dài hơn {_vi(MAX_SIDE)} điểm ảnh, không phải "
                               "một trang giấy quét; hãy cắt thành nhiều trang "
                               f"(longer than {MAX_SIDE:,} pixels on a side)", page)
    if min(width, height) < MIN_SIDE:
        raise InputError(file, f"ảnh chỉ {width}x{height} điểm ảnh, quá nhỏ để là một trang giấy quét "
                               f"(smaller than {MIN_SIDE} pixels on a side)", page)


def decoded_frame(file: str, frame: Image.Image, page: int, max_pixels: int) -> Image.Image:
    _check_size(file, frame.width, frame.height, page, max_pixels)
    _load(file, frame, page)
    return frame


def _load(file: str, frame: Image.Image, page: int) -> None:
    try:
        frame.load()
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error, ZeroDivisionError) as e:
        # Pillow's plugins raise more than OSError on damaged files: a TIFF strip offset of type
        # RATIONAL gives TypeError (tests/fuzz, test_fuzzing.py)
        compression = _tiff_field(frame, 259, 1)
        if compression is not None and compression not in TIFF_DECODED:
            name = TIFF_COMPRESSION.get(compression, f"compression {compression}")
            raise InputError(file, f"không giải mã được ảnh TIFF nén kiểu {name}: kiểu nén này có thể không được "
                                   "hỗ trợ, hoặc tệp hỏng; hãy lưu lại trang thành TIFF không nén hoặc LZW, PNG "
                                   "hoặc JPEG "
                                   f"(undecodable {name} TIFF)", page) from None
        raise InputError(file, f"ảnh bị cắt cụt hoặc hỏng ({_why(e, file)}) (truncated or corrupt image)", page) from None


TIFF_DECODED = {1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946}  # what Pillow and any libtiff decode: a failure there is damage


def _tiff_field(frame: Image.Image, tag: int, default: int | None = None) -> int | None:
    """The (first) value of a field of a TIFF frame's directory, ``default`` when the frame has
    none; None for another kind of file, or a value that is no integer."""
    tags = getattr(frame, "tag_v2", None)
    if tags is None:
        return None
    value = tags.get(tag, default)
    try:
        return int(value[0] if isinstance(value, tuple) else value) if value is not None else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _jpeg_precision(data: bytes | Path) -> int | None:
    """The bits per sample a JPEG's frame header states (8, or 12 and 16, which Pillow does not
    read), None when the file is no JPEG or has no frame header in its first 64 KiB."""
    try:
        with _readable(data) if isinstance(data, (bytes, bytearray)) else open(data, "rb") as f:
            head = f.read(65_536)
    except OSError:
        return None
    frame = jpeg_frame(head) if sniff(head) == "jpeg" else None
    return frame[1] if frame else None


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(SOF marker 0xC0..0xCF, bits per sample) of a JPEG file's frame header, None when none is found."""
    i = 2
    while i + 4 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker, data[i + 4]
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _pdf_page_count(file: str, data: bytes, max_pixels: int) -> int:
    """Page count of a readable PDF; every page's raster size is checked before any rendering."""
    import pikepdf

    number = None  # the page being checked, for the error
    checked: set = set()  # indirect images already checked: one may be on many pages
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            count = len(pdf.pages)
            if count > MAX_PAGES:
                raise InputError(file, f"PDF có {count} trang, quá {MAX_PAGES} trang một tệp; hãy chia thành nhiều tệp "
                                       f"(more than {MAX_PAGES} pages in one file)")
            for number, page in enumerate(pdf.pages, start=1):
                width_in, height_in, dpi, _ = _pdf_page_geometry(page)
                if min(width_in, height_in) * 72 < 1:
                    raise InputError(file, "trang PDF có kích thước 0 (MediaBox rỗng) (page has no area)", number)
                pixels = int(width_in * dpi) * int(height_in * dpi)
                if pixels > max_pixels:
                    raise InputError(file, f"trang {width_in:.0f}x{height_in:.0f} inch ở {dpi} dpi là {_vi(pixels)} điểm ảnh, "
                                           f"vượt quá giới hạn {_vi(max_pixels)} (page over pixel limit)", number)
                if max(width_in, height_in) * dpi > MAX_SIDE:
                    raise InputError(file, f"trang {width_in:.0f}x{height_in:.0f} inch ở {dpi} dpi có một cạnh dài hơn "
                                           f"{_vi(MAX_SIDE)} điểm ảnh; hãy cắt thành nhiều trang "
                                           f"(longer than {MAX_SIDE:,} pixels on a side)", number)
                for raw in page.get_images().values():
                    if raw.objgen == (0, 0) or raw.objgen not in checked:
                        _check_page_image(file, raw, number, max_pixels)
                        checked.add(raw.objgen)
    except pikepdf.PasswordError:
        raise InputError(file, "PDF được mã hóa/có mật khẩu, không xử lý được (encrypted PDF)") from None
    except pikepdf.PdfError as e:
        if "unsupported encryption" in str(e):  # a certificate (/Adobe.PubSec) or another handler
            raise InputError(file, "PDF được mã hóa bằng chứng thư hoặc cách khác mật khẩu, không xử lý được "
                                   f"(encrypted PDF: {_why(e, file)})") from None
        raise InputError(file, f"PDF hỏng hoặc không đọc được ({_why(e, file)})") from None
    except OSError as e:  # an image Pillow cannot identify (a JPEG 2000 that is not one), read for its size
        raise InputError(file, f"PDF hỏng: ảnh trong trang không đọc được ({type(e).__name__}: {_why(e, file)}) "
                               "(damaged image in the page)", number) from None
    except (TypeError, ValueError, ArithmeticError, NotImplementedError, KeyError) as e:
        # a page or image dictionary whose values have the wrong type (/Rotate /X, /Width /W): tests/fuzz
        raise InputError(file, f"PDF hỏng: từ điển trang có giá trị sai kiểu ({type(e).__name__}: {_why(e, file)}) "
                               "(damaged page dictionary)", number) from None
    except RuntimeError as e:  # qpdf's own run-time errors ("/Count is wrong after flattening pages tree")
        raise InputError(file, f"PDF hỏng hoặc không đọc được ({_why(e, file)})") from None
    if count == 0:
        raise InputError(file, "PDF không có trang nào (PDF has no pages)")
    _poppler_reads(file, data, count)
    return count


def _check_page_image(file: str, raw, page: int, max_pixels: int) -> None:
    """Refuse an image of a PDF page that poppler would decode into more than ``max_pixels`` (it
    decodes each whole, whatever size it is drawn at) or only partly (a damaged JPEG or CCITT image)."""
    width, height = int(raw.get("/Width", 0)), int(raw.get("/Height", 0))
    names = _filters(raw)
    coded = raw.read_raw_bytes() if names[-1:] in (["/DCTDecode"], ["/JPXDecode"]) else b""  # read once
    stated = _encoded_size(names, coded) if coded else None
    if stated is not None:  # poppler's decoder allocates what the image's own header says
        width, height = max(width, stated[0]), max(height, stated[1])
    if width * height > max_pixels:
        raise InputError(file, f"ảnh trong trang {width}x{height} vượt quá giới hạn {_vi(max_pixels)} "
                               "điểm ảnh (embedded image over pixel limit)", page)
    if (jpeg := _dct_bytes(names, coded)) is not None and (damage := jpeg_damage(jpeg)):
        raise InputError(file, f"PDF hỏng: ảnh JPEG trong trang bị cắt cụt hoặc hỏng ({damage}): một phần trang sẽ "
                               "hiện xám hoặc lệch màu; hãy quét lại trang (damaged JPEG image in the page)", page)
    if names == ["/CCITTFaxDecode"] and (fax := _ccitt_as_tiff(raw)) is not None and (
            damaged := tiff_damage(fax, [0])):
        raise InputError(file, f"PDF hỏng: ảnh đen trắng (CCITT) trong trang bị cắt cụt hoặc hỏng ({damaged[1]}): một "
                               "phần trang sẽ mất; hãy quét lại trang (damaged CCITT image in the page)", page)


def _ccitt_as_tiff(raw) -> bytes | None:
    """A PDF page's CCITT G3/G4 image (a bitonal scan) as a one-page TIFF, as pikepdf writes it,
    for libtiff to check (poppler draws a damaged one with the rest of the page white, saying so
    only on stderr); None for one pikepdf cannot wrap."""
    import pikepdf

    out = io.BytesIO()
    try:
        pikepdf.PdfImage(raw).extract_to(stream=out)
    except (pikepdf.PdfError, pikepdf.UnsupportedImageTypeError, NotImplementedError, ValueError, KeyError, TypeError):
        return None
    return out.getvalue()


_DCT_BYTES = 64 << 20  # a page's JPEG behind another filter is inflated up to this to be checked (a 600-dpi colour A3: 15 MB)


def _dct_bytes(names: list[str], coded: bytes) -> bytes | None:
    """A PDF image's JPEG as a JPEG file: its stream's bytes (``coded``, filtered by ``names``)
    once any filter before /DCTDecode is undone, ended by an end-of-image marker. Writers leave
    that out, or pad after it, and poppler does not need it, so its lack is no damage; data cut
    short before it still is. None for another kind of image, or one behind a filter not read
    here or inflating past _DCT_BYTES."""
    if names[-1:] != ["/DCTDecode"]:
        return None
    data = _decoded_start(coded, names[:-1], _DCT_BYTES)
    if data is None or len(data) >= _DCT_BYTES:
        return None
    data = data.rstrip(b"\x00\t\n\r\x0c ")
    return data if data.endswith(b"\xff\xd9") else data + b"\xff\xd9"


def _filters(raw) -> list[str]:
    import pikepdf

    filters = raw.get("/Filter")
    return [str(f) for f in filters] if isinstance(filters, pikepdf.Array) else [str(filters)] if filters else []


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG frame headers (not DHT, JPG, DAC)


def _encoded_size(names: list[str], coded: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG or JPEG 2000 image of a PDF (its stream's bytes ``coded``, filtered
    by ``names``) states in its own header, or None (another kind, a filter before it that is not
    read here, or no header found). poppler allocates that, whatever the image dictionary says: a
    1 KB stream whose header claimed 20000x20000 pixels under /Width 200 took 774 MB to render
    (the bad-input review), and the size can claim 65535x65535."""
    if names[-1:] not in (["/DCTDecode"], ["/JPXDecode"]):
        return None
    data = _decoded_start(coded, names[:-1], _HEADER_BYTES)
    if data is None:
        return None
    return _jpeg_size(data) if names[-1] == "/DCTDecode" else _jpx_size(data)


_HEADER_BYTES = 1 << 20  # a JPEG's or JPEG 2000's header is in its first bytes: never inflate a stream whole


def _decoded_start(data: bytes, filters: list[str], limit: int) -> bytes | None:
    """The first ``limit`` bytes of ``data`` once the filters before the image's own are undone:
    Flate by zlib, never more out; the ASCII and run-length filters by qpdf (PDFs made from
    PostScript put ASCII85 before DCT); None for any other (LZW) or bytes that do not decode."""
    import zlib

    import pikepdf

    for name in filters:
        try:
            if name == "/FlateDecode":
                data = zlib.decompressobj().decompress(data, limit)
            elif name in ("/ASCII85Decode", "/ASCIIHexDecode", "/RunLengthDecode"):
                with pikepdf.new() as scratch:
                    data = pikepdf.Stream(scratch, data, Filter=pikepdf.Name(name)).read_bytes()[:limit]
            else:
                return None
        except (zlib.error, pikepdf.PdfError):  # nothing poppler can decode either
            return None
    return data


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame header's size, found as libjpeg finds it: bytes that are not a marker (anything
    not after 0xFF, and 0xFF 0x00) are skipped, and a scan before any frame header ends the search."""
    at = 2
    while at + 9 <= len(data):
        marker = data[at + 1]
        if data[at] != 0xFF:  # junk before a marker: on to the next 0xFF
            at = data.find(b"\xff", at)
            if at < 0:
                return None
        elif marker == 0xFF:  # a fill byte
            at += 1
        elif marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no marker, or none with a length
            at += 2
        elif marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        elif marker == 0xDA:  # a scan with no frame header: libjpeg refuses it
            return None
        else:
            at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def _jpx_size(data: bytes) -> tuple[int, int] | None:
    """The codestream's image size (SIZ: Xsiz - XOsiz by Ysiz - YOsiz), which OpenJPEG decodes,
    and a JP2 file's own header box (ihdr), whichever is larger."""
    sizes = []
    if (at := data.find(b"\xff\x4f\xff\x51")) >= 0 and len(data) >= at + 24:
        x, y, x0, y0 = struct.unpack(">IIII", data[at + 8:at + 24])
        sizes.append((max(0, x - x0), max(0, y - y0)))
    if (at := data.find(b"ihdr")) >= 0 and len(data) >= at + 12:
        height, width = struct.unpack(">II", data[at + 4:at + 12])
        sizes.append((width, height))
    return (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else None


def _poppler_reads(file: str, data: bytes, count: int) -> None:
    """The renderer must read the file as pikepdf does: a PDF only qpdf can repair (a truncated
    one) would otherwise be accepted here and fail page by page after its original is stored."""
    from pdf2image import pdfinfo_from_bytes
    from pdf2image.exceptions import PDFPageCountError, PDFPopplerTimeoutError, PDFSyntaxError

    try:
        pages = int(pdfinfo_from_bytes(data, timeout=RASTER_TIMEOUT).get("Pages", -1))
    except (PDFPageCountError, PDFSyntaxError, PDFPopplerTimeoutError, OSError, ValueError) as e:
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise InputError(file, f"PDF hỏng, không đọc được cấu trúc ({first.strip()}) (damaged PDF)") from None
    if pages != count:
        raise InputError(file, f"PDF hỏng: đọc được {pages} hoặc {count} trang tùy chương trình "
                               "(damaged PDF: page count differs between readers)")


def _normalise_mode(frame: Image.Image) -> Image.Image:
    """RGB, L or 1 only; keep bitonal and grey as they are (no fake colour). What is transparent
    (an alpha channel, or a PNG's transparent colour) is paper: white."""
    if "transparency" in frame.info and frame.mode in ("1", "I", "I;16", "I;16B", "I;16L"):
        # a bitonal or 16-bit grey PNG's transparent grey (tRNS), which Pillow leaves aside as these
        # modes have no alpha: found in the file's own values, then painted white on the page
        clear = np.asarray(frame) == frame.info["transparency"]
        opaque = frame.copy()
        del opaque.info["transparency"]
        page = _normalise_mode(opaque)
        pixels = np.array(page)
        pixels[clear] = True if page.mode == "1" else 255
        return Image.fromarray(pixels)  # grey (uint8) or bitonal (bool), as the page was
    transparent = "transparency" in frame.info and frame.mode in ("L", "RGB", "P")
    if frame.mode in ("RGB", "L", "1") and not transparent:
        return frame.copy()
    if frame.mode in ("I;16", "I;16B", "I;16L"):
        # a TIFF may say its samples hold fewer bits (a 12-bit scanner's): scaled from its range
        top = 2 ** min(16, max(8, _tiff_field(frame, 258) or 16))
        grey = frame.point(lambda v: v * 256 / top).convert("L")
        return grey.point(lambda v: 255 - v) if _white_is_zero(frame) else grey
    if frame.mode in ("I", "F"):
        return _deep_grey(frame)
    if frame.mode == "P" and not transparent:
        return frame.convert("RGB" if _palette_has_colour(frame) else "L")
    if frame.mode in ("RGBA", "LA", "PA") or transparent:
        rgba = frame.convert("RGBA")
        bg = Image.new("RGB", frame.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        grey = frame.mode in ("L", "LA") or (frame.mode in ("P", "PA") and not _has_colour(bg))
        return bg.convert("L") if grey else bg
    return frame.convert("RGB")


def _deep_grey(frame: Image.Image) -> Image.Image:
    """A grey page of 32-bit integers, floats or signed 16-bit integers as 8-bit grey. Its file
    does not say what range the values span. Converters write such pages either keeping 8- or 16-bit values (or 0-1 for
    floats) in the wider type, or over the type's whole range (ImageMagick's unsigned 32 bits). So
    the values are scaled from the smallest of those ranges that holds them, give or take a
    little overshoot (0-1 for floats, 0-255, 0-65,535), else from the type's own (integers) or
    their largest (floats); signed 16-bit values from 0-32,767, or over their whole range when
    some are negative. A value that is no number (NaN, infinite) is taken as paper. Taken as
    0-65,535 before, a page of 0-255 values came out black, and a signed 16-bit one half bright."""
    fmt = _tiff_field(frame, 339, 1)  # a TIFF's: SampleFormat 1 (the default) is unsigned
    signed = fmt is None or fmt == 2
    bits = _tiff_field(frame, 258, 32) or 32
    if frame.mode == "I" and not signed and bits == 32:
        # unsigned 32-bit samples, which Pillow reads as signed
        values, type_top = np.asarray(frame).view(np.uint32).astype(np.float32), 2.0 ** 32 - 1
    else:
        values, type_top = np.array(frame, dtype=np.float32), 2.0 ** (bits - 1) - 1
    unknown = ~np.isfinite(values)
    values[unknown] = 0
    if frame.mode == "I" and bits == 16 and values.size and values.min() < 0:
        values += 32_768  # signed 16-bit samples over their whole range: black -32,768, white 32,767
        type_top = 65_535.0
    top = float(values.max()) if values.size else 0.0
    widest = ((70_000.0, 65_535.0),) if bits > 16 or frame.mode == "F" else ()
    ranges = (((2.0, 1.0),) if frame.mode == "F" else ()) + ((300.0, 255.0),) + widest
    full = next((r for holds, r in ranges if top <= holds), type_top if frame.mode == "I" else top)
    values *= 255.0 / max(full, 1e-12)  # in place: a page of 150 million pixels is 600 MB as floats
    np.clip(values, 0, 255, out=values)
    if _white_is_zero(frame):
        np.subtract(255, values, out=values)
    grey = np.rint(values, out=values).astype(np.uint8)
    grey[unknown] = 255
    return Image.fromarray(grey, "L")


def _white_is_zero(frame: Image.Image) -> bool:
    """The TIFF says its zero is white (PhotometricInterpretation 0, as film and microfilm
    scanners write). Pillow turns 1- to 8-bit such pages over itself, not deeper ones."""
    return _tiff_field(frame, 262) == 0


def _palette_has_colour(frame: Image.Image) -> bool:
    return _has_colour(frame.convert("RGB"))


def _has_colour(rgb: Image.Image) -> bool:
    r, g, b = rgb.split()
    return r.tobytes() != g.tobytes() or g.tobytes() != b.tobytes()


def _frame_dpi(frame: Image.Image) -> tuple[int, int] | None:
    """The resolution the file states, None when it states none (or 0 and other junk)."""
    dpi = frame.info.get("dpi")
    try:
        x, y = (int(round(float(v))) for v in dpi)
    except (TypeError, ValueError):
        return None
    if not STATED_MIN <= x <= STATED_MAX:
        return None
    return x, (y if STATED_MIN <= y <= STATED_MAX else x)


def load_page(file: str, kind: str, data: bytes | Path, page: int, max_pixels: int,
              deadline: float | None = None) -> tuple[Image.Image, tuple[int, int] | None]:
    """Page ``page`` (1-based) of a checked source, given as its bytes or its file, as (image in
    RGB/L/1, the resolution its file states, or None); from a file only that page is read. A PDF
    page states the resolution of its largest image over its size. ``deadline`` (``time.monotonic()``
    seconds): the page's time; poppler still rasterising then is stopped, and PageTimeUp raised."""
    if kind == "pdf":
        return _rasterise_pdf_page(file, data, page, max_pixels, deadline)
    img = open_image(file, data, max_pixels)
    try:
        frames = page_frames(file, img, max_pixels, until=page)
        if not 1 <= page <= len(frames):
            raise InputError(file, "không có trang này (page out of range)", page)
        img.seek(frames[page - 1])
        frame = decoded_frame(file, img, page, max_pixels)
        return shown_page(frame), _frame_dpi(frame)
    finally:
        img.close()


def shown_page(frame: Image.Image) -> Image.Image:
    """A decoded frame as the page it shows: in RGB, L or 1 (``_normalise_mode``), unmirrored
    when its orientation tag says it is stored mirrored (``_mirrored``)."""
    image = _normalise_mode(frame)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if _mirrored(frame) else image


def _mirrored(frame: Image.Image) -> bool:
    """Whether the file's orientation tag (EXIF, or a TIFF's own) says its picture is stored
    mirrored (2, 4, 5, 7: a phone's front camera), as every viewer shows it put right. Its
    quarter turns are left to the page stage, which finds the way up from the text: a turn
    in the tag is often wrong on a scan, and no text shows a mirror."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": a damaged tag says nothing
            return frame.getexif().get(0x0112) in (2, 4, 5, 7)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return False


def _pdf_page_geometry(page) -> tuple[float, float, int, str]:
    """(width and height in inches, the page's own scan resolution, colour mode): the
    resolution is that of its largest image over the page; 300 dpi for a page with none."""
    import pikepdf

    box, _ = _visible_box(page)
    width_in, height_in = abs(box[2] - box[0]) / 72, abs(box[3] - box[1]) / 72
    if int(page.obj.get("/Rotate", 0)) % 180:
        width_in, height_in = height_in, width_in
    best, mode = None, "rgb"
    for raw in page.get_images().values():
        img = pikepdf.PdfImage(raw)
        if best is None or img.width * img.height > best[0] * best[1]:
            best = (img.width, img.height)
            cs = str(raw.get("/ColorSpace", ""))
            mode = "bitonal" if img.bits_per_component == 1 else ("gray" if "Gray" in cs else "rgb")
    if best is None or max(width_in, height_in) <= 0:
        return width_in, height_in, DEFAULT_DPI, "rgb"  # a born-digital page: the recommended 300 dpi
    dpi = int(round(max(best) / max(width_in, height_in)))
    return width_in, height_in, min(max(dpi, MIN_DPI), MAX_DPI // 2), mode


def _visible_box(page) -> tuple[list[float], bool]:
    """The part of the page a reader shows, and whether that is its CropBox: the CropBox within
    its MediaBox (as poppler renders it), the MediaBox when the CropBox is missing, unreadable or
    outside it. A scan placed on a large sheet and cropped to A4 was rasterised whole: the A4
    scan small on a 40-inch page."""
    media = [float(v) for v in page.mediabox]
    media = [min(media[0], media[2]), min(media[1], media[3]), max(media[0], media[2]), max(media[1], media[3])]
    try:
        crop = [float(v) for v in page.cropbox]
        crop = [min(crop[0], crop[2]), min(crop[1], crop[3]), max(crop[0], crop[2]), max(crop[1], crop[3])]
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        return media, False
    if len(crop) != 4:
        return media, False
    seen = [max(media[0], crop[0]), max(media[1], crop[1]), min(media[2], crop[2]), min(media[3], crop[3])]
    return (seen, seen != media) if seen[2] - seen[0] >= 1 and seen[3] - seen[1] >= 1 else (media, False)


def _rasterise_pdf_page(file: str, data: bytes | Path, page: int, max_pixels: int, deadline: float | None = None):
    from pdf2image import convert_from_bytes, convert_from_path
    from pdf2image.exceptions import PDFPageCountError, PDFPopplerTimeoutError, PDFSyntaxError

    import pikepdf

    with pikepdf.open(_readable(data)) as pdf:
        _, _, dpi, mode = _pdf_page_geometry(pdf.pages[page - 1])
        _, cropped = _visible_box(pdf.pages[page - 1])
    convert = convert_from_bytes if isinstance(data, (bytes, bytearray)) else convert_from_path
    # poppler is given the page's time left, not the page stage's interruption: pdf2image kills
    # pdftoppm when its own time-out ends it, not when an exception does (a worker's soft time
    # limit left one running, blocked on its pipe)
    left = time_left(deadline)
    timeout = RASTER_TIMEOUT if left is None or left >= RASTER_TIMEOUT else max(1, int(left) - 1)
    try:
        images = convert(data, dpi=dpi, first_page=page, last_page=page, use_cropbox=cropped,
                         grayscale=mode != "rgb", thread_count=1, timeout=timeout)
    except PDFPopplerTimeoutError:
        if timeout < RASTER_TIMEOUT:
            raise PageTimeUp() from None
        raise InputError(file, f"chuyển trang PDF thành ảnh quá {RASTER_TIMEOUT} giây "
                               "(rasterising timed out)", page) from None
    except (PDFPageCountError, PDFSyntaxError, OSError) as e:
        raise InputError(file, f"không chuyển được trang PDF thành ảnh ({e})", page) from None
    if not images:
        raise InputError(file, "không chuyển được trang PDF thành ảnh", page)
    img = images[0]
    if img.width * img.height > max_pixels:
        raise InputError(file, f"trang {img.width}x{img.height} vượt quá giới hạn điểm ảnh", page)
    _check_size(file, img.width, img.height, page, max_pixels)
    if mode == "bitonal":
        img = img.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1")
    return _normalise_mode(img), (dpi, dpi)
