"""CPU seconds per page by stage of sohoa's page stage, against the recognition floor.

    .venv/bin/python -m bench.stages [--pages N] [--engine vote] [--json PATH]

Pages come from tests/pagegen.py (as bench/run.py): running text, administrative layout with a
seal and a signature, ruled table; 300-dpi colour and 200-dpi grey; skewed and turned.  Each page
goes through ``ocr.page.process_page`` in this process, one after the other, with the configured
engine (``vote`` by default: tesseract and TrueOCR).  Every stage function is wrapped in a timer;
a stage's time is its own (exclusive): time spent in a stage called from it is charged to that
one, under a path such as ``read/cells/tesseract``.  CPU time is this process's (all threads:
ONNX Runtime) plus its reaped children's (tesseract runs as a child process per call).  Where
the page stage runs two stages at once (tesseract beside TrueOCR, the orientation test beside the
straightening of a page on its side), the split between them is approximate; the page's total is not.

The floor is the configured recognisers alone on the upright, cleaned page the page stage reads
(the same grey image, enlarged as the page stage enlarges it): one whole-page read per engine
(tesseract ``--psm 3``; TrueOCR line detection, line recognition and reading order) and, for the
vote engine, the line vote between the two readings.  It leaves out everything that makes the
page readable or better read: the blank check, orientation, straightening, clean-up, quality
flags, tables read cell by cell, columns, the review.  The floor is measured on each page right
after that page's run, with models already loaded; the first model load is reported apart.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

from bench import load_pagegen

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def page_specs(count: int = 6, seed: int = 11) -> list:
    """A fixed set: text, admin, table at 300-dpi colour then 200-dpi grey, skewed, turned."""
    pagegen = load_pagegen()
    import random
    rng = random.Random(seed)
    kinds = [(layout, dpi, color) for dpi, color in ((300, "rgb"), (200, "gray")) for layout in ("text", "admin", "table")]
    turns = (0, 90, 0, 180, 0, 270)
    specs = []
    for i in range(count):
        layout, dpi, color = kinds[i % len(kinds)]
        specs.append(pagegen.PageSpec(layout=layout, dpi=dpi, color=color, degradation=1 + i % 2,
                                      orientation=turns[i % len(turns)], skew_deg=round(rng.uniform(-6, 6), 2),
                                      seed=seed * 1000 + i))
    return specs


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class StageTimer:
    """Exclusive CPU and wall seconds per stage path ("read/cells/tesseract")."""

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._mark = (cpu_seconds(), time.perf_counter())

    def _charge(self) -> None:
        now = (cpu_seconds(), time.perf_counter())
        if self._stack:
            path = "/".join(self._stack)
            self.cpu[path] = self.cpu.get(path, 0.0) + now[0] - self._mark[0]
            self.wall[path] = self.wall.get(path, 0.0) + now[1] - self._mark[1]
        self._mark = now

    @contextlib.contextmanager
    def stage(self, name: str):
        self._charge()
        self._stack.append(name)
        self.calls["/".join(self._stack)] = self.calls.get("/".join(self._stack), 0) + 1
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            with self.stage(name):
                return function(*args, **kwargs)
        timed.__wrapped__ = function
        return timed


# (module, attribute, stage name): the stages of ocr.page.process_page and what they call
STAGES = [
    ("ocr.cleanup", "black_ink_mask", "blank"),
    ("ocr.quality", "mark_stats", "marks"),
    ("ocr.orientation", "measure", "orientation"),
    ("ocr.orientation", "_probe_band", "probe"),
    ("ocr.orientation", "_osd_rotation", "osd"),
    ("ocr.geometry", "estimate_skew", "skew"),
    ("ocr.page", "straighten", "straighten"),
    ("ocr.cleanup", "ocr_copy", "cleanup"),
    ("ocr.quality", "page_flags_before_ocr", "flags"),
    ("ocr.page", "_read_words", "read"),
    ("ocr.layout", "find_grid", "grid"),
    ("ocr.page", "_read_short_cells", "short_cells"),
    ("ocr.page", "_read_cells", "cells"),
    ("ocr.layout", "order_columns", "layout"),
    ("ocr.layout", "order_by_cells", "layout"),
    ("ocr.page", "_moved", "finish"),
    ("ocr.review", "lines_to_review", "finish"),
    ("ocr.recognise", "words_to_text", "finish"),
    ("ocr.vote", "vote_page", "vote"),
    ("ocr.trueocr_engine", "_detected", "trueocr.detect"),
    ("ocr.trueocr_engine", "read_lines", "trueocr.recognise"),
    ("ocr.trueocr_engine", "_words_of_line", "trueocr.words"),
]
METHODS = [
    ("ocr.recognise", "TesseractEngine", "read", "tesseract"),
    ("ocr.recognise", "TesseractEngine", "orientation", "tesseract.osd"),
    ("ocr.trueocr_engine", "TrueOcrEngine", "_order", "trueocr.order"),
    ("ocr.trueocr_engine", "TrueOcrEngine", "read", "trueocr"),
]


@contextlib.contextmanager
def instrumented(timer: StageTimer):
    """The stage functions wrapped in ``timer`` while the block runs (then put back)."""
    import importlib
    saved = []
    try:
        for module_name, attribute, name in STAGES:
            module = importlib.import_module(module_name)
            if hasattr(module, attribute):
                saved.append((module, attribute, getattr(module, attribute)))
                setattr(module, attribute, timer.wrap(name, getattr(module, attribute)))
        for module_name, cls_name, attribute, name in METHODS:
            cls = getattr(importlib.import_module(module_name), cls_name)
            original = cls.__dict__[attribute]
            saved.append((cls, attribute, original))
            if isinstance(original, staticmethod):
                setattr(cls, attribute, staticmethod(timer.wrap(name, original.__func__)))
            else:
                setattr(cls, attribute, timer.wrap(name, original))
        yield timer
    finally:
        for owner, attribute, original in reversed(saved):
            setattr(owner, attribute, original)


def _engine(name: str):
    from pipeline.pages import ENGINES
    return ENGINES[name]("vie", None)


def _floor(page_module, cleaned, resolution: float, engine, timer: StageTimer) -> None:
    """The configured recognisers alone, once, on the upright cleaned page (module docstring)."""
    from ocr.page import DEFAULT_OPTIONS as options
    scale = options.target_dpi / resolution if resolution < options.upscale_below_dpi else 1.0
    with timer.stage("floor"):
        page_module._recognise(cleaned, resolution, engine, options, scale, options.psm)


def profile_stages(pages=None, engine: str = "vote") -> dict:
    """Profile ``process_page`` on ``pages`` (PageSpecs, or a count; default the fixed set of 6).

    Returns {"pages": [{spec, cpu: {stage path: s}, wall: {...}, floor_cpu: {...}}, ...],
    "summary": {"stage_cpu_per_page": {...}, "total_cpu_per_page", "floor_cpu_per_page",
    "ratio": total / floor, "floor_includes": str, "model_load_cpu": s}}."""
    import ocr.page as page_module
    from ocr import cleanup
    from ocr.paper import page_resolution
    pagegen = load_pagegen()
    specs = page_specs(pages) if isinstance(pages, int) else (pages or page_specs())
    recogniser = _engine(engine)

    # model sessions are loaded once per process: charged apart, on a small warm-up image
    import numpy as np
    warm = np.full((120, 600), 255, np.uint8)
    warm[50:70, 40:560:20] = 0
    start = cpu_seconds()
    recogniser.read(warm, psm=3)
    model_load = cpu_seconds() - start

    rows = []
    for spec in specs:
        rendered = pagegen.render_page(spec)
        cleaned_pages: list = []
        timer = StageTimer()

        original_copy = cleanup.ocr_copy

        def keep_copy(*args, **kwargs):
            found = original_copy(*args, **kwargs)
            cleaned_pages.append(found[0].copy())
            return found
        cleanup.ocr_copy = keep_copy
        try:
            with instrumented(timer):
                start_cpu, start_wall = cpu_seconds(), time.perf_counter()
                with timer.stage("page"):
                    result = page_module.process_page(rendered.image, rendered.dpi, recogniser)
                total_cpu, total_wall = cpu_seconds() - start_cpu, time.perf_counter() - start_wall
                floor_timer = StageTimer()
        finally:
            cleanup.ocr_copy = original_copy
        resolution = page_resolution(rendered.image.size, rendered.dpi).dpi
        floor_cpu = floor_wall = 0.0
        if cleaned_pages:
            with instrumented(floor_timer):
                start_cpu, start_wall = cpu_seconds(), time.perf_counter()
                _floor(page_module, cleaned_pages[-1], resolution, recogniser, floor_timer)
                floor_cpu, floor_wall = cpu_seconds() - start_cpu, time.perf_counter() - start_wall
        rows.append({
            "spec": dataclasses.asdict(spec), "orientation_ok": result["orientation"] == spec.orientation,
            "words": len(result["words"]), "total_cpu": total_cpu, "total_wall": total_wall,
            "cpu": timer.cpu, "wall": timer.wall, "calls": timer.calls,
            "floor_cpu": floor_cpu, "floor_wall": floor_wall, "floor_parts": floor_timer.cpu,
        })
    return {"engine": engine, "pages": rows, "summary": summarise(rows, model_load)}


def summarise(rows: list[dict], model_load: float = 0.0) -> dict:
    n = max(1, len(rows))
    stages: dict[str, float] = {}
    floor_parts: dict[str, float] = {}
    for row in rows:
        for path, seconds in row["cpu"].items():
            stages[path] = stages.get(path, 0.0) + seconds / n
        for path, seconds in row["floor_parts"].items():
            floor_parts[path] = floor_parts.get(path, 0.0) + seconds / n
    total = sum(r["total_cpu"] for r in rows) / n
    floor = sum(r["floor_cpu"] for r in rows) / n
    return {
        "pages": len(rows),
        "total_cpu_per_page": total, "total_wall_per_page": sum(r["total_wall"] for r in rows) / n,
        "floor_cpu_per_page": floor, "floor_wall_per_page": sum(r["floor_wall"] for r in rows) / n,
        "ratio": total / floor if floor else float("nan"),
        "stage_cpu_per_page": dict(sorted(stages.items(), key=lambda kv: -kv[1])),
        "floor_cpu_parts_per_page": dict(sorted(floor_parts.items(), key=lambda kv: -kv[1])),
        "by_top_stage": _by_top(stages),
        "floor_includes": ("the configured engine's whole-page read (psm 3) of the upright cleaned page: "
                           "tesseract, TrueOCR (line detection, recognition, reading order) and the line vote"),
        "model_load_cpu": model_load,
    }


def _by_top(stages: dict[str, float]) -> dict[str, float]:
    """Stage paths folded to their first stage under ``page`` (recognition calls inside counted in)."""
    out: dict[str, float] = {}
    for path, seconds in stages.items():
        parts = path.split("/")
        key = parts[1] if len(parts) > 1 else "page (own)"
        out[key] = out.get(key, 0.0) + seconds
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def print_report(report: dict) -> None:
    s = report["summary"]
    print(f"engine {report['engine']}, {s['pages']} pages; CPU s/page (wall in brackets)")
    for row in report["pages"]:
        spec = row["spec"]
        print(f"  {spec['layout']:<6} {spec['dpi']} {spec['color']:<4} turn {spec['orientation']:>3} "
              f"skew {spec['skew_deg']:+5.2f}: page {row['total_cpu']:.2f} ({row['total_wall']:.2f})  "
              f"floor {row['floor_cpu']:.2f} ({row['floor_wall']:.2f})  x{row['total_cpu'] / max(1e-9, row['floor_cpu']):.2f}"
              f"  words {row['words']}{'' if row['orientation_ok'] else '  ORIENTATION WRONG'}")
    print(f"\npage stage {s['total_cpu_per_page']:.3f} CPU-s/page ({s['total_wall_per_page']:.2f} s wall); "
          f"floor {s['floor_cpu_per_page']:.3f} ({s['floor_wall_per_page']:.2f}); ratio {s['ratio']:.2f}")
    print(f"floor: {s['floor_includes']}")
    print(f"model load (once per process, not in the figures): {s['model_load_cpu']:.2f} CPU-s")
    print("\nby stage (recognition inside counted in):")
    for name, seconds in s["by_top_stage"].items():
        print(f"  {name:<40}{seconds:8.3f}")
    print("\nby stage path (exclusive):")
    for path, seconds in s["stage_cpu_per_page"].items():
        print(f"  {path:<40}{seconds:8.3f}")
    print("\nfloor parts:")
    for path, seconds in s["floor_cpu_parts_per_page"].items():
        print(f"  {path:<40}{seconds:8.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--engine", default="vote", choices=("vote", "tesseract", "trueocr"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = profile_stages(args.pages, engine=args.engine)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
