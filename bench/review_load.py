"""How many lines the review offers, and how many of the wrong lines it catches, on the real scans.

    .venv/bin/python -m bench.review_load --part tune|validation [--engine vote]

Each OCR line of sohoa's page stage is matched to its nearest truth line (normalised edit
distance); it is wrong when it is not exactly that line (handwriting included, so a line with a
handwritten number read wrong counts). Printed: lines, lines offered for review (ocr.review),
wrong lines, wrong lines offered, and the share of offered lines that are wrong.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def main(argv: list[str] | None = None) -> int:
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    from bench.realscans import DATA, load, parse_truth
    from ocr.page import process_page
    from pipeline.pages import ENGINES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("tune", "validation"), required=True)
    parser.add_argument("--engine", default="vote", choices=sorted(ENGINES))
    args = parser.parse_args(argv)
    engine = ENGINES[args.engine]("vie", None)
    total = offered = wrong = caught = 0
    for name in json.loads((DATA / "parts.json").read_text(encoding="utf-8"))[args.part]:
        image, dpi = load(DATA / name)
        found = process_page(image, dpi, engine)
        truth = [t.text for t in parse_truth((DATA / f"{Path(name).stem}.gt.txt").read_text(encoding="utf-8"))]
        review = {r["line"] for r in found["review"]}
        lines: dict[int, list[str]] = {}
        for word in found["words"]:
            lines.setdefault(word["line"], []).append(word["text"])
        for number, words in lines.items():
            is_wrong = process.extractOne(" ".join(words), truth, scorer=Levenshtein.normalized_distance)[1] > 0
            total, offered = total + 1, offered + (number in review)
            wrong, caught = wrong + is_wrong, caught + (is_wrong and number in review)
    print(f"{args.part} ({args.engine}): {total} lines, {offered} offered for review ({offered / total:.1%}); "
          f"{wrong} wrong ({wrong / total:.1%}), {caught} of them offered ({caught / max(wrong, 1):.1%}); "
          f"{caught / max(offered, 1):.1%} of the offered lines are wrong")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
