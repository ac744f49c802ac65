"""Score OCR configurations on the transcribed real scans (tests/data/realscans, issue 14).

    .venv/bin/python -m bench.realscans --part tune                        # every configuration
    .venv/bin/python -m bench.realscans --part validation --config trueocr --out /tmp/v.json
    .venv/bin/python -m bench.realscans --part test --frozen-report        # once per release only

Each page of the part that has a ground truth (``<stem>.gt.txt``, format in the issue: one printed
line per line, ``<zone>\\t<text>``, zones H header, B body, R recipients, S signature, M marks,
handwriting in ``⟦ ⟧``, ``⟦?⟧`` one unreadable character) is loaded as ``pipeline.inputs`` loads it
and read by sohoa's page stage (``ocr.page.process_page``) with each configuration's engine, so the
figures measure what sohoa stores.

Scoring (the functions below are unit-tested in tests/test_realscan_scorer.py):
- Lines are aligned independently of order: each truth line is matched to the substring of the
  page's OCR text (its lines in reading order, joined) that it is closest to in edit distance
  (free start and end); the lines closest to their match claim their text first, and text
  claimed once cannot be claimed again.  A reading-order mistake therefore costs no character
  error; it is counted apart: ``order_errors`` is the number of truth lines (zones H, B, R, S)
  that would have to move to put the matched positions in truth order (lines minus the longest
  increasing run), ``kendall_tau`` the rank correlation of the two orders.
- Handwriting is cut from both sides: from the truth line, and from the OCR text the span's
  characters are aligned to (with insertions next to it).  ``cer_body`` is the character error
  rate on the printed text of zone B, ``cer_all`` on the printed text of all zones;
  ``unmatched_ocr`` counts OCR characters (not spaces) no truth line claimed (seal text,
  signatures, noise, handwriting left over), per truth character.
- ``words_found``: the share of the truth's wholly printed words (whitespace tokens, a multiset,
  NFC) found among the page's OCR words; ``words_found_body`` the same for zone B's words.
- ``diacritic_share``: of all character errors (edit operations) on printed text, the share
  that are substitutions of a letter by the same letter with other diacritics (đ/d included).
- ``hw_read``: of the handwritten tokens (a ``⟦?⟧`` token excluded), the share found in the OCR
  text aligned to their span.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.index import fold

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

DATA = ROOT / "tests" / "data" / "realscans"
TESSDATA_BEST = ROOT / ".venv" / "share" / "sohoa" / "tessdata-best"
CONFIGS = ("tesseract-fast", "tesseract-best", "trueocr", "vote", "vote-best")
ZONES = "HBRSM"
ORDER_ZONES = "HBRS"       # marks (stamps, page numbers) have no place in the reading order
HW = re.compile(r"⟦(.*?)⟧")
MATCHED = 0.5              # a line counts as placed when its match costs at most this share of its length


# ---------------------------------------------------------------- truth

@dataclass(frozen=True)
class TruthLine:
    zone: str
    text: str                        # the line with its handwriting's readings inline (⟦?⟧ -> "?")
    printed: str                     # the line with its handwriting cut out, spaces collapsed
    spans: tuple[tuple[int, int, str], ...] = ()   # handwriting in ``text``: (start, end, reading)


def parse_truth(source: str) -> list[TruthLine]:
    lines = []
    for number, raw in enumerate(source.splitlines(), 1):
        if not raw.strip():
            continue
        zone, sep, body = raw.partition("\t")
        zone = zone.strip()
        if not sep or zone not in ZONES:
            raise ValueError(f"line {number}: expected '<zone>\\t<text>' with a zone of {ZONES}: {raw!r}")
        body = unicodedata.normalize("NFC", body)
        text, spans, printed, at = [], [], [], 0
        for m in HW.finditer(body):
            text.append(body[at:m.start()])
            printed.append(body[at:m.start()])
            start = sum(map(len, text))
            reading = m.group(1)
            text.append(reading)
            spans.append((start, start + len(reading), reading))
            printed.append(" ")
            at = m.end()
        text.append(body[at:])
        printed.append(body[at:])
        lines.append(TruthLine(zone, "".join(text), collapse("".join(printed)), tuple(spans)))
    return lines


def collapse(text: str) -> str:
    return " ".join(text.split())


def printed_words(line: TruthLine) -> list[str]:
    """The whitespace tokens of the line that hold no handwriting."""
    return [token.group() for token in re.finditer(r"\S+", line.text)
            if not any(s < token.end() and token.start() < e for s, e, _ in line.spans)]


# ---------------------------------------------------------------- alignment

def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def best_span(needle: str, haystack: np.ndarray) -> tuple[int, int, int]:
    """(start, end, distance): the substring haystack[start:end] with the least edit distance to
    ``needle`` (free start and end in the haystack; semi-global alignment).  ``haystack``: the
    character codes (from ``_codes``), a negative code matching nothing."""
    n = len(haystack)
    a = _codes(needle)
    prev = np.zeros(n + 1, np.int64)
    prev_start = np.arange(n + 1)
    idx = np.arange(n + 1)
    for i in range(1, len(a) + 1):
        diagonal = prev[:-1] + (haystack != a[i - 1])
        deletion = prev[1:] + 1
        e = np.empty(n + 1, np.int64)
        e_start = np.empty(n + 1, np.int64)
        e[0], e_start[0] = prev[0] + 1, prev_start[0]
        take_diagonal = diagonal <= deletion
        e[1:] = np.where(take_diagonal, diagonal, deletion)
        e_start[1:] = np.where(take_diagonal, prev_start[:-1], prev_start[1:])
        v = e - idx  # insertions: cur[j] = min over k <= j of e[k] + (j - k)
        running = np.minimum.accumulate(v)
        source = np.maximum.accumulate(np.where(v == running, idx, 0))
        prev, prev_start = running + idx, e_start[source]
    end = int(np.argmin(prev))
    return int(prev_start[end]), end, int(prev[end])


def align_lines(truth: list[str], ocr: str) -> list[tuple[int, int, int]]:
    """Each truth line's (start, end, distance) in ``ocr``, independent of order: the lines
    closest to their best match claim it first; claimed text is not matched again.  A line
    no better matched than by nothing gets an empty span at -1."""
    hay = _codes(ocr)
    first = [best_span(t, hay) if t else (-1, -1, 0) for t in truth]
    order = sorted(range(len(truth)), key=lambda i: (first[i][2] / max(1, len(truth[i])), -len(truth[i])))
    claimed = np.zeros(len(ocr), bool)
    found: list[tuple[int, int, int]] = [(-1, -1, len(t)) for t in truth]
    for i in order:
        if not truth[i]:
            found[i] = (-1, -1, 0)
            continue
        start, end, distance = first[i]
        if claimed[start:end].any():
            start, end, distance = best_span(truth[i], np.where(claimed, -1, hay))
        if end <= start or distance >= len(truth[i]):
            continue
        claimed[start:end] = True
        found[i] = (start, end, distance)
    return found


def _pairs(a: str, b: str) -> list[tuple[int | None, int | None]]:
    """An optimal alignment of a and b as (index in a or None, index in b or None) pairs."""
    from rapidfuzz.distance import Levenshtein
    pairs: list[tuple[int | None, int | None]] = []
    for op in Levenshtein.opcodes(a, b):
        if op.tag in ("equal", "replace"):
            pairs += list(zip(range(op.src_start, op.src_end), range(op.dest_start, op.dest_end)))
        elif op.tag == "delete":
            pairs += [(i, None) for i in range(op.src_start, op.src_end)]
        else:
            pairs += [(None, j) for j in range(op.dest_start, op.dest_end)]
    return pairs


def cut_handwriting(line: TruthLine, ocr: str) -> tuple[str, list[tuple[str, str]]]:
    """The OCR text matched to ``line`` with the characters aligned to its handwriting (and
    insertions next to it) removed, spaces collapsed; and (handwriting, OCR text at its place)."""
    if not line.spans:
        return collapse(ocr), []
    pairs = _pairs(line.text, ocr)
    drop = np.zeros(len(ocr), bool)
    readings = []
    for s, e, reading in line.spans:
        first = next((k for k, (i, _) in enumerate(pairs) if i is not None and i >= s), len(pairs))
        last = next((k for k, (i, _) in enumerate(pairs) if i is not None and i >= e), len(pairs))
        while first > 0 and pairs[first - 1][0] is None:   # insertions just before the span
            first -= 1
        js = [j for _, j in pairs[first:last] if j is not None]
        readings.append((reading, ocr[min(js):max(js) + 1] if js else ""))
        for j in js:
            drop[j] = True
    kept = "".join(" " if drop[j] else c for j, c in enumerate(ocr))
    return collapse(kept), readings


# ---------------------------------------------------------------- measures

def error_kinds(truth: str, ocr: str) -> tuple[int, int]:
    """(edit operations, of which substitutions that differ by diacritics alone)."""
    from rapidfuzz.distance import Levenshtein
    ops = Levenshtein.editops(truth, ocr)
    diacritic = sum(1 for op in ops if op.tag == "replace"
                    and truth[op.src_pos] != ocr[op.dest_pos] and fold(truth[op.src_pos]) == fold(ocr[op.dest_pos]))
    return len(ops), diacritic


def order_errors(positions: list[int]) -> tuple[int, float]:
    """(lines out of order: len - longest increasing run, Kendall tau against 0..n-1)."""
    import bisect
    tails: list[int] = []
    for p in positions:
        k = bisect.bisect_left(tails, p)
        if k == len(tails):
            tails.append(p)
        else:
            tails[k] = p
    n = len(positions)
    if n < 2:
        return 0, 1.0
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if positions[i] < positions[j]:
                concordant += 1
            elif positions[i] > positions[j]:
                discordant += 1
    pairs = n * (n - 1) / 2
    return n - len(tails), (concordant - discordant) / pairs


def words_found(truth_words: list[str], ocr_words: list[str]) -> tuple[int, int]:
    """(truth words found, truth words), both multisets, NFC."""
    t = Counter(unicodedata.normalize("NFC", w) for w in truth_words)
    o = Counter(unicodedata.normalize("NFC", w) for w in ocr_words)
    return sum(min(n, o[w]) for w, n in t.items()), sum(t.values())


def score_page(truth: list[TruthLine], ocr_lines: list[str]) -> dict:
    """Counts for one page (see the module docstring); sums of counts aggregate over pages."""
    ocr = " ".join(collapse(line) for line in ocr_lines)
    spans = align_lines([t.text for t in truth], ocr)
    counts = Counter()
    claimed = np.zeros(len(ocr), bool)
    placed = []
    for i, (line, (start, end, distance)) in enumerate(zip(truth, spans)):
        matched = ocr[start:end] if end > start else ""
        claimed[max(0, start):max(0, end)] = True
        printed_ocr, readings = cut_handwriting(line, matched)
        errors, diacritic = error_kinds(line.printed, printed_ocr)
        chars = len(line.printed)
        counts["chars_all"] += chars
        counts["errors_all"] += errors
        counts["diacritic_errors"] += diacritic
        if line.zone == "B":
            counts["chars_body"] += chars
            counts["errors_body"] += errors
        for reading, read in readings:
            for token in reading.split():
                if "?" in token:
                    continue
                counts["hw_tokens"] += 1
                counts["hw_right"] += token in read.split()
        if line.zone in ORDER_ZONES and end > start and distance <= MATCHED * len(line.text):
            placed.append(start)
    counts["unmatched_ocr"] = int(sum(1 for j, c in enumerate(ocr) if not claimed[j] and not c.isspace()))
    ocr_words = ocr.split()
    counts["words_hit"], counts["words"] = words_found([w for t in truth for w in printed_words(t)], ocr_words)
    counts["words_hit_body"], counts["words_body"] = words_found(
        [w for t in truth if t.zone == "B" for w in printed_words(t)], ocr_words)
    out_of_order, tau = order_errors(placed)
    counts["order_lines"] = len(placed)
    counts["order_errors"] = out_of_order
    result = dict(counts)
    result["kendall_tau"] = round(tau, 4)
    result["lines"] = [{"zone": t.zone, "truth": t.text, "ocr": ocr[s:e] if e > s else "", "distance": d}
                       for t, (s, e, d) in zip(truth, spans)]
    return result


def rates(counts: dict) -> dict:
    def share(a, b):
        return round(counts.get(a, 0) / counts[b], 4) if counts.get(b) else None
    return {
        "cer_body": share("errors_body", "chars_body"),
        "cer_all": share("errors_all", "chars_all"),
        "words_found": share("words_hit", "words"),
        "words_found_body": share("words_hit_body", "words_body"),
        "diacritic_share": share("diacritic_errors", "errors_all"),
        "order_errors": counts.get("order_errors", 0),
        "order_lines": counts.get("order_lines", 0),
        "hw_read": share("hw_right", "hw_tokens"),
        "unmatched_ocr": share("unmatched_ocr", "chars_all"),
    }


# ---------------------------------------------------------------- running sohoa

def engine(config: str, tessdata_best: str):
    from ocr.recognise import TesseractEngine
    if config == "tesseract-fast":
        return TesseractEngine("vie")
    if config == "tesseract-best":
        if not (Path(tessdata_best) / "vie.traineddata").is_file():
            raise SystemExit(f"no best_int model in {tessdata_best}: run scripts/fetch-models.sh")
        return TesseractEngine("vie", tessdata_best)
    if config == "trueocr":
        from ocr.trueocr_engine import TrueOcrEngine
        return TrueOcrEngine("vie")
    if config in ("vote", "vote-best"):  # pipeline.pages builds the same engine for SOHOA_OCR_ENGINE=vote
        from pipeline.pages import ENGINES
        return ENGINES["vote"]("vie", tessdata_best if config == "vote-best" else None)
    raise SystemExit(f"unknown configuration {config!r}; known: {', '.join(CONFIGS)}")


def load(path: Path):
    """The page as sohoa's page stage gets it (pipeline.pages._process): image and resolution."""
    from ocr.paper import page_resolution
    from pipeline.config import OcrSettings
    from pipeline.inputs import load_page, sniff
    data = path.read_bytes()
    image, stated = load_page(path.name, sniff(data), data, 1, OcrSettings().max_pixels)
    resolution = page_resolution(image.size, stated)
    dpi = stated if resolution.source == "header" else (round(resolution.dpi, 2),) * 2
    return image, dpi


def kind_of(name: str, image) -> str:
    if "1999" in name:
        return "1999"
    return "bitonal" if image.mode == "1" else "colour"


# Clean-up steps of the OCR copy (ocr.cleanup) taken out, or one added, to measure what each is
# worth on real paper; "default" is sohoa as it is.
CLEANUP = ("default", "no-colour-removal", "no-background-normalise", "bitonal-thicken")


@contextmanager
def cleanup_variant(variant: str):
    """Run the page stage with one clean-up step of ``ocr.cleanup`` changed (bench only)."""
    import cv2

    from ocr import cleanup

    def thickened(image, dpi, **kwargs):
        gray, ink = original_ocr_copy(image, dpi, **kwargs)
        pixels = np.asarray(image.convert("L"))
        if np.isin(pixels, (0, 255)).mean() > 0.9:  # a bitonal scan (turned, so grey at the edges):
            # a 2x2 minimum joins strokes the scanner's threshold broke
            gray = cv2.erode(gray, np.ones((2, 2), np.uint8))
        return gray, ink

    original_ocr_copy = cleanup.ocr_copy
    swaps = {"default": {}, "no-colour-removal": {"ink_gray": lambda image: cleanup.to_gray(image).copy()},
             "no-background-normalise": {"normalise_background": lambda gray: gray.copy()},
             "bitonal-thicken": {"ocr_copy": thickened}}[variant]
    saved = {name: getattr(cleanup, name) for name in swaps}
    try:
        for name, value in swaps.items():
            setattr(cleanup, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(cleanup, name, value)


def run_one(job: tuple[str, str, str, str]) -> dict:
    name, config, tessdata_best, variant = job
    from ocr.page import process_page
    image, dpi = load(DATA / name)
    eng = engine(config, tessdata_best)
    start = time.perf_counter()
    with cleanup_variant(variant):
        found = process_page(image, dpi, eng)
    seconds = time.perf_counter() - start
    truth = parse_truth((DATA / f"{Path(name).stem}.gt.txt").read_text(encoding="utf-8"))
    ocr_lines = found["text"].split("\n") if found["text"] else []
    scored = score_page(truth, ocr_lines)
    config = config if variant == "default" else f"{config}+{variant}"
    return {"page": name, "config": config, "kind": kind_of(name, image), "seconds": round(seconds, 2),
            "orientation": found["orientation"], "flags": found["flags"], "counts": scored,
            "ocr_text": found["text"]}


def summarise(results: list[dict], key) -> dict:
    groups: dict = {}
    for r in results:
        g = groups.setdefault(key(r), {"counts": Counter(), "seconds": [], "pages": []})
        g["counts"].update({k: v for k, v in r["counts"].items() if isinstance(v, int)})
        g["seconds"].append(r["seconds"])
        g["pages"].append(r["page"])
    return {k: {**rates(g["counts"]), "s_per_page": round(sum(g["seconds"]) / len(g["seconds"]), 2),
                "pages": g["pages"], "counts": dict(g["counts"])} for k, g in groups.items()}


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def markdown(rows: list[tuple[str, str, dict]]) -> str:
    head = ("| configuration | pages | cer_body | cer_all | words found | body words | diacritic share "
            "| order errors | hw read | unmatched OCR | s/page |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    body = [f"| {config} | {label} | {pct(m['cer_body'])} | {pct(m['cer_all'])} | {pct(m['words_found'])} "
            f"| {pct(m['words_found_body'])} | {pct(m['diacritic_share'])} | {m['order_errors']}/{m['order_lines']} "
            f"| {pct(m['hw_read'])} | {pct(m['unmatched_ocr'])} | {m['s_per_page']} |" for config, label, m in rows]
    return "\n".join([head, *body])


def keying(parts: dict) -> str:
    """The truth's own error: how far the two independent keyings of each double-keyed page differ
    (character edits over the first keying's characters, all zones, handwriting readings included)."""
    from rapidfuzz.distance import Levenshtein

    rows, edits, chars = [], 0, 0
    for name in parts["double_keyed"]:
        stem = Path(name).stem
        first, second = ("\n".join(t.text for t in parse_truth((DATA / f"{stem}.{k}.txt").read_text(encoding="utf-8")))
                         for k in ("gt", "gt2"))
        distance = Levenshtein.distance(first, second)
        rows.append(f"| {name} | {len(first)} | {distance} | {pct(distance / len(first))} |")
        edits, chars = edits + distance, chars + len(first)
    rows.append(f"| **all** | {chars} | {edits} | {pct(edits / chars)} |")
    return "| page | characters | edits between keyings | disagreement |\n|---|---:|---:|---:|\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("tune", "validation", "test"))
    parser.add_argument("--keying", action="store_true",
                        help="only compare the two keyings of the double-keyed pages (the truth's own error)")
    parser.add_argument("--frozen-report", action="store_true",
                        help="required for --part test: the frozen report, once per release, never to choose")
    parser.add_argument("--config", action="append", choices=CONFIGS, help="repeatable; default: all")
    parser.add_argument("--cleanup", action="append", choices=CLEANUP,
                        help="repeatable; a clean-up step taken out or added (default: sohoa as it is)")
    parser.add_argument("--out", type=Path, help="JSON file with every page's counts, rates and OCR text")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown table here")
    parser.add_argument("--tessdata-best", default=str(TESSDATA_BEST))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--page", action="append", help="only these pages of the part (file names)")
    args = parser.parse_args(argv)
    parts = json.loads((DATA / "parts.json").read_text(encoding="utf-8"))
    if args.keying:
        print(keying(parts))
        return 0
    if args.part is None:
        parser.error("--part tune|validation|test (or --keying)")
    if args.part == "test" and not args.frozen_report:
        parser.error("--part test is the frozen report: add --frozen-report (and choose nothing on it)")
    names = [n for n in parts[args.part] if not args.page or n in args.page]
    missing = [n for n in names if not (DATA / f"{Path(n).stem}.gt.txt").is_file()]
    names = [n for n in names if n not in missing]
    if missing:
        print(f"no ground truth yet (skipped): {', '.join(missing)}", file=sys.stderr)
    if not names:
        print("no page of this part has a ground truth", file=sys.stderr)
        return 1
    variants = args.cleanup or ["default"]
    jobs = [(n, c, args.tessdata_best, v) for c in (args.config or list(CONFIGS)) for v in variants for n in names]
    configs = list(dict.fromkeys(c if v == "default" else f"{c}+{v}" for _, c, _, v in jobs))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_one, jobs))
    per_page = summarise(results, lambda r: (r["config"], r["page"]))
    per_kind = summarise(results, lambda r: (r["config"], r["kind"]))
    per_part = summarise(results, lambda r: (r["config"], args.part))
    rows = []
    for config in configs:
        rows += [(config, page, per_page[(config, page)]) for page in names]
        rows += [(config, f"**{kind}**", m) for (c, kind), m in sorted(per_kind.items()) if c == config]
        rows.append((config, f"**{args.part} ({len(names)} pages)**", per_part[(config, args.part)]))
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.out:
        report = {"part": args.part, "pages": names, "skipped_without_truth": missing, "configs": configs,
                  "per_part": {c: per_part[(c, args.part)] for c in configs},
                  "per_kind": {f"{c}/{k}": m for (c, k), m in per_kind.items()},
                  "per_page": results}
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
