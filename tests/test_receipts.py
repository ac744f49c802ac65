"""Receipt QR codes and the splitting of a continuous scan of many dossiers (issue 12, point 5).

Pages are rendered by tests/receiptgen.py at 200 dpi (one at 300 dpi) and cached for the module.
"""
from __future__ import annotations

import gc
import weakref

import pytest

from ocr.receipt import QrReading, read_qr_codes
from pipeline.receipts import (BEFORE_FIRST_RECEIPT, CONFLICTING_CODES, FOREIGN_QR, INVALID_CODE,
                               UNREADABLE_QR, find_code_in, plan_split, scan_pages, split_scan)
from tests.receiptgen import ReceiptSpec, id_card_page, ordinary_page, render_receipt

A, B, C = "H15.50.05.13-261008-0975", "000.00.12.H42-250101-0001", "M01.001.01-260201-DV0001"
URL = f"https://dichvucong.gov.vn/p/home/dvc-tra-cuu-ho-so.html?ma={A}&lang=vi"

DEGRADED = {
    "clean": ReceiptSpec(code=A),
    "skewed +8°": ReceiptSpec(code=A, skew_deg=8, seed=1),
    "skewed -10°": ReceiptSpec(code=A, skew_deg=-10, corner="top-left", seed=2),
    "blurred": ReceiptSpec(code=A, blur_sigma=1.5, seed=3),
    "sticky note over 15%": ReceiptSpec(code=A, cover=0.15, seed=4),
    "red stamp over 15%": ReceiptSpec(code=A, cover=0.15, cover_kind="stamp", corner="top-left", seed=5),
    "JPEG noise": ReceiptSpec(code=A, jpeg_quality=35, noise=2, seed=6),
    "upside down": ReceiptSpec(code=A, orientation=180, seed=7),
    "300 dpi skewed and blurred": ReceiptSpec(code=A, dpi=300, skew_deg=-4, blur_sigma=1.0, seed=8),
    "all at once": ReceiptSpec(code=A, skew_deg=6, blur_sigma=1.2, cover=0.10, jpeg_quality=60, seed=9),
    "1-bit scan": ReceiptSpec(code=A, color="bitonal", skew_deg=-3, blur_sigma=0.8, seed=10),
}


@pytest.fixture(scope="module")
def page():
    """Rendered pages by name, each rendered once for the module."""
    cache = {}
    makers = {
        **{f"receipt {name}": (lambda spec=spec: render_receipt(spec)) for name, spec in DEGRADED.items()},
        "receipt B": lambda: render_receipt(ReceiptSpec(code=B, corner="top-left", skew_deg=3, seed=11)),
        "receipt C": lambda: render_receipt(ReceiptSpec(code=C, corner="bottom-right", blur_sigma=0.8, seed=12)),
        "receipt URL": lambda: render_receipt(ReceiptSpec(code=A, payload=URL, skew_deg=-5, seed=13)),
        "receipt destroyed": lambda: render_receipt(ReceiptSpec(code=B, destroyed=True, seed=14)),
        "receipt finder covered": lambda: render_receipt(ReceiptSpec(code=B, cover=0.1, cover_kind="finder",
                                                                     skew_deg=4, seed=17)),
        "receipt bad date": lambda: render_receipt(ReceiptSpec(code="H15.50.05.13-261399-0975", seed=15)),
        "id card": lambda: id_card_page(seed=16),
        **{f"ordinary {i}": (lambda i=i: ordinary_page(seed=100 + i, layout=("admin", "text", "table")[i % 3]))
           for i in range(6)},
    }

    def get(name: str):
        if name not in cache:
            cache[name] = makers[name]()
        return cache[name]

    return get


def scan(page, names: list[str], file: str = "lo-1.tif") -> list[tuple[str, int, object]]:
    return [(file, number, page(name)) for number, name in enumerate(names, start=1)]


def pages_of(group) -> list[int]:
    return [p.page for p in group.pages]


# --- reading the code ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DEGRADED))
def test_each_degradation_reads_the_dossier_code(page, name):
    reading = read_qr_codes(page(f"receipt {name}"))
    assert reading.texts == (A,), name
    assert reading.unreadable == 0
    assert find_code_in(reading.texts[0]) == A


def test_a_url_in_the_qr_code_yields_the_dossier_code(page):
    reading = read_qr_codes(page("receipt URL"))
    assert reading.texts == (URL,)
    assert find_code_in(reading.texts[0]) == A


def test_a_page_without_qr_code_gives_nothing(page):
    for name in ("ordinary 0", "ordinary 2"):  # an administrative page with its red seal; a ruled table
        reading = read_qr_codes(page(name))
        assert (reading.texts, reading.unreadable) == ((), 0), name


def test_a_destroyed_qr_code_is_located_and_reported_unreadable(page):
    reading = read_qr_codes(page("receipt destroyed"))
    assert reading.texts == ()
    assert reading.unreadable == 1


def test_a_symbol_with_a_finder_pattern_covered_is_reported_unreadable(page):
    """No detector locates a symbol with one of its three finder patterns under a note; the two
    left are enough to report it, so the page is not taken for an ordinary one."""
    reading = read_qr_codes(page("receipt finder covered"))
    assert (reading.texts, reading.unreadable) == ((), 1)


def test_codes_inside_payloads():
    assert find_code_in(f"  {A}\n") == A
    assert find_code_in(f"Mã hồ sơ: {A}") == A
    assert find_code_in(f"https://dvc.example.vn/tra-cuu?ma={A.replace('-', '%2D')}") == A
    assert find_code_in(f"{{\"fileCode\": \"{C}\"}}") == C
    assert find_code_in("001099012345|123456789|Nguyễn Văn A|01011990|Nam|Hà Nội|15082021") is None
    assert find_code_in(A.lower()) is None
    assert find_code_in(f"{A} {B}") is None  # two codes: none is *the* code


# --- splitting a continuous scan -------------------------------------------------------------

def test_three_dossiers_in_one_scan_give_three_groups(page):
    names = ["receipt clean", "ordinary 0",
             "receipt B", "ordinary 1", "ordinary 2",
             "receipt C", "ordinary 3", "ordinary 4", "ordinary 5"]
    plan = split_scan(scan(page, names))
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(A, [1, 2]), (B, [3, 4, 5]), (C, [6, 7, 8, 9])]
    assert [g.first.page for g in plan.groups] == [1, 3, 6]
    assert plan.complete and plan.problems == () and plan.page_count == 9


def test_a_scan_over_several_files_is_split_across_them(page, tmp_path):
    """Two multi-page TIFF files from the feeder, read one page at a time; the second file
    continues the dossier the first one ended with."""
    first, second = tmp_path / "lo-1.tif", tmp_path / "lo-2.tif"
    images = [page(n) for n in ("receipt clean", "ordinary 0", "receipt B", "ordinary 1")]
    images[0].save(first, save_all=True, append_images=images[1:], dpi=(200, 200), compression="tiff_deflate")
    images = [page(n) for n in ("ordinary 2", "receipt C", "ordinary 3")]
    images[0].save(second, save_all=True, append_images=images[1:], dpi=(200, 200), compression="tiff_deflate")
    plan = split_scan(scan_pages([first, second], max_pixels=150_000_000))
    assert [(g.code, [(p.file[-8:], p.page) for p in g.pages]) for g in plan.groups] == [
        (A, [("lo-1.tif", 1), ("lo-1.tif", 2)]),
        (B, [("lo-1.tif", 3), ("lo-1.tif", 4), ("lo-2.tif", 1)]),
        (C, [("lo-2.tif", 2), ("lo-2.tif", 3)]),
    ]
    assert plan.complete


def test_a_damaged_receipt_holds_its_pages_back_and_never_merges_them(page):
    names = ["receipt clean", "ordinary 0", "ordinary 1",
             "receipt destroyed", "ordinary 2", "ordinary 3",
             "receipt C", "ordinary 4"]
    plan = split_scan(scan(page, names))
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(A, [1, 2, 3]), (C, [7, 8])]
    assert [(h.kind, pages_of(h)) for h in plan.held] == [(UNREADABLE_QR, [4, 5, 6])]
    assert not plan.complete
    (problem,) = plan.problems
    assert (problem.kind, problem.file, problem.page, problem.blocking) == (UNREADABLE_QR, "lo-1.tif", 4, True)
    assert ("Trang 4 của tệp lo-1.tif có mã QR nhưng không đọc được; kiểm tra và quét lại trang này"
            in problem.message_vi)
    assert "3 trang (trang 4–6 của tệp lo-1.tif) được giữ lại" in problem.message_vi


def test_pages_before_the_first_receipt_are_reported(page):
    plan = split_scan(scan(page, ["ordinary 0", "ordinary 1", "receipt B", "ordinary 2"], file="lo-7.tif"))
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(B, [3, 4])]
    assert [(h.kind, pages_of(h)) for h in plan.held] == [(BEFORE_FIRST_RECEIPT, [1, 2])]
    (problem,) = plan.problems
    assert (problem.kind, problem.page) == (BEFORE_FIRST_RECEIPT, 1)
    assert problem.message_vi.startswith("Trang 1 của tệp lo-7.tif nằm trước phiếu tiếp nhận đầu tiên")


def test_a_qr_code_holding_an_invalid_code_is_reported(page):
    plan = split_scan(scan(page, ["receipt clean", "ordinary 0", "receipt bad date", "ordinary 1"]))
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(A, [1, 2])]
    assert [(h.kind, pages_of(h)) for h in plan.held] == [(INVALID_CODE, [3, 4])]
    (problem,) = plan.problems
    assert problem.page == 3 and problem.blocking
    assert "không phải mã hồ sơ hợp lệ" in problem.message_vi and "261399" in problem.message_vi


def test_an_identity_card_qr_code_stays_in_its_dossier_with_a_notice(page):
    plan = split_scan(scan(page, ["receipt URL", "id card", "ordinary 0"]))
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(A, [1, 2, 3])]
    (notice,) = plan.problems
    assert (notice.kind, notice.page, notice.blocking) == (FOREIGN_QR, 2, False)
    assert "|" not in notice.message_vi  # the card's personal data is not repeated
    assert plan.complete


def test_split_rules_on_readings():
    """The pure planner: same code twice in a row continues; two codes on a page, a lower-case
    code and a bare 'Mã hồ sơ' are blocking; each held stretch ends at the next good receipt."""
    readings = [("s.pdf", 1, QrReading((A,))), ("s.pdf", 2, QrReading((f"Mã hồ sơ: {A}",))),
                ("s.pdf", 3, QrReading()),
                ("s.pdf", 4, QrReading((B, C))), ("s.pdf", 5, QrReading()),
                ("s.pdf", 6, QrReading((A.lower(),))),
                ("s.pdf", 7, QrReading(("Mã hồ sơ: ",))),
                ("s.pdf", 8, QrReading((URL, A))), ("s.pdf", 9, QrReading())]
    plan = plan_split(readings)
    assert [(g.code, pages_of(g)) for g in plan.groups] == [(A, [1, 2, 3]), (A, [8, 9])]
    assert [(h.kind, pages_of(h)) for h in plan.held] == [(CONFLICTING_CODES, [4, 5]), (INVALID_CODE, [6]),
                                                         (INVALID_CODE, [7])]
    assert [(p.kind, p.page) for p in plan.problems] == [(CONFLICTING_CODES, 4), (INVALID_CODE, 6),
                                                        (INVALID_CODE, 7), ("repeated_code", 8)]
    assert "chữ in hoa" in plan.problems[1].message_vi


def test_split_scan_holds_one_page_at_a_time():
    made: list[weakref.ref] = []

    def pages():
        for number in range(1, 5):
            image = ordinary_page(seed=number, layout="blank", max_body_lines=0)
            made.append(weakref.ref(image))
            yield "lo.tif", number, image

    def read(image):
        gc.collect()
        assert sum(ref() is not None for ref in made) == 1
        return QrReading()

    plan = split_scan(pages(), read=read)
    assert plan.page_count == 4 and [h.kind for h in plan.held] == [BEFORE_FIRST_RECEIPT]
