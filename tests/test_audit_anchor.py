"""The access log's head is anchored in the object store, write-once: an attacker with every right
on the database (triggers dropped) can no longer cut rows off the end or rewrite the whole chain
unseen. Real SQLite and PostgreSQL, the local store and Ceph RGW, the test PKI's TSA; no mocks."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from minio.deleteobjects import DeleteObject

from pipeline import anchors, audit
from pipeline.errors import IntegrityError
from storage import journal, keys
from storage.errors import RetentionError
from storage.local import LocalStore
from tests.services import throwaway_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A fresh, migrated database of its own (the tests drop its triggers)."""
    from storage.index import open_index

    if request.param == "sqlite":
        engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
        yield engine
        engine.dispose()
        return
    with throwaway_pg_database("sohoa_anchor") as url:
        engine = open_index(url)
        yield engine
        engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path):
    from storage.index import open_index

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def events(db, n: int, action: str = "show") -> None:
    for i in range(n):
        audit.record(db, action, dossier="H23.50-261201-0001", i=i, actor="cán bộ một cửa")


def drop_guards(db) -> None:
    """What an administrator of the database can do: remove the append-only triggers."""
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            conn.execute(sa.text("DROP TRIGGER access_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER access_log_no_delete"))
        else:
            conn.execute(sa.text("DROP TRIGGER access_log_append_only ON access_log"))


def delete_from(db, first_id: int) -> None:
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM access_log WHERE id >= :id"), {"id": first_id})


def rewrite_chain(db, row_id: int, action: str) -> None:
    """Edit one row and recompute every hash after it: a chain consistent in itself."""
    table = journal.access_log
    with db.begin() as conn:
        rows = [r._asdict() for r in conn.execute(sa.select(table).order_by(table.c.id))]
        previous = journal.GENESIS
        for row in rows:
            if row["id"] == row_id:
                row["action"] = action
            row["prev_sha256"] = previous
            row["sha256"] = journal.row_sha256(row)
            previous = row["sha256"]
        for row in rows:  # first clear the unique links, then write the new ones
            conn.execute(table.update().where(table.c.id == row["id"]).values(prev_sha256=f"x{row['id']}"))
        for row in rows:
            conn.execute(table.update().where(table.c.id == row["id"]).values(
                action=row["action"], prev_sha256=row["prev_sha256"], sha256=row["sha256"]))


def messages(verdict) -> str:
    return "\n".join(f"{vi} | {en}" for vi, en in verdict.problems)


# --------------------------------------------------------------------------- database tampering

def test_an_intact_log_passes_and_an_unchanged_head_is_not_anchored_again(db, store):
    events(db, 4)
    first = anchors.anchor(db, store)
    assert first is not None and (first.rows, first.last_id) == (4, 4) and not first.timestamped
    assert store.list(keys.AUDIT_ANCHORS) == [first.key]
    last = journal.tail(db, 1)[0]  # the anchor's own event comes after it, for the next anchor to cover
    assert last["action"] == "audit-anchor" and last["key"] == first.key and last["rows"] == 4

    assert anchors.anchor(db, store) is None  # only its own event since: nothing to anchor
    verdict = anchors.verify(db, store)
    assert (verdict.ok, verdict.rows, verdict.anchors, verdict.unanchored_rows, verdict.broken_at) == (
        True, 5, 1, 1, None)
    assert verdict.last_anchor_at == first.at and verdict.problems == ()

    events(db, 1)
    second = anchors.anchor(db, store, now=first.at + timedelta(minutes=5))
    assert second is not None and second.rows == 6
    forced = anchors.anchor(db, store, now=first.at + timedelta(minutes=10), force=True)
    assert forced is not None and forced.rows == 7
    assert store.list(keys.AUDIT_ANCHORS) == [first.key, second.key, forced.key]  # listing is in time order
    final = anchors.verify(db, store)
    assert final.ok and final.anchors == 3
    assert json.loads(json.dumps(final.to_json()))["unanchored_rows"] == 1
    assert json.loads(json.dumps(forced.to_json()))["key"] == forced.key


def test_an_edited_row_fails_naming_the_row(db, store):
    events(db, 5)
    anchors.anchor(db, store)
    drop_guards(db)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE access_log SET action = 'export' WHERE id = 3"))
    verdict = anchors.verify(db, store)
    assert not verdict.ok and verdict.broken_at == 3
    assert "đứt tại dòng 3" in verdict.problems[0][0]


def test_a_row_deleted_in_the_middle_breaks_the_chain_and_moves_the_anchored_row(db, store):
    events(db, 5)
    anchors.anchor(db, store)
    drop_guards(db)
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM access_log WHERE id = 2"))
    verdict = anchors.verify(db, store)
    assert not verdict.ok and verdict.broken_at == 2
    assert "đứt tại dòng 2" in messages(verdict) and "position 4, anchored at 5" in messages(verdict)


def test_rows_cut_off_the_end_that_an_anchor_covers_are_detected(db, store):
    events(db, 6)
    anchors.anchor(db, store)  # covers rows 1..6; its event is row 7
    events(db, 2)
    drop_guards(db)
    delete_from(db, 5)
    assert journal.verify(db) == (True, 4, None)  # the chain alone sees nothing
    verdict = anchors.verify(db, store)
    assert not verdict.ok and verdict.broken_at == 5
    assert "bị mất dòng: dòng 6 (id 6)" in verdict.problems[0][0] and "chỉ còn 4 dòng" in verdict.problems[0][0]


def test_a_rewritten_chain_is_detected_by_the_anchors_hash(db, store):
    events(db, 5)
    anchors.anchor(db, store)
    drop_guards(db)
    rewrite_chain(db, 2, "export")
    assert journal.verify(db) == (True, 6, None)  # consistent in itself
    verdict = anchors.verify(db, store)
    assert not verdict.ok and verdict.broken_at == 5
    assert "đã bị viết lại: dòng 5 (id 5)" in verdict.problems[0][0]


def test_a_database_that_does_not_hold_the_newest_anchored_row_is_never_anchored(sqlite_db, store, tmp_path):
    """Found by the ops review: an older dump restored for a drill, pointed at the production store,
    was anchored by `sohoa audit anchor` (and by `sohoa serve` every 5 minutes); locked for 400 days,
    that anchor made every check of the real log fail ("viết lại") with no way out. The newest
    anchor is checked against the database first: one that disagrees is refused, and nothing is
    written."""
    from storage.index import open_index

    events(sqlite_db, 5)
    anchors.anchor(sqlite_db, store)  # covers rows 1..5; the live log goes on
    events(sqlite_db, 3)
    restored = open_index(f"sqlite:///{tmp_path / 'older.sqlite3'}")  # an older dump: another history
    events(restored, 2, action="search")
    written = store.list("system/")
    with pytest.raises(IntegrityError) as refused:
        anchors.anchor(restored, store)
    assert "Không neo nhật ký" in str(refused.value) and "bị mất dòng" in str(refused.value)
    assert store.list("system/") == written
    assert anchors.verify(sqlite_db, store).ok  # the real log still checks
    assert anchors.anchor(sqlite_db, store) is not None  # and is still anchored
    # a database restored on purpose (going back after an upgrade) is anchored when asked to, and
    # the anchor's event names the one it overrides (the review: it was locked out for good)
    made = anchors.anchor(restored, store, force=True)
    assert made is not None
    [event] = [e for e in audit.tail(restored, 5) if e.get("action") == anchors.ACTION]
    assert event["overrides"].startswith("system/audit-anchors/") and "missing" in event["reason"]
    restored.dispose()


def test_rows_cut_after_the_newest_anchor_cannot_be_seen_but_are_counted(sqlite_db, store):
    """No anchor covers them yet: the verdict passes but says how many rows are unprotected
    (at most one anchor interval's worth)."""
    events(sqlite_db, 3)
    anchors.anchor(sqlite_db, store)
    events(sqlite_db, 4)
    before = anchors.verify(sqlite_db, store)
    assert before.ok and before.unanchored_rows == 5  # the anchor's event and the 4 new ones
    drop_guards(sqlite_db)
    delete_from(sqlite_db, 6)
    after = anchors.verify(sqlite_db, store)
    assert after.ok and (after.rows, after.unanchored_rows) == (5, 2)


def test_an_anchor_object_altered_on_the_local_store_is_reported(sqlite_db, store, tmp_path):
    events(sqlite_db, 2)
    made = anchors.anchor(sqlite_db, store)
    with pytest.raises(RetentionError):
        store.delete(made.key)
    with pytest.raises(RetentionError):
        store.put(made.key, b"{}")
    assert store.retention(made.key)["mode"] == "COMPLIANCE"
    forged = json.loads(store.get(made.key))
    forged["anchor"]["rows"] = 1
    store.put(keys.audit_anchor(made.at + timedelta(seconds=1), 1), json.dumps(forged).encode())
    verdict = anchors.verify(sqlite_db, store)
    assert not verdict.ok and "không khớp mã băm của chính nó" in messages(verdict)


# --------------------------------------------------------------------------- S3 object lock

def test_an_anchor_on_s3_is_compliance_locked_and_cannot_be_removed_or_replaced(sqlite_db, s3_store):
    assert s3_store.lock_mode == "GOVERNANCE"  # the deployment's default does not matter
    events(sqlite_db, 5)
    made = anchors.anchor(sqlite_db, s3_store, retention_days=400)
    held = s3_store.retention(made.key)
    assert held["mode"] == "COMPLIANCE"
    assert abs(held["until"] - (datetime.now(timezone.utc) + timedelta(days=400))) < timedelta(minutes=5)
    version = s3_store.versions(made.key)[0]["version_id"]

    # control: a governance-locked object does go with the bypass header, so the refusal below is COMPLIANCE's
    s3_store.put("system/governed", b"g", retain=True)
    governed = s3_store.versions("system/governed")[0]["version_id"]
    assert list(s3_store.client.remove_objects(s3_store.bucket, [DeleteObject("system/governed", governed)],
                                               bypass_governance_mode=True)) == []
    refused = list(s3_store.client.remove_objects(s3_store.bucket, [DeleteObject(made.key, version)],
                                                  bypass_governance_mode=True))
    assert [e.code for e in refused] == ["AccessDenied"]
    with pytest.raises(RetentionError):
        s3_store.delete(made.key)

    # an attacker cuts the log, then replaces the anchor with one for the shorter log
    drop_guards(sqlite_db)
    delete_from(sqlite_db, 4)
    forged_body = {"format": anchors.FORMAT, "at": made.at.isoformat(), "rows": 3, "last_id": 3,
                   "sha256": journal.locate(sqlite_db, 3)[1]}
    canonical = json.dumps(forged_body, sort_keys=True, separators=(",", ":")).encode()
    forged = {"anchor": forged_body, "anchor_sha256": hashlib.sha256(canonical).hexdigest(), "timestamp_token": None}
    s3_store.put(made.key, json.dumps(forged).encode())  # only a newer version; the original stays
    assert len(s3_store.versions(made.key)) == 2
    verdict = anchors.verify(sqlite_db, s3_store)
    assert not verdict.ok
    text = messages(verdict)
    assert "đã bị ghi đè hoặc bị ẩn" in text and "bị mất dòng: dòng 5 (id 5)" in text

    s3_store.client.remove_object(s3_store.bucket, made.key)  # a delete marker hides it from a listing
    assert s3_store.list(keys.AUDIT_ANCHORS) == []
    hidden = anchors.verify(sqlite_db, s3_store)
    assert not hidden.ok and hidden.anchors == 1 and "bị mất dòng" in messages(hidden)


# --------------------------------------------------------------------------- RFC 3161 timestamps

def test_a_timestamped_anchor_is_checked_and_a_tampered_token_is_reported(sqlite_db, store, pki):
    from asn1crypto import cms, core

    root = pki.arch.get_cert("root")
    events(sqlite_db, 3)
    made = anchors.anchor(sqlite_db, store, tsa_url=pki.tsa_url)
    assert made.timestamped and made.timestamp_error is None
    document = json.loads(store.get(made.key))
    token = cms.ContentInfo.load(base64.b64decode(document["timestamp_token"]))
    tst = token["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == bytes.fromhex(made.anchor_sha256)
    verdict = anchors.verify(sqlite_db, store, trust_roots=[root])
    assert verdict.ok and verdict.timestamped == 1
    untrusted = anchors.verify(sqlite_db, store, trust_roots=[])
    assert not untrusted.ok and "không thuộc chứng thư tin cậy" in messages(untrusted)

    events(sqlite_db, 1)
    other = anchors.anchor(sqlite_db, store, tsa_url=pki.tsa_url, now=made.at + timedelta(minutes=5))
    other_doc = json.loads(store.get(other.key))
    swapped = {**other_doc, "timestamp_token": document["timestamp_token"]}  # a real token, of another anchor
    store.put(keys.audit_anchor(other.at + timedelta(seconds=1), other.rows), json.dumps(swapped).encode())
    token["content"]["signer_infos"][0]["signature"] = core.OctetString(
        bytes(b ^ 0xFF for b in token["content"]["signer_infos"][0]["signature"].native))
    broken = {**document, "timestamp_token": base64.b64encode(token.dump(force=True)).decode()}
    store.put(keys.audit_anchor(other.at + timedelta(seconds=2), made.rows), json.dumps(broken).encode())
    verdict = anchors.verify(sqlite_db, store, trust_roots=[root])
    assert not verdict.ok and verdict.timestamped == 4
    text = messages(verdict)
    assert "không phải dấu thời gian của mốc này" in text and "chữ ký của dấu thời gian bị hỏng" in text
    assert len(verdict.problems) == 2


def test_an_unreachable_tsa_still_anchors_without_a_token(sqlite_db, store):
    events(sqlite_db, 2)
    made = anchors.anchor(sqlite_db, store, tsa_url="http://127.0.0.1:9/tsa")
    assert made is not None and not made.timestamped and "TimestampRequestError" in made.timestamp_error
    assert journal.tail(sqlite_db, 1)[0]["timestamp_error"] == made.timestamp_error
    assert anchors.verify(sqlite_db, store).ok


# --------------------------------------------------------------------------- the serve-time loop

def test_run_periodically_anchors_and_survives_a_failing_round(sqlite_db, tmp_path):
    stop, rounds, errors = threading.Event(), [], []
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")  # the store of round 2 cannot be opened

    def make():
        rounds.append(1)
        events(sqlite_db, 1)  # something new to anchor each round
        if len(rounds) >= 4:
            stop.set()
        return sqlite_db, LocalStore(blocked if len(rounds) == 2 else tmp_path / "store")

    thread = threading.Thread(target=anchors.run_periodically, args=(make, 0.05, stop),
                              kwargs={"on_error": errors.append, "retention_days": 30}, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and len(rounds) == 4
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    store = LocalStore(tmp_path / "store")
    assert len(store.list(keys.AUDIT_ANCHORS)) == 3
    held = store.retention(store.list(keys.AUDIT_ANCHORS)[0])
    assert abs(held["until"] - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=5)
    verdict = anchors.verify(sqlite_db, store)
    assert verdict.ok and verdict.anchors == 3
