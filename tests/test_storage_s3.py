"""S3Store against a real Ceph RADOS Gateway: bucket setup, metadata and tags, write-once
retention, presigned downloads, retries and interrupted writes. Pure helpers too."""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import urllib3
from minio.error import S3Error

from storage import retention as ret
from storage.base import sha256
from storage.errors import RetentionError, StorageConfigError, StorageUnavailable
from storage.s3 import S3Store, decode_metadata, encode_metadata, object_tags, parse_endpoint
from tests.services import new_bucket_name

CODE = "H23.50-261201-0001"
DOC = f"{CODE}.001"
ORIGINAL = f"dossiers/{CODE}/originals/{sha256(b'scan')}.jpg"
META = {"dossier": CODE, "doc-id": DOC, "kind": "original", "filename": "trang 1.jpg", "maintenance": "06"}


# -- pure helpers ----------------------------------------------------------------

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("code, year", [("02", 2096), ("03", 2076), ("04", 2056), ("05", 2046), ("06", 2036)])
def test_retention_period_follows_the_maintenance_code(code, year):
    assert ret.retain_until(NOW, code, 30) == NOW.replace(year=year)


def test_permanent_is_capped_below_the_rgw_32_bit_limit():
    assert ret.retain_until(NOW, "01", 30) == ret.LATEST_RETAIN_UNTIL
    assert ret.LATEST_RETAIN_UNTIL.timestamp() < 2 ** 32


def test_other_or_missing_code_uses_the_default_days():
    assert ret.retain_until(NOW, "07", 30) == NOW + timedelta(days=30)
    assert ret.retain_until(NOW, None, 45) == NOW + timedelta(days=45)
    with pytest.raises(ValueError):
        ret.retain_until(NOW, "99", 30)


def test_given_the_day_the_dossier_closed_the_lock_ends_when_the_dossier_is_due():
    """Counted as the archive counts the due date (pipeline.disposal.due_date): from the 1st of
    January after the year the dossier closed, to midnight in Vietnam; a renewal stored years
    later is not locked past that day (the ops review), nor a dossier already due for more than a year."""
    due_2037 = datetime(2036, 12, 31, 17, 0, tzinfo=timezone.utc)  # 1 January 2037, 00:00 in Vietnam
    assert ret.retain_until(NOW, "06", 30, closed="2026-12-01") == due_2037
    assert ret.retain_until(NOW.replace(year=2031), "06", 30, closed="2026-12-01") == due_2037
    assert ret.retain_until(NOW, "07", 30, closed="2026-03-02") == datetime(2027, 1, 30, 17, tzinfo=timezone.utc)
    assert ret.retain_until(NOW, "01", 30, closed="2026-03-02") == ret.LATEST_RETAIN_UNTIL
    already_due = ret.retain_until(NOW, "05", 30, closed="1995-06-01")  # due in 2016
    assert already_due == NOW + timedelta(days=ret.DUE_ALREADY_DAYS)
    # a renewal a month before the due day: that day, not a year on (the archive-lock review)
    assert ret.retain_until(datetime(2036, 12, 1, tzinfo=timezone.utc), "06", 30, closed="2026-06-30") == due_2037
    with pytest.raises(ValueError):
        ret.retain_until(NOW, "06", 30, closed="20/11/2019")
    assert ret.retain_until(NOW, "02", 30, closed="9990-01-01") == ret.LATEST_RETAIN_UNTIL  # no OverflowError


def test_lock_mode_and_default_days_are_validated():
    assert ret.lock_mode(None) == "GOVERNANCE"
    assert ret.lock_mode("compliance") == "COMPLIANCE"
    assert ret.default_days(None) == ret.DEFAULT_RETENTION_DAYS
    with pytest.raises(ValueError):
        ret.lock_mode("LEGAL")
    with pytest.raises(ValueError):
        ret.default_days("0")


def test_rgw_nanosecond_timestamps_are_parsed():
    assert ret.parse_retain_until("2036-11-28T10:10:30.480000000Z") == datetime(
        2036, 11, 28, 10, 10, 30, 480000, tzinfo=timezone.utc)
    assert ret.parse_retain_until("2036-11-28T10:10:30Z") == datetime(2036, 11, 28, 10, 10, 30, tzinfo=timezone.utc)


def test_endpoint_forms():
    assert parse_endpoint("127.0.0.1:9000", False) == ("127.0.0.1:9000", False)
    assert parse_endpoint("https://s3.tinh.gov.vn", False) == ("s3.tinh.gov.vn", True)
    assert parse_endpoint("http://minio:9000/", True) == ("minio:9000", False)
    with pytest.raises(StorageConfigError):
        parse_endpoint(None, False)


def test_metadata_is_ascii_on_the_wire_and_decodes_back():
    meta = {"filename": "Tờ khai 100%.jpg", "dossier": CODE}
    wire = encode_metadata(meta)
    assert all(v.isascii() for v in wire.values())
    assert decode_metadata({f"x-amz-meta-{k}": v for k, v in wire.items()}) == meta


def test_tags_carry_identity_only_when_s3_accepts_the_value():
    tags = object_tags({"dossier": CODE, "doc-id": DOC, "kind": "pdf", "sha256": "ab" * 32, "filename": "x"})
    assert dict(tags) == {"dossier": CODE, "doc-id": DOC, "kind": "pdf", "sha256": "ab" * 32}
    assert object_tags({"kind": "Bản gốc"}) is None


# -- against RGW -------------------------------------------------------------------

def test_bucket_is_private_versioned_and_locked(s3_store, rgw):
    assert s3_store.client.get_bucket_versioning(s3_store.bucket).status == "Enabled"
    assert s3_store.object_lock_enabled()
    s3_store.put(ORIGINAL, b"scan")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{rgw['endpoint']}/{s3_store.bucket}/{ORIGINAL}", timeout=10)
    assert refused.value.code == 403
    refused.value.close()


def test_existing_bucket_gets_versioning_and_refuses_unlockable_retention(rgw):
    settings = {**{k: v for k, v in rgw.items() if k != "state"}, "bucket": new_bucket_name("plain")}
    bare = S3Store.connect(**settings)
    bare.client.make_bucket(f"{settings['bucket']}-nolock")
    store = S3Store.connect(**{**settings, "bucket": f"{settings['bucket']}-nolock"})
    assert store.client.get_bucket_versioning(store.bucket).status == "Enabled"
    assert not store.object_lock_enabled()
    with pytest.raises(RetentionError):
        store.put(ORIGINAL, b"scan", metadata=META, retain=True)
    assert store.stat(ORIGINAL) is None


def test_a_bucket_without_object_lock_is_not_ready(rgw, tmp_path):
    """Found by the ops review: /readyz said ready on a bucket without object lock, where every
    document is refused at its first write."""
    from pipeline import config, service

    settings = {**{k: v for k, v in rgw.items() if k != "state"}, "bucket": new_bucket_name("plain")}
    S3Store.connect(**settings).client.make_bucket(f"{settings['bucket']}-nolock")
    env = {"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_STORAGE": "s3", "SOHOA_S3_ENDPOINT": settings["endpoint"],
           "SOHOA_S3_ACCESS_KEY": settings["access_key"], "SOHOA_S3_SECRET_KEY": settings["secret_key"],
           "SOHOA_S3_SECURE": "false"}
    plain = service.readiness(config.load({**env, "SOHOA_S3_BUCKET": f"{settings['bucket']}-nolock"}))
    assert "không bật khóa đối tượng" in (plain["store"] or ""), plain
    assert service.readiness(config.load({**env, "SOHOA_S3_BUCKET": settings["bucket"]}))["store"] is None


def test_metadata_and_tags_carry_dossier_document_and_sha256(s3_store):
    s3_store.put(ORIGINAL, b"scan", "image/jpeg", META)
    head = s3_store.client.stat_object(s3_store.bucket, ORIGINAL)
    assert head.metadata["x-amz-meta-sha256"] == sha256(b"scan")
    assert head.metadata["x-amz-meta-dossier"] == CODE
    assert head.metadata["x-amz-meta-doc-id"] == DOC
    assert head.content_type == "image/jpeg"
    assert s3_store.tags(ORIGINAL) == {"dossier": CODE, "doc-id": DOC, "kind": "original", "sha256": sha256(b"scan")}


def test_retained_original_cannot_be_deleted_or_overwritten(s3_store):
    info = s3_store.put(ORIGINAL, b"scan", "image/jpeg", META, retain=True)
    held = s3_store.retention(ORIGINAL)
    assert held["mode"] == "GOVERNANCE"
    assert abs(held["until"] - datetime.now(timezone.utc).replace(year=datetime.now().year + 10)) < timedelta(minutes=5)
    version = s3_store.versions(ORIGINAL)[0]["version_id"]

    with pytest.raises(S3Error) as refused:  # the server itself refuses, not our code
        s3_store.client.remove_object(s3_store.bucket, ORIGINAL, version_id=version)
    assert refused.value.code == "AccessDenied"
    with pytest.raises(RetentionError):
        s3_store.delete(ORIGINAL)
    assert s3_store.get(ORIGINAL, sha256=info.sha256) == b"scan"

    s3_store.put(ORIGINAL, b"tampered")  # an overwrite is only a newer version
    s3_store.client.remove_object(s3_store.bucket, ORIGINAL)  # a plain DELETE only adds a marker
    kept = s3_store.client.get_object(s3_store.bucket, ORIGINAL, version_id=version)
    try:
        assert kept.read() == b"scan"
    finally:
        kept.close()
        kept.release_conn()
    assert s3_store.retention(ORIGINAL, version)["mode"] == "GOVERNANCE"


def test_compliance_mode_and_default_period_from_the_settings(rgw, tmp_path):
    """SOHOA_S3_LOCK_MODE and SOHOA_RETENTION_DAYS reach the store through the typed settings."""
    from pipeline import config, service

    settings = config.load({"SOHOA_HOME": str(tmp_path), "SOHOA_STORAGE": "s3", "SOHOA_S3_ENDPOINT": rgw["endpoint"],
                            "SOHOA_S3_ACCESS_KEY": rgw["access_key"], "SOHOA_S3_SECRET_KEY": rgw["secret_key"],
                            "SOHOA_S3_BUCKET": new_bucket_name(), "SOHOA_S3_LOCK_MODE": "COMPLIANCE",
                            "SOHOA_RETENTION_DAYS": "2"})
    store = service.open_store(settings)
    store.put(ORIGINAL, b"scan", metadata={"dossier": CODE, "kind": "original"}, retain=True)
    held = store.retention(ORIGINAL)
    assert held["mode"] == "COMPLIANCE"
    assert abs(held["until"] - (datetime.now(timezone.utc) + timedelta(days=2))) < timedelta(minutes=5)
    with pytest.raises(RetentionError):
        store.delete(ORIGINAL)


def test_permanent_code_gets_the_capped_date(s3_store):
    s3_store.put(ORIGINAL, b"scan", metadata={**META, "maintenance": "01"}, retain=True)
    assert s3_store.retention(ORIGINAL)["until"] == ret.LATEST_RETAIN_UNTIL


def test_same_bytes_stored_unlocked_are_locked_on_a_retained_put(s3_store):
    s3_store.put(ORIGINAL, b"scan", metadata=META)
    assert s3_store.retention(ORIGINAL) is None
    s3_store.put(ORIGINAL, b"scan", metadata=META, retain=True)
    assert s3_store.retention(ORIGINAL)["mode"] == "GOVERNANCE"
    assert len(s3_store.versions(ORIGINAL)) == 1


def test_a_forged_version_carrying_the_old_record_is_written_over_not_locked(s3_store):
    """Found by the ops review: someone with the bucket's credentials put other bytes as a new
    version, copying the good version's metadata (its SHA-256 with it). `sohoa restore` then put the
    good bytes back, saw "the same SHA-256, not locked" and locked the forged version, under
    COMPLIANCE for the dossier's years. The bytes are read first now: the good ones become the
    latest version, locked, and the forged one stays unlocked behind them."""
    import io

    s3_store.put(ORIGINAL, b"scan", metadata=META, retain=True)
    s3_store.client.put_object(s3_store.bucket, ORIGINAL, io.BytesIO(b"forged"), 6,
                               metadata=encode_metadata({**META, "sha256": sha256(b"scan")}))
    assert s3_store.stat(ORIGINAL).sha256 == sha256(b"scan") and s3_store.retention(ORIGINAL) is None

    s3_store.put(ORIGINAL, b"scan", metadata=META, retain=True)
    assert s3_store.get(ORIGINAL, sha256=sha256(b"scan")) == b"scan"
    assert s3_store.retention(ORIGINAL)["mode"] == "GOVERNANCE"
    forged = [v for v in s3_store.versions(ORIGINAL) if v["size"] == 6]
    assert len(forged) == 1 and not forged[0]["is_latest"]
    assert s3_store.retention(ORIGINAL, forged[0]["version_id"]) is None


def test_a_large_scan_uploaded_in_parts_is_locked_too(s3_store):
    """A file over the single-upload size goes up in parts; RGW ignores the lock asked for at the
    start of such an upload, so the store locks it once complete."""
    import os

    data = os.urandom(12 * 1024 * 1024)
    s3_store.put("dossiers/X/originals/big.tif", data, "image/tiff", {"maintenance": "06"}, retain=True)
    assert s3_store.retention("dossiers/X/originals/big.tif")["mode"] == "GOVERNANCE"
    with pytest.raises(RetentionError):
        s3_store.delete("dossiers/X/originals/big.tif")


def test_presigned_url_downloads_a_private_object(s3_store):
    s3_store.put(ORIGINAL, b"scan")
    url = s3_store.presigned_url(ORIGINAL, 60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"scan"
    with pytest.raises(ValueError):
        s3_store.presigned_url(ORIGINAL, timedelta(days=8))


def test_transient_errors_are_retried_a_bounded_number_of_times(s3_store, monkeypatch):
    real_put = s3_store.client.put_object
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise urllib3.exceptions.ProtocolError("Connection reset by peer")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(s3_store.client, "put_object", flaky)
    s3_store.backoff = 0.01
    assert s3_store.put(ORIGINAL, b"scan").sha256 == sha256(b"scan")
    assert len(calls) == 3


def test_a_retry_after_a_lost_response_writes_no_second_version(s3_store, monkeypatch):
    real_put = s3_store.client.put_object
    calls = []

    def stored_but_response_lost(*args, **kwargs):
        calls.append(1)
        real_put(*args, **kwargs)
        if len(calls) == 1:
            raise urllib3.exceptions.ProtocolError("Connection reset by peer")

    monkeypatch.setattr(s3_store.client, "put_object", stored_but_response_lost)
    s3_store.backoff = 0.01
    s3_store.put(ORIGINAL, b"scan", metadata=META, retain=True)
    assert len(calls) == 1
    assert len(s3_store.versions(ORIGINAL)) == 1
    assert s3_store.retention(ORIGINAL)["mode"] == "GOVERNANCE"


def test_a_lasting_outage_mid_dossier_gives_up_after_the_bounded_attempts(s3_store, monkeypatch):
    calls = []

    def down(*args, **kwargs):
        calls.append(1)
        raise urllib3.exceptions.ProtocolError("Connection refused")

    monkeypatch.setattr(s3_store.client, "put_object", down)
    s3_store.backoff = 0.01
    with pytest.raises(StorageUnavailable, match="không phản hồi sau 4 lần thử"):
        s3_store.put(ORIGINAL, b"scan")
    assert len(calls) == s3_store.attempts == 4
    monkeypatch.undo()
    assert s3_store.stat(ORIGINAL) is None


def test_a_store_that_stops_answering_writes_is_said_to_be_perhaps_full_in_vietnamese(s3_store, monkeypatch):
    """The bulk review filled the gateway's store: Ceph paused the writes, and after the retries the
    operator read urllib3's "Read timed out" with no hint that the store might be full."""
    def stalled(*args, **kwargs):
        raise urllib3.exceptions.ReadTimeoutError(None, "/sohoa/x", "Read timed out. (read timeout=120)")

    monkeypatch.setattr(s3_store.client, "put_object", stalled)
    s3_store.backoff = 0.01
    with pytest.raises(StorageUnavailable) as raised:
        s3_store.put(ORIGINAL, b"scan")
    assert "kho có thể đã đầy hoặc quá tải" in raised.value.message_vi
    assert "timed out" not in raised.value.message_vi and "Read timed out" in raised.value.detail


def test_server_outage_fails_fast_with_a_clear_message():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(StorageUnavailable, match="không phản hồi"):
        S3Store.connect(**{"endpoint": f"127.0.0.1:{closed_port}", "access_key": "a", "secret_key": "b",
                               "bucket": "sohoa"}, attempts=2, backoff=0.01)


def test_wrong_credentials_are_reported_as_such(rgw):
    with pytest.raises(StorageUnavailable, match="Khóa truy cập S3 không hợp lệ"):
        S3Store.connect(**{**{k: v for k, v in rgw.items() if k != "state"}, "secret_key": "wrong", "bucket": new_bucket_name()})


def test_an_interrupted_upload_leaves_no_object(s3_store):
    """A client that dies mid-PUT: the server never shows a partial object under the key."""
    url = urlsplit(s3_store.client.presigned_put_object(s3_store.bucket, ORIGINAL, timedelta(minutes=5)))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("PUT", f"{url.path}?{url.query}")
    conn.putheader("Content-Length", "100000")
    conn.endheaders()
    conn.send(b"x" * 1000)
    conn.close()
    assert s3_store.stat(ORIGINAL) is None
    assert s3_store.list("dossiers/") == []
    s3_store.put(ORIGINAL, b"scan")  # the retry completes it
    assert s3_store.get(ORIGINAL, sha256=sha256(b"scan")) == b"scan"
