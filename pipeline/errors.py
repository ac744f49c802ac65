"""Errors an operator reads. Messages are Vietnamese; the English follows for logs."""
from __future__ import annotations


class SohoaError(Exception):
    """Base for every error the CLI reports without a traceback."""

    exit_code = 1


class DossierCodeError(SohoaError, ValueError):
    exit_code = 2


class InputError(SohoaError):
    """A bad input file or page. Always names the file, and the page when known."""

    exit_code = 3

    def __init__(self, file: str, reason: str, page: int | None = None):
        self.file, self.reason, self.page = file, reason, page
        where = f"{file}" + (f", trang {page}" if page is not None else "")
        super().__init__(f"Tệp không hợp lệ: {where}: {reason}")


class PdfaError(SohoaError):
    exit_code = 4


class NotFound(SohoaError):
    exit_code = 5


class IntegrityError(SohoaError):
    exit_code = 6
