"""Citizens' identity numbers kept out of what search shows (Luật Bảo vệ dữ liệu cá nhân 91/2025).

A citizen identity card (CCCD) number has 12 digits, an old identity card (CMND) 9 or 12;
people write them in one run or in groups (``079 193 001 234``, ``079-193-001-234``,
``212,345,678``). In a search snippet every
such number keeps only its last three digits: the officer can still tell two papers apart,
and the page itself, which the officer may open, is unchanged.

A sum of money is not such a number: written with dots (or commas) between thousands, not
starting with 0, and either followed by its currency (``150.000.000 đồng``, ``đ``, ``VNĐ``) or
ending in ``.000`` (``150.000.000``). A CCCD number starts with its province's 0 and is never taken for one; a
nine-digit CMND number (province codes 01-38) written with dots is taken for an amount only so,
and never right after the words that name it (CMND, CCCD, căn cước, chứng minh, định danh).
"""
from __future__ import annotations

import re

# 9 or 12 digits, in one run or in groups separated by a single space, dot, comma, hyphen or
# slash, not right after or before another digit, nor after a digit and a dot or comma (the tail
# of an amount, 1.234.567.890). A slash, hyphen or comma around it does not stop it
# ("A,079193001234,Hà Nội", "CCCD/079193001234", "079-193-001-234,0905123456"): a longer number
# grouped so has some of its digits masked too, and that errs on the side of the citizen
_ID_NUMBER = re.compile(r"(?<!\d)(?<!\d[.,])(?:\d[ .,/-]?){8}\d(?:(?:[ .,/-]?\d){3})?(?!\d)")
_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+|[1-9]\d{0,2}(?:,\d{3})+")
_CURRENCY = re.compile(r"\s?(?:đ\b|đồng|vnđ|vnd|triệu|tỷ)", re.IGNORECASE)
_ID_WORDS = re.compile(r"(?:cmnd|cccd|căn cước|chứng minh|định danh)\D{0,25}$", re.IGNORECASE)


def _amount(m: re.Match) -> bool:
    """Whether the number found is a sum of money (the module docstring)."""
    number, text = m.group(), m.string
    if not _THOUSANDS.fullmatch(number) or _ID_WORDS.search(text, 0, m.start()):
        return False
    return number.endswith((".000", ",000")) or bool(_CURRENCY.match(text, m.end()))


def mask_id_numbers(text: str, marks: tuple[str, ...] = ()) -> str:
    """``text`` with every identity number masked but its last three digits. ``marks``: the
    characters a snippet puts around a match (``storage.index.MARK``), read through: a match
    inside a number split it, so part of a number typed as the query showed it whole, and an
    amount matched lost the currency after it and was masked."""
    kept = [i for i, c in enumerate(text) if c not in marks]
    plain = "".join(text[i] for i in kept)
    out = list(text)
    for m in _ID_NUMBER.finditer(plain):
        digits = sum(c.isdigit() for c in m.group())
        if digits not in (9, 12) or _amount(m):
            continue
        seen = 0
        for k, c in enumerate(m.group(), start=m.start()):
            if c.isdigit():
                seen += 1
                if seen <= digits - 3:
                    out[kept[k]] = "•"
    return "".join(out)
