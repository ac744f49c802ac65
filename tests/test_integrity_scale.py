"""Periodic integrity at scale (issue 16, item 6): ``sohoa verify --all`` over a store of 10,000
documents reports exactly the objects changed, missing and extra; rolling fixity (the Celery beat
task) finds the same; listing reads by prefix (local folders, S3 prefix and delimiter on the real
RGW), never the whole store; reindexing streams in batches with bounded memory.

The stores are built by ``bench.integrity`` from a small template dossier (objects of a few
hundred bytes, manifests written by ``save_manifest``), copied under each code as hard links:
building 10,000 documents through ``put`` with fsync would take minutes on this machine."""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import tracemalloc
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path

import pytest

from bench import integrity as bench
from pipeline import config, disposal, fixity
from pipeline.repository import dossier_codes
from storage import keys
from storage.local import LocalStore
from tests.doc_tables import check_table

ROWS: dict[str, tuple[str, str, str]] = {}   # check -> (what was tried, outcome): the docs table
FIGURES: dict[str, float] = {}


def sohoa(settings, *args: str) -> tuple[int, str]:
    from api.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args), settings=settings)
    return code, out.getvalue()


def problems_of(found) -> dict[str, set[str]]:
    return {o: {p["key"] if isinstance(p, dict) else p.key for p in found
                if (p["outcome"] if isinstance(p, dict) else p.outcome) == o} for o in ("mismatch", "missing", "extra")}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return bench.small_template(tmp_path_factory.mktemp("template") / "store")


@pytest.fixture(scope="module")
def big(tmp_path_factory, template):
    """A local store of 1,000 dossiers x 10 documents (10,000 documents, 33,000 objects), then
    three objects changed, two removed and three added (one a folder with no manifest)."""
    home = tmp_path_factory.mktemp("big") / "sohoa-data"
    started = time.monotonic()
    codes = bench.build_store(LocalStore(home / "store"), *template, 1000, 10)
    FIGURES["build"] = time.monotonic() - started
    expected = bench.damage(home / "store", codes)
    return config.load({"SOHOA_HOME": str(home)}), codes, expected


@pytest.fixture(scope="module")
def small(tmp_path_factory, template):
    home = tmp_path_factory.mktemp("small") / "sohoa-data"
    codes = bench.build_store(LocalStore(home / "store"), *template, 20, 3)
    return config.load({"SOHOA_HOME": str(home)}), codes, bench.damage(home / "store", codes, 3)


def test_verify_all_over_10000_documents_reports_exactly_what_changed_went_missing_or_was_added(big):
    settings, codes, expected = big
    started = time.monotonic()
    code, out = sohoa(settings, "verify", "--all", "--fixity-only", "--json")
    FIGURES["verify"] = time.monotonic() - started
    assert code == 1, "problems found: a non-zero exit"
    found = json.loads(out)["objects"]
    assert (found["dossiers"], found["documents"]) == (1001, 10_000)
    assert found["objects"] == 1000 * 33 + 3 - 2  # per dossier: manifest, history, original, 10 x (pdf, text, words)
    assert problems_of(found["problems"]) == expected
    assert (found["changed"], found["missing"], found["extra"]) == (3, 2, 3)
    # each dossier with a problem is a failed verdict of its own in the report, naming the keys
    report = json.loads(out)
    for outcome, wanted in expected.items():
        for key in wanted:
            verdicts = report[keys.code_of(key)]
            assert any(key in v["messageVi"] and not v["ok"] for v in verdicts), key
    # the failure is recorded where an archivist looks: the dossier's events and the access log
    from pipeline import audit, events, runtime

    changed_code = keys.code_of(sorted(expected["mismatch"])[0])
    fixity_events = [e for e in events.recorded(LocalStore(settings.home / "store"), changed_code)
                     if e["type"] == "fixity check"]
    assert fixity_events and fixity_events[-1]["outcome"] == "failure"
    last = audit.tail(runtime.database(settings), 1)[-1]
    assert (last["action"], last["outcome"], last["changed"], last["missing"], last["extra"]) == \
        ("verify-objects", "failure", 3, 2, 3)
    ROWS["verify-all"] = (f"`sohoa verify --all --fixity-only` over 1,000 dossiers x 10 documents "
                          f"({found['objects']:,} objects): 3 objects changed by one bit, 2 removed, 3 added",
                          "exit 1; exactly the 3 changed, 2 missing, 3 extra keys reported, each also a failed "
                          "verdict of its dossier, a failed fixity event and a `verify-objects` access-log line")


def test_the_report_names_each_problem_and_a_clean_store_passes(small, tmp_path, template):
    settings, codes, expected = small
    code, out = sohoa(settings, "verify", "--all", "--fixity-only")
    assert code == 1
    assert "3 thay đổi, 2 thiếu, 3 thừa - KHÔNG ĐẠT" in out
    for label, outcome in (("THAY ĐỔI (changed)", "mismatch"), ("THIẾU (missing)", "missing"),
                           ("THỪA (extra)", "extra")):
        for key in expected[outcome]:
            assert f"{label}: {key}" in out
    assert sohoa(settings, "verify", "--fixity-only", codes[0])[0] == 0  # one dossier, undamaged
    code, out = sohoa(settings, "verify", "--fixity-only", "H23.50-261201-0999")
    assert code == 1 and "THIẾU (missing): dossiers/H23.50-261201-0999/manifest.json (không có hồ sơ này" in out
    clean = config.load({"SOHOA_HOME": str(tmp_path / "clean")})
    bench.build_store(LocalStore(tmp_path / "clean" / "store"), *template, 5, 2)
    code, out = sohoa(clean, "verify", "--all", "--fixity-only")
    assert code == 0 and "0 thay đổi, 0 thiếu, 0 thừa - ĐẠT" in out
    ROWS["report"] = ("the same check printed for an officer, and on an undamaged store",
                      "each problem on its own line with its key (THAY ĐỔI / THIẾU / THỪA); undamaged: "
                      "\"0 thay đổi, 0 thiếu, 0 thừa - ĐẠT\", exit 0; a dossier named that is not stored: "
                      "THIẾU its manifest, exit 1")


def test_rolling_fixity_the_beat_task_finds_what_verify_all_finds(small):
    settings, codes, expected = small
    store = LocalStore(settings.home / "store")
    swept = fixity.sweep(store)
    slice_ = fixity.fixity_slice(store, store, 0.0001, label="primary", interval=3600)  # a cycle in one slice
    assert slice_.complete
    assert problems_of(slice_.problems) == problems_of(swept.problems) == expected
    # what the Celery beat task runs every SOHOA_FIXITY_INTERVAL (sohoa.fixity -> run_recorded)
    from pipeline import tasks

    entry = tasks.beat_schedule(settings)["sohoa-fixity"]
    assert entry["task"] == "sohoa.fixity" and entry["schedule"] == float(settings.fixity.interval)
    ROWS["rolling"] = ("rolling fixity (Celery beat task `sohoa.fixity`), one cycle over the damaged store",
                       "the same 3 changed, 2 missing, 3 extra keys as `verify --all`: one check, two views")


def test_listing_dossiers_reads_one_level_and_a_dossier_reads_only_its_prefix(big, small, monkeypatch):
    settings, codes, _ = big
    store = LocalStore(settings.home / "store")
    opened: list[str] = []
    real = os.scandir

    def spy(path="."):
        opened.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", spy)
    found = dossier_codes(store)
    assert len(found) == 1000 and found == sorted(codes)  # the folder with no manifest is no dossier
    assert opened == [str(store.root / "dossiers")], "one folder read to list 1,000 dossiers"
    opened.clear()
    one = codes[400]  # undamaged, no event recorded by the verify above
    listed = store.list(keys.dossier_prefix(one))
    assert len(listed) == 33 and all(k.startswith(keys.dossier_prefix(one)) for k in listed)
    assert all(Path(p).is_relative_to(store.root / "dossiers" / one) for p in opened)
    opened.clear()
    few = LocalStore(small[0].home / "store")  # the retention report reads every manifest in full: 20 dossiers
    rows = disposal.report(few, 3650, date(2026, 12, 2))
    assert [r.code for r in rows] == small[1]
    assert opened == [str(few.root / "dossiers")]
    ROWS["listing"] = ("listing 1,000 dossiers (`dossier_codes`) and one dossier's objects, and the retention "
                       "report, on the local store",
                       "one folder read for the codes (no key below listed); a dossier's listing opens only its "
                       "own folders")


def test_reindex_streams_in_batches_with_bounded_memory_and_is_idempotent(tmp_path, template):
    from storage import index

    text = ("Điều {n}. Hộ kinh doanh do một cá nhân hoặc các thành viên hộ gia đình đăng ký thành lập "
            "và chịu trách nhiệm bằng toàn bộ tài sản của mình đối với hoạt động kinh doanh của hộ. ") * 20

    def text_for(code: str, doc_id: str) -> str:
        return f"Hồ sơ {code} tài liệu {doc_id} mã riêng {doc_id.replace('.', 'x').replace('-', 'y')}\n" + text

    store = LocalStore(tmp_path / "store")
    codes = bench.build_store(store, *template, 100, 10, text_for=text_for)
    total_text = sum(len(text_for(c, f"{c}.001").encode()) for c in codes) * 10
    engine = index.open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    index.index_dossier(engine, {"dossierCode": "H23.50-261130-0999", "documents": [{"docId": "H23.50-261130-0999.001"}]},
                        {"H23.50-261130-0999.001": ["gone from storage"]})  # indexed once, no longer stored
    tracemalloc.start()
    started = time.monotonic()
    totals = index.reindex(store, engine, batch=50)
    FIGURES["reindex"] = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    FIGURES["reindex_peak_mb"] = peak / 1e6
    FIGURES["reindex_text_mb"] = total_text / 1e6
    assert totals == {"dossiers": 100, "documents": 1000, "pages": 1000, "errors": []}
    print(f"reindex peak {peak / 1e6:.2f} MB, text {total_text / 1e6:.2f} MB")
    assert peak < total_text / 2, f"peak {peak / 1e6:.1f} MB for {total_text / 1e6:.1f} MB of text"
    wanted = codes[73]
    hits = index.search(engine, f"{wanted}.007".replace(".", "x").replace("-", "y"))
    assert [(h["dossierCode"], h["docId"]) for h in hits] == [(wanted, f"{wanted}.007")]
    assert index.search(engine, "gone from storage") == []
    # again, over an index already complete: the same result (a run cut short is finished this way)
    shutil.rmtree(tmp_path / "store" / "dossiers" / codes[0])
    assert index.reindex(store, engine, batch=50) == {"dossiers": 99, "documents": 990, "pages": 990,
                                                       "errors": []}
    assert index.search(engine, f"{codes[0]}.001".replace(".", "x").replace("-", "y")) == []
    ROWS["reindex"] = ("`sohoa reindex` of 1,000 documents (~4.7 MB of OCR text), 50 documents to a transaction",
                       "peak Python memory below half the text; a dossier no longer stored is dropped; "
                       "run again gives the same index")


def test_s3_lists_by_prefix_and_delimiter_and_verify_finds_the_same_problems(s3_store, template):
    codes = bench.build_store(s3_store, *template, 4, 2)
    assert s3_store.children(keys.PREFIX) == codes
    assert dossier_codes(s3_store) == codes
    listed = s3_store.list(keys.dossier_prefix(codes[1]))
    assert len(listed) == 9 and all(k.startswith(keys.dossier_prefix(codes[1])) for k in listed)
    text_key = keys.document_text(codes[0], f"{codes[0]}.002")
    s3_store.put(text_key, b"OCR text edited in place")  # a new version: the store records it, the manifest not
    words_key = keys.document_words(codes[2], f"{codes[2]}.001")
    s3_store.delete(words_key)
    stray = keys.dossier_prefix(codes[3]) + "documents/stray.pdf"
    s3_store.put(stray, b"%PDF-1.7 nobody lists me")
    found = fixity.sweep(s3_store)
    assert problems_of(found.problems) == {"mismatch": {text_key}, "missing": {words_key}, "extra": {stray}}
    assert found.documents == 8
    ROWS["s3"] = ("the same on S3 (Ceph RGW): 4 dossiers listed by prefix and delimiter, one object overwritten, "
                  "one deleted, one added",
                  "codes from one delimiter listing; exactly the changed, missing and extra keys reported")


def test_zz_integrity_table():
    wanted = ["verify-all", "report", "rolling", "listing", "reindex", "s3"]
    assert list(ROWS) == wanted, f"run the whole module to write the table (got {list(ROWS)})"
    print(f"\nFIGURES {json.dumps({k: round(v, 2) for k, v in FIGURES.items()})}")
    check_table("integrity", ["check", "what was tried", "outcome"], [(k, *ROWS[k]) for k in wanted])
