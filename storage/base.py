"""The object-store contract every backend meets (local directory, S3).

- ``put`` makes an object visible all at once or not at all; it returns the
  project's own SHA-256 and size of the bytes written (ETags are not checksums).
- ``get`` returns the bytes; with ``sha256`` given it checks them and raises
  IntegrityError on a mismatch.
- ``list(prefix)`` and ``children(prefix)`` read only under the prefix: a store of ten thousand
  dossiers is listed one dossier (or one level) at a time, never key by key as a whole.
- Keys are produced by ``storage.keys`` only; a backend still refuses any key
  that could escape its root.
- Writing a key that already holds the same bytes is a no-op (idempotent retries).
- ``put(..., compliance_days=n)`` makes the object write-once for ``n`` days in COMPLIANCE
  mode, whatever lock mode the store uses by default (``retain`` is implied): on S3 nobody,
  not even an account allowed to bypass governance retention, can delete or overwrite that
  version before the date; the local store refuses other bytes under the key and ``delete``
  until then. For records that must outlive any operator's rights (the access log's anchors).
"""
from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from .errors import IntegrityError, NotFound, UnsafeKey  # noqa: F401  (re-exported for backends)

_SAFE_KEY = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not _SAFE_KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise UnsafeKey(f"Khóa đối tượng không an toàn: {key!r}", f"unsafe object key: {key!r}")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    sha256: str
    size: int
    metadata: dict | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("metadata")
        return d


class ObjectStore(ABC):
    name: str

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict | None = None, retain: bool = False, *,
            compliance_days: int | None = None) -> ObjectInfo:
        """Store bytes under key atomically. ``retain``: write-once where the backend can;
        ``compliance_days``: write-once in COMPLIANCE mode for that many days (implies ``retain``)."""

    @abstractmethod
    def get(self, key: str, sha256: str | None = None) -> bytes:
        """The object's bytes; NotFound if absent, IntegrityError if sha256 differs."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size and stored SHA-256 of an object, or None if absent."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under prefix, sorted. Reads only what lies under the prefix (the local store
        walks that folder alone, S3 lists with the prefix, page by page), never the whole store."""

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """The names one level below ``prefix`` (which ends with "/"), sorted: a folder-style
        listing with "/" as delimiter (``children("dossiers/")`` gives the dossier codes), read
        without walking what lies deeper. Both objects and sub-folders are named."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (refused by the server for retained objects on S3, and by the
        local store for an object put with ``compliance_days`` until its date)."""

    @abstractmethod
    def legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release the object's legal hold: while placed, ``delete`` is refused
        whatever the object's retention. NotFound if the object does not exist."""

    @abstractmethod
    def under_legal_hold(self, key: str) -> bool:
        """Whether the object is under legal hold."""

    def extend_lock(self, key: str, metadata: dict) -> int:
        """Extend the write-once lock of the object's versions to what ``metadata`` (the
        maintenance code and the day the dossier closed, as ``put`` reads them) gives now, where
        that is later than their lock; a lock is never shortened, an unlocked version never
        locked, an absent object left alone. Returns how many versions were extended: none here, a
        store whose locks have no date."""
        return 0

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def get_file(self, key: str, path, sha256: str | None = None) -> None:
        """The object's bytes written to ``path`` (a new file), streamed where the backend can,
        so that a large original never sits whole in memory; checked like ``get``, and no file
        is left behind when the check fails."""
        from pathlib import Path

        Path(path).write_bytes(self.get(key, sha256))

    def _written_checked(self, key: str, chunks, path, expected: str | None) -> None:
        """Write ``chunks`` to ``path`` while hashing them; IntegrityError (and no file) on a mismatch."""
        from pathlib import Path

        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        if expected is not None and digest.hexdigest() != expected:
            Path(path).unlink()
            raise IntegrityError(f"Sai mã băm SHA-256: {key}", "integrity check failed")

    def _checked(self, key: str, data: bytes, expected: str | None) -> bytes:
        if expected is not None and sha256(data) != expected:
            raise IntegrityError(f"Sai mã băm SHA-256: {key}", "integrity check failed")
        return data
