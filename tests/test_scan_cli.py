"""sohoa scan and sohoa scanners on SANE's test backend (after wiring into service and cli)."""
import json

from tests.conftest import manifest_of, audit_events
from tests.test_scan import GRID, sane  # noqa: F401  (fixture)

CODE = "H23.50-261201-0078"


def test_sohoa_scan_ingests_the_feeder_bundle(sane, cli, home):
    code, out, err = cli("scan", "--dossier", CODE, "--title", "Tờ khai quét", "--resolution", "150",
                         "--pages", "2", "--jobs", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["scan"]["reportedPages"] == 2 and len(result["pages"]) == 2
    assert manifest_of(home, CODE)["documents"][0]["numberOfPage"] == 2
    assert not any((home / "work" / "scans").iterdir())          # working copies removed


def test_sohoa_scan_human_output_and_errors(sane, cli, home):
    code, out, err = cli("scan", "--dossier", CODE, "--title", "Đơn", "--resolution", "100", "--mode", "gray",
                         "--max-pages", "3")
    assert code == 3 and "dài hơn giới hạn 3 trang" in err and "«test:0»" in err
    code, out, err = cli("scan", "--dossier", CODE, "--title", "Đơn", "--device", "khongco:0")
    assert code == 3 and "Không mở được máy quét «khongco:0»" in err
    code, out, err = cli("scan", "--dossier", "h23.50-261201-0078", "--title", "Đơn")   # before any paper moves
    assert code == 11
    code, out, err = cli("scan", "--dossier", CODE, "--title", "Đơn", "--resolution", "100", "--pages", "1")
    assert code == 0 and "Đã quét 1 trang trên máy quét test:0 (Automatic Document Feeder, 100 dpi, Color)" in out
    code, out, err = cli("scanners")
    assert code == 0 and "test:0 (Noname frontend-tester, virtual device)" in out
    audit = audit_events(home)
    assert [a["outcome"] for a in audit if a["action"] == "scan"] == ["failure", "failure", "success"]
