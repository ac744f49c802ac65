"""The search index: dossiers, documents, pages and events in a relational database.

SQLite under SOHOA_HOME by default, PostgreSQL when SOHOA_DATABASE_URL is set; the schema
is made by the Alembic migrations shipped in storage/migrations (see ``storage.db``). The index is a cache of
object storage: ``reindex`` rebuilds it from the manifests and text objects alone.

Search finds the pages that hold every word of the query, with or without diacritics
("nghi dinh" finds "Nghị định"), and ranks them by what an officer means. Vietnamese
syllables are the tokens, so a query of several syllables is read as a phrase first:

1. ``phrase``: the whole query as written (NFC, case-insensitive), syllable after syllable;
2. ``phrase-folded``: the same phrase once diacritics are removed on both sides (đ -> d);
3. ``near``: every word (or quoted phrase, or joined chunk such as NĐ-CP) within a cluster
   with at most ``NEAR_GAP`` other syllables in it, in any order;
4. ``all``: every word somewhere on the page.

In the ``near`` and ``all`` tiers a page whose words match with their diacritics ranks above
a page that matches only once folded (``exact``), so there are six levels; inside a level
pages rank by closeness, agreement of the diacritics and frequency (see ``rank_page``).
The database finds the candidate pages (every word, folded, through its full-text index)
and says which hold the phrase; the tiers, scores and snippets are computed in Python from
the page text, so SQLite and PostgreSQL give the same order. Quoted text ("...") and
joined chunks (NĐ-CP, 15/2020) must match as adjacent syllables. Spellings both in everyday use
are one: the tone mark's old and new place (hoá, hóa) and a day or a month with or without its
zero (3/2/2025, 03/02/2025); i or y as the rhyme after h, k, l, m, qu, s, t (quy định, qui
định) once folded, so that the spelling typed ranks first (given names: Mi is not My; see
``spelling`` and ``query_spellings``).

- SQLite: FTS5 over ``text`` (diacritics kept, case folded) and ``text_folded`` (the same
  text with diacritics removed character by character, see ``fold``).
- PostgreSQL: a tsvector column ``tsv`` ('sohoa_unaccent': unaccent then simple, which
  folds đ to d), kept in the page's row (migration 0008), with a GIN index; the database needs a UTF-8
  ctype (C.UTF-8, vi_VN.UTF-8) so that capital Vietnamese letters are lower-cased.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import json
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import db
from .errors import NotFound, QueryError, StorageConfigError, StorageUnavailable

MARK = ("[", "]")
SNIPPET_CHARS = 160
NEAR_GAP = 5  # a "near" cluster holds every word of the query and at most this many other syllables
CANDIDATES = 100  # pages ranked in Python per search (at least ``limit``); see ``search``
SCAN = 500  # pages holding every word the database looks at per search, the newest; see ``search``
PHRASE_SAMPLE = 100  # PostgreSQL: the newest pages holding a query's words read for how many hold its phrase
PROBE, PROBE_HITS = 1000, 100  # PostgreSQL: words on 100 of the newest 1,000 pages are read newest first
PREFIX_PAGES = 2000  # SQLite: a code prefix with at most this many pages is searched from the code's index
TIERS = ("all", "near", "phrase-folded", "phrase")  # worst to best
_TOKEN = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"?')
_SPACE = re.compile(r"\s")

log = logging.getLogger(__name__)

metadata = sa.MetaData()
dossiers = sa.Table(
    "dossiers", metadata,
    sa.Column("code", sa.String(100), primary_key=True),
    sa.Column("title", sa.Text), sa.Column("maintenance", sa.String(8)), sa.Column("state", sa.String(32)),
    sa.Column("total_doc", sa.Integer), sa.Column("number_of_page", sa.Integer),
    sa.Column("created", sa.String(40)), sa.Column("updated", sa.String(40)),
    sa.Column("manifest_sha256", sa.String(64)), sa.Column("indexed_at", sa.DateTime(timezone=True)),
    sa.Column("title_folded", sa.Text),  # ``title_key``
)
documents = sa.Table(
    "documents", metadata,
    sa.Column("doc_id", sa.String(120), primary_key=True), sa.Column("dossier_code", sa.String(100)),
    sa.Column("sequence", sa.Integer), sa.Column("title", sa.Text), sa.Column("number_of_page", sa.Integer),
    sa.Column("created", sa.String(40)), sa.Column("input_sha256", sa.String(64)),
    sa.Column("pdf_key", sa.Text), sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("text_key", sa.Text), sa.Column("text_sha256", sa.String(64)),
    sa.Column("title_folded", sa.Text),  # ``title_key``
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
    text = text or ""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    # đ is a letter of its own, not d plus a combining mark: NFD leaves it alone; so is the
    # Icelandic eth (Ð, ð) that legacy VNI and TCVN3 conversions put for it, which PostgreSQL's
    # unaccent folds to d as well
    if ch in "đĐðÐ":
        return "d" if ch in "đð" else "D"
    decomposed = unicodedata.normalize("NFD", ch)
    base = decomposed[0]
    if len(decomposed) > 1 and all(unicodedata.combining(c) for c in decomposed[1:]) and not unicodedata.combining(base):
        return base
    return ch


def fold(text: str) -> str:
    """NFC text without diacritics, one character for one, so offsets stay valid."""
    return "".join(map(_fold_char, nfc(text)))


def _title_tokens(title: str | None) -> list[str]:
    """A title's words as a query's are read (``parse_query``: NFKC), the control and format
    characters nobody sees left out first (a soft hyphen pasted from Word inside a word)."""
    shown = "".join(c for c in nfc(title) if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return _TOKEN.findall(unicodedata.normalize("NFKC", shown))


def title_key(title: str | None) -> str:
    """A title as the index keeps it to be searched (``titles``): its words folded as a query's
    (``_folded_token``), each between spaces (" ban sao cccd "), so that the database matches
    whole words: a LIKE on the letters found "an" in every "Thanh" and "Anh" (review)."""
    return " " + " ".join(map(_folded_token, _title_tokens(title))) + " "


# A syllable whose rhyme is a lone i or y after these initials is written both ways in everyday
# use (quy định and qui định, lý lịch and lí lịch, kỹ and kĩ, kỳ and kì, tỷ lệ and tỉ lệ, Mỹ and
# Mĩ, bác sĩ and bác sỹ, hy sinh and hi sinh): one spelling, with y. Not after other initials or
# vowels, where i and y make other words (tai and tay, tui and tuy).
_I_OR_Y = re.compile(r"(?:qu|[hklmst])[iy]")
# A day, a month, a clause's number: "03/02/2025" and "3/2/2025", "khoản 03" and "khoản 3" are
# one; "00" (minutes) and a longer number keep their zeros (an identity number's are its own).
_ZERO_LED = re.compile(r"0[1-9]")


def _one_number(token: str) -> str:
    return token[1] if _ZERO_LED.fullmatch(token) else token


def _one_spelling(syllable: str) -> str:
    """The folded key's spelling: i or y as in ``_I_OR_Y`` (a given name "Mi" is not "My", so the
    exact key, ``spelling``, keeps them apart: the spelling typed ranks first) and ``_one_number``."""
    return syllable[:-1] + "y" if _I_OR_Y.fullmatch(syllable) else _one_number(syllable)


@functools.lru_cache(maxsize=65536)  # Vietnamese has a few thousand syllables
def _folded_token(token: str) -> str:
    return _one_spelling(fold(token).lower())


def _written(folded: str) -> tuple[str, ...]:
    """The ways a query token (``_folded_token``) may be written on a page (see ``_one_spelling``)."""
    if _I_OR_Y.fullmatch(folded):
        return folded[:-1] + "i", folded
    return (folded, "0" + folded) if len(folded) == 1 and "1" <= folded <= "9" else (folded,)


_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")  # huyền, sắc, ngã, hỏi, nặng


@functools.lru_cache(maxsize=65536)
def spelling(token: str) -> str:
    """A lower-case syllable with its tone mark moved to its end: the old and the new placement of
    the tone (hoá and hóa, thuỷ and thủy, khoẻ and khỏe, uỷ and ủy), both in everyday use, are
    one spelling, as are a day or month with and without its zero (03 and 3); the vowels' own
    marks (â, ă, ơ, ư) and đ stay where they are. (i and y are one only once folded.)"""
    decomposed = unicodedata.normalize("NFD", token.lower().replace("ð", "đ"))
    tones = "".join(c for c in decomposed if c in _TONE_MARKS)
    return _one_number(unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))) + tones


def parse_query(query: str) -> list[list[str]]:
    """Terms of a query, each a list of adjacent tokens (a phrase when longer than one).

    Quoted text is one phrase; outside quotes every whitespace-separated chunk is a term,
    so 'NĐ-CP' is the phrase ['NĐ', 'CP']. Tokens are what FTS5's unicode61 tokenizer sees.
    """
    terms: list[list[str]] = []
    query = unicodedata.normalize("NFKC", query)  # NFC, and full-width letters (ＱＤ) as the letters they are
    position = 0
    for quoted in _PHRASE.finditer(query):
        terms += [t for chunk in query[position:quoted.start()].split() if (t := _TOKEN.findall(chunk))]
        if tokens := _TOKEN.findall(quoted.group(1)):
            terms.append(tokens)
        position = quoted.end()
    terms += [t for chunk in query[position:].split() if (t := _TOKEN.findall(chunk))]
    return terms


@dataclass(frozen=True)
class Query:
    """A parsed query: its terms as typed, and lower-cased with and without diacritics."""

    terms: tuple[tuple[str, ...], ...]
    exact: tuple[tuple[str, ...], ...]  # lower case, the tone mark last (``spelling``)
    folded: tuple[tuple[str, ...], ...]  # lower case, diacritics removed

    @classmethod
    def parse(cls, query: str) -> "Query":
        """The query, or QueryError when it is empty or holds no word (letters or digits)."""
        if not query or not query.strip():
            raise QueryError("Chưa nhập nội dung cần tìm: hãy gõ ít nhất một từ.", "empty search query")
        terms = tuple(tuple(t) for t in parse_query(query))
        if not terms:
            raise QueryError(f"Nội dung tìm «{query.strip()}» không có từ nào (chữ hoặc số) để tìm.",
                             f"search query has no word characters: {query.strip()!r}")
        return cls(terms, tuple(tuple(spelling(t) for t in term) for term in terms),
                   tuple(tuple(_folded_token(t) for t in term) for term in terms))

    @property
    def phrase(self) -> tuple[str, ...]:
        """Every token in the order typed: the phrase the officer means."""
        return tuple(t for term in self.terms for t in term)


MAX_SPELLINGS = 16  # ways of writing one term the database is asked for; beyond, the term as typed
MAX_QUERY_SPELLINGS = 64  # and of all the terms of a query together (a long query of i/y syllables or digits)


def query_spellings(terms) -> list[list[tuple[str, ...]]]:
    """The ways each term may be written on a page: its tokens as typed, each i/y syllable and each
    day or month (see ``_one_spelling``) both ways, folded (both databases then read them alike);
    a term only as typed when it would make more than MAX_SPELLINGS, or the query's terms together
    more than MAX_QUERY_SPELLINGS (a query that long is narrow enough as typed)."""
    found, budget = [], MAX_QUERY_SPELLINGS
    for tokens in terms:
        choices = [_written(folded) if len(_written(folded := _folded_token(t))) > 1 else (t,) for t in tokens]
        count = math.prod(map(len, choices))
        if count > min(MAX_SPELLINGS, budget - (len(terms) - len(found) - 1)):  # one left for each term after
            found.append([tuple(tokens)])
            budget -= 1
        else:
            found.append(list(itertools.product(*choices)))
            budget -= count
    return found


def fts5_match(terms, column: str) -> str:
    """An FTS5 MATCH expression: every term in column (folded), each term as a quoted phrase, or
    as any of its spellings (``query_spellings``)."""
    clauses = []
    for spellings in query_spellings(terms):
        phrases = ['"' + " ".join(map(fold, spelled)).replace('"', '""') + '"' for spelled in spellings]
        clauses.append(phrases[0] if len(phrases) == 1 else "(" + " OR ".join(phrases) + ")")
    return f"{column} : ({' AND '.join(clauses)})"


def tsquery_sql(terms, name: str) -> tuple[str, dict]:
    """A PostgreSQL tsquery (SQL and its parameters) as ``fts5_match`` reads the terms: each term
    a phrase in any of its spellings, every term on the page."""
    clauses, params = [], {}
    for i, spellings in enumerate(query_spellings(terms)):
        written = []
        for j, spelled in enumerate(spellings):
            params[f"{name}{i}_{j}"] = " ".join(spelled)
            written.append(f"phraseto_tsquery('sohoa_unaccent', :{name}{i}_{j})")
        clauses.append("(" + " || ".join(written) + ")")
    return " && ".join(clauses), params


# -- ranking ---------------------------------------------------------------------

@dataclass(frozen=True)
class PageMatch:
    """How one page matches a query: ``level`` 0..5 (tier and exactness), relevance in [0, 1)."""

    level: int
    relevance: float
    spans: tuple[tuple[int, int], ...]  # character ranges of the best match, for the snippet

    @property
    def tier(self) -> str:
        return TIERS[self.level // 2 if self.level < 4 else self.level - 2]

    @property
    def exact(self) -> bool:
        """The match that ranks the page holds the query's words with their diacritics."""
        return self.level in (5, 3, 1)

    @property
    def score(self) -> float:
        return score(self.level, self.relevance)


def score(level: int, relevance: float) -> float:
    """(level + relevance) / 3, in [0, 2), higher is better.

    Level 5 exact phrase (score >= 5/3), 4 folded phrase (>= 4/3), 3 and 2 the words near
    each other with and without their diacritics (>= 1, >= 2/3), 1 and 0 the words anywhere
    with and without them (>= 1/3, >= 0); relevance in [0, 1) orders a level.
    """
    relevance = min(max(0.0, float(relevance or 0.0)), 1.0)
    return min(math.floor((level + relevance) / 3.0 * 1e6) / 1e6, 1.999999)  # floored: never rounds up to 2


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    exact: str  # ``spelling``
    folded: str


def _page_tokens(text: str, wanted: set[str], folded: str | None = None) -> tuple[dict[int, _Token], int]:
    """The page's tokens whose folded form is a query token, by position; and the token count.

    ``folded``: ``fold(text)`` when the caller has it (the index stores it). The query's
    tokens are looked for in the folded, lower-cased page and the tokens before each find are
    counted, in C: a page is never walked token by token in Python (the cost of a search is
    this, for every candidate page).
    """
    lowered = (fold(text) if folded is None else folded).lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer: walk the tokens
        return _page_tokens_walked(text, wanted)
    written = {w for word in wanted for w in _written(word)}
    if not all(w.isascii() for w in wanted) or (
            not lowered.isascii() and any(_TOKEN.match(c) for c in set(lowered) if c > "\x7f")):
        return _page_tokens_matched(text, wanted, lowered, written)
    # Folded Vietnamese is ASCII: one byte a character, and in ``shape`` 'a' for a token's
    # character, ' ' for any other, so " a" is where a token starts (index i + 1 is character i).
    raw = b" " + lowered.encode("ascii", "replace") + b" "
    shape = raw.translate(_TOKEN_SHAPE)
    starts = []
    for word in written:
        needle = word.encode("ascii")
        at = raw.find(needle, 1)
        while at != -1:
            if shape[at - 1] == 32 and shape[at + len(needle)] == 32:
                starts.append((at - 1, at - 1 + len(needle)))
            at = raw.find(needle, at + 1)
    found, count, cursor = {}, 0, 0
    for start, end in sorted(starts):
        count += shape.count(b" a", cursor, start + 1)  # tokens starting in [cursor, start)
        cursor = start
        word = text[start:end].lower()
        if _folded_token(word) in wanted:
            found[count] = _Token(start, end, spelling(word), _folded_token(word))
    return found, count + shape.count(b" a", cursor)


_TOKEN_SHAPE = bytes(ord("a") if chr(b).isascii() and chr(b).isalnum() else ord(" ") for b in range(256))


def _page_tokens_matched(text: str, wanted: set[str], lowered: str, written: set[str]) -> tuple[dict[int, _Token], int]:
    found, count, cursor = {}, 0, 0
    for m in _wanted_pattern(frozenset(written)).finditer(lowered):
        count += len(_TOKEN.findall(text, cursor, m.start()))
        cursor = m.end()
        word = text[m.start():cursor].lower()
        if _folded_token(word) in wanted:
            found[count] = _Token(m.start(), cursor, spelling(word), _folded_token(word))
        count += 1
    return found, count + len(_TOKEN.findall(text, cursor))


@functools.lru_cache(maxsize=1024)
def _wanted_pattern(wanted: frozenset[str]) -> re.Pattern:
    """Any of these tokens as a whole token (not inside a longer one)."""
    words = "|".join(re.escape(w) for w in sorted(wanted, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{words})(?![^\W_])")


def _page_tokens_walked(text: str, wanted: set[str]) -> tuple[dict[int, _Token], int]:
    found, count = {}, 0
    for count, m in enumerate(_TOKEN.finditer(text), start=1):
        word = m.group().lower()
        if (folded := _folded_token(word)) in wanted:
            found[count - 1] = _Token(m.start(), m.end(), spelling(word), folded)
    return found, count


def _occurrences(tokens: dict[int, _Token], folded: tuple[str, ...], exact: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where the folded phrase starts, with how many of its tokens carry the query's diacritics."""
    found = []
    for position, token in tokens.items():
        if token.folded != folded[0]:
            continue
        run = [tokens.get(position + i) for i in range(len(folded))]
        if all(t is not None and t.folded == f for t, f in zip(run, folded)):
            found.append((position, sum(t.exact == e for t, e in zip(run, exact))))
    return sorted(found)


def _capitals_kept(text: str, tokens: dict[int, _Token], where: int, typed: tuple[str, ...]) -> float:
    """Share of the query's capitalised words (names: "Cầu Giấy") written with a capital there too."""
    capitalised = [i for i, word in enumerate(typed) if any(c.isupper() for c in word)]
    if not capitalised:
        return 1.0
    return sum(text[tokens[where + i].start].isupper() for i in capitalised) / len(capitalised)


def _tf(count: int, page_tokens: int) -> float:
    """Saturating frequency in [0, 1), shorter pages first (BM25's k1 = 1.2, b = 0.75, 300-token pages)."""
    return count / (count + 1.2 * (0.25 + 0.75 * page_tokens / 300.0))


def _best_cluster(occurrences: list[list[tuple[int, int]]], lengths: list[int]) -> tuple[int, int, list[int]] | None:
    """The smallest window holding one occurrence of every term: (syllables spanned, tokens
    with the query's diacritics, where each term starts), or None when a term is missing.

    The window that starts at an occurrence takes, of every term, its first occurrence from
    there (all occurrences of a term have the same length, so the first ends first).
    """
    if any(not found for found in occurrences):
        return None
    starts = [[p for p, _ in found] for found in occurrences]
    best = None
    for anchor in sorted({p for term_starts in starts for p in term_starts}):
        picked = []
        for term, term_starts in enumerate(starts):
            i = bisect.bisect_left(term_starts, anchor)
            if i == len(term_starts):
                break
            picked.append(occurrences[term][i])
        else:
            end = max(p + n for (p, _), n in zip(picked, lengths))
            agree = sum(a for _, a in picked)
            key = (end - anchor, -agree, anchor)
            if best is None or key < best[0]:
                best = (key, [p for p, _ in picked])
    if best is None:
        return None
    (span, minus_agree, _), positions = best
    return span, -minus_agree, positions


def rank_page(text: str, query: Query, folded: str | None = None) -> PageMatch:
    """The tier, relevance and best match of a page for a query, from the page text alone.

    Relevance in [0, 1): 0.5 closeness (query tokens / syllables spanned by the best match),
    0.3 agreement of diacritics in it (tokens as typed / query tokens; for a phrase 0.25, and
    0.05 for the words the query capitalises being capitalised there: "Cầu Giấy" the
    district before "yêu cầu giấy tờ"), 0.2 frequency (of the phrase, or of the scarcest
    word; saturating, shorter pages first). ``folded``: the page's ``fold(text)`` when known.
    """
    text = nfc(text)
    phrase_exact = tuple(t for term in query.exact for t in term)
    phrase_folded = tuple(t for term in query.folded for t in term)
    tokens, page_length = _page_tokens(text, set(phrase_folded), folded)
    size = len(phrase_folded)

    def spans(starts_and_lengths) -> tuple[tuple[int, int], ...]:
        return tuple(sorted((tokens[p].start, tokens[p + n - 1].end) for p, n in starts_and_lengths))

    found = _occurrences(tokens, phrase_folded, phrase_exact)
    if found:
        exact = [f for f in found if f[1] == size]
        level, pool = (5, exact) if exact else (4, found)
        capitals = {p: _capitals_kept(text, tokens, p, query.phrase) for p, _ in pool}
        where, agree = max(pool, key=lambda o: (o[1], capitals[o[0]], -o[0]))
        relevance = 0.5 + 0.25 * agree / size + 0.05 * capitals[where] + 0.2 * _tf(len(pool), page_length)
        return PageMatch(level, relevance, spans([(where, size)]))

    unique = list(dict.fromkeys(zip(query.folded, query.exact)))  # a word typed twice is one word
    lengths = [len(f) for f, _ in unique]
    occurrences = [_occurrences(tokens, f, e) for f, e in unique]
    exact_occurrences = [[o for o in found if o[1] == n] for found, n in zip(occurrences, lengths)]
    candidates = []
    for is_exact, pool in ((True, exact_occurrences), (False, occurrences)):
        cluster = _best_cluster(pool, lengths)
        if cluster is None:
            continue
        span, agree, positions = cluster
        near = span - sum(lengths) <= NEAR_GAP
        level = (3 if near else 1) if is_exact else (2 if near else 0)
        closeness = min(1.0, sum(lengths) / span)
        relevance = 0.5 * closeness + 0.3 * agree / sum(lengths) + 0.2 * _tf(min(map(len, pool)), page_length)
        candidates.append(PageMatch(level, relevance, spans(zip(positions, lengths))))
    if not candidates:  # the database matched what this tokenizer does not see: keep it, last
        return PageMatch(0, 0.0, ())
    return max(candidates, key=lambda m: (m.level, m.relevance))


# -- snippets ----------------------------------------------------------------------

def _window(text: str, a: int, b: int, width: int) -> tuple[int, int]:
    """About ``width`` characters of text around [a, b), cut at spaces."""
    slack = max(0, width - (b - a))
    lo = max(0, a - slack // 3)
    hi = min(len(text), max(b, lo + width))
    lo = max(0, min(lo, hi - width, a))
    if lo > 0 and (space := max(text.rfind(" ", 0, lo), text.rfind("\n", 0, lo))) >= 0 and lo - space < 20:
        lo = space + 1
    if hi < len(text) and (after := _SPACE.search(text, hi)) and after.start() - hi < 20:
        hi = after.start()
    return lo, hi


def make_snippet(text: str, spans, width: int = SNIPPET_CHARS, mark=MARK) -> str:
    """Text around the best match, each of its spans in [brackets].

    When the match's words lie far apart (tier ``all``), one short excerpt per group of
    close words, joined by " … ".
    """
    spans = sorted(spans)
    if not spans:
        lo, hi = _window(text, 0, 0, width)
        return " ".join(text[lo:hi].split()) + ("…" if hi < len(text) else "")
    groups = [[spans[0]]]
    for span in spans[1:]:
        if span[1] - groups[-1][0][0] <= width * 2 // 3:
            groups[-1].append(span)
        else:
            groups.append([span])
    each = width if len(groups) == 1 else max(60, width // len(groups))
    windows = []
    for group in groups:
        lo, hi = _window(text, group[0][0], group[-1][1], each)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
        else:
            windows.append((lo, hi))
    fragments = []
    for lo, hi in windows:
        pieces, cursor = [], lo
        for a, b in spans:
            if a >= lo and b <= hi:
                pieces += [text[cursor:a], mark[0], text[a:b], mark[1]]
                cursor = b
        pieces.append(text[cursor:hi])
        fragments.append(" ".join("".join(pieces).split()))
    return (("…" if windows[0][0] > 0 else "") + " … ".join(fragments)
            + ("…" if windows[-1][1] < len(text) else ""))


# -- database ------------------------------------------------------------------

def open_index(url: str, migrate_schema: bool = True) -> Engine:
    """An engine on the index database, upgraded to the latest schema (tests, tools)."""
    engine = db.create_engine(url)
    if migrate_schema:
        db.upgrade(engine)
    if engine.dialect.name == "postgresql":
        _warn_unless_utf8_ctype(engine)
    return engine


def _warn_unless_utf8_ctype(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT lower('ĐỊNH')")).scalar() != "định":
            log.warning("Cơ sở dữ liệu PostgreSQL không chữ thường hóa được chữ hoa tiếng Việt (LC_CTYPE không phải "
                        "UTF-8): tìm kiếm sẽ phân biệt hoa thường. Tạo CSDL với LC_CTYPE 'C.UTF-8' hoặc 'vi_VN.UTF-8'.")


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
        code=code, title=nfc(manifest.get("title")), title_folded=title_key(manifest.get("title")),
        maintenance=manifest.get("maintenance"),
        state=manifest.get("state") or "stored", total_doc=manifest.get("totalDoc"),
        number_of_page=manifest.get("numberOfPage"), created=manifest.get("created"),
        updated=manifest.get("updated"), manifest_sha256=manifest.get("_sha256"),
        indexed_at=datetime.now(timezone.utc)))
    page_rows, doc_rows = [], []
    for doc in _documents_of(manifest):
        doc_id = nfc(doc["docId"])
        doc_rows.append(dict(
            doc_id=doc_id, dossier_code=code, sequence=doc.get("sequence"), title=nfc(doc.get("title")),
            title_folded=title_key(doc.get("title")),
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


def search(engine: Engine, query: str, code_prefix: str | None = None, limit: int = 20,
           scope: Sequence[str] = (), mark: tuple[str, str] = MARK, offset: int = 0) -> list[dict]:
    """Pages holding every word of the query, best first (see the module's docstring); each
    snippet's matches between ``mark``; ``offset``: the first ``offset`` of them left out (a next
    page of hits). Every page of a query is cut from the same ranked candidates (their number
    depends on ``limit``, never on ``offset``), so paging shows each hit once: a query finds at most
    max(CANDIDATES, limit) pages, the rest is reached by narrowing it.

    Each hit: dossierCode, docId, page, snippet (the best match in [brackets]), score (see
    ``score``), exact (the match that ranks the page keeps the query's diacritics) and tier
    (``phrase``, ``phrase-folded``, ``near``, ``all``). An empty query, or one without a
    word, raises QueryError.

    The database looks at the SCAN (at least ``limit``) most recently indexed pages holding
    every word of the query (folded; within the prefix and scope), and at the
    max(CANDIDATES, limit) most recent pages holding the words as the phrase typed, wherever
    they are, and hands over max(CANDIDATES, limit) of these: those holding the phrase
    (folded) first, then the others, newest first. The tiers, scores and snippets are computed
    here for those (``rank_page``), snippets only for the pages returned. Both databases hand
    over the same pages, so they give the same results. A query whose words are on at most SCAN
    pages is ranked among all of them. A common one ("của", "quốc gia" on most pages) is ranked
    among the newest SCAN pages holding it and the newest pages holding its phrase: an older page
    holding the words apart, or holding a phrase more than CANDIDATES newer pages hold, can be
    missed; more words, a quoted phrase or a dossier prefix narrow the search to reach it. (Ranking every page that holds a common word costs
    seconds at 100,000 pages; the databases' own relevance, bm25 or ts_rank, reads every such
    page too; see bench/search.py.)

    ``scope``: agency codes; only dossiers whose code is one of them followed by ``.`` or
    ``-`` (empty: every dossier), filtered in the database so ``limit`` counts visible pages.
    """
    parsed = Query.parse(query)
    if limit <= 0:
        return []
    prefix = nfc(code_prefix).strip().upper() if code_prefix else None
    window = max(CANDIDATES, limit)
    if engine.dialect.name == "sqlite":
        candidates = _candidates_sqlite
    elif engine.dialect.name == "postgresql":
        candidates = _candidates_postgresql
    else:
        raise StorageConfigError(f"Cơ sở dữ liệu không được hỗ trợ cho tìm kiếm: {engine.dialect.name}",
                                 f"unsupported index database: {engine.dialect.name}")
    digits = _lone_number(parsed)
    if digits is not None:  # an identity, phone or record number, however the page groups its digits
        rows = _number_candidates(engine, digits, prefix, window, scope)
        matched = ((_number_match(r["text"], digits), r) for r in rows)
        ranked = [(m, r) for m, r in matched if m is not None]
    if digits is None or not ranked:  # (a number found nowhere grouped: as the words it is)
        rows = candidates(engine, parsed, prefix, window, scope)
        ranked = [(rank_page(r["text"], parsed, r["text_folded"]), r) for r in rows]
    ranked = sorted(ranked, key=lambda mr: (-mr[0].level, -mr[0].relevance, mr[1]["dossier_code"], mr[1]["doc_id"],
                                            mr[1]["number"]))[offset:offset + limit]
    titles = _document_titles(engine, {r["doc_id"] for _, r in ranked})
    return [{"dossierCode": r["dossier_code"], "docId": r["doc_id"], "title": titles.get(r["doc_id"]),
             "page": r["number"], "snippet": make_snippet(nfc(r["text"]), m.spans, mark=mark), "score": m.score,
             "exact": m.exact, "tier": m.tier}
            for m, r in ranked]


def _document_titles(engine: Engine, doc_ids: set[str]) -> dict[str, str]:
    """The titles of the documents hits are on (a hit named only its dossier and document id)."""
    if not doc_ids:
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(documents.c.doc_id, documents.c.title)
                                 .where(documents.c.doc_id.in_(sorted(doc_ids)))).all())


TITLE_SCAN = 500  # titles holding every term of a query that are looked at, newest first


def titles(engine: Engine, query: str, code_prefix: str | None = None, limit: int = 20,
           scope: Sequence[str] = ()) -> list[dict]:
    """The dossiers and documents whose title holds every term of the query as whole words, with
    or without diacritics ("ban sao cccd" finds "Bản sao CCCD", as "qui định" finds "quy định" on a
    page): those holding the query as typed first, then the newest. Each: {dossierCode, docId (None
    for a dossier's own title), title, exact}. A title is often the only place a paper's name is
    written: a copy of an identity card says nothing of it in its text.

    The database hands over the TITLE_SCAN newest titles holding every term (``title_key``: its
    words, folded, between spaces); of a word as common in titles as "giấy", the newest.
    ``code_prefix`` and ``scope`` as ``search``; an empty query, or one without a word, raises
    QueryError."""
    parsed = Query.parse(query)
    if limit <= 0:
        return []
    prefix = nfc(code_prefix).strip().upper() if code_prefix else None
    # the terms as title_key writes words: folded, one spelling (i or y, a day's zero), whole
    params: dict = {"scan": TITLE_SCAN, **{f"t{i}": f"% {' '.join(term)} %" for i, term in enumerate(parsed.folded)}}
    where = " AND ".join(f"{{key}} LIKE :t{i}" for i in range(len(parsed.folded)))
    dossier_filters, dossier_params = _filters(prefix, scope, engine.dialect.name, column="d.code")
    doc_filters, doc_params = _filters(prefix, scope, engine.dialect.name, column="doc.dossier_code")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT d.code AS dossier_code, NULL AS doc_id, d.title, d.updated AS changed FROM dossiers d "
            f"WHERE {where.format(key='d.title_folded')} {dossier_filters}"
            "ORDER BY coalesce(d.updated, '') DESC LIMIT :scan"),
            {**params, **dossier_params}).all()
        rows += conn.execute(sa.text(
            "SELECT doc.dossier_code, doc.doc_id, doc.title, doc.created AS changed FROM documents doc "
            f"WHERE {where.format(key='doc.title_folded')} {doc_filters}"
            "ORDER BY coalesce(doc.created, '') DESC LIMIT :scan"),
            {**params, **doc_params}).all()
    found = []
    for row in rows:
        spelled = [spelling(t) for t in _title_tokens(row.title)]
        found.append((all(_holds(spelled, term) for term in parsed.exact), row))
    # a dossier named after its first paper (as an upload names it) is listed once, by the paper
    papers = {(row.dossier_code, row.title) for _, row in found if row.doc_id is not None}
    found = [(exact, row) for exact, row in found
             if row.doc_id is not None or (row.dossier_code, row.title) not in papers]
    found.sort(key=lambda er: (er[1].dossier_code, er[1].doc_id or ""))
    found.sort(key=lambda er: er[1].changed or "", reverse=True)
    found.sort(key=lambda er: (not er[0], er[1].doc_id is not None))  # as typed first; a dossier before its papers
    return [{"dossierCode": row.dossier_code, "docId": row.doc_id, "title": row.title, "exact": exact}
            for exact, row in found[:limit]]


def _holds(tokens: list[str], term: tuple[str, ...]) -> bool:
    """Whether ``term``'s tokens come one after the other in ``tokens``."""
    return any(tuple(tokens[i:i + len(term)]) == term for i in range(len(tokens) - len(term) + 1))


def dossiers_by_code(engine: Engine, prefix: str, scope: Sequence[str] = (), limit: int = 50,
                     offset: int = 0) -> list[dict]:
    """The indexed dossiers whose code starts with ``prefix`` (upper case), in the scope, in code
    order, the first ``offset`` left out: {dossierCode, title, documents, pages}."""
    prefix = nfc(prefix).strip().upper()
    if not prefix or limit <= 0:
        return []
    filters, params = _filters(prefix, scope, engine.dialect.name, column="d.code")
    code = 'd.code COLLATE "C"' if engine.dialect.name == "postgresql" else "d.code"  # the order of the prefix's range
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT d.code AS dossier_code, d.title, d.total_doc, d.number_of_page "
                                    f"FROM dossiers d WHERE 1 = 1 {filters}ORDER BY {code} "
                                    "LIMIT :limit OFFSET :offset"),
                            {**params, "limit": limit, "offset": offset}).all()
    return [{"dossierCode": r.dossier_code, "title": r.title, "documents": r.total_doc, "pages": r.number_of_page}
            for r in rows]


def holds_a_dossier(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(dossiers.c.code).limit(1)).first() is not None


def dossier_codes(engine: Engine) -> list[str]:
    """Every indexed dossier's code: what the store must hold, a manifest or a disposal record each
    (a dossier disposed of leaves the index)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(dossiers.c.code).order_by(dossiers.c.code)).scalars())


def _scope_clause(scope: Sequence[str], column: str = "p.dossier_code", dialect: str = "sqlite") -> tuple[str, dict]:
    """SQL (``AND (...)``) keeping rows whose dossier code (``column``) is under the given agency
    codes (followed by "." or "-"), and its parameters.

    On PostgreSQL each agency is a range of codes in byte order ("-" and "." are consecutive: the
    codes from "H23.50-" up to, not including, "H23.50/"), which the planner reads from its index
    on the code and counts from its statistics: written as a test of each code's start, it took
    an agency's pages to be 0.3 % of all, and read every page holding a common word to keep its
    10 % (280 ms at 100,000 pages, where an officer searches within the agency every time)."""
    if not scope:
        return "", {}
    terms, params = [], {}
    for n, agency in enumerate(scope):
        if dialect == "postgresql":
            terms.append(f'({column} COLLATE "C" >= :scope{n}_low AND {column} COLLATE "C" < :scope{n}_high)')
            params.update({f"scope{n}_low": agency + "-", f"scope{n}_high": agency + "/"})
        else:
            terms.append(f"substr({column}, 1, :scope{n}_len) IN (:scope{n}_dot, :scope{n}_dash)")
            params.update({f"scope{n}_len": len(agency) + 1, f"scope{n}_dot": agency + ".",
                           f"scope{n}_dash": agency + "-"})
    return "AND (" + " OR ".join(terms) + ") ", params


def _filters(prefix: str | None, scope: Sequence[str], dialect: str,
             column: str = "p.dossier_code") -> tuple[str, dict]:
    """SQL (``AND ...``) for the dossier-code prefix and the scope, on ``column`` (a page's dossier
    code, or a dossier's), and its parameters.

    The prefix is a range of codes in byte order (the codes starting with "H23.50" are those
    from "H23.50" up to, not including, "H23.51"), so the database reads the dossier's pages
    from its index on the code (PostgreSQL's in the "C" collation, whatever the database's
    own) and knows how many there are, instead of testing every page that holds the words.
    """
    scoped, params = _scope_clause(scope, column, dialect)
    if not prefix:
        return scoped, params
    if prefix[-1] == chr(0x10FFFF):  # no code follows it: compare the start instead
        params.update(prefix=prefix, prefix_len=len(prefix))
        return f"AND substr({column}, 1, :prefix_len) = :prefix " + scoped, params
    code = f'{column} COLLATE "C"' if dialect == "postgresql" else column
    params.update(prefix_low=prefix, prefix_high=prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return f"AND {code} >= :prefix_low AND {code} < :prefix_high " + scoped, params


def _candidates_sqlite(engine: Engine, query: Query, prefix: str | None, window: int,
                       scope: Sequence[str] = ()) -> list:
    filters, params = _filters(prefix, scope, "sqlite")
    one_term = len(query.terms) == 1  # the query is its own phrase
    with engine.connect() as conn:
        if "prefix_low" in params and conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM pages p WHERE p.dossier_code >= :prefix_low "
                "AND p.dossier_code < :prefix_high LIMIT :most)"),
                {**params, "most": PREFIX_PAGES + 1}).scalar() <= PREFIX_PAGES:
            # a narrow prefix (a dossier, a day): its pages from the code's index, each looked up
            # in FTS5, rather than FTS5's every page holding the words, each looked up in pages
            source = ("pages p INDEXED BY ix_pages_dossier_code CROSS JOIN pages_fts "
                      "ON pages_fts.rowid = p.id ")
        elif filters:
            source = "pages_fts JOIN pages p ON p.id = pages_fts.rowid "
        else:
            source = "pages_fts "
        return _sqlite_rows(conn, query, source, filters, params, window, one_term)


def _sqlite_rows(conn: Connection, query: Query, source: str, filters: str, params: dict, window: int,
                 one_term: bool) -> list:
    newest = ("SELECT pages_fts.rowid AS id FROM " + source + " WHERE pages_fts MATCH :every_word " + filters
              + "ORDER BY pages_fts.rowid DESC LIMIT :scan")
    if one_term:
        sql = ("WITH newest AS MATERIALIZED (" + newest + ") "
               "SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded, 1 AS phrase "
               "FROM newest JOIN pages p ON p.id = newest.id ORDER BY p.id DESC LIMIT :window")
    else:  # the newest pages holding the phrase, wherever they are, and the newest holding the words
        sql = ("WITH newest AS MATERIALIZED (" + newest + "), "
               "phrase AS MATERIALIZED (SELECT pages_fts.rowid AS id FROM " + source
               + " WHERE pages_fts MATCH :phrase_folded " + filters + "ORDER BY pages_fts.rowid DESC LIMIT :window) "
               "SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded, p.id IN phrase AS phrase "
               "FROM (SELECT id FROM newest UNION SELECT id FROM phrase) AS c JOIN pages p ON p.id = c.id "
               "ORDER BY phrase DESC, p.id DESC LIMIT :window")
    params.update(every_word=fts5_match(query.terms, "text_folded"),
                  phrase_folded=fts5_match([query.phrase], "text_folded"),
                  scan=max(SCAN, window), window=window)
    return conn.execute(sa.text(sql), params).mappings().all()


# What reading a page's tsvector costs, told to PostgreSQL's planner (migration 0007): it counts
# a match as one cheap operator, and so read a page's tsvector back from its TOAST storage for
# each of 20 pages to find one holding a query's words 5 % of pages hold, where the word index
# names those pages. Always true; evaluated after the match, on the pages that hold the words.
_READ_TSVECTOR = "AND sohoa_tsvector_read(p.id)"


def _candidates_postgresql(engine: Engine, query: Query, prefix: str | None, window: int,
                           scope: Sequence[str] = ()) -> list:
    filters, params = _filters(prefix, scope, "postgresql")
    # The tsqueries are written out, not taken from a CTE, so the planner sees how common the
    # words are: newest first through the primary key for a common word, the GIN index otherwise.
    # With a prefix or a scope the code comes first: a page's tsvector is read only when its code
    # matches (an agency's pages newest first through the primary key read 48,000 pages for 500
    # holding a quoted phrase, 135 ms at 100,000 pages; through the code's index, its 10,000).
    order = "p.id + 0" if prefix or scope else "p.id"
    every_word, words = tsquery_sql(query.terms, "word")
    phrase, phrase_words = tsquery_sql([query.phrase], "phrase")
    # single words: their pages come through the word index when a few in a hundred hold them all
    read = _READ_TSVECTOR if all(len(term) == 1 for term in query.terms) else ""
    newest = ("SELECT p.id FROM pages p WHERE true " + filters
              + "AND p.tsv @@ (" + every_word + ") " + read + " ORDER BY " + order + " DESC LIMIT :scan")
    probed, listed = "", ""
    if len(query.terms) > 1 and not prefix and not scope:
        # Words that go together ("bất khả": 14 % of pages) are taken to be independent (2 %), so
        # the word index was read for every page holding them (47 ms at 100,000 pages) where the
        # newest pages, read in order, give :scan of them after ~3,500. The newest :probe pages
        # say which: when :probe_hits of them hold the words, they are read newest first (the
        # match written so that no index can serve it); else every page holding them comes
        # through the word index, once, with whether it holds the phrase (a citizen's name: the
        # phrase is checked there on each anyway; a second pass read them all again).
        probed = ("probe AS MATERIALIZED (SELECT count(*) AS n FROM (SELECT p.id, p.tsv FROM pages p WHERE true "
                  + filters + "ORDER BY p.id DESC LIMIT :probe) p WHERE p.tsv @@ (" + every_word + ")), "
                  "newest_in_order AS MATERIALIZED (SELECT p.id FROM pages p WHERE (SELECT n FROM probe) >= :probe_hits "
                  + filters + "AND (p.tsv @@ (" + every_word + ")) IS TRUE ORDER BY p.id DESC LIMIT :scan), "
                  "word_pages AS MATERIALIZED (SELECT p.id, p.tsv @@ (" + phrase + ") AS holds FROM pages p "
                  "WHERE (SELECT n FROM probe) < :probe_hits " + filters + "AND p.tsv @@ (" + every_word + ") "
                  + read + "), ")
        newest = ("SELECT id FROM newest_in_order UNION ALL "
                  "(SELECT id FROM word_pages ORDER BY id DESC LIMIT :scan)")
        listed = "UNION ALL (SELECT id FROM word_pages WHERE holds ORDER BY id DESC LIMIT :window) "
        in_order = "(SELECT n FROM probe) >= :probe_hits AND "
    else:
        in_order = ""
    if len(query.terms) == 1:
        sql = ("WITH newest AS MATERIALIZED (" + newest + ") "
               "SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded, true AS phrase "
               "FROM newest JOIN pages p USING (id) ORDER BY p.id DESC LIMIT :window")
    elif prefix or scope:
        # Newest first by the code's order means every page of the codes holding the words is read
        # and sorted: they are read once, each with whether it holds the phrase (a second pass for
        # the phrase read them all again: "chức chính" in an agency of 10,000 pages, 37 ms to 20).
        sql = ("WITH word_pages AS MATERIALIZED (SELECT p.id, p.tsv @@ (" + phrase + ") AS holds FROM pages p "
               "WHERE true " + filters + "AND p.tsv @@ (" + every_word + ") " + read + "), "
               "newest AS MATERIALIZED (SELECT id FROM word_pages ORDER BY id DESC LIMIT :scan), "
               "phrase AS MATERIALIZED (SELECT id FROM word_pages WHERE holds ORDER BY id DESC LIMIT :window) "
               "SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded, "
               "p.id IN (SELECT id FROM phrase) AS phrase "
               "FROM (SELECT id FROM newest UNION SELECT id FROM phrase) AS c JOIN pages p USING (id) "
               "ORDER BY phrase DESC, p.id DESC LIMIT :window")
    else:  # as on SQLite: the newest pages holding the phrase, wherever they are, and the newest holding the words
        # PostgreSQL takes a phrase to be nearly as common as its words, and read every page back to
        # the first, newest first, for a citizen's name ("Trần Hữu An": common syllables, a rare
        # phrase; 600 ms at 100,000 pages). Instead: with the share w of pages holding the words
        # (from the newest of them) and the share p of these holding the phrase (from a sample),
        # reading newest first finds :window pages after about window / (w p) pages, and the word
        # index names w N pages to read, each read about 4 times slower (its positions checked).
        # The words on few pages: those only.
        common = ("(SELECT count(*) FROM newest) >= :scan AND CAST((SELECT n FROM sample) AS float) / :sample "
                  "* power(CAST(:scan AS float) / (SELECT max(id) - min(id) + 1 FROM newest), 2) "
                  "* (SELECT max(id) FROM pages) > :window / 4.0")
        looked_for = ("SELECT p.id FROM pages p WHERE {when} " + filters + "AND p.tsv @@ (" + phrase + ") {read} "
                      "ORDER BY {order} DESC LIMIT :window")
        sql = ("WITH " + probed + "newest AS MATERIALIZED (" + newest + "), "
               "sample AS MATERIALIZED (SELECT count(*) AS n FROM (SELECT id FROM newest ORDER BY id DESC "
               "LIMIT :sample) s JOIN pages p USING (id) WHERE p.tsv @@ (" + phrase + ")), "
               "phrase_common AS MATERIALIZED ("
               + looked_for.format(when=in_order + common, read="", order=order) + "), "
               "phrase_rare AS MATERIALIZED ("
               + looked_for.format(when=f"{in_order}NOT ({common})", read=_READ_TSVECTOR, order="p.id + 0") + "), "
               "phrase AS MATERIALIZED (SELECT id FROM phrase_common UNION ALL SELECT id FROM phrase_rare "
               + listed + ") "
               "SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded, "
               "p.id IN (SELECT id FROM phrase) AS phrase "
               "FROM (SELECT id FROM newest UNION SELECT id FROM phrase) AS c JOIN pages p USING (id) "
               "ORDER BY phrase DESC, p.id DESC LIMIT :window")
    params.update(words, **phrase_words, scan=max(SCAN, window), window=window, sample=PHRASE_SAMPLE,
                  probe=PROBE, probe_hits=PROBE_HITS)
    with engine.connect() as conn:
        # psycopg prepares a statement run five times, and PostgreSQL may then plan it once for
        # any words: the plan must be chosen for these words (common or rare) every time.
        conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
        # a few hundred pages wanted: starting parallel workers (10 ms) or compiling the query
        # (20-40 ms, once the plan's cost passes jit_above_cost) costs more than it saves
        conn.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
        conn.execute(sa.text("SET LOCAL jit = off"))
        return conn.execute(sa.text(sql), params).mappings().all()


# -- a number typed in one run -----------------------------------------------------

NUMBER_DIGITS = 7  # a query of one run of at least so many digits is looked up as a number
_NUMBER_SEPARATORS = "[ .,/-]?"


def _lone_number(query: Query) -> str | None:
    """The digits when the query is one run of NUMBER_DIGITS or more (an identity card, a phone, a
    record number): pages print them grouped ("031 190 004 567", "051-190-001-234",
    "0905 123 456"), which the databases index as several tokens."""
    if len(query.folded) == 1 and len(query.folded[0]) == 1:
        word = query.folded[0][0]
        if len(word) >= NUMBER_DIGITS and word.isascii() and word.isdigit():
            return word
    return None


def _number_pieces(digits: str) -> tuple[list[str], list[str]]:
    """The tokens a grouped number can start and end with: its beginnings and its endings of three
    digits or more (a group of one or two digits is too common to look for)."""
    return [digits[:k] for k in range(3, len(digits))], [digits[-k:] for k in range(3, len(digits))]


def _number_match(text: str, digits: str) -> PageMatch | None:
    """The page's first writing of the number: in one run as a word of its own, else with one
    space, dot, comma, slash or hyphen between any two of its digits and neither preceded nor
    followed by more of them (the tail of a longer number is not the number); None when it holds
    none (a page that only holds its pieces)."""
    found = re.search(rf"(?<!\w){digits}(?!\w)", text) or re.search(  # whole, whatever is around it
        r"(?<!\w)(?<!\d[ .,/-])" + _NUMBER_SEPARATORS.join(digits) + r"(?!\w)(?![ .,/-]\d)", text)
    if found is None:
        return None
    return PageMatch(5, 0.75, ((found.start(), found.end()),))


def _number_candidates(engine: Engine, digits: str, prefix: str | None, window: int, scope: Sequence[str]) -> list:
    """The newest pages holding the number whole, or a token it can start with and one it can end
    with (``_number_pieces``); ``_number_match`` keeps those that hold it."""
    starts, ends = _number_pieces(digits)
    dialect = engine.dialect.name
    filters, params = _filters(prefix, scope, dialect)
    params.update(scan=max(SCAN, window))
    if dialect == "sqlite":
        def anyof(tokens):
            return "(" + " OR ".join(f'"{t}"' for t in tokens) + ")"
        params["match"] = f'text_folded : ("{digits}" OR ({anyof(starts)} AND {anyof(ends)}))'
        sql = ("SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded FROM pages_fts "
               "JOIN pages p ON p.id = pages_fts.rowid WHERE pages_fts MATCH :match " + filters
               + "ORDER BY pages_fts.rowid DESC LIMIT :scan")
    else:
        params["match"] = f"{digits} | (({' | '.join(starts)}) & ({' | '.join(ends)}))"
        sql = ("SELECT p.id, p.dossier_code, p.doc_id, p.number, p.text, p.text_folded FROM pages p "
               "WHERE true " + filters + "AND p.tsv @@ to_tsquery('sohoa_unaccent', :match) "
               "ORDER BY " + ("p.id + 0" if prefix else "p.id") + " DESC LIMIT :scan")
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).mappings().all()


# -- rebuild from storage --------------------------------------------------------

def read_dossier(store, code: str, unread: list | None = None) -> tuple[dict, dict[str, list[str]]]:
    """A dossier's manifest and its documents' page texts, from object storage alone. With
    ``unread``, a document whose text cannot be read (changed, missing, not UTF-8) is left out of
    the texts and appended there as (docId, error) instead of failing the dossier."""
    from . import keys
    from .base import sha256

    raw = store.get(keys.manifest(code))
    manifest = json.loads(raw.decode("utf-8"))
    manifest["_sha256"] = sha256(raw)
    page_texts = {}
    for doc in _documents_of(manifest):
        text_ref = doc.get("text") or {}
        key = text_ref.get("key") or keys.document_text(code, doc["docId"])
        try:
            if text_ref or store.exists(key):
                page_texts[doc["docId"]] = store.get(key, sha256=text_ref.get("sha256")).decode("utf-8").split("\f")
        except StorageUnavailable:
            raise  # the store is down, not the document: the rebuild stops here
        except Exception as error:
            if unread is None:
                raise
            unread.append((doc["docId"], error))
    return manifest, page_texts


def _changed_at(raw: bytes) -> float:
    """When a dossier last changed, as its manifest says (``updated``, else ``created``), in
    seconds since the epoch; 0 when it does not say or cannot be read."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
        at = datetime.fromisoformat(manifest.get("updated") or manifest.get("created"))
        return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, TypeError, AttributeError):
        return 0.0


def _in_order_of_change(store, codes) -> list[str]:
    """The dossiers holding a manifest, the one changed longest ago first (each manifest read once
    here: one more request a dossier for ``reindex``, and a float and a code a dossier in memory)."""
    from . import keys

    changed = []
    for code in codes:
        try:
            raw = store.get(keys.manifest(code))
        except NotFound:  # a disposed dossier's folder keeps its record, and no manifest
            continue
        except StorageUnavailable:
            raise
        except Exception:  # read again, and reported, by ``reindex``
            raw = b""
        changed.append((_changed_at(raw), code))
    return [code for _, code in sorted(changed)]


REINDEX_BATCH = 500  # documents read, indexed and committed together (whole dossiers: a batch ends after one)


def reindex(store, engine: Engine, *, batch: int = REINDEX_BATCH) -> dict:
    """Rebuild the whole index from the manifests and text objects in storage, streamed.

    The dossier folders are listed one level (``children``), never the store's keys; dossiers
    are read one at a time and committed ``batch`` documents to a transaction (rounded up to a
    whole dossier), so memory holds one batch of manifests and texts whatever the store's size.
    Each dossier is replaced whole in its batch's transaction (a search sees it as before or as
    now, never half), in the order the dossiers last changed (their manifests' ``updated``, read
    once before): a search's newest pages are the last indexed, and stay those of the dossiers
    changed last, not of the last codes; at the end the dossiers indexed that storage no longer holds (or that
    could not be read) are dropped. Idempotent: a run cut short changed only whole dossiers,
    and running it again finishes it. A dossier that cannot be read is reported in ``errors``
    and left out; a document whose text cannot be read is reported there with its ``docId``, and
    its dossier indexed with the others (that document's text as indexed before, if it was).
    """
    from . import keys

    totals = {"dossiers": 0, "documents": 0, "pages": 0, "errors": []}
    seen: set[str] = set()
    loaded: list[tuple[dict, dict]] = []
    held = [0]  # documents in ``loaded``

    def flush() -> None:
        if not loaded:
            return
        with engine.begin() as conn:
            for manifest, page_texts in loaded:
                counts = _index_dossier(conn, manifest, page_texts)
                seen.add(nfc(manifest["dossierCode"]))
                for name, value in counts.items():
                    totals[name] += value
        loaded.clear()
        held[0] = 0

    for code in _in_order_of_change(store, store.children(keys.PREFIX)):
        try:
            if not store.exists(keys.manifest(code)):
                continue  # a disposed dossier's folder keeps its record and events, and no manifest
            unread: list = []
            loaded.append(read_dossier(store, code, unread))
            held[0] += len(_documents_of(loaded[-1][0]))
            for doc_id, error in unread:
                log.warning("reindex: %s: %s", doc_id, error)
                totals["errors"].append({"dossierCode": code, "docId": doc_id, "error": str(error)})
        except Exception as error:  # one broken dossier must not stop the rebuild
            log.warning("reindex: %s: %s", code, error)
            damaged = isinstance(error, (json.JSONDecodeError, UnicodeDecodeError))  # the manifest does not parse
            totals["errors"].append({"dossierCode": code, "error": f"manifest hỏng, không đọc được ({error}); "
                                     f"khôi phục bằng 'sohoa restore {code}'" if damaged else str(error)})
        if held[0] >= batch:
            flush()
    flush()
    with engine.connect() as conn:
        stale = [c for c in conn.execute(sa.select(dossiers.c.code)).scalars() if c not in seen]
    for start in range(0, len(stale), batch):
        with engine.begin() as conn:
            for code in stale[start:start + batch]:
                _forget_dossier(conn, code)
    return totals
