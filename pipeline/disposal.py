"""Retention and disposal of dossiers: when each is due, legal holds, and disposal with an
archivist's approval that keeps a record and no content.

- Due date (``due_date``): a dossier is kept for its maintenance code's period (TT 05/2025:
  01 permanent, 02-06 70 to 10 years; 07 or none: the deployment's SOHOA_RETENTION_DAYS),
  counted from the 1st of January after the year its last document came in (archives count
  from the year the matter closed). A permanent dossier is never due.
- Legal hold (``hold``, ``release``): ``dossiers/<code>/legal-hold.json`` says who placed it,
  when and why; every object of the dossier gets the store's own legal hold (S3 object legal
  hold, the local store's flag), so not even a deletion outside sohoa goes through; each
  change is a preservation event. A held dossier is never disposed.
- Disposal (``dispose``): only a dossier that is due and not held, approved by a user with
  the archivist role whose agencies cover it, with a reason, and none of its jobs still
  running; all under the dossier's lock. First a pending record (the approval and the objects
  to remove: keys and hashes, no content; the originals of its failed or given-up jobs too) is
  written, and its failed jobs are given up; then the
  dossier leaves the search index, its documents (originals, every PDF version, OCR text and
  words) are deleted, then its manifest history and manifest. A dossier an object of which the
  store's time lock still holds is refused before anything is removed, with the lock's date; what
  a lock placed meanwhile protects stays and is listed. The disposal record (``dossiers/<code>/disposal.json``,
  write-once: the dossier's code, titles, dates, maintenance code, the documents' ids and page
  counts, every object's key and SHA-256, removed or kept, the approval and the reason) and the
  preservation events stay. A disposal cut short resumes from its pending record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Mapping, Sequence

from storage import index as search_index, jobs as job_table, keys
from storage.base import ObjectStore
from storage.errors import NotFound as ObjectNotFound, RetentionError
from storage.retention import period_end

from . import audit, events, jobs, manifest as mf
from .errors import Conflict, IntegrityError, NotFound, UsageError
from .repository import dossier_lock, load_manifest

PERMANENT = "01"
HOLD, PENDING, RECORD = keys.LEGAL_HOLD, keys.DISPOSAL_PENDING, keys.DISPOSAL


@dataclass(frozen=True)
class RetentionRow:
    """One dossier as the retention report shows it. ``status``: permanent, not-due, due, held,
    disposing (a disposal cut short) or disposed."""
    code: str
    title: str
    maintenance: str | None
    closed: date | None
    due: date | None
    status: str
    hold: dict | None = None

    def to_json(self) -> dict:
        return {"code": self.code, "title": self.title, "maintenance": self.maintenance,
                "closed": self.closed.isoformat() if self.closed else None,
                "due": self.due.isoformat() if self.due else None, "status": self.status, "hold": self.hold}


# --------------------------------------------------------------------------- pure

def closed_on(manifest: dict) -> date | None:
    """The day the dossier's last document came in (``endDate``), else its last update."""
    last = mf.closing_day(manifest)
    return date.fromisoformat(last) if last else None


def due_date(manifest: dict, default_days: int) -> date | None:
    """When the dossier may be disposed of; None when it is kept permanently (or has no date)."""
    code = (manifest.get("maintenance") or "").strip()
    closed = closed_on(manifest)
    if code == PERMANENT or closed is None:
        return None
    return period_end(closed, code, default_days)  # the day the store's write-once lock ends too


DAMAGED = "damaged"  # the manifest does not parse: nothing is known of the dossier until it is restored


def status_of(manifest: dict | None, held: dict | None, pending: bool, disposed: bool, due: date | None,
              as_of: date) -> str:
    if disposed:
        return "disposed"
    if pending:
        return "disposing"
    if held:
        return "held"
    if manifest is not None and (manifest.get("maintenance") or "") == PERMANENT:
        return "permanent"
    return "due" if due is not None and due <= as_of else "not-due"


def content_objects(manifest: dict) -> list[dict]:
    """Every object of the dossier's documents (``manifest.document_objects``: originals, PDF
    versions, text, words and the PDFs of stopped attempts), each once: ``{key, sha256, docId}``."""
    seen, out = set(), []
    for doc in manifest.get("documents", []):
        for obj in mf.document_objects(doc):
            if obj.get("key") and obj["key"] not in seen:
                seen.add(obj["key"])
                out.append({"key": obj["key"], "sha256": obj.get("sha256"), "docId": doc.get("docId")})
    return out


def disposal_plan(manifest: dict, store_keys: Sequence[str], approval: dict,
                  unfinished: Mapping[str, str] | None = None) -> dict:
    """The pending record: what will be removed (contents first, the originals of jobs that
    never became a document, ``unfinished``: key -> job id, then the manifest history and the
    manifest), the approval, and what the dossier was, with no content."""
    code = manifest["dossierCode"]
    history = sorted(k for k in store_keys if k.startswith(keys.dossier_prefix(code) + "manifests/"))
    contents = content_objects(manifest)
    never_documents = _job_originals(unfinished or {}, {o["key"] for o in contents})
    return {
        "schema": "sohoa.disposal/1", "dossierCode": code, "title": manifest.get("title"),
        "maintenance": manifest.get("maintenance"), "paperFileCode": manifest.get("paperFileCode"),
        "created": manifest.get("created"), "closed": closed.isoformat() if (closed := closed_on(manifest)) else None,
        "documents": [{"docId": d.get("docId"), "title": d.get("title"), "numberOfPage": d.get("numberOfPage"),
                       "pdfSha256": (d.get("pdf") or {}).get("sha256")} for d in manifest.get("documents", [])],
        "objects": contents + never_documents + [{"key": k, "sha256": None, "docId": None} for k in history]
        + [{"key": keys.manifest(code), "sha256": None, "docId": None}],
        "approval": approval,
    }


# --------------------------------------------------------------------------- reading

def _json(store: ObjectStore, key: str) -> dict | None:
    try:
        return json.loads(store.get(key))
    except ObjectNotFound:
        return None


def hold_of(store: ObjectStore, code: str) -> dict | None:
    record = _json(store, keys.dossier_prefix(code) + HOLD)
    return record if record and record.get("active") else None


def report(store: ObjectStore, default_days: int, as_of: date) -> list[RetentionRow]:
    """Every dossier of the store, those disposed of included, with its due date and status."""
    rows = []
    for code in store.children(keys.PREFIX):  # the dossier folders, one level: no key below is listed
        prefix = keys.dossier_prefix(code)
        if not any(store.exists(prefix + name) for name in ("manifest.json", RECORD, PENDING)):
            continue
        try:
            disposed, pending = _json(store, prefix + RECORD), _json(store, prefix + PENDING)
            manifest = None if disposed else load_manifest(store, code)
            held = hold_of(store, code)
        except (IntegrityError, ValueError):  # one damaged record stopped the whole report: it is listed
            rows.append(RetentionRow(code, "", None, None, None, DAMAGED, None))
            continue
        shown = manifest or disposed or pending or {}
        due = due_date(manifest, default_days) if manifest else None
        closed = closed_on(manifest) if manifest else (date.fromisoformat(shown["closed"]) if shown.get("closed") else None)
        rows.append(RetentionRow(code, shown.get("title") or "", shown.get("maintenance"), closed, due,
                                 status_of(manifest, held, pending is not None, disposed is not None, due, as_of),
                                 held))
    return rows


# --------------------------------------------------------------------------- legal hold

def hold(store: ObjectStore, code: str, reason: str, by: str, *, release: bool = False) -> dict:
    """Place (or ``release``) the dossier's legal hold; returns the hold record."""
    reason = audit.stated_reason(reason)
    if load_manifest(store, code) is None:
        raise NotFound(f"Không tìm thấy hồ sơ {code}", "dossier not found: no manifest")
    current = hold_of(store, code)
    if release and current is None:
        raise Conflict(f"Hồ sơ {code} không bị giữ theo yêu cầu pháp lý; không có gì để gỡ", "no legal hold to release")
    record = {"schema": "sohoa.legal-hold/1", "dossierCode": code, "active": not release,
              "at": audit.now_vn().isoformat(), "by": by, "reason": reason,
              "previous": current}
    for key in store.list(keys.dossier_prefix(code)):
        if held_object(key):
            store.legal_hold(key, not release)
    store.put(keys.dossier_prefix(code) + HOLD, json.dumps(record, ensure_ascii=False).encode(), "application/json")
    events.record(store, code, "policy assignment", "success",
                  detail=("legal hold released" if release else "legal hold placed") + f" by {by}: {reason}")
    return record


def held_object(key: str) -> bool:
    """The objects a legal hold covers: everything of the dossier but its mutable records."""
    return not key.endswith(("/" + HOLD, "/" + PENDING, "/manifest.json"))


# --------------------------------------------------------------------------- disposal

def dispose(store: ObjectStore, db, code: str, *, approver: dict, reason: str, default_days: int,
            as_of: date | None = None, copies: Sequence[ObjectStore] = ()) -> dict:
    """Dispose of the dossier (module docstring); returns the disposal record. ``approver``:
    ``{"name", "role", "agencies"}`` of the user whose credentials approved it; ``copies``: the
    stores the disposal is carried to afterwards (the replica), whose locks must allow it too."""
    reason = audit.stated_reason(reason)
    with dossier_lock(db, code):  # no document is committed, no job retried, while the plan is made and carried out
        return _dispose(store, db, code, approver, reason, default_days, as_of, copies)


def _dispose(store: ObjectStore, db, code: str, approver: dict, reason: str, default_days: int,
             as_of: date | None, copies: Sequence[ObjectStore] = ()) -> dict:
    prefix = keys.dossier_prefix(code)
    done = _json(store, prefix + RECORD)
    if done is not None:  # disposed of before: nothing more to remove (said so, not as a new disposal)
        return {**done, "already": True}
    pending = _json(store, prefix + PENDING)
    if pending is None:
        manifest = load_manifest(store, code)
        if manifest is None:
            raise NotFound(f"Không tìm thấy hồ sơ {code}", "dossier not found: no manifest")
        _may_dispose(store, db, code, manifest, approver, default_days, as_of or audit.now_vn().date())
        approval = {"by": approver["name"], "role": approver["role"], "reason": reason,
                    "at": audit.now_vn().isoformat()}
        pending = disposal_plan(manifest, store.list(prefix), approval, jobs.held_originals(db, code))
        _refuse_if_locked(store, code, pending["objects"])
        for copy in copies:  # a replica's copy locked till later left the dossier half disposed (the review)
            _refuse_if_locked(copy, code, pending["objects"], "bản sao thứ hai")
        store.put(prefix + PENDING, json.dumps(pending, ensure_ascii=False).encode(), "application/json")
    elif hold_of(store, code):
        raise Conflict(f"Hồ sơ {code} đang bị giữ theo yêu cầu pháp lý; không hủy", "dossier under legal hold")
    pending = _with_jobs_given_up(store, db, code, pending)
    search_index.forget_dossier(db, code)
    removed, kept = [], []
    for obj in pending["objects"]:
        try:
            store.delete(obj["key"])
            removed.append(obj)
        except RetentionError as exc:
            kept.append({**obj, "why": exc.message_vi})
    record = {**pending, "removed": removed, "kept": kept, "disposedAt": audit.now_vn().isoformat()}
    record.pop("objects")
    outcome = "success" if not kept else "warning"
    events.record(store, code, "deletion", outcome,
                  detail=f"disposal approved by {pending['approval']['by']} ({pending['approval']['role']}): "
                         f"{pending['approval']['reason']}; {len(removed)} object(s) removed",
                  outcome_detail="; ".join(f"{k['key']}: {k['why']}" for k in kept),
                  objects=[o["key"] for o in removed])
    if kept:  # the lock still holds some: the pending record stays, a later run finishes
        return {**record, "complete": False}
    store.put(prefix + RECORD, json.dumps({**record, "complete": True}, ensure_ascii=False).encode(),
              "application/json", retain=True)
    store.delete(prefix + PENDING)
    return {**record, "complete": True}


def _refuse_if_locked(store: ObjectStore, code: str, objects: Sequence[dict], where: str = "kho") -> None:
    """Conflict, before anything is removed, when the store's write-once lock still holds an object
    of the plan (S3 object lock: it ends the day the dossier is due, storage.retention, but an
    object stored before version 0.3.1 is locked from the day it was stored, and one of a dossier
    already due when it was stored for a year). Removing the rest would take the dossier out of
    every view while the citizen's scans stayed for years (the ops review)."""
    locked_until = getattr(store, "retention", None)
    if locked_until is None:
        return
    now = audit.now_vn()
    latest, locked = None, 0
    for obj in objects:
        try:
            held = locked_until(obj["key"])
        except ObjectNotFound:
            continue
        if held and held.get("until") and held["until"] > now:
            locked += 1
            latest = max(latest or held["until"], held["until"])
    if locked:
        # the first day that begins with every lock ended (one ending at 23:22 refused that day's run again)
        ends = latest.astimezone(now.tzinfo)
        at_midnight = ends == datetime.combine(ends.date(), time(0), ends.tzinfo)
        first = ends.date() if at_midnight else ends.date() + timedelta(1)
        raise Conflict(
            f"Hồ sơ {code} đã đến hạn hủy nhưng {where} còn khóa bất biến {locked} tệp của nó đến "
            f"{ends:%H:%M} ngày {ends:%d/%m/%Y} (khóa đặt khi lưu); chưa xóa gì. Chạy lại lệnh từ ngày "
            f"{first:%d/%m/%Y}", f"{locked} object(s) of the dossier locked until {latest.isoformat()} "
                                 f"({where}): nothing removed")


def _with_jobs_given_up(store: ObjectStore, db, code: str, pending: dict) -> dict:
    """The pending record once the dossier's failed jobs are given up (after it is written: a
    disposal that never started gives up nothing), with the originals of any job recorded
    since the plan was made (an upload accepted as the disposal began) added to it."""
    jobs.discard_for_disposal(db, code, pending["approval"])
    late = _job_originals(jobs.held_originals(db, code), {o["key"] for o in pending["objects"]})
    if not late:
        return pending
    pending = {**pending, "objects": late + pending["objects"]}
    store.put(keys.disposal_pending(code), json.dumps(pending, ensure_ascii=False).encode(), "application/json")
    return pending


def _job_originals(held: Mapping[str, str], planned: set[str]) -> list[dict]:
    """Plan entries for the originals of jobs that never became a document (``held``: key -> job
    id) that the plan does not name yet."""
    return [{"key": key, "sha256": None, "docId": None, "job": job_id}
            for key, job_id in sorted(held.items()) if key not in planned]


def _may_dispose(store: ObjectStore, db, code: str, manifest: dict, approver: dict, default_days: int,
                 as_of: date) -> None:
    """Refusals of a disposal: who approves it, a legal hold, its due date, jobs still running."""
    from .access import in_scope

    if approver.get("role") != "archivist":
        raise UsageError(f"Hủy hồ sơ cần phê duyệt của cán bộ lưu trữ (vai trò archivist); "
                         f"{approver.get('name')} là {approver.get('role')}", "disposal needs an archivist's approval")
    if not in_scope(code, approver.get("agencies") or ()):
        raise UsageError(f"Cán bộ lưu trữ {approver.get('name')} không phụ trách hồ sơ {code}",
                         "the approving archivist's agencies do not cover the dossier")
    if hold_of(store, code):
        raise Conflict(f"Hồ sơ {code} đang bị giữ theo yêu cầu pháp lý; không hủy", "dossier under legal hold")
    due = due_date(manifest, default_days)
    if due is None or due > as_of:
        shown = "bảo quản vĩnh viễn" if due is None else f"đến hạn hủy ngày {due:%d/%m/%Y}"
        raise Conflict(f"Hồ sơ {code} chưa đến hạn hủy ({shown})", f"dossier not due for disposal: {due}")
    if working := [job_id for job_id, _ in job_table.requests_of(db, code, job_table.ACTIVE)]:
        raise Conflict(f"Hồ sơ {code} còn {len(working)} lượt xử lý đang chạy ({', '.join(working)}); "
                       f"chờ các lượt này xong rồi hủy", "dossier has jobs still running")
