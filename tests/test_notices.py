"""Issue 13, item 6: signed notices to the one-stop system, through an outbox, to a real HTTP
receiver on 127.0.0.1 (no HTTP mocks): stored documents and failed jobs are notified, a
receiver that is down or failing is retried with growing backoff, two deliverers on one
PostgreSQL database send each notice once, every attempt is in the audit log."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import audit, config, notices, service
from pipeline.errors import PagesFailed
from pipeline.models import IngestRequest
from storage import outbox
from tests.conftest import audit_events, manifest_of, save_page
from tests.services import free_port

CODE = "H23.50-261201-0061"
SECRET = "bí-mật-thử-nghiệm"


class Receiver:
    """An HTTP server in this process that records each POST and answers the next status of
    ``statuses`` (200 once they are used up); ``stop`` and ``start`` it on the same port."""

    def __init__(self, port: int | None = None, delay: float = 0.0):
        self.port = port or free_port()
        self.received: list[dict] = []
        self.statuses: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.received.append({"headers": dict(self.headers), "body": body, "path": self.path})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _settings(monkeypatch, url: str, **env) -> config.Settings:
    """Settings from the environment, with SOHOA_WEBHOOK_URL and SOHOA_WEBHOOK_SECRET set."""
    monkeypatch.setenv("SOHOA_WEBHOOK_URL", url)
    monkeypatch.setenv("SOHOA_WEBHOOK_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    if settings.webhook.url != url:  # a configuration that does not read them yet
        settings = dataclasses.replace(settings, webhook=config.WebhookSettings(url=url, secret=SECRET))
    return settings


def _notice_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["action"] == "notice"]


def _verifies(request: dict) -> bool:
    headers = request["headers"]
    return notices.verify_signature(SECRET, headers["X-Sohoa-Timestamp"], request["body"],
                                    headers["X-Sohoa-Signature"])


# --------------------------------------------------------------------------- from a real ingest

def test_a_stored_document_is_notified_signed_with_its_pdf_hash(home, monkeypatch, receiver, rendered, tmp_path):
    settings = _settings(monkeypatch, receiver.url, SOHOA_JOBS="1")
    page = save_page(rendered("notice-a", layout="text", seed=611, dpi=150), tmp_path / "don.png")
    summary = service.ingest(settings, IngestRequest(CODE, (str(page),), "Đơn đề nghị cấp phép"))

    assert len(receiver.received) == 1  # delivered at once, by the immediate attempt
    request = receiver.received[0]
    body = json.loads(request["body"])
    document = manifest_of(home, CODE)["documents"][0]
    stored_pdf = service.open_store(settings).get(document["pdf"]["key"])
    assert body["event"] == "document.stored" and body["dossier"] == CODE
    assert body["docId"] == summary.doc_id == document["docId"]
    assert body["sha256"] == document["pdf"]["sha256"] == hashlib.sha256(stored_pdf).hexdigest()
    assert body["pages"] == 1 and body["signed"] is True and body["time"].endswith("+07:00")
    job = service.status(settings, CODE)[0]
    assert body["job"] == job.id
    headers = request["headers"]
    assert headers["X-Sohoa-Event"] == "document.stored"
    assert headers["X-Sohoa-Delivery"] == str(body["id"])
    assert headers["X-Sohoa-Signature"].startswith("sha256=") and _verifies(request)

    tampered = request["body"].replace(CODE.encode(), b"H23.50-261201-0062")
    assert not notices.verify_signature(SECRET, headers["X-Sohoa-Timestamp"], tampered, headers["X-Sohoa-Signature"])
    assert not notices.verify_signature("khác", headers["X-Sohoa-Timestamp"], request["body"],
                                        headers["X-Sohoa-Signature"])
    late = int(headers["X-Sohoa-Timestamp"]) + 301  # a replay five minutes later
    assert not notices.verify_signature(SECRET, headers["X-Sohoa-Timestamp"], request["body"],
                                        headers["X-Sohoa-Signature"], now=late)

    db = service.database(settings)
    [row] = outbox.find(db)
    assert (row["id"], row["state"], row["attempts"], row["event"]) == (body["id"], "delivered", 1, "document.stored")
    [logged] = _notice_events(audit_events(home))
    assert (logged["outcome"], logged["notice"], logged["attempt"], logged["status"]) == ("success", body["id"], 1, 200)
    assert (logged["event"], logged["dossier"]) == ("document.stored", CODE)

    # the same files again: a duplicate, no job, no second notice
    service.ingest(settings, IngestRequest(CODE, (str(page),), "Đơn đề nghị cấp phép"))
    assert len(receiver.received) == 1 and len(outbox.find(db)) == 1


def test_a_failed_job_is_notified_with_its_error(home, monkeypatch, receiver, rendered, tmp_path):
    """Pages fail (an OCR language that is not installed): the job fails, job.failed says why."""
    settings = _settings(monkeypatch, receiver.url, SOHOA_JOBS="1", SOHOA_OCR_LANG="khongco")
    page = save_page(rendered("notice-b", layout="text", seed=612, dpi=150), tmp_path / "hong.png")
    with pytest.raises(PagesFailed):
        service.ingest(settings, IngestRequest(CODE, (str(page),), "Tờ khai"))

    job = service.status(settings, CODE)[0]
    assert job.state == "failed"
    [request] = receiver.received
    body = json.loads(request["body"])
    assert request["headers"]["X-Sohoa-Event"] == "job.failed" and _verifies(request)
    assert (body["event"], body["dossier"], body["job"], body["docId"], body["attempt"]) == (
        "job.failed", CODE, job.id, None, 1)
    assert "trang lỗi" in body["error"] and "hong.png" in body["error"]  # the operator's Vietnamese message
    assert body["code"] and body["pages"] == 1
    assert [(e["outcome"], e["event"]) for e in _notice_events(audit_events(home))] == [("success", "job.failed")]


def test_an_ingest_is_not_held_up_by_a_receiver_that_is_down(home, monkeypatch, rendered, tmp_path):
    """The document is stored and the job done; the notice waits in the outbox (pending, its next
    attempt in the future) and a later round delivers it once the receiver is back. After one
    failed immediate attempt, the next ingest does not try the dead receiver again."""
    receiver = Receiver()  # nothing listens on its port yet
    settings = _settings(monkeypatch, receiver.url, SOHOA_JOBS="1")
    pages = [save_page(rendered(f"notice-d{i}", layout="text", seed=620 + i, dpi=150), tmp_path / f"d{i}.png")
             for i in (1, 2)]
    started = time.time()
    summaries = [service.ingest(settings, IngestRequest(CODE, (str(p),), f"Đơn {i}")) for i, p in enumerate(pages)]
    assert [j.state for j in service.status(settings, CODE)] == ["done", "done"]
    db = service.database(settings)
    first, second = outbox.find(db)
    assert (first["state"], first["attempts"], second["state"], second["attempts"]) == ("pending", 1, "pending", 0)
    assert first["next_at"] >= started + notices.BACKOFF[0] and "ConnectError" in first["last_error"]

    receiver.start()
    try:
        # both are due by then (on a slow machine the second ingest ends after the first's back-off)
        due = max(first["next_at"], second["next_at"])
        assert notices.deliver_due(db, receiver.url, SECRET, now=due) == notices.DeliveryRound(sent=2)
    finally:
        receiver.stop()
    assert sorted(b["docId"] for b in receiver.bodies()) == [s.doc_id for s in summaries]
    assert all(_verifies(r) for r in receiver.received)
    logged = _notice_events(audit_events(home))
    assert sorted((e["notice"], e["outcome"], e["attempt"]) for e in logged) == [
        (first["id"], "retry", 1), (first["id"], "success", 2), (second["id"], "success", 1)]


def test_no_webhook_no_notice(home, rendered, tmp_path, monkeypatch):
    monkeypatch.delenv("SOHOA_WEBHOOK_URL", raising=False)
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_JOBS": "1"})
    page = save_page(rendered("notice-c", layout="text", seed=613, dpi=150), tmp_path / "c.png")
    service.ingest(settings, IngestRequest(CODE, (str(page),), "Đơn"))
    assert outbox.find(service.database(settings)) == []


# --------------------------------------------------------------------------- delivery

@pytest.fixture
def db(sqlite_engine):
    return sqlite_engine


def _enqueue(db, n: int = 1, dossier: str = CODE) -> list[int]:
    return [notices.enqueue(db, "document.stored", dossier, {"docId": f"{dossier}.{i:03d}", "job": "j" * 32,
                                                              "pages": 1, "sha256": "0" * 64,
                                                              "time": audit.now_vn().isoformat()})
            for i in range(1, n + 1)]


def test_receiver_down_the_notice_waits_and_is_delivered_when_it_is_back(db):
    [notice_id] = _enqueue(db)
    receiver = Receiver()  # its port is free: nothing listens yet
    started = time.time()
    assert notices.deliver_due(db, receiver.url, SECRET) == notices.DeliveryRound(retried=1)
    row = outbox.get(db, notice_id)
    assert row["state"] == "pending" and row["attempts"] == 1 and "ConnectError" in row["last_error"]
    assert row["next_at"] >= started + notices.BACKOFF[0]

    receiver.start()
    try:
        assert notices.deliver_due(db, receiver.url, SECRET) == notices.DeliveryRound()  # not due yet
        assert receiver.received == []
        assert notices.deliver_due(db, receiver.url, SECRET, now=row["next_at"]) == notices.DeliveryRound(sent=1)
        assert notices.deliver_due(db, receiver.url, SECRET, now=row["next_at"] + 3600) == notices.DeliveryRound()
    finally:
        receiver.stop()
    [request] = receiver.received
    assert request["headers"]["X-Sohoa-Delivery"] == str(notice_id) and _verifies(request)
    assert outbox.get(db, notice_id)["state"] == "delivered"
    logged = _notice_events(audit.tail(db, 100))
    assert [(e["outcome"], e["attempt"], e["status"]) for e in logged] == [("retry", 1, None), ("success", 2, 200)]
    assert all(e["notice"] == notice_id and e["event"] == "document.stored" for e in logged)


def test_a_failing_receiver_is_retried_with_growing_backoff_then_given_up(db, receiver):
    """500s and 404s alike are retried (a receiver may be fixed); after MAX_ATTEMPTS the notice
    is failed, visible, and requeue sends it again."""
    [notice_id] = _enqueue(db)
    receiver.statuses = [500, 503, 404] + [500] * 100
    now, waits = time.time(), []
    for _ in range(notices.MAX_ATTEMPTS - 1):
        assert notices.deliver_due(db, receiver.url, SECRET, now=now) == notices.DeliveryRound(retried=1)
        row = outbox.get(db, notice_id)
        waits.append(row["next_at"] - now)
        now = row["next_at"]
    assert waits[:7] == [10, 30, 120, 600, 1800, 3600, 3600]
    assert all(a <= b for a, b in zip(waits, waits[1:])) and max(waits) == 3600
    assert 22 * 3600 < sum(waits) < 26 * 3600  # about a day of trying
    assert notices.deliver_due(db, receiver.url, SECRET, now=now) == notices.DeliveryRound(failed=1)
    row = outbox.get(db, notice_id)
    assert row["state"] == "failed" and row["attempts"] == notices.MAX_ATTEMPTS and "HTTP 500" in row["last_error"]
    assert notices.deliver_due(db, receiver.url, SECRET, now=now + 10**6) == notices.DeliveryRound()
    assert [n["id"] for n in notices.list_notices(db, state="failed")] == [notice_id]

    logged = _notice_events(audit.tail(db, 1000))
    assert [e["attempt"] for e in logged] == list(range(1, notices.MAX_ATTEMPTS + 1))
    assert [e["status"] for e in logged[:3]] == [500, 503, 404]
    assert {e["outcome"] for e in logged[:-1]} == {"retry"} and logged[-1]["outcome"] == "failure"
    assert len(receiver.received) == notices.MAX_ATTEMPTS
    assert len({r["body"] for r in receiver.received}) == 1  # the same body at every attempt
    assert all(_verifies(r) for r in receiver.received)

    receiver.statuses = []
    assert notices.requeue(db) == 1
    assert notices.deliver_due(db, receiver.url, SECRET) == notices.DeliveryRound(sent=1)
    assert notices.counts(db)["delivered"] == 1


def test_a_claim_whose_deliverer_died_is_taken_over_once(db, receiver):
    [notice_id] = _enqueue(db)
    now = time.time()
    [claimed] = outbox.claim_due(db, now=now, lease=notices.LEASE, limit=10)  # a deliverer that then dies
    assert notices.deliver_due(db, receiver.url, SECRET, now=now + 1) == notices.DeliveryRound()  # still held
    assert notices.deliver_due(db, receiver.url, SECRET, now=now + notices.LEASE) == notices.DeliveryRound(sent=1)
    assert not outbox.mark_retry(db, notice_id, claimed["attempts"], next_at=now, error="late")  # too late
    assert outbox.get(db, notice_id)["state"] == "delivered" and len(receiver.received) == 1


def test_two_deliverers_on_postgresql_send_each_notice_once(pg_url, pg_engine):
    from storage import db as database

    with pg_engine.begin() as conn:
        conn.execute(outbox.notices.delete())
    ids = set(_enqueue(pg_engine, 60, dossier="H23.50-261201-0063"))
    receiver = Receiver(delay=0.01).start()  # slow enough for the deliverers to overlap
    machines = [database.create_engine(pg_url) for _ in range(2)]
    rounds, barrier = [], threading.Barrier(4)

    def deliverer(engine):
        barrier.wait()
        total = notices.DeliveryRound()
        while (result := notices.deliver_due(engine, receiver.url, SECRET, limit=7)) != notices.DeliveryRound():
            total += result
        rounds.append(total)

    try:
        threads = [threading.Thread(target=deliverer, args=(m,)) for m in machines * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        receiver.stop()
        for m in machines:
            m.dispose()
    delivered = [int(r["headers"]["X-Sohoa-Delivery"]) for r in receiver.received]
    assert sorted(delivered) == sorted(ids)  # each once
    assert sum(r.sent for r in rounds) == 60 and sum(1 for r in rounds if r.sent) >= 2  # they did share the work
    assert {n["state"] for n in outbox.find(pg_engine)} == {"delivered"}
    logged = [e for e in _notice_events(audit.tail(pg_engine, 1000)) if e["notice"] in ids]
    assert sorted(e["notice"] for e in logged) == sorted(ids) and {e["outcome"] for e in logged} == {"success"}


def test_run_periodically_delivers_until_stopped(db, receiver):
    _enqueue(db, 3)
    stop = threading.Event()
    thread = threading.Thread(target=notices.run_periodically, args=(lambda: db, receiver.url, SECRET, 0.05, stop))
    thread.start()
    deadline = time.monotonic() + 10
    while len(receiver.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive() and len(receiver.received) == 3
    assert notices.counts(db)["delivered"] == 3


def test_verify_signature_refuses_what_it_should():
    body = b'{"event":"document.stored","id":1}'
    ts = str(int(time.time()))
    good = notices.sign(SECRET, ts, body)
    assert notices.verify_signature(SECRET, ts, body, good)
    assert notices.verify_signature(SECRET, ts, body.decode(), good)
    assert not notices.verify_signature(SECRET, ts, body + b" ", good)
    assert not notices.verify_signature(SECRET, str(int(ts) + 1), body, good)
    assert not notices.verify_signature(SECRET, ts, body, None)
    assert not notices.verify_signature(SECRET, "không-phải-số", body, good)
    assert not notices.verify_signature(SECRET, ts, body, good.replace("sha256=", "sha1="))
