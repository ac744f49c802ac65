"""TrueOCR (ONNX line detector, reading-order model and CTC line recogniser for Vietnamese)
behind the OcrEngine contract (``ocr.engine``).

TrueOCR reads lines, not words: it gives each line's box, text and confidence.  Word boxes
are made here from the recogniser's own CTC alignment: every emitted character (and every
space) sits at a timestep of the line crop (4 input columns apart), which maps back to page
columns.  A word's column span runs between the spaces around it; inside that span its box is
tightened to the ink (rows and columns darker than INK_LEVEL), so boxes lie on the printed
word and neighbouring words are separated by a visible gap.

- Layout modes: ``psm`` 7, 8 and 13 (one line, one word, raw line) read the image's ink
  extent as one line; any other mode detects lines first.  Lines are put in reading order by
  TrueOCR's order model for page modes (3, 4, ...), top to bottom for a block (6).
- TrueOCR's own page straightening (deskew, quarter turns) is not used: the page stage
  (``ocr.page``) straightens the page before it reads, and boxes must be in its pixels.
- ``orientation`` is tesseract's OSD (``ocr.recognise.TesseractEngine.orientation``);
  the page stage's reading-both-ways-up test uses this engine's ``read``.
- ``whitelist`` filters the characters read (the recogniser itself cannot be restricted).
- ``abandon_if`` is shown the words of the page's FIRST_LOOK_LINES widest lines as soon as they
  are read, before the other lines (a page turned over shows it there as plainly as in the whole
  reading), and the reading is abandoned when it says so; a page of fewer lines is read whole
  and left to the caller (``ocr.vote`` shows the whole reading).
- The model is Vietnamese (with the Latin letters and digits); ``lang`` is accepted and
  ignored, ``has_language`` is true for ``vie`` only, so the page stage does not ask it for
  an English second reading of numbers.
- ONNX Runtime runs one thread per session: pages are parallelised over processes.  The
  sessions are loaded once per process and model folder.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
import unicodedata
from pathlib import Path

import numpy as np

from ocr import recognise
from ocr.engine import ReadingAbandoned, ReadingStopped, time_left

INK_LEVEL = 160       # grey level below which a pixel counts as ink when boxes are tightened
LINE_MODES = (7, 8, 13)
BLOCK_MODES = (6,)
STRIDE = 4            # recogniser input columns per CTC timestep
BATCH = 32
FIRST_LOOK_LINES = 12  # lines read before the rest when the caller may abandon the reading (bench/README.md)


class TrueOcrEngine:
    """TrueOCR as an OcrEngine. ``tessdata`` is handed to tesseract for orientation (OSD)."""

    name = "trueocr"

    def __init__(self, lang: str = "vie", tessdata: str | None = None, model_dir: str | None = None,
                 deadline: float | None = None):
        self.lang = lang
        self.tessdata = tessdata or None
        self.model_dir = str(Path(model_dir).resolve()) if model_dir else None
        self.deadline = deadline  # checked before each read: a read itself is not interrupted

    # -------------------------------------------------------------- contract

    def version(self) -> str:
        return f"trueocr {_trueocr_version()}|models {_models_hash(self._model_dir())}"

    def has_language(self, lang: str) -> bool:
        return all(part == "vie" for part in lang.split("+"))

    def fastest(self) -> "TrueOcrEngine":
        return self

    def load(self) -> None:
        """The ONNX sessions (~0.2-0.3 s) and the models' hash of ``version``."""
        _models(self._model_dir())
        self.version()

    def orientation(self, gray: np.ndarray) -> int | None:
        return recognise.TesseractEngine("vie", self.tessdata, self.deadline).orientation(gray)

    def read(self, gray: np.ndarray, *, psm: int = 3, dpi: int = 300, scale: float = 1.0,
             whitelist: str | None = None, lang: str | None = None, stop: threading.Event | None = None,
             abandon_if=None) -> list[dict]:
        """Words of a grey page image in reading order, boxes divided by ``scale``. ``stop`` is
        looked at before each step (detection, recognition, ordering): a step is not interrupted."""
        def step() -> None:
            time_left(self.deadline)
            if stop is not None and stop.is_set():
                raise ReadingStopped()

        step()
        gray = np.ascontiguousarray(gray, dtype=np.uint8)
        if gray.ndim != 2 or not gray.size:
            return []
        models = _models(self._model_dir())
        if psm in LINE_MODES:
            box = _ink_box(gray)
            boxes = [box] if box is not None else []
        else:
            boxes = _detected(models.page, gray)
        if not boxes:
            return []
        step()
        lines = self._read_lines(models, gray, boxes, whitelist, scale, abandon_if, step)
        step()
        order = self._order(models, gray, boxes, [line[0] for line in lines], psm)
        words: list[dict] = []
        for line_id, index in enumerate(order):
            text, timesteps = lines[index]
            words += _placed(_words_of_line(gray, boxes[index], timesteps, whitelist), scale, line_id)
        # line ids follow reading order from 0 even when a line held no word
        renumber = {old: new for new, old in enumerate(dict.fromkeys(w["line"] for w in words))}
        for word in words:
            word["line"] = renumber[word["line"]]
        return words

    # -------------------------------------------------------------- parts

    def _read_lines(self, models, gray: np.ndarray, boxes: list[tuple[int, int, int, int]], whitelist: str | None,
                    scale: float, abandon_if, step) -> list[tuple[str, list[tuple[str, float, float]]]]:
        """``read_lines`` of every box; given ``abandon_if``, the widest FIRST_LOOK_LINES first, their
        words shown to it (ReadingAbandoned when it says so), then the others. Each line reads the
        same text either way (batches of other lines change its confidences by ~1e-5 at most)."""
        if abandon_if is None or len(boxes) <= FIRST_LOOK_LINES:
            return read_lines(models, gray, boxes)
        first = sorted(range(len(boxes)), key=lambda i: boxes[i][0] - boxes[i][2])[:FIRST_LOOK_LINES]
        seen = read_lines(models, gray, [boxes[i] for i in first])
        words = [word for n, (index, (_, timesteps)) in enumerate(zip(first, seen))
                 for word in _placed(_words_of_line(gray, boxes[index], timesteps, whitelist), scale, n)]
        if abandon_if(words, self.name):
            raise ReadingAbandoned()
        step()
        looked = set(first)
        rest = [i for i in range(len(boxes)) if i not in looked]
        lines: list = [None] * len(boxes)
        for index, line in zip(first + rest, seen + read_lines(models, gray, [boxes[i] for i in rest])):
            lines[index] = line
        return lines

    def _model_dir(self) -> str:
        if self.model_dir:
            return self.model_dir
        import trueocr
        return str(Path(trueocr.__file__).resolve().parent / "models")

    @staticmethod
    def _order(models, gray: np.ndarray, boxes: list[tuple[int, int, int, int]], texts: list[str],
               psm: int) -> list[int]:
        if len(boxes) < 2:
            return list(range(len(boxes)))
        if psm in BLOCK_MODES:
            return _top_to_bottom(boxes)
        h, w = gray.shape
        order = models.page.reading_order(np.asarray(boxes, np.float32).reshape(-1, 4), texts, (w, h))
        order = [int(i) for i in order]
        if sorted(order) != list(range(len(boxes))):  # never lose or repeat a line
            return _top_to_bottom(boxes)
        return order


class _Models:
    def __init__(self, model_dir: str):
        from trueocr.page import PageEngine
        from trueocr.recognizer import Recognizer
        self.page = PageEngine(model_dir, threads=1)
        self.recognizer = Recognizer(model_dir, threads=1)


_MODELS_LOCK = threading.Lock()


def _unlock_in_child() -> None:
    """A forked page process gets a lock of its own (see ``storage.db``: the parent's may be
    held by a thread the child does not have)."""
    global _MODELS_LOCK
    _MODELS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


@functools.lru_cache(maxsize=2)
def _loaded(model_dir: str) -> _Models:
    return _Models(model_dir)


def _models(model_dir: str) -> _Models:
    """One load per process and model folder, even when a thread loading them ahead of the
    first read (``load``) has not finished when that read starts."""
    with _MODELS_LOCK:
        return _loaded(model_dir)


@functools.lru_cache(maxsize=1)
def _trueocr_version() -> str:
    import trueocr
    return str(getattr(trueocr, "__version__", "unknown"))


@functools.lru_cache(maxsize=2)
def _models_hash(model_dir: str) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*")):
        if path.is_file():
            h.update(path.name.encode() + b"\0")
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _ink_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(gray < INK_LEVEL)
    if not len(ys):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _detected(page, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    h, w = gray.shape
    boxes = []
    for box in page.detect(gray):
        x0, y0 = (int(v) for v in np.floor(box[:2]))
        x1, y1 = (int(v) for v in np.ceil(box[2:4]))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _top_to_bottom(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """Lines by rows (a line starting within half a line height of the row's first joins it), then left to right."""
    indices = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    rows: list[list[int]] = []
    for i in indices:
        centre = (boxes[i][1] + boxes[i][3]) / 2
        if rows:
            first = boxes[rows[-1][0]]
            if abs(centre - (first[1] + first[3]) / 2) < 0.5 * (first[3] - first[1]):
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i][0])]


def read_lines(models: _Models, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]
               ) -> list[tuple[str, list[tuple[str, float, float]]]]:
    """For each line box: (text, [(character, confidence 0-1, page column of its timestep)]).

    The crops are prepared and batched exactly as TrueOCR's ``Recognizer.predict`` does (same
    text, same confidences); the CTC decoding is done here to keep each character's timestep."""
    from trueocr.preprocess import pad_batch, prepare_gray, width_batches
    rec = models.recognizer
    prepared, mappings = [], []
    for x0, y0, x1, y1 in boxes:
        crop = gray[y0:y1, x0:x1]
        ink = prepare_gray(crop, max_width=rec.max_width, pad_y=rec.pad_y, pad_x=rec.pad_x)
        prepared.append(ink)
        mappings.append(_column_mapping(crop, ink.shape[1], rec.pad_x, x0))
    results: list = [None] * len(prepared)
    for selected in width_batches([p.shape[1] for p in prepared], max_batch=BATCH):
        tensor, widths = pad_batch([prepared[i] for i in selected])
        ids, conf, lengths = rec.session.run(["ids", "conf", "lengths"], {"x": tensor, "widths": widths})
        for j, index in enumerate(selected):
            n = int(lengths[j])
            seq, probs = ids[j, :n], conf[j, :n]
            to_page = mappings[index]
            chars, previous = [], 0
            for t in range(n):
                token = int(seq[t])
                if token != 0 and token != previous:
                    chars.append((rec.chars[token - 1], float(probs[t]), to_page((t + 0.5) * STRIDE)))
                previous = token
            text = unicodedata.normalize("NFC", "".join(c for c, _, _ in chars))
            results[index] = (" ".join(text.split()), chars)
    return results


def _column_mapping(crop: np.ndarray, out_width: int, pad_x: float, left: int):
    """Page column of a column of the recogniser's input made from ``crop`` (the arithmetic of
    ``trueocr.preprocess.prepare_gray``/``crop_line``: the crop widened by ``pad_x`` x its height
    each side, then resized to ``out_width``)."""
    h, w = crop.shape
    used = np.flatnonzero(np.any(crop != 0, axis=0))
    if len(used) and w - int(used[-1]) - 1 >= 8:  # prepare_gray drops black columns on the right
        w = int(used[-1]) + 1
    h = max(1.0, float(h))
    start = int(math.floor(-pad_x * h))
    width = max(1, int(math.ceil(w + pad_x * h)) - start)
    factor = width / out_width
    return lambda column: left + start + column * factor


def _words_of_line(gray: np.ndarray, box: tuple[int, int, int, int], chars: list[tuple[str, float, float]],
                   whitelist: str | None) -> list[dict]:
    """Split a read line at its spaces; each word's box is the ink between the cuts around it.

    A cut is the middle of the widest ink-free column run near the space's timestep (between
    the last character before it and the first after it): a space's CTC peak can fall on the
    edge of the next letter."""
    x0, y0, x1, y1 = box
    groups: list[list[tuple[str, float, float]]] = [[]]
    spaces: list[float] = []          # the space timestep before each group but the first
    for ch, p, x in chars:
        if ch.isspace():
            if groups[-1]:
                groups.append([])
                spaces.append(x)
            elif spaces:
                spaces[-1] = x
            continue
        groups[-1].append((ch, p, x))
    if not groups[-1]:
        groups.pop()
        spaces = spaces[:len(groups) - 1]
    if not groups:
        return []
    h = y1 - y0
    height = int(h)
    top, bottom = max(0, y0 - int(0.4 * height)), min(gray.shape[0], y1 + int(0.3 * height))
    ink = gray[top:bottom, x0:x1] < INK_LEVEL
    core = ink[y0 - top:y1 - top]
    empty = ~core.any(axis=0)
    cuts = [float(x0)]
    for k, space in enumerate(spaces):
        cuts.append(_cut(empty, x0, groups[k][-1][2], space, groups[k + 1][0][2], h))
    cuts.append(float(x1))
    words = []
    for k, group in enumerate(groups):
        text = unicodedata.normalize("NFC", "".join(c for c, _, _ in group))
        if whitelist is not None:
            text = "".join(c for c in text if c in whitelist)
        if not text:
            continue
        conf = round(100.0 * float(np.mean([p for _, p, _ in group])), 2)
        words.append({"text": text, "conf": conf,
                      "box": _tight_box(ink, (x0, top, x1, bottom), y0 - top, y1 - top, cuts[k], cuts[k + 1], group)})
    return words


def _placed(words: list[dict], scale: float, line: int) -> list[dict]:
    """A line's words (``_words_of_line``) as the contract's words: boxes divided by ``scale``."""
    return [{"text": word["text"],
             "x0": int(math.floor(word["box"][0] / scale)), "y0": int(math.floor(word["box"][1] / scale)),
             "x1": int(math.ceil(word["box"][2] / scale)), "y1": int(math.ceil(word["box"][3] / scale)),
             "conf": word["conf"], "line": line} for word in words]


def _cut(empty: np.ndarray, x0: int, before: float, space: float, after: float, height: float) -> float:
    """Page column between two words: the middle of the widest run of empty columns between
    the character ``before`` and the one ``after`` (slightly widened), nearest ``space``."""
    lo = int(max(0, math.floor(min(before, space) - x0)))
    hi = int(min(len(empty), math.ceil(max(after, space) - x0 + 0.3 * height)))
    best = None
    run_start = None
    for c in range(lo, hi + 1):
        if c < hi and empty[c]:
            if run_start is None:
                run_start = c
            continue
        if run_start is not None:
            width, middle = c - run_start, (run_start + c) / 2
            key = (width, -abs(middle + x0 - space))
            if best is None or key > best[0]:
                best = (key, middle)
            run_start = None
    return float(space) if best is None else float(x0 + best[1])


def _tight_box(ink: np.ndarray, area: tuple[int, int, int, int], core_top: int, core_bottom: int,
               left: float, right: float, group: list[tuple[str, float, float]]) -> tuple[int, int, int, int]:
    """The word's ink between columns ``left`` and ``right``: its columns from the line's core
    rows, its rows grown from the core up and down over the ink touching it (diacritics above
    capitals lie above the detector's line box), with gaps of a few rows; without ink there,
    the span of the word's characters' timesteps in the line box."""
    x0, top, x1, bottom = area
    a = int(min(max(math.floor(left), x0), x1)) - x0
    b = int(min(max(math.ceil(right), x0), x1)) - x0
    if b > a:
        cols = np.flatnonzero(ink[core_top:core_bottom, a:b].any(axis=0))
        if len(cols):
            c0, c1 = a + int(cols[0]), a + int(cols[-1]) + 1
            rows = ink[:, c0:c1].any(axis=1)
            inked = np.flatnonzero(rows[core_top:core_bottom])
            r0, r1 = core_top + int(inked[0]), core_top + int(inked[-1]) + 1
            gap = max(3, int(0.15 * (core_bottom - core_top)))
            r0 = _grow(rows, r0, -1, gap)
            r1 = _grow(rows, r1 - 1, 1, gap) + 1
            return x0 + c0, top + r0, x0 + c1, top + r1
    xs = [x for _, _, x in group]
    lo = int(min(max(math.floor(min(xs) - STRIDE), x0), x1 - 1))
    hi = int(max(min(math.ceil(max(xs) + STRIDE), x1), lo + 1))
    return lo, top + core_top, hi, top + core_bottom


def _grow(rows: np.ndarray, start: int, step: int, gap: int) -> int:
    """The last inked row reached from ``start`` going ``step`` over blank runs shorter than ``gap``."""
    last, blank, r = start, 0, start + step
    while 0 <= r < len(rows):
        if rows[r]:
            last, blank = r, 0
        else:
            blank += 1
            if blank > gap:
                break
        r += step
    return last
