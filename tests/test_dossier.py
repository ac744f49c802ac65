import pytest

from pipeline import dossier
from pipeline.errors import DossierCodeError
from storage import keys
from storage.errors import UnsafeKey


@pytest.mark.parametrize("code,kind", [
    ("H23.50-261201-0001", "ordinary"),
    ("H15.50.05.13-261008-0975", "ordinary"),
    ("000.00.12.H23-261201-12345", "ordinary"),
    ("M01.001.01-260201-DV0001", "central"),
])
def test_accepts_both_regulation_formats(code, kind):
    assert dossier.parse(code)["kind"] == kind


@pytest.mark.parametrize("code", [
    "", "h23.50-261201-0001", "H23.50-261301-0001", "H23.50-261201-001", "H23.50/261201-0001",
    "../H23.50-261201-0001", "H23..50-261201-0001", "H23.50-261201-0001/..", "H23.50-261201-0001\n",
    "H23.50-261201-00\x001", "H23.50-٢٦١٢٠١-0001", "H23.50-261201-٠٠٠١", "A" * 36 + "-261201-0001", "M01.001.01-260201-0001X", "H23.50-261201-0001 ",
])
def test_rejects_anything_else_with_a_clear_message(code):
    with pytest.raises(DossierCodeError, match="Mã hồ sơ|Ngày|Mã cơ quan"):
        dossier.parse(code)


def test_a_code_typed_in_word_is_refused_naming_the_dash_and_every_refusal_has_its_english_detail():
    """Word turns '-' into '–': the hint said a part was missing (archive review); a day that does
    not exist had no English detail for an integrator's log (API review)."""
    for typed, meant in (("H15.50.05.13–2019–0104", "H15.50.05.13-2019-0104"),
                         ("H23.50—261201‑0001", "H23.50-261201-0001")):
        with pytest.raises(DossierCodeError) as refused:
            dossier.validate_key(typed)
        assert f"không phải '–' mà Word tự đổi: '{meant}'" in refused.value.message_vi
    for code in ("H23.50-261340-0001", "h23.50-261201-0001", "A" * 36 + "-261201-0001"):
        with pytest.raises(DossierCodeError) as refused:
            dossier.parse(code)
        assert refused.value.detail, code


def test_code_never_reaches_storage_as_a_path():
    for escape in ("../../etc", "..", "a/../b", "/etc", ""):
        with pytest.raises(UnsafeKey):
            keys.manifest(escape)
    assert keys.document_pdf("H23.50-261201-0001", "H23.50-261201-0001.001") == \
        "dossiers/H23.50-261201-0001/documents/H23.50-261201-0001.001.pdf"


def test_doc_id_is_file_code_dot_sequence():
    assert dossier.doc_id("H23.50-261201-0001", 7) == "H23.50-261201-0001.007"
