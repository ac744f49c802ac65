"""PDF/A-2b of a signed file, used after signing (``pades``) and in validation.

pikepdf's allowlist validator reports interactive forms (/AcroForm), Widget annotations,
the ESIC extension and the DSS as constructs it does not check, so no signed PDF can get
its plain "pass". ``pdfa_check`` therefore accepts a signed file when (1) the validator
finds no violation and nothing unsupported besides those signature constructs, (2) the
revision before the first signature (the PDF/A that was signed) passes the validator
outright, and (3) the signature constructs meet the PDF/A-2 rules that apply to them
(checked here: print flag, appearance streams, embedded fonts, no NeedAppearances/XFA, no
external streams). When veraPDF is installed its verdict is required as well.

Every check takes the file's bytes or its path; a path is read as the checks go (qpdf reads
objects on demand, the revisions are found by scanning in chunks), so a 100-page document
is never held whole in memory for its check.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .status import PdfaVerdict

ANNOT_INVISIBLE, ANNOT_HIDDEN, ANNOT_PRINT, ANNOT_NOVIEW, ANNOT_TOGGLENOVIEW = 1, 2, 4, 32, 256
SIGNATURE_CONSTRUCTS = (
    re.compile(r"\(Catalog\) /AcroForm$"),
    re.compile(r"\(Catalog\)(?: /DSS)?$"),  # "unrecognized key(s) /DSS" is reported on the Catalog
    re.compile(r"\(Catalog\) /Extensions \(Extensions\) /ESIC$"),
)
WIDGET_SUBTYPE = re.compile(r"^obj (\d+) (\d+) \(Annot\) /Subtype$")


# --------------------------------------------------------------------------- PDF/A

def _findings(report) -> list:
    return list(report.findings)


def _input(data: bytes | Path):
    return data if isinstance(data, Path) else io.BytesIO(data)


def pdfa_check(data: bytes | Path) -> PdfaVerdict:
    """PDF/A-2b of a (possibly signed) file, its bytes or its path; see the module doc."""
    import pikepdf
    import pikepdf.pdfa

    from pipeline.pdfa import collector_paused

    with collector_paused():
        report = pikepdf.pdfa.validate_written(_input(data), "2b")
    if report.passed:
        return _with_verapdf(data, True, [], "pikepdf")
    problems = []
    try:
        pdf = pikepdf.open(_input(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a verdict, not a crash
        return PdfaVerdict(False, (f"không đọc được PDF (unreadable PDF): {exc}",), "pikepdf")
    try:
        with pdf:
            _signed_file_problems(data, pdf, report, problems)
    except Exception as exc:  # noqa: BLE001 - a damaged structure is a finding, not a crash
        problems.append(f"không kiểm tra được cấu trúc PDF (cannot check the PDF structure): "
                        f"{type(exc).__name__}: {exc}")
    return _with_verapdf(data, not problems, problems, "pikepdf+signature-rules")


def _signed_file_problems(data: bytes | Path, pdf, report, problems: list[str]) -> None:
    """pikepdf's findings on a signed file, the signature rules and the unsigned base revision."""
    from pipeline.pdfa import validate

    signature_parts = False
    for f in _findings(report):
        if f.kind == "violation":
            problems.append(f"{f.rule} {f.where}: {f.message}")
        elif _is_signature_construct(f) or _is_widget(pdf, f.where):
            signature_parts = True
        else:
            problems.append(f"{f.rule} {f.where}: {f.message} ({f.kind})")
    if signature_parts and not problems:
        problems += signature_constructs_problems(pdf)
        with _base_revision(data) as base:
            if base is None:
                problems.append("không tìm thấy bản PDF/A trước chữ ký (no unsigned base revision found)")
                return
            base_passed, base_findings = validate(base)
        if not base_passed:
            problems += [f"bản trước khi ký (base revision): {f}" for f in base_findings] \
                or ["base revision not approved"]


def _is_signature_construct(finding) -> bool:
    if finding.where.endswith("(Catalog)"):
        unrecognized = re.fullmatch(r"unrecognized key\(s\) (.*) are not checked", finding.message)
        return bool(unrecognized) and set(unrecognized[1].split(", ")) <= {"/DSS"}
    return any(p.search(finding.where) for p in SIGNATURE_CONSTRUCTS)


def _is_widget(pdf, where: str) -> bool:
    m = WIDGET_SUBTYPE.match(where)
    if not m:
        return False
    try:
        return pdf.get_object(int(m[1]), int(m[2])).get("/Subtype") == "/Widget"
    except Exception:  # noqa: BLE001
        return False


def _with_verapdf(data: bytes | Path, ok: bool, findings: list[str], method: str) -> PdfaVerdict:
    """Also require veraPDF's verdict when the reference validator is installed."""
    verapdf = shutil.which("verapdf")
    if not verapdf:
        return PdfaVerdict(ok, tuple(findings), method)
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        if not isinstance(data, Path):
            f.write(data)
            f.flush()
        run = subprocess.run([verapdf, "--flavour", "2b", "--format", "text", str(data) if isinstance(data, Path)
                              else f.name], capture_output=True, text=True, timeout=300)
    passed = run.stdout.strip().startswith("PASS")
    method += "+verapdf"
    if not passed:
        ok = False
        findings = [*findings, "veraPDF: " + (run.stdout.strip() or run.stderr.strip())[:500]]
    return PdfaVerdict(ok, tuple(findings), method)


BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*\d+\s+(\d+)")
END_OF_FILE = re.compile(rb"%%EOF[ \t]*(?:\r\n|\r|\n)?")
SCAN_CHUNK = 1 << 20
SCAN_OVERLAP = 4096  # longer than any match of the patterns above


def find_all(stream: BinaryIO, pattern: re.Pattern) -> Iterator[tuple[int, int, re.Match]]:
    """(start, end, match) of every match of ``pattern`` in the whole stream, read a chunk at a
    time. A match starting in the last SCAN_OVERLAP bytes of a chunk is left to the next one,
    which begins there, so none is cut or found twice."""
    stream.seek(0)
    window, base = b"", 0  # window holds the stream from offset base
    while True:
        chunk = stream.read(SCAN_CHUNK)
        window += chunk
        limit = len(window) - SCAN_OVERLAP if chunk else len(window)
        for m in pattern.finditer(window):
            if m.start() >= limit:
                break
            yield base + m.start(), base + m.end(), m
        if not chunk:
            return
        limit = max(limit, 0)
        window, base = window[limit:], base + limit


def base_revision_end(stream: BinaryIO) -> int | None:
    """Where the file before its first signature's revision ends (after its %%EOF)."""
    starts = [int(m[1]) for _, _, m in find_all(stream, BYTE_RANGE)]
    if not starts:
        return None
    contents_at = min(starts)
    eofs = [end for _, end, _ in find_all(stream, END_OF_FILE) if end <= contents_at]
    return eofs[-1] if eofs else None


def is_signed(data: bytes | Path) -> bool:
    """Whether the file holds a signature dictionary (a /ByteRange)."""
    if not isinstance(data, Path):
        return b"/ByteRange" in data
    with open(data, "rb") as f:
        return next(find_all(f, re.compile(rb"/ByteRange")), None) is not None


def unsigned_base_revision(data: bytes) -> bytes | None:
    """The bytes of the file before its first signature's revision (the PDF/A that was signed)."""
    end = base_revision_end(io.BytesIO(data))
    return data[:end] if end is not None else None


@contextmanager
def _base_revision(data: bytes | Path) -> Iterator[bytes | Path | None]:
    """The unsigned base revision as ``validate`` takes it: bytes for bytes, a temporary copy of
    the file's first part for a path (None when there is none)."""
    if not isinstance(data, Path):
        yield unsigned_base_revision(data)
        return
    with open(data, "rb") as source, tempfile.NamedTemporaryFile(suffix=".pdf") as copy:
        end = base_revision_end(source)
        if end is None:
            yield None
            return
        source.seek(0)
        while end and (chunk := source.read(min(SCAN_CHUNK, end))):
            copy.write(chunk)
            end -= len(chunk)
        copy.flush()
        yield Path(copy.name)


def signature_constructs_problems(pdf) -> list[str]:
    """PDF/A-2 rules (ISO 19005-2 6.3, 6.4, 6.1.7) for what a signature adds to a file."""
    problems = []
    form = pdf.Root.get("/AcroForm")
    if form is not None:
        if bool(form.get("/NeedAppearances", False)):
            problems.append("AcroForm /NeedAppearances true (6.4.1)")
        if "/XFA" in form:
            problems.append("AcroForm /XFA (6.4.2)")
    for number, page in enumerate(pdf.pages, 1):
        for annot in page.get("/Annots", []):
            if annot.get("/Subtype") != "/Widget":
                continue
            flags = int(annot.get("/F", 0))
            where = f"trang {number}, ô {annot.get('/T', annot.get('/Parent', {}).get('/T', '?'))}"
            if not flags & ANNOT_PRINT or flags & (ANNOT_INVISIBLE | ANNOT_HIDDEN | ANNOT_NOVIEW | ANNOT_TOGGLENOVIEW):
                problems.append(f"{where}: cờ chú thích /F={flags} thiếu Print hoặc có Hidden/NoView (6.3.2)")
            rect = [float(v) for v in annot.get("/Rect", [0, 0, 0, 0])]
            visible = abs(rect[2] - rect[0]) > 0 and abs(rect[3] - rect[1]) > 0
            ap = annot.get("/AP")
            if visible:
                if ap is None or set(ap.keys()) != {"/N"}:
                    problems.append(f"{where}: cần đúng một luồng hiển thị /AP /N (6.3.3)")
                elif not isinstance(ap.N, __import__("pikepdf").Stream):
                    problems.append(f"{where}: /AP /N không phải luồng (6.3.3)")
                else:
                    problems += [f"{where}: {p}" for p in _resources_problems(ap.N.get("/Resources"), set())]
    for stream in _dss_streams(pdf):
        if any(k in stream for k in ("/F", "/FFilter", "/FDecodeParms")):
            problems.append("DSS có luồng tham chiếu tệp ngoài (6.1.7)")
    return problems


def _dss_streams(pdf):
    dss = pdf.Root.get("/DSS")
    if dss is None:
        return
    for key in ("/Certs", "/OCSPs", "/CRLs"):
        yield from dss.get(key, [])


def _resources_problems(resources, seen) -> list[str]:
    import pikepdf

    if resources is None:
        return []
    problems = []
    for font in resources.get("/Font", {}).values():
        fonts = list(font.get("/DescendantFonts", [])) if font.get("/Subtype") == "/Type0" else [font]
        for f in fonts:
            desc = f.get("/FontDescriptor")
            if desc is None or not any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                problems.append(f"phông {f.get('/BaseFont')} không được nhúng (font not embedded, 6.2.11.4)")
            if f.get("/Subtype") == "/CIDFontType2" and "/CIDToGIDMap" not in f:
                problems.append(f"phông {f.get('/BaseFont')} thiếu CIDToGIDMap (6.2.11.3)")
    for gs in resources.get("/ExtGState", {}).values():
        if "/TR" in gs or gs.get("/TR2", "/Default") != "/Default":
            problems.append("ExtGState có hàm chuyển /TR (6.2.5)")
    for xobj in resources.get("/XObject", {}).values():
        key = xobj.objgen
        if key in seen or not isinstance(xobj, pikepdf.Stream):
            continue
        seen.add(key)
        if xobj.get("/Subtype") == "/Form":
            problems += _resources_problems(xobj.get("/Resources"), seen)
    return problems


# --------------------------------------------------------------------------- signatures
