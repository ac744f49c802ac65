"""The HTTP status each kind of error is answered with, by the API (JSON) and the web pages (HTML)."""
from __future__ import annotations

from pipeline.errors import ErrorReport, ExitCode

STATUS = {ExitCode.USAGE: 400, ExitCode.INPUT: 422, ExitCode.DOSSIER_CODE: 400, ExitCode.NOT_FOUND: 404,
          ExitCode.CONFLICT: 409, ExitCode.UNSUPPORTED: 501, ExitCode.STORAGE: 503, ExitCode.DATABASE: 503,
          ExitCode.BROKER: 503,
          ExitCode.INTEGRITY: 500, ExitCode.CONFIG: 500, ExitCode.PAGES_FAILED: 422, ExitCode.PDFA: 422,
          ExitCode.SIGNING: 503, ExitCode.RETENTION: 500}


def status_of(report: ErrorReport) -> int:
    """An unexpected error is 500; an expected one the status of its kind (500 when it has none)."""
    return STATUS.get(report.exit_code, 500) if report.expected else 500
