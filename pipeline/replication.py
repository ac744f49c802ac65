"""The second copy on independent storage: replicate, check and restore.

- Scope: every object of the dossiers (``dossiers/``) and the deployment's own objects
  (``system/``: the development key, the access log's anchors, the fixity records), but the
  rolling-fixity cursors, which change every hour and belong to one store. ``work/`` (pages in
  progress) is not copied: it is rebuilt by re-running a job.
- ``replicate(primary, replica)`` copies each object in scope that the replica lacks, or holds
  under another recorded SHA-256: read from the primary with its SHA-256 checked, written,
  then read back from the replica with the SHA-256 checked. An object its dossier's manifest
  names is copied only with the SHA-256 the manifest gives it, and the target's manifest if it
  names it too (object keys are written once: one key with two hashes is a changed object or
  manifest): one changed at the source, even with its record and its manifest rewritten to
  match (a rogue or broken writer), is reported and never copied over the good copy; one the
  manifest names that the source no longer holds is reported lost, not as an extra object of the
  target. A dossier's manifest is not copied while any object it names is not, nor over a
  newer one (a restore into a partial primary put an older manifest over a newer one). A write-once object stays
  write-once on the copy (COMPLIANCE for the time it has left; otherwise ``retain`` with the
  same metadata, so an S3 replica derives the same period from the maintenance code and the day
  the dossier closed).
- Order: ``system/`` first, then dossier by dossier every object and its ``manifest.json``
  last, so a dossier becomes visible on the target only once all its manifest names is there.
- ``check(primary, replica)`` copies nothing: missing, different and extra objects; with
  ``read=True`` (the default) the replica's bytes are re-hashed too, so a changed byte under
  an unchanged record is found. ``replicate(..., read=True)`` repairs such a copy.
- ``restore(replica, primary)`` is the same copy the other way: it rebuilds an emptied,
  partial or damaged primary, re-reading what the primary holds (``read=True``, its default). Every run is idempotent: a second run copies nothing. Nothing is ever
  deleted but a damaged copy being repaired; objects only the target holds are reported.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Collection, Iterable, Sequence

from storage import keys
from storage.base import ObjectInfo, ObjectStore, sha256
from storage.errors import IntegrityError, NotFound, StorageError
from storage.local import LocalStore

from . import manifest as mf
from .repository import due_later, extend_locks
from .config import Settings
from .errors import ConfigError

log = logging.getLogger(__name__)

SYSTEM = "system/"
SCOPE = (keys.PREFIX, SYSTEM)
CURSORS = "system/fixity-cursor-"  # one store's own progress: never copied (see pipeline.fixity)
_CONTENT_TYPES = {"pdf": "application/pdf", "json": "application/json", "txt": "text/plain; charset=utf-8",
                  "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "tif": "image/tiff",
                  "tiff": "image/tiff"}


@dataclass(frozen=True)
class ReplicationReport:
    """What one run found and did. ``missing`` and ``different`` are the state found at the
    start (objects of the source the target lacks, or holds with other bytes); ``copied`` what
    was written; ``failed`` (key, reason) what could not be, or must not be (an object its manifest
    names that the source holds changed, or no longer holds); ``extra`` objects only the target holds."""
    action: str                         # "replicate", "check" or "restore"
    source: str
    target: str
    objects: int                        # objects in scope at the source
    missing: tuple[str, ...] = ()
    different: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    copied: tuple[str, ...] = ()
    bytes_copied: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every object of the source is on the target with its bytes (after the run), and every
        object a manifest names is at the source as the manifest has it."""
        return not self.failed and set(self.missing) | set(self.different) <= set(self.copied)

    def to_json(self) -> dict:
        return {"action": self.action, "source": self.source, "target": self.target, "objects": self.objects,
                "missing": list(self.missing), "different": list(self.different), "extra": list(self.extra),
                "copied": len(self.copied), "bytesCopied": self.bytes_copied,
                "failed": [{"key": k, "reason": r} for k, r in self.failed], "seconds": round(self.seconds, 3),
                "ok": self.ok}


# --------------------------------------------------------------------------- pure

def in_scope(key: str) -> bool:
    return key.startswith(SCOPE) and not key.startswith(CURSORS)


def copy_order(found: Iterable[str]) -> list[str]:
    """``system/`` first, then each dossier's objects with its ``manifest.json`` last."""
    def rank(key: str) -> tuple:
        if not key.startswith(keys.PREFIX):
            return (0, "", 0, key)
        code, _, rest = key[len(keys.PREFIX):].partition("/")
        return (1, code, rest == "manifest.json", key)

    return sorted(found, key=rank)


def compare(source: dict[str, ObjectInfo], target: dict[str, ObjectInfo | None]) -> tuple[list[str], list[str]]:
    """(missing, different): keys of ``source`` that ``target`` lacks, or records under another SHA-256."""
    missing = [k for k in source if target.get(k) is None]
    different = [k for k in source if target.get(k) is not None and
                 (target[k].sha256 != source[k].sha256 or target[k].size != source[k].size)]
    return missing, different


def named(manifest: dict) -> dict[str, str]:
    """key -> SHA-256 of every object the manifest names under its own dossier's folder."""
    prefix = keys.PREFIX + f"{manifest.get('dossierCode')}/"
    return {ref["key"]: ref["sha256"] for doc in manifest.get("documents", ()) for ref in mf.document_objects(doc)
            if ref.get("key", "").startswith(prefix) and ref.get("sha256")}


def manifest_key_of(key: str) -> str | None:
    """The manifest of the dossier an object belongs to (None outside ``dossiers/``)."""
    code = keys.code_of(key)
    return keys.manifest(code) if code is not None and key.startswith(keys.PREFIX) else None


def put_options(lock: dict | None, now: datetime) -> dict:
    """``put`` keywords that keep an object's write-once lock on its copy: COMPLIANCE for the
    days it has left (rounded up), else ``retain`` when it is retained."""
    if lock is None:
        return {"retain": False}
    until = lock.get("compliance_until")
    if until is not None and until > now:
        return {"compliance_days": max(1, math.ceil((until - now).total_seconds() / 86400))}
    return {"retain": bool(lock.get("retained"))}


def content_type(key: str) -> str:
    return _CONTENT_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def scope_prefixes(codes: Sequence[str] | None) -> list[str]:
    """Every prefix in scope, or only the named dossiers' (checked: a code is one safe key segment)."""
    if codes is None:
        return list(SCOPE)
    return [keys.dossier_prefix(code) for code in dict.fromkeys(codes)]


# --------------------------------------------------------------------------- edges

def describe_store(store: ObjectStore) -> str:
    if isinstance(store, LocalStore):
        return f"local:{store.root}"
    return f"{store.name}:{getattr(store, 'bucket', '?')}"


def open_replica(settings: Settings) -> ObjectStore | None:
    """The replica named by SOHOA_REPLICA_*, with the primary's backends; None when there is none.
    A replica directory must exist already: a medium that is not mounted is an error, not an
    empty directory made on the wrong disk."""
    replica = settings.replica
    if replica.s3 is not None:
        from storage.s3 import S3Store

        s3 = replica.s3
        return S3Store.connect(s3.endpoint, s3.access_key, s3.secret_key, bucket=s3.bucket, secure=s3.secure,
                               region=s3.region, lock_mode=s3.lock_mode, retention_days=s3.retention_days)
    if replica.directory is not None:
        if not Path(replica.directory).is_dir():
            raise ConfigError(f"Thư mục bản sao SOHOA_REPLICA_DIR '{replica.directory}' không tồn tại (phương tiện "
                              "chưa được gắn?); tạo thư mục trên phương tiện độc lập rồi chạy lại",
                              "SOHOA_REPLICA_DIR does not exist")
        return LocalStore(replica.directory)
    return None


def lock_of(store: ObjectStore, key: str) -> dict | None:
    """The object's write-once lock: {"retained": bool, "compliance_until": datetime | None}."""
    if isinstance(store, LocalStore):
        retained = store.retained(key)
        held = store.retention(key)
    elif hasattr(store, "retention"):
        held = store.retention(key)
        retained = held is not None
    else:
        return None
    until = held["until"] if held and held.get("mode") == "COMPLIANCE" else None
    return {"retained": retained, "compliance_until": until}


def _manifest(store: ObjectStore, key: str, info: ObjectInfo | None) -> dict | None:
    """A manifest as its store recorded it, None when absent or unreadable (fixity reports it)."""
    if info is None:
        return None
    try:
        return json.loads(store.get(key, sha256=info.sha256))
    except (StorageError, ValueError) as error:
        log.warning("manifest %s unreadable: %s", key, error)
        return None


def _disposed_at(found: Collection[str], manifest_key: str) -> bool:
    """Whether the dossier of ``manifest_key`` was disposed of (or is being) where ``found`` was
    listed: its manifest gone by approval, not lost."""
    code = keys.code_of(manifest_key)
    return code is not None and any(k in found for k in keys.disposal_marks(code))


def _listing(store: ObjectStore, codes: Sequence[str] | None) -> list[str]:
    return sorted({k for prefix in scope_prefixes(codes) for k in store.list(prefix) if in_scope(k)})


def _stats(store: ObjectStore, found: Iterable[str]) -> dict[str, ObjectInfo | None]:
    return {k: store.stat(k) for k in found}


def _read_problems(store: ObjectStore, infos: dict[str, ObjectInfo]) -> list[str]:
    """Keys whose bytes no longer hash to the SHA-256 recorded for them (or that vanished)."""
    bad = []
    for key, info in infos.items():
        try:
            data = store.get(key)
        except NotFound:
            bad.append(key)
            continue
        if sha256(data) != info.sha256:
            bad.append(key)
    return bad


def _copy(source: ObjectStore, target: ObjectStore, key: str, info: ObjectInfo, now: datetime) -> int:
    """Copy one object, its SHA-256 checked on both sides; the bytes written."""
    data = source.get(key, sha256=info.sha256)
    options = put_options(lock_of(source, key), now)
    target.put(key, data, content_type(key), dict(info.metadata or {}), **options)
    try:
        target.get(key, sha256=info.sha256)
    except IntegrityError:
        # the target recorded these bytes but holds others (a damaged copy its store will not
        # overwrite as "the same"): remove the damaged copy where its lock allows, write again
        target.delete(key)
        target.put(key, data, content_type(key), dict(info.metadata or {}), **options)
        target.get(key, sha256=info.sha256)
    return len(data)


def _run(action: str, source: ObjectStore, target: ObjectStore, codes: Sequence[str] | None, *,
         copy: bool, read: bool, now: datetime | None) -> ReplicationReport:
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    at_source = _listing(source, codes)
    at_target = _listing(target, codes)
    source_infos = {k: i for k, i in _stats(source, at_source).items() if i is not None}  # gone since listed: skip
    on_target = set(at_target)
    target_infos = _stats(target, [k for k in source_infos if k in on_target])
    missing, different = compare(source_infos, target_infos)
    if read:
        settled = set(missing) | set(different)
        damaged = set(_read_problems(target, {k: i for k, i in source_infos.items() if k not in settled}))
        different = [k for k in source_infos if k in damaged or k in set(different)]
    src, dst = describe_store(source), describe_store(target)
    again = ("sao lại sang bản sao bằng 'sohoa replicate MÃ_HỒ_SƠ'" if action == "restore"
             else "khôi phục về kho chính bằng 'sohoa restore MÃ_HỒ_SƠ'")
    refused: dict[str, str] = {}  # key -> why it must not be copied
    lost: list[str] = []
    later: list[dict] = []  # manifests whose dossier is due later than the target's copy says
    for manifest_key in [k for k in source_infos if k.endswith("/manifest.json") and k.count("/") == 2]:
        here = _manifest(source, manifest_key, source_infos[manifest_key])
        if here is None:
            continue
        there = _manifest(target, manifest_key, target_infos.get(manifest_key))
        if there is not None and due_later(there, here):
            later.append(here)
        by_there = named(there) if there else {}
        for key, digest in named(here).items():
            info = source_infos.get(key)
            if info is None:
                if key in on_target:
                    lost.append(key)
            elif info.sha256 != digest:
                refused[key] = (f"mã băm SHA-256 ở {src} khác với manifest của hồ sơ; không sao chép, bản ở {dst} "
                                "được giữ nguyên")
            elif key in by_there and by_there[key] != digest:
                # object keys are written once: one key with two hashes is a changed object (or manifest)
                refused[key] = f"mã băm SHA-256 ở {src} khác với manifest ở {dst}; không sao chép"
        if there and (there.get("manifestVersion") or 0) > (here.get("manifestVersion") or 0):
            refused[manifest_key] = (f"manifest ở {dst} mới hơn (phiên bản {there.get('manifestVersion')} so với "
                                     f"{here.get('manifestVersion')}); không ghi đè")
    if action != "restore":  # a dossier the primary lost whole, its manifest with it (restore: a newer one)
        for manifest_key in [k for k in at_target if k.endswith("/manifest.json") and k.count("/") == 2
                             and k not in source_infos and not _disposed_at(source_infos, k)]:
            prefix = manifest_key[:-len("manifest.json")]
            lost += [k for k in at_target if k.startswith(prefix)]  # its history and events too
    lost.sort()
    extra = sorted(on_target - set(at_source) - set(lost))
    failed = [*refused.items(), *((k, f"manifest của hồ sơ có tên đối tượng này nhưng {src} không còn giữ; {dst} còn "
                                      f"giữ nó ({again.replace('MÃ_HỒ_SƠ', keys.code_of(k) or 'MÃ_HỒ_SƠ')})")
                                  for k in lost)]
    copied, written = [], 0
    if copy:
        todo = (set(missing) | set(different)) - set(refused)
        # a dossier becomes visible on the target only with every object its manifest names
        incomplete = {manifest_key_of(k) for k in (*refused, *lost)}
        for key in copy_order(todo):
            if key in incomplete:
                failed.append((key, "không sao manifest: có đối tượng của hồ sơ không sao được"))
                continue
            try:
                written += _copy(source, target, key, source_infos[key], now)
                copied.append(key)
            except (StorageError, OSError) as error:
                reason = getattr(error, "message_vi", None) or f"{type(error).__name__}: {error}"
                log.error("Sao chép %s từ %s sang %s không được: %s", key, src, dst, reason)
                failed.append((key, reason))
                incomplete.add(manifest_key_of(key))
        for manifest in later:  # the copies stored before were locked for the old due date (review)
            if keys.manifest(manifest["dossierCode"]) not in incomplete:
                extend_locks(target, manifest)
    return ReplicationReport(action, describe_store(source), describe_store(target), len(source_infos),
                             tuple(missing), tuple(different), tuple(extra), tuple(copied), written,
                             tuple(failed), time.monotonic() - started)


def replicate(primary: ObjectStore, replica: ObjectStore, codes: Sequence[str] | None = None, *,
              read: bool = False, now: datetime | None = None) -> ReplicationReport:
    """Copy to the replica every object in scope it lacks or holds with other bytes (``read``:
    re-hash the replica's copies too, and repair the damaged ones)."""
    return _run("replicate", primary, replica, codes, copy=True, read=read, now=now)


def check(primary: ObjectStore, replica: ObjectStore, codes: Sequence[str] | None = None, *,
          read: bool = True) -> ReplicationReport:
    """Missing, different and extra objects of the replica; nothing is copied."""
    return _run("check", primary, replica, codes, copy=False, read=read, now=None)


def restore(replica: ObjectStore, primary: ObjectStore, codes: Sequence[str] | None = None, *,
            read: bool = True, now: datetime | None = None) -> ReplicationReport:
    """Rebuild an emptied or partial primary from the replica, each dossier's manifest last."""
    return _run("restore", replica, primary, codes, copy=True, read=read, now=now)
