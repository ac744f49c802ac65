"""Citizens' identity numbers kept out of what search shows (Luật Bảo vệ dữ liệu cá nhân 91/2025).

A citizen identity card (CCCD) number has 12 digits, an old identity card (CMND) 9 or 12;
people write them in one run or in groups (``079 193 001 234``). In a search snippet every
such number keeps only its last three digits: the officer can still tell two papers apart,
and the page itself, which the officer may open, is unchanged.

A sum of money is not such a number: written with dots between thousands (``150.000.000
đồng``), its first group of one to three digits does not start with 0, where an identity
number starts with its province's code (CCCD: 001-096). A nine-digit CMND number written with
dots in groups of three and not starting with 0 is therefore shown, as an amount would be.
"""
from __future__ import annotations

import re

# 9 or 12 digits, in one run or in groups separated by a single space or dot, not inside a longer number
_ID_NUMBER = re.compile(r"(?<![\d.])(?:\d[ .]?){8}\d(?:(?:[ .]?\d){3})?(?![\d])")
_AMOUNT = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+")  # thousands between dots: money, not an identity number


def mask_id_numbers(text: str) -> str:
    def mask(m: re.Match) -> str:
        digits = sum(c.isdigit() for c in m.group())
        if digits not in (9, 12) or _AMOUNT.fullmatch(m.group()):
            return m.group()
        seen, out = 0, []
        for c in m.group():
            if c.isdigit():
                seen += 1
                out.append(c if seen > digits - 3 else "•")
            else:
                out.append(c)
        return "".join(out)

    return _ID_NUMBER.sub(mask, text)
