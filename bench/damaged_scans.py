"""Damaged scans: what Pillow decodes without a word, and what sohoa's intake check refuses.

    .venv/bin/python -m bench.damaged_scans                 # 300 damaged JPEG and 250 TIFF copies, seed 7
    .venv/bin/python -m bench.damaged_scans --copies 1000 --seed 11 --scans DIR   # another folder of scans

JPEG: the real JPEG scans are damaged as files are on the way from a scanner: bytes of the coded
data overwritten in the middle (random, random without 0xFF so that no marker appears, zeros: a
bad sector), random bytes over the end, or the file cut short. Each copy is decoded by Pillow (what
the page stage uses) and checked by ``pipeline.inputs.jpeg_damage`` (libjpeg-turbo, warnings as
errors).

TIFF: the first ten JPEG scans are saved as TIFF in five compressions (bitonal G4 at a threshold,
grey LZW, Deflate, PackBits, JPEG), the real TIFF scans are read as they are, and copies get random
bytes or zeros over the middle half of the file (where the strips are); each is decoded by Pillow
and checked by ``pipeline.inputs.tiff_damage`` (libtiff's ``tiffinfo -D``).

Prints JSON: the real scans refused (should be none), and per kind of damage how many copies each
caught. No choice in the code was tuned on these copies: the checks have no threshold.
"""
from __future__ import annotations

import argparse
import io
import json
import random
from collections import Counter
from pathlib import Path

from PIL import Image

from pipeline.inputs import jpeg_damage, tiff_damage

SCANS = Path(__file__).resolve().parent.parent / "tests" / "data" / "realscans"
JPEG_KINDS = ("random", "random-no-ff", "zeros", "noise-over-end", "cut")
TIFF_COMPRESSIONS = ("group4", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg")


def damaged_jpeg(data: bytes, kind: str, rng: random.Random) -> bytes:
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


def damaged_tiff(data: bytes, kind: str, rng: random.Random) -> bytes:
    out = bytearray(data)
    at, n = rng.randrange(len(out) // 4, len(out) * 3 // 4), rng.randrange(20, 1000)
    out[at:at + n] = bytes(rng.randrange(256) for _ in range(n)) if kind == "random" else bytes(n)
    return bytes(out)


def as_tiff(jpeg: bytes, compression: str) -> bytes:
    grey = Image.open(io.BytesIO(jpeg)).convert("L")
    page = grey.point(lambda v: 255 if v > 150 else 0).convert("1") if compression == "group4" else grey
    out = io.BytesIO()
    page.save(out, "TIFF", compression=compression, dpi=(300, 300))
    return out.getvalue()


def pillow_refuses(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            for frame in range(getattr(img, "n_frames", 1)):
                img.seek(frame)
                img.load()
        return False
    except Exception:  # noqa: BLE001 - any failure is a refusal here
        return True


def tiff_refused(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as img:
        frames = list(range(getattr(img, "n_frames", 1)))
    return tiff_damage(data, frames) is not None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=300, help="JPEG copies; TIFF: five sixths as many")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scans", type=Path, default=SCANS, help="a folder of *.jpg and *.tif scans (default: %(default)s)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    jpegs = {p.name: p.read_bytes() for p in sorted(args.scans.glob("*.jpg"))}
    tiffs = {p.name: p.read_bytes() for p in sorted(args.scans.glob("*.tif"))}

    caught = {f"jpeg {kind}": Counter() for kind in JPEG_KINDS}
    for _ in range(args.copies):
        kind = rng.choice(JPEG_KINDS)
        copy = damaged_jpeg(jpegs[rng.choice(sorted(jpegs))], kind, rng)
        caught[f"jpeg {kind}"].update(copies=1, pillow=pillow_refuses(copy), check=jpeg_damage(copy) is not None)

    made = {(name, c): as_tiff(jpegs[name], c) for n, name in enumerate(sorted(jpegs)[:10])
            for c in TIFF_COMPRESSIONS[n % 5:n % 5 + 1]}
    for _ in range(args.copies * 5 // 6):
        (name, compression), data = rng.choice(sorted(made.items()))
        kind = rng.choice(("random", "zeros"))
        copy = damaged_tiff(data, kind, rng)
        caught.setdefault(f"tiff {compression} {kind}", Counter()).update(
            copies=1, pillow=pillow_refuses(copy), check=tiff_refused(copy))

    refused = {name: why for name, data in jpegs.items() if (why := jpeg_damage(data))}
    refused |= {name: "tiff" for name, data in {**tiffs, **{f"{n} as {c}": d for (n, c), d in made.items()}}.items()
                if tiff_refused(data)}
    report = {"set": str(args.scans), "real_scans": {"jpeg": len(jpegs), "tiff": len(tiffs)},
              "made_tiffs": len(made), "undamaged_refused": refused, "seed": args.seed,
              "caught": {kind: dict(counts) for kind, counts in sorted(caught.items())}}
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
