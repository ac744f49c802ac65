"""Lines an operator should read against the page: where the recognisers disagreed or were unsure.

Digitisation projects reach the rules' 98 % of characters by recognition plus a person reading
the doubtful lines; this module only chooses the lines. A line is offered for review when some
of its words carry another recogniser's reading (``alt``: the engines read a stretch differently
and only their confidence decided; the stretch's first word holds the other reading, its other
words "", see ``ocr.vote``) or when its mean word confidence is below ``LOW_CONFIDENCE``. Each line to review:
``{line, text, reason ("disagree" | "low_confidence"), conf, box [x0, y0, x1, y1], alt?}``,
in reading order; pure, no I/O.
"""
from __future__ import annotations

import unicodedata

LOW_CONFIDENCE = 70.0  # mean word confidence (0-100) under which a line is read again by a person


def lines_to_review(words: list[dict], low_confidence: float = LOW_CONFIDENCE) -> list[dict]:
    lines: dict[int, list[dict]] = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word)
    review = []
    for number, line in lines.items():
        conf = sum(w["conf"] for w in line) / len(line)
        disagreed = [w for w in line if w.get("alt") is not None]
        if not disagreed and conf >= low_confidence:
            continue
        entry = {"line": number, "text": unicodedata.normalize("NFC", " ".join(w["text"] for w in line)),
                 "reason": "disagree" if disagreed else "low_confidence", "conf": round(conf, 1),
                 "box": [min(w["x0"] for w in line), min(w["y0"] for w in line),
                         max(w["x1"] for w in line), max(w["y1"] for w in line)]}
        if disagreed:
            other = alternative_text([w["text"] for w in line], [w.get("alt") for w in line])
            entry["alt"] = unicodedata.normalize("NFC", other)
        review.append(entry)
    return review


def alternative_text(texts: list[str], alts: list[str | None]) -> str:
    """A line's other reading: each word replaced by its ``alt`` where it has one."""
    return " ".join(t for t in (text if alt is None else alt for text, alt in zip(texts, alts)) if t)
