"""Dossier codes (TT 01/2023 and TT 03/2025 Điều 13 k3) and document ids.

A code is validated before it is used anywhere, so it can never reach the file
system or an object key as a path: only A-Z, 0-9, '.' and '-' survive the patterns,
and '..' is refused explicitly.
"""
from __future__ import annotations

import re
from datetime import date

from .errors import DossierCodeError

# <agency code>-YYMMDD-XXXX: agency code is dot-separated groups of 0-9A-Z (QĐ 20/2020).
_ORDINARY = re.compile(r"(?P<agency>[0-9A-Z]+(?:\.[0-9A-Z]+)*)-(?P<date>[0-9]{6})-(?P<seq>[0-9]{4,})")
# MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX: centrally provided services, from 25/01/2026.
_CENTRAL = re.compile(r"(?P<agency>M[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{2})-(?P<date>[0-9]{6})-(?P<seq>[A-Z]{2}[0-9]{4,})")
MAX_AGENCY_LEN = 35
MAX_CODE_LEN = 100  # TT 05/2025: fileCode at most 100 characters

FORMATS_HELP = (
    "định dạng hợp lệ: <mã cơ quan>-YYMMDD-XXXX (ví dụ H15.50.05.13-261008-0975) "
    "hoặc MX1X2.Y1Y2Y3.Z1Z2-YYMMDD-AAXXXX (ví dụ M01.001.01-260201-DV0001)"
)


def parse(code: str) -> dict:
    """Validate a dossier code and return its parts; raise DossierCodeError otherwise."""
    shown = code.encode("unicode_escape").decode("ascii")
    if len(code) > MAX_CODE_LEN or ".." in code:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{shown[:120]}' ({FORMATS_HELP})")
    for kind, pattern in (("central", _CENTRAL), ("ordinary", _ORDINARY)):
        m = pattern.fullmatch(code)
        if m:
            break
    else:
        raise DossierCodeError(f"Mã hồ sơ không hợp lệ: '{shown}'{_hint(code)} ({FORMATS_HELP})")
    if len(m["agency"]) > MAX_AGENCY_LEN:
        raise DossierCodeError(f"Mã cơ quan quá dài (tối đa {MAX_AGENCY_LEN} ký tự): '{code}'")
    yy, mm, dd = int(m["date"][:2]), int(m["date"][2:4]), int(m["date"][4:])
    try:
        received = date(2000 + yy, mm, dd)
    except ValueError:
        raise DossierCodeError(f"Ngày tiếp nhận trong mã hồ sơ không hợp lệ: '{code}' (YYMMDD = {m['date']})") from None
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


def doc_id(code: str, sequence: int) -> str:
    """docId = fileCode + '.' + sequence (TT 05/2025)."""
    return f"{code}.{sequence:03d}"
