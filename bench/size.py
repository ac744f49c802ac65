"""Bytes per page of sohoa's archive page image, encoding by encoding, against OCRmyPDF.

    .venv/bin/python -m bench.size                          # pagegen pages (+ 4 real scans when ../shared has them)
    .venv/bin/python -m bench.size --json size.json --realscans 0 --no-ocrmypdf
    .venv/bin/python -m bench.size --layouts admin --kinds colour grey --realscans 1   # a quick look

Pages: tests/pagegen.py pages (text, administrative layout with a red seal, ruled table) as a
scanner hands them over: colour 300 dpi and grey 200 dpi as JPEG (quality 90), bitonal 300 dpi
as CCITT G4 TIFF, each skewed a little; optionally real scans (``--realscans N`` of the folder
``--realscan-dir``; the bench runs without them). Every page goes through sohoa's loader and
``ocr.page.process_page`` (tesseract), which gives the page image (the scan, its quarter turn
undone) and how the PDF places it; the candidates are measured on the page as shown
(``ocr.page.archive_image``: turned, deskewed, same pixel size as the scan), as sohoa encoded it
before issue 17's ninth pass, when it resampled the page:

  bytes         the encoded image;
  psnr, ssim    the decoded image against the archive image on the same pixels (SSIM over the
                colour channels for colour pages: a seal that loses its red shows);
  words_found   share of pagegen's truth words tesseract reads on the decoded image (bag of words);
  words_kept    share of the words read on the unencoded archive image read again (real scans,
                which have no truth, are judged by this).

``sohoa_pdf`` is the whole one-page PDF/A that pipeline.pdfa builds with the default encoding
(image, text layer, font, metadata; the signature adds about 10-30 kB per document, not per
page). ``ocrmypdf`` is the PDF OCRmyPDF writes for the same scan file with
``ocrmypdf -l vie --deskew --rotate-pages --output-type pdfa-2 -j 2`` and the words its own text
layer holds. ``passthrough`` says whether the stored page image is the scanner's own JPEG, kept
as it is (a page that needed no quarter turn, whose JPEG is no larger than sohoa's encoding).

``compare_sizes(...)`` returns the report as a dict (rows and a summary by kind) for other
benchmarks to call.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from bench.run import ocrmypdf_command, pagegen, score_text  # noqa: E402

REALSCANS = ROOT.parent / "shared" / "realscans"
# kind: (pagegen colour, dpi, scan file format)
KINDS = {"colour": ("rgb", 300, "jpeg"), "grey": ("gray", 200, "jpeg"), "bitonal": ("bitonal", 300, "tiff")}
LAYOUTS = ("text", "admin", "table")
SCANNER_JPEG_QUALITY = 90


# ---------------------------------------------------------------- candidate encodings

def _jpeg(img, quality: int, subsampling: int | None, progressive: bool = True) -> bytes:
    from PIL import ImageFile
    buf = io.BytesIO()
    extra = {} if subsampling is None else {"subsampling": subsampling}
    previous, ImageFile.MAXBLOCK = ImageFile.MAXBLOCK, max(ImageFile.MAXBLOCK, 3 * img.width * img.height + 65536)
    try:
        img.save(buf, "JPEG", quality=quality, optimize=True, progressive=progressive, **extra)
    finally:
        ImageFile.MAXBLOCK = previous
    return buf.getvalue()


def _jpx(img, db: float) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG2000", quality_mode="dB", quality_layers=[db], irreversible=True, mct=int(img.mode == "RGB"))
    return buf.getvalue()


def _g4(img) -> bytes:
    """The CCITT G4 data of a bitonal image (one strip), what a CCITTFaxDecode stream would hold."""
    from PIL import Image
    buf = io.BytesIO()
    img.save(buf, "TIFF", compression="group4", tiffinfo={278: img.height})
    tiff = Image.open(io.BytesIO(buf.getvalue()))
    (offset,), (count,) = tuple(tiff.tag_v2[273]), tuple(tiff.tag_v2[279])
    return buf.getvalue()[offset:offset + count]


def _default(img) -> bytes:
    from pipeline.config import OcrSettings
    from pipeline.pages import encode_image
    return encode_image(img, OcrSettings().jpeg_quality)[0]


def _stored(found: dict, fmt: str, data: bytes) -> tuple[bytes, str, str]:
    """What the page stage stores for this page (pipeline.pages.page_image, the settings' quality)."""
    from pipeline.config import OcrSettings
    from pipeline.pages import page_image
    return page_image(found, fmt, data, OcrSettings().jpeg_quality)


# name: (kinds it applies to, encoder, read back by tesseract): "before" is the encoding sohoa
# used until issue 17; OCRmyPDF 17 writes its page as a baseline optimised JPEG, quality 75, 4:2:0;
# JPEG 2000 is measured for reference only (pikepdf's PDF/A validator does not approve JPXDecode)
CANDIDATES = {
    "before:jpeg-q90-444": (("colour", "grey"), lambda img: _jpeg(img, 90, 0, progressive=False), True),
    "jpeg-q80-420": (("colour", "grey"), lambda img: _jpeg(img, 80, 2), False),
    "jpeg-q75-420": (("colour", "grey"), lambda img: _jpeg(img, 75, 2), True),
    "jpeg-q70-420": (("colour", "grey"), lambda img: _jpeg(img, 70, 2), True),
    "ocrmypdf-like:jpeg-q75-420-baseline": (("colour", "grey"), lambda img: _jpeg(img, 75, 2, progressive=False), True),
    "jpx-38dB": (("colour", "grey"), lambda img: _jpx(img, 38.0), True),
    "default": (("colour", "grey", "bitonal"), _default, True),
    "ccitt-g4": (("bitonal",), _g4, False),
}


# ---------------------------------------------------------------- measures

def psnr_ssim(reference, decoded) -> tuple[float, float]:
    import numpy as np
    from skimage.metrics import structural_similarity
    a, b = np.asarray(reference), np.asarray(decoded)
    if a.dtype == bool or b.dtype == bool:
        a, b = a.astype(np.uint8) * 255, b.astype(np.uint8) * 255
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    ssim = structural_similarity(a, b, data_range=255, channel_axis=2 if a.ndim == 3 else None)
    return round(psnr, 2), round(float(ssim), 4)


def read_words(img) -> str:
    import pytesseract
    return pytesseract.image_to_string(img.convert("L") if img.mode == "1" else img, lang="vie")


def share(truth: str, hypothesis: str) -> float | None:
    s = score_text(truth, hypothesis)
    return round(s["words_hit"] / s["words"], 4) if s["words"] else None


def decode(data: bytes, encoding: str, like):
    from PIL import Image
    if encoding == "flate1":
        import zlib
        return Image.frombytes("1", like.size, zlib.decompress(data))
    return Image.open(io.BytesIO(data)).convert(like.mode)


# ---------------------------------------------------------------- pages

def pagegen_pages(seed: int, layouts=LAYOUTS, kinds=tuple(KINDS)) -> list[dict]:
    rng = random.Random(seed)
    pages = []
    for kind, (color, dpi, fmt) in KINDS.items():
        for i, layout in enumerate(LAYOUTS):
            if kind not in kinds or layout not in layouts:
                continue
            skew = round(rng.choice((-1, 1)) * rng.uniform(0.4, 3.0), 2)
            spec = pagegen.PageSpec(layout=layout, dpi=dpi, skew_deg=skew, degradation=1, color=color,
                                    seed=seed * 100 + 10 * len(pages) + i)
            pages.append({"source": "pagegen", "kind": kind, "layout": layout, "spec": spec, "format": fmt})
    return pages


def realscan_pages(folder: Path, count: int) -> list[dict]:
    """``count`` real scans, JPEG and TIFF alternately, in name order (a fixed set)."""
    if count <= 0 or not folder.is_dir():
        return []
    jpegs, tiffs = sorted(folder.glob("*.jpg")), sorted(folder.glob("*.tif"))
    chosen = []
    while len(chosen) < count and (jpegs or tiffs):
        for group in (jpegs, jpegs, tiffs):  # two colour pages for every bitonal one
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return [{"source": "realscan", "path": str(p), "layout": p.stem, "format": "jpeg" if p.suffix == ".jpg" else "tiff"}
            for p in chosen]


def scan_file(page: dict) -> tuple[bytes, str | None]:
    """(the scan file's bytes as the scanner wrote them, the truth text or None)."""
    if page["source"] == "realscan":
        return Path(page["path"]).read_bytes(), None
    rendered = pagegen.render_page(page["spec"])
    buf = io.BytesIO()
    dpi = rendered.dpi
    if page["format"] == "jpeg":
        rendered.image.save(buf, "JPEG", quality=SCANNER_JPEG_QUALITY, dpi=dpi)
    else:
        rendered.image.save(buf, "TIFF", compression="group4", dpi=dpi)
    return buf.getvalue(), rendered.text


def run_ocrmypdf(data: bytes, fmt: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / f"scan.{'jpg' if fmt == 'jpeg' else 'tif'}", Path(tmp) / "out.pdf"
        source.write_bytes(data)
        done = subprocess.run([ocrmypdf_command(), "-l", "vie", "--deskew", "--rotate-pages", "--output-type", "pdfa-2",
                               "-j", "2", str(source), str(output)], capture_output=True, text=True)
        if done.returncode != 0 or not output.exists():
            return {"failed": done.stderr[-500:]}
        text = subprocess.run(["pdftotext", "-raw", str(output), "-"], capture_output=True, text=True).stdout
        images = subprocess.run(["pdfimages", "-list", str(output)], capture_output=True, text=True).stdout.splitlines()[2:]
        return {"pdf_bytes": output.stat().st_size, "text": text,
                "image": " ".join(images[0].split()[8:9]) if images else None}


def measure_page(page: dict, with_ocrmypdf: bool) -> dict:
    from ocr.page import archive_image, process_page
    from ocr.recognise import TesseractEngine
    from pipeline.inputs import load_page
    from pipeline.pages import encode_image
    from pipeline.config import OcrSettings
    from pipeline.pdfa import DocumentMeta, PageRender, build_pdfa
    data, truth = scan_file(page)
    kind_name = page.get("kind")
    image, stated = load_page("scan", page["format"], data, 1, 150_000_000)
    dpi = stated or (300, 300)
    if kind_name is None:
        kind_name = "bitonal" if image.mode == "1" else "grey" if image.mode == "L" else "colour"
    found = process_page(image, dpi, TesseractEngine("vie"))
    archive = archive_image(found["image"], found["placement"])  # the page as shown
    stored, stored_encoding, stored_mode = _stored(found, page["format"], data)
    passthrough = stored == data
    reference = read_words(archive)
    readings: dict[bytes, str] = {}  # decoded pixels -> words read: progressive or not, the same pixels read the same
    row = {"source": page["source"], "kind": kind_name, "layout": page["layout"], "pixels": list(archive.size),
           "dpi": list(dpi), "scan_bytes": len(data), "skew_deg": found["skew_deg"],
           "orientation": found["orientation"], "passthrough": bool(passthrough),
           "words_found_unencoded": share(truth, reference) if truth else None, "candidates": {}}
    for name, (kinds, encoder, read) in CANDIDATES.items():
        if kind_name not in kinds:
            continue
        start = time.process_time()
        encoded = encoder(archive)
        seconds = time.process_time() - start
        encoding = "g4" if name == "ccitt-g4" else encode_image(archive, OcrSettings().jpeg_quality)[1] \
            if name == "default" else "pillow"
        if encoding == "g4":
            row["candidates"][name] = {"bytes": len(encoded), "lossless": True, "cpu_s": round(seconds, 2)}
            continue
        decoded = decode(encoded, encoding, archive)
        psnr, ssim = psnr_ssim(archive, decoded)
        entry = {"bytes": len(encoded), "psnr": psnr, "ssim": ssim, "cpu_s": round(seconds, 2)}
        if math.isinf(psnr):
            entry.update(words_kept=1.0, words_found=row["words_found_unencoded"])
        elif read:
            digest = hashlib.sha256(decoded.tobytes()).digest()
            text = readings[digest] if digest in readings else readings.setdefault(digest, read_words(decoded))
            entry.update(words_kept=share(reference, text), words_found=share(truth, text) if truth else None)
        row["candidates"][name] = entry
    pdf = build_pdfa([PageRender(stored, stored_encoding, archive.width, archive.height, tuple(dpi), stored_mode, found["words"],
                                 found["placement"])],
                     DocumentMeta("bench", "bench", "bench", datetime(2025, 1, 1, tzinfo=timezone.utc)))
    row["sohoa_pdf_bytes"] = len(pdf)
    row["sohoa_image_bytes"] = len(stored)
    row["sohoa_words_found"] = share(truth, found["text"]) if truth else None
    if with_ocrmypdf:
        theirs = run_ocrmypdf(data, page["format"])
        if "text" in theirs:
            text = theirs.pop("text")
            theirs["words_found"] = share(truth, text) if truth else None
            theirs["words_kept"] = share(reference, text)
        row["ocrmypdf"] = theirs
    return row


# ---------------------------------------------------------------- report

def summarise(rows: list[dict]) -> dict:
    summary: dict = {}
    for kind in KINDS:
        for source in ("pagegen", "realscan"):
            chosen = [r for r in rows if r["kind"] == kind and r["source"] == source]
            if not chosen:
                continue
            s: dict = {"pages": len(chosen), "scan_bytes": _mean(r["scan_bytes"] for r in chosen),
                       "sohoa_pdf_bytes": _mean(r["sohoa_pdf_bytes"] for r in chosen),
                       "passthrough_pages": sum(r["passthrough"] for r in chosen), "candidates": {}}
            if any("ocrmypdf" in r and "pdf_bytes" in r["ocrmypdf"] for r in chosen):
                done = [r["ocrmypdf"] for r in chosen if "pdf_bytes" in r.get("ocrmypdf", {})]
                s["ocrmypdf"] = {"pages": len(done), "pdf_bytes": _mean(o["pdf_bytes"] for o in done),
                                 "words_found": _mean(o.get("words_found") for o in done),
                                 "words_kept": _mean(o.get("words_kept") for o in done)}
            s["words_found_unencoded"] = _mean(r["words_found_unencoded"] for r in chosen)
            s["sohoa_words_found"] = _mean(r["sohoa_words_found"] for r in chosen)
            for name in CANDIDATES:
                entries = [r["candidates"][name] for r in chosen if name in r["candidates"]]
                if entries:
                    s["candidates"][name] = {
                        "bytes": _mean(e["bytes"] for e in entries),
                        "psnr_min": min((e["psnr"] for e in entries if "psnr" in e), default=None),
                        "ssim_min": min((e["ssim"] for e in entries if "ssim" in e), default=None),
                        "ssim_mean": _mean(e.get("ssim") for e in entries),
                        "words_found": _mean(e.get("words_found") for e in entries),
                        "words_kept": _mean(e.get("words_kept") for e in entries),
                        "cpu_s": _mean(e["cpu_s"] for e in entries)}
            summary[f"{kind}/{source}"] = s
    return summary


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isinf(v))]
    return round(sum(values) / len(values), 4) if values else None


def compare_sizes(seed: int = 11, realscans: int = 4, realscan_dir: Path | None = None, ocrmypdf: bool = True,
                  jobs: int = 2, layouts=LAYOUTS, kinds=tuple(KINDS), progress=None) -> dict:
    """The size bench as a dict: {"rows": [...], "summary": {"<kind>/<source>": {...}}};
    ``progress(row)`` is called with every page's row as it is done."""
    pages = pagegen_pages(seed, layouts, kinds) + realscan_pages(realscan_dir or REALSCANS, realscans)
    with_ocrmypdf = ocrmypdf and ocrmypdf_command() is not None
    if ocrmypdf and not with_ocrmypdf:
        print("ocrmypdf not found: pip install ocrmypdf (the bench extra)", file=sys.stderr)
    rows = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for row in pool.map(measure_page, pages, [with_ocrmypdf] * len(pages)):
            rows.append(row)
            if progress:
                progress(row)
    return {"rows": rows, "summary": summarise(rows), "ocrmypdf": with_ocrmypdf,
            "scanner_jpeg_quality": SCANNER_JPEG_QUALITY}


def print_report(report: dict) -> None:
    for group, s in report["summary"].items():
        print(f"\n{group}: {s['pages']} pages; scan file {s['scan_bytes'] / 1e6:.3f} MB/page; sohoa PDF "
              f"{s['sohoa_pdf_bytes'] / 1e6:.3f} MB/page; passthrough possible on {s['passthrough_pages']}; "
              f"words found unencoded {s['words_found_unencoded']}, by sohoa's OCR {s['sohoa_words_found']}")
        if "ocrmypdf" in s:
            o = s["ocrmypdf"]
            print(f"  {'ocrmypdf (whole PDF)':<38}{o['pdf_bytes'] / 1e6:>8.3f} MB  words found {o['words_found']}  "
                  f"kept {o['words_kept']}")
        for name, c in s["candidates"].items():
            print(f"  {name:<38}{c['bytes'] / 1e6:>8.3f} MB  psnr_min {c['psnr_min']}  ssim_min {c['ssim_min']}  "
                  f"ssim_mean {c['ssim_mean']}  words found {c['words_found']}  kept {c['words_kept']}  "
                  f"cpu {c['cpu_s']} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--realscans", type=int, default=4, help="how many real scans (0: none)")
    parser.add_argument("--realscan-dir", type=Path, default=REALSCANS)
    parser.add_argument("--no-ocrmypdf", action="store_true")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--json", type=Path, help="write every row and the summary here")
    args = parser.parse_args(argv)
    report = compare_sizes(args.seed, args.realscans, args.realscan_dir, not args.no_ocrmypdf, args.jobs,
                           tuple(args.layouts), tuple(args.kinds),
                           lambda row: print(json.dumps(row, ensure_ascii=False, default=str), file=sys.stderr, flush=True))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
