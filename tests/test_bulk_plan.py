"""Planning a bulk conversion and its report, as an archivist would check them: the right
documents in the right order, every input accounted for, problems said plainly, a report
that opens in Excel with Vietnamese headers. No OCR, no store: tiny image files only."""
from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from PIL import Image

from pipeline import dossier
from pipeline.bulk_plan import BulkDocument, BulkPlan, BulkProblem, natural_key, plan, title_and_order
from pipeline.bulk_report import BulkOutcome, CSV_HEADERS, report_paths, write_report
from pipeline.errors import DossierCodeError, InputError

ONE_STOP = "H15.50.05.13-261008-0975"
ARCHIVE = "H15.50.05.13-2019-0123"


def image(path: Path, fmt: str | None = None) -> Path:
    """A tiny real image (PNG, JPEG, TIFF or a one-page PDF, by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".pdf": "PDF"}.get(
        path.suffix.lower(), "PNG")
    Image.new("L", (8, 8), 255).save(path, fmt)
    return path


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names(doc: BulkDocument) -> list[str]:
    return [Path(f).name for f in doc.files]


def by_source(p: BulkPlan) -> dict:
    return {item.source: item for item in (*p.documents, *p.problems)}


# --------------------------------------------------------------------------- dossier keys

@pytest.mark.parametrize("code,kind", [
    (ONE_STOP, "ordinary"), ("M01.001.01-260201-DV0001", "central"),
    (ARCHIVE, "archive"), ("000.00.12.H15-1975-7", "archive"), ("H23-2019-999999", "archive"),
])
def test_dossier_key_is_a_one_stop_code_or_an_archive_file_code(code, kind):
    assert dossier.parse_key(code)["kind"] == kind
    assert dossier.validate_key(code) == code


def test_archive_file_code_parts():
    assert dossier.parse_key(ARCHIVE) == {"code": ARCHIVE, "kind": "archive", "agency": "H15.50.05.13",
                                          "year": 2019, "number": "0123"}


def test_one_stop_codes_keep_their_own_rules_and_archive_codes_stay_out_of_parse():
    assert dossier.parse_key(ONE_STOP) == dossier.parse(ONE_STOP)
    with pytest.raises(DossierCodeError, match="Mã hồ sơ"):
        dossier.validate(ARCHIVE)  # ingest's own check is unchanged
    with pytest.raises(DossierCodeError, match="Ngày tiếp nhận"):
        dossier.parse_key("H15.50.05.13-261308-0975")  # a one-stop shape with a bad date is not archive


@pytest.mark.parametrize("code,says", [
    (f"H15-{date.today().year + 1}-0001", "Năm hình thành"),
    ("H15-1944-0001", "Năm hình thành"),
    ("H15-2019-0000", "Số hồ sơ"),
    ("H15-2019-1234567", "Số hồ sơ"),
    ("A" * 36 + "-2019-0001", "Mã cơ quan quá dài"),
    ("000.00.12.H15.2019.0123", "'000.00.12.H15-2019-0123'"),   # dotted form: the hyphen form is suggested
    ("h15.50-2019-0001", "chữ in hoa: 'H15.50-2019-0001'"),
    ("H15.50_2019_0001", "'H15.50-2019-0001'"),
    ("H15.50-2019-0001 ", "khoảng trắng thừa"),
    ("Hồ sơ cũ số 1", "mã hồ sơ lưu trữ <mã cơ quan>-YYYY"),     # Vietnamese shown as is, both formats named
    ("H15..50-2019-0001", "Mã hồ sơ không hợp lệ"), ("../H15-2019-0001", "Mã hồ sơ không hợp lệ"),
    ("H15-2019-0001/..", "Mã hồ sơ không hợp lệ"), ("H15-2019-00\x001", "\\x00"),
    ("H15-٢٠١٩-0001", "Mã hồ sơ không hợp lệ"), ("H15-19-0001", "Mã hồ sơ không hợp lệ"),
    ("H15-2019-0001" + "1" * 90, "Mã hồ sơ không hợp lệ"),
])
def test_bad_keys_are_refused_with_a_message_naming_both_formats_or_the_fault(code, says):
    with pytest.raises(DossierCodeError) as caught:
        dossier.parse_key(code)
    assert says in caught.value.message_vi
    if caught.value.message_vi.startswith("Mã hồ sơ không hợp lệ"):
        assert "YYMMDD" in caught.value.message_vi and "YYYY" in caught.value.message_vi


def test_an_archive_code_is_a_safe_storage_key_and_a_doc_id_prefix():
    from storage import keys

    assert keys.manifest(ARCHIVE) == f"dossiers/{ARCHIVE}/manifest.json"
    assert dossier.doc_id(ARCHIVE, 3) == f"{ARCHIVE}.003"
    longest = "A" * 35 + "-2019-" + "9" * 6
    assert dossier.validate_key(longest) == longest and len(longest) <= dossier.MAX_CODE_LEN


def test_an_archive_code_never_looks_like_a_one_stop_code():
    # the date part of a one-stop code has 6 digits, the year of an archive code 4
    for code in ("H15-201208-0001", "H15-190801-2019", "M01.001.01-201201-DV0001"):
        assert dossier.parse_key(code)["kind"] in ("ordinary", "central")
    for code in ("H15-2019-0801", "H15-2019-201908", "M01.001.01-2019-0001"):
        assert dossier.parse_key(code)["kind"] == "archive"
        with pytest.raises(DossierCodeError):
            dossier.parse(code)
    with pytest.raises(DossierCodeError, match="Năm hình thành"):
        dossier.parse_key("H15-2610-0975")  # not a one-stop code with a short date


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name,title,order", [
    ("01_Don_de_nghi", "Don de nghi", 1), ("01 - Giấy tờ tùy thân", "Giấy tờ tùy thân", 1),
    ("3. Bản vẽ", "Bản vẽ", 3), ("12) Phụ lục", "Phụ lục", 12), ("Quyết định", "Quyết định", None),
    ("2019 Báo cáo", "2019 Báo cáo", None), ("07", "07", 7), ("  Tờ  khai  ", "Tờ khai", None),
    (unicodedata.normalize("NFD", "02_Đơn"), "Đơn", 2),
])
def test_title_and_order_from_a_name(name, title, order):
    assert title_and_order(name) == (title, order)
    assert unicodedata.is_normalized("NFC", title_and_order(name)[0])


def test_natural_order_reads_numbers_as_numbers():
    got = sorted(["trang10.png", "Trang2.png", "trang1.png", "trang 3.png", "bia.png", "trang_4.png"], key=natural_key)
    assert got == ["bia.png", "trang1.png", "Trang2.png", "trang 3.png", "trang_4.png", "trang10.png"]
    # dossier folders too: an archive code's year 2019 is a smaller number than a date 261008
    assert sorted(["H15.50.05.13-261008-1000", ONE_STOP, ARCHIVE], key=natural_key) == [
        ARCHIVE, ONE_STOP, "H15.50.05.13-261008-1000"]


# --------------------------------------------------------------------------- folder tree

@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "ton dong"
    d = src / ONE_STOP
    image(d / "02 - Giay_to tuy than.tif")
    image(d / unicodedata.normalize("NFD", "01_Đơn đề nghị.pdf"))
    for n in (10, 2, 1):
        image(d / "10_Phu luc" / f"trang{n}.png")
    image(d / "3 - Ban ve" / "b.jpg")
    image(d / "3 - Ban ve" / "a.jpg")
    image(d / "Ghi chu.jpeg")
    touch(d / ".DS_Store")
    touch(d / "Thumbs.db")
    touch(d / "10_Phu luc" / "._trang1.png")
    touch(d / "~$bien ban.docx")
    image(src / ARCHIVE / "Quyet dinh.tiff")
    touch(src / ".hidden" / "x.png")
    return src


def test_folder_tree_plans_each_document_with_its_pages_in_order(tree):
    p = plan(tree)
    assert p.problems == ()
    assert [(d.dossier, d.title) for d in p.documents] == [
        (ARCHIVE, "Quyet dinh"), (ONE_STOP, "Đơn đề nghị"), (ONE_STOP, "Giay to tuy than"), (ONE_STOP, "Ban ve"),
        (ONE_STOP, "Phu luc"), (ONE_STOP, "Ghi chu")]
    docs = {d.title: d for d in p.documents}
    assert names(docs["Phu luc"]) == ["trang1.png", "trang2.png", "trang10.png"]  # natural, hidden one ignored
    assert names(docs["Ban ve"]) == ["a.jpg", "b.jpg"]
    assert docs["Phu luc"].source == f"{ONE_STOP}/10_Phu luc"
    assert docs["Giay to tuy than"].source == f"{ONE_STOP}/02 - Giay_to tuy than.tif"
    assert all(Path(f).is_absolute() and Path(f).is_file() for d in p.documents for f in d.files)
    assert plan(tree) == p  # deterministic


def test_relative_source_gives_absolute_files(tree, monkeypatch):
    monkeypatch.chdir(tree.parent)
    p = plan(Path(tree.name))
    assert all(Path(f).is_absolute() for d in p.documents for f in d.files)


@pytest.fixture
def messy(tmp_path) -> Path:
    src = tmp_path / "kho"
    image(src / ARCHIVE / "01_Ho so goc.pdf")
    image(src / "Ho so cu 1" / "a.png")                   # folder name is not a code
    image(src / "Ho so cu 1" / "trang" / "1.png")
    image(src / "Ho so cu 1" / "trang" / "2.png")
    (src / "H15.50-2019-0007").mkdir(parents=True)        # valid code, nothing in it
    touch(src / "danh sach.xlsx")                         # a stray file in SOURCE
    d = src / ONE_STOP
    image(d / "01_Don.png")
    touch(d / "02_Bien ban.docx")                         # unsupported kind
    (d / "03_Trong").mkdir()                              # empty document folder
    touch(d / "03_Trong" / "Thumbs.db")
    image(d / "04_Thieu trang" / "1.png")
    touch(d / "04_Thieu trang" / "2.bmp")                 # a page that cannot be read: the whole document waits
    image(d / "05_Long" / "phan 1" / "1.png")             # nested folder
    image(d / "06_Dung.PNG")
    return src


def test_problems_are_reported_and_nothing_partial_is_converted(messy):
    p = plan(messy)
    assert [(d.dossier, d.source) for d in p.documents] == [
        (ARCHIVE, f"{ARCHIVE}/01_Ho so goc.pdf"),
        (ONE_STOP, f"{ONE_STOP}/01_Don.png"), (ONE_STOP, f"{ONE_STOP}/06_Dung.PNG")]
    problems = {pr.source: pr.reason for pr in p.problems}
    assert problems["Ho so cu 1/a.png"].startswith("Tên thư mục hồ sơ không dùng được làm mã hồ sơ. "
                                                   "Mã hồ sơ không hợp lệ: 'Ho so cu 1'")
    assert "Tên thư mục hồ sơ" in problems["Ho so cu 1/trang"]
    assert "rỗng" in problems["H15.50-2019-0007"]
    assert "không thuộc thư mục hồ sơ" in problems["danh sach.xlsx"]
    assert "'.docx' không được hỗ trợ" in problems[f"{ONE_STOP}/02_Bien ban.docx"]
    assert "Thư mục tài liệu rỗng" in problems[f"{ONE_STOP}/03_Trong"]
    assert "'2.bmp'" in problems[f"{ONE_STOP}/04_Thieu trang"]
    assert "thư mục con 'phan 1'" in problems[f"{ONE_STOP}/05_Long"]
    assert all(pr.reason[0].isupper() and pr.reason == pr.reason.strip() for pr in p.problems)


def test_source_folder_that_is_itself_a_dossier_is_explained(tmp_path):
    src = tmp_path / ONE_STOP
    image(src / "01_Don.png")
    (problem,) = plan(src).problems
    assert problem.source == "01_Don.png" and "thư mục chứa nó" in problem.reason


@pytest.mark.parametrize("fixture", ["tree", "messy"])
def test_every_file_in_the_tree_is_accounted_for_exactly_once(fixture, request):
    src = request.getfixturevalue(fixture)
    p = plan(src)
    on_disk = set()
    for folder, dirs, files in os.walk(src):
        rel_dir = Path(folder).relative_to(src)
        if any(part.startswith(".") for part in rel_dir.parts):
            continue
        for f in files:
            if not (f.startswith((".", "~$")) or f.lower() in ("thumbs.db", "desktop.ini")):
                on_disk.add((rel_dir / f).as_posix())
    planned_files = [Path(f).relative_to(src).as_posix() for d in p.documents for f in d.files]
    assert len(planned_files) == len(set(planned_files))
    for rel in on_disk:
        holders = [d for d in p.documents if rel in
                   {Path(f).relative_to(src).as_posix() for f in d.files}]
        holders += [pr for pr in p.problems if rel == pr.source or rel.startswith(pr.source + "/")]
        assert len(holders) == 1, (rel, holders)
    # and every planned item holds something on disk (or is an empty folder)
    sources = [i.source for i in (*p.documents, *p.problems)]
    assert len(sources) == len(set(sources)) == p.inputs
    for s in sources:
        assert (src / s).exists()


def test_empty_or_wrong_source(tmp_path):
    assert plan(tmp_path) == BulkPlan()
    with pytest.raises(InputError, match="không tồn tại"):
        plan(tmp_path / "khong co")
    with pytest.raises(InputError, match="thư mục hồ sơ hoặc một tệp .csv"):
        plan(touch(tmp_path / "list.xlsx"))


# --------------------------------------------------------------------------- CSV

def write_csv(path: Path, rows: list[list[str]], sep: str, bom: bool = True) -> Path:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=sep, lineterminator="\r\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue().encode("utf-8-sig" if bom else "utf-8"))
    return path


@pytest.mark.parametrize("sep", [",", ";"])
@pytest.mark.parametrize("header", [
    ["Tệp", "Mã hồ sơ", "Tên tài liệu", "Thứ tự"],
    ["tep", "ma_ho_so", "ten", "trang"],
    ["File", "Dossier", "Title", "Page"],
])
def test_csv_with_bom_either_separator_and_vietnamese_headers(tmp_path, sep, header):
    scans = tmp_path / "quet"
    for n in range(1, 5):
        image(scans / f"{n:04d}.tif")
    elsewhere = image(tmp_path / "khac" / "bia.jpg")
    listing = write_csv(tmp_path / "danh sach.csv", [
        header,
        ["quet/0002.tif", ARCHIVE, "Đơn đề nghị, bản gốc", "2"],
        ["quet/0001.tif", ARCHIVE, "Đơn đề nghị, bản gốc", "1"],
        ["quet/0003.tif", ONE_STOP, "Biên bản", "1"],
        [str(elsewhere), ARCHIVE, " Đơn  đề nghị, bản gốc ", "0"],   # absolute path, spaces trimmed
        ["quet/0004.tif", ARCHIVE, "Bản vẽ", ""],
        ["", "", "", ""],                                            # blank row: skipped
    ], sep)
    p = plan(listing)
    assert p.problems == ()
    assert [(d.dossier, d.title, names(d), d.source) for d in p.documents] == [
        (ARCHIVE, "Đơn đề nghị, bản gốc", ["bia.jpg", "0001.tif", "0002.tif"], "danh sach.csv:row 2-3, 5"),
        (ARCHIVE, "Bản vẽ", ["0004.tif"], "danh sach.csv:row 6"),
        (ONE_STOP, "Biên bản", ["0003.tif"], "danh sach.csv:row 4"),
    ]


def test_csv_without_page_column_keeps_row_order_and_reads_windows_paths(tmp_path):
    image(tmp_path / "scan" / "b.png")
    image(tmp_path / "scan" / "a.png")
    listing = write_csv(tmp_path / "list.csv", [["title", "file", "code", "ghi chú"],
                                                 ["Tờ khai", "scan\\b.png", ONE_STOP, "x"],
                                                 ["Tờ khai", "scan\\a.png", ONE_STOP, ""]], ",", bom=False)
    (doc,) = plan(listing).documents
    assert names(doc) == ["b.png", "a.png"]


def rows_of(source: str) -> set[int]:
    spans = source.split(":row ", 1)[1]
    out = set()
    for span in spans.split(", "):
        a, _, b = span.partition("-")
        out |= set(range(int(a), int(b or a) + 1))
    return out


def test_csv_problems_name_the_rows_and_every_row_is_accounted_for(tmp_path):
    for n in range(1, 9):
        image(tmp_path / f"{n}.png")
    touch(tmp_path / "ghi chu.txt")
    rows = [
        ["file", "dossier", "title", "page"],
        ["1.png", ONE_STOP, "Đơn", "1"],                 # 2  ok
        ["2.png", ONE_STOP, "Đơn", "2"],                 # 3  ok
        ["3.png", ONE_STOP, "Biên bản", "1"],            # 4  duplicate row -> document refused
        ["3.png", ONE_STOP, "Biên bản", "1"],            # 5
        ["thieu.png", ARCHIVE, "Tờ trình", "1"],         # 6  missing file -> whole document refused
        ["4.png", ARCHIVE, "Tờ trình", "2"],             # 7
        ["5.png", ARCHIVE, "Quyết định", "1"],           # 8  duplicate page order
        ["6.png", ARCHIVE, "Quyết định", "1"],           # 9
        ["7.png", "", "Không mã", "1"],                  # 10 missing dossier cell
        ["8.png", "Ho so 1", "Mã sai", "1"],             # 11 not a code
        ["ghi chu.txt", ARCHIVE, "Ghi chú", "1"],        # 12 unsupported kind
        ["1.png", ARCHIVE, "Bản sao", "1"],              # 13 a file already in row 2 -> both refused
        ["", ARCHIVE, "Không tệp", "1"],                 # 14 missing file cell
        ["7.png", ARCHIVE, "Trang lạ", "một"],           # 15 page order not a number
        ["8.png", ARCHIVE, "Tên, có phẩy", "1", "x"],    # 16 more cells than the header
    ]
    listing = write_csv(tmp_path / "ds.csv", rows, ",")
    p = plan(listing)
    problems = {pr.source: pr.reason for pr in p.problems}
    assert p.documents == ()  # row 2 shares 1.png with row 13: nothing of either is converted
    assert "liệt kê nhiều lần (dòng 2, 13)" in problems["ds.csv:row 2-3"]
    assert problems["ds.csv:row 4-5"].count("liệt kê nhiều lần (dòng 4-5)") == 1
    assert "trùng thứ tự trang 1 (dòng 4-5)" in problems["ds.csv:row 4-5"]
    assert "Dòng 6: tệp 'thieu.png' không tồn tại" in problems["ds.csv:row 6-7"]
    assert "Trùng thứ tự trang 1 (dòng 8-9)" in problems["ds.csv:row 8-9"]
    assert "thiếu mã hồ sơ" in problems["ds.csv:row 10"]
    assert "Mã hồ sơ không hợp lệ: 'Ho so 1'" in problems["ds.csv:row 11"]
    assert "'.txt' không được hỗ trợ" in problems["ds.csv:row 12"]
    assert "thiếu tệp" in problems["ds.csv:row 14"]
    assert "'một' không phải số nguyên" in problems["ds.csv:row 15"]
    assert "nhiều hơn 4 cột" in problems["ds.csv:row 16"]
    assert all(pr.reason[0].isupper() for pr in p.problems)
    # every data row is in exactly one item
    covered = [n for item in (*p.documents, *p.problems) for n in rows_of(item.source)]
    assert sorted(covered) == list(range(2, len(rows) + 1))


def test_a_csv_gives_each_dossiers_maintenance_paper_file_code_and_dates_and_bad_ones_are_named(tmp_path):
    """An archive's inventory lists, beside each file, its dossier's retention code, paper file
    reference and dates: they reach the dossier (before, a bulk run could set none of them and
    every dossier was dated the day it was digitised)."""
    for n in range(1, 7):
        image(tmp_path / f"{n}.png")
    other = "H15.50.05.13-2019-0124"
    rows = [["tệp", "mã hồ sơ", "tên tài liệu", "trang", "thời hạn bảo quản", "mã hồ sơ giấy", "ngày bắt đầu",
             "ngày kết thúc"],
            ["1.png", ARCHIVE, "Đơn", "1", "6", "Phông 12, hộp 5, hồ sơ 123", "03/02/2019", "31/12/2019"],  # 2
            ["2.png", ARCHIVE, "Đơn", "2", "", "", "", ""],                   # 3: said once for the document
            ["3.png", ARCHIVE, "Biên bản", "", "", "", "", ""],               # 4: nothing given: nothing set
            ["4.png", other, "Đơn", "", "09", "", "", ""],                    # 5: no such code
            ["5.png", other, "Tờ trình", "", "06", "", "2019-12-31", "2019-01-01"],  # 6: ends before it starts
            ["6.png", other, "Bản vẽ", "1", "05", "", "", ""],                # 7
            ["6.png", other, "Bản vẽ", "2", "06", "", "", ""]]                # 8: rows disagree (and a repeat)
    p = plan(write_csv(tmp_path / "muc luc.csv", rows, ";"))
    first, second = p.documents
    assert (first.title, first.maintenance, first.paper_file_code, first.paper_dates) == (
        "Đơn", "06", "Phông 12, hộp 5, hồ sơ 123", ("2019-02-03", "2019-12-31"))
    assert (second.title, second.maintenance, second.paper_file_code, second.paper_dates) == (
        "Biên bản", None, None, None)
    reasons = {p.source.split(":row ")[1]: p.reason for p in p.problems}
    assert "Thời hạn bảo quản '09' không phải mã 01-07" in reasons["5"]
    assert "kết thúc (01/01/2019) trước khi bắt đầu (31/12/2019)" in reasons["6"]
    assert "các dòng ghi thời hạn bảo quản khác nhau (05, 06)" in reasons["7-8"].lower()


@pytest.mark.parametrize("page, period", [("Trang số", "Thời hạn BQ"), ("Tờ số", "THBQ"),
                                          ("STT trang", "Thời hạn lưu trữ"),
                                          ("Số thứ tự trang", "Thời hạn bảo quản (năm)")])
def test_an_inventorys_own_names_for_the_page_order_and_the_retention_are_read(tmp_path, page, period):
    """Headers as district inventories write them were left out in silence (archive staff review):
    the pages were stored in row order, the other way round, and the permanent file kept 10 years,
    signed and write-once. The retention may be written in words or in years too."""
    image(tmp_path / "p1.png")
    image(tmp_path / "p2.png")
    image(tmp_path / "q.png")
    other = "H15.50.05.13-2019-0124"
    years = period.endswith("(năm)")
    image(tmp_path / "r.png")
    rows = [["Tệp", "Mã hồ sơ", "Tên tài liệu", page, period],
            ["p2.png", ARCHIVE, "Tờ trình", "2", "70" if years else "Vĩnh viễn"],
            ["p1.png", ARCHIVE, "Tờ trình", "1", "70" if years else "vĩnh viễn"],
            ["q.png", other, "Đơn", "1", "20" if years else "20 năm"],
            ["r.png", other, "Biên bản", "1", "5"]]  # in years: five years, no code; else code 05
    p = plan(write_csv(tmp_path / "muc luc.csv", rows, ";"))
    assert [(names(d), d.maintenance) for d in p.documents] == [
        (["p1.png", "p2.png"], "02" if years else "01"), (["q.png"], "05")] + ([] if years else [(["r.png"], "05")])
    if years:  # never read as a code: 5 years is not 20, 1 year is not permanent (review)
        (problem,) = p.problems
        assert "'5 năm' không phải mã 01-07" in problem.reason
    else:
        assert p.problems == ()


def test_a_column_that_may_be_the_page_order_or_a_retention_and_is_not_read_is_refused(tmp_path):
    """"Số trang" may be a page's number or the document's count of pages: the inventory is refused,
    naming the column and what to call it, rather than storing the pages in row order; beside a
    page-order column it is the count, and left alone, as any column of notes is."""
    image(tmp_path / "a.png")
    refused = write_csv(tmp_path / "ds.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu", "Số trang", "Ghi chú"],
                                              ["a.png", ONE_STOP, "Đơn", "1", "bản sao"]], ";")
    with pytest.raises(InputError, match="cột 'Số trang' không rõ là thứ tự trang hay số trang") as error:
        plan(refused)
    assert "Thứ tự trang" in error.value.message_vi
    kept = write_csv(tmp_path / "ds2.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu", "Thứ tự trang", "Số trang", "Ghi chú"],
                                            ["a.png", ONE_STOP, "Đơn", "1", "1", "bản sao"]], ";")
    assert [names(d) for d in plan(kept).documents] == [["a.png"]]
    with pytest.raises(InputError, match="cột 'Hạn lưu' không được đọc"):
        plan(write_csv(tmp_path / "ds3.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu", "Hạn lưu"],
                                              ["a.png", ONE_STOP, "Đơn", "05"]], ";"))
    # (second review) longer headers of pages or retention are refused too, not left out
    for header in ("Số thứ tự trang của tài liệu", "Trang số (trong hồ sơ)", "Bảo quản (năm)", "Số năm lưu trữ"):
        with pytest.raises(InputError, match="column not read"):
            plan(write_csv(tmp_path / "ds5.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu", header],
                                                  ["a.png", ONE_STOP, "Đơn", "1"]], ";"))
    with pytest.raises(InputError, match="không có dòng nào dưới dòng tiêu đề"):  # a wrong export
        plan(write_csv(tmp_path / "ds6.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu"]], ";"))
    # columns whose words only look alike are other columns, left alone as before (review)
    other = ["Trạng thái", "Tổ chức", "Thời hạn giải quyết", "Nơi lưu trữ", "Đơn vị bảo quản"]
    alike = write_csv(tmp_path / "ds4.csv", [["Tệp", "Mã hồ sơ", "Tên tài liệu", *other],
                                             ["a.png", ONE_STOP, "Đơn", "xong", "UBND", "15 ngày", "kho 2", "phòng"]],
                      ";")
    assert [names(d) for d in plan(alike).documents] == [["a.png"]]


def test_a_file_name_that_is_not_utf8_is_named_and_the_report_is_still_written(tmp_path):
    """A Windows ZIP unpacked here names its files in cp1258 bytes: the whole report was lost
    (UnicodeEncodeError, exit 70) and the file failed with "Lỗi không mong đợi" (archive review).
    The file is now invalid, its name shown with '\ufffd' for what is not UTF-8, the others go on."""
    folder = tmp_path / "kho" / ARCHIVE
    image(folder / "02_Don.png")
    garbled = os.fsencode(folder) + b"/01_T\xf5 tr\xecnh.png"
    Image.new("L", (600, 800), 255).save(garbled.decode("utf-8", "surrogateescape"), "PNG")
    pages = os.fsencode(folder) + b"/03_Ban ve"
    os.makedirs(pages)
    Image.new("L", (600, 800), 255).save((pages + b"/trang \xe0.png").decode("utf-8", "surrogateescape"), "PNG")
    p = plan(tmp_path / "kho")
    assert [(d.title, names(d)) for d in p.documents] == [("Don", ["02_Don.png"])]
    reasons = {pr.source: pr.reason for pr in p.problems}
    assert set(reasons) == {f"{ARCHIVE}/01_T\ufffd tr\ufffdnh.png", f"{ARCHIVE}/03_Ban ve"}
    assert all("không phải UTF-8" in r for r in reasons.values())
    outcomes = [BulkOutcome.invalid(pr) for pr in p.problems]
    csv_path, json_path, _ = write_report(tmp_path / "bao-cao", outcomes, {"source": str(tmp_path / "kho")})
    assert "01_T\ufffd tr\ufffdnh.png" in json_path.read_text(encoding="utf-8")


def test_a_csv_finds_its_files_written_in_another_unicode_form_or_case(tmp_path):
    """Typed in Excel (composed letters) for scans copied from a Mac (decomposed names), or with
    another case, a name that looks the same was "không tồn tại" (archive review). Each part of the
    path is matched alone, and only when one file matches: two that differ only in case stay apart."""
    mac = tmp_path / unicodedata.normalize("NFD", "Bản quét")
    image(mac / unicodedata.normalize("NFD", "Tờ trình số 1.tif"))
    image(tmp_path / "scan" / "Quyết định.TIF")
    image(tmp_path / "hai" / "a.png")
    image(tmp_path / "hai" / "A.png")
    rows = [["Tệp", "Mã hồ sơ", "Tên tài liệu"], ["Bản quét/Tờ trình số 1.tif", ARCHIVE, "Tờ trình"],
            ["scan/quyết định.tif", ARCHIVE, "Quyết định"], ["hai/a.PNG", ARCHIVE, "Ảnh"]]
    p = plan(write_csv(tmp_path / "ds.csv", [[unicodedata.normalize("NFC", c) for c in r] for r in rows], ";"))
    assert [(d.title, Path(d.files[0]).exists()) for d in p.documents] == [("Tờ trình", True), ("Quyết định", True)]
    (problem,) = p.problems
    assert "tệp 'hai/a.PNG' không tồn tại" in problem.reason


def test_a_scan_named_without_an_extension_or_with_dots_in_its_title_is_a_document_of_that_title(tmp_path):
    """"Biên bản ngày 15.3.2024" was refused as a '.2024' file and "Nguyễn Văn A. CCCD" as a '. CCCD'
    one; a file without an extension was unsupported in a folder, though ingest and the API read it
    by its content (review). What follows the last dot is an extension only when it looks like one."""
    from pipeline.inputs import read_source

    folder = tmp_path / "kho" / ARCHIVE
    folder.mkdir(parents=True)
    for name in ("01 Biên bản ngày 15.3.2024", "02 Nguyễn Văn A. CCCD", "03 to-khai"):
        Image.new("L", (400, 500), 255).save(folder / name, "PNG")
    (folder / "04 Ghi chú.2024").write_text("không phải ảnh")
    p = plan(tmp_path / "kho")
    assert [d.title for d in p.documents] == ["Biên bản ngày 15.3.2024", "Nguyễn Văn A. CCCD", "to-khai"]
    (problem,) = p.problems
    assert "không được hỗ trợ" in problem.reason
    assert read_source(folder / "02 Nguyễn Văn A. CCCD", 10**8).kind == "png"
    with pytest.raises(InputError, match="phần mở rộng '.jpg' không khớp nội dung PNG"):
        read_source((folder / "03 to-khai").rename(folder / "to-khai.jpg"), 10**8)


def test_excels_other_csvs_are_read_and_a_documents_rows_apart_are_refused(tmp_path):
    """Excel's "Unicode Text" (UTF-16, tabs) and a CSV whose first line names its separator
    ("sep=;") were refused; rows of one title with another document between them were merged
    into one document in silence (husband's and wife's "Bản sao CCCD") (archive review)."""
    for n in range(1, 4):
        image(tmp_path / f"{n}.png")
    rows = [["Tệp", "Mã hồ sơ", "Tên tài liệu"], ["1.png", ARCHIVE, "Bản sao CCCD"], ["2.png", ARCHIVE, "Đơn"],
            ["3.png", ARCHIVE, "Bản sao CCCD"]]
    unicode_text = tmp_path / "unicode.csv"
    unicode_text.write_bytes("\r\n".join("\t".join(r) for r in rows).encode("utf-16"))
    with_sep = tmp_path / "sep.csv"
    with_sep.write_bytes(("sep=;\r\n" + "\r\n".join(";".join(r) for r in rows)).encode("utf-8-sig"))
    bare_utf16 = tmp_path / "utf16-no-bom.csv"  # saved by another tool: no byte order mark
    bare_utf16.write_bytes("\r\n".join("\t".join(r) for r in rows).encode("utf-16-le"))
    blank_pages = tmp_path / "trang-trong.csv"  # a page column left empty orders nothing (review)
    blank_pages.write_text("\r\n".join(";".join(r + [""]) for r in [rows[0][:3] + ["Trang"], *rows[1:]]),
                           encoding="utf-8")
    for listing in (unicode_text, with_sep, bare_utf16, blank_pages):
        p = plan(listing)
        assert [d.title for d in p.documents] == ["Đơn"], listing.name
        (apart,) = p.problems
        assert apart.source.endswith(":row 2, 4") and "không liền nhau (dòng 4 đến sau" in apart.reason


def test_a_disks_own_folders_are_left_alone(tmp_path):
    image(tmp_path / "kho" / ARCHIVE / "Đơn.png")
    for own in ("$RECYCLE.BIN", "System Volume Information"):
        (tmp_path / "kho" / own).mkdir()
    p = plan(tmp_path / "kho")
    assert [d.title for d in p.documents] == ["Đơn"] and p.problems == ()


def test_csv_mixing_numbered_and_unnumbered_pages_is_refused(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")
    listing = write_csv(tmp_path / "ds.csv", [["tệp", "mã hồ sơ", "tên tài liệu", "thứ tự trang"],
                                              ["a.png", ONE_STOP, "Đơn", "1"], ["b.png", ONE_STOP, "Đơn", ""]], ";")
    (problem,) = plan(listing).problems
    assert problem.reason.startswith("Thiếu thứ tự trang ở dòng 3")


def test_csv_that_cannot_be_read_is_refused_whole(tmp_path):
    not_utf8 = tmp_path / "cp1258.csv"
    not_utf8.write_bytes("Tên têp;Ma hô sơ;Tên\n".encode("cp1258"))  # (cp1258 bytes are not UTF-8)
    with pytest.raises(InputError, match="không phải UTF-8"):
        plan(not_utf8)
    no_title = write_csv(tmp_path / "thieu.csv", [["tệp", "mã hồ sơ", "trang"], ["a.png", ONE_STOP, "1"]], ";")
    with pytest.raises(InputError, match="thiếu cột tên tài liệu"):
        plan(no_title)
    with pytest.raises(InputError, match="không có dòng"):
        plan(touch(tmp_path / "rong.csv", b"\xef\xbb\xbf\r\n"))


# --------------------------------------------------------------------------- report

def outcomes_for(p: BulkPlan) -> list[BulkOutcome]:
    out = [BulkOutcome(d.source, d.dossier, d.title, "done", doc_id=dossier.doc_id(d.dossier, i + 1),
                       pages=len(d.files), job="job-1") for i, d in enumerate(p.documents)]
    out[-1] = BulkOutcome(out[-1].source, out[-1].dossier, out[-1].title, "skipped", doc_id=out[-1].doc_id, pages=1)
    out[0] = BulkOutcome(out[0].source, out[0].dossier, out[0].title, "failed",
                         error="Tệp không hợp lệ: ảnh hỏng")
    return out + [BulkOutcome.invalid(pr) for pr in p.problems]


def test_report_has_one_row_per_input_with_vietnamese_headers_and_right_totals(messy, tmp_path):
    p = plan(messy)
    outcomes = outcomes_for(p)
    started = datetime(2026, 3, 2, 8, 30)
    csv_path, json_path, xlsx_path = write_report(tmp_path / "bao cao", outcomes,
                                                  {"source": messy, "started": started,
                                                   "finished": "2026-03-02T09:00:00", "jobs": 4})
    assert (csv_path.name, json_path.name, xlsx_path.name) == ("bao cao.csv", "bao cao.json", "bao cao.xlsx")
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads the BOM and shows Vietnamese
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert tuple(table[0]) == CSV_HEADERS and table[0][:3] == ["Nguồn", "Mã hồ sơ", "Tên tài liệu"]
    assert len(table) - 1 == len(outcomes) == p.inputs
    assert [r[0] for r in table[1:]] == [o.source for o in outcomes]
    assert {r[3] for r in table[1:]} == {"đã số hóa (done)", "đã có, bỏ qua (skipped)", "lỗi (failed)",
                                         "không hợp lệ (invalid)"}
    assert any("Tên thư mục hồ sơ" in r[6] for r in table[1:])

    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert list(report)[:5] == ["source", "started", "finished", "totals", "items"]
    assert report["source"] == str(messy) and report["started"] == "2026-03-02T08:30:00" and report["jobs"] == 4
    assert report["totals"] == {"documents": p.inputs, "done": 1, "skipped": 1, "held": 0, "failed": 1, "stopped": 0,
                                "invalid": len(p.problems), "pages": 1 + 1}
    assert report["items"][0] == {"source": outcomes[0].source, "dossier": ARCHIVE, "title": "Ho so goc", "status": "failed",
                                  "docId": None, "pages": 0, "error": "Tệp không hợp lệ: ảnh hỏng", "job": None}
    # the workbook, which a Vietnamese-locale Excel opens in columns (it split the CSV at ';' and
    # showed one column: backlog review), with the totals on a sheet of their own
    book = openpyxl.load_workbook(xlsx_path)
    rows = list(book["Báo cáo"].iter_rows(values_only=True))
    assert rows[0] == CSV_HEADERS and [r[0] for r in rows[1:]] == [o.source for o in outcomes]
    assert rows[1][3] == "lỗi (failed)" and rows[1][5] == 0
    totals_sheet = {r[0]: r[1] for r in book["Tổng hợp"].iter_rows(values_only=True) if r and r[0]}
    assert totals_sheet["Tài liệu"] == p.inputs and totals_sheet["Lỗi"] == 1 and totals_sheet["Nguồn"] == str(messy)
    assert sorted(os.listdir(tmp_path)) == ["bao cao.csv", "bao cao.json", "bao cao.xlsx", "kho"]  # no temporary file


@pytest.mark.parametrize("given,expected", [
    ("r.csv", ("r.csv", "r.json", "r.xlsx")), ("r.JSON", ("r.csv", "r.JSON", "r.xlsx")),
    ("r.xlsx", ("r.csv", "r.json", "r.xlsx")), ("r", ("r.csv", "r.json", "r.xlsx")),
    ("bao cao.2026", ("bao cao.2026.csv", "bao cao.2026.json", "bao cao.2026.xlsx")),
])
def test_report_paths(given, expected):
    assert tuple(p.name for p in report_paths(Path(given))) == expected


def test_report_rewrites_atomically_and_neutralises_formulas(tmp_path):
    target = tmp_path / "r.json"
    write_report(target, [BulkOutcome("a.png", ONE_STOP, "Đơn", "done", pages=2)], {"source": "x"})
    write_report(target, [BulkOutcome("=HYPERLINK(\"http://x\")", "", "-Bản sao", "invalid", error="@lỗi")], {})
    table = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8-sig"), newline="")))
    assert table[1][:3] == ["'=HYPERLINK(\"http://x\")", "", "'-Bản sao"] and table[1][6] == "'@lỗi"
    report = json.loads(target.read_text(encoding="utf-8"))
    assert report["items"][0]["source"] == "=HYPERLINK(\"http://x\")"  # the JSON keeps the data as it is
    cells = list(openpyxl.load_workbook(tmp_path / "r.xlsx")["Báo cáo"].iter_rows(min_row=2, values_only=True))[0]
    assert cells[:3] == ("=HYPERLINK(\"http://x\")", None, "-Bản sao")  # as text: the workbook holds no formula
    assert "<f>" not in zipfile.ZipFile(tmp_path / "r.xlsx").read("xl/worksheets/sheet1.xml").decode()
    # a name on disk may hold control characters, which a worksheet cannot: shown, not the report lost
    write_report(target, [BulkOutcome("kho/T\x01 trình.png", "", "T\x01 trình", "invalid", error="x" * 40_000)], {})
    cells = list(openpyxl.load_workbook(tmp_path / "r.xlsx")["Báo cáo"].iter_rows(min_row=2, values_only=True))[0]
    assert cells[0] == "kho/T\ufffd trình.png" and len(cells[6]) == 32_767
    assert report["totals"]["invalid"] == 1 and report["source"] is None
    assert sorted(os.listdir(tmp_path)) == ["r.csv", "r.json", "r.xlsx"]


def test_outcome_status_is_checked():
    with pytest.raises(ValueError):
        BulkOutcome("a", ONE_STOP, "Đơn", "ok")
    problem = BulkProblem("x/a.png", "lý do", dossier="x", title="a")
    assert BulkOutcome.invalid(problem) == BulkOutcome("x/a.png", "x", "a", "invalid", error="lý do")
