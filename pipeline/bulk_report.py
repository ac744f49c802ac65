"""The report of a bulk conversion: one item per input document, with its result and error.

``write_report`` writes the same items three times, for their readers:

- ``<report>.xlsx`` for the archivist, opened in Excel in any locale: sheet "Báo cáo" (one row per
  item, Vietnamese headers and result labels, every text cell text, never a formula) and sheet
  "Tổng hợp" (the source, the times and the totals). A Vietnamese-locale Excel splits a CSV at
  ';' and showed the comma-separated one as a single column (backlog review);
- ``<report>.csv`` for other spreadsheets and scripts: UTF-8 with a BOM (so Excel shows
  Vietnamese), comma-separated, CRLF, the same headers and labels (with the English status in
  brackets). A cell that Excel would read as a formula (starting with '=', '+', '-', '@', tab or
  CR) is written with a leading apostrophe;
- ``<report>.json`` for programs, an English schema::

      {"source": str, "started": str|null, "finished": str|null,
       "totals": {"documents": n, "done": n, "skipped": n, "held": n, "failed": n, "invalid": n, "stopped": n,
                  "pages": n},
       "items": [{"source", "dossier", "title", "status", "docId", "pages", "error", "job"}, ...],
       ...any other keys of the summary}

Totals are always counted from the items. Each file is written to a temporary file beside it
and renamed over it, so a reader never sees half a report.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Iterable

from .bulk_plan import BulkProblem
from .errors import UsageError

STATUSES = ("done", "skipped", "held", "failed", "invalid", "stopped")
STATUS_VI = {
    "done": "đã số hóa",
    "skipped": "đã có, bỏ qua",     # converted by an earlier run: found by content hash
    "held": "giữ lại",              # not stored because an earlier document of its dossier failed
    "failed": "lỗi",
    "invalid": "không hợp lệ",      # a plan problem: nothing was tried
    "stopped": "chưa xong (dừng)",  # the run was stopped (Ctrl-C) before this document was settled
}
CSV_HEADERS = ("Nguồn", "Mã hồ sơ", "Tên tài liệu", "Kết quả", "Mã tài liệu", "Số trang", "Lỗi", "Mã lượt xử lý")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class BulkOutcome:
    """What became of one input document. ``status``: done | skipped (already converted
    earlier, found by content hash) | held (not stored: an earlier document of its dossier
    failed, and storing it would break the dossier's order) | failed | invalid (a plan
    problem) | stopped (the run was stopped before it was settled). ``error`` is the
    operator's message (Vietnamese); ``job`` the id of the job that ran it, if any."""

    source: str
    dossier: str
    title: str
    status: str
    doc_id: str | None = None
    pages: int = 0
    error: str | None = None
    job: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    @classmethod
    def invalid(cls, problem: BulkProblem) -> "BulkOutcome":
        """The outcome of a plan problem."""
        return cls(problem.source, problem.dossier, problem.title, "invalid", error=problem.reason)

    def to_json(self) -> dict:
        return {"source": self.source, "dossier": self.dossier, "title": self.title, "status": self.status,
                "docId": self.doc_id, "pages": self.pages, "error": self.error, "job": self.job}


def totals(outcomes: Iterable[BulkOutcome]) -> dict:
    """{"documents", "done", "skipped", "held", "failed", "invalid", "stopped", "pages"} of some outcomes."""
    outcomes = list(outcomes)
    counts = {"documents": len(outcomes), **{s: 0 for s in STATUSES}, "pages": 0}
    for o in outcomes:
        counts[o.status] += 1
        counts["pages"] += o.pages
    return counts


REPORT_SUFFIXES = (".csv", ".json", ".xlsx")


def report_paths(path: Path) -> tuple[Path, Path, Path]:
    """(CSV path, JSON path, Excel path): ``x.csv``, ``x.json`` or ``x.xlsx`` and its siblings,
    else ``<path>.csv``, ``<path>.json`` and ``<path>.xlsx``."""
    path = Path(path)
    if path.suffix.lower() in REPORT_SUFFIXES:
        return tuple(path if path.suffix.lower() == s else path.with_suffix(s) for s in REPORT_SUFFIXES)
    return tuple(path.with_name(path.name + s) for s in REPORT_SUFFIXES)


def check_writable(path: Path) -> None:
    """UsageError unless every file of the report can be written there: checked before a run of
    hours, which otherwise converted everything and then lost its report."""
    for target in report_paths(path):
        if target.is_dir():
            raise UsageError(f"Không ghi được báo cáo: '{target}' là một thư mục", "report path is a folder")
        try:
            tempfile.TemporaryFile(dir=target.parent).close()
        except OSError as e:
            why = "thư mục không tồn tại" if isinstance(e, FileNotFoundError) else e.strerror
            raise UsageError(f"Không ghi được báo cáo vào thư mục '{target.parent}' ({why}); chưa số hóa gì",
                             f"report folder not writable: {e}") from None


def write_report(path: Path, outcomes: Iterable[BulkOutcome], summary: dict) -> tuple[Path, Path, Path]:
    """Write the CSV, JSON and Excel report (see the module docstring); returns their paths.

    ``summary`` gives ``source``, ``started`` and ``finished`` (str, or datetime written in ISO
    8601) and may hold other JSON keys, which are kept; its ``totals`` and ``items``, if any,
    are replaced by those counted from ``outcomes``."""
    outcomes = list(outcomes)
    csv_path, json_path, xlsx_path = report_paths(path)
    document = {"source": _plain(summary.get("source")), "started": _plain(summary.get("started")),
                "finished": _plain(summary.get("finished")), "totals": totals(outcomes),
                "items": [o.to_json() for o in outcomes]}
    for key, value in summary.items():
        document.setdefault(key, value)
    text = json.dumps(document, ensure_ascii=False, indent=2, default=_plain) + "\n"
    _write_atomic(json_path, text.encode("utf-8", "replace"))  # ("replace": a name not UTF-8 never loses the report)
    _write_atomic(csv_path, _csv_bytes(outcomes))
    _write_atomic(xlsx_path, _xlsx_bytes(outcomes, document))
    return csv_path, json_path, xlsx_path


TOTALS_VI = {"documents": "Tài liệu", **{s: STATUS_VI[s].capitalize() for s in STATUSES}, "pages": "Trang đã số hóa"}


XLSX_CELL_CHARS = 32_767  # the most characters Excel keeps in a cell


def _xlsx_text(value: str) -> str:
    """Text a worksheet cell can hold: the control characters a file name on disk may carry, which
    openpyxl refuses (the report would be lost after a run of hours), shown as U+FFFD; cut to
    what Excel keeps."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)[:XLSX_CELL_CHARS]


def _row(o: BulkOutcome) -> list:
    """An item's cells, as both spreadsheets show them (each writer makes its text safe)."""
    return [o.source, o.dossier, o.title, f"{STATUS_VI[o.status]} ({o.status})", o.doc_id or "", o.pages,
            o.error or "", o.job or ""]


def _xlsx_bytes(outcomes: list[BulkOutcome], document: dict) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Báo cáo"
    sheet.append(CSV_HEADERS)
    for o in outcomes:
        sheet.append([_xlsx_text(v) if isinstance(v, str) else v for v in _row(o)])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a name starting with '=' is text, never a formula
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    for column, width in zip("ABCDEFGH", (40, 22, 36, 22, 26, 9, 60, 34)):
        sheet.column_dimensions[column].width = width

    summary = book.create_sheet("Tổng hợp")
    for label, key in (("Nguồn", "source"), ("Bắt đầu", "started"), ("Kết thúc", "finished")):
        summary.append([label, _xlsx_text(str(document.get(key) or ""))])
    summary.append([])
    for key, count in document["totals"].items():
        summary.append([TOTALS_VI.get(key, key), count])
    summary.column_dimensions["A"].width = 24
    summary.column_dimensions["B"].width = 60
    for (cell,) in summary.iter_rows(min_col=1, max_col=1):
        cell.font = Font(bold=True)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _csv_bytes(outcomes: list[BulkOutcome]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for o in outcomes:
        writer.writerow([_cell(v) if isinstance(v, str) else v for v in _row(o)])
    return out.getvalue().encode("utf-8-sig", "replace")


def _cell(text: str) -> str:
    """A text cell Excel will show as text, never evaluate."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable in a bulk report: {type(value).__name__}")


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide the report from the other staff
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
