"""Retention and disposal (issue 15): when each dossier is due, legal holds that stop any
deletion, and disposal approved by an archivist that removes the documents where the lock
allows and keeps a record with no content. Real local store, real index, real accounts."""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api.cli import main as sohoa
from pipeline import config, disposal, service
from pipeline.errors import Conflict, NotFound, UsageError
from pipeline.models import IngestRequest
from pipeline.runtime import database
from storage import jobs as job_table, keys
from storage.errors import RetentionError
from storage.local import LocalStore
from tests.conftest import save_page

VN = ZoneInfo("Asia/Ho_Chi_Minh")

TEN_YEARS, PERMANENT = "H23.50-261201-0401", "H23.50-261201-0402"
PASSWORD = "mat-khau-dai-du"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, rendered):
    home = tmp_path_factory.mktemp("disposal") / "home"
    settings = config.load({"SOHOA_HOME": str(home), "SOHOA_OCR_ENGINE": "tesseract"})
    for n, (code, maintenance) in enumerate(((TEN_YEARS, "06"), (PERMANENT, "01"))):
        page = save_page(rendered(f"dispose{n}", layout="text", seed=700 + n, dpi=150), home.parent / f"d{n}.png")
        assert sohoa(["ingest", "--dossier", code, "--title", "Hồ sơ cấp phép", "--maintenance", maintenance,
                      str(page)], settings=settings) == 0
    return home


@pytest.fixture
def world(ingested, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(ingested, home)
    settings = config.load({"SOHOA_HOME": str(home)})
    tokens = {}
    for name, role, agencies in (("luu", "archivist", ("H23.50",)), ("luu-khac", "archivist", ("H99",)),
                                 ("tiep", "operator", ("H23.50",))):
        service.add_user(settings, name, role, agencies, PASSWORD)
        tokens[name] = tmp_path / f"{name}.token"
        tokens[name].write_text(service.create_token(settings, name)[1] + "\n", encoding="utf-8")
    return settings, LocalStore(home / "store"), tokens


def test_the_report_says_when_each_dossier_is_due_from_its_maintenance_code(world, cli, capsys):
    settings, store, _ = world
    closed = date.fromisoformat(json.loads(store.get(keys.manifest(TEN_YEARS)))["endDate"])
    rows = {r.code: r for r in service.retention_report(settings)}
    assert rows[TEN_YEARS].due == date(closed.year + 11, 1, 1) and rows[TEN_YEARS].status == "not-due"
    assert rows[PERMANENT].due is None and rows[PERMANENT].status == "permanent"
    later = {r.code: r.status for r in service.retention_report(settings, date(closed.year + 11, 1, 1))}
    assert later == {TEN_YEARS: "due", PERMANENT: "permanent"}
    assert sohoa(["retention", "report", "--due", "--as-of", f"{closed.year + 11}-01-02"], settings=settings) == 0
    out = capsys.readouterr().out
    assert TEN_YEARS in out and "ĐẾN HẠN HỦY" in out and PERMANENT not in out
    # a date as sohoa prints it is taken too, and a wrong one is said in Vietnamese (it was refused,
    # and "invalid fromisoformat value"; archive review)
    assert sohoa(["retention", "report", "--due", "--as-of", f"02/01/{closed.year + 11}"], settings=settings) == 0
    assert TEN_YEARS in capsys.readouterr().out
    assert sohoa(["retention", "report", "--as-of", "2040-13-01"], settings=settings) == 2
    assert "ngày không hợp lệ: '2040-13-01'" in capsys.readouterr().err


def test_one_damaged_manifest_is_listed_and_the_other_dossiers_still_reported_and_packaged(world, tmp_path, capsys):
    """One manifest that does not parse stopped `retention report` and `package --bulk` whole
    (exit 6, nothing listed or packaged; found by the archive review). It is listed as damaged,
    its packaging fails naming it, and the other dossiers are reported and packaged."""
    settings, store, _ = world
    damaged = settings.home / "store" / keys.manifest(PERMANENT)
    damaged.chmod(0o644)
    damaged.write_bytes(b'{"schema": "sohoa.manifest/1", "broken')
    assert {r.code: r.status for r in service.retention_report(settings)} == {TEN_YEARS: "not-due",
                                                                              PERMANENT: "damaged"}
    assert sohoa(["retention", "report", "--due"], settings=settings) == 0  # its date unknown: shown as due too
    out = capsys.readouterr().out
    assert f"{PERMANENT}" in out and "MANIFEST HỎNG" in out and TEN_YEARS not in out, out
    # a damaged legal-hold record did the same (review of the fix)
    store.put(keys.dossier_prefix(TEN_YEARS) + disposal.HOLD, b'{"active": tr', "application/json")
    assert {r.code: r.status for r in service.retention_report(settings)} == {TEN_YEARS: "damaged",
                                                                              PERMANENT: "damaged"}
    store.delete(keys.dossier_prefix(TEN_YEARS) + disposal.HOLD)
    packaged = service.package_bulk(settings, date(2100, 1, 1), tmp_path / "sip")
    assert packaged[TEN_YEARS]["outcome"] == "packaged"
    assert packaged[PERMANENT]["outcome"] == "failed" and "bị hỏng" in packaged[PERMANENT]["error"]
    reindexed = service.reindex(settings)
    assert [(e["dossierCode"], e["error"].split(" (")[0]) for e in reindexed.errors] == [
        (PERMANENT, "manifest hỏng, không đọc được")]


def test_disposal_needs_a_due_dossier_an_archivist_of_its_agency_and_no_legal_hold(world, capsys):
    settings, store, tokens = world
    before = store.list(keys.dossier_prefix(TEN_YEARS))
    refusals = [("tiep", UsageError, "cán bộ lưu trữ"), ("luu-khac", UsageError, "không phụ trách"),
                ("luu", Conflict, "chưa đến hạn hủy")]
    for who, error, says in refusals:
        with pytest.raises(error, match=says):
            service.dispose(settings, TEN_YEARS, "Quyết định hủy số 5/QĐ", tokens[who].read_text())
    with pytest.raises(UsageError, match="token"):
        service.dispose(settings, TEN_YEARS, "Quyết định hủy số 5/QĐ", "sohoa_khong_co_that")
    with pytest.raises(UsageError, match="lý do"):
        service.dispose(settings, TEN_YEARS, "ok", tokens["luu"].read_text())
    assert store.list(keys.dossier_prefix(TEN_YEARS)) == before, "a refused disposal touches nothing"

    # a legal hold: no deletion at all, by sohoa or by anyone going through the store
    assert sohoa(["hold", TEN_YEARS, "--reason", "Công văn 12/TA yêu cầu giữ hồ sơ"], settings=settings) == 0
    pdf = keys.document_pdf(TEN_YEARS, f"{TEN_YEARS}.001")
    with pytest.raises(RetentionError):
        store.delete(pdf)
    assert {r.code: r.status for r in service.retention_report(settings)}[TEN_YEARS] == "held"
    approver = {"name": "luu", "role": "archivist", "agencies": ("H23.50",)}
    with pytest.raises(Conflict, match="giữ theo yêu cầu pháp lý"):
        disposal.dispose(store, database(settings), TEN_YEARS, approver=approver, reason="Quyết định hủy số 5/QĐ",
                         default_days=3650, as_of=date(2100, 1, 1))
    assert sohoa(["hold", TEN_YEARS, "--release", "--reason", "Vụ việc đã kết thúc"], settings=settings) == 0
    assert not store.under_legal_hold(pdf)
    kinds = [e["detail"].split(" by ")[0] for e in service.dossier_events(settings, TEN_YEARS)
             if e["type"] == "policy assignment"]
    assert kinds == ["legal hold placed", "legal hold released"]


def test_a_missing_approver_token_file_is_a_usage_error(world, capsys):
    """It was "LỖI không mong đợi: FileNotFoundError" (exit 70; found by the archive review)."""
    settings, _, _ = world
    assert sohoa(["dispose", TEN_YEARS, "--reason", "Hết thời hạn bảo quản theo quyết định",
                  "--approver-token-file", "/khong/co/token"], settings=settings) == 2
    err = capsys.readouterr().err
    assert "tệp mã truy cập của người phê duyệt '/khong/co/token': không có tệp này" in err
    assert "không mong đợi" not in err


def test_a_due_dossier_is_disposed_where_the_lock_allows_and_a_record_without_content_stays(world, tmp_path):
    settings, store, _ = world
    (tmp_path / "usb").mkdir()
    settings = config.load({"SOHOA_HOME": str(settings.home), "SOHOA_REPLICA_DIR": str(tmp_path / "usb")})
    assert not service.replicate(settings).failed
    db = database(settings)
    approver = {"name": "luu", "role": "archivist", "agencies": ("H23.50",)}
    code, doc_id = TEN_YEARS, f"{TEN_YEARS}.001"
    manifest = json.loads(store.get(keys.manifest(code)))
    text = store.get(keys.document_text(code, doc_id)).decode()
    word = next(w for w in text.split() if len(w) > 4 and w.isalpha())
    assert {h.dossier_code for h in service.search(settings, word).hits} >= {code}
    sip = service.package(settings, code, tmp_path / "sip")  # handed to the archive before the disposal

    # the PDF is still under its store lock (as on S3, for an object stored before 0.3.1): nothing
    # goes, and the date is said. It went on to remove the rest, so the dossier left every view
    # while the citizen's scans and signed PDF stayed for years (the ops review)
    pdf = keys.document_pdf(code, doc_id)
    sidecar = settings.home / "store" / (pdf + ".meta.json")
    meta = json.loads(sidecar.read_text())
    until = datetime.now(timezone.utc) + timedelta(days=3)
    sidecar.write_text(json.dumps({**meta, "mode": "COMPLIANCE", "retain_until": until.isoformat()}))
    before = sorted(store.list(keys.dossier_prefix(code)))
    ends = until.astimezone(VN)  # the day after the lock's end is the day to run it again (not the day it ends)
    with pytest.raises(Conflict, match=f"kho còn khóa bất biến 1 tệp của nó đến {ends:%H:%M} ngày {ends:%d/%m/%Y}.*"
                                       f"chưa xóa gì. Chạy lại lệnh từ ngày {ends + timedelta(days=1):%d/%m/%Y}"):
        disposal.dispose(store, db, code, approver=approver, reason="Quyết định hủy số 5/QĐ ngày 2/1/2038",
                         default_days=3650, as_of=date(2038, 1, 2))
    assert sorted(store.list(keys.dossier_prefix(code))) == before
    assert code in {h.dossier_code for h in service.search(settings, word).hits}
    assert {r.code: r.status for r in service.retention_report(settings)}[code] != "disposing"
    sidecar.write_text(json.dumps(meta))  # the lock has run out

    # the second copy's lock counts too: a replica locked till later left the primary emptied, the
    # replica's copies kept, and the command failing half done (the archive-lock review)
    replica = LocalStore(tmp_path / "usb")
    copy = tmp_path / "usb" / (pdf + ".meta.json")
    copied = json.loads(copy.read_text())
    copy.write_text(json.dumps({**copied, "mode": "COMPLIANCE", "retain_until": until.isoformat()}))
    with pytest.raises(Conflict, match="bản sao thứ hai còn khóa bất biến 1 tệp.*chưa xóa gì"):
        disposal.dispose(store, db, code, approver=approver, reason="Quyết định hủy số 5/QĐ ngày 2/1/2038",
                         default_days=3650, as_of=date(2038, 1, 2), copies=(replica,))
    assert sorted(store.list(keys.dossier_prefix(code))) == before
    copy.write_text(json.dumps(copied))
    record = disposal.dispose(store, db, code, approver=approver, reason="Quyết định hủy số 5/QĐ ngày 2/1/2038",
                              default_days=3650, as_of=date(2038, 1, 2))
    assert record["complete"] and record["kept"] == [] and "already" not in record
    # asked again: said to be done before, not a second disposal (archive review)
    again = disposal.dispose(store, db, code, approver=approver, reason="Quyết định hủy số 5/QĐ ngày 2/1/2038",
                             default_days=3650, as_of=date(2038, 1, 2))
    assert again["already"] is True and again["disposedAt"] == record["disposedAt"]
    left = store.list(keys.dossier_prefix(code))
    assert not [k for k in left if "/originals/" in k or "/documents/" in k or "/text/" in k or "/manifest" in k]
    assert keys.dossier_prefix(code) + "disposal.json" in left
    stored = json.loads(store.get(keys.dossier_prefix(code) + "disposal.json"))
    assert stored["approval"]["by"] == "luu" and stored["approval"]["reason"].startswith("Quyết định hủy")
    assert [d["docId"] for d in stored["documents"]] == [doc_id] and stored["maintenance"] == "06"
    assert {o["key"] for o in stored["removed"]} >= {o["key"] for o in manifest["documents"][0]["originals"]} | {pdf}
    assert word not in json.dumps(stored, ensure_ascii=False), "the record keeps no content"
    with pytest.raises(RetentionError):
        store.put(keys.dossier_prefix(code) + "disposal.json", b"{}")  # write-once
    assert {r.code: r.status for r in service.retention_report(settings)}[code] == "disposed"
    service.disposed_on_replica(settings, code, record)  # as service.dispose does after disposing
    replica = LocalStore(tmp_path / "usb")
    assert sorted(replica.list(keys.dossier_prefix(code))) == sorted(store.list(keys.dossier_prefix(code)))
    deletion = [e for e in service.dossier_events(settings, code) if e["type"] == "deletion"]
    assert [e["outcome"] for e in deletion] == ["success"]
    # what it was is said: "not found" alone read as if the dossier never existed (archive review)
    with pytest.raises(NotFound, match=f"Không tìm thấy hồ sơ {code}: đã bị hủy ngày .* \\(phê duyệt: luu, "
                                       f"Quyết định hủy số 5/QĐ ngày 2/1/2038\\); còn biên bản hủy"):
        service.show(settings, code)
    # its package, imported again, brought the disposed dossier back whole (documents, search)
    with pytest.raises(Conflict, match=f"Hồ sơ {code} đã bị hủy \\(phê duyệt: luu"):
        service.import_package(settings, sip)
    assert not [k for k in store.list(keys.dossier_prefix(code)) if "/documents/" in k or k.endswith("manifest.json")]
    # the other dossier is untouched and still verifies
    assert not service.verify(settings, [PERMANENT]).failed
    assert service.verify(settings, all_dossiers=True).results.keys() == {PERMANENT}
    # a citizen's file that a failed job of the dossier still held is not hidden by the disposal:
    # the check reports it extra (it is personal data the disposal left)
    left_behind = keys.original(code, "1" * 64, "png")
    store.put(left_behind, b"a page of a failed job", "image/png")
    job_table.create(db, "f" * 32, kind="ingest", dossier=code, title="Đơn", request={"originals": [
        {"key": left_behind}]}, input_sha256="2" * 64, pages=1, now="2038-01-01T00:00:00+07:00")
    job_table.set_state(db, "f" * 32, "failed", now="2038-01-01T00:00:01+07:00")
    found = service.verify(settings, all_dossiers=True, signatures=False).objects
    assert [(p["key"], p["outcome"]) for p in found["problems"]] == [(left_behind, "extra")]


def test_a_legal_hold_on_s3_is_the_servers_own_and_refuses_deletion_until_released(s3_store):
    key = keys.document_pdf("H23.50-261201-0499", "H23.50-261201-0499.001")
    s3_store.put(key, b"%PDF-1.7 giu", "application/pdf")
    s3_store.put(key, b"%PDF-1.7 giu v2", "application/pdf")  # two versions: both are held
    s3_store.legal_hold(key, True)
    assert s3_store.under_legal_hold(key)
    with pytest.raises(RetentionError):
        s3_store.delete(key)
    assert s3_store.get(key) == b"%PDF-1.7 giu v2"
    s3_store.legal_hold(key, False)
    assert not s3_store.under_legal_hold(key)


def test_disposal_waits_for_running_jobs_removes_failed_jobs_files_and_the_code_takes_no_new_document(
        world, rendered, tmp_path):
    """A disposal left a failed job's files behind (personal data no check accounted for), could
    run under a job still converting, and the disposed code took new documents again, its
    record saying it was destroyed."""
    settings, store, tokens = world
    code = TEN_YEARS
    db = database(settings)
    approver = {"name": "luu", "role": "archivist", "agencies": ("H23.50",)}
    reason, as_of = "Quyết định hủy số 5/QĐ ngày 2/1/2038", date(2038, 1, 2)
    # a real failed job: its page read, its signature's timestamp authority not answering
    page = save_page(rendered("dispose-failed", layout="text", seed=710, dpi=150), tmp_path / "don.png")
    broken = config.load({"SOHOA_HOME": str(settings.home), "SOHOA_OCR_ENGINE": "tesseract",
                          "SOHOA_SIGN_LEVEL": "B-T", "SOHOA_TSA_URL": "http://127.0.0.1:9/tsa"})
    with pytest.raises(Exception, match="Ký số thất bại"):
        service.ingest(broken, IngestRequest(code, (str(page),), "Đơn bổ sung"))
    failed = job_table.find(db, dossier=code, states=("failed",))
    assert len(failed) == 1
    failed_original = failed[0]["request"]["originals"][0]["key"]
    # a job waiting for a worker: the disposal waits for it
    waiting = "e" * 32
    job_table.create(db, waiting, kind="ingest", dossier=code, title="Đơn", request={"originals": []},
                     input_sha256="3" * 64, pages=1, now="2038-01-01T00:00:00+07:00")
    before = store.list(keys.dossier_prefix(code))
    with pytest.raises(Conflict, match="còn 1 lượt xử lý đang chạy"):
        disposal.dispose(store, db, code, approver=approver, reason=reason, default_days=3650, as_of=as_of)
    assert store.list(keys.dossier_prefix(code)) == before
    assert job_table.get(db, failed[0]["id"])["state"] == "failed", "a refused disposal gives up no job"
    job_table.set_state(db, waiting, "done", now="2038-01-01T00:00:01+07:00")

    record = disposal.dispose(store, db, code, approver=approver, reason=reason, default_days=3650, as_of=as_of)
    assert record["complete"]
    assert {o["key"]: o.get("job") for o in record["removed"]}[failed_original] == failed[0]["id"]
    assert not store.exists(failed_original)
    assert job_table.get(db, failed[0]["id"])["state"] == "discarded"
    with pytest.raises(Conflict, match=f"Hồ sơ {code} đã bị hủy"):
        service.retry(settings, failed[0]["id"])
    found = service.verify(settings, all_dossiers=True, signatures=False).objects
    assert found["problems"] == [], "nothing of the dossier left unaccounted for"
    (rolling,) = service.fixity(_whole_cycle(settings))  # the beat task's check: the given-up job holds nothing
    assert rolling.problems == () and rolling.held == 0, rolling.problems

    # the disposed code takes nothing more, at the command line or at the counter
    left = store.list(keys.dossier_prefix(code))
    with pytest.raises(Conflict, match=f"Hồ sơ {code} đã bị hủy"):
        service.ingest(broken, IngestRequest(code, (str(page),), "Đơn nộp lại"))
    with pytest.raises(Conflict, match="đã bị hủy"):
        service.intake_create(settings, code, service.by_token(settings, tokens["tiep"].read_text().strip(), None))
    assert store.list(keys.dossier_prefix(code)) == left


def _whole_cycle(settings):
    """The settings with rolling fixity reading the whole store in one slice."""
    return config.load({"SOHOA_HOME": str(settings.home), "SOHOA_FIXITY_DAYS": "1",
                        "SOHOA_FIXITY_INTERVAL": str(7 * 24 * 3600)})


def _failed_job(settings, code: str, rendered, tmp_path, seed: int) -> dict:
    """A real job of ``code`` failed after its page was read: its signature's timestamp
    authority does not answer."""
    page = save_page(rendered(f"dispose-failed-{seed}", layout="text", seed=seed, dpi=150), tmp_path / f"{seed}.png")
    broken = config.load({"SOHOA_HOME": str(settings.home), "SOHOA_OCR_ENGINE": "tesseract",
                          "SOHOA_SIGN_LEVEL": "B-T", "SOHOA_TSA_URL": "http://127.0.0.1:9/tsa"})
    with pytest.raises(Exception, match="Ký số thất bại"):
        service.ingest(broken, IngestRequest(code, (str(page),), "Đơn bổ sung"))
    (job,) = job_table.find(database(settings), dossier=code, states=("failed",))
    return job


def test_a_disposal_cut_short_closes_its_code_to_uploads_and_retries_until_it_is_finished(
        world, rendered, tmp_path, monkeypatch):
    """The manifest goes last: a disposal stopped before it (here the store's lock on it, placed
    after the disposal checked the locks) left a dossier that still took uploads, whose originals
    the disposal then left behind."""
    settings, store, tokens = world
    monkeypatch.setattr(disposal, "_refuse_if_locked", lambda *args: None)  # the lock comes after the check
    code, db = TEN_YEARS, database(settings)
    job = _failed_job(settings, code, rendered, tmp_path, 720)
    sidecar = settings.home / "store" / (keys.manifest(code) + ".meta.json")
    meta = json.loads(sidecar.read_text())
    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    sidecar.write_text(json.dumps({**meta, "mode": "COMPLIANCE", "retain_until": until}))
    approver = {"name": "luu", "role": "archivist", "agencies": ("H23.50",)}
    reason, as_of = "Quyết định hủy số 5/QĐ ngày 2/1/2038", date(2038, 1, 2)
    first = disposal.dispose(store, db, code, approver=approver, reason=reason, default_days=3650, as_of=as_of)
    assert not first["complete"] and [k["key"] for k in first["kept"]] == [keys.manifest(code)]
    assert store.exists(keys.manifest(code))
    left = store.list(keys.dossier_prefix(code))
    page = save_page(rendered("dispose-late", layout="text", seed=721, dpi=150), tmp_path / "late.png")
    with pytest.raises(Conflict, match=f"Hồ sơ {code} đang được hủy"):
        service.ingest(config.load({"SOHOA_HOME": str(settings.home), "SOHOA_OCR_ENGINE": "tesseract"}),
                       IngestRequest(code, (str(page),), "Đơn nộp muộn"))
    with pytest.raises(Conflict, match="đang được hủy"):
        service.retry(settings, job["id"])
    assert store.list(keys.dossier_prefix(code)) == left, "nothing stored for a dossier being disposed of"
    assert job_table.get(db, job["id"])["state"] == "discarded"

    sidecar.write_text(json.dumps(meta))  # the lock has run out
    record = disposal.dispose(store, db, code, approver=approver, reason=reason, default_days=3650, as_of=as_of)
    assert record["complete"]
    assert service.verify(settings, all_dossiers=True, signatures=False).objects["problems"] == []
    assert service.fixity(_whole_cycle(settings))[0].problems == ()


def test_a_discard_racing_a_finishing_task_or_a_retry_leaves_one_of_them_whole(world, rendered, tmp_path, monkeypatch):
    """An operator's discard landing while a redelivered finishing task committed, or between a
    retry's check and its update, was overwritten: the job ended done or queued, the access log
    saying it was given up. The first to move the job wins; the other is refused."""
    from pipeline import ingest, jobs

    settings, store, _ = world
    db = database(settings)
    reason = "Quét nhầm giấy tờ của hồ sơ khác"
    job = _failed_job(settings, TEN_YEARS, rendered, tmp_path, 740)
    commit = ingest.finish

    def discarded_meanwhile(*args, **kw):
        with pytest.raises(Conflict, match="đang xử lý; chỉ bỏ được lượt xử lý bị lỗi"):
            jobs.discard(db, job["id"], reason)
        return commit(*args, **kw)

    ctx = service.ingest_context(settings, signer=service.signer_for(settings))
    with pytest.raises(Conflict, match="đã lỗi; chạy lại bằng"):  # sent again after the job failed
        jobs.finish(ctx, job["id"])
    assert job_table.get(db, job["id"])["state"] == "failed"
    # the retry's finishing task, and the discard meanwhile
    jobs.reopen(store, db, job["id"], time_limits=(600, 1800), workers=False)
    monkeypatch.setattr(ingest, "finish", discarded_meanwhile)
    jobs.finish(ctx, job["id"])
    assert job_table.get(db, job["id"])["state"] == "done"
    monkeypatch.undo()

    other = _failed_job(settings, TEN_YEARS, rendered, tmp_path, 741)
    requeue = job_table.reopen

    def discarded_first(engine, job_id, **kw):
        jobs.discard(db, job_id, reason)
        return requeue(engine, job_id, **kw)

    monkeypatch.setattr(job_table, "reopen", discarded_first)
    with pytest.raises(Conflict, match="đã bị bỏ"):
        service.retry(settings, other["id"])
    assert job_table.get(db, other["id"])["state"] == "discarded"


def test_a_paper_file_closed_years_ago_is_due_from_its_own_last_date_not_from_its_digitisation(
        tmp_path, rendered, capsys):
    """A backlog's paper file of 2019, digitised in 2026: its retention counts from the year after
    it closed (31/12/2019 -> 2030 for 10 years), not from 2026, and later documents of the
    dossier do not move its dates. Before, every dossier closed on the day it was digitised."""
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_OCR_ENGINE": "tesseract"})
    code = "H15.50.05.13-2019-0123"
    pages = [save_page(rendered(f"paper{n}", layout="text", seed=710 + n, dpi=150), tmp_path / f"p{n}.png")
             for n in range(3)]
    assert sohoa(["ingest", "--dossier", code, "--title", "Đơn", "--maintenance", "06", "--start-date", "03/02/2019",
                  "--end-date", "2019-12-31", str(pages[0])], settings=settings) == 0
    assert sohoa(["ingest", "--dossier", code, "--title", "Biên bản", str(pages[1])], settings=settings) == 0
    manifest = json.loads(LocalStore(settings.home / "store").get(keys.manifest(code)))
    assert (manifest["startDate"], manifest["endDate"], manifest["datesFrom"]) == ("2019-02-03", "2019-12-31", "paper")
    (row,) = service.retention_report(settings)
    assert (row.closed, row.due, row.status) == (date(2019, 12, 31), date(2030, 1, 1), "not-due")
    assert service.closed_dossiers(settings, date(2020, 1, 1)) == [code]  # `package --bulk --closed-before`
    capsys.readouterr()
    # what an archivist or officer reads of the dossier (before, nowhere but the retention report)
    assert sohoa(["show", code], settings=settings) == 0
    assert (f"Hồ sơ giấy {code}; thời hạn bảo quản 06 (10 năm); thời gian 03/02/2019 – 31/12/2019 (theo hồ sơ giấy)"
            in capsys.readouterr().out)
    from fastapi.testclient import TestClient

    from api.http import create_app
    from tests.test_review import login

    service.add_user(settings, "thu", "officer", ("H15",), PASSWORD)
    with TestClient(create_app(config.load({"SOHOA_HOME": str(settings.home), "SOHOA_COOKIE_SECURE": "false"}))) as web:
        login(web, "thu", PASSWORD)
        page = " ".join(web.get(f"/dossiers/{code}").text.split())
    assert "<dt>Thời hạn bảo quản</dt><dd>06 (10 năm)</dd>" in page
    assert "<dd>03/02/2019 – 31/12/2019 (theo hồ sơ giấy)</dd>" in page

    # a recorded date is not changed by accident; one side alone or a wrong date is said in Vietnamese
    assert sohoa(["ingest", "--dossier", code, "--title", "Tờ trình", "--start-date", "01/01/2018", "--end-date",
                  "31/12/2019", str(pages[2])], settings=settings) == 12
    assert "đã ghi thời gian của hồ sơ giấy 2019-02-03..2019-12-31" in capsys.readouterr().err
    for dates, says in (((), "Thiếu ngày bắt đầu"), (("--start-date", "01/01/2018"), "Thiếu ngày kết thúc"),
                        (("--start-date", "2019-02-30", "--end-date", "2019-12-31"), "không hợp lệ: '2019-02-30'"),
                        (("--start-date", "01/01/2020", "--end-date", "31/12/2019"), "kết thúc (31/12/2019) trước")):
        args = ["--end-date", "31/12/2019"] if not dates else list(dates)
        assert sohoa(["ingest", "--dossier", "H15.50.05.13-2019-0124", "--title", "Đơn", *args, str(pages[2])],
                     settings=settings) == 2, dates
        assert says in capsys.readouterr().err


def test_files_given_again_with_the_dossiers_dates_and_code_record_them(tmp_path, rendered, capsys):
    """A backlog's inventory run again to add the dates and the maintenance code: the files were
    found already stored and the fields dropped, silently (review of the change)."""
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_OCR_ENGINE": "tesseract"})
    code = "H15.50.05.13-2018-0042"
    page = save_page(rendered("again", layout="text", seed=720, dpi=150), tmp_path / "p.png")
    assert sohoa(["ingest", "--dossier", code, "--title", "Đơn", str(page)], settings=settings) == 0
    capsys.readouterr()
    assert sohoa(["ingest", "--dossier", code, "--title", "Đơn", "--maintenance", "05", "--start-date",
                  "02/01/2018", "--end-date", "28/12/2018", str(page)], settings=settings) == 0
    assert "đã có sẵn" in capsys.readouterr().out
    manifest = json.loads(LocalStore(settings.home / "store").get(keys.manifest(code)))
    assert (manifest["totalDoc"], manifest["maintenance"], manifest["endDate"], manifest["datesFrom"]) == (
        1, "05", "2018-12-28", "paper")
    assert manifest["events"][-1]["type"] == "change" and "maintenance" in manifest["events"][-1]["detail"]
    (row,) = service.retention_report(settings)
    assert row.due == date(2039, 1, 1)
