"""Identity numbers in search snippets (pipeline.privacy): masked however they are grouped."""
from __future__ import annotations

import pytest

from pipeline.privacy import mask_id_numbers


@pytest.mark.parametrize("written, shown", [
    ("CCCD 079193001234 cấp", "CCCD •••••••••234 cấp"),
    ("Số CCCD: 051-190-001-234 do", "Số CCCD: •••-•••-•••-234 do"),      # hyphens (shown whole before)
    ("CMND cũ: 212,345,678.", "CMND cũ: •••,•••,678."),                  # commas (shown whole before)
    ("số 031 190 004 567 ngày", "số ••• ••• ••• 567 ngày"),
    ("số định danh 051/190/001/234", "số định danh •••/•••/•••/234"),
    ("CMND 212.345.678", "CMND •••.•••.678"),
    # next to a comma, a slash or a hyphen (the review of the change above: shown whole)
    ("Nguyễn Văn A,079193001234,Hà Nội", "Nguyễn Văn A,•••••••••234,Hà Nội"),
    ("CMND/CCCD/079193001234", "CMND/CCCD/•••••••••234"),
    ("CCCD-079193001234", "CCCD-•••••••••234"),
    ("079193001234,0905123456", "•••••••••234,0905123456"),
    ("CCCD 079193001234/2021", "CCCD •••••••••234/2021"),
    ("CCCD:079-193-001-234,0905123456", "CCCD:•••-•••-•••-234,0905123456"),
    ("mã 2024-051190001234-7", "mã 2024-•••••••••234-7"),
])
def test_an_identity_number_keeps_only_its_last_three_digits_whatever_separates_its_groups(written, shown):
    assert mask_id_numbers(written) == shown


@pytest.mark.parametrize("written", [
    "số tiền 150.000.000 đồng", "tổng 150,000,000 đồng", "giá 212.345.000", "ngày 12/12/2011",
    "Quyết định số 1418/QĐ-UBND", "điện thoại 0905-123-456", "Giá trị hợp đồng: 1.234.567.890",
    "12.345.678.900",
])
def test_amounts_dates_and_other_numbers_are_shown_as_written(written):
    assert mask_id_numbers(written) == written


def test_a_pages_own_square_brackets_are_not_taken_for_the_marks_of_a_match():
    """The search review: "Ghi chú [1]: … (giấy khai sinh]" came back as "[Ghi chú] [1]: …
    ([giấy khai sinh]]", and the web page highlighted the footnote number."""
    from pipeline.service import _INNER_MARK, _shown

    a, b = _INNER_MARK
    assert _shown(f"{a}Ghi chú{b} [1]: hồ sơ thiếu bản sao ({a}giấy khai sinh{b}]") == \
        "[Ghi chú] ［1］: hồ sơ thiếu bản sao ([giấy khai sinh]］"
