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

# the clear gutter between header columns is at least this many word heights wide and this many
# times the page's typical gap between words
MIN_GUTTER_HEIGHTS = 0.5
MIN_GUTTER_WORD_GAPS = 2.0


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


def _renumber(segments: list[list[dict]]) -> list[dict]:
    out = []
    for number, segment in enumerate(segments):
        out += [dict(word, line=number) for word in segment]
    return out


def order_columns(words: list[dict]) -> list[dict]:
    """Read a two-column block at the top of the page (agency | national motto) column by column.

    Words are grouped into rows from the top down for as long as a vertical gutter stays clear
    of every word in them; if two or more of those rows have words on both sides, the block's
    left column is read before its right one, each row side being one line.  Everything else
    keeps tesseract's order and lines."""
    if not words:
        return []
    lines = _lines_of(words)
    block = _header_block(words)
    if block is None:
        return _renumber(lines)
    rows, gutter = block
    left = [[w for w in row if w["x1"] <= gutter] for row in rows]
    right = [[w for w in row if w["x0"] >= gutter] for row in rows]
    header = [side for side in left + right if side]
    in_header = {id(w) for row in rows for w in row}
    ordered, placed = [], False
    for line in lines:
        rest = [w for w in line if id(w) not in in_header]
        if len(rest) < len(line) and not placed:
            ordered += header
            placed = True
        if rest:
            ordered.append(rest)
    return _renumber(ordered)


def _header_block(words: list[dict]) -> tuple[list[list[dict]], float] | None:
    """Rows of words of the two-column block at the top of the page and its gutter x, or None."""
    height = float(np.median([w["y1"] - w["y0"] for w in words]))
    gaps = [b["x0"] - a["x1"] for line in _lines_of(words) for a, b in zip(line, line[1:]) if b["x0"] > a["x1"]]
    min_gutter = max(MIN_GUTTER_HEIGHTS * height, MIN_GUTTER_WORD_GAPS * float(np.median(gaps)) if gaps else 0.0)
    rows: list[list[dict]] = []
    for word in sorted(words, key=lambda w: (w["y0"] + w["y1"]) / 2):
        centre = (word["y0"] + word["y1"]) / 2
        if rows and abs(centre - np.mean([(w["y0"] + w["y1"]) / 2 for w in rows[-1]])) < 0.5 * height:
            rows[-1].append(word)
        else:
            rows.append([word])
    rows = [sorted(row, key=lambda w: w["x0"]) for row in rows]
    x_min = min(w["x0"] for w in words)
    covered = np.zeros(max(w["x1"] for w in words) - x_min + 2, bool)
    last, gutter = -1, None
    for k, row in enumerate(rows):
        trial = covered.copy()
        for w in row:
            trial[w["x0"] - x_min:w["x1"] - x_min + 1] = True
        found = _widest_gap(trial, min_width=min_gutter)
        if found is None:
            break
        covered, last, gutter = trial, k, found + x_min
    if gutter is None or last < 1:
        return None
    block = rows[:last + 1]
    two_sided = sum(1 for row in block if any(w["x1"] <= gutter for w in row) and any(w["x0"] >= gutter for w in row))
    return (block, gutter) if two_sided >= 2 else None


def _widest_gap(covered: np.ndarray, min_width: float) -> float | None:
    """Centre of the widest run of uncovered positions strictly between covered ones."""
    filled = np.nonzero(covered)[0]
    if len(filled) == 0:
        return None
    inner = ~covered[filled[0]:filled[-1] + 1]
    if not inner.any():
        return None
    edges = np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    widths = ends - starts
    k = int(np.argmax(widths))
    if widths[k] < min_width:
        return None
    return float(filled[0] + (starts[k] + ends[k]) / 2)


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
