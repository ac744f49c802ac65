"""Rolling fixity: every stored object re-read within ``days`` days, one slice at a time.

- Scope: the objects replication copies (``dossiers/``, ``system/``; ``pipeline.replication``).
  Each object's bytes are hashed and compared with the SHA-256 its store recorded when it was
  written (``stat``: the local sidecar, the S3 object metadata) and, for the files a manifest
  names (originals, PDFs and their renewed versions, texts, words), with the SHA-256 in the
  manifest. A file a manifest names that the store lacks is missing; so is an object listed
  that is gone when read. Each problem is an ERROR log line naming the key, and is returned.
- Extra objects: a key under a dossier's folder that nothing accounts for (not its manifest,
  history, events or disposal records, nor a file the manifest names, nor an original held for
  a job not done; a folder with no manifest at all), as ``unlisted`` decides.
- Held originals: the citizen's files of a job queued, running, failed and waiting for its
  retry, or given up (``held(code)``: key -> job id, read from the job table after the folder
  is listed, ``pipeline.jobs.held_originals``). Re-read and hashed like any object, never extra,
  and missing when gone (the retry needs them; a given-up job's are kept until the dossier's
  disposal); not held once the dossier's disposal has begun (its pending record, then its record).
- Two views of one check: ``sweep`` reads the whole store at once, one dossier folder at a time
  (what ``sohoa verify --all`` runs first, and ``--fixity-only`` alone); ``fixity_slice`` reads
  it a slice at a time (the Celery beat task ``sohoa.fixity``), so that every object is checked
  within ``days`` days. Both judge each object with ``check_object`` and each folder's extras
  with ``unlisted``, and report the same problems: changed ("mismatch"), missing, extra.
- Slice size: the objects left in the cycle divided by the runs left before it must end
  (``cycle start + days``, one run every ``interval`` seconds; at least one run), rounded up;
  capped by ``limit``, and cut short by ``budget`` seconds. Keys are taken in sorted order
  from just after the cursor; an object added behind the cursor waits for the next cycle.
- State, in the ``state`` store (the primary's, for the primary and the replica alike):
  ``system/fixity-cursor-<label>.json`` (cycle start, last key checked, counts), rewritten each
  slice and never replicated; and ``system/fixity-log-<label>-<UTC time>.json``, write-once, per
  slice: every object checked with its SHA-256 and outcome (the read-only hash record); dated
  records written after a cycle started wait for the next cycle. The
  store rather than the database: it exists in every deployment, needs no migration, and the
  record then travels with the objects it vouches for (to the replica and a restore).
"""
from __future__ import annotations

import bisect
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Callable, Collection, Iterable, Mapping

from storage import index as search_index, jobs as job_table, keys
from storage.base import ObjectStore, sha256
from storage.errors import NotFound

from . import audit, events, manifest as mf, notices
from .replication import CURSORS, SCOPE, in_scope

log = logging.getLogger(__name__)

CURSOR_SCHEMA = "sohoa.fixity-cursor/1"
RECORD_SCHEMA = "sohoa.fixity-record/1"
RECORDS = "system/fixity-log-"
_EVENTS = re.compile(r"dossiers/[^/]+/events/")
_STAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
OUTCOME_VI = {"mismatch": "sai mã băm SHA-256", "missing": "mất đối tượng",
              "extra": "đối tượng thừa (không manifest nào liệt kê)"}
# what a dossier folder holds besides the files its manifest names (pipeline.disposal's records)
_RECORDS = (keys.LEGAL_HOLD, keys.DISPOSAL, keys.DISPOSAL_PENDING)
_HISTORY = re.compile(r"manifests/(\d{6})\.json")
Held = Callable[[str], Mapping[str, str]]  # dossier code -> {original key: job id} of its jobs not done


def nothing_held(code: str) -> Mapping[str, str]:
    return {}
_EVENT = re.compile(r"events/\d{8}T\d{6}\.\d{6}Z-[a-z][a-z-]{0,39}-[0-9a-f]{8,32}\.json")
_ORIGINAL = re.compile(r"dossiers/[^/]+/originals/[0-9a-f]{64}\.\w+")
# an original no document uses is kept while the database holds its job: one it does not know is
# what an ingest cut short before recording its job leaves, or a database restored apart from the store
UNHELD_ORIGINAL = ("bản gốc không tài liệu nào dùng và không lượt xử lý nào trong cơ sở dữ liệu giữ: lượt xử lý "
                   "của nó bị cắt trước khi được ghi, hoặc cơ sở dữ liệu đã được khôi phục từ bản sao lưu cũ hơn kho "
                   "(khi đó hãy khôi phục bản sao lưu cơ sở dữ liệu mới nhất) / an original held by no job the "
                   "database knows")


def _extra_detail(key: str, why: str) -> str:
    """Why an extra object is extra, for the report: an original's, what usually leaves one."""
    return f"{why}; {UNHELD_ORIGINAL}" if _ORIGINAL.fullmatch(key) else why


@dataclass(frozen=True)
class FixityProblem:
    key: str
    outcome: str                 # "mismatch" or "missing"
    expected: str | None         # the SHA-256 recorded (store or manifest)
    actual: str | None           # the SHA-256 of the bytes read; None when missing
    detail: str = ""

    def to_json(self) -> dict:
        return {"key": self.key, "outcome": self.outcome, "expected": self.expected, "actual": self.actual,
                "detail": self.detail}


@dataclass(frozen=True)
class Cursor:
    cycle_started: datetime
    last_key: str | None = None
    checked: int = 0             # objects checked in this cycle
    problems: int = 0            # problems found in this cycle

    def to_json(self, label: str, now: datetime) -> dict:
        return {"schema": CURSOR_SCHEMA, "store": label, "cycleStarted": self.cycle_started.isoformat(),
                "lastKey": self.last_key, "checked": self.checked, "problems": self.problems,
                "updated": now.isoformat()}

    @classmethod
    def from_json(cls, data: dict) -> "Cursor":
        return cls(datetime.fromisoformat(data["cycleStarted"]), data.get("lastKey"), int(data.get("checked", 0)),
                   int(data.get("problems", 0)))


@dataclass(frozen=True)
class FixityReport:
    """One slice (or, with ``checked == 0`` from ``status``, the progress alone)."""
    store: str                   # "primary" or "replica"
    checked: int                 # objects read in this slice
    bytes_read: int
    problems: tuple[FixityProblem, ...]
    done: int                    # objects of the store at or before the cursor: read this cycle
    total: int                   # objects in scope now
    cycle_started: datetime
    expected_end: datetime       # cycle start + days
    cycle_problems: int          # problems found in this cycle so far
    last_key: str | None
    record: str | None           # the key of this slice's write-once record
    seconds: float = 0.0
    held: int = 0                # originals read in this slice that are held for jobs not done: not extra

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def to_json(self) -> dict:
        return {"store": self.store, "checked": self.checked, "bytesRead": self.bytes_read,
                "problems": [p.to_json() for p in self.problems], "done": self.done, "total": self.total,
                "cycleStarted": self.cycle_started.isoformat(), "expectedEnd": self.expected_end.isoformat(),
                "cycleProblems": self.cycle_problems, "lastKey": self.last_key, "record": self.record,
                "seconds": round(self.seconds, 3), "held": self.held, "ok": self.ok}


# --------------------------------------------------------------------------- pure

def cursor_key(label: str) -> str:
    return keys.system(f"fixity-cursor-{label}.json")


def record_key(label: str, now: datetime) -> str:
    return keys.system(f"fixity-log-{label}-{now.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}.json")


def plan(found: list[str], cursor: Cursor | None, days: float, interval: float, now: datetime,
         limit: int | None = None) -> tuple[Cursor, list[str], list[str]]:
    """(the cursor the slice starts from, the keys of its cycle, the keys it reads): a new cycle
    when there is no cursor or the last one read everything; then as many keys after the cursor
    as keep the cycle within ``days`` at one run per ``interval`` seconds."""
    if cursor is not None and not _after(cycle_keys(found, cursor.cycle_started), cursor.last_key):
        cursor = None
    cursor = cursor or Cursor(now)
    cycle = cycle_keys(found, cursor.cycle_started)
    left = _after(cycle, cursor.last_key)
    seconds_left = (cursor.cycle_started + timedelta(days=days) - now).total_seconds()
    runs_left = max(1, math.floor(seconds_left / interval))
    size = math.ceil(len(left) / runs_left)
    if limit is not None:
        size = min(size, limit)
    return cursor, cycle, left[:size]


def cycle_keys(found: Iterable[str], cycle_started: datetime) -> list[str]:
    """The keys a cycle reads: all but the dated records written since it started (the fixity
    records, one a slice, and the dossiers' preservation events, which a fixity check may add):
    counting them, a cycle could chase its own records and never end."""
    stamp = cycle_started.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return [k for k in found if (written := _written(k)) is None or written < stamp]


def _written(key: str) -> str | None:
    """The UTC time in a dated record's name (``system/fixity-log-...``, ``dossiers/*/events/``)."""
    if key.startswith(RECORDS) or _EVENTS.match(key):
        found = _STAMP.search(key)
        return found.group(0) if found else None
    return None


def _after(found: list[str], last_key: str | None) -> list[str]:
    return [k for k in found if last_key is None or k > last_key]


def expected_hashes(manifest: dict) -> dict[str, str]:
    """The SHA-256 the manifest records for each file it names."""
    found = {}
    for doc in manifest.get("documents", []):
        for ref in mf.document_objects(doc):
            if ref.get("key") and ref.get("sha256"):
                found[ref["key"]] = ref["sha256"]
    return found


def judge(key: str, actual: str, recorded: str | None, listed: str | None) -> FixityProblem | None:
    """A mismatch when the bytes' SHA-256 differs from the store's record or the manifest's."""
    for expected, where in ((recorded, "kho lưu trữ / store record"), (listed, "manifest")):
        if expected is not None and actual != expected:
            return FixityProblem(key, "mismatch", expected, actual, where)
    return None


def done_count(found: Iterable[str], last_key: str | None) -> int:
    return 0 if last_key is None else sum(1 for k in found if k <= last_key)


def unlisted(code: str, found: Iterable[str], manifest: dict | None, disposal: dict | None = None,
             held: Collection[str] = ()) -> list[str]:
    """The keys under the dossier's folder that nothing accounts for (extra objects): not the
    manifest, a version of its history up to the current one, a file it names, a preservation
    event, a record of ``pipeline.disposal`` or an original ``held`` for a job not done; for a
    dossier disposed of or being disposed of (``disposal``: its record, or its pending record)
    the objects the record names, and no more (the originals of a job it left are extra). Anything
    else in a folder with neither a manifest nor a disposal record is extra (what an ingest cut
    short before recording its job would leave)."""
    if disposal is None:
        found = [key for key in found if key not in held]
    prefix = keys.dossier_prefix(code)
    named = set(expected_hashes(manifest)) if manifest else set()
    newest = int(manifest.get("manifestVersion") or 0) if manifest else 0
    if disposal:
        named |= {o.get("key") for o in disposal.get("objects") or [] if isinstance(o, dict)}
    if manifest is None and disposal is None:
        return sorted(found)
    extra = []
    for key in found:
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if rest is None:
            extra.append(key)
            continue
        history = _HISTORY.fullmatch(rest)
        if key in named or _EVENT.fullmatch(rest) or rest in _RECORDS \
                or (rest == "manifest.json" and manifest is not None) \
                or (history and 1 <= int(history.group(1)) <= newest):
            continue
        extra.append(key)
    return sorted(extra)


@dataclass(frozen=True)
class StoreAudit:
    """A whole store checked at once (``sweep``): what ``sohoa verify --all`` reports first."""
    store: str
    dossiers: int                # dossier folders read
    documents: int               # documents their manifests list
    objects: int                 # objects read and hashed
    bytes_read: int
    problems: tuple[FixityProblem, ...]
    seconds: float
    held: int = 0                # originals held for jobs not done (queued, running, failed, discarded): not extra

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, outcome: str) -> int:
        return sum(1 for p in self.problems if p.outcome == outcome)

    def to_json(self) -> dict:
        return {"store": self.store, "dossiers": self.dossiers, "documents": self.documents, "objects": self.objects,
                "bytesRead": self.bytes_read, "changed": self.count("mismatch"), "missing": self.count("missing"),
                "extra": self.count("extra"), "held": self.held, "problems": [p.to_json() for p in self.problems],
                "seconds": round(self.seconds, 3), "ok": self.ok}


# --------------------------------------------------------------------------- edges

def _read_json(store: ObjectStore, key: str) -> dict | None:
    try:
        found = json.loads(store.get(key))
    except (NotFound, ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


def check_object(store: ObjectStore, key: str, listed: str | None) -> tuple[FixityProblem | None, str | None, int]:
    """Re-read one object: (its problem or None, the SHA-256 of its bytes, bytes read)."""
    info = store.stat(key)
    try:
        data = store.get(key) if info is not None else None
    except NotFound:
        data = None
    if data is None:
        return (FixityProblem(key, "missing", listed or (info.sha256 if info else None), None,
                              "đã liệt kê nhưng không đọc được / listed but gone"), None, 0)
    actual = sha256(data)
    return judge(key, actual, info.sha256, listed), actual, len(data)


def check_dossier(store: ObjectStore, code: str,
                  held: Held = nothing_held) -> tuple[list[FixityProblem], int, int, int, int, bool]:
    """Every object under one dossier's folder, listed by its prefix and re-read: (problems,
    documents, objects read, bytes read, originals found that are held for jobs not done, whether
    the folder holds a manifest or a disposal's record, one of which a known dossier must have).
    Changed: the bytes' SHA-256 differs from the store's record or the manifest's; missing: a
    file the manifest names is not there; extra: see ``unlisted``. A manifest that does not
    parse is a changed object and its folder is not judged for extras (nothing says what
    belongs). ``held``: see the module's docstring."""
    found = store.list(keys.dossier_prefix(code))
    present = set(found)
    manifest_key = keys.manifest(code)
    manifest, hashes, damaged, waiting = None, {}, False, {}
    if manifest_key in present:
        try:
            # plain JSON, not the schema (``manifest.loads``, ~10 ms a manifest): what is judged
            # here is the bytes of each object, and the manifest's own against the store's record;
            # ``sohoa verify`` without --fixity-only validates each manifest in full
            manifest = json.loads(store.get(manifest_key))
            hashes = {k: v for k, v in expected_hashes(manifest).items() if keys.code_of(k) == code}
        except NotFound:
            present.discard(manifest_key)
        except (ValueError, UnicodeDecodeError, TypeError, AttributeError):
            manifest, damaged = None, True
    problems: list[FixityProblem] = []
    read, actual = 0, {}
    for key in found:
        problem, actual[key], size = check_object(store, key, hashes.get(key))
        read += size
        if problem is not None:
            problems.append(problem)
    if damaged:
        problems.append(FixityProblem(manifest_key, "mismatch", None, None,
                                      "manifest không đọc được / manifest does not parse"))
    else:
        for named, digest in sorted(hashes.items()):
            if named not in present:
                problems.append(FixityProblem(named, "missing", digest, None, f"manifest {manifest_key}"))
        disposal = _disposal(store, code, manifest, present)
        waiting = held(code) if disposal is None else {}
        for key in unlisted(code, found, manifest, disposal, waiting):
            problems.append(FixityProblem(key, "extra", None, actual.get(key), _extra_detail(
                key, "không có manifest / no manifest" if manifest is None and disposal is None
                else f"không có trong {manifest_key} / not in {manifest_key}")))
        problems.extend(_held_missing(store, present, waiting, hashes))
    documents = len((manifest or {}).get("documents") or []) if isinstance(manifest, dict) else 0
    accounted = any(k in present for k in _accounts_for(code))
    return problems, documents, len(found), read, len(present.intersection(waiting).difference(hashes)), accounted


def _held_missing(store: ObjectStore, present: set[str], waiting: Mapping[str, str],
                  named: Mapping[str, str]) -> list[FixityProblem]:
    """The held originals not in the listing and not there when looked for again (one stored
    after the listing is there)."""
    return [FixityProblem(key, "missing", None, None, f"bản gốc giữ cho lượt xử lý {job} / original of job {job}")
            for key, job in sorted(waiting.items())
            if key not in present and key not in named and not store.exists(key)]


def sweep(store: ObjectStore, *, label: str = "primary", codes: Iterable[str] | None = None,
          held: Held = nothing_held, expected: Iterable[str] = (),
          on_dossier: Callable[[str, list[FixityProblem]], None] | None = None) -> StoreAudit:
    """Check the whole store now, one dossier folder at a time (``children`` of ``dossiers/``,
    then each folder by its prefix): the check ``sohoa verify --all`` runs, and the one rolling
    fixity spreads over SOHOA_FIXITY_DAYS. Holds one dossier's keys at a time, never the
    store's. ``codes``: those dossiers only; ``held``: see the module's docstring; ``expected``:
    the dossiers the database knows (``storage.index.dossier_codes``), each missing when the store
    holds nothing of it (a dossier lost whole, its manifest with it, was otherwise not missed).
    ``on_dossier(code, problems)`` once per folder."""
    started = time.monotonic()
    problems: list[FixityProblem] = []
    dossiers = documents = objects = read = kept = 0
    expected = set(expected)
    names = sorted(set(store.children(keys.PREFIX)) | expected) if codes is None else codes
    for name in names:
        try:
            keys.dossier_prefix(name)
        except Exception:  # a folder no dossier code can name: extra, as a whole
            problems.append(FixityProblem(f"{keys.PREFIX}{name}", "extra", None, None,
                                          "không phải mã hồ sơ / not a dossier code"))
            continue
        found, docs, count, size, waiting, accounted = check_dossier(store, name, held)
        if codes is not None and not count:  # a dossier named that the store does not hold
            found = [FixityProblem(keys.manifest(name), "missing", None, None, "không có hồ sơ này / no such dossier")]
        elif name in expected and not accounted:
            found = [*found, _lost_whole(name)]
        dossiers, documents, objects, read = dossiers + 1, documents + docs, objects + count, read + size
        kept += waiting
        problems.extend(found)
        if on_dossier is not None:
            on_dossier(name, found)
    for problem in problems:
        _alert(label, problem)
    report = StoreAudit(label, dossiers, documents, objects, read, tuple(problems), time.monotonic() - started, kept)
    log.info("Kiểm tra toàn bộ kho %s: %d hồ sơ, %d tài liệu, %d đối tượng; %d thay đổi, %d thiếu, %d thừa; "
             "%d bản gốc giữ cho lượt xử lý chưa xong (%.1f s)", label, dossiers, documents, objects,
             report.count("mismatch"), report.count("missing"), report.count("extra"), kept, report.seconds)
    return report


LOST_WHOLE = ("hồ sơ có trong cơ sở dữ liệu nhưng kho không còn manifest (hay biên bản hủy) của nó; khôi phục bằng "
              "'sohoa restore {code}' từ bản sao thứ hai / indexed dossier whose manifest the store no longer holds")


def _accounts_for(code: str) -> tuple[str, ...]:
    """The keys one of which a dossier the database knows must have: its manifest, or its disposal's record."""
    return keys.manifest(code), *keys.disposal_marks(code)


def _lost_whole(code: str) -> FixityProblem:
    return FixityProblem(keys.manifest(code), "missing", None, None, LOST_WHOLE.format(code=code))


def known_dossiers(db) -> set[str]:
    """The dossiers the database knows the store holds: indexed, or given a document by a job (a
    reindex after a loss drops the lost dossier from the index; its jobs remember it)."""
    return {*search_index.dossier_codes(db), *job_table.dossiers_done(db)}


def _listing(store: ObjectStore) -> list[str]:
    return sorted({k for prefix in SCOPE for k in store.list(prefix) if in_scope(k) and not k.startswith(CURSORS)})


def _load_cursor(state: ObjectStore, label: str) -> Cursor | None:
    try:
        return Cursor.from_json(json.loads(state.get(cursor_key(label))))
    except NotFound:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("Con trỏ kiểm tra toàn vẹn của kho %s hỏng: bắt đầu chu kỳ mới", label)
        return None


def _manifest_hashes(store: ObjectStore, code: str) -> dict[str, str]:
    """The manifest's hashes, when its own bytes are those recorded for it (else none: the
    manifest's mismatch is reported on its own key)."""
    key = keys.manifest(code)
    try:
        info, data = store.stat(key), store.get(key)
    except NotFound:
        return {}
    if info is None or sha256(data) != info.sha256:
        return {}
    try:
        return expected_hashes(mf.loads(data))
    except (ValueError, UnicodeDecodeError):
        return {}


def _extras(store: ObjectStore, code: str, found: list[str], held: Held) -> tuple[set[str], Mapping[str, str]]:
    """The extra objects of one dossier in a slice's listing (``unlisted``), and its held
    originals (``held``; none once the dossier is disposed of), as ``check_dossier`` judges them."""
    try:
        prefix = keys.dossier_prefix(code)
    except Exception:
        return {k for k in found if k.startswith(f"{keys.PREFIX}{code}/")}, {}
    start = bisect.bisect_left(found, prefix)
    mine = []
    for key in found[start:]:
        if not key.startswith(prefix):
            break
        mine.append(key)
    manifest_key = keys.manifest(code)
    manifest = _read_json(store, manifest_key) if manifest_key in mine else None
    if manifest_key in mine and manifest is None:
        return set(), {}  # a damaged manifest: reported as changed; nothing says what belongs
    disposal = _disposal(store, code, manifest, set(mine))
    waiting = held(code) if disposal is None else {}
    return set(unlisted(code, mine, manifest, disposal, waiting)), waiting


def _disposal(store: ObjectStore, code: str, manifest: dict | None, listed: Collection[str]) -> dict | None:
    """The dossier's disposal record when it has no manifest, else the pending record of a
    disposal under way (listed in its folder), else None: once a disposal has begun, no job
    holds an original, and what its plan names is no extra."""
    record = _read_json(store, keys.disposal_record(code)) if manifest is None else None
    pending = keys.disposal_pending(code)
    return record or (_read_json(store, pending) if pending in listed else None)


def _alert(label: str, problem: FixityProblem) -> None:
    if problem.outcome == "extra":
        log.error("Kiểm tra toàn vẹn (kho %s): %s: %s (SHA-256 %s; %s) [fixity extra %s]", label,
                  OUTCOME_VI["extra"], problem.key, problem.actual, problem.detail, problem.key)
        return
    hashes = "; ".join(part for part in (
        f"SHA-256 mong đợi {problem.expected}" if problem.expected else "",
        f"đọc được {problem.actual}" if problem.actual else ("không đọc được" if problem.outcome == "missing" else ""),
        problem.detail) if part)
    log.error("Kiểm tra toàn vẹn (kho %s): %s: %s (%s) [fixity %s %s]", label,
              OUTCOME_VI[problem.outcome], problem.key, hashes, problem.outcome, problem.key)


def fixity_slice(store: ObjectStore, state: ObjectStore, days: float, now: datetime | None = None, *,
                 label: str = "primary", interval: float = 3600, limit: int | None = None,
                 budget: float | None = None, held: Held = nothing_held, expected: Iterable[str] = (),
                 on_dossier: Callable[[str, list[dict]], None] | None = None) -> FixityReport:
    """Read the next slice of ``store``'s objects, record each outcome and move the cursor
    (``held``: see the module's docstring; ``expected``: as ``sweep``'s, checked in every slice).
    ``on_dossier(code, outcomes)``, once per dossier read in the slice (its objects' outcomes
    ``{"key", "sha256", "outcome"}``), is where a caller records the dossier's PREMIS fixity event."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    found = _listing(store)
    present = set(found)
    cursor, cycle, todo = plan(found, _load_cursor(state, label), days, interval, now, limit)
    hashes: dict[str, dict[str, str]] = {}
    extras: dict[str, set[str]] = {}
    waiting: dict[str, Mapping[str, str]] = {}
    outcomes, problems, read, last, held_read = [], [], 0, cursor.last_key, 0
    lost = [keys.manifest(c) for c in sorted(expected) if not any(k in present for k in _accounts_for(c))]
    for key in todo:
        if budget is not None and outcomes and time.monotonic() - started > budget:
            break
        code = keys.code_of(key)
        if code is not None and code not in hashes:
            hashes[code] = _manifest_hashes(store, code)
            extras[code], waiting[code] = _extras(store, code, found, held)
            for gone in _held_missing(store, present, waiting[code], hashes[code]):
                problems.append(gone)
                outcomes.append({"key": gone.key, "sha256": None, "outcome": "missing"})
        listed = hashes.get(code, {}).get(key) if code else None
        problem, actual, size = check_object(store, key, listed)  # as ``sweep`` reads each object
        read += size
        if code is not None and key in waiting[code] and key not in hashes[code]:
            held_read += 1
        if code is not None and key in extras[code]:  # as ``sohoa verify --all`` finds it (``check_dossier``)
            problems.append(FixityProblem(key, "extra", None, actual,
                                          _extra_detail(key, "không manifest nào liệt kê / listed by no manifest")))
        if code is not None and key == keys.manifest(code):  # every file the manifest names must be there
            for named, digest in sorted(hashes.get(code, {}).items()):
                if named not in present:
                    problems.append(FixityProblem(named, "missing", digest, None, f"manifest {key}"))
                    outcomes.append({"key": named, "sha256": None, "outcome": "missing"})
        if problem is not None:
            problems.append(problem)
        extra = code is not None and key in extras[code]
        outcomes.append({"key": key, "sha256": actual,
                         "outcome": problem.outcome if problem else "extra" if extra else "ok"})
        last = key
    # a dossier lost whole is reported once a cycle, by the slice that passes where its manifest was
    ended = done_count(cycle, last) >= len(cycle)
    for key in lost:
        if (cursor.last_key is None or key > cursor.last_key) and (ended or (last is not None and key <= last)):
            problems.append(_lost_whole(keys.code_of(key)))
            outcomes.append({"key": key, "sha256": None, "outcome": "missing"})
    for problem in problems:
        _alert(label, problem)
    if on_dossier is not None:
        for code in sorted({c for o in outcomes if (c := keys.code_of(o["key"])) is not None}):
            on_dossier(code, [o for o in outcomes if keys.code_of(o["key"]) == code])
    checked = sum(1 for o in outcomes if o["key"] in present)
    after = Cursor(cursor.cycle_started, last, cursor.checked + checked, cursor.problems + len(problems))
    record = None
    if outcomes:
        record = record_key(label, now)
        state.put(record, json.dumps({"schema": RECORD_SCHEMA, "store": label, "at": now.isoformat(),
                                      "cycleStarted": cursor.cycle_started.isoformat(), "objects": outcomes},
                                     ensure_ascii=False).encode("utf-8"),
                  "application/json", {"kind": "fixity"}, retain=True)
    state.put(cursor_key(label), json.dumps(after.to_json(label, now)).encode("utf-8"), "application/json",
              {"kind": "fixity-cursor"})
    report = FixityReport(label, checked, read, tuple(problems), done_count(cycle, last), len(cycle),
                          cursor.cycle_started, cursor.cycle_started + timedelta(days=days), after.problems,
                          last, record, time.monotonic() - started, held_read)
    log.info("Kiểm tra toàn vẹn (kho %s): %d đối tượng, %d lỗi; chu kỳ %d/%d, bắt đầu %s, hạn %s", label,
             report.checked, len(report.problems), report.done, report.total, report.cycle_started.isoformat(),
             report.expected_end.isoformat())
    return report


def status(store: ObjectStore, state: ObjectStore, days: float, *, label: str = "primary") -> FixityReport:
    """How far the current cycle is, read-only (nothing is checked)."""
    found = _listing(store)
    cursor = _load_cursor(state, label)
    if cursor is None:
        now = datetime.now(timezone.utc)
        return FixityReport(label, 0, 0, (), 0, len(found), now, now + timedelta(days=days), 0, None, None)
    cycle = cycle_keys(found, cursor.cycle_started)
    return FixityReport(label, 0, 0, (), done_count(cycle, cursor.last_key), len(cycle), cursor.cycle_started,
                        cursor.cycle_started + timedelta(days=days), cursor.problems, cursor.last_key, None)


def cursors(state: ObjectStore) -> dict[str, Cursor]:
    """The current cycle of each copy ("primary", "replica") as its cursor records it: one small
    read per copy, nothing listed (what the metrics show at every scrape)."""
    return {label: cursor for label in ("primary", "replica") if (cursor := _load_cursor(state, label)) is not None}


def run(primary: ObjectStore, replica: ObjectStore | None, days: float, now: datetime | None = None, *,
        interval: float = 3600, limit: int | None = None, budget: float | None = None,
        held: Held = nothing_held, expected: Iterable[str] = (),
        on_dossier: Callable[[str, str, list[dict]], None] | None = None) -> tuple[FixityReport, ...]:
    """One slice of the primary and, when there is one, of the replica (its state kept in the
    primary); ``on_dossier(label, code, outcomes)`` as in ``fixity_slice``; ``expected``: the
    primary's (the replica may not have a dossier yet until the next copy)."""
    now = now or datetime.now(timezone.utc)
    share = None if budget is None else budget / (2 if replica is not None else 1)
    stores = [("primary", primary)] + ([("replica", replica)] if replica is not None else [])
    return tuple(fixity_slice(store, primary, days, now, label=label, interval=interval, limit=limit, budget=share,
                              held=held, expected=expected if label == "primary" else (),
                              on_dossier=None if on_dossier is None else partial(on_dossier, label))
                 for label, store in stores)


def run_recorded(primary: ObjectStore, replica: ObjectStore | None, db, webhook, days: float, *,
                 interval: float = 3600, limit: int | None = None, budget: float | None = None,
                 now: datetime | None = None, held: Held = nothing_held,
                 expected: Iterable[str] | None = None) -> tuple[FixityReport, ...]:
    """``run``, with what each slice found recorded where archivists look: a fixity check event
    for each dossier read (``pipeline.events``, in the primary: the replica's copy of a dossier
    is the primary's dossier too), a ``fixity.failed`` notice for the objects found changed or
    missing (``pipeline.notices``), and one access-log line per store (``pipeline.audit``)."""
    def on_dossier(label: str, code: str, outcomes: list[dict]) -> None:
        bad = [o for o in outcomes if o["outcome"] != "ok"]
        if primary.exists(keys.manifest(code)):
            events.record(primary, code, "fixity check", "failure" if bad else "success",
                          detail=f"rolling fixity ({label}): {len(outcomes)} object(s) re-read",
                          outcome_detail="; ".join(f"{o['key']}: {o['outcome']}" for o in bad),
                          objects=[o["key"] for o in outcomes])
        notices.notify_fixity(db, webhook, label, code, bad)

    reports = run(primary, replica, days, now, interval=interval, limit=limit, budget=budget, held=held,
                  expected=known_dossiers(db) if expected is None else expected, on_dossier=on_dossier)
    for r in reports:
        outside = [p.to_json() for p in r.problems if keys.code_of(p.key) is None]
        notices.notify_fixity(db, webhook, r.store, "system", outside)
        audit.record(db, "fixity", "success" if r.ok else "failure", store=r.store,
                     checked=r.checked, problems=[p.key for p in r.problems], done=r.done, total=r.total)
    return reports
