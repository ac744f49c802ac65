"""Planning a bulk conversion (``sohoa bulk SOURCE``): which documents a backlog of paper
dossiers holds, and which of its inputs cannot become a document and why. Pure: it reads
names (and, for a CSV source, the CSV); it never opens an image, OCRs or touches a store.

SOURCE is a folder tree or a CSV file.

Folder tree::

    SOURCE/
      H15.50.05.13-261008-0975/         one folder per dossier, named by its code: a one-stop
        01_Don de nghi.pdf              dossier code or an archive file code (dossier.parse_key)
        02 - Giay to tuy than.tif       a document is one file (multi-page PDF or TIFF, one image)
        03_Ban ve/                      or one sub-folder whose image files are its pages,
          trang1.jpg  trang2.jpg  trang10.jpg      in natural order (trang2 before trang10)
      H15.50.05.13-2019-0123/ ...

  A document's title is the file's stem or the sub-folder's name, NFC, underscores read as
  spaces; a leading order number of 1 to 3 digits followed by '_', '-', '.', ')' or a space
  ("01_", "01 - ", "1. ") is taken off the title and orders the documents (a 4-digit leading
  number, like a year, stays in the title). Numbered documents come first, by number, then
  the others; ties and unnumbered ones in natural name order. Dossiers are in natural order
  of their folder names. A file kind is decided by its extension: the kinds
  ``pipeline.inputs`` reads (JPEG, PNG, TIFF, PDF), or by its first bytes when it has none
  (``inputs.stated_extension``); the content is checked when converting.

CSV file (UTF-8, with or without BOM, or Excel's UTF-16 "Unicode Text"; ',', ';' or tab, sniffed
from the header row; Excel's first line "sep=;" skipped)::

    file;dossier;title;page            header names in English or Vietnamese (with or
    scan/0001.tif;H15-2019-0123;Đơn;1  without diacritics): see HEADERS. The page column
    scan/0002.tif;H15-2019-0123;Đơn;2  may be left out: files then in row order.

  Rows with the same (dossier, title) are one document, its files ordered by page order
  (all cells of a document filled, or all empty for row order); without a page column its rows
  must be together (rows apart are refused: two papers of one name, husband's and wife's?). Relative paths are relative
  to the CSV's folder; a Windows path with backslashes is read with '/' when only that form
  exists. Blank rows are skipped. Documents are grouped by dossier, dossiers and documents
  in order of first appearance. A row is numbered as a spreadsheet shows it: the header is
  row 1. A CSV that cannot be read as a whole (not UTF-8, no header with the file, dossier
  and title columns) raises InputError: nothing is planned.

Accounting: every input the source holds appears exactly once in the plan, either as (part
of) a ``BulkDocument`` or as a ``BulkProblem`` - in a folder tree every document file or
document sub-folder, every file lying where no document can be, every empty dossier folder;
in a CSV every non-blank row. A document is all or nothing: if any of its pages is missing,
unreadable by kind, listed twice or out of order, the whole document is a problem and none
of it is converted (a partial record would look complete). The folder of a dossier whose
name is not a valid code turns each of its documents into a problem, naming the folder.

Ignored silently, in a folder tree at every level: hidden files and folders (a name
starting with '.', so ``.DS_Store`` and macOS ``._*`` files), ``Thumbs.db``,
``ehthumbs.db``, ``desktop.ini``, ``__MACOSX`` and Office lock files ``~$*``. They are
never inputs and never reach the report.
"""
from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path

from .dossier import paper_dates, validate_key
from .errors import DossierCodeError, InputError, UsageError, shown_text as shown_name
from .models import MAINTENANCE_VI
from .inputs import EXTENSIONS, sniff, stated_extension, without_extension

SUPPORTED_EXTENSIONS = frozenset().union(*EXTENSIONS.values())
KINDS_HELP = "chỉ nhận JPEG, PNG, TIFF, PDF"
MAX_TITLE = 1000  # TT 05/2025: title at most 1000 characters (the same limit as ingest.check_title)
IGNORED_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "$recycle.bin", "recycler",
                           "system volume information"})  # (the last three: a USB disk's or a share's root)

# CSV header names, compared after folding (see _fold): lower case, no diacritics, 'đ' as 'd',
# anything not a letter or digit as '_'. The first column that matches a field is used.
HEADERS: dict[str, tuple[str, ...]] = {
    "file": ("file", "tep", "tep_tin", "ten_tep", "duong_dan", "path", "file_path", "filename", "file_name"),
    "dossier": ("dossier", "dossier_code", "ma_ho_so", "ho_so", "code", "file_code", "filecode",
                "ma_ho_so_luu_tru"),
    "title": ("title", "document_title", "document", "ten", "ten_tai_lieu", "tai_lieu", "tieu_de"),
    "page": ("page", "page_order", "order", "trang", "thu_tu", "thu_tu_trang", "trang_so", "to_so", "stt_trang",
             "so_thu_tu_trang"),
    # the dossier's fields, optional (TT 05/2025 names first): a document's rows give them once or
    # alike, and the dossier's documents must agree (the ingest refuses a second, different value)
    "maintenance": ("maintenance", "thoi_han_bao_quan", "ma_thoi_han_bao_quan", "ma_bao_quan", "bao_quan",
                    "thoi_han_bq", "thbq", "thoi_han_luu_tru", "thoi_han_bao_quan_nam"),
    "paper_file_code": ("paperfilecode", "paper_file_code", "ma_ho_so_giay", "ho_so_giay"),
    "start_date": ("startdate", "start_date", "ngay_bat_dau", "tu_ngay", "bat_dau"),
    "end_date": ("enddate", "end_date", "ngay_ket_thuc", "den_ngay", "ket_thuc"),
}
# Headers (folded) naming a page's order or a retention period: a column so named that no field
# takes is refused, never left out in silence (the pages would be stored in row order, the file
# kept 10 years, signed and write-once). "Số trang" may be a page's number or the count. Any
# header holding one of these words is such a column, but the columns known to be others.
_PAGE_WORDS = frozenset({"trang", "to", "page", "pages", "order"})
_RETENTION_WORDS = frozenset({"han", "bq", "thbq", "maintenance", "retention"})
_RETENTION_PHRASES = ("bao_quan", "luu_tru")
_OTHER_COLUMNS = ("trang_thai", "to_chuc", "to_trinh", "to_khai", "to_dan_pho", "giai_quyet", "het_han", "han_xu_ly",
                  "noi_luu_tru", "don_vi_bao_quan", "kho_luu_tru", "vi_tri")
REQUIRED = ("file", "dossier", "title")
FIELD_NAMES_VI = {"file": "tệp", "dossier": "mã hồ sơ", "title": "tên tài liệu", "page": "thứ tự trang",
                  "maintenance": "thời hạn bảo quản", "paper_file_code": "mã hồ sơ giấy",
                  "start_date": "ngày bắt đầu", "end_date": "ngày kết thúc"}
DOSSIER_FIELDS = ("maintenance", "paper_file_code", "start_date", "end_date")
VN = ZoneInfo("Asia/Ho_Chi_Minh")  # a paper file's last day is today at the latest, the counter's today
MAINTENANCE_CODES = tuple(MAINTENANCE_VI)

@dataclass(frozen=True)
class BulkDocument:
    """One document to convert: its dossier key, title and files (absolute paths, pages in order).
    ``source`` names the input in the report: the file or sub-folder path relative to SOURCE
    ('/'-separated), or ``"list.csv:row 12-14"``."""

    dossier: str
    title: str
    files: tuple[str, ...]
    source: str
    maintenance: str | None = None      # a CSV's dossier fields, when it gives them
    paper_file_code: str | None = None
    paper_dates: tuple[str, str] | None = None  # ISO, checked


@dataclass(frozen=True)
class BulkProblem:
    """An input that cannot become a document, with the reason an operator reads (Vietnamese).
    ``dossier`` and ``title`` are what the input would have been, when known (else "")."""

    source: str
    reason: str
    dossier: str = ""
    title: str = ""


@dataclass(frozen=True)
class BulkPlan:
    documents: tuple[BulkDocument, ...] = ()
    problems: tuple[BulkProblem, ...] = ()

    @property
    def inputs(self) -> int:
        """How many inputs the source holds: each is one document or one problem."""
        return len(self.documents) + len(self.problems)


def plan(source: Path) -> BulkPlan:
    """The documents and problems of a folder tree or a .csv file (see the module docstring)."""
    source = Path(source)
    if source.is_dir():
        return _plan_tree(source.absolute())
    if source.suffix.lower() == ".csv" and source.is_file():
        return _plan_csv(source.absolute())
    if not source.exists():
        raise InputError(str(source), "không tồn tại (no such folder or file)")
    raise InputError(str(source), "nguồn số hóa hàng loạt phải là một thư mục hồ sơ hoặc một tệp .csv "
                                  "(bulk source must be a folder or a .csv file)")


# --------------------------------------------------------------------------- names

_DIGITS = re.compile(r"([0-9]+)")
_ORDER = re.compile(r"([0-9]{1,3})(?:\s*[-.)]\s*|\s+)(?=\S)")


def natural_key(name: str) -> tuple:
    """Sort key that reads digit runs as numbers (page2 before page10), case-insensitive, NFC,
    spaces and underscores not counted (``trang 3`` before ``trang10``); the name itself breaks
    ties, so the order is total and stable."""
    text = unicodedata.normalize("NFC", name).casefold()
    parts = []
    for i, part in enumerate(_DIGITS.split(text)):
        if i % 2:
            parts.append((0, int(part), part))
        elif part := re.sub(r"[\s_]+", "", part):
            parts.append((1, 0, part))
    return tuple(parts), name


def title_and_order(name: str) -> tuple[str, int | None]:
    """(title, leading order number or None) of a document file's stem or sub-folder's name."""
    text = " ".join(unicodedata.normalize("NFC", name).replace("_", " ").split())
    m = _ORDER.match(text)
    if m:
        return text[m.end():], int(m[1])
    if text.isascii() and text.isdigit() and len(text) <= 3:
        return text, int(text)  # a bare "01": the number is all the title there is
    return text, None


def ignored_name(name: str) -> bool:
    """A file no one means as a document: hidden, an Office lock file, a thumbnail cache."""
    return name.startswith(".") or name.startswith("~$") or name.casefold() in IGNORED_NAMES


def supported_name(name: str, path: str | os.PathLike | None = None) -> bool:
    """A page file by its extension; one without an extension (``stated_extension``) by its first
    bytes, when ``path`` is given (a scan named 'Biên bản ngày 15.3.2024')."""
    if ext := stated_extension(name):
        return ext in SUPPORTED_EXTENSIONS
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            return sniff(f.read(1024)) is not None
    except OSError:
        return False


def _kind_problem(name: str) -> str:
    ext = stated_extension(name) or "(không có phần mở rộng)"
    return f"loại tệp '{ext}' không được hỗ trợ ({KINDS_HELP}) (unsupported file kind)"


def _undecodable(name: str) -> bool:
    """A name whose bytes are not UTF-8 (a Windows ZIP unpacked here, an old Samba share): Python
    holds each such byte as a lone surrogate, which no report, log or database can take."""
    return any("\udc80" <= c <= "\udcff" for c in name)


_NOT_UTF8 = ("tên không phải UTF-8 (thường do giải nén tệp ZIP tạo trên Windows hoặc chép từ ổ mạng cũ): "
             "hãy đổi tên cho đúng rồi chạy lại (name is not UTF-8)")


def _listing(folder: Path) -> list[os.DirEntry]:
    """The entries of a folder that are inputs, in natural order; OSError propagates."""
    with os.scandir(folder) as it:
        entries = [e for e in it if not ignored_name(e.name)]
    return sorted(entries, key=lambda e: natural_key(e.name))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _sentence(text: str) -> str:
    """A reason as the operator reads it: first letter capital, like every message of sohoa."""
    return text[:1].upper() + text[1:]


def _listed(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" và {len(names) - limit} tệp khác" if len(names) > limit else "")


# --------------------------------------------------------------------------- folder tree

def _plan_tree(root: Path) -> BulkPlan:
    documents: list[BulkDocument] = []
    problems: list[BulkProblem] = []
    try:
        entries = _listing(root)
    except OSError as e:
        raise InputError(str(root), f"không đọc được thư mục ({e.strerror})") from None
    stray_hint = ""
    try:
        validate_key(root.name)
        stray_hint = (f"; thư mục nguồn '{root.name}' có tên là mã hồ sơ: hãy chỉ định thư mục chứa nó "
                      "(thư mục nguồn chứa các thư mục hồ sơ)")
    except DossierCodeError:
        pass
    for entry in entries:
        if _undecodable(entry.name):
            problems.append(BulkProblem(shown_name(entry.name), _sentence(_NOT_UTF8)))
        elif _is_dir(entry):
            _plan_dossier(Path(entry.path), entry.name, documents, problems)
        else:
            problems.append(BulkProblem(entry.name, "Tệp nằm ngay trong thư mục nguồn, không thuộc thư mục hồ sơ nào "
                                                    "(mỗi hồ sơ là một thư mục đặt tên theo mã hồ sơ)" + stray_hint))
    return BulkPlan(tuple(documents), tuple(problems))


def _plan_dossier(folder: Path, name: str, documents: list, problems: list) -> None:
    try:
        code, code_error = validate_key(name), None
    except DossierCodeError as e:
        code, code_error = name, f"Tên thư mục hồ sơ không dùng được làm mã hồ sơ. {e.message_vi}"
    try:
        entries = _listing(folder)
    except OSError as e:
        problems.append(BulkProblem(name, f"Không đọc được thư mục hồ sơ ({e.strerror})", dossier=name))
        return
    if not entries:
        problems.append(BulkProblem(name, code_error or "Thư mục hồ sơ rỗng, không có tài liệu nào (empty dossier folder)",
                                    dossier=name))
        return
    planned = []  # (sort key, document or problem)
    for entry in entries:
        shown = shown_name(entry.name)
        rel = f"{name}/{shown}"
        title, order = title_and_order(without_extension(shown) if not _is_dir(entry) else shown)
        files, reason = ((), _NOT_UTF8) if _undecodable(entry.name) else _document_files(entry)
        if not title and reason is None:
            reason = "không có tên tài liệu (tên tệp hoặc thư mục chỉ có số thứ tự hay dấu)"
        if code_error:
            reason = code_error + (f"; ngoài ra: {reason}" if reason else "")
        item = (BulkProblem(rel, _sentence(reason), dossier=name, title=title) if reason
                else BulkDocument(code, title, files, rel))
        key = (0, order, natural_key(entry.name)) if order is not None else (1, 0, natural_key(entry.name))
        planned.append((key, item))
    for _, item in sorted(planned, key=lambda p: p[0]):
        (problems if isinstance(item, BulkProblem) else documents).append(item)


def _document_files(entry: os.DirEntry) -> tuple[tuple[str, ...], str | None]:
    """The files of a document entry (a file, or a folder of page files), or why it is none."""
    if _is_file(entry):
        return ((entry.path,), None) if supported_name(entry.name, entry.path) else ((), _kind_problem(entry.name))
    if not _is_dir(entry):
        return (), "không phải tệp thường hay thư mục (liên kết hỏng?) (not a regular file)"
    try:
        pages = _listing(Path(entry.path))
    except OSError as e:
        return (), f"không đọc được thư mục tài liệu ({e.strerror})"
    if not pages:
        return (), "thư mục tài liệu rỗng, không có trang nào (empty document folder)"
    if garbled := [shown_name(p.name) for p in pages if _undecodable(p.name)]:
        return (), f"trang {_listed(garbled)}: {_NOT_UTF8}"
    folders = [p.name for p in pages if _is_dir(p)]
    if folders:
        return (), (f"thư mục tài liệu chứa thư mục con {_listed(folders)}: mỗi tài liệu là một tệp "
                    "hoặc một thư mục chỉ chứa các tệp trang (nested folder)")
    odd = [p.name for p in pages if not _is_file(p)]
    if odd:
        return (), f"không phải tệp thường: {_listed(odd)} (not a regular file)"
    unsupported = [p.name for p in pages if not supported_name(p.name, p.path)]
    if unsupported:
        return (), (f"có tệp không được hỗ trợ {_listed(unsupported)} ({KINDS_HELP}); không số hóa tài liệu "
                    "thiếu trang (unsupported page file)")
    return tuple(p.path for p in pages), None


# --------------------------------------------------------------------------- CSV

def _fold(header: str) -> str:
    text = unicodedata.normalize("NFD", header.strip().replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_")


# the periods as words ("Vĩnh viễn", "20 năm"), as inventories write them, for their codes
_MAINTENANCE_WORDS = {_fold(words): code for code, words in MAINTENANCE_VI.items() if code != "07"}


def _in_years(given: str) -> str:
    """A cell of a retention column in years ("Thời hạn bảo quản (năm)"): "20" is 20 years, never a
    code (a "5" there is five years, which TT 05/2025 has no code for: refused as it is)."""
    return f"{given} năm" if given.isdigit() else given


def _maintenance_code(given: str) -> str:
    """The retention code a cell gives ("6", "06", "10 năm", "vĩnh viễn"): the code, else the cell
    (a number of years alone is read as years only under a "(năm)" header, ``_in_years``)."""
    return _MAINTENANCE_WORDS.get(_fold(given), given.zfill(2) if given.isdigit() and len(given) < 2 else given)


def _columns(header: list[str]) -> dict[str, int]:
    """Field name -> column index, for the columns the header names."""
    folded = [_fold(h) for h in header]
    found: dict[str, int] = {}
    for fieldname, aliases in HEADERS.items():
        for alias in aliases:
            if alias in folded:
                found[fieldname] = folded.index(alias)
                break
    return found


def _unread_columns(header: list[str], columns: dict[str, int]) -> list[str]:
    """Why the header cannot be read as it stands: a column no field takes that names a page's
    order (when no column gives it) or a retention period (likewise)."""
    used = set(columns.values())
    reasons = []
    for i, name in enumerate(header):
        folded = _fold(name)
        if i in used or not folded:
            continue
        words = set(folded.split("_"))
        if any(other in folded for other in _OTHER_COLUMNS):
            continue
        if "page" not in columns and words & _PAGE_WORDS:
            reasons.append(f"cột '{name.strip()}' không rõ là thứ tự trang hay số trang của tài liệu: nếu là thứ tự "
                           "trang hãy đặt tên cột là 'Thứ tự trang' (hoặc 'Trang'), nếu không hãy bỏ cột")
        elif "maintenance" not in columns and (words & _RETENTION_WORDS
                                               or any(p in folded for p in _RETENTION_PHRASES)):
            reasons.append(f"cột '{name.strip()}' không được đọc: nếu là thời hạn bảo quản hãy đặt tên cột là "
                           "'Thời hạn bảo quản' (mã 01-07 hoặc 'vĩnh viễn', '70 năm' …), nếu không hãy bỏ cột")
    return reasons


def _read_table(csv_path: Path) -> tuple[list[list[str]], dict[str, int], int]:
    """(records, columns, index of the header record) of a CSV, or InputError."""
    try:
        raw = csv_path.read_bytes()
    except OSError as e:
        raise InputError(str(csv_path), f"không đọc được ({e.strerror})") from None
    # Excel's "Unicode Text" is UTF-16, with its byte order mark (or, saved by other tools, without)
    encoding = ("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else
                ("utf-16-be" if raw[:1] == b"\x00" else "utf-16-le") if b"\x00" in raw[:200] and len(raw) % 2 == 0
                else "utf-8-sig")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise InputError(str(csv_path), "không phải UTF-8: trong Excel hãy lưu bằng 'CSV UTF-8 (Comma delimited)' "
                                        "(not UTF-8)") from None
    sep_line = re.match(r"\s*sep=(.)[^\n]*\n", text, re.IGNORECASE)  # Excel's line naming the separator
    if sep_line:
        text = text[sep_line.end():]
    best = None
    for delimiter in (",", ";", "\t"):
        try:
            records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as e:
            raise InputError(str(csv_path), f"không đọc được CSV ({e})") from None
        header_at = next((i for i, r in enumerate(records) if any(c.strip() for c in r)), None)
        if header_at is None:
            raise InputError(str(csv_path), "tệp CSV không có dòng nào (empty CSV)")
        columns = _columns(records[header_at])
        score = (sum(f in columns for f in REQUIRED), len(columns), len(records[header_at]))
        if best is None or score > best[0]:
            best = (score, records, columns, header_at)
    _, records, columns, header_at = best
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        accepted = "; ".join(f"{FIELD_NAMES_VI[f]}: {', '.join(HEADERS[f][:4])}" for f in REQUIRED + ("page",))
        raise InputError(str(csv_path), f"dòng tiêu đề thiếu cột {', '.join(FIELD_NAMES_VI[f] for f in missing)} "
                                        f"(tiêu đề đọc được: {records[header_at]}; tên cột nhận: {accepted}) "
                                        "(header lacks required columns)")
    if unread := _unread_columns(records[header_at], columns):
        raise InputError(str(csv_path), f"dòng tiêu đề: {'; '.join(unread)} (column not read)")
    if not any(any(c.strip() for c in r) for r in records[header_at + 1:]):  # a wrong export, more likely than none
        raise InputError(str(csv_path), "danh sách không có dòng nào dưới dòng tiêu đề (no rows under the header)")
    return records, columns, header_at


@dataclass
class _Row:
    number: int          # as a spreadsheet shows it
    file: str
    page: str
    fields: dict = field(default_factory=dict)  # the dossier fields it gives (DOSSIER_FIELDS), non-empty
    path: Path | None = None
    reasons: list[str] = field(default_factory=list)


def _rows_text(numbers: list[int]) -> str:
    """'12-14' or '3, 7-9' (row numbers ascending)."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _resolve(base: Path, cell: str, listings: dict) -> Path:
    path = Path(cell)
    path = path if path.is_absolute() else base / path
    if not path.exists() and "\\" in cell:
        alt = Path(cell.replace("\\", "/"))
        alt = alt if alt.is_absolute() else base / alt
        if alt.exists():
            return alt
        path = alt
    return path if path.exists() else _written_otherwise(path, listings) or path


def _written_otherwise(path: Path, listings: dict[Path, dict[str, list[str]]]) -> Path | None:
    """The file a path names in another Unicode form or case: a list typed in Excel (composed
    letters) for scans copied from a Mac (decomposed), "quyết định.tif" for "Quyết định.TIF";
    each part of the path matched alone, and only when one entry of its folder matches. Each
    folder is listed once (``listings``, kept for one CSV: thousands of rows in one folder)."""
    found = Path(path.anchor)
    for part in path.parts[len(Path(path.anchor).parts):]:
        if (found / part).exists():
            found = found / part
            continue
        if found not in listings:
            try:
                names = os.listdir(found)
            except OSError:
                return None
            listings[found] = {}
            for name in names:
                listings[found].setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
        matches = listings[found].get(unicodedata.normalize("NFC", part).casefold(), [])
        if len(matches) != 1:
            return None
        found = found / matches[0]
    return found


def _plan_csv(csv_path: Path) -> BulkPlan:
    records, columns, header_at = _read_table(csv_path)
    name, base = csv_path.name, csv_path.parent
    width = len(records[header_at])
    groups: dict[tuple[str, str], list[_Row]] = {}
    items: list[tuple[int, object]] = []  # (first row, group key or a row problem), in row order
    by_file: dict[Path, list[int]] = {}

    in_years = "maintenance" in columns and _fold(records[header_at][columns["maintenance"]]).endswith("_nam")
    apart: dict[tuple[str, str], int] = {}  # documents in row order whose rows other rows part: the first row apart
    last_key = None
    listings: dict = {}  # folder -> its names, for files written in another form or case

    def cell(record: list[str], fieldname: str) -> str:
        i = columns.get(fieldname)
        return record[i].strip() if i is not None and i < len(record) else ""

    for index in range(header_at + 1, len(records)):
        record, number = records[index], index + 1
        if not any(c.strip() for c in record):
            continue
        source = f"{name}:row {number}"
        dossier, file = cell(record, "dossier"), cell(record, "file")
        title = " ".join(unicodedata.normalize("NFC", cell(record, "title")).split())
        row = _Row(number, file, cell(record, "page"),
                   {f: _in_years(cell(record, f)) if f == "maintenance" and in_years else cell(record, f)
                    for f in DOSSIER_FIELDS if cell(record, f)})
        if file:
            row.path = _resolve(base, file, listings)
            by_file.setdefault(row.path.resolve(), []).append(number)
        if len(record) > width and any(c.strip() for c in record[width:]):
            items.append((number, BulkProblem(source, f"Dòng có {len(record)} ô, nhiều hơn {width} cột của dòng tiêu đề: "
                                                      "một ô có dấu phân cách mà không đặt trong ngoặc kép? "
                                                      "(more cells than header columns)", dossier, title)))
            continue
        missing = [FIELD_NAMES_VI[f] for f, v in (("dossier", dossier), ("title", title)) if not v]
        if missing:
            items.append((number, BulkProblem(source, f"Dòng thiếu {', '.join(missing)} (row lacks a value)",
                                              dossier, title)))
            continue
        key = (dossier, title)
        if key not in groups:
            groups[key] = []
            items.append((number, key))
        elif last_key != key and not row.page:  # another document's rows came between, none ordering them
            apart.setdefault(key, row.number)
        groups[key].append(row)
        last_key = key

    documents: list[tuple[tuple[int, int], BulkDocument]] = []
    problems: list[BulkProblem] = []
    dossier_first: dict[str, int] = {}
    for first, item in items:
        if isinstance(item, BulkProblem):
            problems.append(item)
            continue
        dossier, title = item
        rows = groups[item]
        source = f"{name}:row {_rows_text([r.number for r in rows])}"
        reasons = _group_problems(dossier, title, rows, "page" in columns, by_file)
        if item in apart:
            reasons.append(f"các dòng {_rows_text([r.number for r in rows])} cùng tên tài liệu nhưng không liền nhau "
                           f"(dòng {apart[item]} đến sau dòng của tài liệu khác): nếu là hai tài liệu hãy đặt tên khác "
                           "(ví dụ 'Bản sao CCCD của chồng', '… của vợ'); nếu là một tài liệu hãy đặt các dòng liền "
                           "nhau hoặc thêm cột thứ tự trang (rows of one title apart)")
        fields, field_reasons = _dossier_fields(rows)
        if reasons or field_reasons:
            problems.append(BulkProblem(source, _sentence("; ".join(reasons + field_reasons)), dossier, title))
            continue
        ordered = sorted(rows, key=lambda r: (int(r.page) if r.page else 0, r.number))
        order = (dossier_first.setdefault(dossier, first), first)
        documents.append((order, BulkDocument(dossier, title, tuple(str(r.path) for r in ordered), source,
                                              **fields)))
    documents.sort(key=lambda d: d[0])
    return BulkPlan(tuple(d for _, d in documents), tuple(problems))


def _dossier_fields(rows: list[_Row]) -> tuple[dict, list[str]]:
    """The dossier fields one document's rows give (``BulkDocument``'s names), and why they cannot
    be taken (empty: they can): rows giving different values, a maintenance code outside 01-07,
    dates that ``dossier.paper_dates`` refuses."""
    given, reasons = {}, []
    for name in DOSSIER_FIELDS:
        values = {_maintenance_code(r.fields[name]) if name == "maintenance" else r.fields[name]
                  for r in rows if name in r.fields}
        if len(values) > 1:
            reasons.append(f"các dòng ghi {FIELD_NAMES_VI[name]} khác nhau ({', '.join(sorted(values))}) "
                           "(rows of one document disagree)")
        elif values:
            given[name] = values.pop()
    found: dict = {}
    if "maintenance" in given:
        code = given["maintenance"]
        if code in MAINTENANCE_CODES:
            found["maintenance"] = code
        else:
            reasons.append(f"thời hạn bảo quản '{given['maintenance']}' không phải mã 01-07 theo TT 05/2025 ("
                           + ", ".join(f"{c}: {w}" for c, w in MAINTENANCE_VI.items()) + ") (maintenance code)")
    if "paper_file_code" in given:
        if len(given["paper_file_code"]) > 100:
            reasons.append("mã hồ sơ giấy dài quá 100 ký tự (paper file code too long)")
        else:
            found["paper_file_code"] = unicodedata.normalize("NFC", given["paper_file_code"])
    try:
        dates = paper_dates(given.get("start_date"), given.get("end_date"), datetime.now(VN).date())
    except UsageError as e:
        reasons.append(e.message_vi)
    else:
        if dates is not None:
            found["paper_dates"] = dates
    return found, reasons


def _group_problems(dossier: str, title: str, rows: list[_Row], has_page: bool,
                    by_file: dict[Path, list[int]]) -> list[str]:
    """Why the rows of one document cannot become it (empty: they can)."""
    reasons: list[str] = []
    try:
        validate_key(dossier)
    except DossierCodeError as e:
        reasons.append(e.message_vi)
    if len(title) > MAX_TITLE:
        reasons.append(f"tên tài liệu dài {len(title)} ký tự, tối đa {MAX_TITLE}")
    for r in rows:
        if not r.file:
            reasons.append(f"dòng {r.number} thiếu tệp (row lacks a file)")
        elif not r.path.exists():
            reasons.append(f"dòng {r.number}: tệp '{r.file}' không tồn tại (file not found)")
        elif r.path.is_dir():
            reasons.append(f"dòng {r.number}: '{r.file}' là một thư mục, không phải tệp (is a directory)")
        elif not supported_name(r.path.name, r.path):
            reasons.append(f"dòng {r.number}: tệp '{r.file}': {_kind_problem(r.path.name)}")
        elif len(by_file[r.path.resolve()]) > 1:
            reasons.append(f"tệp '{r.file}' được liệt kê nhiều lần (dòng {_rows_text(by_file[r.path.resolve()])}) "
                           "(file listed more than once)")
    if has_page:
        bad = [r for r in rows if r.page and not (r.page.isascii() and r.page.isdigit())]
        for r in bad:
            reasons.append(f"dòng {r.number}: thứ tự trang '{r.page}' không phải số nguyên (page order not a number)")
        empty = [r.number for r in rows if not r.page]
        if empty and len(empty) < len(rows):
            reasons.append(f"thiếu thứ tự trang ở dòng {_rows_text(empty)} trong khi các dòng khác của tài liệu có "
                           "(page order missing on some rows)")
        seen: dict[int, list[int]] = {}
        for r in rows:
            if r.page and r.page.isascii() and r.page.isdigit():
                seen.setdefault(int(r.page), []).append(r.number)
        for page, numbers in sorted(seen.items()):
            if len(numbers) > 1:
                reasons.append(f"trùng thứ tự trang {page} (dòng {_rows_text(numbers)}) (duplicate page order)")
    return list(dict.fromkeys(reasons))  # a file listed twice in one document is said once
