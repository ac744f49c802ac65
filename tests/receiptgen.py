"""Render receipt pages (phiếu tiếp nhận và hẹn trả kết quả) carrying the dossier code as a QR
code, and the ordinary pages that follow them in a continuous scan of several dossiers.

Used by ``tests/test_receipts.py`` and ``bench/receipts.py``.  A receipt is described by a
:class:`ReceiptSpec` and rendered by :func:`render_receipt` as a scanned A4 page (PIL image).
QR symbols come from OpenCV's own encoder (``cv2.QRCodeEncoder``), error-correction level H
by default, so the fixtures need nothing beyond sohoa's runtime dependencies.

Degradations, in the order a real page meets them:
  ``cover``      a pale sticky note (``cover_kind="note"``) or a red seal (``"stamp"``) over this
                 share of the symbol's area, at the corner without a finder pattern (what a note
                 stuck on a receipt usually hides; level H recovers up to ~30 % of codewords);
                 ``"finder"``: a note over the top-left finder pattern instead (any cover > 0);
  ``destroyed``  ink scribbled over most of the data area between the three finder patterns:
                 the symbol is still found but cannot be decoded;
  ``skew_deg``   the sheet turned on the scanner glass (PIL ``rotate``, counter-clockwise);
  ``orientation`` 180 for a sheet fed upside down;
  ``blur_sigma`` Gaussian blur, sigma in pixels at 300 dpi (scaled to the page's dpi);
  ``noise``      paper tint, uneven light and sensor noise (0 clean .. 2 strong);
  ``jpeg_quality`` the scanner's JPEG (None: lossless);
  ``color``      a grey or 1-bit (bitonal) scan instead of colour.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tests.pagegen import INK, SEAL_RED, PageSpec, render_page

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_NOTO = Path("/usr/share/fonts/truetype/noto")
_FONTS = {
    "r": (_DEJAVU / "DejaVuSans.ttf", _NOTO / "NotoSans-Regular.ttf"),
    "b": (_DEJAVU / "DejaVuSans-Bold.ttf", _NOTO / "NotoSans-Bold.ttf"),
}

TITLE = "PHIẾU TIẾP NHẬN VÀ HẸN TRẢ KẾT QUẢ"
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_LEVELS = {"L": "QRCodeEncoder_CORRECT_LEVEL_L", "M": "QRCodeEncoder_CORRECT_LEVEL_M",
           "Q": "QRCodeEncoder_CORRECT_LEVEL_Q", "H": "QRCodeEncoder_CORRECT_LEVEL_H"}

_NAMES = ["Nguyễn Văn Hùng", "Trần Thị Mai", "Lê Quang Vinh", "Phạm Thị Thanh Hương", "Đỗ Minh Khôi"]
_ADDRESSES = ["Số 12 đường Lê Lợi, phường Hưng Bình, thành phố Vinh, tỉnh Nghệ An",
              "Thôn Đông Xá, xã Hưng Đông, thành phố Vinh, tỉnh Nghệ An",
              "Tổ 5, phường Lê Mao, thành phố Vinh, tỉnh Nghệ An"]
_PROCEDURES = ["Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam",
               "Đăng ký khai sinh có yếu tố nước ngoài",
               "Cấp giấy chứng nhận quyền sử dụng đất lần đầu",
               "Chứng thực bản sao từ bản chính giấy tờ, văn bản"]
_PARTS = ["Tờ khai yêu cầu cấp Phiếu lý lịch tư pháp", "Bản chụp Căn cước công dân",
          "Bản sao Giấy khai sinh", "Giấy ủy quyền (nếu có)", "Bản chụp sổ hộ khẩu"]


@dataclass(frozen=True)
class ReceiptSpec:
    """Everything that decides how a receipt page looks; the same spec renders the same page."""
    code: str                      # the dossier code printed as "Mã hồ sơ: ..."
    payload: str | None = None     # what the QR symbol holds; None: the code itself
    dpi: int = 200
    qr_mm: float = 22.0            # side of the symbol (without its quiet zone) on paper
    corner: str = "top-right"
    correction: str = "H"          # L, M, Q or H
    skew_deg: float = 0.0
    orientation: int = 0           # 0 or 180
    blur_sigma: float = 0.0        # pixels at 300 dpi
    cover: float = 0.0             # share of the symbol's area under a note or a stamp
    cover_kind: str = "note"       # "note", "stamp", or "finder" (a note over a finder pattern)
    destroyed: bool = False
    noise: int = 1
    jpeg_quality: int | None = 88
    color: str = "rgb"             # "rgb", "gray" or "bitonal" (a 1-bit scan, threshold 150)
    seed: int = 0


def _font(style: str, px: int) -> ImageFont.FreeTypeFont:
    path = next((p for p in _FONTS[style] if p.is_file()), _FONTS[style][0])
    return ImageFont.truetype(str(path), px)


def qr_matrix(payload: str, correction: str = "H") -> np.ndarray:
    """The QR symbol of ``payload`` as a boolean module matrix (True = dark), quiet zone removed."""
    params = cv2.QRCodeEncoder_Params()
    params.correction_level = getattr(cv2, _LEVELS[correction])
    symbol = cv2.QRCodeEncoder.create(params).encode(payload)
    dark = symbol < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return dark[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def qr_image(payload: str, side_px: int, correction: str = "H", quiet_modules: int = 4) -> Image.Image:
    """The symbol drawn black on white, ``side_px`` wide without its quiet zone (nearest neighbour,
    so every module edge stays sharp as a laser printer prints it)."""
    matrix = qr_matrix(payload, correction)
    n = matrix.shape[0]
    module = side_px / n
    size = round(side_px + 2 * quiet_modules * module)
    img = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(img)
    offset = quiet_modules * module
    for r, c in zip(*np.nonzero(matrix)):
        x0, y0 = offset + c * module, offset + r * module
        draw.rectangle((round(x0), round(y0), round(x0 + module) - 1, round(y0 + module) - 1), fill=0)
    return img


def _receipt_date(code: str) -> str:
    parts = code.split("-")
    if len(parts) >= 3 and len(parts[-2]) == 6 and parts[-2].isdigit():
        yy, mm, dd = parts[-2][:2], parts[-2][2:4], parts[-2][4:]
        return f"{dd}/{mm}/20{yy}"
    return "08/10/2026"


def _paste_qr(sheet: Image.Image, spec: ReceiptSpec, rng: random.Random) -> tuple[int, int, int]:
    """Draw the symbol in its corner; returns (x, y, side) of the symbol proper in pixels."""
    mm = spec.dpi / 25.4
    side = round(spec.qr_mm * mm)
    payload = spec.payload if spec.payload is not None else spec.code
    symbol = qr_image(payload, side, spec.correction)
    quiet = (symbol.width - side) // 2
    margin = round(12 * mm)
    x = margin if "left" in spec.corner else sheet.width - margin - side
    y = margin if "top" in spec.corner else sheet.height - margin - side
    sheet.paste(symbol.convert("RGB"), (x - quiet, y - quiet))
    if spec.cover > 0:
        _cover(sheet, spec, rng, x, y, side)
    if spec.destroyed:
        _destroy(sheet, rng, x, y, side, n=qr_matrix(payload, spec.correction).shape[0])
    return x, y, side


def _cover(sheet: Image.Image, spec: ReceiptSpec, rng: random.Random, x: int, y: int, side: int) -> None:
    """Hide ``spec.cover`` of the symbol's area at its bottom-right corner (no finder pattern there)."""
    hidden = spec.cover * side * side
    if spec.cover_kind == "note":
        # a square note whose corner overlaps the symbol by a square of the hidden area
        overlap = round(hidden ** 0.5)
        note = round(max(overlap * 2.5, 30 * spec.dpi / 25.4))
        x0, y0 = x + side - overlap, y + side - overlap
        draw = ImageDraw.Draw(sheet)
        draw.rectangle((x0 + 3, y0 + 3, x0 + note + 3, y0 + note + 3), fill=(200, 200, 190))  # shadow
        draw.rectangle((x0, y0, x0 + note, y0 + note), fill=(252, 240, 150))
        pen = _font("r", max(10, round(4 * spec.dpi / 25.4)))
        draw.text((x0 + note * 0.3, y0 + note * 0.45), "Bổ sung\nbản sao", font=pen, fill=(30, 40, 150))
    elif spec.cover_kind == "finder":
        # a note over the top-left finder pattern: no detector can locate the symbol any more
        half = round(0.2 * side)
        draw = ImageDraw.Draw(sheet)
        draw.rectangle((x - half, y - half, x + half, y + half), fill=(252, 240, 150))
    elif spec.cover_kind == "stamp":
        # a red received-stamp ring whose disc covers the hidden area near the corner
        radius = round((hidden / np.pi) ** 0.5 * 2)
        cx, cy = x + side - radius // 4, y + side - radius // 4
        layer = Image.new("L", sheet.size, 0)
        ImageDraw.Draw(layer).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=150)
        ImageDraw.Draw(layer).ellipse((cx - radius * 0.8, cy - radius * 0.8, cx + radius * 0.8, cy + radius * 0.8),
                                      fill=90)
        red = Image.new("RGB", sheet.size, SEAL_RED)
        sheet.paste(Image.composite(red, sheet, layer))
    else:
        raise ValueError(f"unknown cover kind {spec.cover_kind!r}")


def _destroy(sheet: Image.Image, rng: random.Random, x: int, y: int, side: int, n: int) -> None:
    """Scribble ink over the data area between the finder patterns: more than level H restores.

    The finders (7 modules + separator in three corners) stay intact, so a detector still
    locates the symbol; the timing patterns and most data modules are lost."""
    module = side / n
    draw = ImageDraw.Draw(sheet)
    lo, hi = x + round(8 * module), x + side - round(1 * module)
    top, bottom = y + round(8 * module), y + side - round(1 * module)
    # white-out over the quadrant without finders, then a dense ballpoint scribble over it
    draw.rectangle((lo, top, hi, bottom), fill=(250, 250, 250))
    width = max(2, round(module * 0.8))
    for _ in range(40):
        points = [(rng.uniform(lo, hi), rng.uniform(top, bottom)) for _ in range(3)]
        draw.line(points, fill=(20, 20, 60), width=width)


def _text_block(sheet: Image.Image, spec: ReceiptSpec, rng: random.Random, qr_box: tuple[int, int, int]) -> None:
    mm = spec.dpi / 25.4
    draw = ImageDraw.Draw(sheet)
    pt = lambda points: max(8, round(points / 72 * spec.dpi))
    regular, bold, small_b = _font("r", pt(12)), _font("b", pt(12)), _font("b", pt(11))
    left, right = round(25 * mm), sheet.width - round(20 * mm)
    line = round(pt(12) * 1.5)
    qx, qy, qside = qr_box
    # header columns avoid the symbol when it sits at the top
    head_l, head_r = left, right
    if "top" in spec.corner:
        if "left" in spec.corner:
            head_l = qx + qside + round(6 * mm)
        else:
            head_r = qx - round(6 * mm)
    split = head_l + (head_r - head_l) * 0.42
    y = round(20 * mm)

    def centred(text, font, x0, x1, yy):
        w = draw.textlength(text, font=font)
        draw.text((x0 + (x1 - x0 - w) / 2, yy), text, font=font, fill=INK)

    centred("UBND TỈNH NGHỆ AN", _font("r", pt(10)), head_l, split, y)
    centred("TRUNG TÂM PHỤC VỤ", _font("b", pt(10)), head_l, split, y + line)
    centred("HÀNH CHÍNH CÔNG", _font("b", pt(10)), head_l, split, y + 2 * line)
    centred("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", _font("b", pt(10)), split, head_r, y)
    centred("Độc lập - Tự do - Hạnh phúc", _font("b", pt(10)), split, head_r, y + line)
    y = max(y + 4 * line, (qy + qside + round(8 * mm)) if "top" in spec.corner else 0)
    centred(TITLE, _font("b", pt(14)), left, right, y)
    y += round(line * 1.6)
    centred(f"Mã hồ sơ: {spec.code}", bold, left, right, y)
    y += round(line * 1.6)
    date = _receipt_date(spec.code)
    lines = [
        "Trung tâm Phục vụ hành chính công tỉnh Nghệ An tiếp nhận hồ sơ của:",
        f"Ông/Bà: {rng.choice(_NAMES)}",
        f"Địa chỉ: {rng.choice(_ADDRESSES)}",
        f"Số điện thoại: 09{rng.randint(10000000, 99999999)}",
        f"Nội dung yêu cầu giải quyết: {rng.choice(_PROCEDURES)}",
        "1. Thành phần hồ sơ nộp gồm:",
        *[f"   - {part}: 01 bản" for part in rng.sample(_PARTS, 3)],
        "2. Số lượng hồ sơ: 01 (bộ)",
        "3. Thời gian giải quyết hồ sơ theo quy định là: 10 ngày làm việc",
        f"4. Thời gian nhận hồ sơ: {rng.randint(7, 16):02d} giờ {rng.randint(0, 59):02d} phút, ngày {date}",
        "5. Thời gian trả kết quả giải quyết hồ sơ: theo phiếu hẹn",
        "6. Đăng ký nhận kết quả tại: Trung tâm Phục vụ hành chính công",
    ]
    for text in lines:
        draw.text((left, y), text, font=regular, fill=INK)
        y += line
    y += line
    centred("NGƯỜI NỘP HỒ SƠ", small_b, left, (left + right) / 2, y)
    centred("NGƯỜI TIẾP NHẬN HỒ SƠ", small_b, (left + right) / 2, right, y)


def _scan(sheet: Image.Image, spec: ReceiptSpec, rng: random.Random) -> Image.Image:
    noise = np.random.default_rng(rng.randrange(2**32))
    paper = (np.array([rng.randint(236, 252), rng.randint(232, 250), rng.randint(222, 246)])
             if spec.noise else np.full(3, 255))
    pixels = np.asarray(sheet, dtype=np.float32) * (paper / 255.0)
    bed = tuple(int(v) for v in paper)
    scanned = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if spec.skew_deg:
        scanned = scanned.rotate(spec.skew_deg, resample=Image.BICUBIC, expand=True, fillcolor=bed)
    if spec.orientation:
        scanned = scanned.rotate(spec.orientation, expand=True)
    if spec.noise:
        pixels = np.asarray(scanned, dtype=np.float32)
        h, w = pixels.shape[:2]
        gradient = (np.linspace(0, 1, w)[None, :] * rng.random() + np.linspace(0, 1, h)[:, None] * rng.random()) / 2
        pixels = pixels * (1 - 0.08 * spec.noise * gradient)[..., None]
        pixels += noise.normal(0, 4 * spec.noise, (h, w))[..., None]
        scanned = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if spec.blur_sigma > 0:
        scanned = scanned.filter(ImageFilter.GaussianBlur(radius=spec.blur_sigma * spec.dpi / 300))
    if spec.jpeg_quality is not None:
        buffer = io.BytesIO()
        scanned.save(buffer, "JPEG", quality=spec.jpeg_quality)
        scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if spec.color == "gray":
        scanned = scanned.convert("L")
    elif spec.color == "bitonal":
        scanned = scanned.convert("L").point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE)
    scanned.info["dpi"] = (spec.dpi, spec.dpi)
    return scanned


def render_receipt(spec: ReceiptSpec) -> Image.Image:
    """One scanned receipt page (RGB, ``info['dpi']`` set)."""
    if spec.corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}")
    if spec.orientation not in (0, 180):
        raise ValueError("orientation must be 0 or 180")
    rng = random.Random(f"{spec.seed}/{spec.code}/{spec.dpi}")
    mm = spec.dpi / 25.4
    sheet = Image.new("RGB", (round(210 * mm), round(297 * mm)), (255, 255, 255))
    qr_box = _paste_qr(sheet, spec, rng)
    _text_block(sheet, spec, rng, qr_box)
    return _scan(sheet, spec, rng)


def ordinary_page(seed: int = 0, dpi: int = 200, layout: str = "admin", max_body_lines: int | None = 18,
                  skew_deg: float = 0.0) -> Image.Image:
    """A page of a dossier without any QR code (tests/pagegen.py's admin, text or table page)."""
    page = render_page(PageSpec(layout=layout, dpi=dpi, degradation=1, seed=seed, skew_deg=skew_deg,
                                max_body_lines=max_body_lines))
    image = page.image
    image.info["dpi"] = (dpi, dpi)
    return image


def id_card_page(seed: int = 0, dpi: int = 200) -> Image.Image:
    """A photocopy of a citizen identity card (CCCD) whose own QR code holds the holder's data,
    not a dossier code: the kind of foreign QR code every dossier may contain."""
    rng = random.Random(f"cccd/{seed}/{dpi}")
    mm = dpi / 25.4
    sheet = Image.new("RGB", (round(210 * mm), round(297 * mm)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x0, y0 = round(40 * mm), round(30 * mm)
    w, h = round(85.6 * mm * 1.4), round(54 * mm * 1.4)  # copied at 140 %
    draw.rounded_rectangle((x0, y0, x0 + w, y0 + h), radius=round(4 * mm), outline=(90, 90, 90),
                           width=max(2, round(0.4 * mm)), fill=(235, 235, 235))
    number = f"0{rng.randint(10, 99)}0{rng.randint(10**8, 10**9 - 1)}"
    name = rng.choice(_NAMES)
    payload = f"{number}|{rng.randint(10**8, 10**9 - 1)}|{name}|01011990|Nam|{rng.choice(_ADDRESSES)}|15082021"
    side = round(22 * mm)
    sheet.paste(qr_image(payload, side, "M").convert("RGB"), (x0 + w - side - round(10 * mm), y0 + round(6 * mm)))
    font, bold = _font("r", max(8, round(9 / 72 * dpi))), _font("b", max(8, round(10 / 72 * dpi)))
    draw.text((x0 + round(6 * mm), y0 + round(6 * mm)), "CĂN CƯỚC CÔNG DÂN", font=bold, fill=INK)
    for i, text in enumerate([f"Số / No.: {number}", f"Họ và tên: {name.upper()}", "Ngày sinh: 01/01/1990",
                              "Giới tính: Nam    Quốc tịch: Việt Nam"]):
        draw.text((x0 + round(6 * mm), y0 + round((18 + 9 * i) * mm)), text, font=font, fill=INK)
    draw.text((x0, y0 + h + round(10 * mm)), "Bản sao y bản chính", font=bold, fill=INK)
    spec = ReceiptSpec(code="", dpi=dpi, noise=1, seed=seed)
    return _scan(sheet, spec, rng)
