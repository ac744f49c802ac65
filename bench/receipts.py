"""Read rate and speed of the receipt QR reader (``ocr.receipt.read_qr_codes``).

    .venv/bin/python -m bench.receipts               # 40 receipts, 12 pages without QR, 6 destroyed: ~1 minute
    .venv/bin/python -m bench.receipts --count 200 --seed 3 --json out.json

Receipts are rendered by tests/receiptgen.py with, drawn at random per page: skew 0-10 degrees
either way, Gaussian blur sigma 0-1.5 px (at 300 dpi), a sticky note or red stamp over 0-15 % of
the symbol, 200 or 300 dpi (alternately), symbol side 16-25 mm, JPEG quality 50-90, one page in
eight upside down, one in four holding a URL with the code instead of the bare code, one in five
a grey and one in five a 1-bit (bitonal) scan.  Pages
without a QR code are tests/pagegen.py's admin, text, table and seal pages at 200 and 300 dpi;
they must read as nothing. Destroyed symbols must read as one unreadable symbol.

Printed: read rate (the right payload and nothing else), failures with their parameters, false
findings on pages without QR, and median / 90th percentile / worst seconds per page for each
kind. Only ``read_qr_codes`` is timed, not the rendering.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocr.receipt import read_qr_codes  # noqa: E402
from tests.receiptgen import CORNERS, ReceiptSpec, ordinary_page, render_receipt  # noqa: E402

AGENCIES = ["H15.50.05.13", "000.00.12.H42", "G12.24", "H40.100.22.1", "000.23.40.H56"]


def receipt_specs(count: int, seed: int) -> list[ReceiptSpec]:
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        code = f"{rng.choice(AGENCIES)}-26{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{rng.randint(1, 9999):04d}"
        payload = (f"https://dichvucong.gov.vn/p/home/dvc-tra-cuu-ho-so.html?ma={code}" if i % 4 == 3 else None)
        specs.append(ReceiptSpec(
            code=code, payload=payload, dpi=(200, 300)[i % 2], qr_mm=round(rng.uniform(16, 25), 1),
            corner=rng.choice(CORNERS), skew_deg=round(rng.choice((-1, 1)) * rng.uniform(0, 10), 2),
            orientation=180 if i % 8 == 5 else 0, blur_sigma=round(rng.uniform(0, 1.5), 2),
            cover=round(rng.uniform(0, 0.15), 3), cover_kind=("note", "stamp")[i % 3 == 2],
            jpeg_quality=rng.randint(50, 90), noise=rng.choice((1, 1, 2)),
            color=("rgb", "rgb", "rgb", "gray", "bitonal")[i % 5], seed=seed * 1000 + i))
    return specs


def timed(image):
    start = time.perf_counter()
    reading = read_qr_codes(image)
    return reading, time.perf_counter() - start


def summary(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.3f} s, p90 {p90:.3f} s, worst {ordered[-1]:.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="receipts (default 40)")
    parser.add_argument("--plain", type=int, default=12, help="pages without QR code (default 12)")
    parser.add_argument("--destroyed", type=int, default=6, help="receipts with a destroyed symbol (default 6)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every page's result here")
    args = parser.parse_args(argv)

    rows, read_ok, failures = [], 0, []
    by_dpi: dict[int, list[float]] = {200: [], 300: []}
    for spec in receipt_specs(args.count, args.seed):
        reading, seconds = timed(render_receipt(spec))
        expected = spec.payload or spec.code
        ok = reading.texts == (expected,) and reading.unreadable == 0
        read_ok += ok
        by_dpi[spec.dpi].append(seconds)
        rows.append({"kind": "receipt", "ok": ok, "seconds": seconds, "reading": reading.to_json(),
                     "spec": asdict(spec)})
        if not ok:
            failures.append((spec, reading))

    plain_seconds, false_findings = [], []
    layouts = ("admin", "text", "table", "seal")
    for i in range(args.plain):
        dpi, layout = (200, 300)[i % 2], layouts[(i // 2) % len(layouts)]
        image = ordinary_page(seed=args.seed * 1000 + 500 + i, dpi=dpi, layout=layout, max_body_lines=None,
                              skew_deg=random.Random(i).uniform(-3, 3))
        reading, seconds = timed(image)
        plain_seconds.append(seconds)
        rows.append({"kind": "plain", "ok": not reading.found, "seconds": seconds, "reading": reading.to_json(),
                     "spec": {"layout": layout, "dpi": dpi}})
        if reading.found:
            false_findings.append((layout, dpi, reading))

    destroyed_seconds, destroyed_ok = [], 0
    for i, spec in enumerate(receipt_specs(args.destroyed, args.seed + 100)):
        spec = ReceiptSpec(**{**asdict(spec), "destroyed": True, "cover": 0.0, "payload": None})
        reading, seconds = timed(render_receipt(spec))
        destroyed_seconds.append(seconds)
        destroyed_ok += reading.texts == () and reading.unreadable == 1
        rows.append({"kind": "destroyed", "ok": reading.unreadable == 1 and not reading.texts, "seconds": seconds,
                     "reading": reading.to_json(), "spec": asdict(spec)})

    n = args.count
    print(f"receipts read:            {read_ok}/{n} ({100 * read_ok / max(n, 1):.1f} %)")
    print(f"  200 dpi: {summary(by_dpi[200])}")
    print(f"  300 dpi: {summary(by_dpi[300])}")
    print(f"pages without QR:         {args.plain - len(false_findings)}/{args.plain} read as nothing; "
          f"{summary(plain_seconds)}")
    print(f"destroyed symbols:        {destroyed_ok}/{args.destroyed} reported unreadable; "
          f"{summary(destroyed_seconds)}")
    for spec, reading in failures:
        print(f"  MISSED {spec.code} dpi={spec.dpi} qr={spec.qr_mm}mm skew={spec.skew_deg} blur={spec.blur_sigma} "
              f"cover={spec.cover}({spec.cover_kind}) turn={spec.orientation} url={spec.payload is not None} "
              f"color={spec.color} "
              f"-> {reading}")
    for layout, dpi, reading in false_findings:
        print(f"  FALSE FINDING on a {layout} page at {dpi} dpi: {reading}")
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
