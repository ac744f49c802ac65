"""The issue's acceptance path: `sohoa ingest` with SOHOA_STORAGE=s3 on a real RGW and the
index on PostgreSQL, then search, a server-refused delete, and reindex on an empty database."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from api.cli import main as sohoa
from pipeline import config, service
from pipeline.service import open_store
from storage import db, index
from storage.base import sha256
from storage.errors import RetentionError
from storage.retention import LATEST_RETAIN_UNTIL
from tests.conftest import save_page

CODE = "H23.50-261201-0007"


# s3_env comes after home, which clears SOHOA_STORAGE: fixtures are set up in argument order;
# pg_engine empties the shared test database's index, which other tests fill.
def test_ingest_to_s3_search_and_reindex(cli, home, rendered, s3_env, pg_url, pg_engine, monkeypatch, tmp_path,
                                        capsys):
    monkeypatch.setenv("SOHOA_DATABASE_URL", pg_url)
    page = rendered("admin-clean", layout="admin", degradation=0, seed=1)
    scan = save_page(page, tmp_path / "trang 1.png")

    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Giấy xác nhận", "--maintenance", "01", scan)
    assert code == 0, err

    settings = config.load()
    store = open_store(settings)
    assert store.name == "s3"
    assert store.client.get_bucket_versioning(store.bucket).status == "Enabled"
    stored = store.list(f"dossiers/{CODE}/")
    assert stored and all(k.startswith(f"dossiers/{CODE}/") for k in stored)
    for key in stored:
        data = store.get(key)
        head = store.client.stat_object(store.bucket, key)
        assert head.metadata["x-amz-meta-sha256"] == sha256(data), key
        assert store.tags(key)["dossier"] == CODE

    original = next(k for k in stored if "/originals/" in k)
    pdf = next(k for k in stored if k.endswith(".pdf"))
    history = f"dossiers/{CODE}/manifests/000001.json"
    for retained in (original, pdf, history):  # a permanent dossier's: its history too (the ops review)
        assert store.retention(retained) == {"mode": "GOVERNANCE", "until": LATEST_RETAIN_UNTIL}, retained
        with pytest.raises(RetentionError):
            store.delete(retained)
        assert store.exists(retained)

    query = ["search", "quyen cong dan", "--limit", "5"]
    assert sohoa(query, settings=settings) == 0
    found = capsys.readouterr().out
    assert f"{CODE}.001, trang 1" in found

    with db.engine_for(settings.db_url).begin() as conn:
        for table in (index.pages, index.events, index.documents, index.dossiers):
            conn.execute(table.delete())
    assert sohoa(query, settings=settings) == 0
    assert "Không tìm thấy" in capsys.readouterr().out

    assert sohoa(["reindex"], settings=settings) == 0
    capsys.readouterr()
    assert sohoa(query, settings=settings) == 0
    assert capsys.readouterr().out == found


def test_link_gives_a_short_lived_download_of_the_stored_bytes(cli, home, rendered, s3_env, tmp_path):
    import urllib.error
    import urllib.request

    scan = save_page(rendered("link", layout="text", seed=91, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", "H23.50-261201-0008", "--title", "Đơn", scan)[0] == 0
    code, _, err = cli("link", "H23.50-261201-0008", "--expires", "999999")  # a usage error, not a setting's (10)
    assert code == 2 and "từ 1 đến 604.800 giây" in err, err
    code, out, err = cli("link", "H23.50-261201-0008", "--expires", "60")
    assert code == 0, err
    doc_id, url = out.strip().split("\t")
    assert doc_id == "H23.50-261201-0008.001" and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        downloaded = response.read()
    store = open_store(config.load())
    assert downloaded == store.get(f"dossiers/H23.50-261201-0008/documents/{doc_id}.pdf")
    with pytest.raises(urllib.error.HTTPError) as refused:  # private bucket: no signature, no bytes
        urllib.request.urlopen(url.split("?")[0], timeout=30)
    assert refused.value.code == 403
    refused.value.close()


def test_link_is_refused_on_the_local_store(cli, home, rendered, tmp_path):
    scan = save_page(rendered("link-local", layout="text", seed=92, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", "H23.50-261201-0008", "--title", "Đơn", scan)[0] == 0
    code, _, err = cli("link", "H23.50-261201-0008")
    assert code != 0 and "sohoa export" in err


def test_a_backlog_dossiers_objects_are_locked_until_the_day_it_is_due(cli, home, rendered, s3_env, tmp_path):
    """A paper file that closed in 2019, digitised now with a 30-year maintenance code: due on
    1 January 2050, which the retention report says; its scans, PDF and manifest history were locked
    until thirty years from the day they were stored, and its disposal refused until then."""
    scan = save_page(rendered("admin-clean", layout="admin", degradation=0, seed=2), tmp_path / "trang 1.png")
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Hồ sơ cũ", "--maintenance", "04",
                         "--start-date", "2019-03-01", "--end-date", "2019-11-20", scan)
    assert code == 0, err
    settings = config.load()
    store = open_store(settings)
    [row] = [r for r in service.retention_report(settings) if r.code == CODE]
    assert row.due == date(2050, 1, 1)
    due = datetime(2050, 1, 1, tzinfo=timezone(timedelta(hours=7)))
    retained = [k for k in store.list(f"dossiers/{CODE}/") if "/originals/" in k or k.endswith(".pdf")
                or "/manifests/" in k]
    assert len(retained) >= 3
    for key in retained:
        assert store.retention(key)["until"] == due, key


def test_a_document_that_moves_the_due_date_later_extends_the_locks_of_those_before(cli, home, rendered, s3_env,
                                                                                    tmp_path):
    """The paper file's dates corrected to end two years later (or a document added in a later
    year, or a longer maintenance code): the dossier is due two years later, and the scans and
    history stored before were locked only until the old date."""
    first = save_page(rendered("lock-1", layout="admin", degradation=0, seed=3), tmp_path / "trang 1.png")
    second = save_page(rendered("lock-2", layout="admin", degradation=0, seed=4), tmp_path / "trang 2.png")
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Hồ sơ cũ", "--maintenance", "04",
                       "--start-date", "2019-03-01", "--end-date", "2019-11-20", first)
    assert code == 0, err
    store = open_store(config.load())
    earlier = [k for k in store.list(f"dossiers/{CODE}/") if "/originals/" in k or k.endswith(".pdf")
               or "/manifests/" in k]
    vn = timezone(timedelta(hours=7))
    assert {store.retention(k)["until"] for k in earlier} == {datetime(2050, 1, 1, tzinfo=vn)}
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Bổ sung", "--maintenance", "04",
                       "--start-date", "2019-03-01", "--end-date", "2021-05-04", "--change-recorded", second)
    assert code == 0, err
    [row] = [r for r in service.retention_report(config.load()) if r.code == CODE]
    assert row.due == date(2052, 1, 1)
    every = [k for k in store.list(f"dossiers/{CODE}/") if "/originals/" in k or k.endswith(".pdf")
             or "/manifests/" in k]
    assert set(earlier) < set(every)
    assert {k: store.retention(k)["until"] for k in every} == {k: datetime(2052, 1, 1, tzinfo=vn) for k in every}


def test_relock_extends_locks_written_before_due_dates_to_the_due_day_on_both_copies(cli, home, rendered, s3_env,
                                                                                     tmp_path, monkeypatch):
    """Before 0.3.1 an object was locked for its period from the day it was stored: a paper file
    closed in 2019 and digitised today with a 30-year code was locked about thirty years from
    today, and one closed this year until this date thirty years on, up to a year short of the due
    day. `sohoa retention relock --all`, run once after the upgrade, locks every object of every
    dossier until its due day, in the primary and in the replica; a second run changes nothing."""
    from pipeline import manifest as mf
    from pipeline import replication
    from tests.services import new_bucket_name

    monkeypatch.setenv("SOHOA_REPLICA_S3_ENDPOINT", f"http://{s3_env['endpoint']}")
    monkeypatch.setenv("SOHOA_REPLICA_S3_ACCESS_KEY", s3_env["access_key"])
    monkeypatch.setenv("SOHOA_REPLICA_S3_SECRET_KEY", s3_env["secret_key"])
    monkeypatch.setenv("SOHOA_REPLICA_S3_BUCKET", new_bucket_name())
    year = service.now_vn().year
    with monkeypatch.context() as old:  # what 0.3.0 wrote: no closing day in the objects' metadata
        old.setattr(mf, "lock_metadata", lambda manifest, now=None: {"maintenance": manifest.get("maintenance"),
                                                                     "closed": None})
        scan = save_page(rendered("relock", layout="admin", degradation=0, seed=5), tmp_path / "trang 1.png")
        code, _, err = cli("ingest", "--dossier", CODE, "--title", "Hồ sơ", "--maintenance", "04",
                           "--start-date", f"{year}-01-01", "--end-date", f"{year}-01-01", scan)
        assert code == 0, err
        assert cli("replicate")[0] == 0
    settings = config.load()
    store, replica = open_store(settings), replication.open_replica(settings)
    locked = [k for k in store.list(f"dossiers/{CODE}/") if "/originals/" in k or k.endswith(".pdf")
              or "/manifests/" in k]
    assert len(locked) >= 3
    due = datetime(year + 31, 1, 1, tzinfo=timezone(timedelta(hours=7)))  # 30 years from 1 January after it closed
    [row] = [r for r in service.retention_report(settings) if r.code == CODE]
    assert row.due == due.date()
    assert all(datetime(year + 29, 12, 1, tzinfo=timezone.utc) < store.retention(k)["until"] < due for k in locked)
    code, out, err = cli("retention", "relock", "--all")
    assert code == 0, err
    assert f"1 hồ sơ: mọi đối tượng được khóa đến hạn hủy; đã kéo dài khóa {len(locked)} phiên bản đối tượng ở kho chính" in out
    assert {k: store.retention(k)["until"] for k in locked} == {k: due for k in locked}
    # the replica's COMPLIANCE-style copies are locked in whole days: to the due day's end at most
    assert all(due <= replica.retention(k)["until"] < due + timedelta(days=1) for k in locked)
    code, out, err = cli("retention", "relock", CODE)
    assert code == 0 and "0 phiên bản đối tượng ở kho chính, 0 ở bản sao" in out, err
