"""Stacks fed sideways: every document of a folder of scans ingested with all its pages turned by
a quarter turn, and how each page of the stored PDF is shown.

    .venv/bin/python -m bench.sideways [DIR] [--turn 90] [--engine tesseract]

DIR: page images named ``<document>-p<N>.<ext>`` (default ``../shared/realscans`` beside the
project: 20 documents of one or two pages; without it, the part of it shipped in
``tests/data/realscans``, where 46-TB is the one document with a blank back page). ``--turn 90`` (or 180, 270; 0: as delivered)
turns every scan so (counter-clockwise, saved as lossless PNG, bitonal kept bitonal), as a
stack fed to the scanner that way; each document is then ingested with ``sohoa ingest`` (a
command of its own per document, the embedded default, a temporary SOHOA_HOME, unsigned, the
recogniser ``--engine``). Per page: the quarter turn the manifest records, whether it is
flagged blank, and whether the PDF shows it as the scan was delivered: the same shape (portrait
when the delivered scan is portrait) and the right way up (poppler's rendering at 20 dpi looks
more like the delivered scan than like it turned over: correlation of their darkness; on a back
page the only mark may be a seal showing through, off the centre). A blank page (no text: an
empty back page, or a seal) has no way up of its own and takes its turn from the nearest page
with text (``pipeline.sheets``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.pdf_drawing import fed_turned

ROOT = Path(__file__).resolve().parent.parent
KINDS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def documents(directory: Path) -> dict[str, list[Path]]:
    grouped = defaultdict(list)
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in KINDS and (m := re.fullmatch(r"(.+)-p(\d+)", path.stem)):
            grouped[m.group(1)].append((int(m.group(2)), path))
    return {name: [p for _, p in sorted(pages)] for name, pages in grouped.items()}


def fed(path: Path, turn: int, folder: Path) -> Path:
    """The scan as a scanner fed it turned by ``turn`` (the delivered file itself for 0)."""
    if not turn:
        return path
    out = folder / f"{path.stem}.png"
    out.write_bytes(fed_turned(path.read_bytes(), turn))
    return out


def ingest(name: str, pages: list[Path], turn: int, engine: str) -> list[dict]:
    from PIL import Image
    from pdf2image import convert_from_path

    with tempfile.TemporaryDirectory(prefix="sohoa-sideways-") as tmp:
        folder = Path(tmp)
        files = [fed(p, turn, folder) for p in pages]
        env = {**os.environ, "SOHOA_HOME": str(folder / "home"), "SOHOA_OCR_ENGINE": engine}
        code = "H23.50-261201-0001"
        run = subprocess.run([sys.executable, "-m", "api.cli", "ingest", "--dossier", code, "--title", name,
                              "--unsigned", "--json", *map(str, files)], env=env, capture_output=True, text=True,
                             cwd=ROOT)
        if run.returncode:
            return [{"document": name, "error": run.stderr.strip()[-300:]}]
        manifest = json.loads((folder / "home" / "store" / "dossiers" / code / "manifest.json").read_text())
        doc = manifest["documents"][0]
        shown = convert_from_path(folder / "home" / "store" / doc["pdf"]["key"], dpi=20, grayscale=True)
    rows = []
    for path, entry, page in zip(pages, doc["pages"], shown, strict=True):
        with Image.open(path) as delivered:
            same_shape = (page.height > page.width) == (delivered.height > delivered.width)
            upright = same_shape and likeness(page, delivered) > likeness(page, delivered.rotate(180))
        rows.append({"document": name, "file": path.name, "orientation": entry["orientation"],
                     "blank": "blank" in entry["flags"], "as_delivered": upright})
    return rows


def likeness(shown, scan) -> float:
    """Correlation of two pages' darkness at the size of ``shown``."""
    import numpy as np

    a = 255.0 - np.asarray(shown.convert("L"), float)
    b = 255.0 - np.asarray(scan.convert("L").resize(shown.size), float)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(1e-9, np.sqrt((a * a).sum() * (b * b).sum())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = ROOT.parent / "shared" / "realscans"
    ap.add_argument("directory", nargs="?", default=str(shared if shared.is_dir() else ROOT / "tests" / "data" / "realscans"))
    ap.add_argument("--turn", type=int, choices=(0, 90, 180, 270), default=90)
    ap.add_argument("--engine", default="tesseract", choices=("tesseract", "vote", "trueocr"))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for name, pages in documents(Path(args.directory)).items():
        for r in ingest(name, pages, args.turn, args.engine):
            rows.append(r)
            if "error" in r:
                print(f"{r['document']:<32} ERROR {r['error']}")
            else:
                print(f"{r['file']:<36} turn {r['orientation']:>3}  {'blank' if r['blank'] else 'text ':<5}  "
                      f"{'as delivered' if r['as_delivered'] else 'NOT AS DELIVERED'}")
    done = [r for r in rows if "error" not in r]
    blank = [r for r in done if r["blank"]]
    print(f"\n--turn {args.turn}: {len(done)} pages of {len(set(r['document'] for r in rows))} documents, "
          f"{sum(r['as_delivered'] for r in done)} shown as delivered; blank pages {len(blank)}, "
          f"{sum(r['as_delivered'] for r in blank)} of them as delivered")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if len(done) < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
