"""The orientation probe's reading statistics, the right way up and upside down, per scan.

    .venv/bin/python -m bench.orientation_probe SCAN... > probe.jsonl

For each scan (upright ones: the real scans), the densest text band that ``ocr.orientation``
reads is read by tesseract as found and turned over; prints one JSON line per scan with, for
both readings, the words, their mean confidence, how many are confident (80 or more) words of
two letters or more, and whether ``ocr.orientation.reads_upright`` takes the reading as upright
on its own. Its thresholds were chosen on these figures (bench/README.md, "orientation in one
read").
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ocr import cleanup, geometry, orientation, paper
from ocr.recognise import TesseractEngine


def reading_stats(words: list[dict]) -> dict:
    confident = sum(1 for w in words if w["conf"] >= 80 and sum(ch.isalpha() for ch in w["text"]) >= 2)
    return {"words": len(words), "meanConf": round(float(np.mean([w["conf"] for w in words])), 1) if words else 0.0,
            "confidentShare": round(confident / len(words), 3) if words else 0.0,
            "readsUpright": orientation.reads_upright(words)}


def probe(path: Path, engine: TesseractEngine) -> dict:
    image = Image.open(path)
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    dpi = paper.page_resolution(image.size, image.info.get("dpi", (300, 300))).dpi
    mask = cleanup.ink_gray_mask(image, dpi)
    skew = geometry.estimate_skew(mask, dpi)
    first = 90 if skew.vertical else 0
    band = orientation._probe_band(mask, dpi, first + skew.angle_deg)
    if band is None:
        return {"scan": path.name, "band": None}
    read = lambda gray: engine.read(gray, psm=6, dpi=orientation.PROBE_DPI)  # noqa: E731
    return {"scan": path.name, "firstCandidate": first, "asFound": reading_stats(read(band)),
            "turnedOver": reading_stats(read(np.ascontiguousarray(band[::-1, ::-1])))}


def main(argv: list[str]) -> int:
    engine = TesseractEngine("vie")
    for name in argv:
        print(json.dumps(probe(Path(name), engine), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
