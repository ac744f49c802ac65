"""Local directory object store, the embedded default.

Each object is written to a temporary file in the same directory, fsynced, then
renamed into place, so a crash never leaves a half-written object under its key.
The SHA-256 and metadata live in a sidecar ``<name>.meta.json`` written after the
object; an object without its sidecar is hashed on demand. An object put with ``retain``
is write-once, as on S3 with object lock: other bytes under its key are refused. An object
put with ``compliance_days`` is write-once too and, until the date held in its sidecar
(``retain_until``, mode COMPLIANCE), ``delete`` refuses it as well (on a plain file system
this binds sohoa, not someone with the rights to the directory). An object under legal hold
(``legal_hold``, kept in its sidecar) cannot be deleted whatever its retention, until released.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import retention as ret
from .base import NotFound, ObjectInfo, ObjectStore, check_key, sha256
from .errors import RetentionError, StorageUnavailable

CHUNK = 1 << 20  # bytes read at a time when an object is copied to a file

_META = ".meta.json"


def write_atomic(path: Path, data: bytes, *also: tuple[Path, bytes]) -> None:
    """Write ``data`` to ``path`` (and each of ``also``, files in the same directory, after it)
    so that a crash leaves each file either as it was or whole: every file is written to a
    temporary name and fsynced, renamed into place in order, then the directory is fsynced
    once for all of them (each directory fsync is a journal commit of its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Path]] = []
    try:
        for target, content in ((path, data), *also):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            written.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        for tmp, target in written:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class LocalStore(ObjectStore):
    name = "local"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key, data, content_type="application/octet-stream", metadata=None, retain=False, *,
            compliance_days=None):
        path = self._path(key)
        digest = sha256(data)
        current = self.stat(key)
        if current is not None and current.sha256 == digest:
            return current
        if current is not None and self._retained(path):
            raise RetentionError(f"Đối tượng ghi-một-lần {key} đã có nội dung khác; không ghi đè",
                                 "write-once object exists with other bytes")
        meta = {"sha256": digest, "size": len(data), "content_type": content_type, "metadata": metadata or {},
                "retained": retain or compliance_days is not None}
        if compliance_days is not None:
            until = min(datetime.now(timezone.utc) + timedelta(days=ret.default_days(compliance_days)),
                        ret.LATEST_RETAIN_UNTIL)
            meta.update(mode="COMPLIANCE", retain_until=until.isoformat())
        retain = meta["retained"]
        try:
            write_atomic(path, data, (path.with_name(path.name + _META), json.dumps(meta, ensure_ascii=False).encode()))
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if current is None:  # no object without its sidecar: the retry writes both
                path.unlink(missing_ok=True)
            raise StorageUnavailable(f"Hết chỗ trống trên đĩa của kho lưu trữ {self.root} khi ghi {key}; "
                                     "hãy giải phóng chỗ trống rồi chạy lại", f"no space left on device: {e}") from e
        if retain:
            path.chmod(0o444)  # best effort on a plain file system; real WORM is the S3 backend's
        return ObjectInfo(key, digest, len(data), metadata or {})

    def _retained(self, path: Path) -> bool:
        try:
            meta = json.loads(path.with_name(path.name + _META).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return not path.stat().st_mode & 0o222  # written read-only by an older sohoa
        return bool(meta.get("retained"))

    def get(self, key, sha256=None):
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"Không tìm thấy đối tượng: {key}", "object not found") from None
        return self._checked(key, data, sha256)

    def get_file(self, key, path, sha256=None):
        try:
            source = self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"Không tìm thấy đối tượng: {key}", "object not found") from None
        with source:
            self._written_checked(key, iter(lambda: source.read(CHUNK), b""), path, sha256)

    def exists(self, key):
        return self._path(key).is_file()

    def stat(self, key):
        path = self._path(key)
        if not path.is_file():
            return None
        side = path.with_name(path.name + _META)
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            return ObjectInfo(key, meta["sha256"], meta["size"], meta.get("metadata"))
        except (FileNotFoundError, ValueError, KeyError):
            data = path.read_bytes()
            return ObjectInfo(key, sha256(data), len(data), {})

    def list(self, prefix):
        """Keys under prefix, sorted: walks only the folder the prefix names (for a prefix ending
        inside a name, such as ``system/fixity-log-``, its parent folder, one level deep first)."""
        if prefix:
            check_key(prefix.rstrip("/"))
        folder, _, stem = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        found: list[str] = []
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        lead = f"{folder}/" if folder else ""
        for entry in entries:
            if entry.name.startswith(stem):
                self._walk(entry, lead + entry.name, found)
        found.sort()
        return found

    def _walk(self, entry: os.DirEntry, key: str, found: list[str]) -> None:
        if entry.is_dir(follow_symlinks=False):
            stack = [(entry.path, key)]
            while stack:
                path, at = stack.pop()
                try:
                    inner = list(os.scandir(path))
                except FileNotFoundError:  # removed while listing
                    continue
                for child in inner:
                    if child.is_dir(follow_symlinks=False):
                        stack.append((child.path, f"{at}/{child.name}"))
                    elif self._is_object(child.name):
                        found.append(f"{at}/{child.name}")
        elif entry.is_file(follow_symlinks=False) and self._is_object(entry.name):
            found.append(key)

    @staticmethod
    def _is_object(name: str) -> bool:
        return not name.endswith(_META) and not name.startswith(".tmp-")

    def children(self, prefix):
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"children() needs a folder prefix ending with '/': {prefix!r}")
        if prefix:
            check_key(prefix.rstrip("/"))
        try:
            entries = list(os.scandir(self.root / prefix if prefix else self.root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False)
                      or (e.is_file(follow_symlinks=False) and self._is_object(e.name)))

    def retained(self, key: str) -> bool:
        """Whether the object was put write-once (``retain`` or ``compliance_days``)."""
        return self._retained(self._path(key))

    def retention(self, key: str) -> dict | None:
        """The COMPLIANCE lock of an object put with ``compliance_days``: mode and retain-until
        (the shape of S3Store.retention), or None."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.with_name(path.name + _META).read_text(encoding="utf-8"))
            return {"mode": meta["mode"], "until": datetime.fromisoformat(meta["retain_until"])}
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release the object's legal hold; NotFound if it does not exist."""
        path = self._path(key)
        sidecar = path.with_name(path.name + _META)
        if not path.is_file():
            raise NotFound(f"Không tìm thấy đối tượng {key}", f"no object {key}")
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except FileNotFoundError:
            info = self.stat(key)
            meta = {"sha256": info.sha256, "size": info.size, "content_type": "application/octet-stream",
                    "metadata": {}, "retained": False}
        meta["legal_hold"] = bool(on)
        write_atomic(sidecar, json.dumps(meta, ensure_ascii=False).encode())

    def under_legal_hold(self, key: str) -> bool:
        path = self._path(key)
        try:
            return bool(json.loads(path.with_name(path.name + _META).read_text(encoding="utf-8")).get("legal_hold"))
        except (FileNotFoundError, ValueError):
            return False

    def delete(self, key):
        path = self._path(key)
        if self.under_legal_hold(key):
            raise RetentionError(f"Không xóa được {key}: đối tượng đang bị giữ theo yêu cầu pháp lý (legal hold)",
                                 "object under legal hold")
        held = self.retention(key)
        if held is not None and held["until"] > datetime.now(timezone.utc):
            raise RetentionError(f"Không xóa được {key}: đối tượng được lưu giữ bất biến (COMPLIANCE) đến "
                                 f"{held['until'].isoformat()}", "object under compliance retention")
        path.with_name(path.name + _META).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
