"""What an officer gets out of the PDF: every word and line break of the OCR through pdftotext
(default and -raw), pdfminer.six and pdf.js, each word placed on its printed box, and pages of the
paper's physical size."""
from __future__ import annotations

import io
import re
import subprocess
import tempfile
from datetime import datetime

import pikepdf
import pytest
from PIL import Image

from pipeline import pdfa

LINES = ["Căn cứ Luật Ban hành văn bản quy phạm pháp luật", "Độc lập - Tự do - Hạnh phúc", "Số: 23/BC-UBND"]
DPI = 200


def touching_words(gap_px: int) -> list[dict]:
    """Words laid out like tesseract's boxes on a 200-dpi scan: neighbours ``gap_px`` apart
    (0: touching, negative: overlapping)."""
    words, y = [], 100
    for line_no, line in enumerate(LINES):
        x = 120
        for text in line.split():
            width = 14 * len(text)
            words.append({"text": text, "x0": x, "y0": y, "x1": x + width, "y1": y + 34, "conf": 90.0, "line": line_no})
            x += width + gap_px
        y += 60
    return words


def pdf_with(words: list[dict], size=(1654, 2339)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 255).save(buf, "JPEG")
    page = pdfa.PageRender(buf.getvalue(), "jpeg", size[0], size[1], (DPI, DPI), "gray", words)
    return pdfa.build_pdfa([page], pdfa.DocumentMeta(title="Thử", doc_id="H23.50-261201-0001.001",
                                                     dossier_code="H23.50-261201-0001",
                                                     created=datetime(2026, 12, 1).astimezone()))


def pdftotext(pdf: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        return subprocess.run(["pdftotext", *flags, f.name, "-"], capture_output=True, check=True).stdout.decode()


def pdfjs_text(pdf: bytes) -> str:
    """The text pdf.js (the viewer of Firefox and of many web applications) extracts; pdf.js is
    installed by scripts/setup.sh from tests/js/package-lock.json."""
    from pathlib import Path

    script = Path(__file__).with_name("js") / "pdf_text.mjs"
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        return subprocess.run(["node", str(script), f.name], capture_output=True, check=True, timeout=60).stdout.decode()


def text_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("gap_px", [0, -3, 2, 20])
def test_every_word_and_line_break_reaches_every_extractor(gap_px):
    pdf = pdf_with(touching_words(gap_px))
    from pdfminer.high_level import extract_text

    for extracted in (pdftotext(pdf), pdftotext(pdf, "-raw"), extract_text(io.BytesIO(pdf)), pdfjs_text(pdf)):
        assert text_lines(extracted) == LINES, extracted


def test_words_stay_on_their_printed_boxes():
    words = touching_words(0)
    pdf = pdf_with(words)
    html = pdftotext(pdf, "-bbox")
    found = [(float(x0), float(x1), t) for x0, x1, t in
             re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]+)</word>', html)]
    assert [t for *_, t in found] == [w["text"] for w in words]
    for (x0, x1, _), w in zip(found, words):
        box0, box1 = w["x0"] * 72 / DPI, w["x1"] * 72 / DPI
        assert box0 - 0.5 <= x0 < x1 <= box1 + 0.5  # the selection lies on the printed word


def test_ingested_pdf_text_equals_the_stored_ocr_text(cli, home, rendered, tmp_path):
    """On a whole rendered page: the words pdftotext reads out of the signed PDF are the stored OCR text's."""
    import json
    from collections import Counter

    from tests.conftest import save_page

    page = rendered("layer", layout="admin", seed=33, dpi=200)
    scan = save_page(page, tmp_path / "p.png")
    code, out, err = cli("ingest", "--dossier", "H23.50-261201-0001", "--title", "Đơn", "--json", scan)
    assert code == 0, err
    doc_id = json.loads(out)["docId"]
    store = home / "store" / "dossiers" / "H23.50-261201-0001"
    ocr = Counter((store / "text" / f"{doc_id}.txt").read_text(encoding="utf-8").split())
    for flags in ((), ("-raw",)):
        got = Counter(pdftotext((store / "documents" / f"{doc_id}.pdf").read_bytes(), *flags).split())
        missing = sum((ocr - got).values())
        assert missing <= 0.003 * sum(ocr.values()), (flags, ocr - got)


def test_a_scan_without_resolution_becomes_an_a4_page(cli, home, rendered, tmp_path):
    page = rendered("nodpi", layout="text", seed=34, dpi=200)
    scan = tmp_path / "nodpi.png"
    page.image.resize((1667, 2425)).save(scan)  # no dpi in the header, A4 proportions within 3 %
    code, _, err = cli("ingest", "--dossier", "H23.50-261201-0001", "--title", "Đơn", scan)
    assert code == 0, err
    from pipeline.signing.pdfa_signed import unsigned_base_revision

    # the scan's page as built, before signing (a stamp that finds no free paper adds a band above it)
    pdf = unsigned_base_revision(next((home / "store").rglob("*.pdf")).read_bytes())
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        box = [float(v) for v in doc.pages[0].mediabox]
    width_mm, height_mm = (box[2] - box[0]) / 72 * 25.4, (box[3] - box[1]) / 72 * 25.4
    assert abs(width_mm - 210) <= 0.02 * 210 and abs(height_mm - 297) <= 0.02 * 297, (width_mm, height_mm)
    from tests.conftest import manifest_of

    entry = manifest_of(home, "H23.50-261201-0001")["documents"][0]["pages"][0]
    assert entry["dpiSource"] == "paper-size:A4"


def test_garbage_collected_while_pdfa_is_checked_does_not_fail_the_check():
    """An unclosed file anywhere in the process, finalised by the garbage collector while pikepdf
    checks a PDF/A document, emits a ResourceWarning that the check would take for a fault of
    the document: the document must still be approved."""
    import gc
    import warnings

    documents = [pdf_with(touching_words(gap)) for gap in (4, 10, 16)]
    littering = True

    class Litter:
        """An unclosed file in a reference cycle; when collected, it leaves the next one."""
        def __init__(self):
            self.file, self.cycle = open(__file__, "rb"), self  # noqa: SIM115 - left open on purpose

        def __del__(self):
            if littering:
                Litter()

    threshold = gc.get_threshold()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.set_threshold(1, 10**6, 10**6)  # the youngest objects collected at every allocation
        Litter()
        try:
            for pdf in documents:
                passed, findings = pdfa.validate(pdf)
                assert passed, findings
        finally:
            littering = False
            gc.set_threshold(*threshold)
            gc.collect()
