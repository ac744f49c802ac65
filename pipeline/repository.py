"""Dossiers in the object store: reading a manifest, and changing one under the dossier's lock.

A manifest is the dossier's table of contents and is written last, so what it names is
visible and nothing else is. Every change is read-modify-write under ``dossier_lock``, held
in the shared database (``storage.locks``) so that it holds across machines, and
``save_manifest`` checks that the manifest it replaces is still the one that was read.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack, contextmanager
from datetime import datetime

from storage import keys
from storage.base import ObjectStore
from storage.errors import LockTimeout, NotFound as ObjectNotFound
from storage.locks import dossier_lock  # the lock every change is made under

from . import manifest as mf
from .errors import Conflict, IntegrityError, NotFound


def load_manifest(store: ObjectStore, code: str) -> dict | None:
    """The dossier's manifest, None if the dossier does not exist; IntegrityError if unreadable."""
    try:
        data = store.get(keys.manifest(code))
    except ObjectNotFound:
        return None
    try:
        manifest = mf.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"Manifest của hồ sơ {code} bị hỏng, không đọc được; chưa thay đổi gì",
                             f"damaged manifest: {e}") from None
    if manifest["dossierCode"] != code:  # a manifest copied into another dossier's folder
        raise IntegrityError(f"Manifest trong thư mục hồ sơ {code} là của hồ sơ {manifest['dossierCode']}; "
                             "chưa thay đổi gì", "manifest names another dossier than its folder")
    return manifest


def free_pdf_version(store: ObjectStore, code: str, doc_id: str, start: int) -> tuple[int, list[dict]]:
    """The first version number from ``start`` whose PDF key is free, and the PDFs found in the
    way: each was stored by an attempt stopped before it wrote the manifest (write-once, so it
    stays). The caller records them in the document's ``abandoned`` list, so that no stored
    object goes unaccounted for and fixity checks them like the rest."""
    version, abandoned = start, []
    while (found := store.stat(keys.document_pdf(code, doc_id, version))) is not None:
        abandoned.append({**found.to_json(), "reason": "attempt-stopped-before-manifest"})
        version += 1
    return version, abandoned


def refuse_if_disposed(store: ObjectStore, code: str) -> None:
    """Conflict when the dossier has been disposed of, or its disposal is under way: its code
    takes no new document (a disposed dossier keeps only its record, and a document committed
    under a disposal's feet would outlive its manifest)."""
    for key, state in ((keys.disposal_record(code), "đã bị hủy"), (keys.disposal_pending(code), "đang được hủy")):
        if not store.exists(key):  # every upload asks: a look, not a read that fails
            continue
        try:
            data = store.get(key)
        except ObjectNotFound:
            continue
        try:  # a damaged record still says the dossier was disposed of: refused all the same
            approval = json.loads(data)["approval"]
            shown = f" (phê duyệt: {approval['by']}, {approval['reason']})"
        except (ValueError, UnicodeDecodeError, TypeError, KeyError):
            shown = ""
        raise Conflict(f"Hồ sơ {code} {state}{shown}; không thêm tài liệu vào hồ sơ này được",
                       f"dossier disposed of ({key.rsplit('/', 1)[-1]}): it takes no new document")


def require_manifest(store: ObjectStore, code: str) -> dict:
    """The dossier's manifest; NotFound when the dossier does not exist."""
    manifest = load_manifest(store, code)
    if manifest is None:
        raise NotFound(f"Không tìm thấy hồ sơ {code}" + _disposed_note(store, code), "dossier not found: no manifest")
    return manifest


def _disposed_note(store: ObjectStore, code: str) -> str:
    """What remains of a dossier disposed of, for the "not found" message (the archivist was told
    only that it did not exist)."""
    try:
        record = json.loads(store.get(keys.disposal_record(code)))
        approval, at = record["approval"], datetime.fromisoformat(record.get("disposedAt") or record["approval"]["at"])
        return (f": đã bị hủy ngày {at:%d/%m/%Y} (phê duyệt: {approval['by']}, {approval['reason']}); còn biên bản "
                f"hủy và các sự kiện bảo quản ('sohoa events {code}')")
    except (ObjectNotFound, ValueError, KeyError, TypeError):
        return ""


@contextmanager
def held_or_refused(db, key: str, wait: float, busy_vi: str):
    """The database's lock on ``key`` (as a dossier's: on every machine) held for the body, or
    Conflict with ``busy_vi`` when another holder keeps it past ``wait`` seconds: one upload to a
    counter's draft, one bulk run of a source. Only the taking is turned into Conflict: a
    LockTimeout from the body (a dossier's own lock) stays what it is."""
    with ExitStack() as held:
        try:
            held.enter_context(dossier_lock(db, key, wait))
        except LockTimeout:
            raise Conflict(busy_vi, f"{key}: held by another process past {wait:g} s") from None
        yield


def save_manifest(store: ObjectStore, code: str, manifest: dict) -> dict:
    """Store ``manifest`` as the dossier's next version: first into the write-once history
    (``manifests/<n>.json``, linked to the version before by its SHA-256), then as the current
    ``manifest.json``. Returns the manifest as stored. Call under ``dossier_lock``.

    ``manifest`` must derive from the current version (its ``manifestVersion`` is the one
    read): a change made from an older read would silently undo another writer's, so it is
    refused with Conflict."""
    try:
        previous = store.get(keys.manifest(code))
    except ObjectNotFound:
        previous = None
    before = mf.loads(previous) if previous is not None else None
    current_version = before.get("manifestVersion") if before is not None else None
    if previous is None and manifest.get("manifestVersion") is not None or \
            previous is not None and manifest.get("manifestVersion") != current_version:
        raise Conflict(f"Hồ sơ {code} vừa được thay đổi bởi một tiến trình khác; chưa lưu gì, hãy chạy lại",
                       f"manifest read at version {manifest.get('manifestVersion')}, "
                       f"current is {current_version}: stale read")
    stored = mf.next_version(manifest, previous)
    data = mf.dumps(stored)
    # the maintenance code and the day the dossier closed set a write-once version's lock (S3):
    # without them a permanent dossier's history was locked for the default ten years only, and a
    # renewal's for ten years past the day the dossier may be disposed of (the ops review)
    meta = {"dossier": code, "kind": "manifest"} | mf.lock_metadata(stored)
    store.put(keys.manifest_version(code, stored["manifestVersion"]), data, "application/json", meta, retain=True)
    store.put(keys.manifest(code), data, "application/json", meta)
    if before is not None and due_later(before, stored):
        extend_locks(store, stored)
    return stored


def due_later(before: dict, after: dict) -> bool:
    """Whether the dossier may now be due later than its objects' locks were set for: another
    maintenance code, or a closing day in a later year (its period counts from the year after)."""
    was, now = mf.lock_metadata(before), mf.lock_metadata(after)
    return now["maintenance"] != was["maintenance"] or (now["closed"] or "")[:4] > (was["closed"] or "")[:4]


def extend_locks(store: ObjectStore, manifest: dict) -> int:
    """Every write-once object of the dossier (its documents' files, its manifest history) locked at
    least until the day it is due now: a document added a year later, later paper dates or a
    longer maintenance code left the earlier objects' locks ending before it. Returns how many
    object versions were extended."""
    code, lock = manifest["dossierCode"], mf.lock_metadata(manifest)
    named = {ref["key"] for doc in manifest["documents"] for ref in mf.document_objects(doc)}
    history = {keys.manifest_version(code, n) for n in range(1, (manifest.get("manifestVersion") or 0) + 1)}
    return sum(store.extend_lock(key, lock) for key in sorted(named | history))


def manifest_chain_problems(store: ObjectStore, code: str) -> list[str]:
    """Breaks in the dossier's manifest history: a version missing or altered, a version that
    rewrites what an earlier one recorded of a document (its signed files, its originals), or a
    current manifest.json that is not the last version (edited in place). Empty when intact."""
    current_bytes = store.get(keys.manifest(code))
    current = mf.loads(current_bytes)
    newest = current.get("manifestVersion")
    if newest is None:
        return []  # written before manifests had a history (sohoa.manifest/1): nothing to check yet
    problems, previous, previous_version = [], None, None
    for number in range(1, newest + 1):
        try:
            data = store.get(keys.manifest_version(code, number))
        except ObjectNotFound:
            problems.append(f"thiếu phiên bản manifest {number} (manifest version {number} missing)")
            previous = None
            continue
        version = mf.loads(data)
        if previous is not None:
            if version.get("previousManifestSha256") != hashlib.sha256(previous).hexdigest():
                problems.append(f"phiên bản manifest {number} không nối với phiên bản {number - 1} "
                                f"(manifest version {number} does not link to version {number - 1})")
            problems += [f"phiên bản manifest {number} ghi lại tài liệu {doc_id} khác phiên bản {number - 1}: {what} "
                         f"(manifest version {number} rewrites what version {number - 1} recorded of {doc_id})"
                         for doc_id, what in rewritten_documents(previous_version, version)]
        previous, previous_version = data, version
    if previous is not None and previous != current_bytes:
        problems.append("manifest.json khác phiên bản cuối trong lịch sử: đã bị sửa "
                        "(manifest.json differs from the last version in its history: edited)")
    return problems


def _recorded(ref: dict) -> tuple:
    return ref.get("key"), ref.get("sha256")


def rewritten_documents(earlier: dict, later: dict) -> list[tuple[str, str]]:
    """Documents whose record a later manifest version rewrites where it may only add: the signed
    files (``pdfVersions``, a renewal appends one) and the originals. Each: (docId, what, in
    Vietnamese). A document the later version no longer lists is not judged here."""
    later_docs = {d.get("docId"): d for d in later.get("documents") or []}
    found = []
    for doc in earlier.get("documents") or []:
        after = later_docs.get(doc.get("docId"))
        if after is None:
            continue
        before_versions = [_recorded(v) for v in doc.get("pdfVersions") or []]
        if [_recorded(v) for v in after.get("pdfVersions") or []][:len(before_versions)] != before_versions:
            found.append((doc["docId"], "các tệp PDF đã ký bị thay"))
        if [_recorded(o) for o in after.get("originals") or []] != [_recorded(o) for o in doc.get("originals") or []]:
            found.append((doc["docId"], "bản gốc bị thay"))
    return found


def dossier_codes(store: ObjectStore) -> list[str]:
    """Every dossier in the store (those with a manifest): the dossier folders, one level
    (``children``), each asked for its manifest; no key below is listed."""
    return [code for code in store.children(keys.PREFIX) if store.exists(keys.manifest(code))]
