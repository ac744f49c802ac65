"""Issue 13, item 5: the quarterly digitisation report, on documents really ingested (at the
counter and in bulk) whose upload and signing times are then set to spread them over a quarter."""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout

import pytest
import sqlalchemy as sa

from pipeline.errors import UsageError
from pipeline.report import (DigitisationReport, chart_svg, digitisation_report, parse_quarter, to_csv,
                             to_xlsx)
from storage import jobs as job_table
from tests.conftest import save_page

A1, A2, A3 = "H23.50-260705-0001", "H23.50-260820-0002", "H23.50-260930-0004"  # agency H23.50
B1, B2 = "H15-2019-0007", "H15.02-260920-0003"  # agencies H15 (an archive file, in bulk) and H15.02

# (dossier, title) -> (upload time, signing time), as the operator would have seen them
TIMES = {
    (A1, "Đơn đề nghị"): ("2026-07-10T09:00:00+07:00", "2026-07-10T09:30:00+07:00"),       # 30 min
    (A1, "Bản sao giấy tờ"): ("2026-08-03T08:00:00+07:00", "2026-08-03T10:00:00+07:00"),   # 120 min
    (A2, "Tờ khai"): ("2026-06-28T16:00:00+07:00", "2026-07-02T16:00:00+07:00"),           # Q2 upload, 5760 min
    (B1, "Hồ sơ lưu trữ"): ("2026-09-15T14:00:00+07:00", "2026-09-15T14:45:00+07:00"),     # 45 min
    # 00:10 on 1 October in Vietnam, still 30 September in UTC: an October conversion
    (A3, "Giấy ủy quyền"): ("2026-09-30T23:50:00+07:00", "2026-09-30T17:10:00+00:00"),     # 20 min
}


@pytest.fixture(scope="module")
def data(tmp_path_factory, rendered):
    from api import cli
    from storage import db as database
    from storage.local import LocalStore

    root = tmp_path_factory.mktemp("report")
    home = root / "home"
    saved = {k: os.environ.pop(k, None) for k in ("SOHOA_HOME", "SOHOA_STORAGE", "SOHOA_DATABASE_URL")}
    os.environ["SOHOA_HOME"] = str(home)

    def page(name: str, seed: int, layout: str = "text"):
        return save_page(rendered(f"report-{name}", layout=layout, seed=seed, dpi=150), root / f"{name}.png")

    def run(*args) -> None:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main([str(a) for a in args])
        assert code == 0, err.getvalue() + out.getvalue()

    try:
        run("ingest", "--dossier", A1, "--title", "Đơn đề nghị", page("a1", 901))
        run("ingest", "--dossier", A1, "--title", "Bản sao giấy tờ", page("a2", 902),
            page("blank", 903, layout="blank"))
        run("ingest", "--dossier", A2, "--title", "Tờ khai", page("a3", 904))
        run("ingest", "--dossier", A3, "--title", "Giấy ủy quyền", page("a4", 905))
        (root / "kho" / B1).mkdir(parents=True)
        save_page(rendered("report-b1", layout="text", seed=906, dpi=150), root / "kho" / B1 / "01 - Hồ sơ lưu trữ.png")
        run("bulk", root / "kho")
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value

    db = database.engine_for(f"sqlite:///{home / 'index.sqlite3'}")
    store = LocalStore(home / "store")
    _set_times(db, store)
    # an upload still being converted: received in September, not converted
    job_table.create(db, uuid.uuid4().hex, kind="ingest", dossier=B2, title="Đơn", request={},
                     input_sha256="0" * 64, pages=3, now="2026-09-20T10:00:00+07:00")
    return {"db": db, "store": store}


def _set_times(db, store) -> None:
    """Each document's job uploaded and its signature made at the times of TIMES: the jobs
    table directly, the manifest as a new version under the dossier's lock."""
    from pipeline.repository import load_manifest, save_manifest
    from storage.locks import dossier_lock

    jobs = job_table.jobs
    for code in {code for code, _ in TIMES}:
        with dossier_lock(db, code):
            manifest = load_manifest(store, code)
            documents = []
            for doc in manifest["documents"]:
                uploaded, signed = TIMES[(code, doc["title"])]
                documents.append({**doc, "signature": {**doc["signature"], "signedAt": signed}})
                with db.begin() as conn:
                    moved = conn.execute(jobs.update().where(jobs.c.dossier == code, jobs.c.doc_id == doc["docId"])
                                         .values(created=uploaded, updated=signed))
                    assert moved.rowcount == 1
            save_manifest(store, code, {**manifest, "documents": documents})


@pytest.fixture(scope="module")
def q3(data) -> DigitisationReport:
    return digitisation_report(data["db"], data["store"], "2026-Q3")


def _agency(report: DigitisationReport, code: str):
    return next(a for a in report.agencies if a.agency == code)


def _figures(row) -> tuple:
    return (row.dossiers_received, row.documents_received, row.pages_received,
            row.dossiers_converted, row.documents_converted, row.pages_converted, row.median_minutes)


def test_parse_quarter_accepts_a_quarter_and_refuses_others_in_vietnamese():
    assert parse_quarter("2026-Q4") == (2026, 4) and parse_quarter(" 2025-q1 ") == (2025, 1)
    for bad in ("2026-Q5", "2026-Q0", "2026Q4", "Q4-2026", "", "2026-Q4x"):
        with pytest.raises(UsageError) as refused:
            parse_quarter(bad)
        assert "Quý không hợp lệ" in refused.value.message_vi and "2026-Q4" in refused.value.message_vi


def test_figures_per_agency_and_month(q3):
    assert q3.quarter == "2026-Q3" and q3.months == ("2026-07", "2026-08", "2026-09")
    assert [a.agency for a in q3.agencies] == ["H15", "H15.02", "H23.50"]
    h23 = _agency(q3, "H23.50")
    july, august, september = h23.months
    # July: one upload (A1's first); two signed: A1's (30 min) and A2's, uploaded in June (5760 min)
    assert _figures(july) == (1, 1, 1, 2, 2, 2, 2895.0)
    assert _figures(august) == (1, 1, 2, 1, 1, 2, 120.0)
    # A3 uploaded on 30 September, signed at 00:10 on 1 October Vietnam time: not this quarter's conversion
    assert _figures(september) == (1, 1, 1, 0, 0, 0, None)
    # the quarter: A1 received in two months counts once; the median of all three durations
    assert _figures(h23.total) == (2, 3, 4, 2, 3, 4, 120.0) and h23.total.timed_documents == 3
    # the archive file converted in bulk counts like any other
    assert _figures(_agency(q3, "H15").months[2]) == (1, 1, 1, 1, 1, 1, 45.0)
    assert [_figures(r) for r in _agency(q3, "H15").months[:2]] == [(0, 0, 0, 0, 0, 0, None)] * 2
    assert _figures(_agency(q3, "H15.02").total) == (1, 1, 3, 0, 0, 0, None)


def test_a_conversion_belongs_to_the_month_of_its_signing_in_vietnam_time(data):
    q4 = digitisation_report(data["db"], data["store"], "2026-Q4")
    assert [a.agency for a in q4.agencies] == ["H23.50"]
    october = q4.agencies[0].months[0]
    assert october.month == "2026-10" and _figures(october) == (0, 0, 0, 1, 1, 1, 20.0)
    assert digitisation_report(data["db"], data["store"], "2026-Q2").agencies[0].total.documents_received == 1


def test_flagged_pages_by_kind(q3, data):
    from pipeline.repository import load_manifest

    august = _agency(q3, "H23.50").months[1]
    assert august.flag("blank") == 1 and q3.flag_kinds[:4] == ("blank", "blurry", "cut_off", "low_confidence")
    # every flag the page stage recorded on the quarter's pages, as the manifests hold them
    recorded = {}
    for code in (A1, A2, B1):
        for doc in load_manifest(data["store"], code)["documents"]:
            for page in doc["pages"]:
                for kind in page["flags"]:
                    recorded[kind] = recorded.get(kind, 0) + 1
    totals = {}
    for agency in q3.agencies:
        for kind, n in agency.total.flags:
            totals[kind] = totals.get(kind, 0) + n
    assert {k: n for k, n in totals.items() if n} == recorded and recorded["blank"] == 1
    assert august.pages_flagged >= 1 and _agency(q3, "H15.02").total.pages_flagged == 0


def test_scope_restricts_to_the_users_agencies(data):
    h15 = digitisation_report(data["db"], data["store"], "2026-Q3", agencies=("H15",))
    assert [a.agency for a in h15.agencies] == ["H15", "H15.02"] and h15.scope == ("H15",)
    h23 = digitisation_report(data["db"], data["store"], "2026-Q3", agencies=("H23.50",))
    assert [a.agency for a in h23.agencies] == ["H23.50"] and h23.agencies[0].total.pages_converted == 4
    assert digitisation_report(data["db"], data["store"], "2026-Q3", agencies=("H23.5",)).agencies == ()


def test_csv_has_a_bom_vietnamese_headers_and_the_figures(q3):
    data = to_csv(q3)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Mã cơ quan", "Kỳ", "Hồ sơ tiếp nhận"] and "Trang đã số hóa" in header
    assert "Trang cảnh báo: trang trắng" in header and len(body) == 3 * 4  # three agencies, three months and a total
    by_period = {(r[0], r[1]): dict(zip(header, r)) for r in body}
    august = by_period[("H23.50", "Tháng 8/2026")]
    assert august["Trang đã số hóa"] == "2" and august["Trang cảnh báo: trang trắng"] == "1"
    total = by_period[("H23.50", "Cả quý 3/2026")]
    assert total["Hồ sơ tiếp nhận"] == "2" and total["Thời gian trung vị từ tải lên đến ký số (phút)"] == "120.0"
    assert by_period[("H15.02", "Tháng 9/2026")]["Thời gian trung vị từ tải lên đến ký số (phút)"] == ""


def test_xlsx_reopens_with_the_same_numbers(q3):
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(to_xlsx(q3)))
    sheet = book["Báo cáo"]
    rows = list(sheet.iter_rows(values_only=True))
    csv_rows = list(csv.reader(io.StringIO(to_csv(q3).decode("utf-8-sig"), newline="")))
    assert list(rows[0]) == csv_rows[0]
    for got, report_row in zip(rows[1:], q3.rows(), strict=True):
        assert got[0] == report_row.agency
        assert list(got[2:9]) == [report_row.dossiers_received, report_row.documents_received,
                                  report_row.pages_received, report_row.dossiers_converted,
                                  report_row.documents_converted, report_row.pages_converted,
                                  report_row.pages_flagged]
        assert all(isinstance(v, int) for v in got[2:-1]) and got[-1] == report_row.median_minutes
    assert "Ghi chú" in book.sheetnames


def test_chart_is_well_formed_accessible_svg(q3):
    svg = chart_svg(q3)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("role") == "img" and int(root.get("width")) <= 1366
    assert "quý 3/2026" in root.find(f"{ns}title").text and "H23.50" in root.find(f"{ns}desc").text
    labels = [t.text for t in root.iter(f"{ns}text")]
    assert "H23.50" in labels and "Tháng 7/2026: 2 trang" in labels and "Tháng 9/2026: 1 trang" in labels
    assert "<script" not in svg and "onload" not in svg.lower()
    empty = ET.fromstring(chart_svg(digitisation_report_empty()))
    assert any("Không có trang nào" in (t.text or "") for t in empty.iter(f"{ns}text"))


def digitisation_report_empty() -> DigitisationReport:
    return DigitisationReport("2026-Q1", 2026, 1, ("2026-01", "2026-02", "2026-03"), (), (), (), "")


def test_thousands_of_jobs_are_one_query_and_one_manifest_read_per_dossier(home):
    from pipeline import config, runtime

    settings = config.load()
    db, store = runtime.database(settings), runtime.open_store(settings)
    rows = [dict(id=uuid.uuid4().hex, kind="bulk", dossier=f"H15.{n % 40:02d}-261105-{n:04d}", title="Đơn",
                 state="queued", request="{}", input_sha256="0" * 64, pages_total=2, attempts=1,
                 created="2026-11-05T08:00:00+07:00", updated="2026-11-05T08:00:00+07:00") for n in range(5000)]
    with db.begin() as conn:
        conn.execute(sa.insert(job_table.jobs), rows)
    began = time.monotonic()
    report = digitisation_report(db, store, "2026-Q4")
    assert time.monotonic() - began < 10
    assert len(report.agencies) == 40
    assert sum(a.total.documents_received for a in report.agencies) == 5000
    assert sum(a.months[1].pages_received for a in report.agencies) == 10000
