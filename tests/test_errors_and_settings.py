"""One exit status per kind of failure, messages for people and details for logs apart, and
settings read once into typed values with a clear error for a value that cannot be used."""
from __future__ import annotations

import json

import pytest

from pipeline import config
from pipeline.errors import ConfigError, ExitCode, InputError, describe
from pipeline.models import PageResult, PageTask
from storage import errors as storage_errors


def test_every_exit_status_has_one_meaning():
    assert len({int(code) for code in ExitCode}) == len(ExitCode.__members__)


@pytest.mark.parametrize("error,status,code", [
    (storage_errors.NotFound("Không tìm thấy đối tượng: k", "object not found"), ExitCode.NOT_FOUND, "not_found"),
    (storage_errors.IntegrityError("Sai mã băm SHA-256: k", "integrity"), ExitCode.INTEGRITY, "integrity"),
    (storage_errors.StorageUnavailable("Kho S3 không phản hồi"), ExitCode.STORAGE, "storage_unavailable"),
    (storage_errors.RetentionError("Không xóa được"), ExitCode.RETENTION, "retention"),
    (InputError("a.jpg", "tệp rỗng", 2), ExitCode.INPUT, "input"),
    (ConfigError("SOHOA_JOBS phải là số nguyên", "SOHOA_JOBS: not an integer"), ExitCode.CONFIG, "config"),
])
def test_errors_of_every_layer_are_described_alike(error, status, code):
    report = describe(error)
    assert (report.exit_code, report.code, report.expected) == (status, code, True)
    assert report.message_vi and "(" not in report.message_vi.split(":")[0]


def test_an_unexpected_error_is_internal_and_says_the_dossier_is_unchanged():
    report = describe(ZeroDivisionError("x"))
    assert report.exit_code == ExitCode.INTERNAL and not report.expected
    assert "sohoa audit" in report.message_vi and report.detail == "ZeroDivisionError: x"


@pytest.mark.parametrize("args,status", [
    (["show", "h23.50-261201-0001"], ExitCode.DOSSIER_CODE),
    (["show", "H23.50-261201-0999"], ExitCode.NOT_FOUND),
    (["verify"], ExitCode.USAGE),
    (["search", "x", "--limit", "0"], ExitCode.USAGE),
    (["link", "H23.50-261201-0999"], ExitCode.UNSUPPORTED),
])
def test_command_line_exit_statuses(cli, args, status):
    code, _, err = cli(*args)
    assert code == status and err.startswith("LỖI: ")


def test_a_bad_setting_is_a_config_error_naming_the_variable(cli, monkeypatch):
    monkeypatch.setenv("SOHOA_JOBS", "hai")
    code, _, err = cli("show", "H23.50-261201-0001")
    assert code == ExitCode.CONFIG and "SOHOA_JOBS" in err


def test_settings_are_typed_and_secrets_come_from_files(tmp_path):
    secret = tmp_path / "s3.secret"
    secret.write_text("khóa-bí-mật\n", encoding="utf-8")
    settings = config.load({"SOHOA_HOME": str(tmp_path), "SOHOA_STORAGE": "s3", "SOHOA_S3_SECRET_KEY_FILE": str(secret),
                            "SOHOA_JOBS": "2", "SOHOA_TRUST_ROOTS": "/a.pem:/b.pem", "SOHOA_S3_LOCK_MODE": "compliance"})
    assert settings.s3.secret_key == "khóa-bí-mật" and "khóa-bí-mật" not in repr(settings)
    assert settings.ocr.jobs == 2 and settings.signing.trust_roots == ("/a.pem", "/b.pem")
    assert settings.s3.lock_mode == "COMPLIANCE" and settings.signing.development
    assert settings.db_url == f"sqlite:///{tmp_path / 'index.sqlite3'}"
    for bad in ({"SOHOA_STORAGE": "ftp"}, {"SOHOA_S3_LOCK_MODE": "LEGAL"}, {"SOHOA_JPEG_QUALITY": "101"},
                {"SOHOA_RETENTION_DAYS": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            config.load({"SOHOA_HOME": str(tmp_path), **bad})


def test_a_page_task_and_its_result_cross_as_json_without_the_image_bytes():
    task = PageTask(key="dossiers/X/originals/a.tif", file="a.tif", kind="tiff", sha256="0" * 64, page=3, tessdata="/models")
    assert PageTask.from_json(json.loads(json.dumps(task.to_json()))) == task
    result = PageResult("a.tif", 3, image_key="k" * 64, encoding="jpeg", width=10, height=20, dpi=(300, 300),
                        color_mode="rgb", flags=("blurry",), words=({"text": "Nghị", "x0": 1, "y0": 2, "x1": 3,
                                                                    "y1": 4, "conf": 90.0, "line": 0},), text="Nghị")
    payload = json.dumps(result.to_json(), ensure_ascii=False)
    assert PageResult.from_json(json.loads(payload)) == result
    assert set(result.to_json()) >= {"image_key"} and "image" not in result.to_json()
    assert len(payload) < 1000  # a reference to the stored image, not the image


def test_a_busy_colour_page_encodes(tmp_path):
    """A page whose JPEG is larger than width x height bytes (dense colour patterns) once failed
    with 'Suspension not allowed here'."""
    import os

    from PIL import Image

    from pipeline.pages import encode_image

    data, encoding, mode = encode_image(Image.frombytes("RGB", (400, 400), os.urandom(480_000)), 90)
    assert (encoding, mode) == ("jpeg", "rgb") and len(data) > 400 * 400


def test_the_sohoa_program_ends_with_its_commands_status_output_and_database_whole(tmp_path, rendered):
    """The program ends its process as soon as the command is done (``api.cli.end_process``):
    what it printed is all there, the exit status is the command's, the SQLite file has taken
    its write-ahead log back as on a normal exit, and no copy of an original is left behind."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sohoa = str(Path(sys.executable).with_name("sohoa"))
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOHOA_")}, "SOHOA_HOME": str(home),
           "TMPDIR": str(tmp_path)}
    page = rendered("short-text", layout="text", dpi=200, color="gray", seed=3, max_body_lines=3)
    scan = tmp_path / "to-khai.png"
    page.image.save(scan, dpi=page.dpi)
    done = subprocess.run([sohoa, "ingest", "--dossier", "H23.50-261202-0301", "--title", "Tờ khai", "--json",
                           str(scan)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["docId"] == "H23.50-261202-0301.001"
    assert (home / "index.sqlite3").is_file() and not (home / "index.sqlite3-wal").exists()
    assert not list(tmp_path.glob("sohoa-originals-*"))
    empty = tmp_path / "trong.png"
    empty.write_bytes(b"")
    refused = subprocess.run([sohoa, "ingest", "--dossier", "H23.50-261202-0302", "--title", "Rỗng", str(empty)],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == ExitCode.INPUT and "trong.png" in refused.stderr and "0 byte" in refused.stderr
