"""The search index: dossiers, documents, pages and events in a relational database.

SQLite under SOHOA_HOME by default, PostgreSQL when SOHOA_DATABASE_URL is set; the schema
is made by the Alembic migrations shipped in storage/migrations. The index is a cache of
object storage: ``reindex`` rebuilds it from the manifests and text objects alone.

Search uses the database's own full-text machinery and finds words with or without
diacritics ("nghi dinh" finds "Nghị định"); pages whose words match with the exact
diacritics rank first. Vietnamese syllables are the tokens, so quoted phrases ("...") and
hyphenated or slashed chunks (NĐ-CP) match as adjacent syllables.

- SQLite: FTS5 over ``text`` (diacritics kept, case folded) and ``text_folded`` (the same
  text with diacritics removed character by character, see ``fold``).
- PostgreSQL: tsvector columns ``tsv_exact`` ('simple') and ``tsv`` ('sohoa_unaccent':
  unaccent then simple, which folds đ to d) with a GIN index; the database needs a UTF-8
  ctype (C.UTF-8, vi_VN.UTF-8) so that capital Vietnamese letters are lower-cased.
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import StorageConfigError

VERSION_TABLE = "sohoa_schema_version"
MIGRATIONS = Path(__file__).with_name("migrations")
MARK = ("[", "]")
SNIPPET_CHARS = 160
_HIT_START, _HIT_END = "\x02", "\x03"
_TOKEN = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"?')

log = logging.getLogger(__name__)

metadata = sa.MetaData()
dossiers = sa.Table(
    "dossiers", metadata,
    sa.Column("code", sa.String(100), primary_key=True),
    sa.Column("title", sa.Text), sa.Column("maintenance", sa.String(8)), sa.Column("state", sa.String(32)),
    sa.Column("total_doc", sa.Integer), sa.Column("number_of_page", sa.Integer),
    sa.Column("created", sa.String(40)), sa.Column("updated", sa.String(40)),
    sa.Column("manifest_sha256", sa.String(64)), sa.Column("indexed_at", sa.DateTime(timezone=True)),
)
documents = sa.Table(
    "documents", metadata,
    sa.Column("doc_id", sa.String(120), primary_key=True), sa.Column("dossier_code", sa.String(100)),
    sa.Column("sequence", sa.Integer), sa.Column("title", sa.Text), sa.Column("number_of_page", sa.Integer),
    sa.Column("created", sa.String(40)), sa.Column("input_sha256", sa.String(64)),
    sa.Column("pdf_key", sa.Text), sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("text_key", sa.Text), sa.Column("text_sha256", sa.String(64)),
)
pages = sa.Table(
    "pages", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("dossier_code", sa.String(100)),
    sa.Column("doc_id", sa.String(120)), sa.Column("number", sa.Integer),
    sa.Column("text", sa.Text), sa.Column("text_folded", sa.Text),
)
events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("dossier_code", sa.String(100)),
    sa.Column("doc_id", sa.String(120)), sa.Column("at", sa.String(40)), sa.Column("type", sa.String(40)),
    sa.Column("outcome", sa.String(20)), sa.Column("detail", sa.Text),
)


# -- text ----------------------------------------------------------------------

def nfc(text: str | None) -> str:
    return unicodedata.normalize("NFC", text or "")


def _fold_char(ch: str) -> str:
    if ch in "đĐ":  # a letter of its own, not d plus a combining mark: NFD leaves it alone
        return "d" if ch == "đ" else "D"
    decomposed = unicodedata.normalize("NFD", ch)
    base = decomposed[0]
    if len(decomposed) > 1 and all(unicodedata.combining(c) for c in decomposed[1:]) and not unicodedata.combining(base):
        return base
    return ch


def fold(text: str) -> str:
    """NFC text without diacritics, one character for one, so offsets stay valid."""
    return "".join(_fold_char(ch) for ch in nfc(text))


def parse_query(query: str) -> list[list[str]]:
    """Terms of a query, each a list of adjacent tokens (a phrase when longer than one).

    Quoted text is one phrase; outside quotes every whitespace-separated chunk is a term,
    so 'NĐ-CP' is the phrase ['NĐ', 'CP']. Tokens are what FTS5's unicode61 tokenizer sees.
    """
    terms: list[list[str]] = []
    query = nfc(query)
    position = 0
    for quoted in _PHRASE.finditer(query):
        terms += [t for chunk in query[position:quoted.start()].split() if (t := _TOKEN.findall(chunk))]
        if tokens := _TOKEN.findall(quoted.group(1)):
            terms.append(tokens)
        position = quoted.end()
    terms += [t for chunk in query[position:].split() if (t := _TOKEN.findall(chunk))]
    return terms


def fts5_match(terms: list[list[str]], column: str, folded: bool) -> str:
    """An FTS5 MATCH expression: every term in column, each term as a quoted phrase."""
    phrases = []
    for tokens in terms:
        words = " ".join(fold(t) if folded else t for t in tokens)
        phrases.append('"' + words.replace('"', '""') + '"')
    return f"{column} : ({' AND '.join(phrases)})"


def websearch_query(terms: list[list[str]]) -> str:
    """The parsed terms in websearch_to_tsquery syntax: each quoted (so 'or' is a word), ANDed."""
    return " ".join('"' + " ".join(tokens) + '"' for tokens in terms)


def snippet_from_highlight(text: str, marked: str, width: int = SNIPPET_CHARS, mark=MARK) -> str:
    """A snippet of the original text around the first hit, from a highlight of its folded copy.

    ``marked`` is the folded text with hits wrapped in \\x02..\\x03; folding keeps offsets,
    so the hits sit at the same places in the original text.
    """
    hits, plain_len, start = [], 0, None
    for ch in marked:
        if ch == _HIT_START:
            start = plain_len
        elif ch == _HIT_END:
            if start is not None:
                hits.append((start, plain_len))
            start = None
        else:
            plain_len += 1
    if plain_len != len(text):
        text = marked.replace(_HIT_START, "").replace(_HIT_END, "")
    first = hits[0][0] if hits else 0
    lo = max(0, first - width // 3)
    hi = min(len(text), lo + width)
    if lo > 0 and (space := text.rfind(" ", 0, lo)) >= 0 and lo - space < 20:
        lo = space + 1
    if hi < len(text) and (space := text.find(" ", hi)) >= 0 and space - hi < 20:
        hi = space
    pieces, cursor = [], lo
    for a, b in hits:
        if b <= lo or a >= hi:
            continue
        a, b = max(a, lo), min(b, hi)
        pieces += [text[cursor:a], mark[0], text[a:b], mark[1]]
        cursor = b
    pieces.append(text[cursor:hi])
    body = " ".join("".join(pieces).split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def score(exact: bool, relevance: float) -> float:
    """Exact-diacritic pages above all others, then by relevance: in [0, 2), higher is better."""
    relevance = max(0.0, float(relevance or 0.0))
    return round((1.0 if exact else 0.0) + relevance / (1.0 + relevance), 6)


# -- database ------------------------------------------------------------------

def database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.execute("PRAGMA journal_mode = WAL")  # searches keep reading while an ingest writes
    cursor.close()


def open_index(url: str, migrate_schema: bool = True) -> Engine:
    """An engine on the index database, migrated to the latest schema."""
    url = database_url(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    if migrate_schema:
        migrate(engine)
        if engine.dialect.name == "postgresql":
            _warn_unless_utf8_ctype(engine)
    return engine


def _warn_unless_utf8_ctype(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT lower('ĐỊNH')")).scalar() != "định":
            log.warning("Cơ sở dữ liệu PostgreSQL không chữ thường hóa được chữ hoa tiếng Việt (LC_CTYPE không phải "
                        "UTF-8): tìm kiếm sẽ phân biệt hoa thường. Tạo CSDL với LC_CTYPE 'C.UTF-8' hoặc 'vi_VN.UTF-8'.")


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """The migrated index engine for the database at ``url``, one per URL and process."""
    url = database_url(url)
    if url not in _engines:
        _engines[url] = open_index(url)
    return _engines[url]


def migrate(engine: Engine, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _documents_of(manifest: dict) -> list[dict]:
    return [d for d in manifest.get("documents") or [] if d.get("docId")]


def _kept_page_texts(conn: Connection, code: str, doc_ids: set[str]) -> dict[str, list[str]]:
    """Indexed page texts of these documents, so indexing one new document keeps the others."""
    if not doc_ids:
        return {}
    rows = conn.execute(sa.select(pages.c.doc_id, pages.c.text)
                        .where(pages.c.dossier_code == code, pages.c.doc_id.in_(sorted(doc_ids)))
                        .order_by(pages.c.doc_id, pages.c.number)).all()
    kept: dict[str, list[str]] = {}
    for doc_id, text in rows:
        kept.setdefault(doc_id, []).append(text)
    return kept


def _index_dossier(conn: Connection, manifest: dict, page_texts: dict[str, list[str]]) -> dict:
    code = nfc(manifest["dossierCode"])
    page_texts = {nfc(k): v for k, v in page_texts.items()}
    listed = {nfc(d["docId"]) for d in _documents_of(manifest)}
    page_texts = _kept_page_texts(conn, code, listed - set(page_texts)) | page_texts
    _forget_dossier(conn, code)
    conn.execute(dossiers.insert().values(
        code=code, title=nfc(manifest.get("title")), maintenance=manifest.get("maintenance"),
        state=manifest.get("state") or "stored", total_doc=manifest.get("totalDoc"),
        number_of_page=manifest.get("numberOfPage"), created=manifest.get("created"),
        updated=manifest.get("updated"), manifest_sha256=manifest.get("_sha256"),
        indexed_at=datetime.now(timezone.utc)))
    page_rows, doc_rows = [], []
    for doc in _documents_of(manifest):
        doc_id = nfc(doc["docId"])
        doc_rows.append(dict(
            doc_id=doc_id, dossier_code=code, sequence=doc.get("sequence"), title=nfc(doc.get("title")),
            number_of_page=doc.get("numberOfPage"), created=doc.get("created"),
            input_sha256=doc.get("inputSha256"), pdf_key=(doc.get("pdf") or {}).get("key"),
            pdf_sha256=(doc.get("pdf") or {}).get("sha256"), text_key=(doc.get("text") or {}).get("key"),
            text_sha256=(doc.get("text") or {}).get("sha256")))
        for number, text in enumerate(page_texts.get(doc_id) or [], start=1):
            text = nfc(text)
            page_rows.append(dict(dossier_code=code, doc_id=doc_id, number=number, text=text, text_folded=fold(text)))
    event_rows = [dict(dossier_code=code, doc_id=e.get("docId"), at=e.get("at"), type=e.get("type"),
                       outcome=e.get("outcome"), detail=nfc(e.get("detail")))
                  for e in manifest.get("events") or []]
    if doc_rows:
        conn.execute(documents.insert(), doc_rows)
    if page_rows:
        conn.execute(pages.insert(), page_rows)
    if event_rows:
        conn.execute(events.insert(), event_rows)
    return {"dossiers": 1, "documents": len(doc_rows), "pages": len(page_rows)}


def _forget_dossier(conn: Connection, code: str) -> None:
    for table in (pages, events, documents):
        conn.execute(table.delete().where(table.c.dossier_code == code))
    conn.execute(dossiers.delete().where(dossiers.c.code == code))


def index_dossier(engine: Engine, manifest: dict, page_texts: dict[str, list[str]]) -> dict:
    """Make the index hold this manifest's dossier, documents and events.

    ``page_texts`` gives the pages of the documents to (re)index; documents the manifest
    lists but page_texts does not keep the text already indexed for them (the pipeline
    passes only the document it just added). Documents no longer listed are dropped.
    """
    with engine.begin() as conn:
        return _index_dossier(conn, manifest, page_texts)


def forget_dossier(engine: Engine, code: str) -> None:
    with engine.begin() as conn:
        _forget_dossier(conn, nfc(code))


def search(engine: Engine, query: str, code_prefix: str | None = None, limit: int = 20) -> list[dict]:
    """Pages matching every term of the query, best first.

    Each hit: dossier code, docId, page number, snippet (hits in [brackets]), score
    (see ``score``) and exact (all terms matched with their diacritics).
    """
    terms = parse_query(query)
    if not terms or limit <= 0:
        return []
    prefix = nfc(code_prefix).strip().upper() if code_prefix else None
    if engine.dialect.name == "sqlite":
        return _search_sqlite(engine, terms, prefix, limit)
    if engine.dialect.name == "postgresql":
        return _search_postgresql(engine, terms, prefix, limit)
    raise StorageConfigError(f"Cơ sở dữ liệu không được hỗ trợ cho tìm kiếm: {engine.dialect.name}",
                             f"unsupported index database: {engine.dialect.name}")


def _search_sqlite(engine: Engine, terms, prefix: str | None, limit: int) -> list[dict]:
    sql = (
        "SELECT p.dossier_code, p.doc_id, p.number, p.text, "
        "       highlight(pages_fts, 1, char(2), char(3)) AS marked, "
        "       -bm25(pages_fts, 0.0, 1.0) AS relevance, "
        "       p.id IN (SELECT rowid FROM pages_fts WHERE pages_fts MATCH :exact) AS exact "
        "FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid "
        "WHERE pages_fts MATCH :folded "
        + ("AND substr(p.dossier_code, 1, :prefix_len) = :prefix " if prefix else "")
        + "ORDER BY exact DESC, relevance DESC, p.dossier_code, p.doc_id, p.number LIMIT :limit")
    params = {"folded": fts5_match(terms, "text_folded", folded=True),
              "exact": fts5_match(terms, "text", folded=False), "limit": limit}
    if prefix:
        params.update(prefix=prefix, prefix_len=len(prefix))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).mappings().all()
    return [{"dossierCode": r["dossier_code"], "docId": r["doc_id"], "page": r["number"],
             "snippet": snippet_from_highlight(r["text"], r["marked"]),
             "score": score(bool(r["exact"]), r["relevance"]), "exact": bool(r["exact"])} for r in rows]


def _search_postgresql(engine: Engine, terms, prefix: str | None, limit: int) -> list[dict]:
    sql = (
        "WITH q AS (SELECT websearch_to_tsquery('sohoa_unaccent', :query) AS folded, "
        "                  websearch_to_tsquery('simple', :query) AS exact), "
        "hits AS ("
        "  SELECT p.dossier_code, p.doc_id, p.number, p.text, q.folded, "
        "         ts_rank(p.tsv, q.folded) AS relevance, (p.tsv_exact @@ q.exact) AS exact "
        "  FROM pages p, q WHERE p.tsv @@ q.folded "
        + ("  AND left(p.dossier_code, :prefix_len) = :prefix " if prefix else "")
        + "  ORDER BY exact DESC, relevance DESC, p.dossier_code, p.doc_id, p.number LIMIT :limit) "
        "SELECT dossier_code, doc_id, number, relevance, exact, "
        "       ts_headline('sohoa_unaccent', text, folded, :options) AS snippet "
        "FROM hits ORDER BY exact DESC, relevance DESC, dossier_code, doc_id, number")
    params = {"query": websearch_query(terms), "limit": limit,
              "options": f"StartSel={MARK[0]}, StopSel={MARK[1]}, MaxWords=30, MinWords=12"}
    if prefix:
        params.update(prefix=prefix, prefix_len=len(prefix))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).mappings().all()
    return [{"dossierCode": r["dossier_code"], "docId": r["doc_id"], "page": r["number"],
             "snippet": " ".join(r["snippet"].split()),
             "score": score(bool(r["exact"]), r["relevance"]), "exact": bool(r["exact"])} for r in rows]


# -- rebuild from storage --------------------------------------------------------

def read_dossier(store, code: str) -> tuple[dict, dict[str, list[str]]]:
    """A dossier's manifest and its documents' page texts, from object storage alone."""
    from . import keys
    from .base import sha256

    raw = store.get(keys.manifest(code))
    manifest = json.loads(raw.decode("utf-8"))
    manifest["_sha256"] = sha256(raw)
    page_texts = {}
    for doc in _documents_of(manifest):
        text_ref = doc.get("text") or {}
        key = text_ref.get("key") or keys.document_text(code, doc["docId"])
        if text_ref or store.exists(key):
            text = store.get(key, sha256=text_ref.get("sha256")).decode("utf-8")
            page_texts[doc["docId"]] = text.split("\f")
    return manifest, page_texts


def reindex(store, engine: Engine) -> dict:
    """Rebuild the whole index from the manifests and text objects in storage.

    One transaction: searches see the old index until the new one is complete. A dossier
    that cannot be read is reported in ``errors`` and left out.
    """
    from . import keys

    codes = keys.codes_from_keys(store.list(keys.PREFIX))
    totals = {"dossiers": 0, "documents": 0, "pages": 0, "errors": []}
    loaded = []
    for code in codes:
        try:
            loaded.append(read_dossier(store, code))
        except Exception as error:  # one broken dossier must not stop the rebuild
            log.warning("reindex: %s: %s", code, error)
            totals["errors"].append({"dossierCode": code, "error": str(error)})
    with engine.begin() as conn:
        for table in (pages, events, documents, dossiers):
            conn.execute(table.delete())
        for manifest, page_texts in loaded:
            counts = _index_dossier(conn, manifest, page_texts)
            for name, value in counts.items():
                totals[name] += value
    return totals
