"""Benchmark sohoa's page OCR against OCRmyPDF on the same rendered Vietnamese pages.

    .venv/bin/python -m bench.run              # quick: a few minutes on 2 cores
    .venv/bin/python -m bench.run --full       # more pages, both resolutions, heavier noise
    .venv/bin/python -m bench.run --no-ocrmypdf --variant psm=4 --variant binarise=1
    .venv/bin/python -m bench.run --no-ocrmypdf --variant engine=vote   # another OCR engine (SOHOA_OCR_ENGINE)

Pages come from tests/pagegen.py (text, administrative layout with seal, ruled table; 300 and
200 dpi; degradation levels; quarter turns; skew).  For every system it prints the character
error rate (running-text pages and all pages), the share of truth words found (bag of words),
deskew mean and worst error, orientation accuracy and seconds per page.  A separate geometry set
(skew within +-15 degrees, every layout in every quarter turn) measures orientation and deskew
of sohoa alone, which is cheap because it does not run the full recognition.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import load_pagegen

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


pagegen = load_pagegen()


# ---------------------------------------------------------------- scoring

def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def levenshtein(a, b) -> int:
    try:
        from rapidfuzz.distance import Levenshtein
        return Levenshtein.distance(a, b)
    except ImportError:  # plain dynamic programming; slow but dependency-free
        previous = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            current = [i]
            for j, y in enumerate(b, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
            previous = current
        return previous[-1]


def score_text(truth: str, hypothesis: str) -> dict:
    g, h = normalise(truth), normalise(hypothesis)
    truth_words, found_words = Counter(g.split()), Counter(h.split())
    hits = sum(min(n, found_words[w]) for w, n in truth_words.items())
    return {"char_errors": levenshtein(g, h), "chars": len(g), "words_hit": hits, "words": sum(truth_words.values())}


def angle_error(measured: float, truth: float) -> float:
    return abs((measured - truth + 45) % 90 - 45)


# ---------------------------------------------------------------- page sets

def recognition_specs(full: bool, seed: int) -> list:
    if full:
        specs = []
        for dpi in (300, 200):
            for level in (1, 2, 3):
                specs += pagegen.page_set(count=6, dpis=(dpi,), degradations=(level,), max_skew=8.0,
                                          seed=seed + 10 * level + dpi)
        return specs
    return (pagegen.page_set(count=6, dpis=(300,), degradations=(1, 2), max_skew=8.0, seed=seed)
            + pagegen.page_set(count=3, dpis=(200,), degradations=(2,), max_skew=8.0,
                               orientations=(0, 270), seed=seed + 1))


def geometry_specs(full: bool, seed: int) -> list:
    import random
    rng = random.Random(seed)
    specs = []
    turns = (0, 90, 180, 270)
    repeats = 3 if full else 1
    for r in range(repeats):
        for layout in ("text", "admin", "table"):
            for turn in turns:
                specs.append(pagegen.PageSpec(layout=layout, dpi=rng.choice((300, 200)), orientation=turn,
                                              skew_deg=round(rng.uniform(-15, 15), 2), degradation=rng.choice((1, 2, 3)),
                                              color=rng.choice(("rgb", "rgb", "gray")), seed=seed * 100 + len(specs)))
    return specs


# ---------------------------------------------------------------- systems

def run_sohoa(spec, variant: dict) -> dict:
    from ocr.page import OcrOptions, process_page
    from pipeline.pages import ENGINES
    page = pagegen.render_page(spec)
    variant = dict(variant)
    engine = ENGINES[variant.pop("engine", "tesseract")]("vie", None)  # --variant engine=vote: SOHOA_OCR_ENGINE
    options = dataclasses.replace(OcrOptions(), **variant)
    start = time.perf_counter()
    result = process_page(page.image, page.dpi, engine, options=options)
    seconds = time.perf_counter() - start
    return {"layout": spec.layout, "dpi": spec.dpi, "level": spec.degradation, "seconds": seconds,
            "orientation_ok": result["orientation"] == spec.orientation,
            "skew_error": angle_error(result["skew_deg"], spec.skew_deg),
            "confidence": result["confidence"], "flags": result["flags"],
            **score_text(page.text, result["text"])}


def run_geometry(spec, engine: str = "vote") -> dict:
    """The orientation test and deskew alone, with ``engine``'s recognisers (the configured
    default, ``vote``, reads the band with TrueOCR: ``OcrEngine.fastest``)."""
    from ocr.orientation import measure
    from pipeline.pages import ENGINES
    page = pagegen.render_page(spec)
    start = time.perf_counter()
    found = measure(page.image, float(spec.dpi), ENGINES[engine]("vie", None))
    return {"layout": spec.layout, "orientation_ok": found.orientation == spec.orientation,
            "skew_error": angle_error(found.skew_deg, spec.skew_deg), "seconds": time.perf_counter() - start,
            "evidence": found.evidence, "spec": dataclasses.asdict(spec), "found": [found.orientation, found.skew_deg]}


def ocrmypdf_command() -> str | None:
    """OCRmyPDF next to this interpreter (a venv) or on PATH."""
    beside = Path(sys.executable).parent / "ocrmypdf"
    return str(beside) if beside.exists() else shutil.which("ocrmypdf")


def run_ocrmypdf(spec) -> dict:
    """OCRmyPDF as an operator would run it; its orientation and deskew are read from its log."""
    page = pagegen.render_page(spec)
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "page.tif", Path(tmp) / "page.pdf"
        page.image.save(source, dpi=page.dpi, compression="tiff_lzw")
        start = time.perf_counter()
        done = subprocess.run([ocrmypdf_command(), "-v", "1", "-l", "vie", "--deskew", "--rotate-pages",
                               "--output-type", "pdfa-2", str(source), str(output)],
                              capture_output=True, text=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        seconds = time.perf_counter() - start
        text = ""
        if output.exists():
            text = subprocess.run(["pdftotext", "-raw", str(output), "-"], capture_output=True, text=True).stdout
    log = done.stderr
    # "Rasterize with ..., rotation R": R is the clockwise turn it applied; "Deskew angle: A" is clockwise
    rotation = re.search(r"Rasterize with \S+, rotation (\d+)", log)
    deskew = re.search(r"Deskew angle: (-?[\d.]+)", log)
    orientation = (360 - int(rotation.group(1))) % 360 if rotation else 0
    skew = -float(deskew.group(1)) if deskew else 0.0
    return {"layout": spec.layout, "dpi": spec.dpi, "level": spec.degradation, "seconds": seconds,
            "orientation_ok": orientation == spec.orientation, "skew_error": angle_error(skew, spec.skew_deg),
            "failed": done.returncode != 0, **score_text(page.text, text)}


# ---------------------------------------------------------------- report

def summarise(rows: list[dict]) -> dict:
    def cer(selected):
        chars = sum(r["chars"] for r in selected)
        return sum(r["char_errors"] for r in selected) / chars if chars else float("nan")
    text_rows = [r for r in rows if r["layout"] == "text"]
    found = [r["words_hit"] / r["words"] for r in rows if r["words"]]
    errors = [r["skew_error"] for r in rows]
    return {
        "pages": len(rows),
        "cer_text": cer(text_rows), "cer_all": cer(rows),
        "words_found": sum(r["words_hit"] for r in rows) / max(1, sum(r["words"] for r in rows)),
        "words_found_min": min(found) if found else float("nan"),
        "deskew_mean": sum(errors) / len(errors), "deskew_worst": max(errors),
        "orientation": sum(r["orientation_ok"] for r in rows) / len(rows),
        "s_per_page": sum(r["seconds"] for r in rows) / len(rows),
    }


def print_table(title: str, summaries: dict[str, dict]) -> None:
    columns = ["pages", "cer_text", "cer_all", "words_found", "words_found_min", "deskew_mean", "deskew_worst",
               "orientation", "s_per_page"]
    print(f"\n{title}")
    print(f"{'system':<24}" + "".join(f"{c:>16}" for c in columns))
    for name, s in summaries.items():
        cells = []
        for c in columns:
            v = s[c]
            cells.append(f"{v:>16d}" if isinstance(v, int) else f"{v:>16.4f}")
        print(f"{name:<24}" + "".join(cells))


def parse_variant(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        key, value = part.split("=", 1)
        if key == "engine":
            out[key] = value
            continue
        out[key] = {"true": True, "false": False}.get(value.lower(), None)
        if out[key] is None:
            out[key] = float(value) if "." in value else int(value)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: a few minutes on 2 cores")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-ocrmypdf", action="store_true")
    parser.add_argument("--no-geometry", action="store_true")
    parser.add_argument("--geometry-engine", default="vote", choices=("vote", "tesseract", "trueocr"),
                        help="the recognisers of the geometry set's orientation test (default: vote, as configured)")
    parser.add_argument("--no-recognition", action="store_true")
    parser.add_argument("--variant", action="append", default=[],
                        help="OcrOptions overrides for an extra sohoa run, e.g. psm=4,binarise=true")
    parser.add_argument("--json", type=Path, help="write every row and summary here")
    args = parser.parse_args(argv)

    report: dict = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        if not args.no_geometry:
            specs = geometry_specs(args.full, args.seed)
            rows = list(pool.map(functools.partial(run_geometry, engine=args.geometry_engine), specs))
            report["geometry"] = {"rows": rows, "summary": summarise_geometry(rows)}
            s = report["geometry"]["summary"]
            print(f"\ngeometry set ({s['pages']} pages, skew within +-15 deg, every layout x quarter turn, 300/200 dpi)")
            print(f"  sohoa: orientation {s['orientation']:.4f}  deskew mean {s['deskew_mean']:.3f} deg  "
                  f"worst {s['deskew_worst']:.3f} deg  {s['s_per_page']:.2f} s/page")
            for r in rows:
                if not r["orientation_ok"] or r["skew_error"] > 0.5:
                    print("  miss:", r["spec"], "found", r["found"], r["evidence"])
        if not args.no_recognition:
            specs = recognition_specs(args.full, args.seed)
            summaries: dict[str, dict] = {}
            variants = [("sohoa", {})] + [(f"sohoa[{v}]", parse_variant(v)) for v in args.variant]
            for name, variant in variants:
                rows = list(pool.map(run_sohoa, specs, [variant] * len(specs)))
                summaries[name] = summarise(rows)
                report[name] = {"rows": rows, "summary": summaries[name]}
            if not args.no_ocrmypdf:
                if ocrmypdf_command():
                    rows = list(pool.map(run_ocrmypdf, specs))
                    summaries["ocrmypdf"] = summarise(rows)
                    report["ocrmypdf"] = {"rows": rows, "summary": summaries["ocrmypdf"]}
                else:
                    print("ocrmypdf not found: pip install ocrmypdf (benchmark only)", file=sys.stderr)
            layouts = Counter(s.layout for s in specs)
            print_table(f"recognition set ({len(specs)} pages: {dict(layouts)}; dpi {sorted({s.dpi for s in specs})}; "
                        f"skew within +-8 deg; quarter turns)", summaries)
            for name in summaries:
                by_layout = {}
                for layout in ("text", "admin", "table"):
                    rows = [r for r in report[name]["rows"] if r["layout"] == layout]
                    if rows:
                        by_layout[layout] = round(sum(r["words_hit"] for r in rows) / max(1, sum(r["words"] for r in rows)), 4)
                print(f"  {name}: words found by layout {by_layout}")
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    return 0


def summarise_geometry(rows: list[dict]) -> dict:
    errors = [r["skew_error"] for r in rows]
    return {"pages": len(rows), "orientation": sum(r["orientation_ok"] for r in rows) / len(rows),
            "deskew_mean": sum(errors) / len(errors), "deskew_worst": max(errors),
            "s_per_page": sum(r["seconds"] for r in rows) / len(rows)}


if __name__ == "__main__":
    raise SystemExit(main())
