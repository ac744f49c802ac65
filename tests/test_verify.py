"""Verification of signed documents and dossiers, tampering, third-party signatures,
B-LTA renewal and the CLI handlers, against the real test PKI."""
from __future__ import annotations

import argparse
import functools
import io
import json

import pikepdf
import pytest

from pipeline import sign, verify
from pipeline.config import Settings
from storage import keys
from storage.base import sha256
from storage.local import LocalStore
from tests.pki import harness

CODE = "H23.50-261201-0001"
AGENCY = "UBND phường Hoàn Kiếm"


def settings(home, pki, level="B-LTA") -> Settings:
    return Settings(home=home, agency_name=AGENCY, sign={
        "p12": str(pki.p12("signer-rsa")), "p12_password": harness.P12_PASSWORD, "level": level,
        "tsa_url": pki.tsa_url, "trust_roots": str(pki.root_pem)})


pdfa_input = functools.cache(harness.minimal_pdfa)


@functools.cache
def signed_document(level: str) -> tuple[bytes, dict]:
    pki = harness.test_pki()
    import tempfile
    from pathlib import Path

    signer = sign.load_signer(settings(Path(tempfile.mkdtemp()), pki, level))
    return sign.sign_pdf(pdfa_input(), signer)


def store_dossier(home, pdf: bytes, record: dict) -> tuple[LocalStore, str]:
    store = LocalStore(home / "store")
    doc_id = f"{CODE}.001"
    info = store.put(keys.document_pdf(CODE, doc_id), pdf, content_type="application/pdf", retain=True)
    manifest = {"schema": "sohoa.manifest/1", "dossierCode": CODE, "documents": [{
        "docId": doc_id, "sequence": 1, "pdf": info.to_json(), "signature": record}], "events": []}
    store.put(keys.manifest(CODE), json.dumps(manifest, ensure_ascii=False).encode())
    return store, doc_id


def cms_signature_value(data: bytes) -> bytes:
    from asn1crypto import cms
    import re

    blob = re.search(rb"/Contents\s*<([0-9a-fA-F]+)>", data)[1]
    signed_data = cms.ContentInfo.load(bytes.fromhex(blob.decode()).rstrip(b"\0"))["content"]
    return signed_data["signer_infos"][0]["signature"].native


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_intact_signature_verifies(pki):
    signed, _ = signed_document("B-T")
    verdict = verify.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert verdict["ok"] and verdict["intact"] and verdict["wholeDocumentCovered"] and verdict["chainTrusted"]
    assert verdict["timestampOk"] and verdict["pdfaOk"] and verdict["level"] == "B-T"
    assert verdict["messages_vi"] and verdict["messages_en"]


def test_one_changed_byte_is_detected(pki):
    signed, _ = signed_document("B-T")
    roots = [pki.root_pem.read_bytes()]
    image_at = signed.index(b"/DCTDecode")
    image_at = signed.index(b"stream", image_at) + 200  # inside the scanned image's bytes
    altered = verify.verify_pdf(flip(signed, image_at), roots)
    assert not altered["ok"] and not altered["intact"]
    assert any("thay đổi" in m for m in altered["messages_vi"])

    # inside the signature value in the CMS blob (its certificate bag is not signed data)
    signed, _ = signed_document("B-B")
    value = cms_signature_value(signed).hex().encode()
    at = signed.lower().index(value) + len(value) // 2
    digit = b"0" if signed[at:at + 1] != b"0" else b"1"  # stays a hex digit: the blob still parses
    broken = verify.verify_pdf(signed[:at] + digit + signed[at + 1:], roots)
    assert not broken["ok"] and not broken["signatures"][0]["valid"]


def test_untrusted_without_roots(pki):
    signed, _ = signed_document("B-B")
    verdict = verify.verify_pdf(signed, None)
    assert verdict["intact"] and not verdict["chainTrusted"] and not verdict["ok"]
    assert any("tin cậy" in m for m in verdict["messages_vi"])


def test_appended_update_after_signing_is_reported(pki):
    signed, _ = signed_document("B-B")
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        pdf.pages[0].Contents = pdf.make_stream(b"q 0 0 0 rg 10 10 100 100 re f Q")
        out = io.BytesIO()
        pdf.save(out)  # a full re-save: the signature no longer covers what is shown
    verdict = verify.verify_pdf(out.getvalue(), [pki.root_pem.read_bytes()])
    assert not verdict["ok"]


def test_verify_dossier_then_tamper_with_stored_file(pki, tmp_path):
    signed, record = signed_document("B-LT")
    store, doc_id = store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki)
    [verdict] = verify.verify_dossier(store, CODE, conf)
    assert verdict["ok"] and verdict["docId"] == doc_id, verdict["message_en"]
    assert all(verdict["checks"].values()) and "ĐẠT" in verdict["message_vi"]

    path = tmp_path / "store" / keys.document_pdf(CODE, doc_id)
    path.chmod(0o644)
    path.write_bytes(flip(signed, len(signed) // 3))
    [verdict] = verify.verify_dossier(store, CODE, conf)
    assert not verdict["ok"] and not verdict["checks"]["sha256"]
    assert "KHÔNG ĐẠT" in verdict["message_vi"] and "FAIL" in verdict["message_en"]
    assert "SHA-256" in verdict["message_vi"]


def test_cli_verify_exit_codes_and_json(pki, tmp_path, capsys):
    signed, record = signed_document("B-T")
    conf = settings(tmp_path, pki)
    store, doc_id = store_dossier(tmp_path, signed, record)
    assert verify.cli_verify(argparse.Namespace(codes=[CODE], all=False, json=False), conf) == 0
    text = capsys.readouterr().out
    assert "ĐẠT" in text and "PASS" in text
    assert verify.cli_verify(argparse.Namespace(codes=[], all=True, json=True), conf) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[CODE][0]["ok"] is True

    path = tmp_path / "store" / keys.document_pdf(CODE, doc_id)
    path.chmod(0o644)
    path.write_bytes(flip(signed, 1000))
    assert verify.cli_verify(argparse.Namespace(codes=[CODE], all=False, json=True), conf) == 1
    assert json.loads(capsys.readouterr().out)[CODE][0]["ok"] is False
    assert verify.cli_verify(argparse.Namespace(codes=["H23.50-261201-0999"], all=False, json=False), conf) == 1


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

    verdict = verify.verify_pdf(store.get(key), [pki.root_pem.read_bytes()], require_pdfa=False)
    [signature] = verdict["signatures"]
    assert signature["subfilter"] == "adbe.pkcs7.detached" and signature["level"] is None
    assert signature["intact"] and signature["chainTrusted"] and signature["wholeDocumentCovered"]
    report = harness.pdfsig(pki, original)
    assert "Signature is Valid" in report and "adbe.pkcs7.detached" in report


def test_renew_timestamps_adds_document_timestamp_and_updates_manifest(pki, tmp_path):
    signed, record = signed_document("B-LTA")
    store, doc_id = store_dossier(tmp_path, signed, record)
    conf = settings(tmp_path, pki)

    [untouched] = verify.renew_timestamps(store, CODE, conf, within_days=30)
    assert not untouched["renewed"] and "chưa cần" in untouched["message_vi"]

    [renewed] = verify.renew_timestamps(store, CODE, conf, within_days=100_000)
    assert renewed["renewed"]
    new = store.get(keys.document_pdf(CODE, doc_id))
    assert new.startswith(signed), "renewal must be an incremental update"
    manifest = json.loads(store.get(keys.manifest(CODE)))
    assert manifest["documents"][0]["pdf"]["sha256"] == sha256(new) == renewed["sha256"]
    assert manifest["documents"][0]["pdf"]["size"] == len(new)
    assert manifest["events"][-1]["type"] == "timestamp-renewal"

    [verdict] = verify.verify_dossier(store, CODE, conf)
    assert verdict["ok"], verdict["message_en"]
    assert verdict["details"]["signatures"][0]["adesLongTerm"] == "PASSED"
    kinds = [s["kind"] for s in verdict["details"]["signatures"]]
    assert kinds == ["signature", "timestamp", "timestamp"]
    assert verify.pdfa_check(new)["ok"]
    report = harness.pdfsig(pki, new)
    assert "Signature is Valid" in harness.pdfsig_blocks(report)[0]
    assert "Total document signed" in harness.pdfsig_blocks(report)[-1]


def test_renewal_failing_part_way_leaves_renewed_documents_matching_the_manifest(pki, tmp_path):
    """Document 1 is renewed, then document 2 fails (its stored bytes were altered): document
    1's new bytes are already in the manifest, so it still verifies and a retry can go on."""
    from pipeline.errors import IntegrityError

    signed, record = signed_document("B-LTA")
    store, doc_id = store_dossier(tmp_path, signed, record)
    manifest = json.loads(store.get(keys.manifest(CODE)))
    second = f"{CODE}.002"
    info = store.put(keys.document_pdf(CODE, second), signed, "application/pdf")
    manifest["documents"].append({"docId": second, "sequence": 2, "signature": record,
                                  "pdf": {**info.to_json(), "sha256": "0" * 64}})
    store.put(keys.manifest(CODE), json.dumps(manifest).encode())
    conf = settings(tmp_path, pki)

    with pytest.raises(IntegrityError):
        verify.renew_timestamps(store, CODE, conf, within_days=100_000)
    first = verify.verify_dossier(store, CODE, conf)[0]
    assert first["docId"] == doc_id and first["ok"], first["message_en"]
    assert json.loads(store.get(keys.manifest(CODE)))["events"][-1]["type"] == "timestamp-renewal"
    audit_lines = (tmp_path / "logs" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(audit_lines[-1])["action"] == "renew"


def test_cli_renew(pki, tmp_path, capsys):
    signed, record = signed_document("B-LTA")
    store_dossier(tmp_path, signed, record)
    conf = Settings(home=tmp_path, agency_name=AGENCY, sign={**settings(tmp_path, pki).sign})
    assert verify.cli_renew(argparse.Namespace(codes=[CODE], all=False, json=True, days=100_000), conf) == 0
    assert json.loads(capsys.readouterr().out)[CODE][0]["renewed"] is True
    no_tsa = Settings(home=tmp_path, agency_name=AGENCY, sign={**conf.sign, "tsa_url": None})
    assert verify.cli_renew(argparse.Namespace(codes=[CODE], all=False, json=False, days=1), no_tsa) == 1


def test_pdfa_check_catches_broken_signature_widget(pki):
    signed, _ = signed_document("B-B")
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        pdf.pages[0].Annots[0].F = 0
        out = io.BytesIO()
        pdf.save(out)
    verdict = verify.pdfa_check(out.getvalue())
    assert not verdict["ok"] and any("6.3.2" in f for f in verdict["findings"])


def test_unsigned_base_revision_is_the_signed_pdfa(pki):
    signed, _ = signed_document("B-LT")
    assert verify.unsigned_base_revision(signed) == pdfa_input()


def test_verify_works_inside_a_running_event_loop(pki):
    import asyncio

    signed, _ = signed_document("B-T")

    async def handler():  # e.g. an async web handler calling the synchronous API
        return verify.verify_pdf(signed, [pki.root_pem.read_bytes()])

    assert asyncio.run(handler())["ok"]
