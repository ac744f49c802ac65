"""Search latency on a large index: p50/p95/max of ``storage.index.search`` per kind of query,
and of ``storage.index.titles`` (the titles listed beside a first page of hits), on SQLite and
PostgreSQL (issue 17).

    .venv/bin/python -m bench.search --pages 100000                     # both databases
    .venv/bin/python -m bench.search --pages 100000 --db sqlite --keep /tmp/sohoa-bench-search
    .venv/bin/python -m bench.search --pages 20000 --db postgresql --json /tmp/search.json

The index is filled with realistic Vietnamese pages: the statute texts shipped in tests/data
cut into runs of 40-120 words and shuffled into pages of 300-500 words, each page under an
administrative header (a document number such as 4821/QĐ-UBND, a person's name, a ward), one
page in twenty without its diacritics (OCR that lost them). Pages belong to documents of
1-8 pages, documents to dossiers of 1-6 documents, dossiers to a dozen agencies, with valid
one-stop and archive codes (``pipeline.dossier``). Rows go straight into storage.index's
tables (its ``pages`` insert, the FTS5 triggers and the generated tsvector columns do the
rest), not through the ingest. ``--keep DIR`` keeps the SQLite file under DIR and the
PostgreSQL database ``sohoa_bench_search_keep_<pages>`` for the next run; without it both are
thrown away.

The queries are a fixed, seeded mix drawn from the same texts (see ``default_queries``): one
word, two-syllable phrases with and without diacritics, a rare word, a common word, a word
under a dossier-code prefix, a quoted phrase, a query with no hit. Each runs once to warm the
caches, then ``--repeat`` times measured. Printed per kind and overall: p50, p95 and max of
the wall time, and the mean CPU time of a query (this process, and on PostgreSQL the server's
backend too when it runs on this machine). On a shared, busy machine the wall times mostly
measure waiting for a core: compare figures taken in one run, and the CPU times.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from pipeline import dossier  # noqa: E402
from storage import db, index  # noqa: E402

DATA = ROOT / "tests" / "data"
PG_ADMIN_URL = os.environ.get("SOHOA_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED = 17
BATCH = 2000  # pages inserted per statement batch

AGENCIES = ["H23.50", "H15.50.05.13", "000.00.12.H15", "H29.22.07", "G12.31", "H56.10.03", "000.00.31.H29",
            "H01.28.15", "H79.760.26734", "H48.490"]
SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Ngọc", "Thanh", "Quang", "Hữu", "Thu", "Xuân"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương", "Khánh", "Lan",
         "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Sơn", "Tâm", "Thảo", "Thắng", "Trang", "Tuấn", "Yến"]
WARDS = ["Phúc Xá", "Trúc Bạch", "Cống Vị", "Liễu Giai", "Ngọc Hà", "Điện Biên", "Đội Cấn", "Kim Mã", "Giảng Võ",
         "Thành Công", "Hòa Phú", "Tân Lập", "Trung Hòa", "Yên Hòa", "Dịch Vọng", "Mai Dịch", "Nghĩa Đô", "Quan Hoa"]
FORMS = ["QĐ-UBND", "XN-UBND", "TB-UBND", "GP-SXD", "CV-STNMT", "TTr-UBND"]
PAPERS = ["Đơn đề nghị cấp giấy phép xây dựng", "Bản sao CCCD", "Giấy chứng nhận quyền sử dụng đất",
          "Tờ khai đăng ký hộ kinh doanh", "Biên bản kiểm tra hiện trạng", "Bản vẽ thiết kế", "Giấy ủy quyền",
          "Sổ hộ khẩu", "Quyết định giao đất", "Hợp đồng chuyển nhượng", "Giấy khai sinh", "Trích lục bản đồ địa chính"]
PROCEDURES = ["Cấp phép xây dựng", "Đăng ký hộ kinh doanh", "Chuyển nhượng quyền sử dụng đất", "Đăng ký khai sinh",
              "Cấp đổi giấy chứng nhận"]
TITLES = ["QUYẾT ĐỊNH", "GIẤY XÁC NHẬN", "THÔNG BÁO", "TỜ KHAI", "ĐƠN ĐỀ NGHỊ", "BIÊN BẢN", "GIẤY PHÉP"]
# Real words; those with a syllable the statute texts never hold (folded) make the queries with no hit.
ABSENT = ["khủng long", "tàu ngầm", "bánh chưng", "cà phê sữa", "xe đạp điện", "máy cày", "sầu riêng",
          "chim cánh cụt", "quýt", "dưa hấu", "thuồng luồng", "xích lô", "bưởi Diễn", "kẹo lạc", "nhãn lồng",
          "ghẹ", "mướp đắng", "ổi", "chè khoai", "khế"]


# -- the pages -----------------------------------------------------------------

def corpus_words() -> list[str]:
    """The statute texts in tests/data, as one list of whitespace-separated words (newlines kept as '\\n')."""
    words = []
    for path in sorted(DATA.glob("vi_text_*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                words += unicodedata.normalize("NFC", line).split() + ["\n"]
    return words


def agency_code(n: int) -> str:
    """The n-th dossier's code: mostly one-stop codes, one in five an archive file code (the
    agencies at places 4 and 9 of AGENCIES keep their files under archive codes)."""
    agency = AGENCIES[n % len(AGENCIES)]
    if n % 5 == 4:
        code = f"{agency}-{2005 + n % 20}-{n // len(AGENCIES) + 1:04d}"
    else:
        day = 1 + (n // len(AGENCIES)) % 28
        code = f"{agency}-2611{day:02d}-{n // len(AGENCIES) + 1:04d}"
    return code


def page_text(rng: random.Random, words: list[str], code: str) -> str:
    """One page: an administrative header, then 300-500 words of runs cut from the statute texts."""
    header = (f"{rng.choice(TITLES)}\nSố: {rng.randint(1, 9999)}/{rng.choice(FORMS)}\nHồ sơ {code}\n"
              f"Người nộp: {rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}, phường "
              f"{rng.choice(WARDS)}\n")
    target, body = rng.randint(300, 500), []
    while len(body) < target:
        start = rng.randrange(len(words))
        body += words[start:start + min(rng.randint(40, 120), target - len(body))]
    text = header + " ".join(body).replace(" \n ", "\n").replace("\n ", "\n")
    if rng.random() < 0.05:
        text = index.fold(text)  # OCR that lost the diacritics
    return text


def generate(pages: int, seed: int = SEED):
    """(dossier rows, document rows, page rows) in batches of about BATCH pages, deterministic for a seed."""
    rng = random.Random(seed)
    words = corpus_words()
    now = datetime.now(timezone.utc)
    made, n = 0, 0
    while made < pages:
        dossier_rows, doc_rows, page_rows = [], [], []
        while made < pages and len(page_rows) < BATCH:
            code = agency_code(n)
            dossier.parse_key(code)  # a valid code, or the bench is wrong
            n += 1
            docs = rng.randint(1, 6)
            title = f"{rng.choice(PROCEDURES)} - {rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
            changed = (now - timedelta(days=60) + timedelta(seconds=30 * n)).isoformat(timespec="seconds")
            dossier_rows.append(dict(code=code, title=title, title_folded=index.title_key(title), maintenance="10",
                                     state="stored", total_doc=docs, number_of_page=0, indexed_at=now,
                                     created=changed, updated=changed))
            for seq in range(1, docs + 1):
                doc_id = dossier.doc_id(code, seq)
                count = min(rng.randint(1, 8), pages - made)
                paper = rng.choice(PAPERS)
                doc_rows.append(dict(doc_id=doc_id, dossier_code=code, sequence=seq, title=paper,
                                     title_folded=index.title_key(paper), number_of_page=count, created=changed))
                for number in range(1, count + 1):
                    text = index.nfc(page_text(rng, words, code))
                    page_rows.append(dict(dossier_code=code, doc_id=doc_id, number=number, text=text,
                                          text_folded=index.fold(text)))
                made += count
                if made >= pages:
                    break
        yield dossier_rows, doc_rows, page_rows


def page_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(index.pages)).scalar()


def fill(engine, pages: int, seed: int = SEED) -> float:
    """Put ``pages`` generated pages in an empty index; the seconds it took."""
    started = time.perf_counter()
    for dossier_rows, doc_rows, page_rows in generate(pages, seed):
        with engine.begin() as conn:
            conn.execute(index.dossiers.insert(), dossier_rows)
            conn.execute(index.documents.insert(), doc_rows)
            conn.execute(index.pages.insert(), page_rows)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(sa.text("INSERT INTO pages_fts(pages_fts) VALUES ('optimize')"))
        else:
            conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - started


def index_size(engine) -> int:
    """Bytes the index takes: the SQLite file (and its WAL), or the PostgreSQL database."""
    if engine.dialect.name == "sqlite":
        path = db.sqlite_path(str(engine.url))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()
                   and not p.name.endswith(".lock"))
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()


# -- the queries ---------------------------------------------------------------

_SYLLABLE = re.compile(r"^[^\W\d_]+$")


def default_queries(per_kind: int = 6, seed: int = SEED) -> list[dict]:
    """The fixed mix: ``per_kind`` queries of each kind, drawn from the statute texts with a seeded RNG.

    Each query: kind, query, code_prefix (only for kind ``prefix``) and scope (the agency codes an
    officer's account sees, only for kind ``scoped``).
    """
    rng = random.Random(seed)
    words = [w for w in corpus_words() if w != "\n"]
    syllables = [w.strip(".,;:()\"'").lower() for w in words]
    counts = Counter(s for s in syllables if _SYLLABLE.match(s))
    ranked = [s for s, _ in counts.most_common()]
    common = ranked[:12]  # của, và, các, ...
    middle = [s for s in ranked if 8 <= counts[s] <= 40]
    bigrams = Counter((a, b) for a, b in zip(syllables, syllables[1:])
                      if _SYLLABLE.match(a) and _SYLLABLE.match(b) and a not in common[:4] and b not in common[:4])
    with_marks = [" ".join(b) for b, c in bigrams.items() if c >= 4 and index.fold(" ".join(b)) != " ".join(b)]
    trigrams = Counter(" ".join(t) for t in zip(words, words[1:], words[2:]) if all(_SYLLABLE.match(w) for w in t))
    trigrams = sorted(t for t, c in trigrams.items() if c >= 3)
    vocabulary = {index.fold(s) for s in syllables}
    absent = [q for q in ABSENT if any(index.fold(w.lower()) not in vocabulary for w in q.split())]
    kinds = {
        "one-word": lambda: rng.choice(middle),
        "phrase": lambda: rng.choice(with_marks),
        "phrase-folded": lambda: index.fold(rng.choice(with_marks)),
        # a document number from the headers: a handful of pages hold it
        "rare": lambda: f"{rng.randint(1, 9999)}/{rng.choice(FORMS)}",
        "common": lambda: rng.choice(common),
        "prefix": lambda: rng.choice(middle),
        "quoted": lambda: f'"{rng.choice(trigrams)}"',
        "no-hit": lambda: rng.choice(absent),
        # a paper's name or a citizen's, as titles hold them, with or without diacritics
        "title": lambda: rng.choice([rng.choice(PAPERS), index.fold(rng.choice(PAPERS)).lower(),
                                     f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"]),
        # an officer's search: within the agency's codes (every search of a scoped account)
        "scoped": lambda: rng.choice([rng.choice(common), rng.choice(middle), rng.choice(with_marks),
                                      index.fold(rng.choice(with_marks))]),
    }
    queries = []
    for kind, draw in kinds.items():
        drawn: set[str] = set()
        while len(drawn) < per_kind:
            if (text := draw()) in drawn:
                continue
            drawn.add(text)
            query = {"kind": kind, "query": text, "code_prefix": None, "scope": ()}
            if kind == "scoped":
                query["scope"] = (rng.choice(AGENCIES),)
            if kind == "prefix":
                one_stop = [a for n, a in enumerate(AGENCIES) if n % 5 != 4]  # see agency_code
                query["code_prefix"] = rng.choice([rng.choice(AGENCIES), rng.choice(one_stop) + "-2611",
                                                   agency_code(rng.randrange(1000))])
            queries.append(query)
    return queries


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def summary(times: list[float]) -> dict:
    return {"n": len(times), "p50_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(percentile(times, 0.95) * 1000, 1), "max_ms": round(max(times) * 1000, 1)}


def run_queries(engine, queries: list[dict], repeat: int = 3, limit: int = 20) -> dict:
    """Each query once to warm up, then ``repeat`` times timed: p50/p95/max of the wall time
    per kind and overall, and the mean CPU time per query (this process, plus the PostgreSQL
    backends when they run on this machine: /proc counts in 10 ms ticks, so only means)."""
    for q in queries:
        index.search(engine, q["query"], code_prefix=q["code_prefix"], limit=limit, scope=q.get("scope", ()))
        index.titles(engine, q["query"], code_prefix=q["code_prefix"], limit=limit, scope=q.get("scope", ()))
    pids = backend_pids(engine)
    by_kind: dict[str, list[float]] = {}
    cpu_by_kind: dict[str, list[float]] = {}
    titles_time: list[float] = []
    hits: dict[str, int] = {}
    for _ in range(repeat):
        for q in queries:
            cpu = time.process_time() + backends_cpu(pids)
            started = time.perf_counter()
            results = index.search(engine, q["query"], code_prefix=q["code_prefix"], limit=limit,
                                   scope=q.get("scope", ()))
            by_kind.setdefault(q["kind"], []).append(time.perf_counter() - started)
            cpu_by_kind.setdefault(q["kind"], []).append(time.process_time() + backends_cpu(pids) - cpu)
            hits[q["query"] + (f" @{q['code_prefix']}" if q["code_prefix"] else "")
                 + "".join(f" in {s}" for s in q.get("scope", ()))] = len(results)
            started = time.perf_counter()  # the titles a search's first page lists beside its hits
            index.titles(engine, q["query"], code_prefix=q["code_prefix"], limit=limit, scope=q.get("scope", ()))
            titles_time.append(time.perf_counter() - started)
    report = {kind: summary(times) | {"cpu_ms": round(statistics.mean(cpu_by_kind[kind]) * 1000, 1)}
              for kind, times in by_kind.items()}
    every_cpu = [c for cpus in cpu_by_kind.values() for c in cpus]
    report["overall"] = summary([t for times in by_kind.values() for t in times]) | {
        "cpu_ms": round(statistics.mean(every_cpu) * 1000, 1)}
    return {"latency": report, "titles": summary(titles_time), "hits": hits, "cpu_includes_server": bool(pids)}


def backend_pids(engine) -> list[int]:
    """The PostgreSQL backends serving this engine when the server runs on this machine (their
    CPU time is read by psutil); empty on SQLite, where the database runs in this process."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        pids = list(conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND backend_type = 'client backend'")).scalars())
    try:
        backends_cpu(pids)
    except psutil.Error:  # another machine's (or another user's) server
        return []
    return pids


def backends_cpu(pids: list[int]) -> float:
    """User + system CPU seconds so far of these processes."""
    return sum(t.user + t.system for t in (psutil.Process(pid).cpu_times() for pid in pids))


# -- databases -----------------------------------------------------------------

@contextmanager
def pg_database(name: str, keep: bool):
    """URL of the PostgreSQL database ``name`` (created when missing, UTF-8 ctype), dropped unless ``keep``."""
    admin = sa.create_engine(db.database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            # template0 with UTF-8 and a UTF-8 ctype, so lower() folds Vietnamese capitals (see storage.index)
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                                 "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"))
    url = sa.engine.make_url(db.database_url(PG_ADMIN_URL)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_search(pages: int, db_url: str, queries: list[dict] | None = None, *, repeat: int = 3,
                   seed: int = SEED) -> dict:
    """Fill the index at ``db_url`` with ``pages`` generated pages unless it holds them already
    (an empty index is filled; one with another count is refused), then time ``queries``
    (default: ``default_queries()``). Returns build seconds (None when reused), size, latencies."""
    engine = index.open_index(db_url)
    try:
        have = page_count(engine)
        build = None
        if have == 0:
            build = round(fill(engine, pages, seed), 1)
        elif have != pages:
            raise SystemExit(f"{db_url}: holds {have} pages, not {pages}; use an empty database")
        result = {"db": engine.dialect.name, "pages": pages, "build_s": build,
                  "size_mb": round(index_size(engine) / 1e6, 1)}
        result.update(run_queries(engine, queries if queries is not None else default_queries(seed=seed), repeat))
        return result
    finally:
        engine.dispose()


def print_result(result: dict) -> None:
    build = f"{result['build_s']} s" if result["build_s"] is not None else "reused"
    cpu = "CPU ms (mean, incl. server)" if result["cpu_includes_server"] else "CPU ms (mean)"
    print(f"\n{result['db']}: {result['pages']} pages, build {build}, size {result['size_mb']} MB")
    print(f"  {'kind':<14}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  {cpu}")
    for kind, s in result["latency"].items():
        print(f"  {kind:<14}{s['n']:>4}{s['p50_ms']:>9}{s['p95_ms']:>9}{s['max_ms']:>9}  {s['cpu_ms']:>8}")
    if "titles" in result:
        s = result["titles"]
        print(f"  {'+ titles':<14}{s['n']:>4}{s['p50_ms']:>9}{s['p95_ms']:>9}{s['max_ms']:>9}"
              "  (every query, after its search)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each query (after one warm-up)")
    parser.add_argument("--per-kind", type=int, default=6, help="queries of each kind")
    parser.add_argument("--keep", type=Path, help="keep the built index here (SQLite) / in a kept database "
                        "(PostgreSQL) and reuse it next time")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--show-queries", action="store_true")
    args = parser.parse_args(argv)

    queries = default_queries(args.per_kind)
    if args.show_queries:
        for q in queries:
            print(q)
    results = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="sohoa-bench-search-") as tmp:
            where = args.keep or Path(tmp)
            url = f"sqlite:///{where / f'index-{args.pages}.sqlite3'}"
            results.append(measure_search(args.pages, url, queries, repeat=args.repeat))
            print_result(results[-1])
    if args.db in ("postgresql", "both"):
        name = f"sohoa_bench_search_keep_{args.pages}" if args.keep else f"sohoa_bench_search_{os.getpid()}"
        with pg_database(name, keep=bool(args.keep)) as url:
            results.append(measure_search(args.pages, url, queries, repeat=args.repeat))
            print_result(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
