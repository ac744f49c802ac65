"""What archive staff rely on years later: signed files never overwritten (a renewal killed at
any point leaves a dossier that verifies, and the retry completes), manifests checked on every
load and chained version to version, exports that stay in their folder, every verify logged,
and no unsigned document stored without an explicit choice."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main as sohoa
from pipeline import config, disposal, service
from storage import keys
from storage.errors import RetentionError
from storage.local import LocalStore
from tests.conftest import save_page, audit_events
from tests.pki import harness

CODE = "H23.50-261201-0042"
ROOT = Path(__file__).resolve().parent.parent


def signing_env(home: Path, pki) -> dict:
    return {"SOHOA_HOME": str(home), "SOHOA_SIGN_P12": str(pki.p12("signer-rsa")),
            "SOHOA_SIGN_P12_PASSWORD": harness.P12_PASSWORD, "SOHOA_SIGN_LEVEL": "B-LTA",
            "SOHOA_TSA_URL": pki.tsa_url, "SOHOA_TRUST_ROOTS": str(pki.root_pem),
            "SOHOA_AGENCY_NAME": "UBND phường Hoàn Kiếm"}


@pytest.fixture
def signed_dossier(tmp_path, pki, rendered, capsys):
    env = signing_env(tmp_path / "home", pki)
    settings = config.load(env)
    scan = save_page(rendered("trust", layout="text", seed=77, dpi=200), tmp_path / "p.png")
    assert sohoa(["ingest", "--dossier", CODE, "--title", "Đơn", "--jobs", "1", str(scan)], settings=settings) == 0
    capsys.readouterr()
    return env, settings


def manifest(settings) -> dict:
    return json.loads((settings.home / "store" / keys.manifest(CODE)).read_text(encoding="utf-8"))


def all_pass(settings) -> bool:
    return all(v.ok for v in service.verify_dossier(settings, CODE))


KILL = """
import os, signal, sys
from pipeline import config, renewal, service
point = sys.argv[1]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "before-manifest":
    renewal.save_manifest = die        # the renewed PDF is stored, its manifest is not
else:
    renewal.audit.record = die         # the manifest is stored, the audit line is not
service.renew_dossier(config.load(), sys.argv[2], within_days=100000)
"""


@pytest.mark.parametrize("point", ["before-manifest", "before-audit"])
def test_a_renewal_killed_between_its_writes_leaves_a_verifying_dossier_and_the_retry_completes(
        signed_dossier, point):
    env, settings = signed_dossier
    first = manifest(settings)["documents"][0]["pdf"]
    original = (settings.home / "store" / first["key"]).read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILL, point, CODE], env={**os.environ, **env}, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert all_pass(settings)  # whatever the manifest names is complete and verifies

    [result] = service.renew_dossier(settings, CODE, within_days=100000)
    assert result.renewed
    doc = manifest(settings)["documents"][0]
    assert all_pass(settings)
    assert doc["pdf"]["key"] != first["key"] and doc["pdfVersions"][0]["key"] == first["key"]
    assert (settings.home / "store" / first["key"]).read_bytes() == original  # the signed file is never overwritten
    for version in doc["pdfVersions"]:
        data = (settings.home / "store" / version["key"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == version["sha256"]
    # the killed attempt's PDF stays (write-once) and is named, so nothing in the folder is extra
    stopped = [a["reason"] for a in doc.get("abandoned", [])]
    assert stopped == (["attempt-stopped-before-manifest"] if point == "before-manifest" else [])
    assert sohoa(["verify", "--all", "--fixity-only"], settings=settings) == 0
    if point == "before-manifest":
        # the stopped attempt's PDF is checked like every other object the manifest names
        leftover = settings.home / "store" / doc["abandoned"][0]["key"]
        leftover.write_bytes(leftover.read_bytes() + b"%")
        [verdict] = service.verify_dossier(settings, CODE)
        assert not verdict.ok and not verdict.checks["otherObjects"]
        assert doc["abandoned"][0]["key"] in verdict.message_vi
        # and disposal removes it with the rest of the dossier's content
        assert doc["abandoned"][0]["key"] in {o["key"] for o in disposal.content_objects(manifest(settings))}


def test_manifest_versions_are_chained_and_an_edited_manifest_fails_verify(signed_dossier):
    _, settings = signed_dossier
    current = manifest(settings)
    assert current["schema"] == "sohoa.manifest/2" and current["manifestVersion"] == 1
    service.renew_dossier(settings, CODE, within_days=100000)
    renewed = manifest(settings)
    first = (settings.home / "store" / keys.manifest_version(CODE, 1)).read_bytes()
    assert renewed["manifestVersion"] == 2 and renewed["previousManifestSha256"] == hashlib.sha256(first).hexdigest()
    assert all_pass(settings)

    path = settings.home / "store" / keys.manifest(CODE)
    edited = json.loads(path.read_text(encoding="utf-8"))
    edited["documents"][0]["title"] = "Đơn đã sửa"
    path.write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    [verdict] = service.verify_dossier(settings, CODE)
    assert not verdict.ok and not verdict.checks["manifestHistory"] and "lịch sử manifest" in verdict.message_vi


def forge_version(settings, code: str, forged: dict) -> None:
    """A forger with write access to the store: ``forged`` written as the dossier's next manifest
    version, chained to the last one, and as its manifest.json, so the history links."""
    store = settings.home / "store"
    last = (store / keys.manifest_version(code, forged["manifestVersion"])).read_bytes()
    forged = {**forged, "manifestVersion": forged["manifestVersion"] + 1,
              "previousManifestSha256": hashlib.sha256(last).hexdigest()}
    data = json.dumps(forged, ensure_ascii=False).encode()
    (store / keys.manifest_version(code, forged["manifestVersion"])).write_bytes(data)
    (store / keys.manifest(code)).write_bytes(data)


@pytest.mark.parametrize("versions", ["rewritten", "left"])
def test_a_signed_document_swapped_in_from_another_dossier_fails_verify_naming_where_it_came_from(
        signed_dossier, rendered, tmp_path, capsys, versions):
    """Found by the archive's hands-on review: another dossier's validly signed PDF written over a
    document, its manifest record (hash, size, signature record) and history rewritten to match,
    passed ``sohoa verify`` and ``verify --all``: the signature proves the file is the agency's,
    not which document it is. The file's signed metadata names its dossier and document; the
    history refuses a version rewriting a signed file; the manifest's PDF must be its last
    recorded version."""
    _, settings = signed_dossier
    other = "H23.50-261201-0043"
    scan = save_page(rendered("other", layout="text", seed=78, dpi=200), tmp_path / "q.png")
    assert sohoa(["ingest", "--dossier", other, "--title", "Tờ khai", "--jobs", "1", str(scan)], settings=settings) == 0
    capsys.readouterr()
    theirs = json.loads((settings.home / "store" / keys.manifest(other)).read_text(encoding="utf-8"))["documents"][0]

    forged = manifest(settings)
    doc = forged["documents"][0]
    target = settings.home / "store" / doc["pdf"]["key"]
    target.chmod(0o644)
    target.write_bytes((settings.home / "store" / theirs["pdf"]["key"]).read_bytes())
    doc["pdf"] = {**doc["pdf"], "sha256": theirs["pdf"]["sha256"], "size": theirs["pdf"]["size"]}
    doc["signature"] = theirs["signature"]
    if versions == "rewritten":
        doc["pdfVersions"] = [{**doc["pdfVersions"][0], "sha256": theirs["pdf"]["sha256"],
                               "size": theirs["pdf"]["size"]}]
    forge_version(settings, CODE, forged)

    [verdict] = service.verify_dossier(settings, CODE)
    assert not verdict.ok and not verdict.checks["identity"]
    assert f"hồ sơ {other}, tài liệu {other}.001" in verdict.message_vi
    if versions == "rewritten":
        assert not verdict.checks["manifestHistory"] and "các tệp PDF đã ký bị thay" in verdict.message_vi
    else:
        assert not verdict.checks["versions"] and verdict.checks["manifestHistory"]
    assert sohoa(["verify", "--all"], settings=settings) != 0
    assert sohoa(["verify", other], settings=settings) == 0  # the dossier it was taken from is untouched


def test_a_dossier_copied_under_another_code_fails_verify(signed_dossier):
    """The same review: a whole dossier copied under a new code, every key renamed and the
    history re-chained, verified as the new code's."""
    _, settings = signed_dossier
    clone = "H23.50-261201-0099"
    store = settings.home / "store"
    for path in sorted((store / keys.dossier_prefix(CODE)).rglob("*")):
        if path.is_file():
            renamed = store / str(path.relative_to(store)).replace(CODE, clone)
            renamed.parent.mkdir(parents=True, exist_ok=True)
            renamed.write_bytes(path.read_bytes().replace(CODE.encode(), clone.encode())
                                if path.suffix == ".json" else path.read_bytes())
    previous = None
    for number in range(1, manifest(settings)["manifestVersion"] + 1):  # the history re-chained
        path = store / keys.manifest_version(clone, number)
        version = json.loads(path.read_text(encoding="utf-8"))
        if previous is not None:
            version["previousManifestSha256"] = hashlib.sha256(previous).hexdigest()
        previous = json.dumps(version, ensure_ascii=False).encode()
        path.write_bytes(previous)
    (store / keys.manifest(clone)).write_bytes(previous)
    verdicts = service.verify_dossier(settings, clone)
    assert verdicts and not any(v.ok for v in verdicts)
    assert all(not v.checks["identity"] and v.checks["manifestHistory"] and v.checks["signature"] for v in verdicts)
    assert f"hồ sơ {CODE}" in verdicts[0].message_vi


def test_a_manifest_whose_doc_id_climbs_out_is_refused_and_export_writes_nothing(signed_dossier, tmp_path, capsys):
    _, settings = signed_dossier
    path = settings.home / "store" / keys.manifest(CODE)
    bad = json.loads(path.read_text(encoding="utf-8"))
    bad["documents"][0]["docId"] = "../../escaped"
    path.write_text(json.dumps(bad), encoding="utf-8")
    out = tmp_path / "export" / "inner"
    assert sohoa(["export", CODE, "--out", str(out)], settings=settings) == 6
    assert "bị hỏng" in capsys.readouterr().err
    assert not list((tmp_path / "export").rglob("*.pdf")) and not (tmp_path / "escaped.pdf").exists()


def test_a_manifest_copied_into_another_dossiers_folder_is_refused(signed_dossier, tmp_path, capsys):
    """Found by the manifest fuzzer's review (issue 16): every key in the copy points into the
    first dossier, so showing or exporting the second would hand out the first one's papers."""
    _, settings = signed_dossier
    other = "H23.50-261201-0043"
    target = settings.home / "store" / keys.manifest(other)
    target.parent.mkdir(parents=True)
    target.write_bytes((settings.home / "store" / keys.manifest(CODE)).read_bytes())
    assert sohoa(["export", other, "--out", str(tmp_path / "out")], settings=settings) == 6
    assert f"là của hồ sơ {CODE}" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.pdf"))


def test_every_verify_is_logged_and_an_empty_store_is_zero_dossiers(signed_dossier, tmp_path, capsys):
    _, settings = signed_dossier
    assert sohoa(["verify", CODE], settings=settings) == 0
    out = capsys.readouterr().out
    assert "chuỗi chứng thư tới gốc tin cậy: đạt" in out and "PDF/A-2b: đạt" in out and "SHA-256 của tệp PDF: đạt" in out
    events = audit_events(settings.home)
    assert events[-1]["action"] == "verify" and events[-1]["dossier"] == CODE and events[-1]["outcome"] == "success"

    empty = config.load({"SOHOA_HOME": str(tmp_path / "empty")})
    assert sohoa(["verify", "--all", "--json"], settings=empty) == 0
    assert json.loads(capsys.readouterr().out) == {}
    assert sohoa(["verify", "--all"], settings=empty) == 0
    assert "Đã kiểm tra 0 hồ sơ" in capsys.readouterr().out


def test_an_unsigned_document_needs_an_explicit_choice_and_never_passes_verify(cli, home, rendered, tmp_path):
    from pipeline.ingest import IngestContext, ingest
    from pipeline.models import IngestRequest

    scan = save_page(rendered("unsigned", layout="text", seed=78, dpi=200), tmp_path / "u.png")
    settings = config.load({"SOHOA_HOME": str(home)})
    ctx = IngestContext(store=service.open_store(settings), db=service.database(settings),
                        executor=service.page_executor(settings, 1), ocr=settings.ocr)
    with pytest.raises(Exception, match="--unsigned"):
        ingest(IngestRequest(CODE, (str(scan),), "Đơn"), ctx)
    assert not (home / "store" / keys.manifest(CODE)).exists()
    code, _, err = cli("ingest", "--dossier", CODE, "--title", "Đơn", "--unsigned", scan)
    assert code == 0, err
    doc = json.loads((home / "store" / keys.manifest(CODE)).read_text(encoding="utf-8"))["documents"][0]
    assert doc["unsigned"] is True and doc["signature"] is None
    code, out, _ = cli("verify", CODE)
    assert code == 1 and "không ký số" in out


def test_with_no_anchor_audit_verify_says_a_lost_log_would_not_show_and_reindex_says_what_it_does_not_rebuild(
        cli, home):
    """Found by the archive's hands-on review: the database deleted, `reindex` run, `sohoa audit
    verify` said "Nhật ký nguyên vẹn: 2 dòng" (17 before), exit 0; nothing but `sohoa serve` anchors
    the log, and `reindex` did not say that users, tokens and the log were not rebuilt."""
    assert cli("verify", "--all")[0] == 0  # a line in the log
    code, out, _ = cli("audit", "verify")
    assert code == 0 and "chưa có lần neo nào" in out and "sohoa audit anchor" in out, out
    assert cli("audit", "anchor")[0] == 0
    code, out, _ = cli("audit", "verify")
    assert code == 0 and "Nhật ký nguyên vẹn" in out and "chưa có lần neo" not in out, out
    code, out, _ = cli("reindex")
    assert code == 0 and "nhật ký truy cập chỉ ở cơ sở dữ liệu" in out and "bản sao lưu" in out, out


def test_a_trial_dossier_signed_before_a_real_key_is_said_to_be_this_homes_own_test_key(tmp_path, pki, rendered,
                                                                                        capsys):
    """Found by the archive's hands-on review: once a real key was configured, the dossiers this
    home had signed with its development key failed as "khóa THỬ NGHIỆM của một cài đặt khác",
    though the CA was this home's own."""
    home = tmp_path / "home"
    trial = config.load({"SOHOA_HOME": str(home)})
    scan = save_page(rendered("trial", layout="text", seed=79, dpi=150), tmp_path / "p.png")
    assert sohoa(["ingest", "--dossier", CODE, "--title", "Đơn", "--jobs", "1", str(scan)], settings=trial) == 0
    capsys.readouterr()
    [verdict] = service.verify_dossier(config.load(signing_env(home, pki)), CODE)
    assert not verdict.ok
    assert "khóa THỬ NGHIỆM trước đây của chính cài đặt này" in verdict.message_vi, verdict.message_vi
    assert "cài đặt khác" not in verdict.message_vi and "dev-signing/ca.pem" in verdict.message_vi


def test_the_local_store_never_overwrites_a_write_once_object(tmp_path):
    store = LocalStore(tmp_path)
    key = keys.document_pdf(CODE, f"{CODE}.001")
    store.put(key, b"signed v1", retain=True)
    store.put(key, b"signed v1", retain=True)  # the same bytes again: a no-op
    with pytest.raises(RetentionError):
        store.put(key, b"signed v2", retain=True)
    assert store.get(key) == b"signed v1"


def test_the_published_schema_is_the_one_checked():
    assert (ROOT / "docs" / "manifest.schema.json").read_bytes() == (ROOT / "pipeline" / "manifest.schema.json").read_bytes()


def test_a_hand_edited_manifest_that_passes_the_schema_is_shown_not_crashed_on(signed_dossier, capsys):
    """The schema requires only a document's docId, sequence and pdf: an officer's `show` of a
    manifest edited down to that prints the dossier (and `verify` says the history is broken)."""
    _, settings = signed_dossier
    path = settings.home / "store" / keys.manifest(CODE)
    edited = manifest(settings)
    for field in ("title", "totalDoc", "numberOfPage", "updated"):
        edited.pop(field, None)
    doc = edited["documents"][0]
    for field in ("title", "numberOfPage"):
        doc.pop(field)
    doc["pages"] = [{"number": 1}]
    path.write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    capsys.readouterr()
    assert sohoa(["show", CODE], settings=settings) == 0
    assert f"{CODE}.001" in capsys.readouterr().out
    [verdict] = service.verify_dossier(settings, CODE)
    assert not verdict.ok and not verdict.checks["manifestHistory"]
