"""Render Vietnamese A4 pages that look scanned, with their exact truth.

Used by the OCR tests and by ``bench/``.  A page is described by a :class:`PageSpec`
(layout, dpi, skew, quarter turn, degradation, colour, seed, ...) and rendered by
:func:`render_page` into a :class:`RenderedPage`: the "scan" as a PIL image plus the
truth lines in reading order (two-column headers column by column).

Layouts:
  ``text``   running text only;
  ``admin``  administrative layout (Decree 30/2020 style): two-column header
             agency | national motto, title, body, signature block with a red seal
             and a blue signature scribble;
  ``table``  a ruled table;
  ``list``   a dense ruled list of short entries down the whole page (a list of citizens:
             number, name, year of birth, sex, commune, remark): 8-pt entries on 9-pt lines
             unless ``font_pt`` says (the entries one point smaller, as in ``table``);
  ``blank``  an empty sheet of paper (only paper tint and noise);
  ``seal``   an otherwise empty back page carrying only a red seal;
  ``signed`` an otherwise empty page carrying only a blue signature and a red seal over it.

Geometry conventions (the same as sohoa's manifest): the upright page is first
turned counter-clockwise by ``skew_deg`` (PIL ``rotate(skew_deg)``), then by the
quarter turn ``orientation`` (PIL ``rotate(orientation, expand=True)``).

The Vietnamese text comes from excerpts shipped in ``tests/data/vi_text_*.txt``
(public-domain statute text; source and licence on each file's first line).
"""
from __future__ import annotations

import io
import random
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DATA_DIR = Path(__file__).resolve().parent / "data"
_TEX_GYRE = Path("/usr/share/texmf/fonts/opentype/public/tex-gyre")
_FREEFONT = Path("/usr/share/fonts/truetype/freefont")
_NOTO = Path("/usr/share/fonts/truetype/noto")
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

# regular, bold, italic; every family covers Vietnamese completely.
FONT_FAMILIES: dict[str, tuple[Path, Path, Path]] = {
    "termes": (_TEX_GYRE / "texgyretermes-regular.otf", _TEX_GYRE / "texgyretermes-bold.otf",
               _TEX_GYRE / "texgyretermes-italic.otf"),
    "freeserif": (_FREEFONT / "FreeSerif.ttf", _FREEFONT / "FreeSerifBold.ttf", _FREEFONT / "FreeSerifItalic.ttf"),
    "noto-serif": (_NOTO / "NotoSerif-Regular.ttf", _NOTO / "NotoSerif-Bold.ttf", _NOTO / "NotoSerif-Italic.ttf"),
    "pagella": (_TEX_GYRE / "texgyrepagella-regular.otf", _TEX_GYRE / "texgyrepagella-bold.otf",
                _TEX_GYRE / "texgyrepagella-italic.otf"),
    "heros": (_TEX_GYRE / "texgyreheros-regular.otf", _TEX_GYRE / "texgyreheros-bold.otf",
              _TEX_GYRE / "texgyreheros-italic.otf"),
    "dejavu-serif": (_DEJAVU / "DejaVuSerif.ttf", _DEJAVU / "DejaVuSerif-Bold.ttf", _DEJAVU / "DejaVuSerif-Italic.ttf"),
}

LAYOUTS = ("text", "admin", "table", "list", "blank", "seal", "signed")


def installed_families() -> list[str]:
    """The font families whose three faces are installed (DejaVu Serif Italic, for one, comes
    with fonts-dejavu-extra, which a machine may lack)."""
    return sorted(name for name, faces in FONT_FAMILIES.items() if all(face.is_file() for face in faces))

PARENT_AGENCIES = ["ỦY BAN NHÂN DÂN TỈNH NGHỆ AN", "UBND THÀNH PHỐ HẢI PHÒNG", "BỘ NỘI VỤ", "UBND TỈNH QUẢNG NAM"]
AGENCIES = ["SỞ TƯ PHÁP", "UBND XÃ HƯNG ĐÔNG", "TRUNG TÂM PHỤC VỤ HÀNH CHÍNH CÔNG", "PHÒNG TÀI CHÍNH - KẾ HOẠCH",
            "SỞ KẾ HOẠCH VÀ ĐẦU TƯ", "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI"]
PLACES = ["Vinh", "Hải Phòng", "Hà Nội", "Tam Kỳ", "Đà Nẵng", "Huế"]
DOC_KINDS = [("QĐ", "QUYẾT ĐỊNH"), ("TB", "THÔNG BÁO"), ("KH", "KẾ HOẠCH"), ("BB", "BIÊN BẢN"),
             ("GXN", "GIẤY XÁC NHẬN"), ("TTr", "TỜ TRÌNH")]
SIGNER_ROLES = [("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH"), ("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC"), ("TL. CHỦ TỊCH", "CHÁNH VĂN PHÒNG")]
SIGNER_NAMES = ["Nguyễn Thị Hồng Nhung", "Trần Quốc Khánh", "Lê Minh Tuấn", "Phạm Thị Thu Hà", "Hoàng Văn Đức",
                "Võ Thị Lệ Quyên"]
TABLE_HEADINGS = ["STT", "Nội dung công việc", "Đơn vị thực hiện", "Thời hạn"]
TABLE_UNITS = ["Sở Tư pháp", "Văn phòng UBND", "UBND cấp xã", "Phòng Nội vụ", "Các sở, ngành liên quan"]
TABLE_DEADLINES = ["Quý I/2025", "Thường xuyên", "Tháng 6/2025", "Hằng năm", "Trước 30/9/2025"]

INK = (12, 12, 12)
SEAL_RED = (205, 32, 45)
SIGNATURE_BLUE = (25, 45, 160)


@dataclass(frozen=True)
class PageSpec:
    """Everything that decides how a page looks; the same spec renders the same page."""
    layout: str = "text"
    dpi: int = 300
    skew_deg: float = 0.0
    orientation: int = 0          # 0, 90, 180, 270: counter-clockwise quarter turn of the content
    degradation: int = 1          # 0 clean .. 3 heavy (tint, uneven light, noise, lid shadow, blur, JPEG)
    color: str = "rgb"            # "rgb", "gray" or "bitonal"
    seed: int = 0
    font: str | None = None       # a key of FONT_FAMILIES; None picks one from the seed
    font_pt: float | None = None  # body size; None picks 13 or 14 pt from the seed
    text_source: str | None = None  # a tests/data/vi_text_*.txt stem; None picks from the seed
    extra_blur_px: float = 0.0    # Gaussian blur radius at 300 dpi, on top of the degradation
    black_border_mm: float = 0.0  # width of a black scanner bed around the sheet
    cut_off_fraction: float = 0.0  # share of the page height lost at the bottom (page partly scanned)
    max_body_lines: int | None = None  # a sparse page: at most this many lines of running text
    ink: tuple[int, int, int] | None = None  # the text's colour (blue ballpoint, violet...); None: black


@dataclass
class RenderedPage:
    image: Image.Image
    truth_lines: list[str]
    spec: PageSpec
    header_left: list[str] = field(default_factory=list)   # admin layout: agency column lines
    header_right: list[str] = field(default_factory=list)  # admin layout: motto column lines
    table_cells: list[str] = field(default_factory=list)   # table and list layouts: text of every cell

    @property
    def text(self) -> str:
        return "\n".join(self.truth_lines)

    @property
    def dpi(self) -> tuple[int, int]:
        return (self.spec.dpi, self.spec.dpi)


def available_texts() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("vi_text_*.txt"))


def load_words(stem: str) -> list[str]:
    """The words of a shipped excerpt, NFC, comment lines (licence) left out."""
    raw = (DATA_DIR / f"{stem}.txt").read_text(encoding="utf-8")
    lines = [ln for ln in raw.splitlines() if ln.strip() and not ln.startswith("#")]
    return unicodedata.normalize("NFC", " ".join(lines)).split()


class _Sheet:
    """An upright white A4 sheet being typeset, top to bottom."""

    def __init__(self, dpi: int, family: tuple[Path, Path, Path], pt: float):
        self.dpi = dpi
        self.width, self.height = round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)
        mm = dpi / 25.4
        # Decree 30/2020 margins: left 30 mm, right 15-20 mm, top/bottom 20 mm.
        self.left, self.right = round(30 * mm), self.width - round(20 * mm)
        self.top, self.bottom = round(20 * mm), self.height - round(20 * mm)
        self.image = Image.new("RGB", (self.width, self.height), (255, 255, 255))
        self.draw = ImageDraw.Draw(self.image)
        size = lambda points: max(6, round(points / 72 * dpi))
        self.font = {style: ImageFont.truetype(str(path), size(pt)) for style, path in zip("rbi", family)}
        self.small = {style: ImageFont.truetype(str(path), size(pt - 1)) for style, path in zip("rbi", family)}
        self.line_height = round(size(pt) * 1.45)
        self.y = self.top
        self.truth: list[str] = []

    def wrap(self, words: list[str], font, width: float) -> list[str]:
        lines, current = [], ""
        for word in words:
            candidate = f"{current} {word}".strip()
            if not current or self.draw.textlength(candidate, font=font) <= width:
                current = candidate
            else:
                lines.append(current)
                current = word
        if current:
            lines.append(current)
        return lines

    def centred(self, text: str, font, x0: float, x1: float, y: float, fill=INK) -> float:
        width = self.draw.textlength(text, font=font)
        self.draw.text((x0 + (x1 - x0 - width) / 2, y), text, font=font, fill=fill)
        return width

    def paragraphs(self, words: list[str], rng: random.Random, bottom: int, indent: bool,
                   max_lines: int | None = None) -> None:
        """Fill the sheet down to ``bottom`` (or for ``max_lines``) with paragraphs of the given words."""
        used, width, lines_left = 0, self.right - self.left, max_lines if max_lines is not None else 10**6
        first_indent = self.line_height if indent else 0
        while used < len(words):
            paragraph = words[used:used + rng.randint(35, 80)]
            for i, line in enumerate(self.wrap(paragraph, self.font["r"], width - first_indent)):
                if self.y + self.line_height > bottom or lines_left <= 0:
                    return
                lines_left -= 1
                x = self.left + (first_indent if i == 0 else 0)
                self.draw.text((x, self.y), line, font=self.font["r"], fill=INK)
                self.truth.append(line)
                self.y += self.line_height
                used += len(line.split())


def _admin_header(sheet: _Sheet, rng: random.Random) -> tuple[list[str], list[str]]:
    lh = sheet.line_height
    split = sheet.left + (sheet.right - sheet.left) * 0.40
    left_col = (sheet.left - 2 * lh, split - lh / 2)
    right_col = (split, sheet.right + lh / 2)
    y0 = sheet.y
    code, title = rng.choice(DOC_KINDS)
    left = [rng.choice(PARENT_AGENCIES), rng.choice(AGENCIES)]
    sheet.centred(left[0], sheet.small["r"], *left_col, y0)
    agency_width = sheet.centred(left[1], sheet.small["b"], *left_col, y0 + lh)
    rule_y = y0 + 2.1 * lh
    cx = (left_col[0] + left_col[1]) / 2
    sheet.draw.line((cx - agency_width / 4, rule_y, cx + agency_width / 4, rule_y), fill=INK,
                    width=max(1, sheet.dpi // 150))
    number = f"Số: {rng.randint(1, 999)}/{code}-UBND"
    sheet.centred(number, sheet.font["r"], *left_col, y0 + 2.5 * lh)
    left.append(number)

    motto = ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    sheet.centred(motto[0], sheet.small["b"], *right_col, y0)
    motto_width = sheet.centred(motto[1], sheet.font["b"], *right_col, y0 + lh)
    cx = (right_col[0] + right_col[1]) / 2
    sheet.draw.line((cx - motto_width / 2, rule_y, cx + motto_width / 2, rule_y), fill=INK,
                    width=max(1, sheet.dpi // 150))
    date = (f"{rng.choice(PLACES)}, ngày {rng.randint(1, 28):02d} tháng {rng.randint(1, 12):02d} "
            f"năm {rng.randint(2019, 2026)}")
    sheet.centred(date, sheet.font["i"], *right_col, y0 + 2.5 * lh)
    right = motto + [date]

    sheet.truth += left + right
    sheet.y = round(y0 + 4.4 * lh)
    sheet.centred(title, sheet.font["b"], sheet.left, sheet.right, sheet.y)
    sheet.truth.append(title)
    sheet.y += round(1.8 * lh)
    return left, right


def _seal(sheet: _Sheet, rng: random.Random, cx: int, cy: int) -> None:
    """A translucent red round seal: part of the archive image, never of the text."""
    r = round(sheet.dpi * 0.7)
    scale = sheet.dpi / 300
    overlay = Image.new("RGBA", sheet.image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for inset, width in ((0, 10), (round(r * 0.13), 4), (round(r * 0.55), 5)):
        draw.ellipse((cx - r + inset, cy - r + inset, cx + r - inset, cy + r - inset),
                     outline=SEAL_RED + (175,), width=max(1, round(width * scale)))
    angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 10, endpoint=False)
    radii = np.where(np.arange(10) % 2 == 0, 0.3 * r, 0.12 * r)
    star = [(cx + rad * np.cos(a), cy + rad * np.sin(a)) for a, rad in zip(angles, radii)]
    draw.polygon(star, fill=SEAL_RED + (160,))
    # the ring text of a seal is part of the seal: small red glyph marks, not truth
    for a in np.linspace(0, 2 * np.pi, 28, endpoint=False) + rng.random():
        x, y = cx + 0.78 * r * np.cos(a), cy + 0.78 * r * np.sin(a)
        s = max(2, round(9 * scale))
        draw.rectangle((x - s, y - s, x + s, y + s), fill=SEAL_RED + (150,))
    sheet.image.paste(Image.alpha_composite(sheet.image.convert("RGBA"), overlay).convert("RGB"))


def _signature_block(sheet: _Sheet, rng: random.Random) -> None:
    lh = sheet.line_height
    x0 = sheet.left + (sheet.right - sheet.left) * 0.5
    y = sheet.y + lh
    for text in rng.choice(SIGNER_ROLES):
        sheet.centred(text, sheet.font["b"], x0, sheet.right, y)
        sheet.truth.append(text)
        y += lh
    _signature(sheet, rng, (x0 + sheet.right) / 2, y + 1.2 * lh)
    y += round(3.4 * lh)
    name = rng.choice(SIGNER_NAMES)
    sheet.centred(name, sheet.font["b"], x0, sheet.right, y)
    sheet.truth.append(name)
    sheet.y = y + lh


def _signature(sheet: _Sheet, rng: random.Random, cx: float, y: float) -> None:
    """A blue signature scribble centred on (cx, y), the seal stamped over its left part."""
    scale = sheet.dpi / 300
    points = [(cx - 260 * scale + i * 17 * scale,
               y + 55 * scale * np.sin(i / 2.1 + rng.random()) * rng.uniform(0.5, 1.0)) for i in range(32)]
    sheet.draw.line(points, fill=SIGNATURE_BLUE, width=max(2, round(5 * scale)), joint="curve")
    _seal(sheet, rng, round(cx - 170 * scale), round(y - 0.1 * sheet.line_height))


def _table(sheet: _Sheet, rng: random.Random, words: list[str]) -> list[str]:
    shares = [0.08, 0.46, 0.26, 0.20]
    xs = [sheet.left]
    for share in shares:
        xs.append(xs[-1] + round(share * (sheet.right - sheet.left)))
    rule = max(2, sheet.dpi // 150)
    pad = round(sheet.dpi / 30)
    cells_read: list[str] = []

    def row(cells: list[str], font) -> bool:
        wrapped = [sheet.wrap(c.split(), font, xs[i + 1] - xs[i] - 2 * pad) for i, c in enumerate(cells)]
        height = max(len(w) for w in wrapped) * sheet.line_height + 2 * pad
        if sheet.y + height > sheet.bottom:
            return False
        for i, lines in enumerate(wrapped):
            for j, line in enumerate(lines):
                sheet.draw.text((xs[i] + pad, sheet.y + pad + j * sheet.line_height), line, font=font, fill=INK)
            cells_read.append(" ".join(lines))
        sheet.draw.line((xs[0], sheet.y, xs[-1], sheet.y), fill=INK, width=rule)
        for x in xs:
            sheet.draw.line((x, sheet.y, x, sheet.y + height), fill=INK, width=rule)
        sheet.y += height
        sheet.draw.line((xs[0], sheet.y, xs[-1], sheet.y), fill=INK, width=rule)
        return True

    row(TABLE_HEADINGS, sheet.small["b"])
    used, number = 0, 1
    while row([str(number), " ".join(words[used:used + (n := rng.randint(6, 20))]),
               rng.choice(TABLE_UNITS), rng.choice(TABLE_DEADLINES)], sheet.small["r"]):
        used += n
        number += 1
    sheet.truth += cells_read
    return cells_read


FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ")
MIDDLE_NAMES = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc")
GIVEN_NAMES = ("An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hùng", "Lan", "Linh", "Mai", "Nam", "Phúc",
               "Quyên", "Sơn", "Thảo", "Trung", "Tuấn", "Yến")
COMMUNES = ("Hòa Bình", "Tân Phú", "Phước Long", "An Khánh", "Đông Hà", "Nghĩa Lộ", "Xuân Trường", "Thạch Bàn")
REMARKS = ("Hộ nghèo", "Đã nhận", "Chưa nhận", "Tạm trú", "Thường trú", "")


def _list(sheet: _Sheet, rng: random.Random) -> list[str]:
    shares = [0.07, 0.30, 0.12, 0.10, 0.22, 0.19]
    xs = [sheet.left]
    for share in shares:
        xs.append(xs[-1] + round(share * (sheet.right - sheet.left)))
    rule, pad = max(2, sheet.dpi // 150), round(sheet.dpi / 60)
    height = sheet.line_height + 2 * pad
    font = sheet.small["r"]
    cells_read: list[str] = []
    number = 1
    while sheet.y + height <= sheet.bottom:
        cells = [str(number), f"{rng.choice(FAMILY_NAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}",
                 str(rng.randint(1940, 2010)), rng.choice(("Nam", "Nữ")), rng.choice(COMMUNES), rng.choice(REMARKS)]
        for i, text in enumerate(cells):
            sheet.draw.text((xs[i] + pad, sheet.y + pad), text, font=font, fill=INK)
            cells_read.append(text)
        sheet.draw.line((xs[0], sheet.y, xs[-1], sheet.y), fill=INK, width=rule)
        for x in xs:
            sheet.draw.line((x, sheet.y, x, sheet.y + height), fill=INK, width=rule)
        sheet.y += height
        number += 1
    sheet.draw.line((xs[0], sheet.y, xs[-1], sheet.y), fill=INK, width=rule)
    cells_read = [c for c in cells_read if c]  # a remark left empty
    sheet.truth += cells_read
    return cells_read


def _compose(spec: PageSpec, rng: random.Random) -> tuple[_Sheet, list[str], list[str], list[str]]:
    family_name = spec.font or rng.choice(installed_families())
    pt = spec.font_pt or (9 if spec.layout == "list" else rng.choice([13, 14]))
    sheet = _Sheet(spec.dpi, FONT_FAMILIES[family_name], pt)
    words = load_words(spec.text_source or rng.choice(available_texts()))
    start = rng.randrange(len(words) - 1500)
    words = words[start:] + words[:start]
    left, right, cells = [], [], []
    if spec.layout == "text":
        sheet.paragraphs(words, rng, sheet.bottom, indent=rng.random() < 0.5, max_lines=spec.max_body_lines)
    elif spec.layout == "admin":
        left, right = _admin_header(sheet, rng)
        sheet.paragraphs(words, rng, sheet.bottom - 7 * sheet.line_height, indent=True, max_lines=spec.max_body_lines)
        _signature_block(sheet, rng)
    elif spec.layout == "table":
        cells = _table(sheet, rng, words)
    elif spec.layout == "list":
        cells = _list(sheet, rng)
    elif spec.layout == "seal":
        _seal(sheet, rng, round(sheet.image.width * 0.4), round(sheet.image.height * 0.8))
    elif spec.layout == "signed":
        _signature(sheet, rng, sheet.image.width * 0.65, sheet.image.height * 0.75)
    elif spec.layout != "blank":
        raise ValueError(f"unknown layout {spec.layout!r}; expected one of {LAYOUTS}")
    return sheet, left, right, cells


def _scan(image: Image.Image, spec: PageSpec, rng: random.Random) -> Image.Image:
    """Turn a clean upright sheet into what a scanner would return for it."""
    noise = np.random.default_rng(rng.randrange(2**32))
    level = spec.degradation
    paper = np.array([rng.randint(236, 252), rng.randint(232, 250), rng.randint(222, 246)]) if level else np.full(3, 255)
    pixels = np.asarray(image, dtype=np.float32) * (paper / 255.0)
    if spec.cut_off_fraction > 0:
        pixels = pixels[: round(pixels.shape[0] * (1 - spec.cut_off_fraction))]
    sheet = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    bed = (18, 18, 18) if spec.black_border_mm > 0 else tuple(int(v) for v in paper)
    if spec.black_border_mm > 0:
        margin = round(spec.black_border_mm / 25.4 * spec.dpi)
        # the sheet lies on the bed skewed; the bed is axis-aligned, so turn the sheet alone
        mask = Image.new("L", sheet.size, 255).rotate(spec.skew_deg, resample=Image.BICUBIC, expand=True)
        turned = sheet.rotate(spec.skew_deg, resample=Image.BICUBIC, expand=True, fillcolor=bed)
        framed = Image.new("RGB", (turned.width + 2 * margin, turned.height + 2 * margin), bed)
        framed.paste(turned, (margin, margin), mask)
        scanned = framed
    else:
        scanned = sheet.rotate(spec.skew_deg, resample=Image.BICUBIC, expand=True, fillcolor=bed)
    if spec.orientation:
        scanned = scanned.rotate(spec.orientation, expand=True)
    pixels = np.asarray(scanned, dtype=np.float32)
    h, w = pixels.shape[:2]
    if level:
        gradient = (np.linspace(0, 1, w)[None, :] * rng.random() + np.linspace(0, 1, h)[:, None] * rng.random()) / 2
        pixels = pixels * (1 - 0.08 * level * gradient)[..., None]
        pixels = pixels + noise.normal(0, 4 * level, (h, w))[..., None]
    if level >= 2:  # the scanner lid's shadow along one edge
        k = round(0.02 * min(h, w))
        band = rng.choice([np.s_[:, :k], np.s_[:, -k:], np.s_[:k, :], np.s_[-k:, :]])
        pixels[band] *= 0.3
    scanned = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    blur = (0.3 * level if level >= 2 else 0.0) + spec.extra_blur_px
    if blur:
        scanned = scanned.filter(ImageFilter.GaussianBlur(radius=blur * spec.dpi / 300))
    if level >= 1:
        buffer = io.BytesIO()
        scanned.save(buffer, "JPEG", quality=92 - 6 * level)
        scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if spec.color == "gray":
        return scanned.convert("L")
    if spec.color == "bitonal":
        return scanned.convert("L").point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE)
    return scanned


def _inked(image: Image.Image, ink: tuple[int, int, int]) -> Image.Image:
    """The sheet with its black text in ``ink`` (antialiased edges in proportion); the seal and
    the signature, already in colour, unchanged."""
    pixels = np.asarray(image, dtype=np.float32)
    darkness = 1 - pixels.min(axis=2, keepdims=True) / 255
    neutral = (pixels.max(axis=2) - pixels.min(axis=2) < 30)[..., None]
    inked = 255 - darkness * (255 - np.array(ink, dtype=np.float32))
    return Image.fromarray(np.where(neutral, inked, pixels).clip(0, 255).astype(np.uint8))


def render_page(spec: PageSpec) -> RenderedPage:
    """Render one scanned page and its truth (lines in reading order, NFC)."""
    if spec.orientation not in (0, 90, 180, 270):
        raise ValueError("orientation must be 0, 90, 180 or 270")
    rng = random.Random(f"{spec.seed}/{spec.layout}/{spec.dpi}")
    sheet, left, right, cells = _compose(spec, rng)
    image = _scan(sheet.image if spec.ink is None else _inked(sheet.image, spec.ink), spec, rng)
    truth = [unicodedata.normalize("NFC", line) for line in sheet.truth]
    if spec.cut_off_fraction > 0:
        # lines below the cut are lost; keep the truth honest only roughly: tests of cut-off
        # pages look at the flag, not at the text
        truth = truth[: max(0, round(len(truth) * (1 - spec.cut_off_fraction)))]
    return RenderedPage(image=image, truth_lines=truth, spec=spec, header_left=left, header_right=right,
                        table_cells=cells)


def page_set(layouts=("text", "admin", "table"), dpis=(300,), degradations=(1,), count: int = 6,
             max_skew: float = 8.0, orientations=(0, 90, 180, 270), color: str = "rgb",
             seed: int = 1) -> list[PageSpec]:
    """A reproducible mixed set of specs for the benchmark: layouts, dpi and degradation cycle,
    skew uniform in +-max_skew, quarter turns cycle through ``orientations``."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        specs.append(PageSpec(layout=layouts[i % len(layouts)], dpi=dpis[(i // len(layouts)) % len(dpis)],
                              degradation=degradations[i % len(degradations)],
                              skew_deg=round(rng.uniform(-max_skew, max_skew), 2),
                              orientation=orientations[(i // 2) % len(orientations)], color=color,
                              seed=seed * 1000 + i))
    return specs


def with_changes(spec: PageSpec, **changes) -> PageSpec:
    return replace(spec, **changes)
