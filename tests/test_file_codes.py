"""Old paper files without a one-stop code (issue 15): an archive file code (TT 05/2025
``fileCode``: agency code, year, number) identifies the file through bulk conversion, search,
the bulk hand-over packages, the E-ARK validator and the re-import."""
from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

from lxml import etree

from api.cli import main as sohoa
from pipeline import audit, config, package, service
from storage import keys
from tests.conftest import save_page
from tests.test_package import signing_env

OLD = "H23.50-1999-0042"       # a 1999 paper file of agency H23.50
RECENT = "H23.50-261201-0990"  # a one-stop dossier beside it
VALIDATOR = Path(__file__).resolve().parent.parent / "scripts" / "eark-validator.sh"


def test_an_archive_file_code_goes_through_bulk_search_packaging_and_reimport(rendered, pki, tmp_path, capsys):
    settings = config.load({**signing_env(tmp_path / "home", pki), "SOHOA_SIGN_LEVEL": "B-T",
                            "SOHOA_OCR_ENGINE": "tesseract"})
    backlog = tmp_path / "kho"
    for code, seed in ((OLD, 61), (RECENT, 62)):
        (backlog / code).mkdir(parents=True)
        save_page(rendered(f"old{seed}", layout="text", seed=seed, dpi=150), backlog / code / "01 - Quyết định.png")
    assert sohoa(["bulk", str(backlog)], settings=settings) == 0
    manifest = json.loads((settings.home / "store" / keys.manifest(OLD)).read_text(encoding="utf-8"))
    assert manifest["fileCode"] == manifest["dossierCode"] == OLD and manifest["documents"][0]["docId"] == f"{OLD}.001"

    text = (settings.home / "store" / keys.document_text(OLD, f"{OLD}.001")).read_text(encoding="utf-8")
    word = next(w for w in text.split() if len(w) > 4 and w.isalpha())
    hits = service.search(settings, word, code_prefix="H23.50-1999").hits
    assert {h.dossier_code for h in hits} == {OLD}, "the archive code's prefix narrows the search to the 1999 files"

    tomorrow = audit.now_vn().date() + timedelta(days=1)
    capsys.readouterr()
    assert sohoa(["package", "--bulk", "--closed-before", tomorrow.isoformat(), "--out", str(tmp_path / "nop")],
                 settings=settings) == 0
    assert sorted(p.name for p in (tmp_path / "nop").iterdir()) == sorted([OLD, RECENT])
    assert sohoa(["package", "--bulk", "--closed-before", tomorrow.isoformat(), "--out", str(tmp_path / "nop")],
                 settings=settings) == 0
    assert capsys.readouterr().out.count("đã có gói, bỏ qua") == 2, "a second hand-over packages nothing twice"
    sip = tmp_path / "nop" / OLD
    dossier_xml = etree.parse(str(sip / "metadata/descriptive/dossier.xml"))
    assert dossier_xml.findtext("{%s}fileCode" % package.DOSSIER_NS) == OLD
    run = subprocess.run(["bash", str(VALIDATOR), str(sip)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr

    empty = config.load(signing_env(tmp_path / "archive", pki))  # the archive trusts the same national root
    assert sohoa(["import-package", str(sip)], settings=empty) == 0
    assert not service.verify(empty, [OLD]).failed
    assert {h.dossier_code for h in service.search(empty, word, code_prefix="H23.50-1999").hits} == {OLD}
