"""Judging a stored dossier: each document's fixity against its manifest (every signed version,
the originals, the OCR text), its signature (integrity, coverage, chain, revocation, timestamp)
and PDF/A, the manifest's signature record against the file, the dossier and document the signed
file names itself, and the manifest's own history. Reads only; writes nothing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from storage.base import ObjectStore, sha256
from storage.errors import NotFound as ObjectNotFound

from . import manifest as mf
from .models import DocumentVerdict
from .repository import manifest_chain_problems, require_manifest
from .signing.pdfa_signed import unsigned_base_revision
from .signing.validation import verify_pdf

TEST_PASS_VI = "ĐẠT (chữ ký thử nghiệm, không có giá trị pháp lý)"
TEST_PASS_EN = "PASS (test signature, no legal value)"


@dataclass(frozen=True)
class TrustPolicy:
    """How signatures are judged: the trust roots (DER or PEM), the revocation policy ("hard" or
    "soft") and the SHA-256 of development CAs whose signatures are test signatures."""

    roots: tuple[bytes, ...]
    revocation: str = "hard"
    test_cas: tuple[str, ...] = ()


def verify_stored_dossier(store: ObjectStore, code: str, policy: TrustPolicy) -> tuple[DocumentVerdict, ...]:
    manifest = require_manifest(store, code)
    history = manifest_chain_problems(store, code)
    legacy = "manifestVersion" not in manifest  # written before signature records were complete
    return tuple(verify_stored_document(store, code, doc, policy, history, legacy)
                 for doc in manifest.get("documents", []))


def verify_stored_document(store: ObjectStore, code: str, doc: dict, policy: TrustPolicy, history: list[str] = (),
                           legacy: bool = False) -> DocumentVerdict:
    doc_id, pdf_info = doc.get("docId"), doc.get("pdf") or {}
    try:
        data = store.get(pdf_info["key"])
    except (ObjectNotFound, KeyError):
        return DocumentVerdict(doc_id, False, {"stored": False}, f"{doc_id}: KHÔNG ĐẠT: không tìm thấy tệp PDF đã lưu",
                               f"{doc_id}: FAIL: stored PDF not found")
    checks, vi, en = {}, [], []

    def check(name: str, passed: bool, why_vi: str = "", why_en: str = "") -> None:
        checks[name] = bool(passed)
        if not passed and why_vi:
            vi.append(why_vi)
            en.append(why_en)

    check("sha256", sha256(data) == pdf_info.get("sha256"),
          "mã băm SHA-256 của tệp khác với manifest (tệp đã bị thay đổi)",
          "the file's SHA-256 differs from the manifest (file altered)")
    check("size", len(data) == pdf_info.get("size"), "kích thước tệp khác với manifest", "file size differs from the manifest")
    newest = (doc.get("pdfVersions") or [pdf_info])[-1]
    check("versions", all(newest.get(k) == pdf_info.get(k) for k in ("key", "sha256", "size")),
          "tệp PDF trong manifest không phải phiên bản đã ký cuối cùng được ghi nhận",
          "the manifest's PDF is not the last signed version it records")
    # read in the revision the first signature covers: pyHanko's checks allow a metadata update after
    # signing, which could rename a file copied from another dossier (the review)
    named = signed_identity(unsigned_base_revision(data) or data)
    check("identity", named == (code, doc_id),
          f"tệp PDF đã ký ghi là của hồ sơ {named[0] or '(không ghi)'}, tài liệu {named[1] or '(không ghi)'}: "
          "không phải tài liệu này (tệp bị tráo hoặc sao chép từ hồ sơ khác)",
          f"the signed PDF names dossier {named[0]}, document {named[1]}: not this document "
          "(swapped, or copied from another dossier)")
    details = verify_pdf(data, list(policy.roots), revocation=policy.revocation, test_cas=policy.test_cas)
    signatures = details.signatures
    if doc.get("unsigned"):
        check("signature", False, "tài liệu được lưu không ký số (theo lựa chọn khi số hóa)",
              "the document was stored unsigned (chosen at ingest)")
    else:
        if signatures:  # none read: what depends on one is not judged (details.messages say why)
            check("integrity", all(s.intact and s.valid for s in signatures))
            check("coverage", details.whole_document_covered)
            check("chain", details.chain_trusted)
            # judged only where there is something to judge: a B-B signature has no timestamp, and a
            # development key's needs no revocation check (the web showed both as passed)
            if any(s.timestamp_ok is not None for s in signatures):
                check("timestamp", details.timestamp_ok)
            revocation = [s.revocation for s in signatures if s.intact and s.valid  # a broken one fails as such
                          and s.revocation != "not-needed"]
            if revocation:
                check("revocation", "revoked" not in revocation
                      and (policy.revocation == "soft" or "unavailable" not in revocation))
        checks["signature"] = bool(signatures) and all(s.ok for s in signatures) and details.whole_document_covered
    check("pdfa", details.pdfa_ok)
    if doc.get("unsigned") or signatures:
        check("manifestSignature", doc.get("unsigned") or _record_matches(doc.get("signature"), details, legacy),
              "chữ ký trong tệp không khớp với bản ghi chữ ký trong manifest",
              "the file's signature does not match the manifest's signature record")
    altered = altered_objects(store, [o for o in mf.document_objects(doc) if o.get("key") != pdf_info.get("key")])
    check("otherObjects", not altered, "bản gốc, phiên bản PDF khác hoặc văn bản OCR bị thiếu hoặc bị thay đổi: "
          + ", ".join(altered), "original, other PDF version or OCR text missing or altered: " + ", ".join(altered))
    check("manifestHistory", not history, "lịch sử manifest: " + "; ".join(history), "manifest history: " + "; ".join(history))
    ok = all(checks.values())
    if ok:
        vi += list(details.messages_vi)
        en += list(details.messages_en)
    else:
        vi += [m for m in details.messages_vi if not m.startswith("Chữ ký hợp lệ")]
        en += [m for m in details.messages_en if not m.startswith("Signature valid")]
    pass_vi, pass_en = (TEST_PASS_VI, TEST_PASS_EN) if details.test_signature else ("ĐẠT", "PASS")
    return DocumentVerdict(
        doc_id, ok, checks,
        f"{doc_id}: {pass_vi if ok else 'KHÔNG ĐẠT'}: " + "; ".join(dict.fromkeys(vi)),
        f"{doc_id}: {pass_en if ok else 'FAIL'}: " + "; ".join(dict.fromkeys(en)),
        details)


def signed_identity(pdf: bytes) -> tuple[str | None, str | None]:
    """The dossier code and document id the PDF's metadata names (XMP dc:source and dc:identifier,
    written into every document before it is signed): a valid signature proves the file is some
    agency document, these, read from the revision it signed, say which one."""
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(pdf)) as opened:
            xmp = opened.open_metadata()
            return xmp.get("dc:source") or None, xmp.get("dc:identifier") or None
    except Exception:  # noqa: BLE001 - an unreadable file is judged by the other checks; here it names nothing
        return None, None


def _record_matches(recorded: dict | None, details, legacy: bool) -> bool:
    """The manifest's signature record against the file's last signature: certificate, level and
    test flag all recorded and equal. A document recorded before records were complete (a
    sohoa.manifest/1 dossier) is compared on what it has."""
    main = details.main_signature
    if main is None or not recorded:
        return False
    wanted = {"certificateSha256": main.certificate_sha256, "level": details.level,
              "testSignature": details.test_signature}
    for name, value in wanted.items():
        if name not in recorded or recorded[name] is None:
            if not legacy:
                return False
        elif recorded[name] != value:
            return False
    return True


def altered_objects(store: ObjectStore, objects: list[dict | None]) -> list[str]:
    """Keys of the manifest's other objects (originals, OCR text, earlier signed versions) whose
    bytes are missing or differ from their recorded SHA-256: re-read every time."""
    altered = []
    for obj in filter(None, objects):
        try:
            if sha256(store.get(obj["key"])) != obj["sha256"]:
                altered.append(obj["key"])
        except ObjectNotFound:
            altered.append(obj["key"])
    return altered
