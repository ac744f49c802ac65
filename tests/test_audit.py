"""Every creation, access and failure is logged, and the log shows when a line was altered."""
import json

from tests.conftest import save_page


def test_audit_log_records_ingest_access_and_failure_and_detects_tampering(cli, home, rendered, tmp_path):
    page = save_page(rendered("audit", layout="text", seed=81, dpi=200), tmp_path / "a.png")
    code = "H23.50-261201-0003"
    assert cli("ingest", "--dossier", code, "--title", "Đơn", page)[0] == 0
    assert cli("show", code)[0] == 0
    assert cli("ingest", "--dossier", code, "--title", "Đơn", tmp_path / "missing.png")[0] != 0

    rc, out, err = cli("audit", "--last", "10")
    assert rc == 0 and "nguyên vẹn" in err
    assert "ingest" in out and "THẤT BẠI" in out and "missing.png" in out  # one line a person can read per event
    rc, out, _ = cli("audit", "--last", "10", "--json")
    report = json.loads(out)
    assert rc == 0 and report["intact"] is True
    events = report["events"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("ingest", "success"), ("show", "success"), ("ingest", "failure")]
    assert events[0]["dossier"] == code and events[2]["file"].endswith("missing.png")

    log = home / "logs" / "audit.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"show"', '"export"')
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, _, err = cli("audit")
    assert rc != 0 and "đứt tại dòng 3" in err


def test_a_garbled_audit_line_is_reported_as_a_break(cli, home):
    log = home / "logs" / "audit.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("not json\n", encoding="utf-8")
    rc, _, err = cli("audit")
    assert rc != 0 and "đứt tại dòng 1" in err
