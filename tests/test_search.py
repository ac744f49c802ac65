"""Vietnamese full-text search on SQLite FTS5 and PostgreSQL, reindex from object storage, CLI."""
from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
import unicodedata

import pytest
import sqlalchemy as sa

from api.cli import main as sohoa
from pipeline.config import IndexSettings, S3Settings, Settings
from storage import db, index, keys
from storage.base import sha256
from storage.errors import QueryError, StorageError
from tests.services import throwaway_pg_database

A = "H23.50-261201-0001"  # "Nghị định" with its diacritics
B = "H23.50-261201-0002"  # "nghỉ đình": other diacritics, same letters
C = "H15.50-261202-0003"  # "nghi dinh": OCR lost the diacritics

TEXTS = {
    A: [["Căn cứ Nghị định số 15/2020/NĐ-CP ngày 03 tháng 02 năm 2020 của Chính phủ quy định xử phạt.",
         "Địa chỉ: 12 đường Trần Phú, thành phố Đà Nẵng"],
        ["Tờ khai đăng ký hộ kinh doanh"]],
    B: [["Ông Nguyễn Văn An nghỉ đình công tại nhà văn hóa, quy chế định kỳ"]],
    C: [["Theo nghi dinh so 15 cua Chinh phu"]],
}


def manifest_for(code: str, docs: list[list[str]], title: str = "Hồ sơ thử") -> dict:
    documents = []
    for seq, pages in enumerate(docs, start=1):
        doc_id = f"{code}.{seq:03d}"
        text = "\f".join(pages).encode()
        documents.append({"docId": doc_id, "sequence": seq, "title": f"{title} {seq}", "numberOfPage": len(pages),
                          "text": {"key": keys.document_text(code, doc_id), "sha256": sha256(text), "size": len(text)},
                          "pdf": {"key": keys.document_pdf(code, doc_id), "sha256": "0" * 64, "size": 1}})
    return {"schema": "sohoa.manifest/1", "dossierCode": code, "title": title, "maintenance": "06",
            "totalDoc": len(docs), "numberOfPage": sum(len(d) for d in docs), "documents": documents,
            "events": [{"at": "2026-12-01T09:30:00+07:00", "type": "ingest", "docId": documents[0]["docId"],
                        "outcome": "success", "detail": "thử"}]}


def page_texts_for(code: str) -> dict:
    return {f"{code}.{seq:03d}": pages for seq, pages in enumerate(TEXTS[code], start=1)}


def store_dossier(store, code: str) -> None:
    """What the pipeline leaves in storage: text objects, then the manifest last."""
    manifest = manifest_for(code, TEXTS[code])
    for doc, pages in zip(manifest["documents"], TEXTS[code]):
        store.put(doc["text"]["key"], "\f".join(pages).encode(), "text/plain; charset=utf-8",
                  {"dossier": code, "doc-id": doc["docId"], "kind": "text"})
    store.put(keys.manifest(code), json.dumps(manifest, ensure_ascii=False).encode(), "application/json",
              {"dossier": code, "kind": "manifest"})


@pytest.fixture
def indexed(index_engine):
    for code in TEXTS:
        index.index_dossier(index_engine, manifest_for(code, TEXTS[code]), page_texts_for(code))
    return index_engine


def hits_of(results) -> list[tuple]:
    return [(r["dossierCode"], r["docId"], r["page"]) for r in results]


# -- pure text handling -------------------------------------------------------------

def test_fold_removes_diacritics_one_character_for_one():
    text = "Nghị định ĐƯỜNG Đà Nẵng, Ấp Ở"
    assert index.fold(text) == "Nghi dinh DUONG Da Nang, Ap O"
    assert len(index.fold(text)) == len(text)
    assert index.fold(unicodedata.normalize("NFD", "Nghị định")) == "Nghi dinh"


def test_query_parsing_keeps_phrases_and_joined_chunks():
    assert index.parse_query('nghi dinh "quy định xử" NĐ-CP') == [["nghi"], ["dinh"], ["quy", "định", "xử"], ["NĐ", "CP"]]
    assert index.parse_query('"unclosed phrase') == [["unclosed", "phrase"]]
    assert index.parse_query('" - * ( ) :') == []
    assert index.fts5_match([["nghị", "định"]], "text_folded") == 'text_folded : ("nghi dinh")'
    # a long query of i/y syllables and days asks the database for 64 spellings at most, each term at least as typed
    long = index.parse_query(" ".join(["quy-ky-ly-my", "3/4/5"] * 15))
    spellings = index.query_spellings(long)
    assert len(spellings) == len(long) and all(spellings) and sum(map(len, spellings)) <= 64
    assert index.query_spellings([["qui", "định"]]) == [[("qui", "định"), ("quy", "định")]]
    query = index.Query.parse('Nghị ĐỊNH "quy định xử" NĐ-CP')
    assert query.phrase == ("Nghị", "ĐỊNH", "quy", "định", "xử", "NĐ", "CP")
    assert query.exact[0:2] == ((index.spelling("nghị"),), (index.spelling("định"),))
    assert query.folded[3] == ("nd", "cp")


@pytest.mark.parametrize("query", ["", "   ", "\t\n", '"', '""', "-", "*", "( ) :", "…", "_"])
def test_a_query_without_a_word_is_refused_in_vietnamese(query):
    with pytest.raises(QueryError) as refused:
        index.Query.parse(query)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, StorageError)
    assert refused.value.code == "query"
    assert refused.value.message_vi.startswith(("Chưa nhập nội dung cần tìm", "Nội dung tìm «"))
    assert refused.value.detail.startswith(("empty search query", "search query has no word characters"))


def test_snippet_marks_the_best_match_in_the_original_text():
    text = "Căn cứ Nghị định số 15"
    assert index.make_snippet(text, [(7, 16)]) == "Căn cứ [Nghị định] số 15"
    long_text = "mở đầu " * 40 + "Nghị định" + " kết thúc" * 40
    start = long_text.index("Nghị định")
    snippet = index.make_snippet(long_text, [(start, start + 9)])
    assert "[Nghị định]" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) < 200
    far = "XÃ " + "mở đầu " * 60 + "ông Phúc"
    snippet = index.make_snippet(far, [(0, 2), (len(far) - 4, len(far))])
    assert snippet.startswith("[XÃ] mở đầu") and snippet.endswith("ông [Phúc]") and " … " in snippet
    assert len(snippet) < 200


def test_tiers_of_one_page():
    query = index.Query.parse("hanh phuc")
    assert [(m.tier, m.level, m.exact) for m in (index.rank_page(t, query) for t in [
        "Độc lập - Tự do - Hạnh phúc", "HANH PHUC", "Bà Lê Thị Hạnh, ông Phúc", "hạnh " + "x " * 30 + "PHÚC",
        "hanh " + "x " * 30 + "phuc"])] == [
        ("phrase-folded", 4, False), ("phrase", 5, True), ("near", 2, False), ("all", 0, False), ("all", 1, True)]
    page = "ĐƠN ĐỀ NGHỊ xét duyệt theo quyết định. Căn cứ Nghị định số 15"
    best = index.rank_page(page, index.Query.parse("nghi dinh"))
    assert best.tier == "phrase-folded" and best.spans == ((page.index("Nghị định"), page.index(" số 15")),)
    scores = [index.score(level, r) for level in range(6) for r in (0.0, 0.5, 0.9999999)]
    assert scores == sorted(scores) and scores[0] == 0 and scores[-1] < 2


def test_the_old_and_the_new_tone_placement_are_one_spelling():
    """"hoá" and "hóa", "Uỷ ban" and "Ủy ban" are the same words, both in everyday use: a page in
    either spelling is an exact match, highlighted, above a page of another word ("Cộng hòa").
    Before, the other placement counted as other diacritics and tied with "hòa"."""
    pages = ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM. Hóa đơn giá trị gia tăng", "UỶ BAN NHÂN DÂN tỉnh Cao Bằng"]
    hoa = index.rank_page(pages[0], index.Query.parse("hoá"))
    assert hoa.exact and pages[0][hoa.spans[0][0]:hoa.spans[0][1]] == "Hóa"
    for typed in ("Ủy ban nhân dân", "Uỷ ban nhân dân", "ủy ban"):
        assert index.rank_page(pages[1], index.Query.parse(typed)).tier == "phrase", typed
    assert index.rank_page("sức khỏe, Thủy", index.Query.parse("khoẻ thuỷ")).exact
    assert not index.rank_page(pages[0], index.Query.parse("hòa đơn")).exact  # the tone itself still counts
    assert index.spelling("Hoá") == index.spelling("hóa") != index.spelling("hòa")


def test_i_and_y_written_either_way_are_one_spelling_on_both_databases(index_engine):
    """"qui định" and "quy định", "lí lịch" and "lý lịch", "kĩ thuật" and "kỹ thuật", "tỉ lệ" and
    "tỷ lệ" are the same words, both in everyday use: a query in one finds a page in the other as
    the phrase once folded, highlighted, below a page in the spelling typed (search review: "qui
    định" found nothing of "quy định"; given names differ: "Trà Mi" is not "Trà My"). Only the lone
    i or y after these initials: "tai" is not "tay"."""
    new, old = "H23.50-261201-0096", "H23.50-261201-0095"
    texts = {new: "Quy định về lý lịch tư pháp; kỹ thuật số; tỷ lệ 5%; tay nghề",
             old: "Qui định về lí lịch tư pháp; kĩ thuật số; tỉ lệ 5%; tai nạn"}
    for code, text in texts.items():
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    for typed, shown in (("qui định", ("Quy định", "Qui định")),
                         ("lý lịch tư pháp", ("lý lịch tư pháp", "lí lịch tư pháp")),
                         ("KĨ THUẬT", ("kỹ thuật", "kĩ thuật")), ("tỷ lệ", ("tỷ lệ", "tỉ lệ")),
                         ('"ky thuat so" ti le', ("kỹ thuật số; tỷ lệ", "kĩ thuật số; tỉ lệ"))):
        hits = {h["dossierCode"]: h for h in index.search(index_engine, typed)}
        assert set(hits) == {new, old}, typed
        typed_there = {new: any(w in texts[new] for w in (typed, typed.capitalize(), typed.lower())),
                       old: any(w in texts[old] for w in (typed, typed.capitalize(), typed.lower()))}
        for code, words in zip((new, old), shown):
            exact = typed_there[code] and not typed.isascii()
            assert hits[code]["tier"] == ("phrase" if exact else "phrase-folded"), (typed, code)
            assert f"[{words}]" in hits[code]["snippet"], (typed, hits[code]["snippet"])
        if any(typed_there.values()):  # the page in the spelling typed first
            assert index.search(index_engine, typed)[0]["dossierCode"] == next(c for c, t in typed_there.items() if t)
    assert [h["dossierCode"] for h in index.search(index_engine, "tai")] == [old]
    assert index.spelling("kí") != index.spelling("ký") and index.spelling("Ký") == index.spelling("ký")
    names, named = "H23.50-261201-0092", "H23.50-261201-0091"
    for code, text in ((names, "Bà Nguyễn Trà My"), (named, "Bà Nguyễn Trà Mi")):
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    assert [(h["dossierCode"], h["tier"]) for h in index.search(index_engine, "Trà Mi")] == [
        (named, "phrase"), (names, "phrase-folded")]


def test_a_day_or_a_month_with_or_without_its_zero_is_one_on_both_databases(index_engine):
    """"3/2/2025" finds "03/02/2025" and the other way round, "khoản 3" finds "khoản 03" (search
    review); a longer number keeps its zeros: "031" is not "31"."""
    zero, bare = "H23.50-261201-0094", "H23.50-261201-0093"
    texts = {zero: "Hà Nội, ngày 03/02/2025. Căn cứ khoản 03 Điều 5; mã 031",
             bare: "Hà Nội, ngày 3/2/2025. Căn cứ khoản 3 Điều 05; mã 31"}
    for code, text in texts.items():
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    for typed, shown in (("3/2/2025", ("03/02/2025", "3/2/2025")), ("03/02/2025", ("03/02/2025", "3/2/2025")),
                         ("khoản 3 điều 5", ("khoản 03 Điều 5", "khoản 3 Điều 05"))):
        hits = {h["dossierCode"]: h for h in index.search(index_engine, typed)}
        assert set(hits) == {zero, bare}, typed
        for code, words in zip((zero, bare), shown):
            assert hits[code]["tier"] == "phrase" and f"[{words}]" in hits[code]["snippet"], (typed, hits[code])
    assert [h["dossierCode"] for h in index.search(index_engine, "031")] == [zero]
    assert [h["dossierCode"] for h in index.search(index_engine, "31")] == [bare]
    minutes = "H23.50-261201-0090"  # "00" (minutes) is no day or month: "0" does not find it
    index.index_dossier(index_engine, manifest_for(minutes, [["lúc 08 giờ 00 phút"]]),
                        {f"{minutes}.001": ["lúc 08 giờ 00 phút"]})
    assert index.search(index_engine, "0") == []
    assert [h["dossierCode"] for h in index.search(index_engine, "8 giờ")] == [minutes]


def test_look_alike_letters_read_as_the_letters_they_stand_for_on_both_databases(index_engine):
    """The Icelandic eth (Ð), which legacy VNI and TCVN3 conversions put for Đ, and full-width
    letters found pages on PostgreSQL (its unaccent folds them) ranked last, unmarked, and nothing
    on SQLite (search review)."""
    code = "H23.50-261201-0099"
    text = "Ông Đoàn Duy Đức, Quyết định của Ủy ban nhân dân tỉnh Quảng Ngãi"
    index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    for typed in ("Ðoàn Duy Ðức", "Quyết ðịnh", "Ｑuảng Ｎgãi"):
        (hit,) = index.search(index_engine, typed)
        assert (hit["dossierCode"], hit["tier"], hit["exact"]) == (code, "phrase", True), typed
    legacy = "H23.50-261201-0098"  # a page converted from VNI with the eth in it
    index.index_dossier(index_engine, manifest_for(legacy, [["Ông Ðoàn Duy Ðức"]]),
                        {f"{legacy}.001": ["Ông Ðoàn Duy Ðức"]})
    assert {h["dossierCode"] for h in index.search(index_engine, "Đoàn Duy Đức")} == {code, legacy}


def test_a_page_indexed_before_the_eth_was_folded_is_found_after_the_migration(index_engine):
    """Folding Ð to D changed what a query folds to, not the folded text of the pages indexed
    before: migration 0005 rewrites it (the review of the change found those pages lost on SQLite)."""
    code = "H23.50-261201-0097"
    index.index_dossier(index_engine, manifest_for(code, [["Ông Ðoàn Duy Ðức"]]), {f"{code}.001": ["Ông Ðoàn Duy Ðức"]})
    with index_engine.begin() as conn:  # as the folding before left it
        conn.execute(sa.text("UPDATE pages SET text_folded = 'Ông Ðoan Duy Ðuc' WHERE dossier_code = :c"), {"c": code})
        conn.execute(sa.text(f"UPDATE {db.VERSION_TABLE} SET version_num = '0004'"))
    assert index.search(index_engine, "Đoàn Duy Đức") == [] or index_engine.dialect.name == "postgresql"
    db.upgrade(index_engine)
    assert [h["dossierCode"] for h in index.search(index_engine, "Đoàn Duy Đức")] == [code]


TITLED = "H23.50-261203-0011"  # a dossier whose papers' names are written only in their titles


def index_titled(engine, code: str = TITLED, title: str = "Cấp phép xây dựng - Nguyễn Văn An",
                 doc_titles=("Bản sao CCCD", "Giấy chứng nhận quyền sử dụng đất")) -> None:
    manifest = manifest_for(code, [["Cộng hòa xã hội chủ nghĩa Việt Nam"]] * len(doc_titles), title=title)
    for doc, doc_title in zip(manifest["documents"], doc_titles):
        doc["title"] = doc_title
    index.index_dossier(engine, manifest, {d["docId"]: ["Cộng hòa xã hội chủ nghĩa Việt Nam"]
                                           for d in manifest["documents"]})


def titles_of(found) -> list[tuple]:
    return [(t["dossierCode"], t["docId"], t["exact"]) for t in found]


def test_a_paper_is_found_by_its_title_with_or_without_diacritics_on_both_databases(index_engine):
    """A copy of an identity card says nothing of itself in its text: an officer looking for
    "bản sao CCCD" found no page of it, though its title says it (archive review)."""
    index_titled(index_engine)
    other = "H15.50-261203-0012"  # another agency's paper of the same name
    index_titled(index_engine, other, title="Đăng ký hộ kinh doanh", doc_titles=("Bản sao CCCD",))

    assert index.search(index_engine, "bản sao CCCD") == []  # no page holds it
    assert titles_of(index.titles(index_engine, "Bản sao CCCD", scope=["H23.50"])) == [
        (TITLED, f"{TITLED}.001", True)]
    assert titles_of(index.titles(index_engine, "ban sao cccd", scope=["H23.50"])) == [
        (TITLED, f"{TITLED}.001", False)]
    assert {t["dossierCode"] for t in index.titles(index_engine, "ban sao cccd")} == {TITLED, other}
    assert titles_of(index.titles(index_engine, "CCCD", code_prefix="H15.50")) == [(other, f"{other}.001", True)]
    # the citizen's name in the dossier's own title; "quyền sử dụng đất" as a phrase, whole words only
    assert titles_of(index.titles(index_engine, "nguyen van an")) == [(TITLED, None, False)]
    assert index.titles(index_engine, "Văn An")[0]["title"] == "Cấp phép xây dựng - Nguyễn Văn An"
    assert titles_of(index.titles(index_engine, '"quyen su dung dat"')) == [(TITLED, f"{TITLED}.002", False)]
    assert index.titles(index_engine, '"dat su dung"') == []
    assert index.titles(index_engine, "ao") == [] and index.titles(index_engine, "Nguyễn Văn Anh") == []


def test_a_name_is_found_in_titles_however_many_newer_titles_hold_its_letters_on_both_databases(index_engine,
                                                                                                 monkeypatch):
    """Review: the database looked for the letters ("an" is in every "Thanh" and "Anh") and kept the
    newest TITLE_SCAN, so an older "Trần Văn An" was cut before the whole words were checked. Also:
    full-width letters and a soft hyphen pasted from Word inside a word."""
    monkeypatch.setattr(index, "TITLE_SCAN", 3)
    index_titled(index_engine, title="Cấp phép xây dựng - Trần Văn An", doc_titles=("Bi\u00adên bản ＣＣＣＤ",))
    for n, given in enumerate(("Thanh", "Anh", "Toàn", "Quang", "Lan")):
        index_titled(index_engine, f"H23.50-261203-{n + 20:04d}", title=f"Đăng ký - Nguyễn Văn {given}",
                     doc_titles=("Đơn",))
    assert titles_of(index.titles(index_engine, "Văn An")) == [(TITLED, None, True)]
    assert titles_of(index.titles(index_engine, "biên bản cccd")) == [(TITLED, f"{TITLED}.001", True)]


def test_titles_found_come_with_the_first_page_of_hits_in_the_cli(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    index_titled(db.engine_for(settings.db_url))
    assert sohoa(["search", "ban", "sao", "cccd"], settings=settings) == 0
    out = capsys.readouterr().out
    assert f"{TITLED}  tài liệu {TITLED}.001  «Bản sao CCCD»" in out
    assert "Không trang nào chứa «ban sao cccd»." in out
    assert sohoa(["search", "--json", "Bản", "sao", "CCCD"], settings=settings) == 0
    assert json.loads(capsys.readouterr().out)["titles"] == [
        {"dossierCode": TITLED, "docId": f"{TITLED}.001", "title": "Bản sao CCCD", "exact": True}]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_titles_indexed_before_titles_were_searched_are_found_after_the_migration(backend, tmp_path):
    """Migration 0006 gives the titles already indexed their key: no reindex is needed."""
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'index.sqlite3'}" if backend == "sqlite"
               else stack.enter_context(throwaway_pg_database("sohoa_titles")))
        engine = sa.create_engine(url)
        stack.callback(engine.dispose)
        db.upgrade(engine, "0005")
        with engine.begin() as conn:  # what an index of the version before holds
            conn.execute(sa.text("INSERT INTO dossiers (code, title, updated, indexed_at) VALUES "
                                 "(:c, 'Cấp phép - Trần Thị Mỹ', '2026-12-01T09:00:00+07:00', :at)"),
                         {"c": TITLED, "at": datetime.now(timezone.utc)})
            conn.execute(sa.text("INSERT INTO documents (doc_id, dossier_code, sequence, title) "
                                 "VALUES (:d, :c, 1, 'Bản sao CCCD')"), {"c": TITLED, "d": f"{TITLED}.001"})
        db.upgrade(engine)
        assert titles_of(index.titles(engine, "ban sao cccd")) == [(TITLED, f"{TITLED}.001", False)]
        assert titles_of(index.titles(engine, "Trần Thị Mỹ")) == [(TITLED, None, True)]


def test_an_older_page_holding_the_phrase_is_found_beyond_the_newest_pages_holding_the_words(
        index_engine, monkeypatch):
    """The database ranks the newest pages holding every word; an older page holding the words as
    the phrase typed was left out when many newer pages held them apart (found by the search review
    at 25,500 pages: "giao quyền sử dụng đất")."""
    monkeypatch.setattr(index, "SCAN", 4)
    monkeypatch.setattr(index, "CANDIDATES", 4)
    old = "H14.01-990222-0157"
    index.index_dossier(index_engine, manifest_for(old, [["Quyết định giao quyền sử dụng đất cho hộ gia đình"]]),
                        {f"{old}.001": ["Quyết định giao quyền sử dụng đất cho hộ gia đình"]})
    for n in range(8):  # newer pages holding the same words, apart
        code = f"H23.50-261201-{n + 10:04d}"
        text = "Đất đai: quyền của người sử dụng, nhà nước giao"
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    (first, *_) = index.search(index_engine, "giao quyền sử dụng đất", limit=4)
    assert (first["dossierCode"], first["tier"]) == (old, "phrase")


def test_an_officers_scope_keeps_its_agency_and_those_under_it_on_both_databases(index_engine):
    """An officer searches within an agency's codes, every time: PostgreSQL now reads them as a
    range of codes (280 ms at 100,000 pages before, for a common word); the same dossiers on both
    databases, and no agency whose code merely starts with the same letters."""
    codes = {"own": "H23.50-261201-0001", "under": "H23.50.05.13-261201-0002", "shorter": "H23.5-261201-0003",
             "longer": "H23.501-261201-0004", "archive": "H23.50-2015-0005"}
    for code in codes.values():
        index.index_dossier(index_engine, manifest_for(code, [["Nghị định về đất đai"]]),
                            {f"{code}.001": ["Nghị định về đất đai"]})

    def found(scope) -> set[str]:
        return {h["dossierCode"] for h in index.search(index_engine, "nghị định", scope=scope)}

    assert found(["H23.50"]) == {codes["own"], codes["under"], codes["archive"]}
    assert found(["H23.5"]) == {codes["shorter"]}
    assert found(["H23.50.05.13", "H23.501"]) == {codes["under"], codes["longer"]}
    assert found([]) == set(codes.values())


def test_a_phrase_common_or_rare_among_the_pages_holding_its_words_finds_its_newest_pages(index_engine, monkeypatch):
    """PostgreSQL looks for a phrase newest first when it is common among the pages holding its
    words, through the word index when it is rare (a citizen's name: 600 ms at 100,000 pages),
    and for the words newest first when the newest pages hold them often (``PROBE``), else through
    the word index: every way finds the same pages, on both databases."""
    monkeypatch.setattr(index, "SCAN", 4)
    monkeypatch.setattr(index, "CANDIDATES", 4)
    monkeypatch.setattr(index, "PHRASE_SAMPLE", 4)
    monkeypatch.setattr(index, "PROBE", 4)

    def search(query: str) -> list:
        every_way = []
        for probe_hits in (1, 5):  # the words read newest first, or through the word index
            monkeypatch.setattr(index, "PROBE_HITS", probe_hits)
            every_way.append(index.search(index_engine, query, limit=4))
        assert every_way[0] == every_way[1]
        return every_way[0]

    def page(n: int, text: str) -> str:
        code = f"H23.50-261201-{n:04d}"
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
        return code

    named = [page(1, "Người nộp: Trần Hữu An, phường Kim Mã"), page(2, "Người nộp: Trần Hữu An, phường Ngọc Hà")]
    for n in range(3, 13):  # newer pages holding the words apart: the name is rare among them
        page(n, "Ông Trần Văn Hữu nộp thay bà Lê Thị An")
    found = search("Trần Hữu An")
    assert {h["dossierCode"] for h in found if h["tier"] == "phrase"} == set(named)
    common = [page(13, "Quyết định giao đất cho ông Trần Hữu An")]
    page(14, "Ông Trần Văn Hữu nộp thay bà Lê Thị An")
    common += [page(n, "Quyết định giao đất cho ông Trần Hữu An") for n in (15, 16, 17)]  # now common
    found = search("Trần Hữu An")
    assert {h["dossierCode"] for h in found} == set(common)


# -- search on both databases -----------------------------------------------------------

def test_words_without_diacritics_find_words_with_them(indexed):
    results = index.search(indexed, "nghi dinh")
    assert {r["dossierCode"] for r in results} == {A, B, C}
    first_a = next(r for r in results if r["dossierCode"] == A)
    assert first_a["docId"] == f"{A}.001" and first_a["page"] == 1
    assert "[Nghị định]" in first_a["snippet"] and first_a["tier"] == "phrase-folded"
    assert set(first_a) >= {"dossierCode", "docId", "page", "snippet", "score", "exact", "tier"}


def test_exact_diacritics_rank_first(indexed):
    results = index.search(indexed, "Nghị định")
    assert hits_of(results)[0] == (A, f"{A}.001", 1)
    assert results[0]["exact"] and not any(r["exact"] for r in results[1:])
    assert {r["dossierCode"] for r in results} == {A, B, C}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    plain = index.search(indexed, "nghi dinh")
    assert plain[0]["dossierCode"] == C and plain[0]["exact"]  # the literal spelling is the exact one

    lowered = index.search(indexed, "nghỉ đình")
    assert lowered[0]["dossierCode"] == B and lowered[0]["exact"]


def test_d_with_stroke_folds_to_d(indexed):
    assert hits_of(index.search(indexed, "duong tran phu da nang")) == [(A, f"{A}.001", 2)]
    assert hits_of(index.search(indexed, "ĐÀ NẴNG")) == [(A, f"{A}.001", 2)]


def test_phrases(indexed):
    assert {r["dossierCode"] for r in index.search(indexed, "quy dinh")} == {A, B}  # B: "quy chế định kỳ"
    assert [(r["dossierCode"], r["tier"]) for r in index.search(indexed, "quy dinh")] == [(A, "phrase-folded"), (B, "near")]
    assert hits_of(index.search(indexed, '"quy dinh"')) == [(A, f"{A}.001", 1)]
    assert hits_of(index.search(indexed, '"đăng ký hộ kinh doanh"')) == [(A, f"{A}.002", 1)]
    assert index.search(indexed, '"kinh doanh hộ"') == []
    assert hits_of(index.search(indexed, "NĐ-CP")) == [(A, f"{A}.001", 1)]


@pytest.mark.parametrize("prefix_pages", [2000, 0], ids=["narrow", "broad"])
def test_dossier_code_prefix(indexed, monkeypatch, prefix_pages):
    """SQLite reads a prefix holding few pages from the code's index and a broad one through
    FTS5 (PREFIX_PAGES decides); the officer sees the same pages either way."""
    monkeypatch.setattr(index, "PREFIX_PAGES", prefix_pages)
    assert {r["dossierCode"] for r in index.search(indexed, "nghi dinh", code_prefix="H23.50")} == {A, B}
    assert {r["dossierCode"] for r in index.search(indexed, "nghi dinh", code_prefix="h15")} == {C}
    assert index.search(indexed, "nghi dinh", code_prefix="H99") == []
    assert index.search(indexed, "nghi dinh", code_prefix=A + "%") == []


def test_limit_empty_and_hostile_queries(indexed):
    assert len(index.search(indexed, "nghi dinh", limit=2)) == 2
    assert index.search(indexed, "nghi dinh", limit=0) == []
    for query in ("", "   ", '"', "-", "*", '" "'):
        with pytest.raises(QueryError):
            index.search(indexed, query)
    for query in ("AND OR NOT", "'; DROP TABLE pages; --", "NEAR(a b)", "text : x", "a <-> b & !c", "tsv:*"):
        index.search(indexed, query)  # never a syntax error
    assert index.search(indexed, "khongcotu") == []
    assert index.search(indexed, "or") == []


def test_nfd_text_and_queries_are_normalised(index_engine):
    nfd = unicodedata.normalize("NFD", "Quyết định số 7")
    index.index_dossier(index_engine, manifest_for(A, [[nfd]]), {f"{A}.001": [nfd]})
    assert hits_of(index.search(index_engine, "Quyết định")) == [(A, f"{A}.001", 1)]
    assert index.search(index_engine, unicodedata.normalize("NFD", "Quyết định"))[0]["exact"]


def test_indexing_a_dossier_again_replaces_it(indexed):
    index.index_dossier(indexed, manifest_for(A, [["Quyết định mới"]]), {f"{A}.001": ["Quyết định mới"]})
    assert A not in {r["dossierCode"] for r in index.search(indexed, "nghi dinh")}
    assert hits_of(index.search(indexed, "quyet dinh moi")) == [(A, f"{A}.001", 1)]
    with indexed.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(index.documents)
                            .where(index.documents.c.dossier_code == A)).scalar() == 1
        assert conn.execute(sa.select(index.events.c.type).where(index.events.c.dossier_code == A)).scalars().all() == ["ingest"]


def test_indexing_a_new_document_keeps_the_other_documents_of_the_dossier(index_engine):
    first = manifest_for(A, TEXTS[A][:1])
    index.index_dossier(index_engine, first, {f"{A}.001": TEXTS[A][0]})
    both = manifest_for(A, TEXTS[A])
    index.index_dossier(index_engine, both, {f"{A}.002": TEXTS[A][1]})  # what ingest passes
    assert hits_of(index.search(index_engine, "nghi dinh")) == [(A, f"{A}.001", 1)]
    assert hits_of(index.search(index_engine, "kinh doanh")) == [(A, f"{A}.002", 1)]
    index.index_dossier(index_engine, manifest_for(A, TEXTS[A][1:]) | {"documents": both["documents"][1:]}, {})
    assert index.search(index_engine, "nghi dinh") == []  # a document no longer listed is dropped
    assert hits_of(index.search(index_engine, "kinh doanh")) == [(A, f"{A}.002", 1)]


def test_the_schema_version_a_command_expects_is_alembics_newest():
    """Commands compare the database's schema version with the newest migration without
    importing alembic; a migration added or renamed must not make them skip an upgrade."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    assert db.head_revision() == ScriptDirectory.from_config(config).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_a_newer_sohoa_migrated_is_refused_saying_so_and_left_alone(backend, tmp_path, capsys):
    """An upgrade rolled back without its database: the older code said to run 'sohoa db upgrade',
    which then failed as an unexpected error (exit 70) on a revision it did not know, and on SQLite
    every command did (upgrade review). Now: exit 15, saying what happened and what to do."""
    from pipeline.errors import ExitCode

    with contextlib.ExitStack() as stack:
        home = tmp_path / "home"
        if backend == "sqlite":
            settings = Settings(home=home)
            url = f"sqlite:///{home / 'index.sqlite3'}"
            home.mkdir()
        else:
            url = stack.enter_context(throwaway_pg_database("sohoa_newer"))
            settings = Settings(home=home, index=IndexSettings(database_url=url))
        engine = sa.create_engine(url)
        stack.callback(engine.dispose)
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {db.VERSION_TABLE} SET version_num = '0999'"))
        for command in (["search", "quy định"], ["db", "upgrade"]):
            db.close_all()
            db._engines.clear()
            assert sohoa(command, settings=settings) == ExitCode.DATABASE, command
            err = capsys.readouterr().err
            assert "phiên bản sohoa mới hơn nâng lên lược đồ 0999" in err and "khôi phục bản sao lưu" in err, err
        assert db.current_revision(engine) == "0999"


def test_threads_opening_a_new_embedded_database_at_once_all_get_in(tmp_path):
    """The first connections to a new SQLite file switch it to WAL; one command's threads (the
    signing key is opened beside the work) open it at the same moment and must all succeed."""
    import threading

    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'moi-{attempt}.sqlite'}"
        engines = [db.create_engine(url) for _ in range(6)]
        start, errors = threading.Barrier(len(engines)), []

        def first_use(engine) -> None:
            start.wait()
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=first_use, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with engines[0].connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_migrations_are_idempotent_and_create_the_full_text_machinery(index_engine):
    db.upgrade(index_engine)
    with index_engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {db.VERSION_TABLE}")).scalar() == db.head_revision()
        if index_engine.dialect.name == "sqlite":
            assert conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'pages_fts'")).scalar().startswith(
                "CREATE VIRTUAL TABLE pages_fts USING fts5")
        else:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_ts_config WHERE cfgname = 'sohoa_unaccent'")).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_pages_tsv'")).scalar() == 1
            conn.execute(sa.text("SET enable_seqscan = off"))
            plan = "\n".join(conn.execute(sa.text(
                "EXPLAIN SELECT id FROM pages WHERE tsv @@ websearch_to_tsquery('sohoa_unaccent', 'nghi dinh')")).scalars())
            assert "ix_pages_tsv" in plan
            # a page's tsvector is read with its row, not from TOAST, when a phrase is checked (0008)
            storage = dict(conn.execute(sa.text(
                "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'pages'::regclass AND attnum > 0 "
                "AND NOT attisdropped")).all())
            assert storage["tsv"] == "m" and "tsv_exact" not in storage


# -- storage is the truth -------------------------------------------------------------------

def test_reindex_on_an_empty_database_restores_the_same_results(any_store, index_engine):
    for code in TEXTS:
        store_dossier(any_store, code)
        index.index_dossier(index_engine, manifest_for(code, TEXTS[code]), page_texts_for(code))
    queries = ["nghi dinh", "Nghị định", '"quy dinh"', "đường", "kinh doanh"]
    before = {q: index.search(index_engine, q) for q in queries}
    before_prefix = index.search(index_engine, "nghi dinh", code_prefix="H15")

    index.forget_dossier(index_engine, A)
    index.forget_dossier(index_engine, B)
    index.forget_dossier(index_engine, C)
    assert index.search(index_engine, "nghi dinh") == []

    totals = index.reindex(any_store, index_engine)
    assert totals == {"dossiers": 3, "documents": 4, "pages": 5, "errors": []}
    assert {q: index.search(index_engine, q) for q in queries} == before
    assert index.search(index_engine, "nghi dinh", code_prefix="H15") == before_prefix


def test_after_reindex_the_newest_pages_are_still_those_of_the_dossiers_changed_last(any_store, index_engine,
                                                                                     monkeypatch):
    """A common word is ranked among the newest pages holding it (``SCAN``). ``reindex`` indexed the
    dossiers in code order, so after a rebuild the "newest" were the last codes (an agency's, an old
    import's), whatever had just been received; they are indexed in the order they last changed."""
    monkeypatch.setattr(index, "SCAN", 1)
    monkeypatch.setattr(index, "CANDIDATES", 1)
    changed = {"H99.01-990101-0001": "2026-12-04T15:00:00+07:00",  # last code, changed an hour before
               "H23.50-261204-0002": "2026-12-04T09:00:00+00:00",  # changed last (UTC: 16:00 in Hà Nội)
               "H10.01-261203-0003": "2026-12-03T10:00:00+07:00"}
    for code, at in changed.items():
        text = f"Đơn đề nghị của công dân, hồ sơ {code}"
        manifest = manifest_for(code, [[text]]) | {"updated": at, "created": "2020-01-01T00:00:00+07:00"}
        any_store.put(manifest["documents"][0]["text"]["key"], text.encode(), "text/plain; charset=utf-8")
        any_store.put(keys.manifest(code), json.dumps(manifest, ensure_ascii=False).encode(), "application/json")
    assert index.reindex(any_store, index_engine)["dossiers"] == 3
    assert [h["dossierCode"] for h in index.search(index_engine, "đơn", limit=1)] == ["H23.50-261204-0002"]


def test_reindex_drops_what_storage_no_longer_holds_and_reports_broken_dossiers(tmp_path, sqlite_engine):
    """A dossier whose manifest cannot be read is left out; one document whose text cannot be
    read is named, and the other documents of its dossier stay findable (the whole dossier
    left the index, found hands-on after a restore)."""
    from storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    store_dossier(store, A)
    store_dossier(store, C)
    index.index_dossier(sqlite_engine, manifest_for(B, TEXTS[B]), page_texts_for(B))  # not in storage
    broken_key = keys.document_text(A, f"{A}.002")
    (tmp_path / "store" / broken_key).write_bytes(b"bit rot")  # the manifest's SHA-256 no longer matches
    (tmp_path / "store" / keys.manifest(C)).write_bytes(b"{ not json")

    totals = index.reindex(store, sqlite_engine)
    assert (totals["dossiers"], totals["documents"], totals["pages"]) == (1, 2, 2)
    assert {(e["dossierCode"], e.get("docId")) for e in totals["errors"]} == {(A, f"{A}.002"), (C, None)}
    assert {r["dossierCode"] for r in index.search(sqlite_engine, "nghi dinh")} == {A}
    assert index.search(sqlite_engine, "kinh doanh") == []


# -- CLI handlers -------------------------------------------------------------------------------

def search_args(*query, json_output=False, code_prefix=None, limit=20):
    args = ["search", *query, "--limit", str(limit)]
    return args + (["--json"] if json_output else []) + (["--code-prefix", code_prefix] if code_prefix else [])


def test_cli_reindex_then_search_on_s3_and_postgresql(tmp_path, s3_settings, pg_url, capsys):
    from storage.s3 import S3Store

    store = S3Store.connect(**s3_settings)
    for code in TEXTS:
        store_dossier(store, code)
    settings = Settings(home=tmp_path / "home", storage="s3", index=IndexSettings(pg_url), s3=S3Settings(**s3_settings))
    with db.engine_for(settings.db_url).begin() as conn:
        for table in (index.pages, index.events, index.documents, index.dossiers):
            conn.execute(table.delete())

    assert sohoa(["reindex"], settings=settings) == 0
    assert "3 hồ sơ, 4 tài liệu, 5 trang" in capsys.readouterr().out

    assert sohoa(search_args("nghi", "dinh", json_output=True), settings=settings) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["query"] == "nghi dinh"
    assert {h["dossierCode"] for h in payload["hits"]} == {A, B, C}

    assert sohoa(search_args("Nghị định", code_prefix="H23"), settings=settings) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[1] == A and "[Nghị định]" in out and "khớp đúng dấu" in out

    assert sohoa(search_args("khongcotu"), settings=settings) == 0
    assert "Không tìm thấy" in capsys.readouterr().out


def test_cli_search_on_the_default_sqlite_index(tmp_path, capsys):
    from storage.local import LocalStore

    settings = Settings(home=tmp_path / "home")
    store = LocalStore(settings.home / "store")
    store_dossier(store, A)
    # an index lost (or never built) while the store holds dossiers: a search found nothing, silently
    assert sohoa(search_args("dang ky ho kinh doanh"), settings=settings) == 0
    out, err = capsys.readouterr()
    assert "Không tìm thấy" in out and "chạy 'sohoa reindex'" in err, (out, err)
    assert sohoa(["reindex", "--json"], settings=settings) == 0
    assert json.loads(capsys.readouterr().out)["pages"] == 3
    assert (settings.home / "index.sqlite3").is_file()
    assert sohoa(search_args("dang ky ho kinh doanh"), settings=settings) == 0
    assert f"{A}.002, trang 1" in capsys.readouterr().out
    assert sohoa(search_args("khongcotu"), settings=settings) == 0
    assert "sohoa reindex" not in capsys.readouterr().err  # nothing found in a built index: no hint
    # a code typed, whole or its start, any case, with the dashes Word puts in: its dossier (the
    # command line said "Không tìm thấy kết quả nào"; the web's search box listed it)
    for typed in (A, A.lower()[:9], A.replace("-", "\u2013")):
        assert sohoa(search_args(typed), settings=settings) == 0
        assert f"\n  {A}  2 tài liệu, 3 trang" in capsys.readouterr().out, typed
    assert sohoa(search_args(A, json_output=True), settings=settings) == 0
    assert json.loads(capsys.readouterr().out)["dossiers"][0]["dossierCode"] == A


def test_cli_refuses_an_empty_search_as_a_usage_error(tmp_path, capsys):
    from pipeline.errors import ExitCode

    settings = Settings(home=tmp_path / "home")
    for query in ([""], ["  "], ["-", "*"]):
        assert sohoa(search_args(*query), settings=settings) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert err.startswith("LỖI: ") and ("Chưa nhập nội dung cần tìm" in err or "không có từ nào" in err)


def test_a_search_piped_to_head_ends_quietly(tmp_path):
    """`sohoa search … | head` ended with "LỖI không mong đợi: BrokenPipeError" and a traceback in
    errors.log (search review): the reader of the output going away is not an error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings = Settings(home=tmp_path / "home")
    engine = db.engine_for(settings.db_url)
    for n in range(60):  # more hits than a pipe's buffer holds as text
        code = f"H23.50-261201-{n + 1:04d}"
        text = "Nghị định số 15/2020/NĐ-CP quy định xử phạt vi phạm hành chính " * 4
        index.index_dossier(engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    engine.dispose()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")}, "SOHOA_HOME": str(settings.home)}
    run = subprocess.Popen([str(Path(sys.executable).with_name("sohoa")), "search", "nghị định", "--limit", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    run.stdout.close()  # the reader gone before the first line
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 141, err
    assert "LỖI" not in err and not (settings.home / "logs" / "errors.log").exists()


def test_a_number_typed_in_one_run_finds_it_however_the_page_groups_its_digits(index_engine):
    """Officers look citizens up by identity number; pages print it grouped, and the number typed
    in one run found nothing (search review: "031190004567" against "031 190 004 567")."""
    pages = {"H23.50-261205-0001": "Họ tên: Trần Văn Bình. Số CCCD: 031 190 004 567, cấp ngày 12/3/2021",
             "H23.50-261205-0002": "Số CCCD: 051-190-001-234 CMND cũ: 212.345.678 điện thoại 0905 123 456",
             "H23.50-261205-0003": "Mã số 031 thuộc nhóm 190, mục 567: không phải số đó"}
    for code, text in pages.items():
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    for typed, code, shown in (("031190004567", "H23.50-261205-0001", "[031 190 004 567]"),
                               ("051190001234", "H23.50-261205-0002", "[051-190-001-234]"),
                               ("212345678", "H23.50-261205-0002", "[212.345.678]"),
                               ("0905123456", "H23.50-261205-0002", "[0905 123 456]")):
        hits = index.search(index_engine, typed)
        assert [(h["dossierCode"], h["tier"]) for h in hits] == [(code, "phrase")], typed
        assert shown in hits[0]["snippet"], typed
    assert index.search(index_engine, "031190004") == []  # the start of a number is not the number
    assert index.search(index_engine, "190004567") == []  # nor its end (another citizen's number)
    # in one run beside other numbers: a table's row, a date, a list (the review of the change: found
    # nothing, where the words' search had found them)
    rows = {"H23.50-261205-0004": "STT Họ tên CCCD\n1 031190004577 Trần Văn Bình",
            "H23.50-261205-0005": "CCCD 051190001244 12/05/2021 Hà Nội",
            "H23.50-261205-0006": "Số CCCD:031190004568,031190004569"}
    for code, text in rows.items():
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    for typed, code in (("031190004577", "H23.50-261205-0004"), ("051190001244", "H23.50-261205-0005"),
                        ("031190004569", "H23.50-261205-0006")):
        assert [h["dossierCode"] for h in index.search(index_engine, typed)] == [code], typed


def test_hits_come_page_after_page_and_say_when_more_follow(tmp_path, capsys):
    """The API ignored an offset, and the command line and the web said "Tìm thấy 20 kết quả" when
    20 was only the limit (search review)."""
    settings = Settings(home=tmp_path / "home")
    engine = db.engine_for(settings.db_url)
    for n in range(7):
        code = f"H23.50-261201-{n + 1:04d}"
        text = f"Nghị định số {n + 1}/2020/NĐ-CP quy định xử phạt"
        index.index_dossier(engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    engine.dispose()
    from pipeline import service

    first = service.search(settings, "nghị định", limit=3)
    second = service.search(settings, "nghị định", limit=3, offset=3)
    last = service.search(settings, "nghị định", limit=3, offset=6)
    seen = [h.dossier_code for r in (first, second, last) for h in r.hits]
    assert len(seen) == 7 == len(set(seen)) and (first.more, second.more, last.more) == (True, True, False)
    assert sohoa(search_args("nghị định", limit=3), settings=settings) == 0
    out = capsys.readouterr().out
    assert "Tìm thấy 3 kết quả cho «nghị định» (còn nữa: --offset 3):" in out
    assert sohoa([*search_args("nghị định", limit=3), "--offset", "6"], settings=settings) == 0
    assert "Kết quả 7-7 cho «nghị định»:" in capsys.readouterr().out


def test_paging_shows_every_hit_once(index_engine, monkeypatch):
    """The candidates ranked grew with the offset, so a later page could rank older pages above
    those already shown: 160 hits paged by 50 showed 60 twice and 60 never (review of the offset)."""
    monkeypatch.setattr(index, "SCAN", 10)
    monkeypatch.setattr(index, "CANDIDATES", 10)
    for n in range(25):  # the older a page, the more often it says it
        code = f"H23.50-261201-{n + 1:04d}"
        text = "thuế đất " * (25 - n) + "kê khai"
        index.index_dossier(index_engine, manifest_for(code, [[text]]), {f"{code}.001": [text]})
    shown = [h["dossierCode"] for offset in range(0, 12, 4) for h in index.search(index_engine, "thuế đất", limit=4,
                                                                                  offset=offset)]
    assert len(shown) == len(set(shown)) == 10
