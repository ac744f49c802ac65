"""The quarterly digitisation report (issue 13, item 5): per agency and per month of a quarter,
what was received and what was converted, the pages flagged by kind, and the median time from
upload to signed e-dossier; shown as a web page with a chart, downloaded as CSV and XLSX.

Where each figure comes from (all times in Asia/Ho_Chi_Minh, so a document signed at
00:10 on 1 October in Hà Nội is October's even though it is 30 September in UTC):

    received      the ``jobs`` table: jobs *created* (uploaded) in the month, of every kind
                  (``ingest`` at the counter, ``bulk`` conversions of archive files, ...) and
                  in every state (queued, running, failed, done). Documents received = jobs;
                  pages received = their ``pages_total``; dossiers received = distinct dossier
                  codes among them. A retry is the same job and counts once; re-uploading files
                  the dossier already holds makes no job and is not counted.
    converted     the dossiers' manifests (the record of what was stored): documents whose
                  signature's ``signedAt`` falls in the month. A document stored unsigned (the
                  explicit ``--unsigned`` choice) is not a signed e-dossier and is not counted.
                  Pages converted = the documents' ``numberOfPage``; dossiers converted =
                  distinct dossiers with such a document.
    flagged       the same documents' pages (manifest ``pages[].flags``, the quality flags the
                  page stage records: blank, blurry, cut_off, low_confidence): per kind the
                  pages carrying it (a page with two flags counts under both kinds), and
                  ``pages_flagged`` the pages with at least one flag (counted once).
    median        for each converted document finished by a job (``jobs.doc_id``; the earliest
                  such job when a resubmission found the document already stored): minutes from
                  the job's ``created`` to the signature's ``signedAt``; the median over the
                  month's documents (None when the month converted nothing with a job).

The quarter total of an agency is computed over the quarter's documents, not added up from
the months: its dossiers are distinct over the quarter (a dossier received in two months counts
once) and its median is the median of all the quarter's durations, not a median of medians.

The agency is the agency code of the dossier code (``dossier.parse_key``: one-stop codes and
archive file codes alike). ``agencies`` restricts the report to the dossiers in scope
(``access.in_scope``: ``H15`` covers ``H15.02-...`` and ``H15-2019-7``), as for the user asking.

Which manifests are read: those of the dossiers with a job that was alive during the quarter
(created before its end and last updated after its start: a document is signed while its job
runs, and its job is marked done after), each read once whatever the number of its jobs. So a
quarter of thousands of jobs costs one query and one read per dossier; documents stored before
the jobs table existed (before sohoa 0.3) are not seen. A manifest that cannot be read is
named in ``unreadable`` and the rest of the report is still made.
"""
from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage import jobs as job_table
from storage.base import ObjectStore

from . import dossier
from .access import in_scope
from .audit import VN, now_vn
from .errors import DossierCodeError, IntegrityError, UsageError
from .repository import load_manifest


# The page quality flags (ocr.quality), in the order a report lists them, and what an officer reads.
FLAG_KINDS = ("blank", "blurry", "cut_off", "low_confidence")
FLAG_LABELS_VI = {"blank": "trang trắng", "blurry": "mờ", "cut_off": "có thể bị cắt mất nội dung",
                  "low_confidence": "độ tin cậy OCR thấp"}

_QUARTER = re.compile(r"(?P<year>[0-9]{4})-[Qq](?P<q>[0-9]+)")
MIN_YEAR, MAX_YEAR = 2000, 2999


def flag_label(kind: str) -> str:
    return FLAG_LABELS_VI.get(kind, kind)


def parse_quarter(text: str) -> tuple[int, int]:
    """``"2026-Q4"`` -> ``(2026, 4)``; UsageError (in Vietnamese) for anything else."""
    m = _QUARTER.fullmatch((text or "").strip())
    if m is None or not 1 <= int(m["q"]) <= 4 or not MIN_YEAR <= int(m["year"]) <= MAX_YEAR:
        shown = "".join(c if c.isprintable() else "?" for c in (text or ""))[:40]
        raise UsageError(f"Quý không hợp lệ: '{shown}' (dạng NNNN-Qn, quý n từ 1 đến 4, ví dụ 2026-Q4)",
                         "quarter must be YYYY-Qn with n in 1..4")
    return int(m["year"]), int(m["q"])


# --------------------------------------------------------------------------- the report's data

@dataclass(frozen=True)
class ReportRow:
    """One agency's figures for one month (``month`` "2026-10") or for the quarter (``month`` None)."""

    agency: str
    month: str | None
    dossiers_received: int
    documents_received: int
    pages_received: int
    dossiers_converted: int
    documents_converted: int
    pages_converted: int
    pages_flagged: int
    flags: tuple[tuple[str, int], ...]  # (flag kind, pages carrying it), in the report's flag_kinds order
    median_minutes: float | None  # upload to signed e-dossier; None when nothing converted (with a job)
    timed_documents: int  # the converted documents the median is over

    def flag(self, kind: str) -> int:
        return dict(self.flags).get(kind, 0)

    def to_json(self) -> dict:
        return {"agency": self.agency, "month": self.month, "dossiersReceived": self.dossiers_received,
                "documentsReceived": self.documents_received, "pagesReceived": self.pages_received,
                "dossiersConverted": self.dossiers_converted, "documentsConverted": self.documents_converted,
                "pagesConverted": self.pages_converted, "pagesFlagged": self.pages_flagged,
                "flags": dict(self.flags), "medianMinutes": self.median_minutes,
                "timedDocuments": self.timed_documents}


@dataclass(frozen=True)
class AgencyReport:
    agency: str
    months: tuple[ReportRow, ...]  # one per month of the quarter, in order, zeros included
    total: ReportRow


@dataclass(frozen=True)
class DigitisationReport:
    quarter: str  # "2026-Q4"
    year: int
    q: int
    months: tuple[str, ...]  # "2026-10", "2026-11", "2026-12"
    scope: tuple[str, ...]  # the agencies the report was restricted to (empty: all)
    flag_kinds: tuple[str, ...]  # the known kinds, then any other kind found, sorted
    agencies: tuple[AgencyReport, ...]  # sorted by agency code; only agencies with activity
    generated: str  # ISO time, Vietnam
    unreadable: tuple[str, ...] = field(default=())  # dossiers whose manifest could not be read

    def rows(self) -> Iterable[ReportRow]:
        """Every row: each agency's months, then its quarter total."""
        for agency in self.agencies:
            yield from agency.months
            yield agency.total

    def to_json(self) -> dict:
        return {"quarter": self.quarter, "months": list(self.months), "scope": list(self.scope),
                "flagKinds": [{"kind": k, "label": flag_label(k)} for k in self.flag_kinds],
                "generated": self.generated, "unreadable": list(self.unreadable),
                "agencies": [{"agency": a.agency, "months": [r.to_json() for r in a.months],
                              "total": a.total.to_json()} for a in self.agencies]}


# --------------------------------------------------------------------------- computing it

def quarter_bounds(year: int, q: int) -> tuple[datetime, datetime, tuple[str, ...]]:
    """The quarter's start (inclusive) and end (exclusive) in Vietnam time, and its months."""
    first = 3 * (q - 1) + 1
    start = datetime(year, first, 1, tzinfo=VN)
    end = datetime(year + 1, 1, 1, tzinfo=VN) if q == 4 else datetime(year, first + 3, 1, tzinfo=VN)
    return start, end, tuple(f"{year}-{m:02d}" for m in range(first, first + 3))


def _vn(stamp: str | None) -> datetime | None:
    """An ISO time as Vietnam time (a time without offset is taken as Vietnam time)."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment.replace(tzinfo=VN) if moment.tzinfo is None else moment.astimezone(VN)


def _agency(code: str) -> str:
    try:
        return dossier.parse_key(code)["agency"]
    except DossierCodeError:  # not a code of today's formats: its first part
        return re.split(r"-", code, maxsplit=1)[0]


@dataclass
class _Bucket:
    dossiers_received: set = field(default_factory=set)
    documents_received: int = 0
    pages_received: int = 0
    dossiers_converted: set = field(default_factory=set)
    documents_converted: int = 0
    pages_converted: int = 0
    pages_flagged: int = 0
    flags: dict = field(default_factory=dict)
    minutes: list = field(default_factory=list)

    def add(self, other: "_Bucket") -> None:
        self.dossiers_received |= other.dossiers_received
        self.documents_received += other.documents_received
        self.pages_received += other.pages_received
        self.dossiers_converted |= other.dossiers_converted
        self.documents_converted += other.documents_converted
        self.pages_converted += other.pages_converted
        self.pages_flagged += other.pages_flagged
        for kind, n in other.flags.items():
            self.flags[kind] = self.flags.get(kind, 0) + n
        self.minutes += other.minutes

    def row(self, agency: str, month: str | None, kinds: tuple[str, ...]) -> ReportRow:
        median = round(statistics.median(self.minutes), 1) if self.minutes else None
        return ReportRow(agency, month, len(self.dossiers_received), self.documents_received, self.pages_received,
                         len(self.dossiers_converted), self.documents_converted, self.pages_converted,
                         self.pages_flagged, tuple((k, self.flags.get(k, 0)) for k in kinds), median,
                         len(self.minutes))


def digitisation_report(db: Engine, store: ObjectStore, quarter: str,
                        agencies: Sequence[str] = ()) -> DigitisationReport:
    """The quarter's report (see the module docstring for what each figure counts)."""
    year, q = parse_quarter(quarter)
    start, end, months = quarter_bounds(year, q)
    scope = tuple(agencies)
    jobs = _jobs_alive(db, start, end)
    buckets: dict[tuple[str, str], _Bucket] = {}

    def bucket(code: str, moment: datetime) -> _Bucket:
        return buckets.setdefault((_agency(code), moment.strftime("%Y-%m")), _Bucket())

    # received: the jobs created in the quarter
    started: dict[tuple[str, str], datetime] = {}  # (dossier, docId) -> the earliest job's creation
    codes: set[str] = set()
    for job in jobs:
        code = job["dossier"]
        if not code or not in_scope(code, scope):
            continue
        codes.add(code)
        created = _vn(job["created"])
        if created is None:
            continue
        if job["doc_id"] and job["state"] == "done":
            key = (code, job["doc_id"])
            if key not in started or created < started[key]:
                started[key] = created
        if start <= created < end:
            b = bucket(code, created)
            b.dossiers_received.add(code)
            b.documents_received += 1
            b.pages_received += job["pages_total"] or 0

    # converted: the documents signed in the quarter, one manifest read per dossier
    unreadable, extra_kinds = [], set()
    for code in sorted(codes):
        try:
            manifest = load_manifest(store, code)
        except IntegrityError:
            unreadable.append(code)
            continue
        if manifest is None:
            continue  # a job still running, or one that failed before its dossier had a document
        for doc in manifest["documents"]:
            signed = _vn((doc.get("signature") or {}).get("signedAt"))
            if signed is None or doc.get("unsigned") or not start <= signed < end:
                continue
            b = bucket(code, signed)
            b.dossiers_converted.add(code)
            b.documents_converted += 1
            b.pages_converted += doc.get("numberOfPage") or len(doc.get("pages", []))
            for page in doc.get("pages", []):
                flags = set(page.get("flags") or ())
                if flags:
                    b.pages_flagged += 1
                for kind in flags:
                    b.flags[kind] = b.flags.get(kind, 0) + 1
                    if kind not in FLAG_KINDS:
                        extra_kinds.add(kind)
            created = started.get((code, doc["docId"]))
            if created is not None and created <= signed:
                b.minutes.append((signed - created).total_seconds() / 60)

    kinds = FLAG_KINDS + tuple(sorted(extra_kinds))
    reports = []
    for agency in sorted({a for a, _ in buckets}):
        total, rows = _Bucket(), []
        for month in months:
            b = buckets.get((agency, month), _Bucket())
            total.add(b)
            rows.append(b.row(agency, month, kinds))
        reports.append(AgencyReport(agency, tuple(rows), total.row(agency, None, kinds)))
    return DigitisationReport(f"{year}-Q{q}", year, q, months, scope, kinds, tuple(reports),
                              now_vn().isoformat(), tuple(unreadable))


def _jobs_alive(db: Engine, start: datetime, end: datetime) -> list[dict]:
    """The jobs created before the quarter's end and updated after its start, in one query
    (times are ISO strings; the query keeps a day's margin, the exact bounds are applied after)."""
    t = job_table.jobs
    before = (end + timedelta(days=1)).date().isoformat()
    after = (start - timedelta(days=1)).date().isoformat()
    query = sa.select(t.c.id, t.c.kind, t.c.dossier, t.c.state, t.c.pages_total, t.c.doc_id, t.c.created,
                      t.c.updated).where(t.c.created < before, t.c.updated >= after)
    with db.connect() as conn:
        return [row._asdict() for row in conn.execute(query)]


# --------------------------------------------------------------------------- CSV and XLSX

def _month_vi(month: str | None, report: DigitisationReport) -> str:
    if month is None:
        return f"Cả quý {report.q}/{report.year}"
    year, m = month.split("-")
    return f"Tháng {int(m)}/{year}"


def _headers(report: DigitisationReport) -> list[str]:
    return (["Mã cơ quan", "Kỳ", "Hồ sơ tiếp nhận", "Tài liệu tiếp nhận", "Trang tiếp nhận", "Hồ sơ đã số hóa",
             "Tài liệu đã ký số", "Trang đã số hóa", "Trang có cảnh báo"]
            + [f"Trang cảnh báo: {flag_label(k)}" for k in report.flag_kinds]
            + ["Thời gian trung vị từ tải lên đến ký số (phút)"])


def _values(row: ReportRow, report: DigitisationReport) -> list:
    return ([row.agency, _month_vi(row.month, report), row.dossiers_received, row.documents_received,
             row.pages_received, row.dossiers_converted, row.documents_converted, row.pages_converted,
             row.pages_flagged] + [n for _, n in row.flags] + [row.median_minutes])


def to_csv(report: DigitisationReport) -> bytes:
    """The report as CSV: UTF-8 with a BOM (so that Excel reads Vietnamese), Vietnamese headers,
    one row per agency and month then the agency's quarter total; numbers plain (a decimal point,
    no thousands separator), an empty median when nothing was converted."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_headers(report))
    for row in report.rows():
        writer.writerow(["" if v is None else v for v in _values(row, report)])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def to_xlsx(report: DigitisationReport) -> bytes:
    """The report as an Excel workbook: sheet "Báo cáo" (a header row, one row per agency and
    month, the agency's quarter total in bold; numbers as numbers) and sheet "Ghi chú" (the
    quarter, the scope, when it was made and what each column counts)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "Báo cáo"
    headers = _headers(report)
    sheet.append(headers)
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        cell.fill = PatternFill("solid", fgColor="DDE7F0")
    for row in report.rows():
        sheet.append(_values(row, report))
        if row.month is None:
            for cell in sheet[sheet.max_row]:
                cell.font = bold
    for column in range(3, len(headers) + 1):
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
            cell.number_format = "0.0" if column == len(headers) else "#,##0"
    sheet.freeze_panes = "C2"
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 16
    for column in range(3, len(headers) + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 14
    sheet.row_dimensions[1].height = 48

    notes = book.create_sheet("Ghi chú")
    for line in _notes(report):
        notes.append(line)
    notes.column_dimensions["A"].width = 28
    notes.column_dimensions["B"].width = 100
    for (cell,) in notes.iter_rows(min_col=1, max_col=1):
        cell.font = bold
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _notes(report: DigitisationReport) -> list[list[str]]:
    return [
        ["Báo cáo", f"Tình hình số hóa hồ sơ quý {report.q}/{report.year}"],
        ["Phạm vi", ", ".join(report.scope) if report.scope else "Tất cả cơ quan"],
        ["Thời điểm lập", report.generated],
        ["Múi giờ", "Giờ Việt Nam (Asia/Ho_Chi_Minh)"],
        ["Tiếp nhận", "Lượt tải lên (số hóa tại bộ phận một cửa và số hóa hàng loạt hồ sơ lưu trữ) tạo trong tháng, "
                      "mọi trạng thái; số hồ sơ là số mã hồ sơ khác nhau"],
        ["Đã số hóa", "Tài liệu được ký số trong tháng (theo thời điểm ký ghi trong hồ sơ điện tử); "
                      "tài liệu lưu không ký không được tính"],
        ["Trang có cảnh báo", "Trang của tài liệu đã số hóa trong tháng có ít nhất một cảnh báo chất lượng; "
                              "một trang có hai cảnh báo được tính ở cả hai cột cảnh báo"],
        ["Thời gian trung vị", "Trung vị số phút từ lúc tải lên đến lúc ký số, của các tài liệu đã số hóa trong kỳ"],
        ["Cả quý", "Tính trên cả quý: hồ sơ khác nhau trong quý, trung vị của mọi tài liệu trong quý"],
        *([["Không đọc được", ", ".join(report.unreadable)]] if report.unreadable else []),
    ]


# --------------------------------------------------------------------------- the chart

# one colour per month of the quarter, each at least 4.5:1 against white (text and bars alike),
# and every bar also labelled with its month, so that colour is never the only cue
MONTH_COLOURS = ("#1F4E79", "#A34700", "#2B6E3F")
_TEXT = "#1A1A1A"
_GRID = "#767676"


def chart_svg(report: DigitisationReport) -> str:
    """Pages converted per month per agency as an inline SVG bar chart (horizontal bars, one
    group per agency, one bar per month): role="img", <title> and <desc> (the figures in words),
    text labels on every bar, no script; 960 px wide, so it fits a 1366x768 screen unscaled."""
    title = f"Số trang đã số hóa theo tháng, quý {report.q}/{report.year}"
    width, left, right, top = 960, 170, 210, 64
    bar, gap, group_gap = 18, 4, 22
    month_labels = [_month_vi(m, report) for m in report.months]
    desc_parts = [f"{a.agency}: " + "; ".join(f"{_month_vi(r.month, report).lower()} {r.pages_converted} trang"
                                               for r in a.months) for a in report.agencies]
    desc = (". ".join(desc_parts) + ".") if desc_parts else "Không có trang nào được số hóa trong quý."
    group = 3 * bar + 2 * gap
    height = top + max(1, len(report.agencies)) * (group + group_gap) + 56
    most = max((r.pages_converted for a in report.agencies for r in a.months), default=0)
    scale = _nice_max(most)
    plot = width - left - right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="bieu-do-so-hoa-title '
           f'bieu-do-so-hoa-desc" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'font-family="Arial, Helvetica, sans-serif" font-size="14">',
           f'<title id="bieu-do-so-hoa-title">{escape(title)}</title>',
           f'<desc id="bieu-do-so-hoa-desc">{escape(desc)}</desc>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#FFFFFF"/>',
           f'<text x="12" y="24" font-size="17" font-weight="bold" fill="{_TEXT}">{escape(title)}</text>']
    x = left  # the legend
    for colour, label in zip(MONTH_COLOURS, month_labels):
        out.append(f'<rect x="{x}" y="36" width="14" height="14" fill="{colour}"/>'
                   f'<text x="{x + 20}" y="48" fill="{_TEXT}">{escape(label)}</text>')
        x += 150
    if not report.agencies:
        out.append(f'<text x="{left}" y="{top + 30}" fill="{_TEXT}">Không có trang nào được số hóa trong quý.</text>')
    bottom = height - 56
    for tick in range(5):  # the value axis, in five steps
        value = scale * tick // 4
        tx = left + plot * tick / 4
        out.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="{_GRID}" '
                   f'stroke-width="1" stroke-dasharray="{"none" if tick == 0 else "2 4"}"/>'
                   f'<text x="{tx:.1f}" y="{bottom + 20}" text-anchor="middle" fill="{_TEXT}">{_number_vi(value)}</text>')
    y = top
    for agency in report.agencies:
        out.append(f'<text x="{left - 10}" y="{y + group / 2 + 5:.1f}" text-anchor="end" font-weight="bold" '
                   f'fill="{_TEXT}">{escape(agency.agency)}</text>')
        for i, (row, colour) in enumerate(zip(agency.months, MONTH_COLOURS)):
            by = y + i * (bar + gap)
            w = plot * row.pages_converted / scale if scale else 0
            label = f"{month_labels[i]}: {_number_vi(row.pages_converted)} trang"
            out.append(f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar}" fill="{colour}">'
                       f'<title>{escape(agency.agency)}, {escape(label)}</title></rect>'
                       f'<text x="{left + w + 6:.1f}" y="{by + bar - 4}" font-size="13" fill="{_TEXT}" '
                       f'stroke="#FFFFFF" stroke-width="3" paint-order="stroke">'
                       f'{escape(label)}</text>')
        y += group + group_gap
    out.append(f'<text x="{left + plot / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="{_TEXT}">'
               f'Số trang đã số hóa (trang)</text>')
    out.append("</svg>")
    return "\n".join(out)


def _nice_max(value: int) -> int:
    """The value axis's end: four equal whole steps (1, 2, 2.5, 3, 4, 5, 6 or 8 times a power
    of ten), the smallest at or above ``value``."""
    power = 1
    while True:
        for step in (1, 2, 2.5, 3, 4, 5, 6, 8):
            if float(step * power).is_integer() and 4 * step * power >= value:
                return int(4 * step * power)
        power *= 10


def _number_vi(value: int) -> str:
    return f"{value:,}".replace(",", ".")
