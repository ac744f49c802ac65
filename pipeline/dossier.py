"""Dossier codes (TT 01/2023 and TT 03/2025 Điều 13 k3), archive file codes and document ids.

A code is validated before it is used anywhere, so it can never reach the file
system or an object key as a path: only A-Z, 0-9, '.' and '-' survive the patterns,
and '..' is refused explicitly.

Two families of dossier key:

- a one-stop dossier code (``parse``/``validate``, unchanged): ``<agency>-YYMMDD-XXXX``
  or ``MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX``;
- an archive file code (``parse_key``/``validate_key`` accept it besides a one-stop code), for
  old paper files that never had a one-stop code. TT 05/2025 ``fileCode`` is agency code + year
  + number, at most 100 characters. sohoa's concrete form is

      <agency code>-<YYYY>-<number>        e.g. H15.50.05.13-2019-0123, 000.00.12.H15-2019-7

  * agency code: dot-separated groups of 0-9 and A-Z, at most 35 characters (QĐ 20/2020);
  * YYYY: the year the file was formed, exactly 4 digits, 1945 up to the current year;
  * number: the file's number in that year's list, 1 to 6 digits, not all zeros; leading
    zeros are kept as written (``-2019-0123`` and ``-2019-123`` are different codes).

  The parts are separated by hyphens, not dots: an agency code is itself dotted, so in
  ``000.00.12.H15.2019.0123`` nothing tells where the agency ends. The dotted spelling is
  refused with a hint giving the hyphen form. An archive code never matches a one-stop code:
  its middle part has 4 digits, a one-stop code's date part 6.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from .errors import DossierCodeError, UsageError

# <agency code>-YYMMDD-XXXX: agency code is dot-separated groups of 0-9A-Z (QĐ 20/2020).
_ORDINARY = re.compile(r"(?P<agency>[0-9A-Z]+(?:\.[0-9A-Z]+)*)-(?P<date>[0-9]{6})-(?P<seq>[0-9]{4,})")
# MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX: centrally provided services, from 25/01/2026.
_CENTRAL = re.compile(r"(?P<agency>M[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{2})-(?P<date>[0-9]{6})-(?P<seq>[A-Z]{2}[0-9]{4,})")
# <agency code>-YYYY-<number>: an archive file code (see the module docstring). The number is
# matched with any length here so that an over-long one gets its own message.
_ARCHIVE = re.compile(r"(?P<agency>[0-9A-Z]+(?:\.[0-9A-Z]+)*)-(?P<year>[0-9]{4})-(?P<number>[0-9]+)")
# The same with dots between the parts: refused, only recognised to suggest the hyphen form.
_ARCHIVE_DOTTED = re.compile(r"(?P<agency>[0-9A-Z]+(?:\.[0-9A-Z]+)*)\.(?P<year>(?:19|20)[0-9]{2})\.(?P<number>[0-9]{1,6})")
MAX_AGENCY_LEN = 35
MIN_ARCHIVE_YEAR = 1945
MAX_ARCHIVE_NUMBER_LEN = 6
MAX_CODE_LEN = 100  # TT 05/2025: fileCode at most 100 characters

FORMATS_HELP = (
    "định dạng hợp lệ: <mã cơ quan>-YYMMDD-XXXX (ví dụ H15.50.05.13-261008-0975) "
    "hoặc MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX (ví dụ M01.001.01-260201-DV0001)"
)

KEY_FORMATS_HELP = (
    "định dạng hợp lệ: mã hồ sơ một cửa <mã cơ quan>-YYMMDD-XXXX (ví dụ H15.50.05.13-261008-0975) "
    "hoặc MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX (ví dụ M01.001.01-260201-DV0001), "
    "hoặc mã hồ sơ lưu trữ <mã cơ quan>-YYYY-<số hồ sơ> (ví dụ H15.50.05.13-2019-0123)"
)


def parse(code: str) -> dict:
    """Validate a dossier code and return its parts; raise DossierCodeError otherwise."""
    shown = code.encode("unicode_escape").decode("ascii")
    if len(code) > MAX_CODE_LEN or ".." in code:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{shown[:120]}' ({FORMATS_HELP})", "not a dossier code")
    for kind, pattern in (("central", _CENTRAL), ("ordinary", _ORDINARY)):
        m = pattern.fullmatch(code)
        if m:
            break
    else:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{shown}'{_hint(code)} ({FORMATS_HELP})", "not a dossier code")
    if len(m["agency"]) > MAX_AGENCY_LEN:
        raise DossierCodeError(f"Mã cơ quan quá dài (tối đa {MAX_AGENCY_LEN} ký tự): '{code}'", "agency code too long")
    yy, mm, dd = int(m["date"][:2]), int(m["date"][2:4]), int(m["date"][4:])
    try:
        received = date(2000 + yy, mm, dd)
    except ValueError:
        raise DossierCodeError(f"Ngày tiếp nhận trong mã hồ sơ không hợp lệ: '{code}' (YYMMDD = {m['date']})",
                               f"no such receiving day in the dossier code: {m['date']}") from None
    return {"code": code, "kind": kind, "agency": m["agency"], "received": received.isoformat(), "sequence": m["seq"]}


def _hint(code: str) -> str:
    """What most likely went wrong, for the operator."""
    stripped = code.strip()
    if stripped != code and any(p.fullmatch(stripped) for p in (_CENTRAL, _ORDINARY)):
        return f"; có khoảng trắng thừa, hãy dùng '{stripped}'"
    upper = stripped.upper()
    if upper != stripped and any(p.fullmatch(upper) for p in (_CENTRAL, _ORDINARY)):
        return f"; mã hồ sơ viết bằng chữ in hoa: '{upper}'"
    if stripped.count("-") < 2:
        return "; thiếu phần ngày tiếp nhận YYMMDD hoặc số thứ tự, các phần cách nhau bằng dấu '-'"
    return ""


def validate(code: str) -> str:
    return parse(code)["code"]


def parse_key(code: str) -> dict:
    """Validate a dossier key: a one-stop dossier code (``parse``'s parts, kind ``ordinary`` or
    ``central``) or an archive file code (``{"code", "kind": "archive", "agency", "year": int,
    "number": str}``). Raise DossierCodeError naming both formats otherwise."""
    if len(code) > MAX_CODE_LEN or ".." in code:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{_shown(code)[:120]}' ({KEY_FORMATS_HELP})",
                               "not a dossier code or archive file code")
    if _CENTRAL.fullmatch(code) or _ORDINARY.fullmatch(code):
        return parse(code)  # its own messages for a bad date or an over-long agency code
    m = _ARCHIVE.fullmatch(code)
    if m is None:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{_shown(code)}'{_key_hint(code)} ({KEY_FORMATS_HELP})",
                               "not a dossier code or archive file code")
    if len(m["agency"]) > MAX_AGENCY_LEN:
        raise DossierCodeError(f"Mã cơ quan quá dài (tối đa {MAX_AGENCY_LEN} ký tự): '{code}'", "agency code too long")
    year, this_year = int(m["year"]), date.today().year
    if not MIN_ARCHIVE_YEAR <= year <= this_year:
        raise DossierCodeError(f"Năm hình thành hồ sơ trong mã hồ sơ lưu trữ không hợp lệ: '{code}' "
                               f"(năm {m['year']}, phải từ {MIN_ARCHIVE_YEAR} đến {this_year})", "archive year out of range")
    number = m["number"]
    if len(number) > MAX_ARCHIVE_NUMBER_LEN or not number.strip("0"):
        raise DossierCodeError(f"Số hồ sơ trong mã hồ sơ lưu trữ không hợp lệ: '{code}' (số '{number}': "
                               f"từ 1 đến {MAX_ARCHIVE_NUMBER_LEN} chữ số, khác 0)", "archive file number invalid")
    return {"code": code, "kind": "archive", "agency": m["agency"], "year": year, "number": number}


def validate_key(code: str) -> str:
    """The code itself when it is a one-stop dossier code or an archive file code."""
    return parse_key(code)["code"]


def _shown(code: str) -> str:
    """The code as an operator can read it: Vietnamese letters as they are, control and other
    invisible characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in code)


def _is_key_shape(code: str) -> bool:
    return any(p.fullmatch(code) for p in (_CENTRAL, _ORDINARY, _ARCHIVE))


_TYPOGRAPHIC_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212"})


def _key_hint(code: str) -> str:
    """What most likely went wrong with a dossier key, for the operator."""
    stripped = code.strip()
    if stripped != code and _is_key_shape(stripped):
        return f"; có khoảng trắng thừa, hãy dùng '{stripped}'"
    upper = stripped.upper()
    if upper != stripped and _is_key_shape(upper):
        return f"; mã hồ sơ viết bằng chữ in hoa: '{upper}'"
    dashes = upper.translate(_TYPOGRAPHIC_DASHES)
    if dashes != upper and _is_key_shape(dashes):
        return (f"; các phần cách nhau bằng dấu '-' (dấu gạch nối trên bàn phím), không phải '–' mà Word tự đổi: "
                f"'{dashes}'")
    m = _ARCHIVE_DOTTED.fullmatch(upper)
    if m:
        return (f"; mã hồ sơ lưu trữ dùng dấu '-' giữa mã cơ quan, năm và số hồ sơ: "
                f"'{m['agency']}-{m['year']}-{m['number']}'")
    dashed = re.sub(r"[\s_-]+", "-", upper)
    if dashed != upper and _is_key_shape(dashed):
        return f"; các phần cách nhau bằng dấu '-', không có khoảng trắng hay dấu '_': '{dashed}'"
    if stripped.count("-") < 2:
        return ("; thiếu phần ngày tiếp nhận YYMMDD (mã một cửa) hoặc năm YYYY (mã lưu trữ) hay số thứ tự, "
                "các phần cách nhau bằng dấu '-'")
    return ""


def doc_id(code: str, sequence: int) -> str:
    """docId = fileCode + '.' + sequence (TT 05/2025)."""
    return f"{code}.{sequence:03d}"


_CODE_LIKE = re.compile(r"[0-9A-Z]+(?:[.\-][0-9A-Z]*)+")
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"))  # a code pasted from Word


def code_prefix_in(query: str) -> str | None:
    """The query as a dossier-code prefix (upper case) when it reads as one, one word of code
    characters with a dot or a dash and a digit ("H23.50", "h23.50-2612", a whole code); else None."""
    word = query.strip().upper().translate(_DASHES)
    return word if _CODE_LIKE.fullmatch(word) and any(c.isdigit() for c in word) else None


# --------------------------------------------------------------------------- the paper file's dates

EARLIEST_PAPER_YEAR = 1900


def parse_day(text: str) -> date | None:
    """A date as an archivist writes it (31/12/2019, as sohoa prints dates) or ISO (2019-12-31);
    None when it is neither."""
    for form in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), form).date()
        except ValueError:
            pass
    return None


def paper_dates(start: str | date | None, end: str | date | None, today: date) -> tuple[str, str] | None:
    """The paper file's first and last dates (TT 05/2025 startDate, endDate), checked, as ISO
    text; None when neither is given. UsageError, in Vietnamese, when only one is given, when one
    is not a date, is in the future or before 1900, or when the file ends before it starts."""
    if not start and not end:
        return None
    days = []
    for name, value in (("ngày bắt đầu", start), ("ngày kết thúc", end)):
        if not value:
            raise UsageError(f"Thiếu {name} của hồ sơ giấy: cho cả ngày bắt đầu và ngày kết thúc, hoặc không cho "
                             "ngày nào", "paper file dates: give both the start and the end date, or neither")
        day = value if isinstance(value, date) else parse_day(value)
        if day is None:
            raise UsageError(f"{name.capitalize()} của hồ sơ giấy không hợp lệ: '{value}' (viết 31/12/2019 hoặc "
                             f"2019-12-31)", f"paper file date not a date: {value!r}")
        if not EARLIEST_PAPER_YEAR <= day.year or day > today:
            raise UsageError(f"{name.capitalize()} của hồ sơ giấy {day:%d/%m/%Y} không hợp lý (từ năm "
                             f"{EARLIEST_PAPER_YEAR} đến hôm nay)", f"paper file date out of range: {day}")
        days.append(day)
    if days[1] < days[0]:
        raise UsageError(f"Hồ sơ giấy kết thúc ({days[1]:%d/%m/%Y}) trước khi bắt đầu ({days[0]:%d/%m/%Y})",
                         "paper file ends before it starts")
    return days[0].isoformat(), days[1].isoformat()


def visible_text(text: str | None) -> str:
    """``text`` as a name is kept: NFC, spaces folded, without the control and format characters
    nobody sees (a right-to-left override turned "…fdp.exe" into "…exe.pdf" and spilled into the
    page around it; NUL, zero-width spaces, soft hyphens pasted from Word)."""
    shown = "".join(c for c in (text or "") if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return unicodedata.normalize("NFC", " ".join(shown.split()))
