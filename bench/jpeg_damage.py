"""Damaged JPEG scans: what Pillow decodes without a word, and what sohoa's check refuses.

    .venv/bin/python -m bench.jpeg_damage                  # 300 damaged copies of the real scans, seed 7
    .venv/bin/python -m bench.jpeg_damage --copies 1000 --seed 11 --scans DIR   # another folder of JPEG scans

The real JPEG scans (tests/data/realscans) are read as they are, then damaged as files are on
the way from a scanner: bytes of the coded data overwritten in the middle (random, random
without 0xFF so that no marker appears, zeros: a bad sector), random bytes over the end, or the
file cut short. Each copy is decoded by Pillow (what the page stage uses) and checked by
``pipeline.inputs.jpeg_damage`` (libjpeg-turbo, warnings as errors). Prints JSON: the real scans
refused (should be none), and per kind of damage how many copies each caught. No choice in the
code was tuned on these copies: the check has no threshold.
"""
from __future__ import annotations

import argparse
import io
import json
import random
from collections import Counter
from pathlib import Path

from PIL import Image

from pipeline.inputs import jpeg_damage

SCANS = Path(__file__).resolve().parent.parent / "tests" / "data" / "realscans"
KINDS = ("random", "random-no-ff", "zeros", "noise-over-end", "cut")


def damaged(data: bytes, kind: str, rng: random.Random) -> bytes:
    start = data.index(b"\xff\xda") + 20  # past the scan header, into the coded data
    out = bytearray(data)
    if kind == "cut":
        return data[:rng.randrange(start, len(data) - 2)]
    if kind == "noise-over-end":
        n = rng.randrange(100, 20000)
        out[len(out) - n - 2:len(out) - 2] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(out)
    at, n = rng.randrange(start, len(data) - 2000), rng.randrange(10, 2000)
    top = {"random": 256, "random-no-ff": 255, "zeros": 1}[kind]
    out[at:at + n] = bytes(rng.randrange(top) for _ in range(n))
    return bytes(out)


def pillow_reads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
        return True
    except Exception:  # noqa: BLE001 - any failure is a refusal here
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scans", type=Path, default=SCANS, help="a folder of *.jpg scans (default: %(default)s)")
    args = parser.parse_args(argv)
    scans = sorted(args.scans.glob("*.jpg"))
    originals = {p.name: p.read_bytes() for p in scans}
    refused = {name: why for name, data in originals.items() if (why := jpeg_damage(data))}
    rng = random.Random(args.seed)
    caught = {kind: Counter() for kind in KINDS}
    for _ in range(args.copies):
        kind = rng.choice(KINDS)
        copy = damaged(originals[rng.choice(sorted(originals))], kind, rng)
        pillow, check = not pillow_reads(copy), jpeg_damage(copy) is not None
        caught[kind].update(copies=1, pillow=pillow, check=check, either=pillow or check)
    report = {"set": str(args.scans), "real_scans": len(originals),
              "real_scans_refused": refused, "copies": args.copies, "seed": args.seed,
              "caught": {kind: dict(counts) for kind, counts in caught.items()},
              "total": dict(sum(caught.values(), Counter()))}
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
