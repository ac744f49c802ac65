"""The page renderer the OCR tests and the benchmark rely on: reproducible, exact truth."""
from __future__ import annotations

import unicodedata

import numpy as np

from tests.pagegen import PageSpec, available_texts, render_page


def test_same_spec_renders_the_same_page():
    spec = PageSpec(layout="admin", dpi=100, skew_deg=3.0, orientation=90, degradation=2, seed=5)
    first, second = render_page(spec), render_page(spec)
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    assert first.truth_lines == second.truth_lines


def test_truth_is_nfc_and_in_column_order():
    page = render_page(PageSpec(layout="admin", dpi=100, seed=2))
    assert all(line == unicodedata.normalize("NFC", line) for line in page.truth_lines)
    assert page.truth_lines[:6] == page.header_left + page.header_right


def test_quarter_turn_and_modes():
    upright = render_page(PageSpec(layout="text", dpi=100, seed=1, degradation=0))
    turned = render_page(PageSpec(layout="text", dpi=100, seed=1, degradation=0, orientation=90))
    assert turned.image.size == upright.image.size[::-1]
    assert np.array_equal(np.asarray(turned.image), np.asarray(upright.image.rotate(90, expand=True)))
    assert render_page(PageSpec(layout="table", dpi=100, color="gray", seed=1)).image.mode == "L"
    assert render_page(PageSpec(layout="table", dpi=100, color="bitonal", seed=1)).image.mode == "1"


def test_blank_page_has_no_truth_and_texts_are_shipped():
    assert render_page(PageSpec(layout="blank", dpi=100, seed=1)).truth_lines == []
    assert len(available_texts()) >= 2
