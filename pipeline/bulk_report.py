"""The report of a bulk conversion: one item per input document, with its result and error.

``write_report`` writes the same items twice, for two readers:

- ``<report>.csv`` for the archivist, opened in Excel: UTF-8 with a BOM (so Excel shows
  Vietnamese), comma-separated, CRLF, Vietnamese column headers and result labels (with the
  English status in brackets). A cell that Excel would read as a formula (starting with
  '=', '+', '-', '@', tab or CR) is written with a leading apostrophe;
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


def report_paths(path: Path) -> tuple[Path, Path]:
    """(CSV path, JSON path): ``x.csv``/``x.json`` and its sibling, else ``<path>.csv`` and ``<path>.json``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return path, path.with_suffix(".json")
    if suffix == ".json":
        return path.with_suffix(".csv"), path
    return path.with_name(path.name + ".csv"), path.with_name(path.name + ".json")


def check_writable(path: Path) -> None:
    """UsageError unless both files of the report can be written there: checked before a run of
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


def write_report(path: Path, outcomes: Iterable[BulkOutcome], summary: dict) -> tuple[Path, Path]:
    """Write the CSV and JSON report (see the module docstring); returns (CSV path, JSON path).

    ``summary`` gives ``source``, ``started`` and ``finished`` (str, or datetime written in ISO
    8601) and may hold other JSON keys, which are kept; its ``totals`` and ``items``, if any,
    are replaced by those counted from ``outcomes``."""
    outcomes = list(outcomes)
    csv_path, json_path = report_paths(path)
    document = {"source": _plain(summary.get("source")), "started": _plain(summary.get("started")),
                "finished": _plain(summary.get("finished")), "totals": totals(outcomes),
                "items": [o.to_json() for o in outcomes]}
    for key, value in summary.items():
        document.setdefault(key, value)
    text = json.dumps(document, ensure_ascii=False, indent=2, default=_plain) + "\n"
    _write_atomic(json_path, text.encode("utf-8", "replace"))  # ("replace": a name not UTF-8 never loses the report)
    _write_atomic(csv_path, _csv_bytes(outcomes))
    return csv_path, json_path


def _csv_bytes(outcomes: list[BulkOutcome]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for o in outcomes:
        writer.writerow([_cell(o.source), _cell(o.dossier), _cell(o.title), f"{STATUS_VI[o.status]} ({o.status})",
                         _cell(o.doc_id or ""), o.pages, _cell(o.error or ""), _cell(o.job or "")])
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
