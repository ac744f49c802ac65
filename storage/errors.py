"""Errors of the storage layer (object stores, keys, index).

Each carries a stable ``code`` for machines, ``message_vi`` for the operator and ``detail``
(English) for logs. The layers above map them to exit codes and HTTP statuses; storage
itself knows nothing of either.
"""
from __future__ import annotations


class StorageError(Exception):
    code = "storage_error"

    def __init__(self, message_vi: str, detail: str = ""):
        self.message_vi, self.detail = message_vi, detail
        super().__init__(f"{message_vi} ({detail})" if detail else message_vi)


class NotFound(StorageError):
    """The object (or the dossier it belongs to) does not exist."""

    code = "not_found"


class IntegrityError(StorageError):
    """Stored bytes differ from the SHA-256 recorded for them."""

    code = "integrity"


class StorageUnavailable(StorageError):
    """The object store cannot be reached or refuses the credentials."""

    code = "storage_unavailable"


class RetentionError(StorageError, PermissionError):
    """Write-once retention refused or could not be applied."""

    code = "retention"


class UnsafeKey(StorageError, ValueError):
    """A key or key part that could escape the store's root."""

    code = "unsafe_key"


class StorageConfigError(StorageError, ValueError):
    """A storage setting (lock mode, retention period, endpoint) that cannot be used."""

    code = "storage_config"


class QueryError(StorageError, ValueError):
    """A search query that cannot be searched: empty, blank or without a single word."""

    code = "query"


class DatabaseError(StorageError):
    """The database cannot be reached, or its schema is not the one this code expects."""

    code = "database"


class SchemaOutdated(DatabaseError):
    """The database schema is older (or newer) than this code: run ``sohoa db upgrade``."""

    code = "schema"

    def __init__(self, have: str | None, want: str):
        self.have, self.want = have, want
        super().__init__(
            f"Cơ sở dữ liệu đang ở phiên bản lược đồ {have or '(trống)'}, phần mềm cần {want}: "
            f"chạy 'sohoa db upgrade' một lần (khi cài đặt hoặc sau khi cập nhật), rồi chạy lại",
            f"database schema {have} != {want}; run 'sohoa db upgrade'")


class SchemaNewer(DatabaseError):
    """The database was migrated by a newer sohoa than this one: this code must not touch it."""

    code = "schema"

    def __init__(self, have: str, want: str):
        self.have, self.want = have, want
        super().__init__(
            f"Cơ sở dữ liệu đã được một phiên bản sohoa mới hơn nâng lên lược đồ {have}; phiên bản đang chạy "
            f"chỉ biết đến lược đồ {want}. Hãy chạy phiên bản mới hơn đó, hoặc khôi phục bản sao lưu cơ sở dữ "
            "liệu làm trước khi nâng cấp (docs/deployment.md, mục Upgrades); không chạy 'sohoa db upgrade' bằng "
            "phiên bản này",
            f"database schema {have} is newer than this sohoa knows ({want}): run the newer version, or restore "
            "the database backup taken before the upgrade")


class LockTimeout(StorageError):
    """Another process held the dossier's lock for longer than we may wait."""

    code = "busy"
