"""Signing against a real test PKI (certomancer over HTTP, SoftHSM2), checked by pdfsig,
OpenSSL, pikepdf and sohoa's own verifier."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import re
import subprocess
import unicodedata

import pikepdf
import pikepdf.pdfa
import pytest
from asn1crypto import cms

from pipeline.config import Settings, SigningSettings
from pipeline.errors import PdfaError, SigningError
from pipeline.signing import appearance, keys, pades, pdfa_signed, validation
from pipeline.signing.certificates import TEST_MARK
from tests.pki import harness

AGENCY = "Ủy ban nhân dân phường Hoàn Kiếm, thành phố Hà Nội"


@functools.cache
def pdfa_input() -> bytes:
    return harness.minimal_pdfa(pages=2)


def settings(tmp_path, pki=None, *, key="signer-rsa", level=None, tsa=True, roots=True, **sign_conf) -> Settings:
    conf = {"level": level, "tsa_url": pki.tsa_url if (pki and tsa) else None,
            "trust_roots": (str(pki.root_pem),) if (pki and roots) else ()}
    if pki and key:
        conf.update(p12=str(pki.p12(key)), p12_password=harness.P12_PASSWORD)
    conf.update(sign_conf)
    return Settings(home=tmp_path, signing=SigningSettings(**conf, agency_name=AGENCY))


def development(home) -> Settings:
    """No key configured: the development key under ``home``."""
    return Settings(home=home, signing=SigningSettings(agency_name=AGENCY))


def load_signer(conf: Settings) -> keys.Signer:
    return keys.load_signer(conf.signing, conf.home)


def trust_roots(conf: Settings) -> list[bytes]:
    return [c.dump() for c in keys.trust_roots(conf.signing, conf.home)]


def cms_of(data: bytes, index: int = 0) -> cms.SignedData:
    blobs = re.findall(rb"/Contents\s*<([0-9a-fA-F]+)>", data)
    # the /Contents placeholder is zero-padded; strip nothing (the DER itself may end in 00)
    return cms.ContentInfo.load(bytes.fromhex(blobs[index].decode()), strict=False)["content"]


def assert_independently_valid(pki, signed: bytes, *, lta: bool):
    report = harness.pdfsig(pki, signed)
    blocks = harness.pdfsig_blocks(report)
    assert blocks, report
    assert "Signature Type: ETSI.CAdES.detached" in blocks[0], report
    assert "Signature is Valid" in blocks[0], report
    if lta:
        # pdfsig cannot check RFC 3161 document timestamps, but sees that the last one covers the file
        assert "Total document signed" in blocks[-1], report
    else:
        assert len(blocks) == 1 and "Total document signed" in blocks[0], report
    openssl = harness.openssl_cms_verify(pki, signed)
    assert openssl.returncode == 0 and "Verification successful" in openssl.stderr, openssl.stderr


def assert_pdfa(signed: bytes):
    verdict = pdfa_signed.pdfa_check(signed)
    assert verdict.ok, verdict
    strict = pikepdf.pdfa.validate_written(io.BytesIO(signed), "2b")
    assert not [f for f in strict.findings if f.kind == "violation"], strict.findings
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        assert str(pdf.Root.get("/Version", "/1.7")) <= "/1.7"


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LTA"])
def test_pkcs12_rsa_pss_every_level(pki, tmp_path, level):
    signer = load_signer(settings(tmp_path, pki, level=level))
    signed, record = pades.sign_pdf(pdfa_input(), signer)

    assert signed.startswith(pdfa_input()), "signing must be an incremental update"
    assert record.subfilter == "ETSI.CAdES.detached" and record.level == level
    assert record.signer == "UBND phường Hoàn Kiếm (RSA)" and record.test_signature is False
    assert record.algorithm == "RSASSA-PSS-3072-SHA256"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", record.to_json()["signedAt"])
    assert list(record.to_json()) == ["subfilter", "level", "signer", "certificateSha256", "issuerSha256",
                                      "signedAt", "testSignature", "algorithm", "stamp"]  # the manifest's record
    assert record.issuer_sha256 == hashlib.sha256(pki.arch.get_cert("interm").dump()).hexdigest()
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        assert record.stamp == {"box": [float(v) for v in pdf.pages[0].Annots[0].Rect], "bandPt": 0.0}
    signer_info = cms_of(signed)["signer_infos"][0]
    assert signer_info["signature_algorithm"]["algorithm"].native == "rsassa_pss"
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha256"

    assert_independently_valid(pki, signed, lta=level == "B-LTA")
    assert_pdfa(signed)
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert verdict.ok, verdict.messages_en
    assert verdict.level == level and verdict.subfilter == "ETSI.CAdES.detached"
    if level != "B-B":
        assert verdict.timestamp_ok is True
    if level in ("B-LT", "B-LTA"):
        assert verdict.signatures[0].ades_long_term == ("PASSED" if level == "B-LTA" else None)
        with pikepdf.open(io.BytesIO(signed)) as pdf:
            assert len(pdf.Root.DSS.Certs) >= 2 and len(pdf.Root.DSS.CRLs) >= 1


def test_ecdsa_b_lt_embeds_ocsp_and_keeps_pdf_1_7(pki, tmp_path):
    signer = load_signer(settings(tmp_path, pki, key="signer-ec"))  # real key: B-LT by default
    assert signer.level == "B-LT"
    signed, record = pades.sign_pdf(pdfa_input(), signer)
    assert record.algorithm == "ECDSA-secp256r1-SHA256" and record.level == "B-LT"
    assert cms_of(signed)["signer_infos"][0]["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        assert len(pdf.Root.DSS.OCSPs) >= 1
    report = harness.pdfsig(pki, signed)
    assert "Signature is Valid" in report and "Total document signed" in report, report
    assert harness.openssl_cms_verify(pki, signed).returncode == 0
    assert_pdfa(signed)
    assert validation.verify_pdf(signed, [pki.root_pem.read_bytes()]).ok


def test_pkcs11_softhsm_token_signs_rsa_pss(pki, tmp_path):
    conf = settings(tmp_path, pki, key=None, level="B-LTA", pkcs11_module=pki.softhsm_module,
                    pkcs11_token=harness.TOKEN_LABEL, pkcs11_pin=harness.TOKEN_PIN)
    signer = load_signer(conf)
    try:
        assert signer.source == "pkcs11"
        signed, record = pades.sign_pdf(pdfa_input(), signer)
    finally:
        signer.close()
    assert record.algorithm == "RSASSA-PSS-3072-SHA256" and record.level == "B-LTA"
    assert cms_of(signed)["signer_infos"][0]["signature_algorithm"]["algorithm"].native == "rsassa_pss"
    assert_independently_valid(pki, signed, lta=True)
    assert_pdfa(signed)
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert verdict.ok and verdict.level == "B-LTA", verdict.messages_en


def test_pkcs11_wrong_pin_is_refused_clearly(pki, tmp_path):
    conf = settings(tmp_path, pki, key=None, pkcs11_module=pki.softhsm_module,
                    pkcs11_token=harness.TOKEN_LABEL, pkcs11_pin="000000")
    with pytest.raises(SigningError, match="PIN"):
        load_signer(conf)


def stamp_as_read(signed: bytes, record) -> list[str]:
    """The stamp's lines as a person sees them: page 1 rendered at 300 dpi, the stamp's box read
    by tesseract."""
    import pytesseract
    from pdf2image import convert_from_bytes

    x0, y0, x1, y1 = record.stamp["box"]
    dpi = 300
    page = convert_from_bytes(signed, dpi=dpi, first_page=1, last_page=1)[0]
    height = page.height * 72 / dpi
    crop = page.crop((int(x0 * dpi / 72) - 10, int((height - y1) * dpi / 72) - 10,
                      int(x1 * dpi / 72) + 10, int((height - y0) * dpi / 72) + 10))
    read = pytesseract.image_to_string(crop, lang="vie", config="--psm 6")
    return [unicodedata.normalize("NFC", line).strip() for line in read.splitlines() if line.strip()]


def reads_as(read: str, expected: str) -> bool:
    """OCR of 10 pt type may miss a tone mark: one edit in 25 characters is allowed."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(read, expected) <= max(1, len(expected) // 25)


def test_stamp_top_right_of_page_one_in_times_10pt_outlines_that_text_extraction_skips(pki, tmp_path):
    signer = load_signer(settings(tmp_path, pki, level="B-T"))
    signed, record = pades.sign_pdf(pdfa_input(), signer, organisation=AGENCY)
    stamp_text = ("Bản sao điện tử từ bản chính", AGENCY, record.to_json()["signedAt"])
    # The stamp is the signature's appearance, not words of the paper: an officer copying the
    # page's text, or a search engine, gets none of it ...
    _, _, words = harness.pdftotext_words(signed)
    assert not any(w[4] in line for w in words for line in stamp_text), words
    # ... while a person reads it where NĐ 30/2020 puts it: top right of page 1, black, 10 pt.
    x0, y0, x1, y1 = record.stamp["box"]
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        width, height = float(pdf.pages[0].mediabox[2]), float(pdf.pages[0].mediabox[3])
        assert x0 > width / 2 and x1 <= width and y0 > height * 3 / 4, record.stamp
        widget = pdf.pages[0].Annots[0]
        assert int(widget.F) & 4 and not int(widget.F) & (1 | 2 | 32)
        assert [round(float(v), 2) for v in widget.Rect] == [x0, y0, x1, y1]
        appearance_bytes = widget.AP.N.read_bytes()
        assert b"0 0 0 rg" in appearance_bytes and b" Tf" not in appearance_bytes
        assert b" c\n" in appearance_bytes  # curves: glyph outlines, not a picture of text
        assert "/XObject" not in widget.AP.N.Resources or all(
            x.Subtype != "/Image" for x in widget.AP.N.Resources.XObject.values())
        assert "/Annots" not in pdf.pages[1]
    read_lines = stamp_as_read(signed, record)
    assert reads_as(read_lines[0], stamp_text[0]) and reads_as(read_lines[-1], stamp_text[2]), read_lines
    assert reads_as(" ".join(read_lines[1:-1]), AGENCY), read_lines
    assert not any(TEST_MARK in line for line in read_lines)
    assert_pdfa(signed)


def test_invisible_signature(pki, tmp_path):
    signer = load_signer(settings(tmp_path, pki, level="B-T"))
    signed, record = pades.sign_pdf(pdfa_input(), signer, visible=False)
    assert record.stamp is None and "stamp" not in record.to_json()
    _, _, words = harness.pdftotext_words(signed)
    assert not any("Bản sao" in w[4] for w in words)
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        rect = [float(v) for v in pdf.pages[0].Annots[0].Rect]
        assert rect[0] == rect[2] and rect[1] == rect[3]
    assert_independently_valid(pki, signed, lta=False)
    assert_pdfa(signed)
    assert validation.verify_pdf(signed, [pki.root_pem.read_bytes()]).ok


@pytest.mark.parametrize("key, reason", [
    ("signer-expired", "đã hết hạn"),
    ("signer-noku", "không cho phép ký số"),
    ("signer-weak", "tối thiểu 2048"),
])
def test_unsuitable_certificates_are_refused(pki, tmp_path, key, reason):
    with pytest.raises(SigningError, match=reason):
        load_signer(settings(tmp_path, pki, key=key))


def test_real_key_needs_tsa_for_default_b_lt(pki, tmp_path):
    with pytest.raises(SigningError, match="SOHOA_TSA_URL"):
        load_signer(settings(tmp_path, pki, tsa=False))
    with pytest.raises(SigningError, match="SOHOA_TRUST_ROOTS"):
        load_signer(settings(tmp_path, pki, roots=False))
    with pytest.raises(SigningError, match="SOHOA_SIGN_LEVEL"):
        load_signer(settings(tmp_path, pki, level="B-X"))


def test_wrong_p12_password_is_refused_without_echoing_it(pki, tmp_path):
    conf = settings(tmp_path, pki)
    conf = dataclasses.replace(conf, signing=dataclasses.replace(conf.signing, p12_password="sai-mật-khẩu-bí-mật"))
    with pytest.raises(SigningError) as refused:
        load_signer(conf)
    assert "mật khẩu" in str(refused.value) and "sai-mật-khẩu-bí-mật" not in str(refused.value)


def test_development_key_is_created_once_and_marks_test_signatures(pki, tmp_path, capsys):
    conf = development(tmp_path)
    first = load_signer(conf)
    assert "THỬ NGHIỆM" in capsys.readouterr().err
    again = load_signer(conf)
    assert "THỬ NGHIỆM" in capsys.readouterr().err, "the warning is printed on every use"
    assert again.certificate.dump() == first.certificate.dump()
    assert (tmp_path / "dev-signing" / "signer.key.pem").stat().st_mode & 0o077 == 0
    assert first.level == "B-B" and first.test and "TEST" in first.signer_name

    signed, record = pades.sign_pdf(pdfa_input(), first)
    assert record.test_signature is True and record.level == "B-B"
    assert reads_as(stamp_as_read(signed, record)[-1], TEST_MARK)
    verdict = validation.verify_pdf(signed, trust_roots(conf))
    assert verdict.ok and verdict.test_signature, verdict.messages_en
    assert any("THỬ NGHIỆM" in m for m in verdict.messages_vi)
    assert_pdfa(signed)

    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "dev", "-t", "C,C,C", "-i",
                    str(tmp_path / "dev-signing" / "ca.pem")], check=True)
    path = tmp_path / "dev.pdf"
    path.write_bytes(signed)
    report = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in report and "Total document signed" in report and "Certificate is Trusted" in report


def test_input_that_is_not_pdfa_is_refused(pki, tmp_path):
    plain = pikepdf.new()
    plain.add_blank_page()
    buf = io.BytesIO()
    plain.save(buf)
    signer = load_signer(settings(tmp_path, pki, level="B-B"))
    with pytest.raises(PdfaError):
        pades.sign_pdf(buf.getvalue(), signer)


def test_stamp_geometry_wraps_long_agency_names():
    measure = appearance.TextMeasure(appearance.font_path()).width
    long_name = "Ủy ban nhân dân " * 12
    lines, (x0, y0, x1, y1) = appearance.stamp_box((0, 0, 595, 842), ["Bản sao", long_name.strip(), "x"], measure)
    assert len(lines) > 3 and x0 >= 595 / 2 and x1 == 595 - appearance.STAMP_MARGIN \
        and y1 == 842 - appearance.STAMP_MARGIN
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)


def test_signing_leaves_no_file_open_to_break_a_later_pdfa_check(tmp_path):
    """A font file left open by the stamp used to emit a ResourceWarning at a random later
    garbage collection; inside pikepdf's PDF/A check such a warning fails the check."""
    import gc
    import warnings

    signer = load_signer(development(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signed, _ = pades.sign_pdf(pdfa_input(), signer)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    assert_pdfa(signed)


def test_naming_trust_roots_stops_trusting_the_development_ca(tmp_path, capsys):
    """An archive workstation that names its trust roots must not pass test signatures made
    with a development key found under its SOHOA_HOME."""
    dev = development(tmp_path / "a")
    signed, _ = pades.sign_pdf(pdfa_input(), load_signer(dev))
    assert validation.verify_pdf(signed, trust_roots(dev)).ok

    load_signer(development(tmp_path / "b"))  # another CA
    archive = Settings(home=tmp_path / "a", signing=SigningSettings(
        trust_roots=(str(tmp_path / "b" / "dev-signing" / "ca.pem"),), agency_name=AGENCY))
    verdict = validation.verify_pdf(signed, trust_roots(archive))
    assert not verdict.ok and not verdict.chain_trusted


# --------------------------------------------------------------------------- test signatures

def test_test_policy_oid_is_the_uuid_arc_of_its_fixed_uuid():
    import uuid

    from pipeline.signing.certificates import TEST_POLICY_OID, TEST_POLICY_UUID

    assert TEST_POLICY_OID == f"2.25.{uuid.UUID(TEST_POLICY_UUID).int}"
    assert uuid.UUID(TEST_POLICY_UUID).version == 4


def test_development_pki_carries_the_test_policy_and_its_signatures_are_test_signatures(tmp_path):
    from cryptography import x509 as pyca_x509

    from pipeline.signing.certificates import TEST_POLICY_OID, TEST_POLICY_TEXT, certificate_sha256, \
        is_test_certificate

    conf = development(tmp_path)
    signer = load_signer(conf)
    ca = signer.chain[0]
    assert is_test_certificate(signer.certificate) and is_test_certificate(ca)
    for pem_file in ("ca.pem", "signer.pem"):
        cert = pyca_x509.load_pem_x509_certificate((tmp_path / "dev-signing" / pem_file).read_bytes())
        [policy] = cert.extensions.get_extension_for_class(pyca_x509.CertificatePolicies).value
        assert policy.policy_identifier.dotted_string == TEST_POLICY_OID
        assert [q.explicit_text for q in policy.policy_qualifiers] == [TEST_POLICY_TEXT]
        assert "không có giá trị pháp lý" in TEST_POLICY_TEXT and "no legal value" in TEST_POLICY_TEXT

    signed, record = pades.sign_pdf(pdfa_input(), signer)
    assert record.test_signature and record.issuer_sha256 == certificate_sha256(ca)
    verdict = validation.verify_pdf(signed, trust_roots(conf))  # no test_cas: the policy alone says it
    assert verdict.ok and verdict.test_signature and verdict.signatures[0].test_signature
    # never a plain pass
    assert "Chữ ký hợp lệ (chữ ký thử nghiệm, không có giá trị pháp lý)" in verdict.messages_vi
    assert "Signature valid (TEST signature, no legal value)" in verdict.messages_en
    assert not any(m.startswith("Chữ ký hợp lệ (B-") for m in verdict.messages_vi)
    assert verdict.revocation == "not-needed" and verdict.signatures[0].revocation_source == "none"


def test_a_real_certificate_named_test_is_not_a_test_signature(pki, tmp_path):
    signer = load_signer(settings(tmp_path, pki, key="signer-testname", level="B-T"))
    assert "TEST" in signer.signer_name and not signer.test
    signed, record = pades.sign_pdf(pdfa_input(), signer)
    assert record.test_signature is False
    _, _, words = harness.pdftotext_words(signed)
    assert not any(TEST_MARK in w[4] for w in words)
    verdict = validation.verify_pdf(signed, [pki.root_pem.read_bytes()])
    assert verdict.ok and not verdict.test_signature and not verdict.signatures[0].test_signature, verdict.messages_en
    assert f"Signature valid (B-T, {signer.signer_name})" in verdict.messages_en
    assert not any("THỬ NGHIỆM" in m for m in verdict.messages_vi)


def _write_pre_policy_development_key(directory, now=None):
    """A development CA and signer as sohoa made them before the test-key policy: same names,
    no CertificatePolicies."""
    import datetime as dt
    import os

    from cryptography import x509 as pyca_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from pipeline.signing.certificates import DEV_CA_CN, DEV_SIGNER_CN

    now = now or dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_CN)])
    name = pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COMMON_NAME, DEV_SIGNER_CN)])
    start, day = now - dt.timedelta(days=1), dt.timedelta(days=1)
    ca = (pyca_x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(start).not_valid_after(now + 3650 * day)
          .add_extension(pyca_x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(pyca_x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (pyca_x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2).not_valid_before(start).not_valid_after(now + 1825 * day)
            .add_extension(pyca_x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(pyca_x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                           critical=True)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(directory / "signer.key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def test_development_key_made_before_the_policy_is_known_by_its_ca_fingerprint(tmp_path, capsys):
    """A dev key made before this change is kept until it expires; its signatures are test
    signatures through ``test_cas`` (the development CAs of the home), never through the
    "TEST" in its name."""
    from pipeline.signing.certificates import certificate_sha256, is_test_certificate

    _write_pre_policy_development_key(tmp_path / "dev-signing")
    conf = development(tmp_path)
    signer = load_signer(conf)
    assert not is_test_certificate(signer.certificate), "an old key is not renewed before it expires"
    signed, record = pades.sign_pdf(pdfa_input(), signer)
    assert record.test_signature  # the development key source says so

    named_only = validation.verify_pdf(signed, trust_roots(conf))
    assert not named_only.test_signature, "the name 'SOHOA TEST' alone does not make a test signature"
    fingerprints = keys.development_ca_fingerprints(tmp_path)
    assert fingerprints == (certificate_sha256(signer.chain[0]),)
    verdict = validation.verify_pdf(signed, trust_roots(conf), test_cas=fingerprints)
    assert verdict.ok and verdict.test_signature
    assert verdict.messages_en[-1] == "Signature valid (TEST signature, no legal value)"
    # fingerprints as an operator may paste them (upper case, colons)
    pasted = ":".join(fingerprints[0][i:i + 2] for i in range(0, 64, 2)).upper()
    assert validation.verify_pdf(signed, trust_roots(conf), test_cas=[pasted]).test_signature


def test_development_ca_fingerprints_include_expired_keys(tmp_path, capsys):
    import datetime as dt

    from pipeline.signing import devpki
    from pipeline.signing.certificates import certificate_sha256, load_certificates

    assert keys.development_ca_fingerprints(tmp_path) == ()
    directory = tmp_path / "dev-signing"
    devpki.ensure_development_key(directory)
    first = certificate_sha256(load_certificates((directory / "ca.pem").read_bytes())[0])
    devpki.ensure_development_key(directory, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2000))
    second = certificate_sha256(load_certificates((directory / "ca.pem").read_bytes())[0])
    assert first != second and len(list(tmp_path.glob("dev-signing.expired-*"))) == 1
    assert set(keys.development_ca_fingerprints(tmp_path)) == {first, second}


def test_signature_record_names_the_issuing_ca(pki, tmp_path):
    conf = settings(tmp_path, pki, key=None, level="B-B", pkcs11_module=pki.softhsm_module,
                    pkcs11_token=harness.TOKEN_LABEL, pkcs11_pin=harness.TOKEN_PIN)
    signer = load_signer(conf)
    try:
        _, record = pades.sign_pdf(pdfa_input(), signer)
    finally:
        signer.close()
    assert record.to_json()["issuerSha256"] == hashlib.sha256(pki.arch.get_cert("interm").dump()).hexdigest()
    unknown = dataclasses.replace(record, issuer_sha256=None)
    assert unknown.to_json()["issuerSha256"] is None


def test_signing_a_file_into_a_file_gives_what_signing_its_bytes_gives(pki, tmp_path):
    """Issue 17: ingest signs the document file to file (never holding the whole document
    several times over); the result is the same incremental, valid, PDF/A-2b signature, the
    checks run on the path agree with those run on the bytes, and a file that is not PDF/A-2b
    is refused as it is from bytes."""
    signer = load_signer(settings(tmp_path, pki, level="B-T"))
    source, target = tmp_path / "tai-lieu.pdf", tmp_path / "da-ky.pdf"
    source.write_bytes(pdfa_input())
    record = pades.sign_pdf_file(source, target, signer, organisation=AGENCY)

    signed = target.read_bytes()
    assert signed.startswith(pdfa_input()) and record.level == "B-T" and record.stamp is not None
    assert_independently_valid(pki, signed, lta=False)
    assert_pdfa(signed)
    assert pdfa_signed.pdfa_check(target) == pdfa_signed.pdfa_check(signed)
    assert pdfa_signed.is_signed(target) and not pdfa_signed.is_signed(source)
    assert pdfa_signed.unsigned_base_revision(signed) == pdfa_input()

    plain = tmp_path / "khong-phai-pdfa.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(plain)
    with pytest.raises(PdfaError):
        pades.sign_pdf_file(plain, tmp_path / "khong-ky.pdf", signer)


def test_a_pin_the_token_refused_is_not_tried_again_by_the_same_process(pki, tmp_path, monkeypatch):
    """A token locks after a few wrong PINs: a server or worker that opened it once per upload,
    job or readiness probe would lock it within minutes of a mistyped PIN. The process tries a
    refused PIN once and then says so, until it is restarted with the right one."""
    from pipeline import config, runtime

    settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_SIGN_PKCS11_MODULE": pki.softhsm_module,
                            "SOHOA_SIGN_PKCS11_TOKEN": harness.TOKEN_LABEL, "SOHOA_SIGN_PKCS11_PIN": "000000",
                            "SOHOA_SIGN_LEVEL": "B-B"})
    tried, opens = [], runtime.load_signer
    monkeypatch.setattr(runtime, "load_signer", lambda *a: tried.append(1) or opens(*a))
    for _ in range(3):
        with pytest.raises(SigningError, match="PIN"):
            runtime.signer_for(settings)
    assert tried == [1]
    assert "Mã PIN của token không đúng" in runtime.key_trouble(settings)
    with pytest.raises(SigningError, match="không thử lại"):
        runtime.signer_for(settings)


def test_an_expired_development_key_is_renewed_once_for_the_deployment_and_the_old_ca_still_trusted(tmp_path):
    """Five years on, the deployment's development key had expired: every command made a new one
    on this machine and the next restored the expired one from the store, so what it had just
    signed no longer chained ("another installation's key")."""
    import datetime as dt
    import shutil

    from pipeline import config, runtime
    from pipeline.signing.certificates import certificate_sha256

    conf = config.load({"SOHOA_HOME": str(tmp_path / "home")})
    runtime.development_pki(conf)
    before = keys.load_signer(conf.signing, conf.home)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2000)
    after = []
    for _ in range(2):  # two commands once the key has expired
        runtime.development_pki(conf, now=later)
        after.append(keys.load_signer(conf.signing, conf.home, now=later))
    old_key, new_key = certificate_sha256(before.certificate), certificate_sha256(after[0].certificate)
    assert certificate_sha256(after[1].certificate) == new_key != old_key
    new_ca = certificate_sha256(after[0].issuer)
    assert {certificate_sha256(c) for c in keys.trust_roots(conf.signing, conf.home)} == \
        {certificate_sha256(before.issuer), new_ca}

    for kept in conf.home.glob("dev-signing*"):  # another machine of the deployment, which never held the old key
        shutil.rmtree(kept)
    runtime.development_pki(conf, create=False)
    assert {certificate_sha256(c) for c in keys.trust_roots(conf.signing, conf.home)} == \
        {certificate_sha256(before.issuer), new_ca}
    assert set(keys.development_ca_fingerprints(conf.home)) == {certificate_sha256(before.issuer), new_ca}


def test_a_worker_holding_a_development_key_about_to_expire_takes_the_deployments_renewed_one(tmp_path, monkeypatch):
    """A Celery worker opens its signer once and keeps it: one started before the development key
    expired went on signing with it (review of the renewal)."""
    import datetime as dt

    from pipeline import config, tasks
    from pipeline.signing import devpki
    from pipeline.signing.certificates import certificate_sha256

    now = dt.datetime.now(dt.timezone.utc)
    old_dir = tmp_path / "old" / "dev-signing"
    devpki.ensure_development_key(old_dir, now=now - dt.timedelta(days=1824))  # five years all but a day ago
    held = keys._development_signer(old_dir, now - dt.timedelta(days=1000))
    settings = config.load({"SOHOA_HOME": str(tmp_path / "home")})
    monkeypatch.setattr(tasks, "_state", {"settings": settings, "signer": held})
    taken = tasks._context().signer
    assert certificate_sha256(taken.certificate) != certificate_sha256(held.certificate)
    assert tasks._context().signer is taken  # kept while it is good
