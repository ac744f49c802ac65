"""The second copy (issue 15): signed dossiers replicated to a directory and to a real Ceph RGW
S3 server, checked, damaged, repaired, restored into an emptied primary that then verifies,
with the recovery time and point measured; rolling fixity finds a changed byte on either copy
within one cycle and moves its cursor a slice at a time. Real stores, no mocks."""
from __future__ import annotations

import json
import logging
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from api.cli import main as sohoa
from pipeline import config, fixity, replication, service
from pipeline.errors import ConfigError
from pipeline.repository import dossier_codes
from storage import keys
from storage.base import sha256
from storage.local import LocalStore
from tests.conftest import save_page

CODES = ("H23.50-261201-0301", "H23.50-261201-0302")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, rendered):
    """A SOHOA_HOME whose local store holds two signed dossiers (one page each, the second with
    maintenance code 01) and a COMPLIANCE-locked system object; each test works on a copy."""
    home = tmp_path_factory.mktemp("replication") / "home"
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_OCR_ENGINE": "tesseract"})
    for n, code in enumerate(CODES):
        page = save_page(rendered(f"repl{n}", layout="text", seed=500 + n, dpi=150), home.parent / f"p{n}.png")
        extra = ["--maintenance", "01"] if n else []
        assert sohoa(["ingest", "--dossier", code, "--title", "Đơn đề nghị", *extra, str(page)], settings=settings) == 0
    LocalStore(home / "store").put(keys.system("anchor-test.json"), b'{"rows": 1}', "application/json",
                                   {"kind": "audit-anchor"}, compliance_days=2)
    return home


@pytest.fixture
def primary_home(ingested, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(ingested, home)
    return home


def settings_for(home: Path) -> config.Settings:
    return config.load({"SOHOA_HOME": str(home)})


def flip(path: Path, at: int = -10) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def pdf_key(code: str) -> str:
    return keys.document_pdf(code, f"{code}.001")


def verify_all(home: Path) -> dict:
    report = service.verify(settings_for(home), all_dossiers=True)
    assert set(report.results) == set(CODES)
    assert not report.failed, report.to_json()
    return report.results


def drill(home: Path, replica, label: str) -> replication.ReplicationReport:
    """Empty the primary, restore it from the replica, verify every dossier; print RTO/RPO."""
    before = {k: LocalStore(home / "store").stat(k).sha256
              for k in LocalStore(home / "store").list("") if replication.in_scope(k)}
    shutil.rmtree(home / "store")
    primary = LocalStore(home / "store")
    assert dossier_codes(primary) == []
    restored = replication.restore(replica, primary)
    assert restored.ok and not restored.failed, restored.failed
    after = {k: primary.stat(k).sha256 for k in primary.list("") if replication.in_scope(k)}
    assert after == before  # recovery point: every object of the last replication, byte for byte
    started = datetime.now()
    verify_all(home)
    verified = (datetime.now() - started).total_seconds()
    print(f"\n[{label}] restore drill: {len(restored.copied)} objects, {restored.bytes_copied} bytes restored in "
          f"{restored.seconds:.2f} s; every dossier verified in {verified:.2f} s more "
          f"(recovery time {restored.seconds + verified:.2f} s); recovery point: the last replication "
          f"({len(before)} objects, nothing lost)")
    assert replication.restore(replica, primary).copied == ()  # idempotent
    return restored


# --------------------------------------------------------------------------- settings

def test_replica_and_fixity_settings_are_read_like_the_primary_s3(tmp_path):
    secret = tmp_path / "replica.secret"
    secret.write_text("bí-mật-bản-sao\n", encoding="utf-8")
    base = {"SOHOA_HOME": str(tmp_path / "home")}
    plain = config.load(base)
    assert plain.replica.kind is None and plain.fixity == config.FixitySettings(30, 3600)
    s3 = config.load({**base, "SOHOA_REPLICA_S3_ENDPOINT": "http://10.0.0.9:7480",
                      "SOHOA_REPLICA_S3_ACCESS_KEY": "ak", "SOHOA_REPLICA_S3_SECRET_KEY_FILE": str(secret),
                      "SOHOA_REPLICA_S3_BUCKET": "ban-sao", "SOHOA_REPLICA_S3_SECURE": "true",
                      "SOHOA_S3_LOCK_MODE": "compliance", "SOHOA_FIXITY_DAYS": "7", "SOHOA_FIXITY_INTERVAL": "600"})
    assert s3.replica.kind == "s3" and s3.replica.s3.secret_key == "bí-mật-bản-sao"
    assert (s3.replica.s3.bucket, s3.replica.s3.secure, s3.replica.s3.lock_mode) == ("ban-sao", True, "COMPLIANCE")
    assert "bí-mật" not in repr(s3) and s3.fixity == config.FixitySettings(7, 600)
    local = config.load({**base, "SOHOA_REPLICA_DIR": str(tmp_path / "usb")})
    assert local.replica.kind == "local" and local.replica.directory == (tmp_path / "usb").resolve()
    with pytest.raises(ConfigError, match="SOHOA_REPLICA_DIR"):
        replication.open_replica(local)  # the medium is not mounted: no directory made on the wrong disk
    for bad, name in [({"SOHOA_REPLICA_DIR": str(tmp_path / "usb"), "SOHOA_REPLICA_S3_ENDPOINT": "h:1"},
                       "SOHOA_REPLICA_DIR"),
                      ({"SOHOA_REPLICA_DIR": str(tmp_path / "home" / "store" / "copy")}, "SOHOA_REPLICA_DIR"),
                      ({"SOHOA_STORAGE": "s3", "SOHOA_S3_ENDPOINT": "h:1", "SOHOA_REPLICA_S3_ENDPOINT": "http://h:1"},
                       "bucket"),
                      ({"SOHOA_REPLICA_S3_BUCKET": "b"}, "SOHOA_REPLICA_S3_ENDPOINT"),
                      ({"SOHOA_FIXITY_DAYS": "0"}, "SOHOA_FIXITY_DAYS")]:
        with pytest.raises(ConfigError, match=name):
            config.load({**base, **bad})


def test_copy_order_puts_each_manifest_last_and_locks_carry_over():
    order = replication.copy_order(["dossiers/B/manifest.json", "dossiers/A/text/x.txt", "system/k",
                                    "dossiers/A/manifest.json", "dossiers/B/documents/d.pdf",
                                    "dossiers/A/manifests/000001.json"])
    assert order == ["system/k", "dossiers/A/manifests/000001.json", "dossiers/A/text/x.txt",
                     "dossiers/A/manifest.json", "dossiers/B/documents/d.pdf", "dossiers/B/manifest.json"]
    assert replication.put_options(None, NOW) == {"retain": False}
    assert replication.put_options({"retained": True, "compliance_until": None}, NOW) == {"retain": True}
    assert replication.put_options({"retained": True, "compliance_until": NOW + timedelta(days=1, hours=1)},
                                   NOW) == {"compliance_days": 2}
    assert not replication.in_scope("work/pages/ab/x.json") and not replication.in_scope(fixity.cursor_key("primary"))


# --------------------------------------------------------------------------- replicas

def test_replicate_to_a_directory_check_repair_and_restore(primary_home, tmp_path):
    primary = LocalStore(primary_home / "store")
    replica = LocalStore(tmp_path / "other-media")
    first = replication.replicate(primary, replica)
    assert first.ok and first.copied and set(first.missing) == set(first.copied) and first.bytes_copied > 0
    in_scope = [k for k in primary.list("") if replication.in_scope(k)]
    assert sorted(first.copied) == in_scope and not any(k.startswith("work/") for k in first.copied)
    assert replication.replicate(primary, replica).copied == ()  # idempotent
    clean = replication.check(primary, replica)
    assert clean.ok and (clean.missing, clean.different, clean.extra) == ((), (), ())

    # write-once stays write-once; the COMPLIANCE lock keeps its date
    pdf = pdf_key(CODES[1])
    assert replica.retained(pdf) and replica.retention(keys.system("anchor-test.json"))["mode"] == \
        "COMPLIANCE"
    assert replica.stat(pdf).metadata["maintenance"] == "01"

    flip(tmp_path / "other-media" / pdf)
    (tmp_path / "other-media" / keys.document_text(CODES[0], f"{CODES[0]}.001")).unlink()
    (tmp_path / "other-media" / "dossiers" / CODES[0] / "stray.txt").write_text("x")
    shallow = replication.check(primary, replica, read=False)
    assert shallow.different == () and shallow.missing == (keys.document_text(CODES[0], f"{CODES[0]}.001"),)
    found = replication.check(primary, replica)
    assert found.different == (pdf,) and found.extra == (f"dossiers/{CODES[0]}/stray.txt",) and not found.ok
    repaired = replication.replicate(primary, replica, read=True)
    assert repaired.ok and set(repaired.copied) == {pdf, keys.document_text(CODES[0], f"{CODES[0]}.001")}
    assert replication.check(primary, replica).different == ()
    assert replica.retained(pdf)  # the repaired copy is write-once again
    replica.delete(f"dossiers/{CODES[0]}/stray.txt")

    drill(primary_home, replica, "directory replica")


def test_an_object_changed_or_lost_at_the_primary_is_never_copied_over_the_good_second_copy(primary_home, tmp_path):
    """A signed PDF changed in the primary with its recorded SHA-256 rewritten to match (a rogue
    or broken writer), and another document's text deleted there: `sohoa replicate` copied the
    changed PDF over the replica's good copy, reported success, and called the deleted one an
    extra object of the replica; a restore then brought the changed PDF back. Now neither is
    copied, both are named, the run fails, and the replica keeps the good bytes."""
    primary = LocalStore(primary_home / "store")
    replica = LocalStore(tmp_path / "other-media")
    assert replication.replicate(primary, replica).ok
    pdf, text = pdf_key(CODES[0]), keys.document_text(CODES[1], f"{CODES[1]}.001")
    good = replica.get(pdf)
    path = primary_home / "store" / pdf
    flip(path)
    side = path.with_name(path.name + ".meta.json")
    meta = json.loads(side.read_text(encoding="utf-8"))
    side.chmod(0o644)
    side.write_text(json.dumps({**meta, "sha256": sha256(path.read_bytes())}), encoding="utf-8")
    (primary_home / "store" / text).unlink()

    code = sohoa(["replicate"], settings=config.load({"SOHOA_HOME": str(primary_home),
                                                       "SOHOA_REPLICA_DIR": str(tmp_path / "other-media")}))
    assert code != 0
    again = replication.replicate(primary, replica)
    assert not again.ok and again.copied == () and replica.get(pdf) == good
    reasons = dict(again.failed)
    assert set(reasons) == {pdf, text} and "khác với manifest" in reasons[pdf] and "sohoa restore" in reasons[text]
    assert again.extra == ()
    found = replication.check(primary, replica)
    assert not found.ok and dict(found.failed).keys() == {pdf, text} and found.extra == ()
    events = [e for e in service.dossier_events(settings_for(primary_home), CODES[0]) if e["type"] == "replication"]
    assert events[-1]["outcome"] == "failure"
    # the restore puts the primary right from the good copy
    restored = replication.restore(replica, primary, [CODES[1]])
    assert restored.ok and text in restored.copied and primary.get(text) == replica.get(text)

    # the writer rewrites the manifest to match the changed PDF too (a review found it copied
    # then): the replica's manifest names the PDF with its good hash; neither is copied
    manifest_key, good_manifest = keys.manifest(CODES[0]), replica.get(keys.manifest(CODES[0]))
    forged_text = primary.get(manifest_key).decode().replace(
        json.loads(good_manifest)["documents"][0]["pdf"]["sha256"], sha256(path.read_bytes()))
    rewrite(primary_home / "store" / manifest_key, forged_text.encode())
    forged = replication.replicate(primary, replica)
    assert not forged.ok and "khác với manifest ở" in dict(forged.failed)[pdf]
    assert replica.get(pdf) == good and replica.get(manifest_key) == good_manifest


def rewrite(path: Path, data: bytes) -> None:
    """An object and its recorded SHA-256 rewritten together (a rogue or broken writer)."""
    path.chmod(0o644)
    path.write_bytes(data)
    side = path.with_name(path.name + ".meta.json")
    side.chmod(0o644)
    side.write_text(json.dumps({**json.loads(side.read_text(encoding="utf-8")), "sha256": sha256(data),
                                "size": len(data)}), encoding="utf-8")


def test_a_restore_never_puts_an_older_manifest_over_a_newer_one(primary_home, tmp_path, rendered):
    """A document added after the last replication: restoring (a partial primary) put the
    replica's older manifest over the newer one, and the new document was no longer listed."""
    primary = LocalStore(primary_home / "store")
    replica = LocalStore(tmp_path / "other-media")
    assert replication.replicate(primary, replica).ok
    page = save_page(rendered("repl-new", layout="text", seed=502, dpi=150), tmp_path / "moi.png")
    settings = config.load({"SOHOA_HOME": str(primary_home), "SOHOA_OCR_ENGINE": "tesseract"})
    assert sohoa(["ingest", "--dossier", CODES[0], "--title", "Bổ sung", str(page)], settings=settings) == 0
    newer = primary.get(keys.manifest(CODES[0]))
    (primary_home / "store" / keys.document_text(CODES[1], f"{CODES[1]}.001")).unlink()  # a partial primary
    restored = replication.restore(replica, primary)
    assert keys.document_text(CODES[1], f"{CODES[1]}.001") in restored.copied
    assert primary.get(keys.manifest(CODES[0])) == newer and "mới hơn" in dict(restored.failed)[keys.manifest(CODES[0])]


def test_replicate_to_s3_on_another_endpoint_and_restore_from_it(primary_home, s3_store):
    primary = LocalStore(primary_home / "store")
    first = replication.replicate(primary, s3_store, now=datetime.now(timezone.utc))
    assert first.ok and first.copied and first.source.startswith("local:") and first.target.startswith("s3:")
    assert replication.replicate(primary, s3_store).copied == ()
    assert replication.check(primary, s3_store).ok

    pdf, anchor = pdf_key(CODES[1]), keys.system("anchor-test.json")
    assert s3_store.retention(pdf)["mode"] == "GOVERNANCE"
    assert s3_store.retention(pdf)["until"] > datetime.now(timezone.utc) + timedelta(days=365 * 70)  # code 01
    held = s3_store.retention(anchor)
    assert held["mode"] == "COMPLIANCE" and held["until"] < datetime.now(timezone.utc) + timedelta(days=3)

    text = keys.document_text(CODES[0], f"{CODES[0]}.001")
    changed = bytearray(s3_store.get(text))
    changed[0] ^= 0x01
    s3_store.put(text, bytes(changed), "text/plain; charset=utf-8")  # a changed byte on the replica
    assert replication.check(primary, s3_store, read=False).different == (text,)

    # rolling fixity on the replica sees it too: the store recorded the new bytes, the manifest did not
    report = fixity.fixity_slice(s3_store, primary, 0.01, NOW, label="replica")
    assert [(p.key, p.outcome, p.detail) for p in report.problems] == [(text, "mismatch", "manifest")]

    again = replication.replicate(primary, s3_store)
    assert again.copied == (report.record, text) and replication.check(primary, s3_store).ok
    assert s3_store.get(text) == primary.get(text)
    drill(primary_home, s3_store, "S3 replica (Ceph RGW)")


# --------------------------------------------------------------------------- rolling fixity

def test_rolling_fixity_reports_a_changed_byte_on_either_copy_within_one_cycle(primary_home, tmp_path, caplog):
    primary, replica = LocalStore(primary_home / "store"), LocalStore(tmp_path / "other-media")
    assert replication.replicate(primary, replica).ok
    clean = fixity.run(primary, replica, 0.01, NOW)  # a cycle shorter than one interval: one slice reads all
    assert [r.store for r in clean] == ["primary", "replica"]
    assert all(r.ok and r.complete and r.checked == r.total > 0 for r in clean)
    record = json.loads(primary.get(clean[0].record))
    assert {o["outcome"] for o in record["objects"]} == {"ok"} and len(record["objects"]) == clean[0].checked
    assert primary.retained(clean[0].record)  # the hash record is write-once

    pdf, original = pdf_key(CODES[0]), next(k for k in primary.list(f"dossiers/{CODES[1]}/originals/"))
    text = keys.document_text(CODES[1], f"{CODES[1]}.001")
    flip(primary_home / "store" / pdf)
    flip(tmp_path / "other-media" / original)
    (primary_home / "store" / text).unlink()
    caplog.set_level(logging.ERROR, logger="pipeline.fixity")
    later = NOW + timedelta(hours=1)
    events = []
    on_primary, on_replica = fixity.run(primary, replica, 0.01, later,
                                        on_dossier=lambda label, code, found: events.append((label, code, found)))
    assert [(label, code) for label, code, _ in events] == [(s, c) for s in ("primary", "replica") for c in CODES]
    assert {o["outcome"] for o in events[1][2]} == {"ok", "missing"}  # the primary's second dossier lost its text
    assert on_primary.cycle_started == later and on_primary.complete  # a new cycle, read whole
    assert {(p.key, p.outcome) for p in on_primary.problems} == {(pdf, "mismatch"), (text, "missing")}
    assert [(p.key, p.outcome) for p in on_replica.problems] == [(original, "mismatch")]
    assert on_replica.problems[0].actual == sha256((tmp_path / "other-media" / original).read_bytes())
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(pdf in line and "sai mã băm" in line for line in logged)
    assert any(original in line and "kho replica" in line for line in logged)
    assert any(text in line and "mất đối tượng" in line for line in logged)
    assert not any("None" in line for line in logged), logged  # "mong đợi None, đọc được None" (archive review)
    outcomes = {o["key"]: o["outcome"] for o in json.loads(primary.get(on_primary.record))["objects"]}
    assert outcomes[pdf] == "mismatch" and outcomes[text] == "missing"


def test_fixity_cursor_advances_a_slice_at_a_time_and_a_cycle_ends_within_its_days(primary_home):
    store = LocalStore(primary_home / "store")
    total = len([k for k in store.list("") if replication.in_scope(k)])
    assert total > 8
    at, reports = NOW, []
    for _ in range(3):
        report = fixity.fixity_slice(store, store, 1, at, interval=3600)  # 24 runs for the cycle
        reports.append(report)
        at += timedelta(hours=1)
    assert all(r.checked == -(-total // 24) for r in reports[:1])  # ceil(objects / runs left)
    assert [r.done for r in reports] == sorted({r.done for r in reports}) and reports[-1].done < total
    assert len({r.last_key for r in reports}) == 3 and all(r.cycle_started == NOW for r in reports)
    progress = fixity.status(store, store, 1)
    assert (progress.done, progress.total, progress.expected_end) == (reports[-1].done, total, NOW + timedelta(days=1))
    # the worker was down most of the day: what is left is read in the last run before the deadline
    late = fixity.fixity_slice(store, store, 1, NOW + timedelta(hours=23, minutes=30))
    assert late.complete and late.done == late.total == total and late.ok
    fresh = fixity.fixity_slice(store, store, 0.01, NOW + timedelta(days=1), limit=2)  # a cap on one slice
    assert fresh.cycle_started == NOW + timedelta(days=1) and fresh.checked == fresh.done == 2 and not fresh.complete


def test_the_fixity_task_runs_a_slice_of_both_copies_on_the_beat_schedule(primary_home, tmp_path):
    from pipeline import tasks

    (tmp_path / "usb").mkdir()
    settings = config.load({"SOHOA_HOME": str(primary_home), "SOHOA_REPLICA_DIR": str(tmp_path / "usb"),
                            "SOHOA_FIXITY_DAYS": "1", "SOHOA_FIXITY_INTERVAL": "600"})
    app = tasks.configure(settings)
    try:
        entry = app.conf.beat_schedule["sohoa-fixity"]
        assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == ("sohoa.fixity", 600.0, "finish")
        assert app.conf.task_annotations["sohoa.fixity"]["time_limit"] == 600
        assert replication.replicate(LocalStore(primary_home / "store"), LocalStore(tmp_path / "usb")).ok
        tasks.fixity.apply().get()
        store = LocalStore(primary_home / "store")
        for label in ("primary", "replica"):
            progress = fixity.status(store if label == "primary" else LocalStore(tmp_path / "usb"), store, 1,
                                     label=label)
            assert 0 < progress.done < progress.total  # one slice of 144 in the day
        # a dossier lost whole is found by the beat's slices too (only `sohoa fixity` found it)
        shutil.rmtree(primary_home / "store" / "dossiers" / CODES[0])
        lost, seen = f"dossiers/{CODES[0]}/manifest.json", []
        for _ in range(200):
            tasks.fixity.apply().get()
            seen = [o for k in store.list(fixity.RECORDS + "primary-") for o in json.loads(store.get(k))["objects"]
                    if o["key"] == lost]
            if seen:
                break
        assert seen and seen[0]["outcome"] == "missing"
    finally:
        tasks._state.clear()


def test_the_archivists_commands_replicate_check_fixity_and_restore_and_leave_events_and_notices(
        primary_home, tmp_path, capsys):
    usb = tmp_path / "usb"
    usb.mkdir()
    # an unreachable receiver: the notice waits in the outbox, which is what is checked here
    env = {"SOHOA_HOME": str(primary_home), "SOHOA_REPLICA_DIR": str(usb), "SOHOA_FIXITY_DAYS": "1",
           "SOHOA_FIXITY_INTERVAL": "86400", "SOHOA_WEBHOOK_URL": "http://127.0.0.1:9/", "SOHOA_WEBHOOK_SECRET": "k"}
    settings = config.load(env)
    assert sohoa(["replicate"], settings=settings) == 0
    copied = capsys.readouterr().out
    # numbers written the Vietnamese way ("7,5 MB", "0,2 giây"; they were "7.5 MB", "0.2 giây")
    assert "Đã sao" in copied and re.search(r"\(\d+,\d MB\) sang bản sao .* trong \d+,\d giây", copied), copied
    assert sohoa(["replicate", "--check"], settings=settings) == 0
    assert "thiếu 0, khác 0" in capsys.readouterr().out
    replicated = [e for e in service.dossier_events(settings, CODES[0]) if e["type"] == "replication"]
    assert [e["outcome"] for e in replicated] == ["success"] and pdf_key(CODES[0]) in replicated[0]["objects"]
    # the replication event itself reached the replica
    assert {k for k in LocalStore(usb).list(keys.dossier_events(CODES[0]))} == \
        {k for k in LocalStore(primary_home / "store").list(keys.dossier_events(CODES[0]))}

    flip(usb / pdf_key(CODES[1]))
    assert sohoa(["replicate", "--check"], settings=settings) == 1
    assert f"KHÁC   {pdf_key(CODES[1])}" in capsys.readouterr().out
    assert sohoa(["fixity"], settings=settings) == 1  # one slice covers the whole store with a one-day cycle
    out = capsys.readouterr().out
    assert f"THAY ĐỔI (changed): {pdf_key(CODES[1])}" in out and "bản sao:" in out and "kho chính:" in out
    checks = [e for e in service.dossier_events(settings, CODES[1]) if e["type"] == "fixity check"]
    assert sorted(e["outcome"] for e in checks) == ["failure", "success"]  # primary sound, replica not
    assert pdf_key(CODES[1]) in next(e for e in checks if e["outcome"] == "failure")["outcomeDetail"]
    sent = service.notices(settings)["notices"]
    assert [(n["event"], n["dossier"]) for n in sent] == [("fixity.failed", CODES[1])]
    assert sohoa(["fixity", "--status"], settings=settings) == 0
    assert "đã kiểm tra" in capsys.readouterr().out
    # and where monitoring looks: the API's /metrics, for an archivist
    from fastapi.testclient import TestClient

    from api.http import create_app

    service.add_user(settings, "luu", "archivist", (), "mat-khau-dai-du")
    token = service.create_token(settings, "luu")[1]
    with TestClient(create_app(settings, background=False)) as client:
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert 'sohoa_fixity_problems{store="replica"} 1.0' in metrics, metrics
    assert 'sohoa_fixity_problems{store="primary"} 0.0' in metrics

    assert sohoa(["replicate", "--read"], settings=settings) == 0  # the damaged copy is repaired
    shutil.rmtree(primary_home / "store")
    (primary_home / "store").mkdir()
    assert sohoa(["restore"], settings=settings) == 0
    assert "sohoa reindex" in capsys.readouterr().out
    verify_all(primary_home)


def test_a_dossier_the_primary_lost_whole_is_missed_by_every_check_and_restored(primary_home, tmp_path, capsys):
    """A dossier's folder deleted whole from the primary, manifest included: `verify --all`,
    rolling fixity and `replicate --check` all said success (the replica's copies were called
    extra). The database knows the dossier: each check now names its manifest missing and fails,
    `replicate` names the replica's copies lost, and `sohoa restore CODE` brings it back."""
    usb = tmp_path / "usb"
    usb.mkdir()
    settings = config.load({"SOHOA_HOME": str(primary_home), "SOHOA_REPLICA_DIR": str(usb), "SOHOA_FIXITY_DAYS": "1",
                            "SOHOA_FIXITY_INTERVAL": "86400"})
    assert sohoa(["replicate"], settings=settings) == 0
    capsys.readouterr()
    shutil.rmtree(primary_home / "store" / "dossiers" / CODES[0])
    lost = f"dossiers/{CODES[0]}/manifest.json"
    assert sohoa(["reindex"], settings=settings) == 0  # the index forgets it; the jobs that made it do not
    assert sohoa(["verify", "--all", "--fixity-only"], settings=settings) == 1
    out = capsys.readouterr().out
    assert f"THIẾU (missing): {lost}" in out and f"sohoa restore {CODES[0]}" in out, out
    assert sohoa(["fixity"], settings=settings) == 1
    out = capsys.readouterr().out
    assert lost in out and f"sohoa restore {CODES[0]}" in out, out
    # once a cycle, by the slice that passes where it was, not by every hourly slice
    reported, ended = 0, False
    while not ended:
        [primary, _] = service.fixity(settings, limit=2)
        reported += sum(p.key == lost for p in primary.problems)
        ended = primary.done == primary.total
    assert reported == 1
    assert sohoa(["replicate", "--check"], settings=settings) == 1
    out = capsys.readouterr().out
    assert f"LỖI    {lost}" in out and f"sohoa restore {CODES[0]}" in out and "THỪA" not in out, out
    assert sohoa(["restore", CODES[0]], settings=settings) == 0
    capsys.readouterr()
    assert sohoa(["verify", "--all", "--fixity-only"], settings=settings) == 0, capsys.readouterr().out
    verify_all(primary_home)


def test_sohoa_restore_code_repairs_a_changed_byte_and_a_truncated_manifest(primary_home, tmp_path, capsys):
    """Found by the archive's hands-on review: a bit flipped in a stored PDF and a truncated
    manifest left `sohoa restore CODE` saying "Đã khôi phục 0 đối tượng", exit 0, the damage in
    place (only `--read` compared bytes), though `reindex` named that very command as the cure."""
    usb = tmp_path / "usb"
    usb.mkdir()
    settings = config.load({"SOHOA_HOME": str(primary_home), "SOHOA_REPLICA_DIR": str(usb)})
    assert sohoa(["replicate"], settings=settings) == 0
    store = primary_home / "store"
    manifest_path = store / keys.manifest(CODES[0])
    pdf = store / json.loads(manifest_path.read_text(encoding="utf-8"))["documents"][0]["pdf"]["key"]
    flip(pdf)
    manifest_path.chmod(0o644)
    manifest_path.write_bytes(manifest_path.read_bytes()[:100])
    capsys.readouterr()
    assert sohoa(["reindex"], settings=settings) == 1
    assert f"sohoa restore {CODES[0]}" in capsys.readouterr().out

    assert sohoa(["restore", CODES[0], "--no-read"], settings=settings) == 0  # records alone: nothing seen
    assert "Đã khôi phục 0 đối tượng" in capsys.readouterr().out
    assert sohoa(["restore", CODES[0]], settings=settings) == 0
    assert "Đã khôi phục 2 đối tượng" in capsys.readouterr().out
    assert sohoa(["reindex"], settings=settings) == 0
    verify_all(primary_home)


def test_verify_all_says_which_stored_dossiers_the_search_index_misses(primary_home, capsys):
    """Found by the ops review: after an older database dump was restored, search found none of the
    dossiers stored since, and `verify --all` passed them without a word of it."""
    from storage import index as search_index

    settings = settings_for(primary_home)
    search_index.forget_dossier(service.database(settings), CODES[1])  # as a dump older than it
    assert sohoa(["verify", "--all"], settings=settings) == 0  # the archive itself is whole
    out = capsys.readouterr().out
    assert f"chỉ mục tìm kiếm chưa có 1 hồ sơ của kho ({CODES[1]})" in out and "sohoa reindex" in out, out
    assert sohoa(["reindex"], settings=settings) == 0
    assert sohoa(["verify", "--all"], settings=settings) == 0
    assert "chỉ mục tìm kiếm chưa có" not in capsys.readouterr().out


def test_verify_all_shows_each_dossier_as_it_is_judged_and_a_stopped_run_keeps_them(primary_home, tmp_path):
    """Found by the archive's hands-on review: `verify --all` over 114 dossiers printed nothing for
    its whole run, and stopped with Ctrl-C it printed none of the ~30 verdicts already reached. Each
    dossier's verdicts are now printed as it is judged, numbered, and a summary ends the run."""
    import os
    import signal
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")}, "SOHOA_HOME": str(primary_home),
           "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen([str(Path(sys.executable).with_name("sohoa")), "verify", "--all"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    while not (lines and lines[-1].startswith("[1] Hồ sơ / dossier")):
        line = run.stdout.readline()
        assert line, "".join(lines) + run.stderr.read()  # the run ended before showing a dossier
        lines.append(line)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    lines.append(out)
    if run.returncode == 130:  # stopped before the end: what was shown stays, the stop is said
        assert "Đã dừng" in err, err
    else:  # the last dossier was judged before the signal came
        assert run.returncode == 0 and f"Đã kiểm tra {len(CODES)} hồ sơ: {len(CODES)} đạt, 0 KHÔNG ĐẠT." in out
    assert f"[1] Hồ sơ / dossier {CODES[0]}:" in "".join(lines)

    # the hint for a home with no dossier is not given to a home whose store was lost
    shutil.rmtree(primary_home / "store")
    lost = subprocess.run([str(Path(sys.executable).with_name("sohoa")), "verify", "--all"], env=env,
                          capture_output=True, text=True)
    assert lost.returncode == 1 and "chưa có hồ sơ nào trước lệnh này" not in lost.stderr, lost.stderr
    fresh = subprocess.run([str(Path(sys.executable).with_name("sohoa")), "verify", "--all"],
                           env={**env, "SOHOA_HOME": str(tmp_path / "new")}, capture_output=True, text=True)
    assert fresh.returncode == 0 and "chưa có hồ sơ nào trước lệnh này" in fresh.stderr, fresh.stderr


def test_sohoa_beat_sends_a_fixity_slice_to_the_workers_queue_every_interval(tmp_path, redis_url):
    import os
    import subprocess
    import sys
    import time

    import redis

    url = redis_url
    broker = redis.Redis.from_url(url)
    broker.flushdb()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")},
           "SOHOA_HOME": str(tmp_path / "home"), "SOHOA_BROKER_URL": url, "SOHOA_FIXITY_INTERVAL": "1"}
    beat = subprocess.Popen([str(Path(sys.executable).with_name("sohoa")), "beat"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while broker.llen("finish") < 2:  # two slices sent, a second apart
            assert time.monotonic() < deadline and beat.poll() is None, beat.stdout.read1().decode()
            time.sleep(0.2)
        sent = [json.loads(m) for m in broker.lrange("finish", 0, -1)]
        assert {m["headers"]["task"] for m in sent} == {"sohoa.fixity"}
    finally:
        beat.terminate()
        beat.wait(timeout=10)
        broker.flushdb()


def test_a_due_date_moved_later_extends_the_replicas_locks_too(cli, home, rendered, s3_store, tmp_path):
    """Later paper dates extended the primary's locks, but the replica's copies kept the old due
    date (and `replicate --check` said nothing): the disaster-recovery copy of the dossier became
    deletable years early (the archive-lock review)."""
    code = "H23.50-261205-0031"
    first = save_page(rendered("rep-lock-1", layout="text", seed=31, dpi=150), tmp_path / "1.png")
    second = save_page(rendered("rep-lock-2", layout="text", seed=32, dpi=150), tmp_path / "2.png")
    assert cli("ingest", "--dossier", code, "--title", "Đơn", "--maintenance", "04", "--start-date", "2019-03-01",
               "--end-date", "2019-11-20", "--unsigned", first)[0] == 0
    primary = LocalStore(home / "store")
    assert replication.replicate(primary, s3_store, [code]).ok
    vn = timezone(timedelta(hours=7))
    earlier = [k for k in s3_store.list(keys.dossier_prefix(code)) if s3_store.retention(k)]
    assert earlier and {s3_store.retention(k)["until"] for k in earlier} == {datetime(2050, 1, 1, tzinfo=vn)}
    assert cli("ingest", "--dossier", code, "--title", "Bổ sung", "--maintenance", "04", "--start-date",
               "2019-03-01", "--end-date", "2021-05-04", "--change-recorded", "--unsigned", second)[0] == 0
    assert replication.replicate(primary, s3_store, [code]).ok
    assert {k: s3_store.retention(k)["until"] for k in earlier} == {k: datetime(2052, 1, 1, tzinfo=vn) for k in earlier}
