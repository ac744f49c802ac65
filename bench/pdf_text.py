"""What reaches the PDF: the words of the stored OCR text against the words extracted from the
signed PDF, and the physical page size, on scans you bring (real ones by default).

    .venv/bin/python -m bench.pdf_text [DIR] [--home H] [--part tune|report|all] [--rebuild]

DIR holds page images named ``<document>-p<page>.<ext>`` (the layout of the shared real-scan
set; default ``../shared/realscans`` beside the project). Each document is ingested once into
``--home`` (kept, so a second run reuses the stored OCR); ``--part`` takes every other document
in name order (``tune``: 1st, 3rd, ...; ``report``: 2nd, 4th, ...), so choices made on one half
are reported on the other. ``--rebuild`` rebuilds each stored document's PDF from its stored
words with the current code instead of reading the signed PDF (to compare text-layer code on
the same OCR; a deskewed page is drawn as its manifest's ``placement`` says: a document stored
by the builds between e643557 and 16a4a4e has none, and its deskewed pages come out unturned).
Prints per document: OCR words, the share of them found through ``pdftotext`` (default and
``-raw``) and ``pdfminer.six`` when installed, and the page sizes in mm.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> collections.Counter:
    return collections.Counter(w.lower() for w in WORD.findall(unicodedata.normalize("NFC", text)))


def found_share(truth: collections.Counter, got: collections.Counter) -> float:
    total = sum(truth.values())
    return sum(min(n, got[w]) for w, n in truth.items()) / total if total else 1.0


def pdftotext(pdf: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        return subprocess.run(["pdftotext", *flags, f.name, "-"], capture_output=True, check=True).stdout.decode()


def pdfminer_text(pdf: bytes) -> str | None:
    try:
        from pdfminer.high_level import extract_text
    except ImportError:
        return None
    return extract_text(io.BytesIO(pdf))


def documents(directory: Path, part: str) -> list[tuple[str, list[Path]]]:
    groups: dict[str, list[Path]] = collections.defaultdict(list)
    for path in sorted(directory.iterdir()):
        m = re.fullmatch(r"(.+)-p(\d+)\.(jpe?g|png|tiff?|pdf)", path.name, re.I)
        if m:
            groups[m[1]].append(path)
    names = list(enumerate(sorted(groups), start=1))
    if part != "all":
        names = names[0::2] if part == "tune" else names[1::2]
    return [(i, n, sorted(groups[n], key=lambda p: int(re.search(r"-p(\d+)\.", p.name)[1]))) for i, n in names]


def rebuilt_pdf(store, doc: dict, code: str) -> bytes:
    """The document's PDF rebuilt (unsigned) from its stored page images' cache and words."""
    from ocr.page import Placement
    from pipeline import pdfa
    from pipeline.signing.pdfa_signed import unsigned_base_revision

    import pikepdf

    signed = store.get(doc["pdf"]["key"])
    base = unsigned_base_revision(signed) or signed
    page_words = json.loads(store.get(doc["words"]["key"]))
    renders = []
    with pikepdf.open(io.BytesIO(base)) as src:
        for page, entry, wds in zip(src.pages, doc["pages"], page_words):
            raw = next(iter(page.get_images(recursive=False).values()))
            encoding = "jpeg" if raw.get("/Filter") == "/DCTDecode" else "flate1"
            placement = Placement.from_json(entry["placement"]) if entry.get("placement") else None
            renders.append(pdfa.PageRender(raw.read_raw_bytes(), encoding, int(raw.Width), int(raw.Height),
                                           tuple(entry["dpi"]), entry["colorMode"], wds, placement))
    from datetime import datetime

    return pdfa.build_pdfa(renders, pdfa.DocumentMeta(title=doc["title"], doc_id=doc["docId"], dossier_code=code,
                                                      created=datetime.now().astimezone()))


def resampled(directory: Path, out: Path, dpi: int) -> Path:
    """Copies of the scans at ``dpi`` (colour and grey as JPEG quality 90, bitonal as G4 TIFF)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.iterdir()):
        target = out / path.name
        if target.exists() or path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
            continue
        with Image.open(path) as img:
            factor = dpi / float((img.info.get("dpi") or (300, 300))[0])
            size = (round(img.width * factor), round(img.height * factor))
            if img.mode == "1":
                img.convert("L").resize(size, Image.LANCZOS).point(lambda v: 255 if v >= 128 else 0).convert("1") \
                    .save(target, compression="group4", dpi=(dpi, dpi))
            else:
                img.resize(size, Image.LANCZOS).save(target, quality=90, dpi=(dpi, dpi))
    return out


def page_sizes_mm(pdf: bytes) -> list[str]:
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return [f"{float(p.mediabox[2]) / 72 * 25.4:.0f}x{float(p.mediabox[3]) / 72 * 25.4:.0f}" for p in doc.pages]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default=str(ROOT.parent / "shared" / "realscans"))
    ap.add_argument("--home", default=str(ROOT / "bench-data" / "pdf_text"))
    ap.add_argument("--part", choices=("tune", "report", "all"), default="all")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--resample", type=int, default=None, metavar="DPI",
                    help="first resample every scan to DPI (e.g. 200, what many intake desks scan at)")
    args = ap.parse_args()
    if args.resample:
        args.directory = str(resampled(Path(args.directory), Path(args.home) / f"inputs-{args.resample}dpi",
                                       args.resample))
    os.environ["SOHOA_HOME"] = args.home
    from api.cli import main as sohoa
    from pipeline import config, repository, service

    settings = config.load()
    store = service.open_store(settings)
    rows, totals = [], collections.defaultdict(list)
    for n, name, files in documents(Path(args.directory), args.part):
        code = f"H23.50-261201-{9000 + n:04d}"  # by the document's place in the whole set
        if repository.load_manifest(store, code) is None:
            with open(os.devnull, "w") as null:
                stdout, sys.stdout = sys.stdout, null
                try:
                    status = sohoa(["ingest", "--dossier", code, "--title", name, *map(str, files)], settings=settings)
                finally:
                    sys.stdout = stdout
            if status:
                print(f"{name}: ingest failed ({status})", file=sys.stderr)
                continue
        manifest = repository.require_manifest(store, code)
        doc = manifest["documents"][0]
        pdf = rebuilt_pdf(store, doc, code) if args.rebuild else store.get(doc["pdf"]["key"])
        truth = words(store.get(doc["text"]["key"]).decode())
        shares = {"pdftotext": found_share(truth, words(pdftotext(pdf))),
                  "pdftotext -raw": found_share(truth, words(pdftotext(pdf, "-raw")))}
        if (mined := pdfminer_text(pdf)) is not None:
            shares["pdfminer"] = found_share(truth, words(mined))
        for k, v in shares.items():
            totals[k].append(v)
        rows.append(f"{name:32s} {sum(truth.values()):5d} words  " + "  ".join(f"{k} {v:.3f}" for k, v in shares.items())
                    + f"  pages(mm) {' '.join(page_sizes_mm(pdf))}")
    print("\n".join(rows))
    print(f"{len(rows)} documents ({args.part}):  " + "  ".join(
        f"{k} mean {sum(v) / len(v):.4f} min {min(v):.3f}" for k, v in totals.items() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
