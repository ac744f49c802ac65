"""Every error sohoa reports, in one place: one exit code per meaning, one stable string code
per error for the HTTP API, the operator's message (Vietnamese) and the technical detail
(English) as separate fields.

Errors of the storage layer (``storage.errors``) keep their own classes; ``describe`` gives
any exception the same four fields, so each door (command line, HTTP API, worker) has one
handler and no door ever guesses.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from storage import errors as storage_errors


class ExitCode(IntEnum):
    """The command line's exit statuses; each value has exactly one meaning."""

    OK = 0
    CHECK_FAILED = 1      # the command ran and its check failed: a verdict that does not pass,
                          # a broken audit chain, a dossier reindex could not read
    USAGE = 2             # the command line is wrong (argparse's own status too)
    INPUT = 3             # a bad input file or page
    PDFA = 4              # PDF/A could not be made or did not validate
    NOT_FOUND = 5         # no such dossier, document or object
    INTEGRITY = 6         # stored bytes or a manifest do not match their record
    SIGNING = 7           # signing key, certificate or signature settings refused; signing failed
    STORAGE = 8           # the object store cannot be reached or refuses the credentials
    RETENTION = 9         # write-once retention refused or not applied
    CONFIG = 10           # a SOHOA_* setting is invalid
    DOSSIER_CODE = 11     # a dossier code that is not in a regulation format
    CONFLICT = 12         # the request would change a value the dossier has recorded
    PAGES_FAILED = 13     # pages could not be processed; the document was not stored
    UNSUPPORTED = 14      # the operation does not exist for this configuration
    DATABASE = 15         # the database cannot be reached or its schema is not this version's
    BROKER = 16           # the task queue (SOHOA_BROKER_URL) cannot be reached
    INTERNAL = 70         # an unexpected error (traceback in SOHOA_HOME/logs/errors.log)
    INTERRUPTED = 130     # stopped by the operator (Ctrl-C)
    OUTPUT_CLOSED = 141   # what the command printed was no longer read (``sohoa search … | head``)


class SohoaError(Exception):
    """Base of the errors a door reports without a traceback.

    ``message_vi`` is what an operator or officer reads; ``detail`` is the English technical
    detail for logs and API clients (may be empty)."""

    exit_code = ExitCode.INTERNAL
    code = "error"

    def __init__(self, message_vi: str, detail: str = ""):
        self.message_vi, self.detail = message_vi, detail
        super().__init__(f"{message_vi} ({detail})" if detail else message_vi)


class UsageError(SohoaError):
    exit_code, code = ExitCode.USAGE, "usage"


class ConfigError(SohoaError, ValueError):
    exit_code, code = ExitCode.CONFIG, "config"


class DossierCodeError(SohoaError, ValueError):
    exit_code, code = ExitCode.DOSSIER_CODE, "dossier_code"


class InputError(SohoaError):
    """A bad input file or page. Always names the file, and the page when known."""

    exit_code, code = ExitCode.INPUT, "input"

    def __init__(self, file: str, reason: str, page: int | None = None, detail: str = ""):
        reason, english = _english_apart(reason, str(file))
        self.file, self.reason, self.page = file, reason, page
        where = f"{file}" + (f", trang {page}" if page is not None else "")
        super().__init__(f"Tệp không hợp lệ: {where}: {reason}", "; ".join(filter(None, (english, detail))))


def _english_apart(reason: str, file: str = "") -> tuple[str, str]:
    """A reason written "Vietnamese text (English)" as its Vietnamese text and the English in
    parentheses at its end, which may be several, nested ones included ("ảnh bị cắt cụt hoặc hỏng
    (image file is truncated (55 bytes not processed)) (truncated or corrupt image)"): the English
    is for the detail, not for the operator's message. A library's English may name the file,
    whose name is often Vietnamese ("cannot identify image file Hỏng.png"): it is still English."""
    names = [n for n in {file, file.replace("\\", "/").rsplit("/", 1)[-1]} if n]
    text, english = reason.rstrip(), []
    while text.endswith(")"):
        depth, start = 0, len(text) - 1
        while start >= 0:
            depth += {")": 1, "(": -1}.get(text[start], 0)
            if depth == 0:
                break
            start -= 1
        inner = text[start + 1:-1]
        if start <= 0 or not _without(inner, names).isascii():
            break
        english.insert(0, inner)
        text = text[:start].rstrip()
    return text, "; ".join(english)


def _without(text: str, names: list[str]) -> str:
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "")
    return text


def shown_text(text: str) -> str:
    """Text that can be shown and written (a report, the access log): a name whose bytes are not
    UTF-8 (a Windows ZIP unpacked here, an old share), which Python holds as lone surrogates, with
    U+FFFD for each such byte."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def without_frames(error: BaseException) -> BaseException:
    """The error, and the errors it was raised from or during, without their tracebacks: an error
    kept (in a list of refused files or pages) would keep every frame it passed through, and their
    data (a file's bytes, a decoded page), alive; and a frame holding the error it raised makes a
    cycle that only a full garbage collection frees (the API grew by twice each refused upload)."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
    return error


class InputErrors(SohoaError):
    """Several bad input files, all named at once (nothing was stored)."""

    exit_code, code = ExitCode.INPUT, "input"

    def __init__(self, errors: list[InputError]):
        self.errors = tuple(errors)
        super().__init__(f"{len(errors)} tệp không hợp lệ, chưa số hóa gì:\n"
                         + "\n".join(f"  - {e.message_vi}" for e in errors),
                         "; ".join(f"{e.file}: {e.detail}" for e in errors if e.detail))


class PagesFailed(SohoaError):
    """One or more pages of a document failed; nothing of the document was stored."""

    exit_code, code = ExitCode.PAGES_FAILED, "pages_failed"

    def __init__(self, message_vi: str, failures: tuple = ()):
        self.failures = failures
        super().__init__(message_vi)


class PdfaError(SohoaError):
    exit_code, code = ExitCode.PDFA, "pdfa"


class SigningError(SohoaError):
    """A key, certificate or configuration that sohoa refuses to sign with, or a failed signing."""

    exit_code, code = ExitCode.SIGNING, "signing"


class PinRefused(SigningError):
    """The token refused its PIN, or has locked it: trying that PIN again could lock the token."""


class NotFound(SohoaError):
    exit_code, code = ExitCode.NOT_FOUND, "not_found"


class IntegrityError(SohoaError):
    exit_code, code = ExitCode.INTEGRITY, "integrity"


class BrokerUnavailable(SohoaError):
    """The task queue the workers take their work from cannot be reached."""

    exit_code, code = ExitCode.BROKER, "broker"


class Conflict(SohoaError):
    exit_code, code = ExitCode.CONFLICT, "conflict"


class Unsupported(SohoaError):
    exit_code, code = ExitCode.UNSUPPORTED, "unsupported"


class JobFailed(SohoaError):
    """A job that ran elsewhere failed; it carries the exit code and message its worker recorded."""

    code = "job_failed"

    def __init__(self, job_id: str, error: dict | None):
        error = error or {}
        self.job_id = job_id
        self.exit_code = ExitCode(error.get("exit", ExitCode.INTERNAL))
        self.code = error.get("code", "job_failed")
        super().__init__(f"{error.get('message') or 'Lượt xử lý thất bại'}\n(lượt xử lý {job_id}: "
                         f"sửa nguyên nhân rồi chạy 'sohoa retry {job_id}'; các trang đã xong không phải làm lại)",
                         error.get("detail", ""))


_STORAGE_EXIT = {
    storage_errors.NotFound: ExitCode.NOT_FOUND,
    storage_errors.IntegrityError: ExitCode.INTEGRITY,
    storage_errors.StorageUnavailable: ExitCode.STORAGE,
    storage_errors.RetentionError: ExitCode.RETENTION,
    storage_errors.StorageConfigError: ExitCode.CONFIG,
    storage_errors.UnsafeKey: ExitCode.USAGE,
    storage_errors.QueryError: ExitCode.USAGE,
    storage_errors.DatabaseError: ExitCode.DATABASE,
    storage_errors.LockTimeout: ExitCode.CONFLICT,
}


# the errors a door reports as the user's or the deployment's problem, never as a crash
EXPECTED = (SohoaError, storage_errors.StorageError)


@dataclass(frozen=True)
class ErrorReport:
    """What a door shows of an error: exit status, stable code, Vietnamese message, English detail."""

    exit_code: ExitCode
    code: str
    message_vi: str
    detail: str
    expected: bool  # False: a bug or an unforeseen failure, logged with its traceback

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message_vi, "detail": self.detail}


def describe(error: BaseException) -> ErrorReport:
    """The one mapping from any exception to what a door reports."""
    if isinstance(error, SohoaError):
        return ErrorReport(error.exit_code, error.code, error.message_vi, error.detail, True)
    if isinstance(error, storage_errors.StorageError):
        exit_code = next((c for cls, c in _STORAGE_EXIT.items() if isinstance(error, cls)), ExitCode.STORAGE)
        return ErrorReport(exit_code, error.code, error.message_vi, error.detail, True)
    if isinstance(error, KeyboardInterrupt):
        return ErrorReport(ExitCode.INTERRUPTED, "interrupted", "Đã dừng theo yêu cầu.", "interrupted", True)
    return ErrorReport(ExitCode.INTERNAL, "internal",
                       "Lỗi không mong đợi; có thể chạy lại lệnh. Một lần số hóa lỗi không thêm gì vào hồ sơ; "
                       "những gì các lệnh khác đã thay đổi đều có trong nhật ký (sohoa audit).",
                       f"{type(error).__name__}: {error}", False)
