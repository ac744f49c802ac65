"""S3 object store on the minio SDK (MinIO, Ceph RGW or any S3-compatible server).

- The bucket is created private, with object lock enabled (which turns versioning on);
  an existing bucket gets versioning turned on. Downloads go through ``presigned_url``.
- ``put`` is a single PUT, so an object appears whole or not at all; it stores the
  project's own SHA-256 in the object metadata (``x-amz-meta-sha256``) and tags the object
  with the dossier code, document id, kind and SHA-256. Metadata values are percent-encoded
  because S3 headers carry ASCII only (``stat`` decodes them).
- Writing the same bytes again is a no-op; other bytes make a new version (the old version
  stays, and stays locked if it was retained). Transient failures (connection refused or
  reset, timeouts, 5xx, SlowDown) are retried a bounded number of times.
- ``put(..., retain=True)`` sets object-lock retention: mode ``lock_mode``,
  period from ``metadata["maintenance"]`` (TT 05/2025 code, see storage.retention) or
  ``retention_days``, counted from the day the dossier closed when ``metadata["closed"]`` says
  it. ``put(..., compliance_days=n)`` sets mode COMPLIANCE for ``n`` days
  whatever ``lock_mode`` is (the access log's anchors: nobody may remove them early).
- ``delete`` removes every version of the key for good; the server refuses it for a
  retained version, which surfaces as RetentionError.
"""
from __future__ import annotations

import io
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, TypeVar
from urllib.parse import quote, unquote, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.error import MinioException, S3Error, ServerError
from minio.retention import Retention
from minio.versioningconfig import ENABLED, VersioningConfig

from . import retention as ret
from .base import ObjectInfo, ObjectStore, check_key, sha256
from .errors import NotFound, RetentionError, StorageConfigError, StorageUnavailable

T = TypeVar("T")

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NotFound", "ResourceNotFound"}
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                    "OperationAborted", "RequestTimeTooSkewed"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch"}
_TAGGED_METADATA = ("dossier", "doc-id", "kind", "sha256")
_TAG_VALUE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +-=._:/@")
_META_PREFIX = "x-amz-meta-"


def parse_endpoint(endpoint: str | None, secure: bool) -> tuple[str, bool]:
    """'host:port' for minio, accepting 'http://host:port' and 'https://host' too."""
    if not endpoint:
        raise StorageConfigError("Thiếu SOHOA_S3_ENDPOINT (ví dụ: 127.0.0.1:9000) khi SOHOA_STORAGE=s3",
                                 "no S3 endpoint configured")
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.path not in ("", "/"):
            raise StorageConfigError(f"SOHOA_S3_ENDPOINT không được có đường dẫn: '{endpoint}'",
                                     "the S3 endpoint must not have a path")
        return parts.netloc, parts.scheme == "https"
    return endpoint.rstrip("/"), secure


def encode_metadata(metadata: dict) -> dict[str, str]:
    return {str(k).lower(): quote(str(v), safe=" -_.~:/@+=,;") for k, v in metadata.items()}


def decode_metadata(headers) -> dict[str, str]:
    return {k[len(_META_PREFIX):].lower(): unquote(v) for k, v in headers.items()
            if k.lower().startswith(_META_PREFIX)}


def object_tags(metadata: dict) -> Tags | None:
    """Tags for the identifying metadata; values S3 would refuse as tags are left out."""
    tags = Tags.new_object_tags()
    for name in _TAGGED_METADATA:
        value = str(metadata.get(name, ""))
        if value and len(value) <= 256 and set(value) <= _TAG_VALUE_CHARS:
            tags[name] = value
    return tags or None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, S3Error):
        return error.code in _TRANSIENT_CODES
    if isinstance(error, ServerError):
        return error.status_code >= 500 or error.status_code == 429
    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def with_retries(call: Callable[[], T], *, attempts: int, backoff: float,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run call, retrying transient errors up to attempts times with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            if not is_transient(error) or attempt == attempts:
                raise
            sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class S3Store(ObjectStore):
    name = "s3"

    def __init__(self, client: Minio, bucket: str, *, lock_mode: str = "GOVERNANCE",
                 retention_days: int = ret.DEFAULT_RETENTION_DAYS, attempts: int = 4,
                 backoff: float = 0.5, clock: Callable[[], datetime] = _now):
        self.client = client
        self.bucket = bucket
        self.lock_mode = ret.lock_mode(lock_mode)
        self.retention_days = ret.default_days(retention_days)
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
        self._object_lock: bool | None = None

    @classmethod
    def connect(cls, endpoint: str | None, access_key: str | None, secret_key: str | None, *,
                bucket: str = "sohoa", secure: bool = False, region: str | None = None,
                **options) -> "S3Store":
        """A store on the server at ``endpoint``, its bucket made sure of (private, versioned, locked)."""
        host, secure = parse_endpoint(endpoint, secure)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=120),
            maxsize=10,
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        client = Minio(host, access_key=access_key, secret_key=secret_key,
                       secure=secure, region=region or None, http_client=http)
        store = cls(client, bucket or "sohoa", **options)
        store.ensure_bucket()
        return store

    # -- edges -----------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return with_retries(call, attempts=self.attempts, backoff=self.backoff)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            if is_transient(error):
                # the library's English goes to the detail; a store that stops answering writes mid-way
                # is often full (Ceph pauses writes to a full OSD: the bulk review)
                timed_out = "timed out" in str(error).lower()
                raise StorageUnavailable(
                    f"Kho lưu trữ S3 không phản hồi sau {self.attempts} lần thử ({what})"
                    + ("; quá thời gian chờ: kho có thể đã đầy hoặc quá tải, hãy kiểm tra dung lượng của kho"
                       if timed_out else ""), f"{type(error).__name__}: {error}") from error
            if isinstance(error, S3Error) and error.code in _CREDENTIAL_CODES:
                raise StorageUnavailable(
                    f"Khóa truy cập S3 không hợp lệ ({error.code}): kiểm tra SOHOA_S3_ACCESS_KEY và "
                    "SOHOA_S3_SECRET_KEY") from error
            raise

    def ensure_bucket(self) -> None:
        def setup():
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, object_lock=True)
                except S3Error as error:
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            if self.client.get_bucket_versioning(self.bucket).status != ENABLED:
                self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
        try:
            self._call(f"bucket {self.bucket}", setup)
        except S3Error as error:
            raise StorageUnavailable(f"Không chuẩn bị được bucket S3 '{self.bucket}': {error.code} {error.message}") from error

    def object_lock_enabled(self) -> bool:
        if self._object_lock is None:
            try:
                self._call("object lock", lambda: self.client.get_object_lock_config(self.bucket))
                self._object_lock = True
            except S3Error as error:
                if "ObjectLock" not in error.code and error.code != "InvalidRequest":
                    raise
                self._object_lock = False
        return self._object_lock

    def _retention(self, metadata: dict, compliance_days: int | None = None) -> Retention:
        if not self.object_lock_enabled():
            raise RetentionError(
                f"Bucket '{self.bucket}' không bật khóa đối tượng (object lock): không thể lưu bất biến. "
                "Tạo bucket mới có object lock (sohoa tự tạo khi bucket chưa tồn tại).")
        if compliance_days is not None:
            until = ret.retain_until(self.clock(), None, ret.default_days(compliance_days))
            return Retention("COMPLIANCE", until)
        until = ret.retain_until(self.clock(), metadata.get("maintenance"), self.retention_days, metadata.get("closed"))
        return Retention(self.lock_mode, until)

    def _head_once(self, key: str, version_id: str | None = None):
        """One HEAD request; None when the object is absent."""
        try:
            return self.client.stat_object(self.bucket, key, version_id=version_id)
        except S3Error as error:
            if error.code in _NOT_FOUND_CODES:
                return None
            raise

    def _head(self, key: str, version_id: str | None = None):
        return self._call(key, lambda: self._head_once(key, version_id))

    # -- contract --------------------------------------------------------------

    def put(self, key, data, content_type="application/octet-stream", metadata=None, retain=False, *,
            compliance_days=None):
        key = check_key(key)
        retain = retain or compliance_days is not None
        data = bytes(data)
        digest = sha256(data)
        user_meta = {str(k).lower(): str(v) for k, v in (metadata or {}).items()
                     if v is not None and str(k).lower() != "sha256"}
        current = self.stat(key)
        # the same recorded SHA-256 is not the same bytes: anyone who may write the bucket can put a
        # new version carrying the old record (the ops review: a restore locked such a forged version
        # under COMPLIANCE for the dossier's years); the bytes are read before they are kept or locked
        holding = (self._call(key, lambda: self._version_holding(key, digest))
                   if current is not None and current.sha256 == digest else None)
        if holding is not None:
            version = holding[0]  # that version is locked, not whichever is latest by then (the review)
            if retain and self.retention(key, version) is None:  # same bytes stored earlier unlocked: lock them now
                wanted = self._retention({**user_meta, **current.metadata}, compliance_days)
                self._call(key, lambda: self.client.set_object_retention(self.bucket, key, wanted,
                                                                         version_id=version))
                self._check_locked(key, version, wanted)
            return current
        stored_meta = {**user_meta, "sha256": digest}
        retention = self._retention(user_meta, compliance_days) if retain else None
        attempts = []

        def write() -> str | None:
            if attempts and (found := self._version_holding(key, digest)) is not None:
                return found[0]  # the lost-response case: the previous attempt did store it (read, not its record)
            attempts.append(1)
            return self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                metadata=encode_metadata(stored_meta), tags=object_tags(stored_meta), retention=retention).version_id
        written = self._call(key, write)
        if retention is not None:
            version = written
            if self.retention(key, version) is None:
                # a large file goes up in parts, and Ceph RGW ignores the lock asked for when the
                # upload starts: lock the object once it is complete (then read the lock back)
                self._call(key, lambda: self.client.set_object_retention(self.bucket, key, retention,
                                                                         version_id=version))
            self._check_locked(key, version, retention)
        return ObjectInfo(key, digest, len(data), user_meta)

    def _version_holding(self, key: str, digest: str) -> tuple[str | None] | None:
        """(version id,) of the latest version when its bytes, read and hashed, have this SHA-256;
        None otherwise (absent, or other bytes under the same record)."""
        head = self._head_once(key)
        if head is None:
            return None
        try:  # once: put's retries cover this, as they do the HEAD
            data = self._fetch_once(key, head.version_id)
        except S3Error as error:
            if error.code in _NOT_FOUND_CODES:
                return None
            raise
        return (head.version_id,) if sha256(data) == digest else None

    def _check_locked(self, key: str, version_id: str | None, wanted: Retention) -> None:
        """Read the lock back: a server that ignores or mangles it must not pass silently."""
        held = self.retention(key, version_id)
        if (held is None or held["mode"] != wanted.mode or held["until"] is None
                or abs((held["until"] - wanted.retain_until_date).total_seconds()) > 2):
            raise RetentionError(
                f"Máy chủ S3 không giữ khóa lưu giữ cho {key}: yêu cầu {wanted.mode} đến "
                f"{wanted.retain_until_date.isoformat()}, nhận được {held}")

    def get(self, key, sha256=None, *, version_id: str | None = None):
        """The object's bytes (``version_id``: that version rather than the latest, an S3 extra)."""
        key = check_key(key)
        try:
            data = self._call(key, lambda: self._fetch_once(key, version_id))
        except S3Error as error:
            if error.code in _NOT_FOUND_CODES:
                raise NotFound(f"Không tìm thấy đối tượng: {key}", "object not found") from None
            raise
        return self._checked(key, data, sha256)

    def _fetch_once(self, key: str, version_id: str | None = None) -> bytes:
        """One GET of the object's bytes (``version_id``: that version), no retries of its own."""
        response = self.client.get_object(self.bucket, key, version_id=version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key, path, sha256=None):
        key = check_key(key)

        def fetch() -> None:
            response = self.client.get_object(self.bucket, key)
            try:
                self._written_checked(key, response.stream(1 << 20), path, sha256)
            finally:
                response.close()
                response.release_conn()
        try:
            self._call(key, fetch)
        except S3Error as error:
            if error.code in _NOT_FOUND_CODES:
                raise NotFound(f"Không tìm thấy đối tượng: {key}", "object not found") from None
            raise

    def stat(self, key):
        key = check_key(key)
        head = self._head(key)
        if head is None:
            return None
        meta = decode_metadata(head.metadata)
        digest = meta.pop("sha256", None)
        if digest is None:  # written by another tool: hash on demand
            digest = sha256(self.get(key))
        return ObjectInfo(key, digest, head.size, meta)

    def list(self, prefix):
        """ListObjectsV2 with the prefix, page by page (1,000 keys a page, the SDK follows the
        continuation token): only the keys under the prefix are read."""
        objects = self._call(prefix, lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True)))
        return sorted(o.object_name for o in objects if not o.is_dir)

    def children(self, prefix):
        """ListObjectsV2 with the prefix and delimiter "/", paginated: the common prefixes
        (sub-folders) and objects one level below, never the keys deeper down."""
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"children() needs a folder prefix ending with '/': {prefix!r}")
        found = self._call(prefix, lambda: list(self.client.list_objects(self.bucket, prefix=prefix or None,
                                                                          recursive=False)))
        return sorted({o.object_name[len(prefix):].rstrip("/") for o in found} - {""})

    def delete(self, key):
        key = check_key(key)
        versions = self.versions(key)
        for version in versions:  # newest first
            try:
                self._call(key, lambda: self.client.remove_object(self.bucket, key, version_id=version["version_id"]))
            except S3Error as error:
                if error.code == "AccessDenied":
                    raise RetentionError(
                        f"Máy chủ từ chối xóa {key} (phiên bản {version['version_id']}): "
                        f"đối tượng đang trong thời hạn lưu giữ bất biến ({error.message})") from error
                raise

    def legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release the legal hold of every version of the object: the server
        then refuses to delete any of them, whatever their retention, until released."""
        key = check_key(key)
        versions = [v for v in self.versions(key) if not v["delete_marker"]]
        if not versions:
            raise NotFound(f"Không tìm thấy đối tượng {key}", f"no object {key}")
        call = self.client.enable_object_legal_hold if on else self.client.disable_object_legal_hold
        for version in versions:
            self._call(key, lambda v=version: call(self.bucket, key, version_id=v["version_id"]))

    def under_legal_hold(self, key: str) -> bool:
        key = check_key(key)
        return any(self._call(key, lambda v=v: self.client.is_object_legal_hold_enabled(
            self.bucket, key, version_id=v["version_id"])) for v in self.versions(key) if not v["delete_marker"])

    def extend_lock(self, key: str, metadata: dict) -> int:
        key = check_key(key)
        wanted, extended = None, 0
        for version in self.versions(key):
            held = None if version["delete_marker"] else self.retention(key, version["version_id"])
            if held is None or held["until"] is None:
                continue
            wanted = wanted or self._retention({str(k).lower(): str(v) for k, v in metadata.items() if v is not None})
            if held["until"] >= wanted.retain_until_date - timedelta(seconds=2):
                continue
            longer = Retention(held["mode"], wanted.retain_until_date)  # in the version's own mode
            self._call(key, lambda v=version: self.client.set_object_retention(self.bucket, key, longer,
                                                                               version_id=v["version_id"]))
            self._check_locked(key, version["version_id"], longer)
            extended += 1
        return extended

    # -- S3 extras -------------------------------------------------------------

    def versions(self, key: str) -> list[dict]:
        """Every version and delete marker of exactly this key, newest first."""
        key = check_key(key)
        found = self._call(key, lambda: list(self.client.list_objects(
            self.bucket, prefix=key, recursive=True, include_version=True)))
        return [{"version_id": o.version_id, "is_latest": str(o.is_latest).lower() == "true",
                 "delete_marker": bool(o.is_delete_marker), "size": o.size}
                for o in found if o.object_name == key]

    def history(self, prefix: str) -> list[dict]:
        """Every version and delete marker under prefix, oldest first per key: what ``list``
        does not show (an overwritten object's earlier versions, a key hidden by a delete marker)."""
        found = self._call(prefix, lambda: list(self.client.list_objects(
            self.bucket, prefix=prefix, recursive=True, include_version=True)))
        entries = [{"key": o.object_name, "version_id": o.version_id, "delete_marker": bool(o.is_delete_marker),
                    "size": o.size} for o in found if not o.is_dir]
        # S3 lists the versions of a key newest first
        order = sorted(range(len(entries)), key=lambda i: (entries[i]["key"], -i))
        return [entries[i] for i in order]

    def retention(self, key: str, version_id: str | None = None) -> dict | None:
        """Object-lock mode and retain-until of the object, read from its HEAD response.

        minio-py's get_object_retention cannot parse RGW's nanosecond timestamps.
        """
        head = self._head(check_key(key), version_id)
        if head is None:
            raise NotFound(f"Không tìm thấy đối tượng: {key}", "object not found")
        mode = head.metadata.get("x-amz-object-lock-mode")
        until = ret.parse_retain_until(head.metadata.get("x-amz-object-lock-retain-until-date"))
        return {"mode": mode, "until": until} if mode else None

    def tags(self, key: str) -> dict:
        found = self._call(key, lambda: self.client.get_object_tags(self.bucket, check_key(key)))
        return dict(found or {})

    def presigned_url(self, key: str, expires: int | timedelta = 900, version_id: str | None = None) -> str:
        """A short-lived GET URL (default 15 minutes, at most 7 days) for a private object."""
        if not isinstance(expires, timedelta):
            expires = timedelta(seconds=int(expires))
        if not timedelta(seconds=1) <= expires <= timedelta(days=7):
            raise StorageConfigError("Thời hạn liên kết tải xuống phải từ 1 giây đến 7 ngày", "link expiry: 1 s to 7 days")
        return self.client.presigned_get_object(self.bucket, check_key(key), expires=expires, version_id=version_id)
