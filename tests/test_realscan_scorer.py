"""The real-scan scorer's measures (bench/realscans.py) on small hand-made strings."""
from __future__ import annotations

import json

import pytest

from bench import realscans as rs


def test_truth_lines_keep_zone_printed_text_and_handwriting():
    lines = rs.parse_truth("H\tSố: ⟦46⟧ /TB-UBND\n\nB\tngày ⟦24⟧ tháng 01 năm ⟦?⟧⟦?⟧\n")
    assert [line.zone for line in lines] == ["H", "B"]
    assert lines[0].text == "Số: 46 /TB-UBND" and lines[0].printed == "Số: /TB-UBND"
    assert lines[0].spans == ((4, 6, "46"),)
    assert lines[1].printed == "ngày tháng 01 năm"
    assert rs.printed_words(lines[1]) == ["ngày", "tháng", "01", "năm"]
    assert rs.printed_words(rs.parse_truth("H\tSố: ⟦46⟧/TB-UBND")[0]) == ["Số:"]


def test_truth_must_name_a_zone():
    with pytest.raises(ValueError):
        rs.parse_truth("X\tsomething")
    with pytest.raises(ValueError):
        rs.parse_truth("no tab here")


def test_truth_is_nfc():
    decomposed = "B\tQua\u0309ng Nga\u0303i"
    assert rs.parse_truth(decomposed)[0].text == "Quảng Ngãi"


def test_best_span_is_the_closest_substring():
    assert rs.best_span("hello", rs._codes("say hallo world")) == (4, 9, 1)
    assert rs.best_span("world", rs._codes("say hallo world")) == (10, 15, 0)
    assert rs.best_span("abc", rs._codes("xyz"))[2] == 3


def test_lines_align_whatever_their_order_and_text_is_claimed_once():
    ocr = "Độc lập - Tự do - Hạnh phúc ỦY BAN NHÂN DÂN ỦY BAN"
    spans = rs.align_lines(["ỦY BAN NHÂN DÂN", "Độc lập - Tự do - Hạnh phúc", "ỦY BAN NHÂN DÂN"], ocr)
    assert ocr[spans[0][0]:spans[0][1]] == "ỦY BAN NHÂN DÂN" and spans[0][2] == 0
    assert ocr[spans[1][0]:spans[1][1]] == "Độc lập - Tự do - Hạnh phúc" and spans[1][2] == 0
    # the second copy cannot claim the first's text again: it gets the leftover "ỦY BAN"
    assert ocr[spans[2][0]:spans[2][1]].strip() == "ỦY BAN" and spans[2][2] >= 8
    # a line with nothing like it on the page is unmatched, all its characters errors
    assert rs.align_lines(["qqqq"], "ab") == [(-1, -1, 4)]


def test_handwriting_is_cut_from_both_sides():
    line = rs.parse_truth("H\tQuảng Ngãi, ngày ⟦24⟧ tháng 01 năm 2025")[0]
    printed, readings = rs.cut_handwriting(line, "Quảng Ngãi, ngày 2A tháng 01 năm 2025")
    assert printed == "Quảng Ngãi, ngày tháng 01 năm 2025" == line.printed
    assert readings == [("24", "2A")]
    printed, readings = rs.cut_handwriting(line, "Quảng Ngãi, ngày tháng 01 năm 2025")  # not read at all
    assert printed == line.printed and readings == [("24", "")]
    # junk inserted next to the handwriting goes with it
    printed, _ = rs.cut_handwriting(line, "Quảng Ngãi, ngày ~24 tháng 01 năm 2025")
    assert printed == line.printed


def test_diacritic_only_substitutions_are_told_apart():
    assert rs.error_kinds("Quảng Ngãi", "Quảng Ngãi") == (0, 0)
    assert rs.error_kinds("Quảng Ngãi", "Quáng Ngai") == (2, 2)
    assert rs.error_kinds("đất", "dat") == (2, 2)          # đ/d counts as a diacritic
    assert rs.error_kinds("tháng", "thánq") == (1, 0)      # another letter
    assert rs.error_kinds("Tỉnh", "Tinh ủy") == (4, 1)     # one mark lost, three characters inserted
    assert rs.error_kinds("A", "a") == (1, 0)              # case is not a diacritic


def test_reading_order_errors_and_kendall_tau():
    assert rs.order_errors([0, 10, 20, 30]) == (0, 1.0)
    assert rs.order_errors([0, 20, 10, 30]) == (1, pytest.approx(4 / 6))
    assert rs.order_errors([30, 20, 10]) == (2, -1.0)
    # two header columns read interleaved: left 0,1,2 at 0,20,40; right 3,4,5 at 10,30,50
    assert rs.order_errors([0, 20, 40, 10, 30, 50])[0] == 2
    assert rs.order_errors([]) == (0, 1.0)


def test_words_found_is_a_multiset_after_nfc():
    assert rs.words_found(["năm", "năm", "2025"], ["na\u0306m", "2025", "x"]) == (2, 3)


def test_page_score_counts_order_apart_from_character_errors():
    truth = rs.parse_truth("H\tỦY BAN NHÂN DÂN\nH\tSố: ⟦46⟧ /TB-UBND\nB\tTHÔNG BÁO\nB\tVề việc thụ lý\nM\tHỎA TỐC\n")
    # every line read right, but the body before the header, a stamp read as junk and a seal's text
    scored = rs.score_page(truth, ["THÔNG BÁO", "Về việc thụ lý", "ỦY BAN NHÂN DÂN", "Số: 4b /TB-UBND",
                                   "HỎA TỐC", "CÔNG"])
    assert scored["errors_all"] == 0 and scored["errors_body"] == 0
    assert scored["chars_body"] == len("THÔNG BÁO") + len("Về việc thụ lý")
    assert scored["order_lines"] == 4 and scored["order_errors"] == 2   # M lines have no place in the order
    assert scored["hw_tokens"] == 1 and scored["hw_right"] == 0
    assert scored["unmatched_ocr"] == 4                                 # "CÔNG"
    assert scored["words_hit"] == scored["words"] == 14
    rates = rs.rates(scored)
    assert rates["cer_all"] == 0 and rates["hw_read"] == 0 and rates["diacritic_share"] is None
    json.dumps(scored, ensure_ascii=False)


def test_page_score_character_errors_and_diacritic_share():
    truth = rs.parse_truth("B\tthế hệ sinh sống trên một thửa đất\nR\t- Như trên;\n")
    scored = rs.score_page(truth, ["- Như trên;", "thê hệ sinh sông trên một thửa dat"])
    assert scored["errors_body"] == 4 and scored["diacritic_errors"] == 4
    assert scored["errors_all"] == 4 and scored["order_errors"] == 1  # R read first: an order error, no character error
    assert rs.rates(scored)["diacritic_share"] == 1.0
    assert rs.rates(scored)["cer_body"] == round(4 / len("thế hệ sinh sống trên một thửa đất"), 4)


def test_the_test_part_needs_the_frozen_report_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        rs.main(["--part", "test"])
    assert exit_.value.code == 2
    assert "--frozen-report" in capsys.readouterr().err
