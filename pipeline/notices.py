"""Notices to the one-stop system: a signed JSON POST to SOHOA_WEBHOOK_URL when a document of
a dossier is stored or a job fails, delivered through an outbox (see docs/notices.md).

    event (X-Sohoa-Event)   when
    document.stored         a job's document is signed, stored and in its dossier's manifest
                            ("tài liệu đã được lưu")
    job.failed              a job failed: pages could not be processed, the document was refused
                            ("lượt xử lý bị lỗi"; ``error`` says why, in Vietnamese)
    fixity.failed           rolling fixity found objects of a dossier changed or missing, in the
                            primary store or the replica (``objects``: key, outcome, hashes)

Outbox. A notice is first a row of the ``notices`` table (``storage.outbox``), written where
the event happens (``notify_stored``, ``notify_failed``, called by ``pipeline.jobs.finish``
before the job's state changes), so nothing is lost when the receiver is down or the process
dies. Right after, ``deliver_soon`` makes one best-effort attempt with a short timeout (never
raising: whatever fails is left to the retry loop). ``deliver_due`` (run by
``run_periodically`` in ``sohoa serve`` and by ``sohoa notices``) sends every notice that is
due: a 2xx answer marks it delivered; anything else (a refused connection, a timeout, any
other status, 4xx included: a receiver that refuses a notice today may be fixed tomorrow,
so 400/401/404 are retried like 500) schedules the next attempt after ``BACKOFF`` (10 s,
30 s, 2 min, 10 min, 30 min, then hourly); after ``MAX_ATTEMPTS`` (about 24 hours of
trying) the notice is ``failed``, visible in ``sohoa notices`` and sent again by
``requeue``. Every attempt is recorded in the audit log (action ``notice``: outcome
``success``, ``retry`` or ``failure``, with the notice id, event, attempt and HTTP status).

Two deliverers (two machines of a deployment, or the immediate attempt and the serve loop)
never send one notice at the same time: each attempt claims its row by one conditional
UPDATE first (``storage.outbox.claim_due``). A notice may still arrive twice (the receiver
answered but the answer was lost): receivers deduplicate by ``X-Sohoa-Delivery``.

Signature: ``X-Sohoa-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
with ``X-Sohoa-Timestamp`` the Unix time of the attempt; ``verify_signature`` checks one.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sqlalchemy.engine import Engine

from storage import outbox

from . import audit
from .errors import describe

if TYPE_CHECKING:  # imported when a notice is sent: an ingest without webhooks need not load it (0.2 s)
    import httpx

log = logging.getLogger(__name__)

STORED, FAILED, FIXITY = "document.stored", "job.failed", "fixity.failed"
EVENTS = {STORED: "tài liệu đã được lưu", FAILED: "lượt xử lý bị lỗi",
          FIXITY: "kiểm tra toàn vẹn định kỳ phát hiện đối tượng sai mã băm hoặc bị mất"}
TIMEOUT_SECONDS, CONNECT_SECONDS = 5.0, 3.0  # each attempt; the immediate one never delays an ingest longer
BACKOFF = (10, 30, 120, 600, 1800, 3600)   # seconds after the 1st, 2nd, ... failed attempt; then hourly
MAX_ATTEMPTS = 30                          # the attempts span about 24 hours; then the notice is failed
LEASE = 120.0                              # a claimed notice is claimable again after this (its deliverer died)
USER_AGENT = "sohoa-notices/1"
QUIET = 30.0                               # seconds without immediate attempts after one failed
_quiet_until: dict[str, float] = {}        # receiver URL -> monotonic time (this process)


@dataclass(frozen=True)
class DeliveryRound:
    """What one round of delivery did: notices delivered, given up, left for a later attempt."""

    sent: int = 0
    failed: int = 0
    retried: int = 0

    def __add__(self, other: "DeliveryRound") -> "DeliveryRound":
        return DeliveryRound(self.sent + other.sent, self.failed + other.failed, self.retried + other.retried)

    def to_json(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried}


# --------------------------------------------------------------------------- writing notices

def enqueue(db: Engine, event: str, dossier: str, payload: dict, *, now: float | None = None) -> int:
    """A pending notice of ``event`` about ``dossier``, due now; returns its id. ``payload`` is
    the body's content besides ``event``, ``id`` and ``dossier``."""
    if event not in EVENTS:
        raise ValueError(f"unknown notice event {event!r}")
    return outbox.add(db, event=event, dossier=dossier, payload=payload, created=audit.now_vn().isoformat(),
                      next_at=time.time() if now is None else now)


def notify_stored(db: Engine, webhook, job: dict, summary) -> int | None:
    """Enqueue ``document.stored`` for a job's document (``summary``: its IngestSummary);
    None when no webhook is configured. Finishing a job twice enqueues one notice."""
    if not _configured(webhook):
        return None
    if existing := _existing(db, STORED, summary.dossier_code, docId=summary.doc_id):
        return existing
    return enqueue(db, STORED, summary.dossier_code, {
        "docId": summary.doc_id, "job": job["id"], "title": summary.title, "pages": len(summary.pages),
        "sha256": (summary.pdf or {}).get("sha256"), "signed": summary.signature is not None,
        "time": audit.now_vn().isoformat()})


def notify_failed(db: Engine, webhook, job: dict, exc: BaseException) -> int | None:
    """Enqueue ``job.failed`` for a job (its row as read) and the error that failed it; None
    when no webhook is configured. One notice per attempt of the job (``sohoa retry`` makes
    another attempt)."""
    if not _configured(webhook):
        return None
    attempt = job.get("attempts") or 1
    if existing := _existing(db, FAILED, job["dossier"], job=job["id"], attempt=attempt):
        return existing
    report = describe(exc)
    return enqueue(db, FAILED, job["dossier"], {
        "docId": None, "job": job["id"], "attempt": attempt, "title": job.get("title"),
        "pages": job.get("pages_total"), "sha256": None, "time": audit.now_vn().isoformat(),
        "error": report.message_vi, "code": report.code})


def notify_fixity(db: Engine, webhook, store: str, dossier: str, problems: list[dict]) -> int | None:
    """Enqueue ``fixity.failed`` for the objects of one dossier (or ``system``) that a rolling
    fixity slice found changed or missing in ``store`` ("primary" or "replica"); None when no
    webhook is configured."""
    if not _configured(webhook) or not problems:
        return None
    return enqueue(db, FIXITY, dossier, {
        "docId": None, "store": store, "time": audit.now_vn().isoformat(),
        "objects": [{"key": p["key"], "outcome": p["outcome"], "expected": p.get("expected"),
                     "actual": p.get("actual")} for p in problems]})


def deliver_soon(db: Engine, webhook, notice_id: int | None, *, client: httpx.Client | None = None) -> None:
    """One immediate, best-effort attempt at a notice just enqueued: never raises, never waits
    longer than ``TIMEOUT_SECONDS``; a failure is left to the retry loop, and for ``QUIET`` seconds after
    one no immediate attempt is made to that receiver (a bulk run does not wait on a dead one
    once per document)."""
    if notice_id is None or not _configured(webhook) or time.monotonic() < _quiet_until.get(webhook.url, 0.0):
        return
    try:
        result = deliver_due(db, webhook.url, webhook.secret, client=client, ids=[notice_id])
    except Exception:  # the outbox keeps it; deliver_due sends it later
        log.warning("notice %s: immediate delivery failed; left to the retry loop", notice_id, exc_info=True)
        result = DeliveryRound(retried=1)
    if result.retried or result.failed:
        _quiet_until[webhook.url] = time.monotonic() + QUIET


# --------------------------------------------------------------------------- delivering them

def deliver_due(db: Engine, url: str, secret: str | None, *, now: float | None = None, limit: int = 50,
                client: httpx.Client | None = None, ids: list[int] | None = None) -> DeliveryRound:
    """Send up to ``limit`` notices due at ``now`` (only those of ``ids`` when given), each
    claimed first so that no other deliverer sends it at the same time."""
    now = time.time() if now is None else now
    claimed = outbox.claim_due(db, now=now, lease=LEASE, limit=limit, ids=ids)
    if not claimed:
        return DeliveryRound()
    own = client is None
    client = client or new_client()
    try:
        result = DeliveryRound()
        for notice in claimed:
            result += _attempt(db, client, url, secret, notice, now)
        return result
    finally:
        if own:
            client.close()


def run_periodically(make_db: Callable[[], Engine], url: str, secret: str | None, interval: float,
                     stop: threading.Event, *, limit: int = 50) -> None:
    """Deliver due notices every ``interval`` seconds until ``stop`` is set (a full round is
    followed at once by the next); an error is logged and the loop goes on."""
    with new_client() as client:
        while not stop.is_set():
            busy = False
            try:
                result = deliver_due(make_db(), url, secret, limit=limit, client=client)
                busy = result.sent + result.failed + result.retried >= limit
            except Exception:
                log.exception("notices: a delivery round failed")
            if not busy:
                stop.wait(interval)


def requeue(db: Engine, ids: list[int] | None = None) -> int:
    """Failed notices (those of ``ids``, or all) sent again from now; returns how many."""
    return outbox.requeue(db, now=time.time(), ids=ids)


def list_notices(db: Engine, *, dossier: str | None = None, state: str | None = None, limit: int = 100) -> list[dict]:
    """The newest notices first, with their state, attempts, next attempt and last error."""
    return outbox.find(db, dossier=dossier, states=(state,) if state else None, limit=limit, newest_first=True)


def counts(db: Engine) -> dict[str, int]:
    """How many notices are pending, sending, delivered and failed."""
    return outbox.counts(db)


def new_client() -> httpx.Client:
    """The HTTP client deliveries use: short timeouts, no redirects followed, no proxy settings
    read from the environment (settings come from ``pipeline.config`` only)."""
    import httpx

    return httpx.Client(timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_SECONDS), follow_redirects=False,
                        trust_env=False, headers={"User-Agent": USER_AGENT})


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
    return float(BACKOFF[min(attempt, len(BACKOFF)) - 1])


def body_of(notice: dict) -> bytes:
    """The JSON body of a notice, the same bytes at every attempt."""
    return json.dumps({**notice["payload"], "event": notice["event"], "id": notice["id"],
                       "dossier": notice["dossier"]}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Sohoa-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes | str, header: str | None, tolerance: float = 300,
                     *, now: float | None = None) -> bool:
    """For receivers: True when ``header`` (X-Sohoa-Signature) signs ``body`` (the raw bytes
    received) at ``timestamp`` (X-Sohoa-Timestamp) with ``secret``, and the timestamp is within
    ``tolerance`` seconds of ``now`` (a replayed old notice is refused)."""
    if not header or not timestamp or not secret:
        return False
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return hmac.compare_digest(sign(secret, str(timestamp), data), header.strip())


def _attempt(db: Engine, client: httpx.Client, url: str, secret: str | None, notice: dict,
             now: float) -> DeliveryRound:
    """One claimed notice sent once, its outcome recorded (row and audit log)."""
    import httpx

    attempt, body = notice["attempts"], body_of(notice)
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Sohoa-Event": notice["event"],
               "X-Sohoa-Delivery": str(notice["id"]), "X-Sohoa-Timestamp": timestamp,
               "X-Sohoa-Attempt": str(attempt)}
    if secret:
        headers["X-Sohoa-Signature"] = sign(secret, timestamp, body)
    status, error = None, None
    try:
        response = client.post(url, content=body, headers=headers)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    event = dict(dossier=notice["dossier"], event=notice["event"], notice=notice["id"], status=status,
                 attempt=attempt)
    if error is None:
        outbox.mark_delivered(db, notice["id"], attempt, at=audit.now_vn().isoformat())
        audit.record(db, "notice", "success", **event)
        return DeliveryRound(sent=1)
    if attempt >= MAX_ATTEMPTS:
        outbox.mark_failed(db, notice["id"], attempt, error=error)
        audit.record(db, "notice", "failure", **event, reason=error)
        log.error("notice %s (%s, %s) given up after %s attempts: %s", notice["id"], notice["event"],
                  notice["dossier"], attempt, error)
        return DeliveryRound(failed=1)
    wait = backoff(attempt)
    outbox.mark_retry(db, notice["id"], attempt, next_at=now + wait, error=error)
    audit.record(db, "notice", "retry", **event, reason=error, retryIn=wait)
    return DeliveryRound(retried=1)


def _configured(webhook) -> bool:
    return webhook is not None and bool(getattr(webhook, "url", None))


def _existing(db: Engine, event: str, dossier: str, **match) -> int | None:
    """A notice of ``event`` about ``dossier`` whose payload has ``match`` (a redelivered task)."""
    for notice in outbox.find(db, dossier=dossier, event=event):
        if all(notice["payload"].get(k) == v for k, v in match.items()):
            return notice["id"]
    return None
