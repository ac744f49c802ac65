"""Verification of signed documents and dossiers, tampering, third-party signatures,
B-LTA renewal and the CLI, against the real test PKI."""
from __future__ import annotations

from tests.conftest import audit_events
import dataclasses
import functools
import io
import json
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest

from pipeline.config import Settings, SigningSettings
from pipeline.signing import keys as signing_keys, pades, pdfa_signed, validation
from pipeline.signing.status import SignatureRecord
from storage import keys
from storage.base import sha256
from storage.local import LocalStore
from tests.pki import harness

CODE = "H23.50-261201-0001"
AGENCY = "UBND phường Hoàn Kiếm"


def settings(home, pki, level="B-LTA") -> Settings:
    return Settings(home=home, signing=SigningSettings(
        p12=str(pki.p12("signer-rsa")), p12_password=harness.P12_PASSWORD, level=level,
        tsa_url=pki.tsa_url, trust_roots=(str(pki.root_pem),), agency_name=AGENCY))


pdfa_input = functools.cache(functools.partial(harness.minimal_pdfa, names=(CODE, f"{CODE}.001")))


@functools.cache
def signed_document(level: str) -> tuple[bytes, SignatureRecord]:
    pki = harness.test_pki()
    import tempfile

    conf = settings(Path(tempfile.mkdtemp()), pki, level)
    signer = signing_keys.load_signer(conf.signing, conf.home)
    return pades.sign_pdf(pdfa_input(), signer)


def store_dossier(home, pdf: bytes, record: SignatureRecord) -> tuple[LocalStore, str]:
    """The store ``settings(home, ...)`` opens (local, under ``home/store``), with one
    dossier whose one document is ``pdf``."""
    store = LocalStore(home / "store")
    doc_id = f"{CODE}.001"
    info = store.put(keys.document_pdf(CODE, doc_id), pdf, content_type="application/pdf", retain=True)
    manifest = {"schema": "sohoa.manifest/1", "dossierCode": CODE, "documents": [{
        "docId": doc_id, "sequence": 1, "created": record.signed_at.isoformat(),  # as ingest writes it
        "pdf": info.to_json(), "signature": record.to_json()}], "events": []}
    store.put(keys.manifest(CODE), json.dumps(manifest, ensure_ascii=False).encode())
    return store, doc_id


def cms_signature_value(data: bytes) -> bytes:
    from asn1crypto import cms
    import re

    blob = re.search(rb"/Contents\s*<([0-9a-fA-F]+)>", data)[1]
    signed_data = cms.ContentInfo.load(bytes.fromhex(blob.decode()), strict=False)["content"]
    return signed_data["signer_infos"][0]["signature"].native


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_intact_signature_verifies(pki):
    signed, _ = signed_document("B-T")
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert verdict.ok and verdict.intact and verdict.whole_document_covered and verdict.chain_trusted
    assert verdict.timestamp_ok and verdict.pdfa_ok and verdict.level == "B-T"
    assert verdict.messages_vi and verdict.messages_en


def test_one_changed_byte_is_detected(pki):
    signed, _ = signed_document("B-T")
    roots = [pki.root_pem.read_bytes()]
    image_at = signed.index(b"/DCTDecode")
    image_at = signed.index(b"stream", image_at) + 200  # inside the scanned image's bytes
    altered = validation.verify_pdf(flip(signed, image_at), roots)
    assert not altered.ok and not altered.intact
    # the real cause, and only it: not "does not chain to a trusted root"
    assert altered.messages_vi == ("Chữ ký SohoaSignature1: nội dung tệp đã bị thay đổi sau khi ký",)
    assert altered.messages_en == ("Signature SohoaSignature1: the signed content was altered",)

    # inside the signature value in the CMS blob (its certificate bag is not signed data)
    signed, _ = signed_document("B-B")
    value = cms_signature_value(signed).hex().encode()
    at = signed.lower().index(value) + len(value) // 2
    digit = b"0" if signed[at:at + 1] != b"0" else b"1"  # stays a hex digit: the blob still parses
    broken = validation.verify_pdf(signed[:at] + digit + signed[at + 1:], roots)
    assert not broken.ok and not broken.signatures[0].valid
    assert broken.messages_en == ("Signature SohoaSignature1: invalid signature value",)


def test_untrusted_without_roots(pki):
    signed, _ = signed_document("B-B")
    verdict = validation.verify_pdf(signed, None)
    assert verdict.intact and not verdict.chain_trusted and not verdict.ok
    assert any("tin cậy" in m for m in verdict.messages_vi)


def test_appended_update_after_signing_is_reported(pki):
    signed, _ = signed_document("B-B")
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        pdf.pages[0].Contents = pdf.make_stream(b"q 0 0 0 rg 10 10 100 100 re f Q")
        out = io.BytesIO()
        pdf.save(out)  # a full re-save: the signature no longer covers what is shown
    verdict = validation.verify_pdf(out.getvalue(), [pki.root_pem.read_bytes()])
    assert not verdict.ok


def test_verify_dossier_then_tamper_with_stored_file(pki, tmp_path):
    from pipeline import service

    signed, record = signed_document("B-LT")
    store, doc_id = store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki)
    [verdict] = service.verify_dossier(conf, CODE)
    assert verdict.ok and verdict.doc_id == doc_id, verdict.message_en
    assert all(verdict.checks.values()) and "ĐẠT" in verdict.message_vi

    path = tmp_path / "store" / keys.document_pdf(CODE, doc_id)
    path.chmod(0o644)
    path.write_bytes(flip(signed, len(signed) // 3))
    [verdict] = service.verify_dossier(conf, CODE)
    assert not verdict.ok and not verdict.checks["sha256"]
    assert "KHÔNG ĐẠT" in verdict.message_vi and "FAIL" in verdict.message_en
    assert "SHA-256" in verdict.message_vi


def test_a_signature_whose_own_bytes_were_changed_is_one_failure_said_in_vietnamese(pki, tmp_path):
    """A byte changed inside the signature itself (among its certificates), not the signed
    content: the verdict listed the coverage, chain, timestamp and manifest record as failed and
    the revocation check as passed, and the Vietnamese message carried pyHanko's English. Now the
    unreadable signature is the failure, said in Vietnamese (the reason stays in the English
    message), and nothing that needs a readable signature is judged either way."""
    from pipeline import service

    signed, record = signed_document("B-LT")
    store, doc_id = store_dossier(tmp_path, signed, record)
    from pyhanko.pdf_utils.reader import PdfFileReader

    [embedded] = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    hexed = embedded.signer_cert.dump().hex().encode()
    certificate = signed.lower().index(hexed)  # the signer's certificate in the signature's hex
    inside = certificate + len(hexed) // 2
    path = tmp_path / "store" / keys.document_pdf(CODE, doc_id)
    path.chmod(0o644)
    path.write_bytes(signed[:inside] + (b"1" if signed[inside:inside + 1] == b"0" else b"0") + signed[inside + 1:])
    [verdict] = service.verify_dossier(settings(tmp_path, pki), CODE)
    assert not verdict.ok and verdict.details.signatures == ()
    assert verdict.checks == {"sha256": False, "size": True, "versions": True, "identity": True, "signature": False,
                              "pdfa": True, "otherObjects": True, "manifestHistory": True}
    assert "Không đọc hoặc kiểm tra được chữ ký SohoaSignature1: dữ liệu chữ ký bị hỏng" in verdict.message_vi
    assert "certificate" not in verdict.message_vi and "Error" not in verdict.message_vi, verdict.message_vi
    assert "Cannot read or check signature SohoaSignature1: " in verdict.message_en


def test_a_check_with_nothing_to_judge_is_not_listed_as_passed(pki, tmp_path):
    """The dossier page listed "Dấu thời gian: đạt" for a B-B signature, which has no timestamp,
    and "Chứng thư chưa bị thu hồi: đạt" for a development key, whose revocation is not checked
    (found by the web review). Such checks are not listed; where there is one, it is judged."""
    from pipeline import config, service

    for level, timestamped in (("B-B", False), ("B-T", True)):
        home = tmp_path / level
        signed, record = signed_document(level)
        store_dossier(home, signed, record)
        [verdict] = service.verify_dossier(settings(home, pki, level), CODE)
        assert verdict.ok and ("timestamp" in verdict.checks) is timestamped, (level, verdict.checks)
        assert verdict.checks.get("timestamp", True) and verdict.checks["revocation"], verdict.checks
    development = tmp_path / "dev"
    assert main_ingest(development) == 0
    [verdict] = service.verify_dossier(config.load({"SOHOA_HOME": str(development)}), CODE)
    assert verdict.ok and "revocation" not in verdict.checks and "timestamp" not in verdict.checks, verdict.checks


def main_ingest(home: Path) -> int:
    """One page ingested into ``home`` with the development key (B-B, no revocation to check)."""
    from api.cli import main
    from tests.conftest import save_page
    from tests.pagegen import PageSpec, render_page

    page = save_page(render_page(PageSpec(layout="text", seed=41, dpi=150)), home.parent / f"{home.name}.png")
    return main(["ingest", "--dossier", CODE, "--title", "Đơn", str(page)],
                settings=Settings(home=home))


def test_cli_verify_exit_codes_and_json(pki, tmp_path, capsys):
    from api.cli import main

    signed, record = signed_document("B-T")
    conf = settings(tmp_path, pki)
    store, doc_id = store_dossier(tmp_path, signed, record)
    assert main(["verify", CODE], settings=conf) == 0
    text = capsys.readouterr().out
    assert "ĐẠT" in text and "PASS" in text
    assert main(["verify", "--all", "--json"], settings=conf) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[CODE][0]["ok"] is True

    path = tmp_path / "store" / keys.document_pdf(CODE, doc_id)
    path.chmod(0o644)
    path.write_bytes(flip(signed, 1000))
    assert main(["verify", CODE, "--json"], settings=conf) == 1
    assert json.loads(capsys.readouterr().out)[CODE][0]["ok"] is False
    assert main(["verify", "H23.50-261201-0999"], settings=conf) == 1


def test_a_signature_by_an_expired_certificate_says_so_not_that_its_roots_are_wrong(pki, tmp_path):
    """Years later, a signature without a timestamp whose signer's certificate has expired was
    called "not chaining to a trusted root" (and, for a development key, "another installation's
    key: add its CA to SOHOA_TRUST_ROOTS"), sending the archivist to the wrong setting. It now
    says when the certificate expired and that nothing proves the signature was made before."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    expired = signers.SimpleSigner.load_pkcs12(str(pki.p12("signer-expired")),
                                               passphrase=harness.P12_PASSWORD.encode())
    signed = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdfa_input())),
                              signers.PdfSignatureMetadata(field_name="SohoaSignature1",
                                                           subfilter=fields.SigSeedSubFilter.PADES),
                              signer=expired).getvalue()
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()], require_pdfa=False)
    assert not verdict.ok and not verdict.chain_trusted
    said = " ".join(verdict.messages_vi)
    assert "đã hết hạn ngày 01/01/2021; chữ ký không có dấu thời gian để chứng minh đã ký trước ngày đó" in said, said
    assert "gốc tin cậy" not in said and "SOHOA_TRUST_ROOTS" not in said, said
    # trusting another root, it is the roots that are wrong: said so, not the expiry (review)
    from pipeline.signing.devpki import ensure_development_key

    elsewhere = ensure_development_key(tmp_path / "dev")  # a root that has nothing to do with this signer
    other = validation.verify_pdf(signed, [(elsewhere / "ca.pem").read_bytes()], require_pdfa=False)
    said = " ".join(other.messages_vi)
    assert "không dẫn tới chứng thư gốc tin cậy" in said and "đã hết hạn ngày" not in said, said


def test_third_party_adbe_signature_kept_byte_for_byte_and_verified(pki, tmp_path):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    third_party = signers.SimpleSigner.load_pkcs12(str(pki.p12("signer-ec")), passphrase=harness.P12_PASSWORD.encode())
    plain = pikepdf.new()
    plain.add_blank_page()
    buf = io.BytesIO()
    plain.save(buf)
    original = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(buf.getvalue())),
                                signers.PdfSignatureMetadata(field_name="CitizenSignature"),
                                signer=third_party).getvalue()
    store = LocalStore(tmp_path / "store")
    digest = sha256(original)
    key = keys.original(CODE, digest, "pdf")
    store.put(key, original, content_type="application/pdf", retain=True)
    assert store.get(key, sha256=digest) == original

    verdict = validation.verify_pdf(store.get(key), [pki.root_pem.read_bytes()], require_pdfa=False)
    [signature] = verdict.signatures
    assert signature.subfilter == "adbe.pkcs7.detached" and signature.level is None
    assert signature.intact and signature.chain_trusted and signature.whole_document_covered
    report = harness.pdfsig(pki, original)
    assert "Signature is Valid" in report and "adbe.pkcs7.detached" in report


def test_renew_timestamps_adds_document_timestamp_and_updates_manifest(pki, tmp_path):
    from pipeline import service

    signed, record = signed_document("B-LTA")
    store, doc_id = store_dossier(tmp_path, signed, record)
    dossier = json.loads(store.get(keys.manifest(CODE))) | {"maintenance": "06", "endDate": "2019-11-20"}
    store.put(keys.manifest(CODE), json.dumps(dossier, ensure_ascii=False).encode())
    conf = settings(tmp_path, pki)

    [untouched] = service.renew_dossier(conf, CODE, within_days=30)
    assert not untouched.renewed and "chưa cần" in untouched.message_vi

    [renewed] = service.renew_dossier(conf, CODE, within_days=100_000)
    assert renewed.renewed
    # the same TSA's certificate: nothing extended, and said so (it read as a plain success)
    assert "thời hạn bảo vệ chưa được kéo dài" in renewed.message_vi, renewed.message_vi
    manifest = json.loads(store.get(keys.manifest(CODE)))
    new = store.get(manifest["documents"][0]["pdf"]["key"])
    assert new.startswith(signed), "renewal must be an incremental update"
    assert manifest["documents"][0]["pdf"]["sha256"] == sha256(new) == renewed.sha256
    assert manifest["documents"][0]["pdf"]["size"] == len(new)
    assert manifest["events"][-1]["type"] == "timestamp-renewal"
    # its write-once lock (S3) ends when the dossier is due, counted from the day it closed, not ten
    # years after the renewal: its disposal was refused for years (the ops review)
    for key in (manifest["documents"][0]["pdf"]["key"], keys.manifest_version(CODE, manifest["manifestVersion"])):
        assert store.stat(key).metadata | {"maintenance": "06", "closed": "2019-11-20"} == store.stat(key).metadata

    [verdict] = service.verify_dossier(conf, CODE)
    assert verdict.ok, verdict.message_en
    assert verdict.details.signatures[0].ades_long_term == "PASSED"
    kinds = [s.kind for s in verdict.details.signatures]
    assert kinds == ["signature", "timestamp", "timestamp"]
    assert pdfa_signed.pdfa_check(new).ok
    report = harness.pdfsig(pki, new)
    assert "Signature is Valid" in harness.pdfsig_blocks(report)[0]
    assert "Total document signed" in harness.pdfsig_blocks(report)[-1]


def test_renewing_a_b_t_document_embeds_its_validation_data_and_it_still_verifies(pki, tmp_path):
    """`sohoa renew` of a B-T document (SOHOA_SIGN_LEVEL=B-T is a documented choice) added a
    document timestamp and its DSS but none of the signer's validation data: the file, now judged
    offline from what it embeds, failed ("revocation status cannot be established") where the B-T
    file passed, while the manifest called it B-LTA. The signer's validation data is embedded
    first now; the renewed file verifies, and is the B-LTA the manifest says."""
    from pipeline import service

    signed, record = signed_document("B-T")
    store, doc_id = store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki, "B-T")
    assert service.verify_dossier(conf, CODE)[0].ok
    [renewed] = service.renew_dossier(conf, CODE, within_days=100_000)
    assert renewed.renewed, renewed.message_en
    [verdict] = service.verify_dossier(conf, CODE)
    assert verdict.ok, verdict.message_en
    assert verdict.details.level == "B-LTA" and verdict.details.signatures[0].revocation_source == "embedded"
    assert json.loads(store.get(keys.manifest(CODE)))["documents"][0]["signature"]["level"] == "B-LTA"


def test_a_b_t_document_is_due_for_renewal_before_its_signers_certificate_expires(pki, tmp_path):
    """Found by the archive's hands-on review: `sohoa renew --all` judged a B-T file by its TSA's
    certificate alone (2045) and left it, though once its signer's certificate expired (2035) the
    file failed `verify` for good (no revocation data can be had after that); renewing before
    embeds it. A B-T file is now due by whichever ends first; a B-LTA file by its TSA's."""
    from datetime import datetime, timezone

    from pipeline import service
    from pipeline.signing.validation import renewal_deadline

    signed, record = signed_document("B-T")
    store_dossier(tmp_path, signed, record)
    signer_ends, why = renewal_deadline(signed)
    tsa_ends, _ = renewal_deadline(signed_document("B-LTA")[0])
    assert why == "signer" and signer_ends < tsa_ends
    between = (signer_ends + (tsa_ends - signer_ends) / 2 - datetime.now(timezone.utc)).days
    [renewed] = service.renew_dossier(settings(tmp_path, pki, "B-T"), CODE, within_days=between)
    assert renewed.renewed and f"bảo vệ tới ngày {tsa_ends:%d/%m/%Y}" in renewed.message_vi, renewed.message_vi
    [verdict] = service.verify_dossier(settings(tmp_path, pki, "B-T"), CODE)
    assert verdict.ok and verdict.details.level == "B-LTA", verdict.message_en
    [again] = service.renew_dossier(settings(tmp_path, pki, "B-T"), CODE, within_days=between)
    assert not again.renewed and f"chứng thư TSA hết hạn ngày {tsa_ends:%d/%m/%Y}" in again.message_vi


def test_years_later_a_b_lta_verdict_says_the_signers_certificate_ended_and_what_proves_the_signature(
        pki, monkeypatch):
    """Found by the archive's hands-on review (faketime, 2036): a B-LTA document whose signer's
    certificate had expired in 2035 read a plain "Chữ ký hợp lệ", nothing said of the expiry or of
    what still proves the signature."""
    from datetime import datetime

    signed, _ = signed_document("B-LTA")
    monkeypatch.setattr(validation, "_now", lambda: datetime(2036, 3, 1, tzinfo=validation.VIETNAM_TZ))
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    said = " ".join(verdict.messages_vi)
    assert verdict.ok, said
    assert "đã hết hạn ngày 01/01/2035; chữ ký vẫn hợp lệ vì dấu thời gian chứng minh đã ký ngày" in said, said
    monkeypatch.undo()  # today the certificate holds: nothing of the kind is said
    assert "đã hết hạn" not in " ".join(validation.verify_pdf(signed, [pki.root_pem.read_bytes()]).messages_vi)


def test_a_b_t_document_whose_signer_has_expired_is_still_renewed(pki, tmp_path):
    """Embedding the signer's validation data first (above) made the renewal of a B-T document
    whose signer's certificate has since expired fail, "too late": the usual case, signers'
    certificates ending before the TSA's (found by the review of that change). Such a document
    still gets its document timestamp; its signature time comes from its own timestamp."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers, timestamps

    from pipeline import service

    expired = signers.SimpleSigner.load_pkcs12(str(pki.p12("signer-expired")),
                                               passphrase=harness.P12_PASSWORD.encode())
    signed = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdfa_input())),
                              signers.PdfSignatureMetadata(field_name="SohoaSignature1",
                                                           subfilter=fields.SigSeedSubFilter.PADES),
                              signer=expired, timestamper=timestamps.HTTPTimeStamper(pki.tsa_url)).getvalue()
    _, record = signed_document("B-T")
    store_dossier(tmp_path, signed, record)
    [renewed] = service.renew_dossier(settings(tmp_path, pki, "B-T"), CODE, within_days=100_000)
    assert renewed.renewed, renewed.message_vi


def test_a_renewal_the_tsa_does_not_answer_says_so_in_vietnamese_once(pki, tmp_path, capsys):
    """A renewal that failed printed the library's exception, the same English twice."""
    from api.cli import main

    signed, record = signed_document("B-LTA")
    store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki)
    down = dataclasses.replace(conf, signing=dataclasses.replace(conf.signing, tsa_url="http://127.0.0.1:9/tsa"))
    assert main(["renew", CODE, "--days", "100000"], settings=down) == 1
    vi, en = capsys.readouterr().out.splitlines()[1:3]
    assert "máy chủ dấu thời gian (SOHOA_TSA_URL) không trả lời" in vi and "Error" not in vi, vi
    assert "timestamp renewal failed: " in en, en


def test_renewal_failing_part_way_leaves_renewed_documents_matching_the_manifest(pki, tmp_path):
    """Document 1 is renewed, then document 2 fails (its stored bytes were altered): document
    1's new bytes are already in the manifest, so it still verifies and a retry can go on."""
    from pipeline import service
    from storage.errors import IntegrityError

    signed, record = signed_document("B-LTA")
    store, doc_id = store_dossier(tmp_path, signed, record)
    manifest = json.loads(store.get(keys.manifest(CODE)))
    second = f"{CODE}.002"
    info = store.put(keys.document_pdf(CODE, second), signed, "application/pdf")
    manifest["documents"].append({"docId": second, "sequence": 2, "created": record.signed_at.isoformat(),
                                  "signature": record.to_json(),
                                  "pdf": {**info.to_json(), "sha256": "0" * 64}})
    store.put(keys.manifest(CODE), json.dumps(manifest).encode())
    conf = settings(tmp_path, pki)

    with pytest.raises(IntegrityError):
        service.renew_dossier(conf, CODE, within_days=100_000)
    first = service.verify_dossier(conf, CODE)[0]
    assert first.doc_id == doc_id and first.ok, first.message_en
    assert json.loads(store.get(keys.manifest(CODE)))["events"][-1]["type"] == "timestamp-renewal"
    assert "renew" in [event["action"] for event in audit_events(tmp_path)]  # verify is audited after it


def test_a_trust_root_file_that_cannot_be_read_is_a_setting_error_not_each_dossiers_failure(pki, tmp_path, capsys):
    """A missing SOHOA_TRUST_ROOTS file was reported as every dossier's failed verdict (exit 1), the
    same line twice (found by the archive review): it is the machine's setting (exit 10, once)."""
    from api.cli import main

    signed, record = signed_document("B-T")
    store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki, "B-T")
    missing = dataclasses.replace(conf, signing=dataclasses.replace(conf.signing, trust_roots=("/khong/co/goc.pem",)))
    assert main(["verify", CODE], settings=missing) == 10
    err = capsys.readouterr().err
    assert "SOHOA_TRUST_ROOTS: không có tệp này" in err and err.count("LỖI") == 1, err


def test_cli_renew(pki, tmp_path, capsys):
    from api.cli import main

    signed, record = signed_document("B-LTA")
    store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki)
    assert main(["renew", CODE, "--json", "--days", "100000"], settings=conf) == 0
    assert json.loads(capsys.readouterr().out)[CODE][0]["renewed"] is True
    no_tsa = dataclasses.replace(conf, signing=dataclasses.replace(conf.signing, tsa_url=None))
    assert main(["renew", CODE, "--days", "1"], settings=no_tsa) == 1


def test_pdfa_check_catches_broken_signature_widget(pki):
    signed, _ = signed_document("B-B")
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        pdf.pages[0].Annots[0].F = 0
        out = io.BytesIO()
        pdf.save(out)
    verdict = pdfa_signed.pdfa_check(out.getvalue())
    assert not verdict.ok and any("6.3.2" in f for f in verdict.findings)


def test_unsigned_base_revision_is_the_signed_pdfa(pki):
    signed, _ = signed_document("B-LT")
    assert pdfa_signed.unsigned_base_revision(signed) == pdfa_input()


def test_verify_works_inside_a_running_event_loop(pki):
    import asyncio

    signed, _ = signed_document("B-T")

    async def handler():  # e.g. an async web handler calling the synchronous API
        return validation.verify_pdf(signed, [pki.root_pem.read_bytes()])

    assert asyncio.run(handler()).ok


def test_verdict_json_keeps_its_keys(pki):
    """``to_json`` writes what ``sohoa verify --json`` and the API have always shown."""
    signed, _ = signed_document("B-LTA")
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()]).to_json()
    assert list(verdict) == ["ok", "intact", "wholeDocumentCovered", "chainTrusted", "timestampOk", "pdfaOk",
                             "pdfaFindings", "subfilter", "level", "signer", "signedAt", "testSignature",
                             "revocation", "revocationPolicy", "signatures", "messagesVi", "messagesEn"]
    signature, timestamp = verdict["signatures"]
    assert list(signature) == ["field", "kind", "subfilter", "level", "signer", "certificateSha256", "signedAt",
                               "timestampAt", "intact", "valid", "wholeDocumentCovered", "coversWholeFile",
                               "chainTrusted", "timestampOk", "testSignature", "revocation", "revocationSource",
                               "adesLongTerm", "ok", "messagesVi", "messagesEn"]
    assert list(timestamp) == ["field", "kind", "subfilter", "level", "signer", "certificateSha256", "signedAt",
                               "tsaCertificateExpires", "intact", "valid", "wholeDocumentCovered",
                               "coversWholeFile", "chainTrusted", "timestampOk", "testSignature", "revocation",
                               "revocationSource", "ok", "messagesVi", "messagesEn"]
    assert verdict["ok"] and signature["adesLongTerm"] == "PASSED" and timestamp["kind"] == "timestamp"
    assert signature["signedAt"].endswith("+07:00") and verdict["signedAt"] == signature["signedAt"]
    json.dumps(verdict)  # plain JSON values only


def test_validation_never_imports_the_signers():
    """As in pyHanko: verifying a file loads no key source, stamp or development PKI."""
    probe = ("import sys, pipeline.signing.validation; "
             "print(sorted(m for m in sys.modules if m.startswith('pipeline.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout
    for signer_side in ("keys", "pades", "appearance", "devpki"):
        assert f"'pipeline.signing.{signer_side}'" not in loaded, loaded


# --------------------------------------------------------------------------- revocation policy

def sign_with(pki, key: str, level: str) -> bytes:
    import tempfile

    conf = Settings(home=Path(tempfile.mkdtemp()), signing=SigningSettings(
        p12=str(pki.p12(key)), p12_password=harness.P12_PASSWORD, level=level, tsa_url=pki.tsa_url,
        trust_roots=(str(pki.root_pem),), agency_name=AGENCY))
    return pades.sign_pdf(pdfa_input(), signing_keys.load_signer(conf.signing, conf.home))[0]


@pytest.fixture
def go_offline(monkeypatch):
    """``go_offline()`` cuts the network: from then on every HTTP request of
    pyhanko-certvalidator's fetchers (aiohttp) fails at once, as with an unreachable OCSP
    responder; it returns the list of the URLs tried."""
    import aiohttp

    tried = []

    async def refuse(self, method, url, *args, **kwargs):
        tried.append(str(url))
        raise aiohttp.ClientConnectionError(f"offline test: {url}")

    def cut():
        monkeypatch.setattr(aiohttp.ClientSession, "_request", refuse)
        return tried

    return cut


def test_unreachable_ocsp_fails_under_hard_and_is_shown_under_soft(pki):
    """A real key at B-T whose certificate names only an OCSP responder that does not answer
    (a closed 127.0.0.1 port): "hard" refuses it, naming revocation as the cause; "soft" passes
    it and says the status is unknown."""
    signed = sign_with(pki, "signer-dead-ocsp", "B-T")
    roots = [pki.root_pem.read_bytes()]

    hard = validation.verify_pdf(signed, roots, revocation="hard")
    [signature] = hard.signatures
    assert not hard.ok and not signature.ok
    assert signature.intact and signature.valid and signature.chain_trusted, "the chain itself holds"
    assert (signature.revocation, signature.revocation_source) == ("unavailable", "none")
    assert hard.revocation == "unavailable" and hard.revocation_policy == "hard"
    assert any("không xác định được tình trạng thu hồi" in m for m in hard.messages_vi), hard.messages_vi
    assert any("revocation status" in m and "cannot be established" in m for m in hard.messages_en)
    assert not any("tin cậy" in m for m in hard.messages_vi), "not a trust-root problem"
    assert not any(m.startswith("Signature valid") for m in hard.messages_en)

    soft = validation.verify_pdf(signed, roots, revocation="soft")
    [signature] = soft.signatures
    assert soft.ok and signature.ok and signature.chain_trusted
    assert (signature.revocation, signature.revocation_source) == ("unavailable", "none")
    assert any("chưa xác định được tình trạng thu hồi" in m for m in soft.messages_vi), soft.messages_vi
    assert soft.messages_en[-1].startswith("Signature valid (B-T, ") \
        and "revocation status not established" in soft.messages_en[-1]
    report = soft.to_json()
    assert (report["revocation"], report["revocationPolicy"]) == ("unavailable", "soft")
    assert (report["signatures"][0]["revocation"], report["signatures"][0]["revocationSource"]) == (
        "unavailable", "none")

    with pytest.raises(ValueError):
        validation.verify_pdf(signed, roots, revocation="hard-fail")


def test_hard_is_the_default_policy(pki):
    signed = sign_with(pki, "signer-dead-ocsp", "B-T")
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert not verdict.ok and verdict.revocation_policy == "hard"


@pytest.mark.parametrize("level, source", [("B-B", "fetched"), ("B-T", "fetched"), ("B-LT", "embedded"),
                                           ("B-LTA", "embedded")])
def test_revocation_status_and_source_in_the_verdict_json(pki, level, source):
    signed, _ = signed_document(level)
    for policy in ("hard", "soft"):
        report = validation.verify_pdf(signed, [pki.root_pem.read_bytes()], revocation=policy).to_json()
        assert report["ok"] and report["revocation"] == "good" and report["revocationPolicy"] == policy, report
        for entry in report["signatures"]:  # the signature and, for B-LTA, its document timestamp
            assert (entry["revocation"], entry["revocationSource"]) == ("good", source), entry


def test_revoked_certificate_is_named_as_revoked(pki):
    signed = sign_with(pki, "signer-revoked", "B-T")
    for policy in ("hard", "soft"):
        verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()], revocation=policy)
        [signature] = verdict.signatures
        assert not verdict.ok and (signature.revocation, signature.revocation_source) == ("revoked", "fetched")
        assert verdict.revocation == "revoked"
        assert any("đã bị thu hồi ngày 2025-06-01" in m for m in verdict.messages_vi), verdict.messages_vi
        assert any("was revoked on 2025-06-01" in m for m in verdict.messages_en)


@pytest.fixture
def travel(monkeypatch):
    """``travel(days)`` moves the clock of validation forward: ``datetime.now`` as pyHanko,
    pyhanko-certvalidator and sohoa's validation read it."""
    import datetime as dt

    import pyhanko.sign.validation.ades as ades
    import pyhanko_certvalidator.context as context
    import pyhanko_certvalidator.ltv.ades_past as ades_past
    import pyhanko_certvalidator.ltv.poe as poe
    import pyhanko_certvalidator.ltv.types as ltv_types

    def go(days: int):
        shift = dt.timedelta(days=days)

        class Later(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return dt.datetime.now(tz) + shift

        for module in (ades, context, ades_past, poe, ltv_types, validation):
            monkeypatch.setattr(module, "datetime", Later)

    return go


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_files_verify_offline_as_of_their_timestamps(pki, go_offline, travel, level):
    """B-LT and B-LTA carry the validation data of signing time (and B-LTA its archive
    timestamps): judged offline, with no request at all, even under "hard", as of their
    timestamps: years later, when the embedded CRLs and OCSP responses are long out of date
    and the signer's certificate has expired, they still verify, until the newest timestamp's
    TSA certificate expires (renewal adds a fresh one before that)."""
    signed = sign_with(pki, "signer-ec", level)  # names an OCSP responder and a CRL
    bare_signed = sign_with(pki, "signer-ec", "B-B")
    offline = go_offline()
    roots = [pki.root_pem.read_bytes()]

    verdict = validation.verify_pdf(signed, roots, revocation="hard")
    assert verdict.ok and verdict.level == level, verdict.messages_en
    assert all((s.revocation, s.revocation_source) == ("good", "embedded") for s in verdict.signatures)
    if level == "B-LTA":
        assert [s.kind for s in verdict.signatures] == ["signature", "timestamp"]
        assert verdict.signatures[0].ades_long_term == "PASSED"

    travel(3650)  # 2035+: the signer's certificate (to 2035-01-01) has expired, every CRL is stale
    later = validation.verify_pdf(signed, roots, revocation="hard")
    assert later.ok, later.messages_en
    assert all((s.revocation, s.revocation_source) == ("good", "embedded") for s in later.signatures)
    assert later.messages_en[-1] == f"Signature valid ({level}, UBND phường Hoàn Kiếm (ECDSA))"

    travel(365 * 20)  # after the TSA certificate (to 2045-01-01): no timestamp proves anything now
    too_late = validation.verify_pdf(signed, roots, revocation="soft")
    assert not too_late.ok and not too_late.signatures[-1].timestamp_ok
    assert any("TSA certificate of the newest timestamp expired on 2045-01-01" in m for m in too_late.messages_en)
    assert offline == [], "nothing may be fetched for a file with validation data"

    # control: without validation data, the same key needs the network, which is down
    travel(0)
    bare = validation.verify_pdf(bare_signed, roots, revocation="hard")
    assert not bare.ok and bare.signatures[0].revocation == "unavailable" and offline


def test_untrusted_signer_prints_no_library_traceback(pki, tmp_path, caplog):
    """pyHanko and certvalidator log a failed path build with its traceback; with no logging
    configured Python prints that to stderr before the verdict. A separate process (no pytest
    log capture) shows what an operator would see."""
    import logging

    signed, _ = signed_document("B-T")
    other_root = tmp_path / "other-root.pem"
    signing_keys.load_signer(Settings(home=tmp_path, signing=SigningSettings()).signing, tmp_path)  # a dev CA
    other_root.write_bytes((tmp_path / "dev-signing" / "ca.pem").read_bytes())
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(signed)
    probe = ("import sys, pathlib; from pipeline.signing.validation import verify_pdf; "
             "v = verify_pdf(pathlib.Path(sys.argv[1]).read_bytes(), [pathlib.Path(sys.argv[2]).read_bytes()]); "
             "print(v.ok, v.chain_trusted); print(*v.messages_en, sep='\\n')")
    run = subprocess.run([sys.executable, "-c", probe, str(pdf), str(other_root)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("False False") and "does not chain to a trusted root" in run.stdout, run.stdout
    assert "Traceback" not in run.stderr and "Failed to build path" not in run.stderr, run.stderr
    assert run.stderr.strip() == "", run.stderr

    # in this process too: nothing from the libraries reaches the handlers, and their
    # loggers' levels are as they were
    before = {name: logging.getLogger(name).level for name in ("pyhanko", "pyhanko_certvalidator")}
    with caplog.at_level(logging.DEBUG):
        verdict = validation.verify_pdf(signed, [other_root.read_bytes()])
    assert not verdict.chain_trusted
    assert not [r for r in caplog.records if r.name.startswith("pyhanko") and r.levelno >= logging.WARNING]
    assert {name: logging.getLogger(name).level for name in before} == before


def test_an_unreadable_signature_says_what_failed(pki):
    signed, _ = signed_document("B-T")
    verdict = validation.verify_pdf(signed[: len(signed) - 40], [pki.root_pem.read_bytes()])
    assert not verdict.ok and not verdict.signatures
    assert any("PdfReadError" in m for m in verdict.messages_en), verdict.messages_en
    assert not any("hỏng hoặc bị sửa" in m for m in verdict.messages_vi)


def test_a_file_that_is_not_pdfa_is_said_so_in_vietnamese_with_the_clauses_it_breaks(pki):
    """The officer's verdict gave the PDF/A validators' own English ("[violation] ISO_19005_2:6.2.2-1
    at obj 7 0 (Page) content: operator ... is not defined"): it says how many rules the file breaks
    and their clauses, the validators' words staying in the English message."""
    from PIL import Image

    plain = io.BytesIO()
    Image.new("L", (200, 300), 255).save(plain, "PDF")
    verdict = validation.verify_pdf(plain.getvalue(), [pki.root_pem.read_bytes()])
    assert not verdict.pdfa_ok and verdict.pdfa_findings
    [said] = [m for m in verdict.messages_vi if "PDF/A" in m]
    assert said.startswith("Tệp không đạt PDF/A-2b: ") and "điểm sai quy chuẩn" in said, said
    assert not any(finding in said for finding in verdict.pdfa_findings), said
    assert any(verdict.pdfa_findings[0] in m for m in verdict.messages_en)
