"""The orientation probe's reading statistics, the right way up and upside down, per scan.

    .venv/bin/python -m bench.orientation_probe SCAN... > probe.jsonl
    .venv/bin/python -m bench.orientation_probe --page SCAN... > page.jsonl
    .venv/bin/python -m bench.orientation_probe --engine trueocr SCAN... > probe-trueocr.jsonl
    .venv/bin/python -m bench.orientation_probe --page --engine trueocr SCAN... > page-trueocr.jsonl
    .venv/bin/python -m bench.orientation_probe --turned 180 SCAN... > turned.jsonl
    .venv/bin/python -m bench.orientation_probe --help

For each scan (upright ones: the real scans), the densest text band that ``ocr.orientation``
reads is read by tesseract (or ``--engine``) as found and turned over; prints one JSON line per
scan with, for both readings, the words, their mean confidence, how many are confident (80 or
more) words of two letters or more, whether ``ocr.orientation.reads_upright`` takes the reading
as upright on its own (with that engine's thresholds) and the CPU seconds it took. The
thresholds were chosen on these figures (bench/README.md, "orientation in one read", "sixth
pass").

``--page``: the same for the whole page as the page stage reads it (``ocr.page.read_sheet``,
the configured recognisers), straightened the likely way up and turned over: whether the page
stage may take its first reading as upright and skip the band test.

``--engine trueocr``: the band read by TrueOCR instead, the reader the page stage's orientation
test uses when tesseract and TrueOCR vote (``OcrEngine.fastest``).

``--page --engine trueocr``: the whole page read by TrueOCR alone, as the vote's fastest reader
reads it beside tesseract: whether that reading alone shows a page turned over before
tesseract's reading ends; under ``firstLook``, the same for its widest lines alone, which it
reads and shows first (``ocr.trueocr_engine.FIRST_LOOK_LINES``).

``--turned DEGREES``: the whole page stage on each scan turned counter-clockwise by DEGREES:
the turn found, tesseract's readings of the page, how many of them were stopped early (a page
turned over, ``ocr.orientation.PAGE_TURNED_OVER``) and the CPU seconds.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bench.stages import cpu_seconds  # sets OMP_THREAD_LIMIT=1, as the page stage's processes do
from ocr import cleanup, geometry, orientation, paper
from ocr.engine import ReadingStopped
from ocr.recognise import TesseractEngine


def open_scan(path: Path) -> Image.Image:
    """The scan as the page stage takes it (RGB, grey or bitonal)."""
    image = Image.open(path)
    return image if image.mode in ("RGB", "L", "1") else image.convert("RGB")


def scan_dpi(image: Image.Image) -> float:
    return paper.page_resolution(image.size, image.info.get("dpi", (300, 300))).dpi


def reading_stats(words: list[dict], upright=orientation.reads_upright) -> dict:
    mean, share = orientation.reading_figures(words) or (0.0, 0.0)
    return {"words": len(words), "meanConf": round(mean, 1), "confidentShare": round(share, 3),
            "readsUpright": upright(words)}


def probe(path: Path, engine: TesseractEngine) -> dict:
    image = open_scan(path)
    dpi = scan_dpi(image)
    mask = cleanup.ink_gray_mask(image, dpi)
    skew = geometry.estimate_skew(mask, dpi)
    first = 90 if skew.vertical else 0
    band = orientation._probe_band(mask, dpi, first + skew.angle_deg)
    if band is None:
        return {"scan": path.name, "band": None}

    def read(gray: np.ndarray) -> dict:
        start = cpu_seconds()
        words = engine.read(gray, psm=6, dpi=orientation.PROBE_DPI)
        return {**reading_stats(words, functools.partial(orientation.reads_upright, reader=engine.name)),
                "cpuSeconds": round(cpu_seconds() - start, 3)}
    return {"scan": path.name, "firstCandidate": first, "asFound": read(band),
            "turnedOver": read(np.ascontiguousarray(band[::-1, ::-1]))}


def probe_page(path: Path, engine) -> dict:
    """Also, under ``firstLook``, what ``abandon_if`` is shown first (TrueOCR: its widest lines,
    ``ocr.trueocr_engine.FIRST_LOOK_LINES``), and whether ``PAGE_TURNED_OVER`` takes it for a page
    turned over."""
    from ocr import page

    image = open_scan(path)
    dpi = scan_dpi(image)
    lines = orientation.text_lines(cleanup.ink_gray_mask(image, dpi), dpi)
    stats = functools.partial(reading_stats, upright=orientation.page_reads_upright)

    def read(turn: int) -> dict:
        shown: list[list[dict]] = []

        def look(words: list[dict], reader: str) -> bool:
            shown.append(words)
            return False
        straight = page.straighten(image, dpi, turn, lines.skew_deg)
        words = page.read_sheet(straight, dpi, engine, abandon_if=look)[0]
        first = shown[0] if shown else None
        return {**stats(words), "firstLook": None if first is None else {
            **reading_stats(first, upright=orientation.page_reads_upright),
            "turnedOver": orientation.page_reads_turned_over(first, engine.fastest().name)}}
    return {"scan": path.name, "firstCandidate": lines.likely, "asFound": read(lines.likely),
            "turnedOver": read(lines.likely + 180)}


class CountingTesseract:
    """Tesseract, noting the page segmentation mode of every reading it is asked for and how many
    readings were stopped before their end."""

    def __init__(self):
        self.inner, self.modes, self.stopped = TesseractEngine("vie"), [], 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, gray, **kwargs):
        self.modes.append(kwargs.get("psm"))
        try:
            return self.inner.read(gray, **kwargs)
        except ReadingStopped:
            self.stopped += 1
            raise

    def fastest(self):
        return self


def probe_turned(path: Path, turn: int) -> dict:
    """The whole page stage (``ocr.page.process_page``, tesseract and TrueOCR voting) on the scan
    turned counter-clockwise by ``turn``: the turn found, tesseract's page readings and how many
    were stopped, the CPU seconds of this process and its children."""
    from ocr.page import process_page
    from ocr.trueocr_engine import TrueOcrEngine
    from ocr.vote import VotingEngine

    image = open_scan(path)
    dpi = image.info.get("dpi", (300, 300))
    image = image.rotate(turn, expand=True) if turn else image
    tesseract = CountingTesseract()
    start = cpu_seconds()
    result = process_page(image, dpi, VotingEngine(tesseract, TrueOcrEngine("vie")))
    return {"scan": path.name, "turn": turn, "found": result["orientation"], "words": len(result["words"]),
            "tesseractReadings": tesseract.modes.count(3), "stopped": tesseract.stopped,
            "cpuSeconds": round(cpu_seconds() - start, 2)}


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scans", nargs="+", type=Path, metavar="SCAN")
    parser.add_argument("--page", action="store_true", help="the whole page as the page stage reads it")
    parser.add_argument("--engine", choices=("tesseract", "trueocr"),
                        help="the reader (default: tesseract for the band, both voting for --page)")
    parser.add_argument("--turned", type=int, metavar="DEGREES", help="the whole page stage on each scan so turned")
    args = parser.parse_args(argv)
    if args.turned is not None:
        for scan in args.scans:
            print(json.dumps(probe_turned(scan, args.turned), ensure_ascii=False), flush=True)
        return 0
    if args.engine == "trueocr":
        from ocr.trueocr_engine import TrueOcrEngine
        engine = TrueOcrEngine("vie")
    elif args.page and args.engine is None:
        from pipeline.pages import ENGINES
        engine = ENGINES["vote"]("vie", None)
    else:
        engine = TesseractEngine("vie")
    measure = probe_page if args.page else probe
    for scan in args.scans:
        print(json.dumps(measure(scan, engine), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
