"""Issue 2 item 9 and issue 16 item 1: every kind of bad input an intake desk receives
(tests/badfiles.py) is fed to ``sohoa ingest`` and to the upload API. Each ends in a clear
refusal (the file and, where it applies, the page named, in Vietnamese) or a correct result
(the right page count), within a bounded time, never as a crash, and a refusal stores nothing:
the store's keys and the dossier's manifest are as they were. The outcomes are the table
``bad-inputs`` of docs/robustness.md."""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from fastapi.testclient import TestClient

from tests import badfiles
from tests.conftest import manifest_of, stored_keys
from tests.doc_tables import check_table

CODE = "H23.50-261201-0002"
API_CODE = "H23.50-261201-0003"
MAX_PIXELS = "5000000"
TRIAL_SECONDS = 60  # per kind, on a loaded 2-core machine; each takes 0.1-10 s alone
# The pages are blank (no OCR spent) but for the two PDFs with a legacy text layer, whose
# image is OCRed: what is tested is how the input is read.

# What each kind must give. ("refused", page or None, a fragment of the Vietnamese reason) or
# ("pages", n) for a file that converts. Decided from the issue, not read from the code.
DIFFERENT = "không khớp nội dung"
NOT_A_PAGE = "không phải JPEG, PNG, TIFF hay PDF"
CORRUPT = "ảnh bị cắt cụt hoặc hỏng"
OVER = "vượt quá giới hạn"
EXPECT = {
    "zero_bytes": ("refused", None, "tệp rỗng, 0 byte"),
    "truncated_jpeg": ("refused", 1, CORRUPT),
    "corrupt_jpeg": ("refused", 1, CORRUPT),
    "jpeg_zeroed_scan_data": ("refused", 1, CORRUPT),
    "jpeg_noisy_scan_data": ("refused", 1, CORRUPT),
    "tiff_g4_noisy_strip": ("refused", 2, CORRUPT),
    "jpeg_soi_only": ("refused", None, "ảnh hỏng hoặc không đọc được"),
    "truncated_png": ("refused", 1, CORRUPT),
    "png_corrupt_idat": ("refused", 1, CORRUPT),
    "png_text_chunk_bomb": ("refused", None, "ảnh hỏng hoặc không đọc được"),
    "truncated_tiff": ("refused", 1, CORRUPT),
    "tiff_bad_ifd_offset": ("refused", None, "ảnh hỏng hoặc không đọc được"),
    "tiff_corrupt_deflate": ("refused", 1, CORRUPT),
    "tiff_truncated_second_page": ("refused", 2, CORRUPT),
    "tiff_damaged_second_header": ("refused", 2, "phần đầu của trang bị hỏng"),
    "text_file": ("refused", None, NOT_A_PAGE),
    "png_named_jpg": ("refused", None, DIFFERENT),
    "jpeg_named_pdf": ("refused", None, DIFFERENT),
    "pdf_named_tif": ("refused", None, DIFFERENT),
    "no_extension": ("pages", 1),  # a portal's blob: its content says what it is
    "upper_case_extension": ("pages", 1),
    "vietnamese_file_name": ("pages", 1),
    "one_pixel_png": ("refused", 1, "quá nhỏ để là một trang giấy quét"),
    "thin_strip_png": ("refused", 1, "quá nhỏ để là một trang giấy quét"),
    "png_bomb_header": ("refused", None, OVER),
    "png_bomb_real": ("refused", None, OVER),
    "tiff_bomb_header": ("refused", None, OVER),
    "jpeg_bomb_header": ("refused", None, OVER),
    "too_many_pixels": ("refused", None, OVER),
    "gray16_png": ("pages", 1),
    "gray16_tiff": ("pages", 1),
    "int32_tiff": ("pages", 1),
    "uint32_tiff": ("pages", 1),
    "float32_tiff": ("pages", 1),
    "int16_tiff": ("pages", 1),
    "white_is_zero_tiff": ("pages", 1),
    "cmyk_alpha_tiff": ("refused", None, "kiểu TIFF này không đọc được (CMYK, 5 samples of 8 bits, extra samples 2"),
    "tiff_with_thumbnail": ("pages", 1),
    "png_transparent_paper": ("pages", 1),
    "png16_transparent_paper": ("pages", 1),
    "mpo_phone_photo": ("pages", 1),
    "pdf_cropped_to_the_scan": ("pages", 1),
    "jpeg_12_bit": ("refused", None, "ảnh JPEG 12 bit không đọc được"),
    "tiff_webp_compressed": ("refused", 1, "không giải mã được ảnh TIFF nén kiểu WebP"),
    "cmyk_jpeg": ("pages", 1),
    "cmyk_tiff": ("pages", 1),
    "palette_png": ("pages", 1),
    "rgba_png": ("pages", 1),
    "la_png": ("pages", 1),
    "bitonal_g4_tiff": ("pages", 1),
    "progressive_jpeg": ("pages", 1),
    "jpeg_wrong_exif_orientation": ("pages", 1),
    "png_bogus_dpi": ("pages", 1),
    "tiff_200_pages": ("pages", 200),
    "tiff_too_many_pages": ("refused", None, "hơn 1000 trang"),
    "gif_named_jpg": ("refused", None, NOT_A_PAGE),
    "webp_named_jpg": ("refused", None, NOT_A_PAGE),
    "bmp_named_jpg": ("refused", None, NOT_A_PAGE),
    "heic_named_jpg": ("refused", None, NOT_A_PAGE),
    "svg_named_png": ("refused", None, NOT_A_PAGE),
    "directory": ("refused", None, "là một thư mục"),
    "named_pipe": ("refused", None, "không phải tệp thông thường"),
    "zip_named_pdf": ("refused", None, NOT_A_PAGE),
    "html_named_pdf": ("refused", None, NOT_A_PAGE),
    "pdf_header_then_garbage": ("refused", None, "PDF hỏng"),
    "pdf_encrypted_user_password": ("refused", None, "PDF được mã hóa/có mật khẩu"),
    "pdf_encrypted_owner_only": ("pages", 1),
    "pdf_no_pages": ("refused", None, "PDF không có trang nào"),
    "pdf_truncated": ("refused", None, "PDF hỏng"),
    "pdf_damaged_xref": ("pages", 1),
    "pdf_page_tree_loop": ("refused", None, "PDF hỏng"),
    "pdf_page_is_own_parent": ("pages", 1),
    "pdf_recursive_form": ("pages", 1),
    "pdf_javascript": ("pages", 1),
    "pdf_embedded_file": ("pages", 1),
    "pdf_tcvn3_text_layer": ("pages", 1),
    "pdf_vni_text_layer": ("pages", 1),
    "pdf_already_signed": ("pages", 1),
    "pdf_huge_second_page": ("refused", 2, OVER),
    "pdf_absurd_page_box": ("refused", 1, OVER),
    "pdf_zero_size_box": ("refused", 1, "kích thước 0"),
    "pdf_negative_box": ("pages", 1),
    "pdf_bad_box_values": ("pages", 1),
    "pdf_rotated_page": ("pages", 1),
    "pdf_invalid_rotate": ("pages", 1),
    "pdf_image_bomb": ("refused", 1, OVER),
    "pdf_broken_content_stream": ("pages", 1),
    "pdf_too_many_pages": ("refused", None, "quá 1000 trang"),
    "pdf_missing_mediabox": ("pages", 1),
    "pdf_jpeg_header_bomb": ("refused", 1, OVER),
    "pdf_jpx_header_bomb": ("refused", 1, OVER),
    "pdf_jpx_not_an_image": ("refused", 1, "ảnh trong trang không đọc được"),
    "pdf_certificate_encrypted": ("refused", None, "PDF được mã hóa"),
    "pdf_jpeg_cut_short": ("refused", 1, "ảnh JPEG trong trang bị cắt cụt hoặc hỏng"),
    "pdf_ccitt_noisy": ("refused", 1, "ảnh đen trắng (CCITT) trong trang bị cắt cụt hoặc hỏng"),
}
NOT_UPLOADABLE = {"directory", "named_pipe"}  # no browser or HTTP client sends these


def test_every_kind_has_an_expected_outcome_and_the_issue_s_kinds_are_there():
    names = [k.__name__ for k in badfiles.KINDS]
    assert len(names) == len(set(names)) >= 40 and set(names) == set(EXPECT)
    for kind in badfiles.KINDS:
        assert kind.__doc__ and "\n" not in kind.__doc__.strip(), f"{kind.__name__}: one line of documentation"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return badfiles.build(tmp_path_factory.mktemp("badfiles"))


def _reason(err: str, name: str) -> str:
    """The Vietnamese reason the operator reads for file ``name``: 'trang N: reason' or 'reason'."""
    line = next((ln for ln in err.splitlines() if name in ln and "Tệp" in ln), err.strip().splitlines()[0])
    after = line.split(name, 1)[1].lstrip("',: ")
    return re.sub(r" \(.*$", "", after).strip()


def _pdf_has_active_content(data: bytes) -> list[str]:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        found = []
        if "/OpenAction" in pdf.Root or "/AA" in pdf.Root:
            found.append("OpenAction")
        names = pdf.Root.get("/Names", {})
        found += [str(k) for k in ("/JavaScript", "/EmbeddedFiles") if k in names]
        return found


def _check_converted(kind: str, pdf: bytes, text: str) -> list[str]:
    """What a converted document must hold beyond its page count, by kind."""
    problems = []
    if kind in ("pdf_javascript", "pdf_embedded_file") and (active := _pdf_has_active_content(pdf)):
        problems.append(f"the e-dossier PDF carries {active}")
    if kind == "pdf_tcvn3_text_layer" and badfiles.LEGACY_TCVN3.decode("cp1252") in text:
        problems.append("the legacy TCVN3 text layer was taken as the page's text")
    if kind == "pdf_vni_text_layer" and badfiles.LEGACY_VNI.decode("cp1252") in text:
        problems.append("the legacy VNI text layer was taken as the page's text")
    return problems


def _manifest(home: Path, code: str) -> dict | None:
    """The dossier's manifest; None while the dossier holds nothing (then a refusal must not make one)."""
    return manifest_of(home, code) if (home / "store" / "dossiers" / code / "manifest.json").exists() else None


def _pages_by_file(pages: list[dict]) -> dict[str, tuple[int, set[str]]]:
    """{file name: (pages, flags)} of a document's pages (as the ingest summary or the manifest has them)."""
    found: dict[str, tuple[int, set[str]]] = {}
    for p in pages:
        name = p["file"] if "file" in p else p["source"]["file"]
        count, flags = found.get(name, (0, set()))
        found[name] = (count + 1, flags | set(p.get("flags", ())))
    return found


def _stored(pages: int, flags: set[str]) -> str:
    return f"stored, {pages} page{'s' if pages > 1 else ''}" + (f" ({', '.join(sorted(flags))})" if flags else "")


def _converted_problems(kinds: list[str], found: dict[str, tuple[int, set[str]]], names: dict[str, str],
                        document: dict, store: Path) -> dict[str, list[str]]:
    """Per kind: its pages in the document, and what its document must (not) hold."""
    pdf, text = (store / document["pdf"]["key"]).read_bytes(), (store / document["text"]["key"]).read_text("utf-8")
    problems = {}
    for kind in kinds:
        pages = found.get(names[kind], (0, set()))[0]
        problems[kind] = ([f"{pages} pages, wanted {EXPECT[kind][1]}"] if pages != EXPECT[kind][1] else []) \
            + _check_converted(kind, pdf, text)
    return problems


def _cli_refusal(cli, home: Path, kind: str, path: Path, n: int) -> tuple[str, list[str]]:
    """Ingest one file that must be refused, alone; (outcome for the table, problems found)."""
    before_keys, before_manifest = stored_keys(home), _manifest(home, CODE)
    started = time.monotonic()
    code, out, err = cli("ingest", "--dossier", CODE, "--title", f"Tài liệu thử {n}", "--json", path)
    problems = _crash_or_slow(code, err, time.monotonic() - started)
    _, page, fragment = EXPECT[kind]
    where = f"{path.name}, trang {page}" if page else path.name
    if code != 3 or "LỖI" not in err or where not in err or fragment not in err:
        problems.append(f"wanted exit 3 naming '{where}' with '{fragment}'; got exit {code}: {err.strip()[:300]}{out[:200]}")
    if stored_keys(home) != before_keys or _manifest(home, CODE) != before_manifest:
        problems.append("a refused ingest stored something")
    return f"refused, exit {code}: «{_reason(err, path.name)}»", problems


def _crash_or_slow(code: int, err: str, seconds: float, limit: float = TRIAL_SECONDS) -> list[str]:
    problems = [f"took {seconds:.0f} s"] if seconds > limit else []
    if code == 70 or "Lỗi không mong đợi" in err or "Traceback" in err:
        problems.append(f"crashed (exit {code}): {err.strip()[-300:]}")
    return problems


def _cli_readable(cli, home: Path, corpus: dict[str, Path], kinds: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Every kind that must convert, as the pages of one document (one ingest: one pool of page
    processes, not one per kind); when it fails, each kind alone, to name the culprit."""
    paths = [corpus[k] for k in kinds]
    started = time.monotonic()
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Mọi loại tệp đọc được", "--json", *paths)
    problems = _crash_or_slow(code, err, time.monotonic() - started, TRIAL_SECONDS * 3)
    if code != 0:
        if len(kinds) == 1:
            return {kinds[0]: (f"exit {code}", problems + [f"wanted a document; got exit {code}: {err.strip()[:300]}"])}
        results = {}
        for kind in kinds:
            results |= _cli_readable(cli, home, corpus, [kind])
        return results
    summary = json.loads(out)
    document = next(d for d in manifest_of(home, CODE)["documents"] if d["docId"] == summary["docId"])
    if [o["sha256"] for o in document["originals"]] != [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]:
        problems.append("the originals' bytes were not kept unchanged")
    found = _pages_by_file(summary["pages"])
    names = {k: corpus[k].name for k in kinds}
    checked = _converted_problems(kinds, found, names, document, home / "store")
    return {k: (_stored(*found.get(names[k], (0, set()))), problems + checked[k]) for k in kinds}


def _good_page(directory: Path) -> Path:
    """A page that converts, unlike any page of the corpus (else it would be a duplicate)."""
    path = directory / "trang-tot.png"
    badfiles.page_image("L", (320, 420)).save(path, dpi=(100, 100))
    return path


def _upload_name(name: str) -> str:
    """The name the upload API keeps for a file (service.accept_upload)."""
    from pipeline.service import _upload_file_name

    return _upload_file_name(name, 1)


@pytest.fixture(scope="module")
def api_outcomes(corpus, tmp_path_factory):
    """Every uploadable kind sent to ``POST /api/v1/dossiers/{code}/documents`` by an operator:
    each that must be refused alone, those that must convert together as one document;
    {kind: (outcome, problems)}."""
    from api.http import create_app
    from pipeline import config, service

    home = tmp_path_factory.mktemp("bad-api") / "home"
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_MAX_PIXELS": MAX_PIXELS, "SOHOA_OCR_ENGINE": "tesseract"})
    service.add_user(settings, "op", "operator", ("H23.50",), "mat-khau-dai-du")
    headers = {"Authorization": f"Bearer {service.create_token(settings, 'op')[1]}"}
    outcomes = {}
    with TestClient(create_app(settings)) as client:
        def post(paths: list[Path], title: str):
            return client.post(f"/api/v1/dossiers/{API_CODE}/documents", headers=headers, data={"title": title},
                               files=[("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths])

        def settle(job_id: str, seconds: float) -> dict:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
                if job["state"] in ("done", "failed"):
                    return job
                time.sleep(0.2)
            return job

        uploadable = [k for k in EXPECT if k not in NOT_UPLOADABLE]
        for n, kind in enumerate(uploadable, start=1):
            if EXPECT[kind][0] != "refused":
                continue
            path, expected = corpus[kind], EXPECT[kind]
            before_keys, before_manifest = stored_keys(home), _manifest(home, API_CODE)
            started = time.monotonic()
            answer = post([path], f"Tài liệu thử {n}")
            message = answer.json().get("error", {}).get("message", "")
            problems = _crash_or_slow(answer.status_code == 500 and 70, answer.text, time.monotonic() - started)
            if not 400 <= answer.status_code < 500 or path.name not in message:
                problems.append(f"wanted a 4xx naming {path.name}; got {answer.status_code}: {answer.text[:300]}")
            if answer.status_code == 422 and expected[2] not in message:
                problems.append(f"wanted '{expected[2]}' in: {message}")
            if stored_keys(home) != before_keys or _manifest(home, API_CODE) != before_manifest:
                problems.append("a refused upload stored something")
            outcomes[kind] = (f"{answer.status_code}: «{_reason(message, path.name)}»", problems)

        readable = [k for k in uploadable if EXPECT[k][0] == "pages"]
        started = time.monotonic()
        answer = post([corpus[k] for k in readable], "Mọi loại tệp đọc được")
        if answer.status_code != 202:
            outcomes |= {k: (str(answer.status_code), [f"wanted 202; got {answer.status_code}: {answer.text[:300]}"])
                         for k in readable}
        else:
            job = settle(answer.json()["job"]["job"], TRIAL_SECONDS * 3)
            problems = _crash_or_slow(0, "", time.monotonic() - started, TRIAL_SECONDS * 3)
            if job["state"] != "done":
                outcomes |= {k: (f"202, job {job['state']}", problems + [f"job {job['state']}: {job.get('error')}"])
                             for k in readable}
            else:
                document = next(d for d in manifest_of(home, API_CODE)["documents"] if d["docId"] == job["docId"])
                found = _pages_by_file(document["pages"])
                names = {k: _upload_name(corpus[k].name) for k in readable}
                checked = _converted_problems(readable, found, names, document, home / "store")
                outcomes |= {k: ("202, job done, " + _stored(*found.get(names[k], (0, set()))).split(", ", 1)[1],
                                 problems + checked[k]) for k in readable}
        assert client.get("/healthz").status_code == 200  # the server lived through all of it
    return outcomes


def test_every_bad_input_gets_a_clear_refusal_or_a_correct_result_at_both_doors(corpus, cli, home, monkeypatch,
                                                                                 api_outcomes):
    monkeypatch.setenv("SOHOA_MAX_PIXELS", MAX_PIXELS)
    monkeypatch.setenv("SOHOA_OCR_ENGINE", "tesseract")  # what is tested is the input, not the OCR
    outcomes = {kind: _cli_refusal(cli, home, kind, corpus[kind], n)
                for n, kind in enumerate(EXPECT, start=1) if EXPECT[kind][0] == "refused"}
    outcomes |= _cli_readable(cli, home, corpus, [k for k in EXPECT if EXPECT[k][0] == "pages"])
    rows, failures = [], []
    for kind in EXPECT:
        outcome, problems = outcomes[kind]
        api, api_problems = api_outcomes.get(kind, ("not sent (no client uploads one)", []))
        failures += [f"{kind} (sohoa ingest): {p}" for p in problems] + [f"{kind} (upload API): {p}" for p in api_problems]
        rows.append((kind.replace("_", " "), f"`{corpus[kind].name}`", outcome, api))
    assert not failures, "\n".join(failures)
    check_table("bad-inputs", ("Kind", "File", "sohoa ingest", "Upload API"), rows)


@pytest.mark.parametrize("kind", ["int32_tiff", "uint32_tiff", "float32_tiff", "gray16_tiff", "int16_tiff",
                                  "white_is_zero_tiff"])
def test_a_deep_grey_tiff_page_shows_the_greys_it_holds(kind, tmp_path):
    """32-bit integer and floating-point TIFFs come from converters that keep 8-bit values, or
    0 to 1, in the wider type, or use the whole unsigned range: read as 16-bit, a page of 0-255
    values came out black, and one of the whole range too (Pillow reads it signed). A signed
    16-bit page came out half bright, and a deep page whose zero is white as its negative."""
    from pipeline.inputs import load_page, sniff

    path = getattr(badfiles, kind)(tmp_path)
    data = path.read_bytes()
    image, dpi = load_page(path.name, sniff(data), data, 1, int(MAX_PIXELS))
    shown = badfiles.page_image("L", text=kind != "gray16_tiff")
    assert image.mode == "L" and image.size == shown.size and dpi == (100, 100)
    assert np.abs(np.asarray(image, dtype=np.int16) - np.asarray(shown, dtype=np.int16)).max() <= 1


def test_a_float_page_a_little_over_one_with_no_data_pixels_keeps_its_greys(tmp_path):
    """A floating-point page resampled a little past 1, with a few pixels of no data (NaN, inf):
    one such pixel set the scale for the whole page, which came out black."""
    from PIL import Image

    from pipeline.inputs import load_page, sniff

    shown = np.asarray(badfiles.page_image("L", text=True), dtype=np.float32)
    values = shown / 255 * 1.04
    values[5, 5], values[6, 6], values[7, 7] = np.nan, np.inf, -np.inf
    path = tmp_path / "float-overshoot.tif"
    Image.fromarray(values, "F").save(path, dpi=(100, 100))
    data = path.read_bytes()
    image, _ = load_page(path.name, sniff(data), data, 1, int(MAX_PIXELS))
    grey = np.asarray(image, dtype=np.int16)
    assert grey[5, 5] == grey[6, 6] == grey[7, 7] == 255  # no data reads as paper
    grey[5:8, 5:8] = shown[5:8, 5:8]
    assert np.abs(grey - np.minimum(shown * 1.04, 255)).max() <= 1


@pytest.mark.parametrize("dtype, top, white_is_zero", [
    ("int16", 32_767, False),     # signed, from 0 to its highest
    ("int16", 255, False),        # signed, holding 8-bit values
    ("float32", 1.0, True),       # zero white (Pillow reads no signed integer page whose zero is white)
    ("float32", 255.0, True),
])
def test_deep_grey_tiffs_of_other_ranges_and_white_zero_show_their_greys(dtype, top, white_is_zero, tmp_path):
    """Other ranges a deep grey TIFF's values span, and pages whose zero is white: each shows the
    page's greys, and a floating-point pixel of no data reads as paper even when zero is white."""
    from pipeline.inputs import load_page, sniff

    shown = np.asarray(badfiles.page_image("L", text=True), dtype=np.float64)
    values = (255 - shown if white_is_zero else shown) * top / 255
    values = values.astype(dtype) if dtype == "float32" else np.rint(values).astype(dtype)
    if dtype == "float32":
        values[5, 5] = np.nan
    path = tmp_path / "deep.tif"
    path.write_bytes(badfiles._plain_tiff(values, photometric=0 if white_is_zero else 1))
    data = path.read_bytes()
    image, dpi = load_page(path.name, sniff(data), data, 1, int(MAX_PIXELS))
    grey = np.asarray(image, dtype=np.int16)
    assert image.mode == "L" and dpi == (100, 100)
    assert np.abs(grey - shown).max() <= 1
    assert grey[5, 5] == 255


def test_a_full_size_tiff_page_marked_as_a_preview_is_kept(tmp_path):
    """NewSubfileType 1 marks a preview; on a frame of a full page's size it is a mistake, and
    trusting it dropped the page without a word. The frame is kept as a page."""
    from pipeline.inputs import load_page, read_source

    page = np.full((1400, 1000), 255, dtype=np.uint8)
    page[100:110, 100:900] = 0
    path = tmp_path / "marked.tif"
    path.write_bytes(badfiles._plain_tiff(page, more=((page[::-1].copy(), {"subfile_type": 1}),)))
    source = read_source(path, int(MAX_PIXELS) * 4)
    second, _ = load_page(path.name, "tiff", source.data, 2, int(MAX_PIXELS) * 4)
    assert source.page_count == 2 and np.asarray(second)[1290:1300, 100:900].max() == 0


def test_a_twelve_bit_grey_tiff_shows_its_greys(tmp_path):
    """A TIFF of 12-bit samples (a film or microfilm scanner's): Pillow reads them as 16-bit
    values up to 4,095, and taken from 0-65,535 the page came out black."""
    from pipeline.inputs import load_page, sniff

    shown = np.asarray(badfiles.page_image("L", text=True), dtype=np.int32)
    path = tmp_path / "twelve.tif"
    path.write_bytes(badfiles._plain_tiff((shown * 4095 // 255).astype(np.uint16), twelve_bits=True))
    data = path.read_bytes()
    image, _ = load_page(path.name, sniff(data), data, 1, int(MAX_PIXELS))
    assert np.abs(np.asarray(image, dtype=np.int32) - shown).max() <= 1


@pytest.mark.parametrize("kind", ["png_transparent_paper", "png16_transparent_paper", "tiff_with_thumbnail", "mpo_phone_photo",
                                  "pdf_cropped_to_the_scan"])
def test_a_page_with_transparent_paper_a_preview_or_a_gain_map_is_the_one_page_it_shows(kind, tmp_path):
    """A PNG whose paper is a transparent black came out as a black page; a TIFF page followed by
    its preview made two pages; a phone's photo saved as MPO (the photo, then its gain map) was
    refused as truncated; a PDF scan on a 40-inch sheet cropped to the scan came out as the whole
    sheet at 72 dpi, the scan small in its corner. Each is one page, showing the page."""
    from pipeline.inputs import load_page, read_source

    path = getattr(badfiles, kind)(tmp_path)
    source = read_source(path, int(MAX_PIXELS))
    image, _ = load_page(path.name, source.kind, source.data, 1, int(MAX_PIXELS))
    shown = np.asarray(badfiles.page_image("L", text=True), dtype=np.int16)
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    assert source.page_count == 1 and grey.shape == shown.shape
    # within a JPEG's rounding (the PDF's scan is a JPEG of quality 80, drawn again by poppler)
    assert np.abs(grey - shown).mean() < (12 if kind.startswith("pdf") else 3)


@pytest.mark.parametrize("kind", ["tiff_with_thumbnail", "mpo_phone_photo"])
def test_the_counter_s_draft_counts_the_pages_ingest_counts(kind, tmp_path):
    """A preview or a gain map is no page at the counter either: the draft showed it as page 2."""
    from pipeline.intake import _split_image
    from pipeline.inputs import sniff

    data = getattr(badfiles, kind)(tmp_path).read_bytes()
    assert _split_image("x", sniff(data), data, int(MAX_PIXELS)) == [(sniff(data), data)]


def test_the_counter_s_draft_shows_the_greys_of_each_page_of_a_twelve_bit_tiff(tmp_path):
    """A TIFF of several 12-bit pages is cut into one file per page at the counter: each shows
    the page's greys (the cut kept 16-bit values without their bit depth, and came out black)."""
    from PIL import Image

    from pipeline.intake import _split_image

    shown = np.asarray(badfiles.page_image("L", text=True), dtype=np.int32)
    twelve = (shown * 4095 // 255).astype(np.uint16)
    data = badfiles._plain_tiff(twelve, twelve_bits=True, more=((twelve, {"twelve_bits": True}),))
    pages = _split_image("x.tif", "tiff", data, int(MAX_PIXELS))
    assert len(pages) == 2
    for kind, page in pages:
        grey = np.asarray(Image.open(io.BytesIO(page)).convert("L"), dtype=np.int32)
        assert kind == "tiff" and np.abs(grey - shown).max() <= 1


def test_a_pdf_crop_box_outside_its_page_is_ignored(tmp_path):
    """A CropBox that misses the MediaBox shows nothing: the page is its MediaBox, as before."""
    import pikepdf

    from pipeline.inputs import load_page

    pdf = badfiles._pdf_with_image(badfiles.page_image("L", text=True), page_pt=(612, 792))
    pdf.pages[0].obj["/CropBox"] = pikepdf.Array([1000, 1000, 1300, 1400])
    path = tmp_path / "crop-outside.pdf"
    pdf.save(path)
    image, _ = load_page(path.name, "pdf", path.read_bytes(), 1, int(MAX_PIXELS))
    assert image.size == (612, 792)  # 8.5 x 11 inches at 72 dpi (poppler showed 1 x 1 pixel)


def test_a_photo_stored_mirrored_is_read_as_its_orientation_tag_shows_it(tmp_path):
    """A front camera's photo is stored mirrored with an EXIF orientation saying so (2, 4, 5, 7):
    every viewer shows it put right, and kept mirrored its text layer was nonsense. Only the
    mirror is undone here; the quarter turns are the page stage's."""
    from PIL import Image

    from pipeline.inputs import load_page, read_source

    page = badfiles.page_image("L", text=True)
    for tag in (2, 4, 5, 7):
        exif = Image.Exif()
        exif[0x0112] = tag
        stored = _stored_for(page, tag)
        path = tmp_path / f"mirrored-{tag}.jpg"
        stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
        source = read_source(path, int(MAX_PIXELS))
        image, _ = load_page(path.name, source.kind, source.data, 1, int(MAX_PIXELS))
        upright = np.asarray(page, dtype=np.int16)
        turns = [np.asarray(image.rotate(angle, expand=True).convert("L"), dtype=np.int16)
                 for angle in (0, 90, 180, 270)]
        same = [t for t in turns if t.shape == upright.shape and np.abs(t - upright).mean() < 3]
        assert same, f"EXIF orientation {tag}: the page is not the page turned, it is mirrored"


def _stored_for(page, tag: int):
    """How a camera stores ``page`` when it writes EXIF orientation ``tag`` (the inverse of what a
    viewer does to show it)."""
    from PIL import Image

    undo = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 4: [Image.Transpose.FLIP_TOP_BOTTOM],
            5: [Image.Transpose.TRANSPOSE], 7: [Image.Transpose.TRANSVERSE]}[tag]
    for method in undo:
        page = page.transpose(method)
    return page


def test_a_pdf_page_that_outlasts_its_time_is_stopped_with_its_rasteriser(tmp_path):
    """A page of a million vector strokes takes poppler minutes. Given the page's time (a worker's
    limit), the rasteriser is stopped when it ends and the page reported out of time; before, the
    worker's interruption left pdftoppm running, blocked on its pipe, after the job had failed."""
    import subprocess
    import time

    import pikepdf

    from ocr.engine import PageTimeUp
    from pipeline.inputs import load_page

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    strokes = "\n".join(f"{x % 590} {x % 830} m {x % 590 + 3} {x % 830 + 5} {x % 590 + 6} {x % 830 - 5} "
                        f"{x % 590 + 9} {x % 830} c S" for x in range(200_000))
    form = pikepdf.Stream(pdf, ("0.2 w\n" + strokes).encode())
    form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 595, 842]
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=form))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b" ".join([b"/Fm0 Do"] * 40))
    path = tmp_path / "strokes.pdf"
    pdf.save(path, compress_streams=True)

    started = time.monotonic()
    with pytest.raises(PageTimeUp):
        load_page(path.name, "pdf", path, 1, int(MAX_PIXELS), deadline=started + 4)
    assert time.monotonic() - started < 15
    left = subprocess.run(["pgrep", "-f", f"pdftoppm.*{tmp_path}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"pdftoppm still running: {left.stdout}"


def test_invalid_dossier_code_is_refused_before_anything(cli, home, tmp_path):
    code, _, err = cli("ingest", "--dossier", "../../etc/passwd", "--title", "x", _good_page(tmp_path))
    assert code != 0 and "Mã hồ sơ không hợp lệ" in err
    assert stored_keys(home) == []


def test_a_bad_file_among_good_ones_is_named_with_its_page_and_nothing_is_stored(cli, home, tmp_path, monkeypatch):
    """Several files, one bad on its second page and one over the limit: both named at once, and
    not even the good pages' originals are stored."""
    monkeypatch.setenv("SOHOA_MAX_PIXELS", MAX_PIXELS)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad_page, bomb = badfiles.tiff_truncated_second_page(tmp_path / "a"), badfiles.png_bomb_header(tmp_path / "b")
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", _good_page(tmp_path), bad_page, bomb)
    assert code == 3, err
    assert "two.tif, trang 2" in err and "bomb.png" in err and "2 tệp không hợp lệ" in err
    assert stored_keys(home) == []


def test_a_thick_tiff_damaged_on_page_57_is_refused_naming_that_page_and_nothing_is_stored(cli, home, tmp_path):
    """Issue 17: pages are checked one at a time (no frame is kept), and still every page is
    checked before the original is stored: the 57th of 60 pages, its pixel data damaged under an
    intact header, is named, and the refusal stores nothing (no original, no page, no document)."""
    from PIL import Image

    frames = [badfiles.page_image("L", text=True) for _ in range(60)]
    data = bytearray(badfiles._encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:],
                                       compression="tiff_deflate", dpi=(100, 100)))
    with Image.open(io.BytesIO(bytes(data))) as img:
        img.seek(56)
        start, size = img.tag_v2[273][0], img.tag_v2[279][0]
    for i in range(start + 2, start + size):
        data[i] ^= 0xA5
    path = tmp_path / "ho-so-day.tif"
    path.write_bytes(bytes(data))
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Hồ sơ dày", path)
    assert code == 3, err
    assert "ho-so-day.tif, trang 57" in err and CORRUPT in err
    assert stored_keys(home) == [] and _manifest(home, CODE) is None


@pytest.mark.parametrize("wrapped", ["flate", "ascii85", "junk", "not-a-marker"])
def test_a_pdf_image_header_claiming_too_many_pixels_is_found_behind_a_filter_or_junk(wrapped, tmp_path):
    """libjpeg skips bytes before a marker (0xFF 0x00 among them), and poppler decodes the filters
    before DCTDecode: the claim must be read through both, or the 1-KB bomb of the bad-input review
    gets past (3 bytes got it past the first check: the read-only review)."""
    import base64
    import struct
    import zlib

    from pipeline.errors import InputError
    from pipeline.inputs import read_source

    jpeg = bytearray(badfiles._encoded(badfiles.Image.new("L", (200, 200), 255), "JPEG"))
    at = jpeg.index(b"\xff\xc0")
    jpeg[at + 5:at + 9] = struct.pack(">HH", 20000, 20000)
    if wrapped == "junk":
        data, filters = bytes(jpeg[:at]) + b"\x00\x13junk" + bytes(jpeg[at:]), "/DCTDecode"
    elif wrapped == "not-a-marker":
        data, filters = bytes(jpeg[:2]) + b"\xff\x00\x7f" + bytes(jpeg[2:]), "/DCTDecode"
    elif wrapped == "ascii85":
        data, filters = base64.a85encode(bytes(jpeg)) + b"~>", ["/ASCII85Decode", "/DCTDecode"]
    else:
        data, filters = zlib.compress(bytes(jpeg)), ["/FlateDecode", "/DCTDecode"]
    pdf = pikepdf.open(io.BytesIO(badfiles._pdf_with_encoded(data, "/DCTDecode")))
    pdf.pages[0].Resources.XObject.Im0.Filter = (pikepdf.Array([pikepdf.Name(f) for f in filters])
                                                  if isinstance(filters, list) else pikepdf.Name(filters))
    path = tmp_path / "bom.pdf"
    pdf.save(path)
    with pytest.raises(InputError, match="20000x20000 vượt quá giới hạn"):
        read_source(path, 5_000_000)


def test_a_scan_behind_an_ascii_filter_is_still_read(tmp_path):
    """A PDF made from PostScript puts ASCII85 before DCTDecode: the header check refused it as
    damaged ("read_bytes called on unfilterable stream"; the read-only review)."""
    import base64

    from pipeline.inputs import read_source

    jpeg = badfiles._encoded(badfiles.page_image("L", (200, 260), text=True), "JPEG")
    pdf = pikepdf.open(io.BytesIO(badfiles._pdf_with_encoded(base64.a85encode(jpeg) + b"~>", "/DCTDecode")))
    image = pdf.pages[0].Resources.XObject.Im0
    image.Filter = pikepdf.Array([pikepdf.Name.ASCII85Decode, pikepdf.Name.DCTDecode])
    image.Width, image.Height = 200, 260
    path = tmp_path / "postscript.pdf"
    pdf.save(path)
    assert read_source(path, 5_000_000).page_count == 1
