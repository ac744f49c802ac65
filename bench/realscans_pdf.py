"""Words of the transcribed real scans found through sohoa's PDF, as a reader of the PDF finds them.

    .venv/bin/python -m bench.realscans_pdf --part validation
    .venv/bin/python -m bench.realscans_pdf --part test --frozen-report

Each page of the part is ingested on its own with the default settings (a fresh SOHOA_HOME), the
signed PDF's text is read with ``pdftotext -raw``, and the printed words of the truth (all zones,
handwriting left out; bag of words) are looked for among the PDF's words. The character error
rate is the edit distance of the whole page text (truth lines joined, PDF text) over the truth's
characters, with reading order counted: what a reader of the PDF sees. The signature stamp is
drawn as glyph outlines, so its words are not in the PDF's text (they were, before: 5.3 points
of the CER on the test part); ``--unsigned`` stores without a signature, to check that.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.realscans import DATA, collapse, parse_truth, printed_words, words_found

SOHOA = str(Path(sys.executable).with_name("sohoa"))


def pdf_text(name: str, unsigned: bool = False) -> str:
    with tempfile.TemporaryDirectory() as home:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")}, "SOHOA_HOME": home}
        subprocess.run([SOHOA, "ingest", "--dossier", "H23.50-261201-0900", "--title", name, str(DATA / name),
                        *(["--unsigned"] if unsigned else [])], env=env, check=True, capture_output=True)
        pdf = next(Path(home, "store", "dossiers").glob("*/documents/*.pdf"))
        return subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def main(argv: list[str] | None = None) -> int:
    from rapidfuzz.distance import Levenshtein

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("tune", "validation", "test"), required=True)
    parser.add_argument("--frozen-report", action="store_true")
    parser.add_argument("--unsigned", action="store_true",
                        help="store without the signature (no stamp at all), to compare")
    args = parser.parse_args(argv)
    if args.part == "test" and not args.frozen_report:
        parser.error("--part test is the frozen report: add --frozen-report (and choose nothing on it)")
    hit = total = edits = chars = 0
    for name in json.loads((DATA / "parts.json").read_text(encoding="utf-8"))[args.part]:
        truth = parse_truth((DATA / f"{Path(name).stem}.gt.txt").read_text(encoding="utf-8"))
        text = pdf_text(name, args.unsigned)
        words = [w for t in truth for w in printed_words(t)]
        page_hit, _ = words_found(words, text.split())
        joined = collapse(" ".join(t.printed for t in truth))
        distance = Levenshtein.distance(joined, collapse(text))
        print(f"{name}: {page_hit}/{len(words)} words ({page_hit / len(words):.2%}), CER {distance / len(joined):.2%}")
        hit, total, edits, chars = hit + page_hit, total + len(words), edits + distance, chars + len(joined)
    print(f"{args.part}: words found through the PDF {hit}/{total} ({hit / total:.2%}), "
          f"CER with reading order {edits / chars:.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
