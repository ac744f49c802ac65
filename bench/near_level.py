"""Pages scanned within a tenth of a degree of level: what the page stage reads on them.

    .venv/bin/python -m bench.near_level                    # 16 pages, seed 5
    .venv/bin/python -m bench.near_level --pages 16 --seed 6 --json out.json
    .venv/bin/python -m bench.near_level --tree /tmp/old   # an earlier version's page stage

Rendered pages (tests/pagegen.py: text, administrative layout, ruled table; 300 and 200 dpi,
colour and grey, degradation 1-3) turned by a skew drawn within +-0.09 degrees, saved as a
scanner would (JPEG, quality 85) and read by the page stage with both recognisers voting. Prints
the character error rate and the share of truth words found over all pages, the pages whose
skew was undone, and one JSON line per page. ``geometry.MIN_DESKEW_DEG`` leaves such pages as
scanned; ``--tree DIR`` reads the pages with another copy of the sources (an earlier version,
which may not have this file), to compare side by side.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import load_pagegen
from bench.run import score_text

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
pagegen = load_pagegen()


def specs(count: int, seed: int) -> list:
    rng = random.Random(seed)
    return [pagegen.PageSpec(layout=rng.choice(("text", "admin", "table")), dpi=rng.choice((300, 300, 200)),
                             orientation=0, skew_deg=round(rng.uniform(-0.09, 0.09), 3),
                             degradation=rng.choice((1, 2, 3)), color=rng.choice(("rgb", "rgb", "gray")),
                             seed=seed * 100 + i)
            for i in range(count)]


def read_page(spec) -> dict:
    from PIL import Image

    from ocr.page import process_page
    from pipeline.pages import ENGINES

    page = pagegen.render_page(spec)
    scanned = io.BytesIO()
    page.image.save(scanned, "JPEG", quality=85)
    image = Image.open(io.BytesIO(scanned.getvalue()))
    result = process_page(image, page.dpi, ENGINES["vote"]("vie", None))
    return {"layout": spec.layout, "dpi": spec.dpi, "color": spec.color, "skew": spec.skew_deg,
            "skewUndone": result["skew_deg"], **score_text(page.text, result["text"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--tree", type=Path, help="read the pages with the sources of this tree")
    args = parser.parse_args(argv)
    if args.tree:
        assert "ocr" not in sys.modules, "the page stage is imported when the pages are read, after this"
        sys.path.insert(0, str(args.tree.resolve()))  # the pool's processes are forked: they inherit it
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(read_page, specs(args.pages, args.seed)))
    for row in rows:
        print(json.dumps(row))
    chars, words = sum(r["chars"] for r in rows), sum(r["words"] for r in rows)
    summary = {"tree": str(args.tree.resolve() if args.tree else ROOT), "pages": len(rows), "seed": args.seed,
               "cer": round(100 * sum(r["char_errors"] for r in rows) / chars, 3),
               "wordsFound": round(100 * sum(r["words_hit"] for r in rows) / words, 3),
               "skewUndone": sum(1 for r in rows if r["skewUndone"] != 0)}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
