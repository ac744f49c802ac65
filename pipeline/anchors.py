"""Anchors of the access log: its head, kept write-once outside the database.

The access log (``storage.journal``) is hash-chained, so an edited row or a row removed in
the middle breaks the chain. Someone with rights on the database can still drop the
append-only triggers and cut rows off the end (the shorter chain is still consistent), or
rewrite the whole chain. An anchor closes both: the chain's head (rows, last row id, its
SHA-256, time) stored as a small JSON object in the object store under
``system/audit-anchors/`` with COMPLIANCE retention (nobody, not even the bucket's owner,
can delete or overwrite it before the date), and, when a TSA is configured, an RFC 3161
timestamp token over the anchor's SHA-256, so the time of the anchor is proven too.

The object::

    {"anchor": {"format": "sohoa-audit-anchor/1", "at": "<UTC ISO time>", "rows": n,
                "last_id": id | null, "sha256": "<head row's sha256, or SHA-256('') when empty>"},
     "anchor_sha256": "<SHA-256 of the canonical JSON of "anchor">",
     "timestamp_token": "<base64 DER of the RFC 3161 token over anchor_sha256>" | null}

What verification can and cannot see: rows cut off after the newest anchor leave no trace
(no anchor covers them); ``AnchorVerdict.unanchored_rows`` says how many rows are not yet
covered, so the window is at most one anchor interval. Anything at or before an anchored
row (an edit, a removal, a cut, a rewrite) is detected. On S3 each anchor is read in its first
version: a newer version or a delete marker on an anchor's key is reported, not trusted.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from sqlalchemy.engine import Engine

from pipeline import audit
from pipeline.errors import IntegrityError
from storage import journal, keys
from storage.base import ObjectStore

log = logging.getLogger(__name__)

FORMAT = "sohoa-audit-anchor/1"
ACTION = "audit-anchor"
DEFAULT_RETENTION_DAYS = 400  # logs are kept at least 12 months; the anchors a little longer


@dataclass(frozen=True)
class Anchor:
    """One anchor as written: its object key, the head it covers and whether a TSA token
    came with it (``timestamp_error`` says why not, when a TSA was configured but failed)."""

    key: str
    at: datetime
    rows: int
    last_id: int | None
    sha256: str
    anchor_sha256: str
    timestamped: bool
    timestamp_error: str | None = None

    def to_json(self) -> dict:
        return {"key": self.key, "at": self.at.isoformat(), "rows": self.rows, "last_id": self.last_id,
                "sha256": self.sha256, "anchor_sha256": self.anchor_sha256, "timestamped": self.timestamped,
                "timestamp_error": self.timestamp_error}


@dataclass(frozen=True)
class AnchorVerdict:
    """The access log checked against its own chain and every anchor.

    ``ok`` only when the chain is intact and every anchor matches the database (and its
    timestamp token, if any, is intact and over that anchor). ``problems`` are pairs
    (Vietnamese message for the operator, English detail). ``broken_at`` is the first row
    position (1-based) known to be wrong: after a whole-chain rewrite that is the oldest
    anchored row that differs, the altered rows may start earlier. ``unanchored_rows``: rows
    after the newest anchor, which no anchor protects yet (normally 1: the newest anchor's
    own ``audit-anchor`` event)."""

    ok: bool
    rows: int
    anchors: int
    timestamped: int
    last_anchor_at: datetime | None
    unanchored_rows: int
    problems: tuple[tuple[str, str], ...]
    broken_at: int | None

    def to_json(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "anchors": self.anchors, "timestamped": self.timestamped,
                "last_anchor_at": self.last_anchor_at.isoformat() if self.last_anchor_at else None,
                "unanchored_rows": self.unanchored_rows,
                "problems": [{"message": vi, "detail": en} for vi, en in self.problems],
                "broken_at": self.broken_at}


# --------------------------------------------------------------------------- writing

def anchor(db: Engine, store: ObjectStore, *, tsa_url: str | None = None,
           retention_days: int = DEFAULT_RETENTION_DAYS, now: datetime | None = None,
           force: bool = False) -> Anchor | None:
    """Write an anchor of the access log's current head; None when nothing changed since the
    newest anchor (unless ``force``).

    Order: the anchor is written first, then an ``audit-anchor`` event is appended to the log,
    which the next anchor covers. So the head "unchanged" means: equal to the newest anchor's,
    or that plus only the newest anchor's own event (else every round would anchor its own
    event and never stop). With ``tsa_url`` the anchor carries an RFC 3161 token; when the TSA
    fails the anchor is still written (it protects the log without the token), without a
    token, and ``timestamp_error`` and the event say why. A store that fails raises (the
    failure is logged as an ``audit-anchor`` failure event when the database allows)."""
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    rows, last_id, head_sha256 = journal.head(db)
    newest_key, newest = _newest(store)
    disagrees = newest is not None and _against_db(db, newest_key, newest, rows)
    if disagrees and not force:
        # a database that does not hold what the newest anchor names (a restore drill or another
        # deployment pointed at this store): an anchor of it, locked for years, would make every
        # later check of the real log fail (the ops review). A database restored on purpose (going
        # back after an upgrade, a disaster's nightly dump) is anchored with --force, which says so
        raise IntegrityError(
            f"Không neo nhật ký: {disagrees[0][0]}. Cơ sở dữ liệu này không giữ nhật ký mà mốc mới nhất đã neo "
            "(một cơ sở dữ liệu khác, hay bản diễn tập khôi phục, trỏ vào kho này?); mốc mới sẽ bị khóa nhiều năm. "
            "Nếu đây đúng là cơ sở dữ liệu đã được khôi phục từ bản sao lưu, neo lại bằng 'sohoa audit anchor "
            "--force' (ghi nhận việc khôi phục); xem 'sohoa audit verify'",
            f"refusing to anchor: {disagrees[0][1]}")
    if not force and _unchanged(db, newest_key, newest, (rows, last_id, head_sha256)):
        return None
    body = {"format": FORMAT, "at": at.isoformat(), "rows": rows, "last_id": last_id, "sha256": head_sha256}
    anchor_sha256 = hashlib.sha256(_canonical(body)).hexdigest()
    token, token_error = None, None
    if tsa_url:
        try:
            token = _timestamp(tsa_url, bytes.fromhex(anchor_sha256))
        except Exception as error:  # noqa: BLE001 - any TSA failure: anchor without the token
            token_error = f"{type(error).__name__}: {error}"
            log.warning("audit anchor: timestamp from %s failed, anchoring without a token: %s", tsa_url, token_error)
    document = {"anchor": body, "anchor_sha256": anchor_sha256,
                "timestamp_token": base64.b64encode(token).decode("ascii") if token else None}
    key = keys.audit_anchor(at, rows)
    detail = {"key": key, "rows": rows, "last_id": last_id, "head_sha256": head_sha256,
              "anchor_sha256": anchor_sha256, "timestamped": token is not None,
              **({"overrides": newest_key, "reason": disagrees[0][1]} if disagrees else {})}
    try:
        store.put(key, json.dumps(document, indent=1).encode("utf-8") + b"\n", "application/json",
                  metadata={"kind": "audit-anchor", "rows": rows}, compliance_days=retention_days)
    except Exception as error:
        try:
            audit.record(db, ACTION, "failure", **detail, error=f"{type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001 - the store's error is the one to report
            log.exception("audit anchor: could not log the failed anchor")
        raise
    audit.record(db, ACTION, **detail, **({"timestamp_error": token_error} if token_error else {}))
    return Anchor(key, at, rows, last_id, head_sha256, anchor_sha256, token is not None, token_error)


def _anchored(body: dict) -> tuple[int, int | None, str]:
    """The head an anchor's body covers: (rows, last row id, its SHA-256)."""
    return int(body["rows"]), body["last_id"], str(body["sha256"])


def _newest(store: ObjectStore) -> tuple[str | None, tuple[int, int | None, str] | None]:
    """The newest anchor's key and the head it covers; (key, None) when it cannot be read (a fresh
    one is written)."""
    key = next(iter(reversed(_anchor_keys(store))), None)
    if key is None:
        return None, None
    try:
        return key, _anchored(json.loads(store.get(key))["anchor"])
    except Exception:  # noqa: BLE001 - unreadable newest anchor: write a fresh one
        return key, None


def _unchanged(db: Engine, key: str | None, anchored: tuple[int, int | None, str] | None,
               head: tuple[int, int | None, str]) -> bool:
    if anchored is None:
        return False
    if head == anchored:
        return True
    if head[0] != anchored[0] + 1:
        return False
    last = journal.tail(db, 1)
    return bool(last) and last[0].get("action") == ACTION and last[0].get("key") == key


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _timestamp(tsa_url: str, digest: bytes) -> bytes:
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from pipeline.signing.glue import run_async

    token = run_async(HTTPTimeStamper(tsa_url, timeout=30).async_timestamp(digest, "sha256"))
    return token.dump()


def _anchor_keys(store: ObjectStore) -> list[str]:
    return [k for k in store.list(keys.AUDIT_ANCHORS) if k.endswith(".json")]


# --------------------------------------------------------------------------- checking

def verify(db: Engine, store: ObjectStore, *, trust_roots: Iterable | None = None,
           latest: int | None = None) -> AnchorVerdict:
    """Check the access log's chain (``storage.journal.verify``) and each anchor (the newest
    ``latest`` ones, all by default) against the database: the anchored row must still exist
    with the anchored SHA-256 at the anchored position. Also checks each anchor object's own
    hash and, when it has one, its timestamp token: intact, validly signed, its imprint the
    anchor's SHA-256; with ``trust_roots`` (asn1crypto certificates) the TSA must also chain
    to one of them. Store errors propagate: without the anchors nothing can be said."""
    intact, rows, broken = journal.verify(db)
    problems: list[tuple[str, str]] = []
    positions: list[int] = []
    if not intact:
        problems.append((f"Nhật ký truy cập đã bị sửa hoặc xóa: chuỗi băm đứt tại dòng {broken}",
                         f"access log hash chain broken at row {broken}"))
        positions.append(broken)
    readers, tampered = _anchor_readers(store)
    problems.extend(tampered)
    if latest is not None:
        readers = readers[-latest:] if latest > 0 else []
    roots = list(trust_roots) if trust_roots is not None else None
    checked = timestamped = 0
    newest: dict | None = None
    for key, read in readers:
        checked += 1
        try:
            document = json.loads(read())
            body = document["anchor"]
            anchored = _anchored(body)
        except Exception as error:  # noqa: BLE001 - a damaged anchor is a finding, not a crash
            problems.append((f"Không đọc được mốc nhật ký {key}", f"unreadable anchor {key}: {error}"))
            continue
        digest = hashlib.sha256(_canonical(body)).hexdigest()
        if digest != document.get("anchor_sha256") or body.get("format") != FORMAT:
            problems.append((f"Mốc nhật ký {key} không khớp mã băm của chính nó",
                             f"anchor {key}: body hash {digest} != recorded {document.get('anchor_sha256')}"))
            continue
        if document.get("timestamp_token"):
            timestamped += 1
            issue = _check_token(document["timestamp_token"], bytes.fromhex(digest), roots)
            if issue:
                problems.append((f"Dấu thời gian của mốc nhật ký {key} không hợp lệ: {issue[0]}",
                                 f"anchor {key}: timestamp token {issue[1]}"))
        newest = body
        found = _against_db(db, key, anchored, rows)
        if found:
            problems.append(found[0])
            positions.append(found[1])
    unanchored = max(rows - newest["rows"], 0) if newest else rows
    return AnchorVerdict(ok=not problems, rows=rows, anchors=checked, timestamped=timestamped,
                         last_anchor_at=datetime.fromisoformat(newest["at"]) if newest else None,
                         unanchored_rows=unanchored, problems=tuple(problems),
                         broken_at=min(positions) if positions else None)


def _anchor_readers(store: ObjectStore) -> tuple[list[tuple[str, Callable[[], bytes]]], list[tuple[str, str]]]:
    """(key, read its bytes) per anchor, oldest first, and problems with the anchor objects.

    A store that keeps versions (S3: ``history``) is read in each anchor's first version, and
    any later version or delete marker is reported: COMPLIANCE keeps the original, but a plain
    GET or LIST would show the replacement, or hide the anchor."""
    history = getattr(store, "history", None)
    if history is None:
        return [(k, lambda k=k: store.get(k)) for k in _anchor_keys(store)], []
    firsts: dict[str, dict] = {}
    later: dict[str, list[dict]] = {}
    for entry in history(keys.AUDIT_ANCHORS):
        if not entry["key"].endswith(".json"):
            continue
        if entry["key"] not in firsts and not entry["delete_marker"]:
            firsts[entry["key"]] = entry
        else:
            later.setdefault(entry["key"], []).append(entry)
    problems = [(f"Mốc nhật ký {key} đã bị ghi đè hoặc bị ẩn ({len(extra)} phiên bản/đánh dấu xóa sau bản gốc); "
                 "bản gốc vẫn được kiểm tra",
                 f"anchor {key} has {len(extra)} later version(s) or delete marker(s); the first version is checked")
                for key, extra in sorted(later.items())]
    readers = [(key, lambda key=key, v=entry["version_id"]: store.get(key, version_id=v))
               for key, entry in sorted(firsts.items())]
    return readers, problems


def _against_db(db: Engine, key: str, anchored: tuple[int, int | None, str], rows: int):
    """(problem, position) when the database no longer holds the anchored head, else None."""
    count, last_id, digest = anchored
    if last_id is None:
        return None  # an anchor of the empty log covers nothing
    located = journal.locate(db, int(last_id))
    if located is None:
        position = min(count, rows + 1)
        return ((f"Nhật ký truy cập bị mất dòng: dòng {count} (id {last_id}) đã được neo ở mốc {key} "
                 f"nhưng không còn; nhật ký chỉ còn {rows} dòng",
                 f"anchored row {count} (id {last_id}) of {key} is missing; the log has {rows} rows"), position)
    position, stored = located
    if stored != digest:
        return ((f"Nhật ký truy cập đã bị viết lại: dòng {position} (id {last_id}) khác với mốc {key}",
                 f"row {position} (id {last_id}) sha256 {stored} != anchored {digest} ({key})"), position)
    if position != count:
        return ((f"Nhật ký truy cập bị thêm hoặc bớt dòng trước dòng id {last_id}: mốc {key} ghi {count} dòng, "
                 f"nay là {position}",
                 f"row id {last_id} is at position {position}, anchored at {count} ({key})"), min(position, count))
    return None


def _check_token(encoded: str, digest: bytes, roots: list | None) -> tuple[str, str] | None:
    """None when the token is good, else (Vietnamese, English) reasons."""
    from asn1crypto import cms, tsp
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    from pipeline.signing.glue import run_async

    try:
        token = cms.ContentInfo.load(base64.b64decode(encoded, validate=True))
        signed = token["content"]
        tst_info = signed["encap_content_info"]["content"].parsed
        if not isinstance(tst_info, tsp.TSTInfo):
            raise ValueError("no TSTInfo in the token")
        imprint = tst_info["message_imprint"]
        algorithm, hashed = imprint["hash_algorithm"]["algorithm"].native, imprint["hashed_message"].native
    except Exception as error:  # noqa: BLE001
        return "không đọc được", f"unreadable: {type(error).__name__}: {error}"
    if algorithm != "sha256" or hashed != digest:
        return ("không phải dấu thời gian của mốc này",
                f"imprint {algorithm}:{hashed.hex()} is not the anchor's sha256 {digest.hex()}")
    context = ValidationContext(trust_roots=roots or [], allow_fetching=False, revocation_mode="soft-fail")
    try:
        status = run_async(validate_tst_signed_data(signed, context, lambda _algo: digest))
    except Exception as error:  # noqa: BLE001
        return "chữ ký của dấu thời gian không kiểm tra được", f"validation error: {type(error).__name__}: {error}"
    if not (status.get("intact") and status.get("valid")):
        return ("chữ ký của dấu thời gian bị hỏng",
                f"signature intact={status.get('intact')} valid={status.get('valid')}")
    if roots is not None and status.get("trust_problem_indic") is not None:
        return ("máy chủ dấu thời gian không thuộc chứng thư tin cậy",
                f"TSA not trusted: {status.get('trust_problem_indic')}")
    return None


# --------------------------------------------------------------------------- the loop

def run_periodically(make_db_and_store: Callable[[], tuple[Engine, ObjectStore]], interval: float,
                     stop: threading.Event, *, tsa_url: str | None = None,
                     retention_days: int = DEFAULT_RETENTION_DAYS,
                     on_error: Callable[[BaseException], None] | None = None) -> None:
    """Anchor at once, then every ``interval`` seconds until ``stop`` is set (the body of a
    daemon thread in ``sohoa serve``). Database and store are asked for each round, so a store
    that was down is reached again; an error in a round is logged and passed to ``on_error``
    (whose own errors are logged too) and never ends the loop."""
    while not stop.is_set():
        try:
            db, store = make_db_and_store()
            made = anchor(db, store, tsa_url=tsa_url, retention_days=retention_days)
            if made is not None:
                log.info("audit anchor %s: %d rows", made.key, made.rows)
        except Exception as error:  # noqa: BLE001 - the loop outlives any one round
            log.exception("audit anchor round failed")
            if on_error is not None:
                try:
                    on_error(error)
                except Exception:  # noqa: BLE001
                    log.exception("audit anchor: on_error failed")
        if stop.wait(interval):
            break
