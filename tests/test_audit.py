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
    # the chain alone cannot see rows cut from its end: it is not called intact, the anchors' check is named
    assert rc == 0 and "Chuỗi băm liền mạch qua" in err and "sohoa audit verify" in err and "nguyên vẹn" not in err
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
    """Workers on many machines append at once: every event is kept, the chain stays one line.
    Two engines on the same database stand for two machines; the threads of each share their
    engine's transactions (group commit), the two engines contend for the same last row."""
    engine = request.getfixturevalue(f"{'sqlite' if backend == 'sqlite' else 'pg'}_engine")
    other = sa.create_engine(engine.url)  # another process's pool and appender
    before = journal.verify(engine)[1]
    stored = {}

    def writer(n):
        for i in range(15):
            event = audit.record(engine if n % 2 else other, "show", dossier=f"H23.50-261201-{n:04d}", i=i,
                                 actor=f"worker-{n}")
            stored[(n, i)] = event["sha256"]

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    intact, count, broken = journal.verify(engine)
    assert (intact, count, broken) == (True, before + 90, None)
    events = journal.tail(engine, 90)
    assert sorted((e["actor"], e["i"]) for e in events) == sorted(
        (f"worker-{n}", i) for n in range(6) for i in range(15))
    assert {(int(e["actor"][7:]), e["i"]): e["sha256"] for e in events} == stored  # each caller got its own row


def test_an_event_the_database_refuses_fails_alone_among_events_appended_with_it(pg_engine):
    """Events appended at the same moment share a transaction; one the database refuses (an
    action name longer than its column) fails its own caller only, the others are kept."""
    before = journal.verify(pg_engine)[1]
    errors, kept = [], []
    start = threading.Barrier(9)

    def writer(n):
        start.wait()
        try:
            kept.append(audit.record(pg_engine, "x" * 100 if n == 4 else "show", actor=f"writer-{n}", n=n))
        except sa.exc.DBAPIError as error:
            errors.append((n, error))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [n for n, _ in errors] == [4] and "too long" in str(errors[0][1])
    assert sorted(e["n"] for e in kept) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert journal.verify(pg_engine) == (True, before + 8, None)
