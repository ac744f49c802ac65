"""Lines the recognisers were unsure of are marked for a person to read again: in the manifest,
in the API's dossier, and on the operator's job page and the officer's dossier page, first."""
from __future__ import annotations

import html
import re
import shutil
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.http import create_app
from ocr.review import lines_to_review
from pipeline import config, service
from tests.conftest import manifest_of

REAL = Path(__file__).parent / "data" / "realscans"
CODE = "H23.50-261201-0501"


def word(text, line, conf, **kw):
    return {"text": text, "line": line, "conf": conf, "x0": 10 * len(text), "y0": 40 * line, "x1": 10 * len(text) + 50,
            "y1": 40 * line + 30, **kw}


def test_a_line_is_offered_for_review_when_the_engines_disagree_or_its_confidence_is_low():
    words = [word("Quảng", 0, 96), word("Ngãi", 0, 95),
             word("THÔNG", 1, 93), word("BÁO", 1, 91, alt="BẢO"),
             word("Sô:", 2, 40), word("⁄F†", 2, 12),
             # a stretch of two words the other recogniser read as one: "" on the second
             word("ngày", 3, 90), word("2", 3, 88, alt="24"), word("4", 3, 60, alt=""), word("tháng", 3, 95)]
    review = lines_to_review(words)
    assert [(r["line"], r["reason"]) for r in review] == [(1, "disagree"), (2, "low_confidence"), (3, "disagree")]
    assert review[0]["text"] == "THÔNG BÁO" and review[0]["alt"] == "THÔNG BẢO"
    assert review[1]["conf"] == 26.0 and review[1]["box"] == [30, 80, 80, 110]
    assert review[2]["text"] == "ngày 2 4 tháng" and review[2]["alt"] == "ngày 24 tháng"


def login(client: TestClient, name: str, password: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form).group(1)
    assert client.post("/login", data={"name": name, "password": password, "login_csrf": token},
                       follow_redirects=False).status_code == 303


def test_the_doubtful_lines_of_a_real_scan_are_offered_to_the_operator_and_the_officer(tmp_path):
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_COOKIE_SECURE": "false"})
    service.add_user(settings, "lan", "operator", ("H23.50",), "mat-khau-dai-du")
    service.add_user(settings, "thu", "officer", ("H23.50",), "mat-khau-dai-du")
    scan = shutil.copy(REAL / "11CT-p1.tif", tmp_path / "chi-thi.tif")
    with TestClient(create_app(settings)) as client:
        login(client, "lan", "mat-khau-dai-du")
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/intake").text).group(1)
        answer = client.post(f"/api/v1/dossiers/{CODE}/documents", data={"title": "Chỉ thị"},
                             files=[("files", ("chi-thi.tif", Path(scan).read_bytes(), "image/tiff"))],
                             headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["job"]
        deadline = time.monotonic() + 180
        while client.get(f"/api/v1/jobs/{job_id}").json()["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        review = manifest_of(settings.home, CODE)["documents"][0]["pages"][0]["review"]
        assert review and {r["reason"] for r in review} <= {"disagree", "low_confidence"}
        assert all(r["alt"] != r["text"] for r in review if r["reason"] == "disagree")  # two readings to compare
        job_page = client.get(f"/jobs/{job_id}").text
        assert "Dòng cần đọc lại" in job_page and html.escape(review[0]["text"], quote=False) in job_page
        client.post("/logout", data={"csrf": csrf})
        client.cookies.clear()
        login(client, "thu", "mat-khau-dai-du")
        dossier_page = client.get(f"/dossiers/{CODE}").text
        assert dossier_page.index("Dòng cần đọc lại") < dossier_page.index("<iframe")
        # named above the PDF, listed on demand: 36 lines pushed the PDF 2,600 px down (web review)
        folded = dossier_page.index('<details class="review"')
        assert folded < dossier_page.index("Dòng cần đọc lại") < dossier_page.index("</details>", folded) \
            < dossier_page.index("<iframe")
