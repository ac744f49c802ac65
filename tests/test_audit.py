"""Every creation, access and failure is logged in the shared database, and the log shows when
an event was altered or removed, even by someone allowed to bypass its append-only guard."""
import json
import threading

import pytest
import sqlalchemy as sa

from pipeline import audit
from storage import journal
from tests.conftest import save_page


def test_audit_log_records_ingest_access_and_failure_and_detects_tampering(cli, home, rendered, tmp_path):
    page = save_page(rendered("audit", layout="text", seed=81, dpi=200), tmp_path / "a.png")
    code = "H23.50-261201-0003"
    assert cli("ingest", "--dossier", code, "--title", "Đơn", page)[0] == 0
    assert cli("show", code)[0] == 0
    assert cli("ingest", "--dossier", code, "--title", "Đơn", tmp_path / "missing.png")[0] != 0

    rc, out, err = cli("audit", "--last", "10")
    assert rc == 0 and "nguyên vẹn" in err
    assert "ingest" in out and "THẤT BẠI" in out and "missing.png" in out  # one line a person can read per event
    rc, out, _ = cli("audit", "--last", "10", "--json")
    report = json.loads(out)
    assert rc == 0 and report["intact"] is True
    events = report["events"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("job", "queued"), ("ingest", "success"), ("show", "success"), ("ingest", "failure")]
    assert events[1]["dossier"] == code and events[3]["file"].endswith("missing.png")

    engine = sa.create_engine(f"sqlite:///{home / 'index.sqlite3'}")
    with engine.begin() as conn:  # the guard refuses an edit made through the database
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            conn.execute(sa.text("UPDATE access_log SET action = 'export' WHERE action = 'show'"))
    with engine.begin() as conn:  # an administrator who drops the guard still leaves a trace
        conn.execute(sa.text("DROP TRIGGER access_log_no_update"))
        conn.execute(sa.text("UPDATE access_log SET action = 'export' WHERE action = 'show'"))
    rc, _, err = cli("audit")
    assert rc != 0 and "đứt tại dòng 3" in err


def test_a_removed_event_breaks_the_chain(cli, home, rendered, tmp_path):
    page = save_page(rendered("audit2", layout="text", seed=82, dpi=200), tmp_path / "a.png")
    code = "H23.50-261201-0004"
    assert cli("ingest", "--dossier", code, "--title", "Đơn", page)[0] == 0
    assert cli("show", code)[0] == 0
    assert cli("show", code)[0] == 0
    engine = sa.create_engine(f"sqlite:///{home / 'index.sqlite3'}")
    with engine.begin() as conn:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            conn.execute(sa.text("DELETE FROM access_log WHERE action = 'show'"))
        conn.execute(sa.text("DROP TRIGGER access_log_no_delete"))
    with engine.begin() as conn:
        first_show = conn.execute(sa.text("SELECT min(id) FROM access_log WHERE action = 'show'")).scalar()
        conn.execute(sa.text("DELETE FROM access_log WHERE id = :id"), {"id": first_show})
    rc, _, err = cli("audit")
    assert rc != 0 and "đứt tại dòng 3" in err  # the event after the removed one no longer links


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_writers_in_parallel_never_fork_the_chain(backend, request):
    """Workers on many machines append at once: every event is kept, the chain stays one line."""
    engine = request.getfixturevalue(f"{'sqlite' if backend == 'sqlite' else 'pg'}_engine")
    before = journal.verify(engine)[1]

    def writer(n):
        for i in range(15):
            audit.record(engine, "show", dossier=f"H23.50-261201-{n:04d}", i=i, actor=f"worker-{n}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intact, count, broken = journal.verify(engine)
    assert (intact, count, broken) == (True, before + 60, None)
    assert sorted((e["actor"], e["i"]) for e in journal.tail(engine, 60)) == sorted(
        (f"worker-{n}", i) for n in range(4) for i in range(15))
