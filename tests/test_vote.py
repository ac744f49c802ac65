"""Line-level combination of two recognisers (ocr.vote, ocr.lexicon): hand-made readings, line
matching on boxes, and both real engines voting on a rendered page."""
from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from ocr import lexicon
from ocr.page import process_page
from ocr.recognise import TesseractEngine
from ocr.trueocr_engine import TrueOcrEngine
from ocr.vote import Line, VotingEngine, Word, lines_of, match_lines, token_score, vote_line, vote_page
from tests.pagegen import PageSpec, render_page


def reading(text: str, conf: float = 90.0, y: int = 100, x: int = 50, line: int = 0, height: int = 30) -> list[Word]:
    """A line of words as an engine would give it: 20 px a character, 15 px between words."""
    words = []
    for token in text.split():
        words.append(Word(token, x, y, x + 20 * len(token), y + height, conf, line))
        x += 20 * len(token) + 15
    return words


def voted(first: str, second: str, first_conf: float = 90.0, second_conf: float = 90.0) -> str:
    return vote_line([reading(first, first_conf), reading(second, second_conf)]).text


# ---------------------------------------------------------------- spelling


@pytest.mark.parametrize("syllable", ["Quảng", "NGÃI", "ngày", "tháng", "thông", "báo", "tỉnh", "quyết", "định",
                                      "giếng", "gì", "hóa", "hoá", "thủy", "thuỷ", "người", "được", "khuyến", "ĐỘC"])
def test_well_formed_syllables(syllable):
    assert lexicon.is_syllable(syllable)


@pytest.mark.parametrize("text", ["2Atháng", "ỦỴ", "tíhn", "ThÔng", "tầc", "qủa", "bảoo", "ngãi,", "Tổchức"])
def test_misreadings_are_not_syllables(text):
    assert not lexicon.is_syllable(text)


def test_word_list_is_tesseracts_vietnamese_dawg():
    words = lexicon.words()
    assert len(words) > 4000
    assert {"tháng", "thông", "báo", "tỉnh", "quảng", "ngãi"} <= words
    header = lexicon.WORDS_FILE.read_text(encoding="utf-8").splitlines()[0]
    assert "Apache-2.0" in header and "tessdata" in header
    assert all(unicodedata.is_normalized("NFC", w) for w in words)


def test_token_scores():
    assert token_score("tháng") == 2 and token_score("24") == 2 and token_score("19/6/2015;") == 2
    assert token_score("2Atháng") == 0
    assert token_score("Ngãi,ngày") < token_score("Ngãi,")
    assert token_score("UBND") > token_score("PCTUBND")


# ---------------------------------------------------------------- voting a line


def test_date_line_takes_the_well_formed_syllables_from_either_reading():
    right = "Quảng Ngãi, ngày 24 tháng 01"
    wrong = "Quảng Ngãi,ngày 2Atháng 01"
    # whichever engine is primary and whichever is more confident
    assert voted(right, wrong, 80, 95) == right
    assert voted(wrong, right, 95, 80) == right


def test_tone_marks_are_decided_by_the_phrase_list_not_the_confidence():
    assert voted("THÔNG BẢO", "THÔNG BÁO", 96, 80) == "THÔNG BÁO"
    assert voted("THÔNG BÁO", "THÔNG BẢO", 80, 96) == "THÔNG BÁO"
    assert voted("TĨNH QUẢNG NGÃI", "TỈNH QUẢNG NGÃI", 96, 80) == "TỈNH QUẢNG NGÃI"
    assert voted("TỈNH QUẢNG NGÃI", "TĨNH QUẢNG NGÃI", 80, 96) == "TỈNH QUẢNG NGÃI"


def test_two_tone_marks_on_one_syllable_lose():
    assert voted("ỦỴ BAN NHÂN DÂN", "ỦY BAN NHÂN DÂN", 99, 60) == "ỦY BAN NHÂN DÂN"


def test_a_dropped_word_is_taken_from_the_other_reading():
    assert voted("Căn cứ Luật chức", "Căn cứ Luật Tổ chức") == "Căn cứ Luật Tổ chức"


def test_confidence_decides_between_two_equally_good_readings():
    assert voted("chuyển", "chuyên", 70, 95) == "chuyên"
    assert voted("chuyển", "chuyên", 95, 70) == "chuyển"


def test_same_error_in_both_readings_is_kept_and_nothing_is_invented():
    result = vote_line([reading("Căn cú Luật Tô chức"), reading("Căn cú Luật Tô chức")])
    assert result.text == "Căn cú Luật Tô chức" and not result.disagreed and result.regions == ()
    # every word kept is a word one of the engines read in that place
    a, b = "Qủang Ngãi ngày 2A", "Quảng Ngăi ngay 2Ạ"
    result = vote_line([reading(a), reading(b)])
    for word, first, second in zip(result.text.split(), a.split(), b.split()):
        assert word in (first, second)


def test_line_result_reports_disagreement_confidence_and_regions():
    result = vote_line([reading("THÔNG BẢO số 46", 90), reading("THÔNG BÁO số 46", 70)])
    assert result.disagreed
    assert [r.readings for r in result.regions] == [("BẢO", "BÁO")]
    assert result.regions[0].chosen == 1 and result.regions[0].by == "phrases" and not result.uncertain
    assert vote_line([reading("chuyển", 70), reading("chuyên", 95)]).uncertain
    assert 70 <= result.confidence <= 90
    agreed = vote_line([reading("Số: 46/TB-UBND", 90), reading("Số: 46/TB-UBND", 80)])
    assert not agreed.disagreed and agreed.confidence == 90


def test_changed_words_keep_the_primary_boxes():
    primary = reading("Quảng Ngãi,ngày 2Atháng 01", x=100)
    secondary = reading("Quảng Ngãi, ngày 24 tháng 01", x=103)
    result = vote_line([primary, secondary])
    assert result.text == "Quảng Ngãi, ngày 24 tháng 01"
    left, right = primary[0].x0, primary[-1].x1
    assert result.words[0] == Word("Quảng", primary[0].x0, 100, primary[0].x1, 130, 90.0, 0)
    assert all(left <= w.x0 < w.x1 <= right for w in result.words)
    assert all(a.x1 <= b.x0 for a, b in zip(result.words, result.words[1:]))  # in order, not overlapping
    # the two words that replace "2Atháng" share its span
    span = [w for w in primary if w.text == "2Atháng"][0]
    assert [w.text for w in result.words if span.x0 <= w.x0 and w.x1 <= span.x1] == ["24", "tháng"]


def test_the_other_reading_offered_for_review_replaces_the_stretch_decided_not_an_earlier_copy_of_it():
    # "chuyển" also stands earlier in the line; only the second one was read two ways
    result = vote_line([reading("chuyển công văn chuyển cho", 95), reading("chuyển công văn chuyên cho", 70)])
    assert result.text == "chuyển công văn chuyển cho" and result.uncertain
    assert result.alternative == "chuyển công văn chuyên cho"
    assert result.word_alternatives == (None, None, None, "chuyên", None)
    # a stretch of two words read as one: the first word carries the other reading, the second ""
    two = vote_line([reading("ngày 24 ngày", 95), reading("ngày 2A ngày", 70)])
    assert two.alternative is None or two.alternative.split()[0] == "ngày"
    assert vote_line([reading("Số: 46", 90), reading("Số: 46", 80)]).alternative is None


# ---------------------------------------------------------------- matching lines on boxes


def test_lines_are_matched_on_their_boxes():
    primary = lines_of(reading("CỘNG HÒA XÃ HỘI", y=100, line=0) + reading("Độc lập - Tự do", y=150, line=1)
                       + reading("Số: 46/TB-UBND", y=300, line=2))
    # the secondary reads in another order, misses the last line and has one line of its own
    secondary = lines_of(reading("Độc lập - Tự do", y=153, x=52, line=0) + reading("CỘNG HÒA XÃ HỘl", y=98, line=1)
                         + reading("THÔNG BÁO", y=220, line=2))
    matches = match_lines(primary, secondary)
    assert [m.primary for m in matches] == [0, 1, None, 2]
    assert " ".join(w.text for w in matches[0].secondary) == "CỘNG HÒA XÃ HỘl"
    assert " ".join(w.text for w in matches[1].secondary) == "Độc lập - Tự do"
    assert " ".join(w.text for w in matches[2].secondary) == "THÔNG BÁO"
    assert matches[3].secondary == ()
    page = vote_page([w.as_dict() for line in primary for w in line.words],
                     [w.as_dict() for line in secondary for w in line.words])
    texts = [line.text for line in page.lines]
    assert texts == ["CỘNG HÒA XÃ HỘI", "Độc lập - Tự do", "THÔNG BÁO", "Số: 46/TB-UBND"]
    assert [w["line"] for w in page.words] == sorted(w["line"] for w in page.words)
    assert page.disagreed == (0, 2, 3)  # a misread letter, a line only one engine read, and one only the other did


def test_a_line_split_at_a_column_gap_is_matched_word_by_word():
    # the primary reads the two header columns as two lines; the secondary as one wide line
    left = reading("UBND TỈNH QUẢNG NGÃI", y=100, x=50, line=0)
    right = reading("CỘNG HÒA XÃ HỘI", y=102, x=1400, line=1)
    wide = reading("UBND TĨNH QUẢNG NGÃI", y=101, x=52, line=0) + reading("CỘNG HÒA XÃ HỘI", y=101, x=1402, line=0)
    matches = match_lines(lines_of(left + right), lines_of(wide))
    assert [(m.primary, " ".join(w.text for w in m.secondary)) for m in matches] == [
        (0, "UBND TĨNH QUẢNG NGÃI"), (1, "CỘNG HÒA XÃ HỘI")]


def test_no_secondary_reading_keeps_the_primary():
    primary = [w.as_dict() for w in reading("Nơi nhận:", y=2000)]
    assert [w["text"] for w in vote_page(primary, []).words] == ["Nơi", "nhận:"]
    assert vote_page([], primary).words[0]["text"] == "Nơi"


# ---------------------------------------------------------------- both engines on a rendered page


def words_found(truth: str, text: str) -> float:
    expected, found = Counter(truth.split()), Counter(text.split())
    return sum(min(n, found[w]) for w, n in expected.items()) / max(1, sum(expected.values()))


def test_voting_engine_on_a_rendered_page_finds_at_least_what_tesseract_finds():
    page = render_page(PageSpec(layout="admin", dpi=300, skew_deg=1.2, degradation=2, seed=31))
    tesseract = TesseractEngine("vie")
    engine = VotingEngine(tesseract, TrueOcrEngine("vie"))
    assert engine.lang == "vie" and engine.has_language("vie")
    assert "tesseract" in engine.version() and "trueocr" in engine.version()
    alone = process_page(page.image, page.dpi, tesseract)
    together = process_page(page.image, page.dpi, engine)
    assert together["orientation"] == alone["orientation"] == 0
    assert words_found(page.text, together["text"]) >= words_found(page.text, alone["text"])
    assert words_found(page.text, together["text"]) >= 0.95
    lines = [w["line"] for w in together["words"]]
    assert lines == sorted(lines)
    for word in together["words"]:
        # the contract's fields, and the other reading of a line decided on confidence alone (for review)
        assert {"text", "x0", "y0", "x1", "y1", "conf", "line"} <= set(word) <= {"text", "x0", "y0", "x1", "y1",
                                                                                 "conf", "line", "alt"}
        assert 0 <= word["x0"] < word["x1"] <= page.image.width and 0 <= word["y0"] < word["y1"] <= page.image.height
        assert unicodedata.is_normalized("NFC", word["text"])
