"""Reading order fixes on top of tesseract's page layout.

Two cases tesseract gets wrong on Vietnamese administrative pages:
* the two-column header (agency | national motto): tesseract often joins the left and right
  halves into one text line, interleaving the columns; lines are split at wide gaps and runs of
  split lines are read column by column;
* ruled tables: words are assigned to the cells of the ruling grid and read row by row, cell
  by cell; a tesseract line crossing a rule is split at the rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# a gap wider than this many word heights separates two columns, not two words
COLUMN_GAP_HEIGHTS = 3.0


@dataclass(frozen=True)
class Grid:
    """A ruling grid: sorted x of the vertical rules and y of the horizontal rules."""
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    def cell_of(self, x: float, y: float) -> tuple[int, int] | None:
        if not (self.xs[0] <= x <= self.xs[-1] and self.ys[0] <= y <= self.ys[-1]):
            return None
        return int(np.searchsorted(self.ys, y)) - 1, int(np.searchsorted(self.xs, x)) - 1

    def cells(self) -> list[tuple[int, int, int, int]]:
        return [(self.xs[c], self.ys[r], self.xs[c + 1], self.ys[r + 1])
                for r in range(len(self.ys) - 1) for c in range(len(self.xs) - 1)]


def _rule_positions(line_mask: np.ndarray, axis: int, min_cover: float, dpi: float) -> list[int]:
    """Centres of the rules in a mask of straight lines: rows (axis=1) or columns (axis=0)."""
    coverage = line_mask.sum(axis=axis).astype(np.float64)
    longest = coverage.max() if coverage.size else 0
    if longest <= 0:
        return []
    strong = coverage >= min_cover * longest
    positions, start = [], None
    for i, on in enumerate(np.append(strong, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            positions.append((start + i - 1) // 2)
            start = None
    merged: list[int] = []
    for p in positions:  # a thick or doubled rule counts once
        if merged and p - merged[-1] < 0.04 * dpi:
            merged[-1] = (merged[-1] + p) // 2
        else:
            merged.append(p)
    return merged


def find_grid(ink: np.ndarray, dpi: float) -> Grid | None:
    """The ruling grid of a table on a straightened page, if there is one (>= 2x2 cells)."""
    min_length = max(15, int(dpi * 0.45))
    m = ink.astype(np.uint8)
    horizontal = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (min_length, 1)))
    vertical = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, min_length)))
    ys = _rule_positions(horizontal, axis=1, min_cover=0.5, dpi=dpi)
    xs = _rule_positions(vertical, axis=0, min_cover=0.3, dpi=dpi)
    if len(xs) < 3 or len(ys) < 3:
        return None
    return Grid(tuple(xs), tuple(ys))


def _split_at_gaps(words: list[dict]) -> list[list[dict]]:
    """Tesseract lines, each cut where two neighbouring words are a column gap apart."""
    lines: dict[int, list[dict]] = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word)
    segments = []
    for line_words in lines.values():
        height = float(np.median([w["y1"] - w["y0"] for w in line_words]))
        current = [line_words[0]]
        for previous, word in zip(line_words, line_words[1:]):
            if word["x0"] - previous["x1"] > COLUMN_GAP_HEIGHTS * height:
                segments.append(current)
                current = []
            current.append(word)
        segments.append(current)
    return segments


def _renumber(segments: list[list[dict]]) -> list[dict]:
    out = []
    for number, segment in enumerate(segments):
        out += [dict(word, line=number) for word in segment]
    return out


def order_columns(words: list[dict]) -> list[dict]:
    """Read runs of lines that are split by a common gutter column by column.

    A run is a sequence of consecutive lines each made of a left and a right part with one
    vertical gutter clear of words in all of them (the agency | motto header)."""
    if not words:
        return []
    segments = _split_at_gaps(words)
    rows: list[list[list[dict]]] = []  # segments grouped by their original tesseract line
    for segment in segments:
        if rows and rows[-1][0][0]["line"] == segment[0]["line"]:
            rows[-1].append(segment)
        else:
            rows.append([segment])
    ordered: list[list[dict]] = []
    i = 0
    while i < len(rows):
        if len(rows[i]) != 2:
            ordered += rows[i]
            i += 1
            continue
        gutter_lo, gutter_hi = rows[i][0][-1]["x1"], rows[i][1][0]["x0"]
        j = i + 1
        while j < len(rows) and len(rows[j]) == 2:
            lo, hi = max(gutter_lo, rows[j][0][-1]["x1"]), min(gutter_hi, rows[j][1][0]["x0"])
            if lo >= hi:
                break
            gutter_lo, gutter_hi = lo, hi
            j += 1
        ordered += [row[0] for row in rows[i:j]] + [row[1] for row in rows[i:j]]
        i = j
    return _renumber(ordered)


def order_by_cells(words: list[dict], grid: Grid) -> list[dict]:
    """Words inside the grid read row by row, cell by cell; words outside keep their place
    before (above) or after (below) the table."""
    above, below, inside = [], [], {}
    for word in words:
        cx, cy = (word["x0"] + word["x1"]) / 2, (word["y0"] + word["y1"]) / 2
        cell = grid.cell_of(cx, cy)
        if cell is None:
            (above if cy < grid.ys[0] else below).append(word)
        else:
            inside.setdefault(cell, []).append(word)
    segments: list[list[dict]] = []
    for group in (above,):
        segments += _lines_of(group)
    for cell in sorted(inside):
        segments += _lines_of(inside[cell])
    segments += _lines_of(below)
    return _renumber(segments)


def _lines_of(words: list[dict]) -> list[list[dict]]:
    lines: dict[int, list[dict]] = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word)
    return list(lines.values())
