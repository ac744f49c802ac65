"""The intake desk on the command line: everything checkable is checked before any work, every
bad file named at once, Vietnamese numbers for people, a data home you can see, progress."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import save_page, stored_keys

CODE = "H23.50-261201-0001"


def test_a_blank_title_is_refused_at_once_and_nothing_is_stored(cli, home, rendered, tmp_path):
    page = save_page(rendered("t", layout="text", seed=201, dpi=200), tmp_path / "p.png")
    for title in ("", "   "):
        started = time.monotonic()
        code, _, err = cli("ingest", "--dossier", CODE, "--title", title, page)
        assert code == 2 and "Tên tài liệu" in err and time.monotonic() - started < 5
    assert stored_keys(home) == []


def test_every_bad_file_is_named_together_and_a_file_given_twice_is_refused(cli, home, rendered, tmp_path):
    good = save_page(rendered("g", layout="text", seed=202, dpi=200), tmp_path / "good.png")
    empty = tmp_path / "rong.jpg"
    empty.write_bytes(b"")
    wrong = tmp_path / "sai.jpg"
    wrong.write_bytes(good.read_bytes())
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", good, empty, wrong)
    assert code == 3 and "rong.jpg" in err and "sai.jpg" in err and "2 tệp" in err
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", good, good)
    assert code == 2 and "good.png" in err and "hai lần" in err
    assert stored_keys(home) == []


def test_a_lowercase_dossier_code_gets_a_hint(cli):
    code, _, err = cli("show", "h23.50-261201-0001")
    assert code == 11 and "H23.50-261201-0001" in err and "chữ in hoa" in err


def test_numbers_and_angles_are_written_the_vietnamese_way(cli, home, rendered, tmp_path):
    page = save_page(rendered("n", layout="text", seed=203, dpi=200, skew_deg=2.5), tmp_path / "p.png")
    code, out, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", page)
    assert code == 0, err
    line = out.splitlines()[0]
    size = line.split("PDF/A-2b ")[1].split(" byte")[0]
    assert "," not in size and "." in size  # 1.234.567 byte
    assert "°" in out and "," in out.split("nghiêng ")[1].split("°")[0]  # nghiêng +2,50°


def test_a_duplicate_ingest_under_another_title_says_so(cli, home, rendered, tmp_path):
    page = save_page(rendered("d", layout="text", seed=204, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] == 0
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Tờ khai", page)
    assert code == 0 and "Đơn" in err and "Tờ khai" in err


def test_version_info_and_audit_json(cli, home):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"sohoa {version('sohoa')}"
    code, out, _ = cli("info", "--json")
    info = json.loads(out)
    assert code == 0 and info["home"] == str(home) and info["storage"]["kind"] == "local"
    assert info["signing"]["key"] == "development" and info["versions"]["sohoa"] == version("sohoa")
    # the page stage's version, which every worker must share: compared across machines by eye
    from pipeline.pages import code_version

    assert info["versions"]["pageStage"] == code_version()
    from storage.db import head_revision  # which schema this code needs: what an upgrade is checked by

    assert info["versions"]["databaseSchema"] == head_revision()
    code, out, _ = cli("info")
    assert code == 0 and f"pageStage {code_version()}" in out
    assert info["index"]["broker"] is None and "Hàng đợi việc:   không có" in out  # it said nothing of the broker
    code, out, _ = cli("audit", "--json")
    assert code == 0 and json.loads(out)["intact"] is True


def test_a_new_home_says_which_home_it_is(cli, home):
    code, out, err = cli("search", "nghị định")
    assert code == 0 and str(home) in err and "chưa có hồ sơ" in err


def test_the_default_home_is_the_users_data_directory_not_the_current_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    run = subprocess.run([sys.executable, "-m", "api.cli", "info", "--json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["home"] == str(tmp_path / "xdg" / "sohoa")
    assert not (tmp_path / "sohoa-data").exists()


def test_progress_is_shown_on_a_terminal_only(home, rendered, tmp_path):
    """A 3-page TIFF: on a terminal the operator sees pages done of the total before the result."""
    pages = [rendered(f"pr{i}", layout="text", seed=210 + i, dpi=150).image for i in range(3)]
    tif = tmp_path / "ba-trang.tif"
    pages[0].save(tif, save_all=True, append_images=pages[1:], dpi=(150, 150))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "SOHOA_HOME": str(home)}
    script = ("import pty, sys, os\n"
              "out = []\n"
              "def read(fd):\n    data = os.read(fd, 4096)\n    out.append(data)\n    return data\n"
              f"pty.spawn([sys.executable, '-m', 'api.cli', 'ingest', '--dossier', '{CODE}', '--title', 'Đơn', "
              f"'--jobs', '1', '{tif}'], read)\n"
              "sys.stdout.buffer.write(b''.join(out))\n")
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, timeout=300)
    text = run.stdout.decode("utf-8", "replace")
    assert "1/3" in text and "2/3" in text and "3/3" in text and "đã số hóa" in text, text[-2000:]
    quiet = subprocess.run([sys.executable, "-m", "api.cli", "ingest", "--dossier", CODE, "--title", "Đơn",
                            "--json", str(tif)], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert "1/3" not in quiet.stderr and json.loads(quiet.stdout)["duplicate"] is True


def test_a_recorded_paper_file_code_changes_only_on_request_and_the_change_is_recorded(cli, home, rendered, tmp_path):
    from tests.conftest import manifest_of

    a = save_page(rendered("pf_a", layout="text", seed=205, dpi=200), tmp_path / "a.png")
    b = save_page(rendered("pf_b", layout="text", seed=206, dpi=200), tmp_path / "b.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", a)[0] == 0
    assert manifest_of(home, CODE)["paperFileCode"] == CODE  # recorded: the dossier code
    before = stored_keys(home)
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Bản sao", "--paper-file-code", "HS-GIAY-7", b)
    assert code == 12 and "--change-recorded" in err and stored_keys(home) == before
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Bản sao", "--paper-file-code", "HS-GIAY-7",
                       "--change-recorded", b)
    assert code == 0, err
    manifest = manifest_of(home, CODE)
    assert manifest["paperFileCode"] == "HS-GIAY-7"
    assert any(e["type"] == "change" and f"{CODE} -> HS-GIAY-7" in e["detail"] for e in manifest["events"])


def test_help_is_vietnamese_with_examples(cli):
    code, out, _ = cli("ingest", "-h")
    assert code == 0 and out.startswith("Cách dùng:") and "tùy chọn:" in out and "Ví dụ:" in out and "usage" not in out
    code, _, err = cli("ingest", "--dossier", CODE)
    assert code == 2 and "thiếu tham số bắt buộc" in err


def test_every_command_that_prints_data_has_json(cli, home, rendered, tmp_path):
    page = save_page(rendered("js", layout="text", seed=207, dpi=200), tmp_path / "p.png")
    assert cli("ingest", "--dossier", CODE, "--title", "Đơn", page)[0] == 0
    code, out, _ = cli("export", CODE, "--out", tmp_path / "out", "--json")
    exported = json.loads(out)
    assert code == 0 and exported["dossierCode"] == CODE and exported["files"][-1].endswith("manifest.json")
    code, out, _ = cli("cache", "--json")
    assert code == 0 and json.loads(out) == {"pages": 0, "bytes": 0, "cleared": False}
