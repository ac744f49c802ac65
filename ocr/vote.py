"""Line-level combination of two (or more) recognisers' readings of a page (issue 14).

Tesseract and TrueOCR each miss about one word in nine on real scans, and mostly not the same
words.  This module combines their readings; everything but ``VotingEngine`` is pure (no I/O
but the bundled word lists, read once).

1. **Lines are matched on their boxes** (``match_lines``): each word of the secondary reading
   goes to the primary line its box overlaps most in height (at least half of the lower of the
   two) and lies within, or near, horizontally; the secondary words of one primary line are
   put left to right, so a line one engine splits at a column gap and the other reads whole
   still pairs up.  Secondary words that no primary line takes form lines of their own, put
   after the lowest primary line above them (beside them, if one is); primary lines with no
   secondary word are kept as they are.  Both are marked as disagreements.
2. **Readings of a line are aligned character by character** (Levenshtein opcodes) and cut
   at the spaces every reading has in the same aligned place: between two such cuts lies a
   *region* of whole words.  Where the readings of a region differ, one reading of the region
   is taken whole (never a mixture: no text that no engine read), chosen by, in order:
   its spelling score (each word: +1 when it is a well-formed Vietnamese syllable or a number,
   +1 when it is in tesseract's Vietnamese word list, less one for each word; a word glued to
   the next by a comma or a digit stuck to letters scores 0; so "24 tháng" beats "2Atháng" and
   a reading that adds a well-formed word beats the one that drops it), the number of readings
   that agree on it, the pairs of its words (and of its edge words with their neighbours) found
   in the administrative phrase list, its words found in that list, then its mean confidence.
3. The result of a line (``LineVote``) is its text, a confidence, whether the readings
   disagreed anywhere, and the regions that differed, for the operator's review.
4. ``VotingEngine(primary, secondary)`` is an ``OcrEngine``: it reads with both and returns the
   voted words in the primary's reading order, on the primary's boxes (a region whose words
   changed spreads its new words over the primary words' span).
"""
from __future__ import annotations

import functools
import hashlib
import re
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from rapidfuzz.distance import Levenshtein

from ocr import lexicon, review
from ocr.engine import ReadingAbandoned, ReadingStopped

RULES_VERSION = "vote-1"
DECIDERS = ("spelling", "agreement", "phrases", "phrases", "confidence")
PHRASES_FILE = Path(__file__).resolve().parent / "data" / "vie-admin-phrases.txt"

EDGE_PUNCT = ".,;:!?()[]{}\"'“”‘’«»…*"
PART_SPLIT = re.compile(r"([-/.,:;])")
NUMBER = re.compile(r"[0-9]+")
GLUE = {",", ";", ":"}
ABBREVIATION = re.compile(r"[A-ZĐ][A-ZĐa-z]{1,4}")
LEADING_GLUE = re.compile(r"[-,;:.]\w")
THOUSANDS = re.compile(r"[0-9]{3}[.,;:]?")


@dataclass(frozen=True)
class Word:
    """One word read: text (NFC), box in page pixels, confidence 0-100, line id."""
    text: str
    x0: int
    y0: int
    x1: int
    y1: int
    conf: float
    line: int = 0

    @classmethod
    def of(cls, word: dict) -> "Word":
        return cls(unicodedata.normalize("NFC", str(word["text"])), int(word["x0"]), int(word["y0"]),
                   int(word["x1"]), int(word["y1"]), float(word["conf"]), int(word.get("line", 0)))

    def as_dict(self) -> dict:
        return {"text": self.text, "x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1,
                "conf": self.conf, "line": self.line}


@dataclass(frozen=True)
class Line:
    """The words of one line of one reading, in reading order."""
    words: tuple[Word, ...]

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (min(w.x0 for w in self.words), min(w.y0 for w in self.words),
                max(w.x1 for w in self.words), max(w.y1 for w in self.words))

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class LineMatch:
    """A primary line (its index, or None for a line only the secondary read) and the
    secondary words matched to it, left to right."""
    primary: int | None
    secondary: tuple[Word, ...]


@dataclass(frozen=True)
class Region:
    """A stretch of a line where the readings differ: each reading's text, the one kept, what
    decided, and where the kept words are (``start``: index of the first among the line's kept
    words, ``length``: how many)."""
    readings: tuple[str, ...]
    chosen: int
    by: str = "spelling"  # what decided: spelling, agreement, phrases, confidence
    start: int = 0
    length: int = 0

    @property
    def other(self) -> str:
        """The first reading not kept."""
        return next(t for i, t in enumerate(self.readings) if i != self.chosen)



@dataclass(frozen=True)
class LineVote:
    """The vote on one line: the words kept (with boxes), their text, a confidence (0-100),
    whether the readings disagreed, and where."""
    words: tuple[Word, ...]
    confidence: float
    disagreed: bool
    regions: tuple[Region, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def uncertain(self) -> bool:
        """Whether a region was decided on the engines' confidence alone (two well-formed readings)."""
        return any(r.by == "confidence" for r in self.regions)

    @property
    def word_alternatives(self) -> tuple[str | None, ...]:
        """For each kept word: None, or, when it lies in a stretch decided on confidence alone,
        the other reading of that stretch on its first word and "" on the stretch's other words
        (the words' ``alt``, which ``ocr.review`` joins back into the line's other reading; a
        line split later into columns keeps with each part the readings of its own words)."""
        alts: list[str | None] = [None] * len(self.words)
        for region in self.regions:
            if region.by == "confidence" and region.length:
                alts[region.start:region.start + region.length] = [region.other] + [""] * (region.length - 1)
        return tuple(alts)

    @property
    def alternative(self) -> str | None:
        """The line as the other engine read the stretches decided on confidence alone (None when
        none was): what an operator compares with the page."""
        if not self.uncertain:
            return None
        return review.alternative_text([w.text for w in self.words], self.word_alternatives)


@dataclass(frozen=True)
class VoteOptions:
    min_overlap: float = 0.5        # vertical overlap / the lower height, for a word to join a line
    max_gap: float = 1.5            # horizontal distance to a line allowed, in line heights
    secondary_bias: float = 0.0     # added to the secondary's confidence when confidences decide
    min_lone_conf: float = 0.0      # a line only the secondary read is kept when its confidence reaches this


DEFAULT_OPTIONS = VoteOptions()


# ------------------------------------------------------------------ lines and matching

def lines_of(words: Sequence[dict | Word]) -> tuple[Line, ...]:
    """The words grouped by ``line`` id, lines in order of their first word."""
    grouped: dict[int, list[Word]] = {}
    for word in words:
        word = word if isinstance(word, Word) else Word.of(word)
        grouped.setdefault(word.line, []).append(word)
    return tuple(Line(tuple(ws)) for ws in grouped.values())


def match_lines(primary: Sequence[Line], secondary: Sequence[Line],
                options: VoteOptions = DEFAULT_OPTIONS) -> tuple[LineMatch, ...]:
    """Pair the secondary's words with the primary's lines by their boxes (module docstring, 1),
    in the primary's reading order, lines only the secondary has placed among them."""
    boxes = [line.box for line in primary]
    taken: dict[int, list[Word]] = {i: [] for i in range(len(primary))}
    lone: dict[int, list[Word]] = {}  # secondary line -> its words no primary line took
    for s_index, line in enumerate(secondary):
        for word in line.words:
            best = _best_line(word, boxes, options)
            if best is None:
                lone.setdefault(s_index, []).append(word)
            else:
                taken[best].append(word)
    after: dict[int | None, list[list[Word]]] = {}
    for words in lone.values():
        after.setdefault(_line_above(words, boxes), []).append(words)
    result = [LineMatch(None, tuple(run)) for run in after.get(None, [])]
    for index in range(len(primary)):
        result.append(LineMatch(index, tuple(sorted(taken[index], key=lambda w: (w.x0 + w.x1) / 2))))
        result += [LineMatch(None, tuple(run)) for run in after.get(index, [])]
    return tuple(result)


def _line_above(words: Sequence[Word], boxes: Sequence[tuple[int, int, int, int]]) -> int | None:
    """The primary line a line only the secondary read follows: the lowest one starting above its
    middle, among those it overlaps horizontally when there are any."""
    x0, x1 = min(w.x0 for w in words), max(w.x1 for w in words)
    middle = (min(w.y0 for w in words) + max(w.y1 for w in words)) / 2
    above = [i for i, box in enumerate(boxes) if box[1] < middle]
    beside = [i for i in above if min(x1, boxes[i][2]) > max(x0, boxes[i][0])]
    pool = beside or above
    return max(pool, key=lambda i: (boxes[i][1], i)) if pool else None


def _best_line(word: Word, boxes: Sequence[tuple[int, int, int, int]], options: VoteOptions) -> int | None:
    best, best_key = None, None
    height = max(1, word.y1 - word.y0)
    centre = (word.x0 + word.x1) / 2
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        overlap = min(word.y1, y1) - max(word.y0, y0)
        if overlap <= 0 or overlap < options.min_overlap * max(1, min(height, y1 - y0)):
            continue
        gap = max(0.0, x0 - centre, centre - x1)
        if gap > options.max_gap * max(height, y1 - y0):
            continue
        key = (gap, -overlap / max(1, min(height, y1 - y0)))
        if best_key is None or key < best_key:
            best, best_key = index, key
    return best


# ------------------------------------------------------------------ scoring readings

def _strip(token: str) -> str:
    return token.strip(EDGE_PUNCT)


def token_score(token: str) -> float:
    """Spelling score of one word as read: 0 (a misreading) to 2 (a known, well-formed word or a
    number); pure punctuation is 1."""
    core = _strip(token)
    if not core:
        return 1.0
    pieces = PART_SPLIT.split(core)
    parts, seps = pieces[0::2], pieces[1::2]
    scores = []
    for part in parts:
        if not part:
            continue
        if NUMBER.fullmatch(part):
            scores.append(2.0)
        elif part.isalpha():
            score = float(lexicon.is_syllable(part)) + float(lexicon.is_word(part))
            if score < 1.5 and ABBREVIATION.fullmatch(part):
                score = 1.5  # an agency's or a document kind's initials: UBND, PCVP, TTr
            scores.append(score)
        else:
            scores.append(0.0)  # digits stuck to letters ("2Atháng", "l0"), stray symbols
    if not scores:
        return 1.0
    score = sum(scores) / len(scores)
    for k, sep in enumerate(seps):
        left, right = parts[k], parts[k + 1]
        if left and right and right[0].isalpha() and (sep in GLUE or (sep == "." and right[0].islower())):
            score -= 1.0  # "Ngãi,ngày": two words glued by their punctuation
    if LEADING_GLUE.match(token) or (token.endswith("-") and len(token) > 1):
        score -= 1.0  # ":Hội", "-BTT", "2020-": punctuation stuck to the wrong word
    return max(0.0, score)


@functools.lru_cache(maxsize=1)
def phrases() -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """The administrative phrase list: its pairs of syllables and its syllables, lower case."""
    pairs, syllables = set(), set()
    for line in PHRASES_FILE.read_text(encoding="utf-8").splitlines()[1:]:
        parts = unicodedata.normalize("NFC", line).lower().split()
        pairs |= set(zip(parts, parts[1:]))
        syllables |= set(parts)
    return frozenset(pairs), frozenset(syllables)


def _phrase_hits(tokens: Sequence[str], before: str | None, after: str | None) -> tuple[int, int]:
    pairs, syllables = phrases()
    bare = [_strip(t).lower() for t in tokens]
    context = ([_strip(before).lower()] if before else []) + bare + ([_strip(after).lower()] if after else [])
    pair_hits = sum((a, b) in pairs for a, b in zip(context, context[1:]))
    return pair_hits, sum(t in syllables for t in bare)


# ------------------------------------------------------------------ aligning and voting a line

def _cuts(first: str, other: str) -> dict[int, int]:
    """Positions of spaces of ``first`` aligned with a space of ``other`` (first's index -> other's)."""
    cuts = {}
    for tag, a0, a1, b0, _ in Levenshtein.opcodes(first, other):
        if tag == "equal":
            for k in range(a1 - a0):
                if first[a0 + k] == " ":
                    cuts[a0 + k] = b0 + k
    return cuts


def _token_index(text: str) -> dict[int, int]:
    """Space position -> number of tokens before it."""
    index, count = {}, 0
    for pos, char in enumerate(text):
        if char == " ":
            count += 1
            index[pos] = count
    return index


def vote_line(readings: Sequence[Sequence[Word]], options: VoteOptions = DEFAULT_OPTIONS) -> LineVote:
    """Vote on one line read several times (the first reading is the primary: its boxes are
    kept); see the module docstring, 2."""
    readings = [tuple(r) for r in readings if r]
    if not readings:
        return LineVote((), 0.0, False)
    if len(readings) == 1:
        only = readings[0]
        return LineVote(only, _mean_conf(only), False)
    texts = [" ".join(w.text for w in r) for r in readings]
    maps = [_cuts(texts[0], t) for t in texts[1:]]
    common = sorted(set.intersection(*(set(m) for m in maps)))
    token_at = [_token_index(t) for t in texts]
    # token boundaries of each reading at each common cut
    bounds = [[0] for _ in readings]
    for pos in common:
        bounds[0].append(token_at[0][pos])
        for r, m in enumerate(maps, start=1):
            bounds[r].append(token_at[r][m[pos]])
    for r, reading in enumerate(readings):
        bounds[r].append(len(reading))
    kept: list[Word] = []
    regions: list[Region] = []
    confidences: list[tuple[float, int]] = []
    for k in range(len(bounds[0]) - 1):
        spans = [reading[bounds[r][k]:bounds[r][k + 1]] for r, reading in enumerate(readings)]
        candidates = [tuple(w.text for w in span) for span in spans]
        if all(c == candidates[0] for c in candidates):
            kept += spans[0]
            conf = max(_mean_conf(s) for s in spans)
            confidences.append((conf, len(" ".join(candidates[0]))))
            continue
        before = kept[-1].text if kept else None
        after = readings[0][bounds[0][k + 1]].text if bounds[0][k + 1] < len(readings[0]) else None
        ranks = [_rank(r, spans, candidates, before, after, options) for r in range(len(spans))]
        chosen = max(range(len(spans)), key=lambda r: ranks[r])
        runner_up = max(rank for r, rank in enumerate(ranks) if r != chosen)
        by = next((name for name, a, b in zip(DECIDERS, ranks[chosen], runner_up) if a != b), "confidence")
        start = len(kept)
        kept += _placed(spans[chosen], spans[0]) if chosen else spans[0]
        regions.append(Region(tuple(" ".join(c) for c in candidates), chosen, by, start, len(kept) - start))
        confidences.append((_mean_conf(spans[chosen]), len(" ".join(candidates[chosen]))))
    total = sum(n for _, n in confidences) or 1
    confidence = round(sum(c * n for c, n in confidences) / total, 2)
    line = readings[0][0].line
    words = tuple(Word(w.text, w.x0, w.y0, w.x1, w.y1, w.conf, line) for w in kept)
    return LineVote(words, confidence, bool(regions), tuple(regions))


def _rank(r: int, spans, candidates, before, after, options: VoteOptions) -> tuple:
    tokens = candidates[r]
    spelling = sum(token_score(t) - 1.0 for t in tokens)
    # "10 506" is "10.506" misread: three digits after a number do not make a second word
    spelling -= sum(1.0 for a, b in zip(tokens, tokens[1:]) if NUMBER.fullmatch(a) and THOUSANDS.fullmatch(b))
    agreeing = sum(c == tokens for c in candidates)
    pair_hits, known = _phrase_hits(tokens, before, after)
    conf = _mean_conf(spans[r]) + (options.secondary_bias if r else 0.0)
    return (spelling, agreeing, pair_hits, known, conf, -r)


def _mean_conf(words: Sequence[Word]) -> float:
    return float(np.mean([w.conf for w in words])) if words else 0.0


def _placed(new: Sequence[Word], old: Sequence[Word]) -> list[Word]:
    """The words of another reading on the primary's boxes: one to one when the counts agree,
    else spread over the primary words' span by their lengths; on their own boxes when the
    primary read nothing there."""
    if not old:
        return list(new)
    if len(new) == len(old):
        return [Word(n.text, o.x0, o.y0, o.x1, o.y1, n.conf, o.line) for n, o in zip(new, old)]
    x0, y0 = min(w.x0 for w in old), min(w.y0 for w in old)
    x1, y1 = max(w.x1 for w in old), max(w.y1 for w in old)
    weights = [len(w.text) + 1 for w in new]
    total, start, placed = sum(weights), 0, []
    for word, weight in zip(new, weights):
        left = x0 + (x1 - x0) * start / total
        start += weight
        right = x0 + (x1 - x0) * start / total - ((x1 - x0) / total if start < total else 0)
        placed.append(Word(word.text, int(round(left)), y0, max(int(round(left)) + 1, int(round(right))), y1,
                           word.conf, old[0].line))
    return placed


# ------------------------------------------------------------------ a page

@dataclass(frozen=True)
class PageVote:
    lines: tuple[LineVote, ...]

    @property
    def words(self) -> list[dict]:
        """The kept words as the OcrEngine contract gives them, line ids from 0 in order."""
        out = []
        for number, line in enumerate(ln for ln in self.lines if ln.words):
            alts = line.word_alternatives  # the other reading where only confidence decided (ocr.review)
            out += [dict(w.as_dict(), line=number, **({"alt": alt} if alt is not None else {}))
                    for w, alt in zip(line.words, alts)]
        return out

    @property
    def disagreed(self) -> tuple[int, ...]:
        """Indices (among lines with words) of the lines where the readings disagreed."""
        return tuple(i for i, ln in enumerate(ln for ln in self.lines if ln.words) if ln.disagreed)


def vote_page(primary: Sequence[dict | Word], secondary: Sequence[dict | Word],
              options: VoteOptions = DEFAULT_OPTIONS) -> PageVote:
    """Match the two readings' lines and vote on each (module docstring)."""
    p_lines, s_lines = lines_of(primary), lines_of(secondary)
    out = []
    for match in match_lines(p_lines, s_lines, options):
        if match.primary is None:
            lone = LineVote(match.secondary, _mean_conf(match.secondary), True)
            if lone.confidence >= options.min_lone_conf:
                out.append(lone)
            continue
        out.append(vote_line([p_lines[match.primary].words, match.secondary], options)
                   if match.secondary else LineVote(p_lines[match.primary].words,
                                                    _mean_conf(p_lines[match.primary].words), True))
    return PageVote(tuple(out))


VOTED_PSM = 3  # whole-page reads; the page stage's packed table cells (psm 6, 7) are tesseract's alone


class _EitherSet:
    """Set when either event is: the primary's stop when the caller may stop the vote too (the
    recognisers look only at ``is_set``)."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


class VotingEngine:
    """Two recognisers read every image; their readings are voted on line by line (an ``OcrEngine``).

    Reads for another language than the primary's, or with a character whitelist, are the
    primary's alone (the page stage asks tesseract's English model for lone numbers), and so are
    the page stage's reads of packed table cells (psm 6 and 7): on rendered tables the vote lost
    words there (97.5 % of table words found alone, 96.4 % voted; bench/run.py, 9 pages)."""

    name = "vote"

    def __init__(self, primary, secondary, options: VoteOptions = DEFAULT_OPTIONS):
        self.primary, self.secondary, self.options = primary, secondary, options
        self.lang = primary.lang

    def version(self) -> str:
        return (f"{self.name} {RULES_VERSION} {_data_hash()}|{self.primary.name} {self.primary.version()}"
                f"|{self.secondary.name} {self.secondary.version()}")

    def has_language(self, lang: str) -> bool:
        return self.primary.has_language(lang)

    def fastest(self):
        """The secondary when it reads this language: TrueOCR reads the orientation test's band in
        about a fifth of tesseract's time (bench/README.md, "sixth pass")."""
        return self.secondary.fastest() if self.secondary.has_language(self.lang) else self.primary.fastest()

    def load(self) -> None:
        self.primary.load()
        self.secondary.load()

    def orientation(self, gray: np.ndarray) -> int | None:
        return self.primary.orientation(gray)

    def vote(self, gray: np.ndarray, *, psm: int = 3, dpi: int = 300, scale: float = 1.0,
             whitelist: str | None = None, lang: str | None = None, stop: threading.Event | None = None,
             abandon_if: Callable[[list[dict], str], bool] | None = None) -> PageVote:
        """Both readings of ``gray`` and the vote on each line (``stop``, ``abandon_if``: see
        ``ocr.engine.OcrEngine``)."""
        kwargs = dict(psm=psm, dpi=dpi, scale=scale, whitelist=whitelist, lang=lang)
        lang = lang or self.lang
        if whitelist or lang != self.lang or psm != VOTED_PSM or not self.secondary.has_language(lang):
            first = self.primary.read(gray, **kwargs, stop=stop)
            return PageVote(tuple(LineVote(line.words, _mean_conf(line.words), False) for line in lines_of(first)))
        # the primary (tesseract) reads in a process of its own, the secondary (TrueOCR) in this one
        # meanwhile: on a core left free (a one-page document, an intake page) the page is read in
        # the time of the slower reading instead of the sum of both
        primary_stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="primary-read") as pool:
            first = pool.submit(self.primary.read, gray, **kwargs,
                                stop=primary_stop if stop is None else _EitherSet(primary_stop, stop))
            try:
                # TrueOCR ends well before tesseract: a reading the caller would throw away (a page
                # turned over) need not wait for tesseract's (bench/README.md, "seventh pass"); it
                # shows its first lines before it reads the others ("seventeenth pass")
                second = self.secondary.read(gray, **kwargs, stop=stop, abandon_if=abandon_if)
                if stop is not None and stop.is_set():
                    raise ReadingStopped()
                abandoned = abandon_if is not None and not first.done() and abandon_if(second, self.secondary.name)
                if abandoned:
                    primary_stop.set()
                try:
                    return vote_page(first.result(), second, self.options)  # one that ended before the stop is kept
                except ReadingStopped:
                    if abandoned:
                        raise ReadingAbandoned() from None
                    raise
            finally:
                primary_stop.set()  # a reading not waited for (an error above) is not left running

    def read(self, gray: np.ndarray, *, psm: int = 3, dpi: int = 300, scale: float = 1.0,
             whitelist: str | None = None, lang: str | None = None, stop: threading.Event | None = None,
             abandon_if: Callable[[list[dict], str], bool] | None = None) -> list[dict]:
        return self.vote(gray, psm=psm, dpi=dpi, scale=scale, whitelist=whitelist, lang=lang, stop=stop,
                         abandon_if=abandon_if).words


@functools.lru_cache(maxsize=1)
def _data_hash() -> str:
    digest = hashlib.sha256()
    for path in (lexicon.WORDS_FILE, PHRASES_FILE):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
