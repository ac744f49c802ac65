"""Where the PDF draws each page: every scan of a folder through the page stage, its page built
as sohoa's PDF builds it (the scan as scanned, turned and clipped by its placement) and rendered
by poppler, against the page stage's own picture of that page (``ocr.page.archive_image``, the
pixels its words' boxes are in).

    .venv/bin/python -m bench.pdf_drawing [DIR] [--jobs 2] [--turn 90]

DIR: page images (default ``../shared/realscans`` beside the project; tests/data/realscans holds
part of it). ``--turn 90`` (or 180, 270) first turns every scan so (counter-clockwise, saved as
lossless PNG, bitonal kept bitonal), as a page fed sideways or upside down. Each scan is read with tesseract alone (only the placement matters here, and it does
not depend on the recogniser's words). Per page: the resolution, quarter turn and skew undone,
whether it is placed (drawn turned or clipped), and the share of the page stage's dark pixels
(< 128 of 255 in grey) with a dark pixel of poppler's rendering within one pixel (``covered``),
and the reverse share of poppler's dark pixels with nothing of the page stage's near
(``extra``). A wrong turn, centre, clip or resolution shows as covered well under 1 and extra
above 0. Unplaced pages differ only where two decoders turn colour into grey differently (a
red seal near level 128).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
KINDS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}


def rendered_dark(pdf: Path, dpi: tuple[float, float]):
    """Page 1 of ``pdf`` as poppler renders it at ``dpi`` in grey: where it is dark (< 128)."""
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shown"
        subprocess.run(["pdftoppm", "-gray", "-rx", str(dpi[0]), "-ry", str(dpi[1]), "-singlefile", "-f", "1",
                        "-l", "1", str(pdf), str(out)], check=True)
        return np.asarray(Image.open(out.with_suffix(".pgm"))) < 128


def agreement(expected, shown) -> tuple[float, float]:
    """(covered, extra) of two dark masks of one page (see the module docstring), over the part
    both cover (a rendering may be a pixel wider or taller, by rounding the page size)."""
    import cv2
    import numpy as np

    h, w = min(shown.shape[0], expected.shape[0]), min(shown.shape[1], expected.shape[1])
    shown, expected = shown[:h, :w], expected[:h, :w]
    kernel = np.ones((3, 3), np.uint8)
    near_shown = cv2.dilate(shown.astype(np.uint8), kernel).astype(bool)
    near_expected = cv2.dilate(expected.astype(np.uint8), kernel).astype(bool)
    return (float((expected & near_shown).sum() / max(1, expected.sum())),
            float((shown & ~near_expected).sum() / max(1, shown.sum())))


def fed_turned(data: bytes, turn: int) -> bytes:
    """A scan as a scanner fed it turned counter-clockwise by ``turn`` (90, 180, 270): lossless
    PNG (bitonal kept bitonal), its two resolutions swapped when it lies on its side."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as scan:
        buf = io.BytesIO()
        dpi = scan.info.get("dpi", (300, 300))
        scan.rotate(turn, expand=True).save(buf, "PNG", dpi=dpi[::-1] if turn % 180 else dpi)
    return buf.getvalue()


def drawn(path: Path, turn: int = 0) -> dict:
    """One scan's page through the page stage and the PDF, compared (see the module docstring)."""
    import numpy as np
    from PIL import Image

    from ocr.page import Placement, archive_image
    from pipeline.models import PageTask
    from pipeline.pages import PageCache, run_page
    from pipeline.pdfa import DocumentMeta, PageRender, build_pdfa
    from storage.local import LocalStore

    data, kind = path.read_bytes(), KINDS[path.suffix.lower()]
    if turn:
        data, kind = fed_turned(data, turn), "png"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = LocalStore(folder / "store")
        store.put("originals/scan", data)
        task = PageTask(key="originals/scan", file=path.name, kind=kind,
                        sha256=hashlib.sha256(data).hexdigest(), page=1, engine="tesseract")
        cache = PageCache(store)
        result = run_page(task, cache)
        if result.error:
            return {"file": path.name, "error": result.error}
        image = cache.image(result.image_key)
        placement = Placement.from_json(result.placement) if result.placement else None
        pdf = build_pdfa([PageRender(image, result.encoding, result.width, result.height, result.dpi,
                                     result.color_mode, [], placement)],
                         DocumentMeta("bench", "bench", "H23.50-261201-0001", datetime(2026, 1, 1)))
        (folder / "p.pdf").write_bytes(pdf)
        shown = rendered_dark(folder / "p.pdf", result.dpi)
    if result.encoding == "jpeg":
        turned = Image.open(io.BytesIO(image))
    else:
        turned = Image.frombytes("1", (result.width, result.height), zlib.decompress(image))
    expected = np.asarray(archive_image(turned, placement).convert("L")) < 128
    covered, extra = agreement(expected, shown)
    return {"file": path.name, "mode": result.color_mode, "dpi": [round(v, 2) for v in result.dpi],
            "orientation": result.orientation, "skew_deg": result.skew_deg, "placed": placement is not None,
            "size": [list(shown.shape), list(expected.shape)], "dark": int(expected.sum()),
            "covered": round(covered, 4), "extra": round(extra, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default=str(ROOT.parent / "shared" / "realscans"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--turn", type=int, choices=(0, 90, 180, 270), default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    scans = sorted(p for p in Path(args.directory).iterdir() if p.suffix.lower() in KINDS)
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(drawn, scans, [args.turn] * len(scans)))
    for r in rows:
        if "error" in r:
            print(f"{r['file']:<36} ERROR {r['error']}")
            continue
        print(f"{r['file']:<36} {r['mode']:<8} {r['dpi'][0]:>7} dpi  turn {r['orientation']:>3}  "
              f"skew {r['skew_deg']:>7.3f}  {'placed' if r['placed'] else 'as is ':<6}  "
              f"covered {r['covered']:.4f}  extra {r['extra']:.4f}")
    placed = [r for r in rows if r.get("placed")]
    if placed:
        print(f"\n{len(rows)} pages, {len(placed)} placed: covered min {min(r['covered'] for r in placed):.4f}, "
              f"extra max {max(r['extra'] for r in placed):.4f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
