"""Pages whose text is in coloured ink: what the page stage reads on them, and on pages carrying
only a signature and a seal, which must stay blank.

    .venv/bin/python -m bench.coloured_ink                        # the report set: seeds 5, 7, 8, 10-15
    .venv/bin/python -m bench.coloured_ink --seeds 0-4,6,9        # the set the thresholds were tuned on
    .venv/bin/python -m bench.coloured_ink --tree /tmp/old        # an earlier version's page stage
    .venv/bin/python -m bench.coloured_ink --scans ../shared/realscans   # the check alone, on real scans

Rendered pages (tests/pagegen.py: running text, administrative layout, ruled table, dense 9-pt
list) in five inks (black, navy, royal blue, blue ballpoint, violet), the same page in each ink
(per seed and layout: 300 or 200 dpi, degradation 1-3, a skew within 3 degrees, a quarter turn
or none); and pages of one blue signature with a red seal over it and nothing else (``signed``,
seeds 30-53, or ``--signed`` more). Each is saved as a scanner would (JPEG, quality 85) and read
by the page stage with both recognisers voting, the default. Prints, per ink, the pages, those
flagged blank, the share of truth words found and the pages read in the wrong quarter turn; the
signed pages still blank; the CPU seconds of the check for coloured text
(``ocr.page.colour_text_gray``, on top of what the page stage measures anyway; median and
largest, when the tree has it); one JSON line per page
with ``--rows``. ``--tree DIR`` reads the pages with another copy of the sources. ``--scans DIR``
makes the check alone on each image of DIR as sohoa loads it (no reading): which are read in
colour, and the black marks and coloured share of those looked at again.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import load_pagegen
from bench.run import score_text

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
pagegen = load_pagegen()

INKS = {"black": None, "navy": (25, 35, 95), "royal": (40, 80, 210), "ballpoint": (30, 60, 170),
        "violet": (100, 40, 140)}
LAYOUTS = ("text", "admin", "table", "list")
REPORT_SEEDS = "5,7,8,10-15"


def seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out += range(int(first), int(last or first) + 1)
    return out


def page_specs(text_seeds: list[int], signed: int, layouts=LAYOUTS, inks=tuple(INKS)) -> list[tuple[str, object]]:
    """(ink name, spec): every layout of every seed in every ink, then the signed pages."""
    out = []
    for seed in text_seeds:
        for layout in layouts:
            rng = random.Random(f"coloured/{seed}/{layout}")
            shape = dict(layout=layout, dpi=rng.choice((300, 300, 200)), degradation=rng.choice((1, 2, 3)),
                         skew_deg=round(rng.uniform(-3, 3), 2), orientation=rng.choice((0, 0, 0, 90, 180, 270)),
                         seed=seed)
            out += [(name, pagegen.PageSpec(**shape, ink=INKS[name])) for name in inks]
    for seed in range(30, 30 + signed):
        rng = random.Random(f"signed/{seed}")
        out.append(("signed", pagegen.PageSpec(layout="signed", dpi=rng.choice((300, 200)),
                                               degradation=rng.choice((1, 2, 3)), seed=seed)))
    return out


def black_marks(image, resolution: float):
    """The scan's dark border mask and its count of black marks, as the page stage makes them."""
    from ocr import cleanup, page as page_stage, quality

    border = cleanup.dark_border_mask(cleanup.to_gray(image), resolution)
    ink = cleanup.ink_gray_mask(image, resolution, border=border, gray=cleanup.ink_gray(image))
    if hasattr(page_stage, "black_text_marks"):
        return border, len(page_stage.black_text_marks(image, resolution, ink))
    return border, len(quality.mark_stats(cleanup.black_ink_mask(image, resolution, ink=ink), resolution))


def read_page(job: tuple[str, object]) -> dict:
    from PIL import Image

    from ocr import page as page_stage
    from pipeline.pages import ENGINES

    ink, spec = job
    page = pagegen.render_page(spec)
    scanned = io.BytesIO()
    page.image.save(scanned, "JPEG", quality=85)
    image = Image.open(io.BytesIO(scanned.getvalue()))
    image.load()
    row = {"ink": ink, "layout": spec.layout, "seed": spec.seed, "dpi": spec.dpi, "degradation": spec.degradation,
           "turn": spec.orientation}
    if hasattr(page_stage, "colour_text_gray"):  # the check alone, as process_page makes it
        resolution = float(spec.dpi)
        border, black = black_marks(image, resolution)
        started = time.process_time()  # what the check adds: the rest process_page makes anyway
        coloured = page_stage.colour_text_gray(image, resolution, black, border)
        row.update(checkSeconds=round(time.process_time() - started, 3), blackMarks=black,
                   readInColour=coloured is not None)
    result = page_stage.process_page(image, page.dpi, ENGINES["vote"]("vie", None))
    row.update(blank="blank" in result["flags"], turnFound=result["orientation"],
               **score_text(page.text, result["text"]))
    return row


def check_scan(path: Path) -> dict:
    from bench.realscans import load
    from ocr import cleanup, page as page_stage, quality

    image, dpi = load(path)
    resolution = float(dpi[0])
    border, black = black_marks(image, resolution)
    row = {"file": path.name, "mode": image.mode, "blackMarks": black}
    if image.mode == "RGB" and black < quality.FEW_BLACK_MARKS:
        gray = cleanup.colour_text_gray(image)
        ink, share = cleanup.unred_ink(image, resolution, gray, border)
        row.update(colouredShare=round(share, 3), unredMarks=len(quality.mark_stats(ink, resolution)))
    started = time.process_time()
    row["readInColour"] = page_stage.colour_text_gray(image, resolution, black, border) is not None
    row["checkSeconds"] = round(time.process_time() - started, 3)
    return row


def scans(directory: Path) -> int:
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(check_scan, files))
    for row in rows:
        print(json.dumps(row))
    looked = [r for r in rows if "colouredShare" in r]
    print(f"{directory}: {len(rows)} scans, {len(looked)} looked at again, "
          f"{sum(r['readInColour'] for r in rows)} read in colour; check CPU s on those looked at: median "
          f"{statistics.median(r['checkSeconds'] for r in looked) if looked else 0:.3f}")
    return 0


def summary(rows: list[dict]) -> list[str]:
    lines = [f"{'ink':<10} {'pages':>5} {'blank':>5} {'words found':>11} {'wrong turn':>10} {'read in colour':>14}"]
    for ink in (*INKS, "signed"):
        group = [r for r in rows if r["ink"] == ink]
        if not group:
            continue
        words = sum(r["words"] for r in group)
        found = f"{100 * sum(r['words_hit'] for r in group) / words:.2f} %" if words else "-"
        wrong = sum(r["turnFound"] != r["turn"] for r in group if not r["blank"])
        in_colour = sum(r.get("readInColour", False) for r in group) if "readInColour" in group[0] else "-"
        lines.append(f"{ink:<10} {len(group):>5} {sum(r['blank'] for r in group):>5} {found:>11} {wrong:>10} "
                     f"{in_colour:>14}")
    checks = [r["checkSeconds"] for r in rows if "checkSeconds" in r]
    from ocr.quality import FEW_BLACK_MARKS

    looked = [r["checkSeconds"] for r in rows if r.get("blackMarks", FEW_BLACK_MARKS) < FEW_BLACK_MARKS]
    if checks:
        lines.append(f"check for coloured text, CPU s: all pages median {statistics.median(checks):.3f}; "
                     f"pages looked at again ({len(looked)}) median "
                     f"{statistics.median(looked) if looked else 0:.3f}, largest {max(looked, default=0):.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=REPORT_SEEDS, help="seeds of the text pages, as 5,7,8,10-15")
    parser.add_argument("--signed", type=int, default=24, help="pages of only a signature and a seal")
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--inks", nargs="+", default=list(INKS), choices=list(INKS))
    parser.add_argument("--tree", type=Path, help="read the pages with the sources of this tree")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--rows", action="store_true", help="print one JSON line per page")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scans", type=Path, help="only the check, on the images of this folder")
    args = parser.parse_args(argv)
    if args.scans:
        return scans(args.scans)
    if args.tree:
        assert "ocr" not in sys.modules, "the page stage is imported when the pages are read, after this"
        sys.path.insert(0, str(args.tree.resolve()))  # the pool's processes are forked: they inherit it
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(read_page, page_specs(seeds(args.seeds), args.signed, args.layouts, args.inks)))
    if args.rows:
        for row in rows:
            print(json.dumps(row))
    print(f"tree {args.tree.resolve() if args.tree else ROOT}, seeds {args.seeds}")
    print("\n".join(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
