"""Split one continuous scan of many paper dossiers at their receipts (issue 12, point 5).

The one-stop system prints the dossier code as a QR code on the receipt (phiếu tiếp nhận và
hẹn trả kết quả). In a continuous scan, a page whose QR code holds a valid dossier code starts
that dossier and is kept as its first document's first page; the pages after it, up to the
next receipt, are that dossier's.

Rules, page by page (the QR codes of a page come from ``ocr.receipt.read_qr_codes``):

* **exactly one dossier code** (a payload that is the code, or a URL / ``key=value`` text
  containing it): the page starts a dossier group, or continues the open one when it carries
  the same code (a receipt of two pages, a second copy). A code already seen earlier in the
  scan starts a group again and is reported (``repeated_code``, not blocking).
* **a QR code located but not decoded**, **a payload that looks like a dossier code but is not
  a valid one** (bad date, lower case, ``Mã hồ sơ: ...`` with nothing valid after it), or
  **two different codes on one page**: the page may be the receipt of a new dossier whose code
  is unknown. Its pages must never be merged silently into the dossier before it, so the page
  and every page after it, up to the next readable receipt, are **held back**: a
  :class:`HeldGroup`, reported by a blocking :class:`PageProblem` that names the file and the
  page, and not ingested. The operator checks the page, rescans it (or types the code) and
  runs the stretch again.
* **no QR code**: the page belongs to the open group; before the first receipt there is none,
  and those pages are held back too (``before_first_receipt``).
* **a QR code that holds something else entirely** (a citizen identity card's QR code, a
  payment code): an ordinary page of the open group, with a notice (``foreign_qr``, not
  blocking). Its payload, personal data, is not repeated in the message.

Everything here is pure except :func:`split_scan`, which reads the QR codes of a stream of
pages while holding one decoded page at a time, and :func:`scan_pages`, which yields the pages
of input files one by one.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import unquote_plus

from PIL import Image

from ocr.receipt import QrReading, read_qr_codes

from .dossier import parse
from .errors import DossierCodeError

BEFORE_FIRST_RECEIPT = "before_first_receipt"
UNREADABLE_QR = "unreadable_qr"
INVALID_CODE = "invalid_code"
CONFLICTING_CODES = "conflicting_codes"
FOREIGN_QR = "foreign_qr"
EXTRA_UNREADABLE = "extra_unreadable"
REPEATED_CODE = "repeated_code"
BLOCKING = frozenset({BEFORE_FIRST_RECEIPT, UNREADABLE_QR, INVALID_CODE, CONFLICTING_CODES})

# A dossier code inside a longer text: the two regulation formats of pipeline.dossier, not glued
# to other letters or digits (each candidate is then validated by pipeline.dossier.parse).
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z.])[0-9A-Z]+(?:\.[0-9A-Z]+)*-[0-9]{6}-[0-9A-Z]{4,}(?![0-9A-Za-z])")
# Something meant as a dossier code that is not one: any case, spaces around the dashes.
_LOOSE = re.compile(r"(?<![0-9A-Za-z.])[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*\s*-\s*[0-9]{6}\s*-\s*[0-9A-Za-z]{2,}")
_KEYWORDS = re.compile(r"m[ãa]\s*h[ồo]\s*s[ơo]|ma_?ho_?so|mahs\b|\bma\s*=|file_?code|ho_?so_?id", re.IGNORECASE)
SHOWN_CHARS = 60


@dataclass(frozen=True)
class ScanPage:
    """One page of the continuous scan: its position (0-based) and where it came from."""

    index: int
    file: str
    page: int  # 1-based, within its file

    def to_json(self) -> dict:
        return {"index": self.index, "file": self.file, "page": self.page}


@dataclass(frozen=True)
class DossierGroup:
    """The pages of one dossier, its receipt first."""

    code: str
    pages: tuple[ScanPage, ...]

    @property
    def first(self) -> ScanPage:
        return self.pages[0]

    def to_json(self) -> dict:
        return {"code": self.code, "pages": [p.to_json() for p in self.pages]}


@dataclass(frozen=True)
class HeldGroup:
    """Pages held back, not ingested: which dossier they belong to is not known. ``kind`` is
    that of the blocking problem at their first page."""

    kind: str
    pages: tuple[ScanPage, ...]

    def to_json(self) -> dict:
        return {"kind": self.kind, "pages": [p.to_json() for p in self.pages]}


@dataclass(frozen=True)
class PageProblem:
    """Something an operator must see about one page. ``blocking``: pages were held back."""

    kind: str
    file: str
    page: int
    index: int
    message_vi: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING

    def to_json(self) -> dict:
        return {"kind": self.kind, "file": self.file, "page": self.page, "index": self.index,
                "blocking": self.blocking, "message": self.message_vi}


@dataclass(frozen=True)
class SplitPlan:
    """Where the dossiers of a continuous scan start. ``groups`` are ready to ingest; ``held``
    are not; ``problems`` are in scan order, each naming its file and page."""

    groups: tuple[DossierGroup, ...]
    held: tuple[HeldGroup, ...]
    problems: tuple[PageProblem, ...]
    page_count: int

    @property
    def complete(self) -> bool:
        """Every page is in a dossier group: nothing held back."""
        return not self.held

    def to_json(self) -> dict:
        return {"pages": self.page_count, "complete": self.complete,
                "groups": [g.to_json() for g in self.groups], "held": [h.to_json() for h in self.held],
                "problems": [p.to_json() for p in self.problems]}


@dataclass(frozen=True)
class PayloadReading:
    """What one QR payload says: the valid dossier codes in it, and for a payload meant as a
    dossier code that is none, why (Vietnamese)."""

    codes: tuple[str, ...] = ()
    invalid: str | None = None


def find_codes(text: str) -> tuple[str, ...]:
    """The distinct valid dossier codes in a QR payload, in order: the payload itself (spaces
    around it stripped), or codes inside a URL or ``key=value`` text (percent-encoding undone)."""
    stripped = text.strip()
    try:
        return (parse(stripped)["code"],)
    except DossierCodeError:
        pass
    found: list[str] = []
    for variant in dict.fromkeys((stripped, unquote_plus(stripped))):
        for match in _CANDIDATE.finditer(variant):
            try:
                code = parse(match.group(0))["code"]
            except DossierCodeError:
                continue
            if code not in found:
                found.append(code)
    return tuple(found)


def find_code_in(text: str) -> str | None:
    """The dossier code a QR payload holds, None when it holds none or several different ones."""
    codes = find_codes(text)
    return codes[0] if len(codes) == 1 else None


def read_payload(text: str) -> PayloadReading:
    codes = find_codes(text)
    if codes:
        return PayloadReading(codes)
    stripped = text.strip()
    for variant in dict.fromkeys((stripped, unquote_plus(stripped))):
        loose = _LOOSE.search(variant)
        if loose:
            candidate = loose.group(0)
            try:
                parse(candidate)
            except DossierCodeError as e:
                return PayloadReading(invalid=e.message_vi)
            return PayloadReading(invalid=f"Mã hồ sơ không hợp lệ: '{_shown(candidate)}'")
    if _KEYWORDS.search(stripped):
        return PayloadReading(invalid=f"'{_shown(stripped)}' không chứa mã hồ sơ hợp lệ")
    return PayloadReading()


def _shown(text: str) -> str:
    """A payload as a message may show it: control characters replaced, cut to SHOWN_CHARS."""
    clean = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return clean if len(clean) <= SHOWN_CHARS else clean[:SHOWN_CHARS] + "…"


def _where(p: ScanPage) -> str:
    return f"Trang {p.page} của tệp {p.file}"


def _span(pages: list[ScanPage]) -> str:
    """'trang 3–5 của tệp a.tif' or 'trang 9 của tệp a.tif đến trang 2 của tệp b.tif'."""
    first, last = pages[0], pages[-1]
    if first.file == last.file:
        pages_vi = f"trang {first.page}" if first.page == last.page else f"trang {first.page}–{last.page}"
        return f"{pages_vi} của tệp {first.file}"
    return f"trang {first.page} của tệp {first.file} đến trang {last.page} của tệp {last.file}"


@dataclass
class _Open:
    """The stretch being collected: a dossier group (code) or a held stretch (kind, reason)."""

    pages: list[ScanPage] = field(default_factory=list)
    code: str | None = None
    kind: str | None = None
    reason: str = ""   # Vietnamese
    gloss: str = ""    # English


class _Planner:
    def __init__(self) -> None:
        self.groups: list[DossierGroup] = []
        self.held: list[HeldGroup] = []
        self.problems: list[PageProblem] = []
        self.seen: dict[str, ScanPage] = {}
        self.open: _Open | None = None
        self.count = 0

    def note(self, kind: str, where: ScanPage, message: str) -> None:
        self.problems.append(PageProblem(kind, where.file, where.page, where.index, message))

    def close(self) -> None:
        stretch, self.open = self.open, None
        if stretch is None or not stretch.pages:
            return
        if stretch.code is not None:
            self.groups.append(DossierGroup(stretch.code, tuple(stretch.pages)))
            return
        first = stretch.pages[0]
        held = (f"{len(stretch.pages)} trang ({_span(stretch.pages)}) được giữ lại, chưa số hóa, "
                "không gộp vào hồ sơ nào")
        self.note(stretch.kind, first, f"{stretch.reason}. {held} ({stretch.gloss}; pages held back).")
        self.held.append(HeldGroup(stretch.kind, tuple(stretch.pages)))

    def start(self, page: ScanPage, code: str | None = None, kind: str | None = None, reason: str = "",
              gloss: str = "") -> None:
        self.close()
        self.open = _Open([page], code, kind, reason, gloss)

    def add(self, page: ScanPage, reading: QrReading) -> None:
        self.count += 1
        payloads = [read_payload(text) for text in reading.texts]
        codes = list(dict.fromkeys(code for p in payloads for code in p.codes))
        invalid = [p.invalid for p in payloads if p.invalid]
        foreign = sum(1 for p in payloads if not p.codes and not p.invalid)
        where = _where(page)

        if len(codes) > 1:
            self.start(page, kind=CONFLICTING_CODES,
                       reason=f"{where} có {len(codes)} mã hồ sơ khác nhau ({', '.join(codes)}); không biết "
                              "trang thuộc hồ sơ nào, kiểm tra phiếu tiếp nhận",
                       gloss="two different dossier codes on one page")
            return
        if len(codes) == 1:
            code = codes[0]
            if reading.unreadable:
                self.note(EXTRA_UNREADABLE, page,
                          f"{where} có mã hồ sơ {code} và {reading.unreadable} mã QR khác không đọc được; "
                          f"trang được dùng làm phiếu tiếp nhận của hồ sơ {code}, hãy kiểm tra lại "
                          "(another QR code on the page could not be read)")
            if self.open is not None and self.open.code == code:
                self.open.pages.append(page)
                return
            if code in self.seen:
                earlier = self.seen[code]
                self.note(REPEATED_CODE, page,
                          f"Mã hồ sơ {code} ở {where[0].lower() + where[1:]} đã có ở trang {earlier.page} của tệp "
                          f"{earlier.file}; các trang sau được đưa vào hồ sơ {code} một lần nữa, kiểm tra thứ tự "
                          "trang (the dossier code appears twice in the scan)")
            else:
                self.seen[code] = page
            self.start(page, code=code)
            return
        if reading.unreadable:
            self.start(page, kind=UNREADABLE_QR,
                       reason=f"{where} có mã QR nhưng không đọc được; kiểm tra và quét lại trang này",
                       gloss="QR code located but not decoded")
            return
        if invalid:
            self.start(page, kind=INVALID_CODE,
                       reason=f"{where} có mã QR không phải mã hồ sơ hợp lệ. {invalid[0]}",
                       gloss="QR payload is not a valid dossier code")
            return
        if self.open is None:
            self.start(page, kind=BEFORE_FIRST_RECEIPT,
                       reason=f"{where} nằm trước phiếu tiếp nhận đầu tiên, không biết thuộc hồ sơ nào; "
                              "đặt phiếu tiếp nhận lên đầu mỗi hồ sơ rồi quét lại",
                       gloss="pages before the first receipt")
        else:
            self.open.pages.append(page)
        if foreign:
            target = (f"được giữ trong hồ sơ {self.open.code} như một trang thường" if self.open.code
                      else "nằm trong phần bị giữ lại")
            self.note(FOREIGN_QR, page,
                      f"{where} có mã QR không chứa mã hồ sơ (ví dụ mã QR trên căn cước công dân); trang "
                      f"{target} (QR code without a dossier code)")

    def plan(self) -> SplitPlan:
        self.close()
        problems = sorted(self.problems, key=lambda p: (p.index, not p.blocking))
        return SplitPlan(tuple(self.groups), tuple(self.held), tuple(problems), self.count)


def plan_split(readings: Iterable[tuple[str, int, QrReading]]) -> SplitPlan:
    """The split of a continuous scan, from each page's (file, page number from 1, QR reading)
    in scan order. Pure: the same readings always give the same plan."""
    planner = _Planner()
    for index, (file, page, reading) in enumerate(readings):
        planner.add(ScanPage(index, file, page), reading)
    return planner.plan()


def split_scan(pages: Iterable[tuple[str, int, Image.Image]],
               read: Callable[[Image.Image], QrReading] = read_qr_codes) -> SplitPlan:
    """Read the QR codes of every page of a continuous scan, (file, page number from 1, image)
    in scan order, and split it. Only the page being read is held: pass a generator (see
    :func:`scan_pages`) and each image is dropped once its QR codes are read."""

    def readings() -> Iterator[tuple[str, int, QrReading]]:
        for file, number, image in pages:
            reading = read(image)
            del image
            yield file, number, reading

    return plan_split(readings())


def scan_pages(paths: Iterable[str | Path], max_pixels: int) -> Iterator[tuple[str, int, Image.Image]]:
    """The pages of input files (JPEG, PNG, TIFF, scanned PDF), decoded one at a time, as
    (file, page number from 1, image with its stated resolution in ``info['dpi']``). A bad file
    raises ``InputError`` naming it (and the page) when it is reached."""
    from .inputs import load_page, read_source

    for path in paths:
        source = read_source(path, max_pixels)
        for number in range(1, source.page_count + 1):
            image, dpi = load_page(source.path, source.kind, source.data, number, max_pixels)
            if dpi:
                image.info["dpi"] = dpi
            yield source.path, number, image
