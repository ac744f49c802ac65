"""The results of signing and validation, as frozen values (like pyHanko's
``sign/validation/status.py``).

Attributes are snake_case Python values (times as timezone-aware ``datetime``, sequences
as tuples); ``to_json()`` gives the dicts sohoa has always written to manifests and printed
as JSON, with their camelCase keys and ISO 8601 times.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Revocation status of a signature's or timestamp's certificates (all but the trust anchor):
# "good": every one that names an OCSP responder or CRL was checked and is not revoked;
# "revoked": one of them is revoked; "unavailable": the status of one of them could not be
# established (no response, no usable data); "not-needed": none names a revocation source.
REVOCATION_STATUSES = ("good", "revoked", "unavailable", "not-needed")
# Where the deciding revocation data came from: "embedded" (the file's DSS or the CMS's
# revocation values), "fetched" (OCSP/CRL over the network now), "none".
REVOCATION_SOURCES = ("embedded", "fetched", "none")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class SignatureRecord:
    """What the manifest stores about the signature sohoa made on a document."""

    subfilter: str
    level: str
    signer: str
    certificate_sha256: str
    signed_at: datetime  # Vietnam time
    test_signature: bool
    algorithm: str
    # where the visible stamp went: {"box": [x0, y0, x1, y1] in PDF points on page 1,
    # "bandPt": height of the white band added above the scan to hold it (0: none)}
    stamp: dict | None = None
    issuer_sha256: str | None = None  # SHA-256 of the issuing CA certificate, when the key source had it

    def to_json(self) -> dict:
        out = {
            "subfilter": self.subfilter,
            "level": self.level,
            "signer": self.signer,
            "certificateSha256": self.certificate_sha256,
            "issuerSha256": self.issuer_sha256,
            "signedAt": self.signed_at.isoformat(),
            "testSignature": self.test_signature,
            "algorithm": self.algorithm,
        }
        if self.stamp is not None:
            out["stamp"] = self.stamp
        return out


@dataclass(frozen=True)
class PdfaVerdict:
    """PDF/A-2b of a (possibly signed) file: verdict, findings, how it was checked."""

    ok: bool
    findings: tuple[str, ...]
    method: str  # "pikepdf" or "pikepdf+signature-rules", "+verapdf" when veraPDF judged too

    def to_json(self) -> dict:
        return {"ok": self.ok, "findings": list(self.findings), "method": self.method}


@dataclass(frozen=True)
class SignatureStatus:
    """One signature (``kind`` "signature") or document timestamp (``kind`` "timestamp").

    ``timestamp_at`` and ``ades_long_term`` belong to signatures and
    ``tsa_certificate_expires`` to document timestamps; ``to_json`` writes each kind's own
    keys only, as sohoa always has. ``revocation`` and ``revocation_source`` (see
    ``REVOCATION_STATUSES`` and ``REVOCATION_SOURCES``) describe the signer's chain, or the
    TSA's for a document timestamp."""

    field: str
    kind: str  # "signature" or "timestamp"
    subfilter: str
    level: str | None
    signer: str
    certificate_sha256: str
    signed_at: datetime | None  # Vietnam time
    intact: bool
    valid: bool
    whole_document_covered: bool
    covers_whole_file: bool
    chain_trusted: bool
    timestamp_ok: bool | None  # None: a signature without a signature timestamp
    test_signature: bool
    ok: bool
    messages_vi: tuple[str, ...] = ()
    messages_en: tuple[str, ...] = ()
    timestamp_at: datetime | None = None  # signatures: the signature timestamp, Vietnam time
    # signatures: pyHanko's AdES LTA indication ("PASSED", ...) when run: a second opinion beside ``ok``,
    # which may be INDETERMINATE years later while the signature holds as of its timestamp
    ades_long_term: str | None = None
    tsa_certificate_expires: datetime | None = None  # timestamps: not_after of the TSA certificate
    revocation: str = "unavailable"  # one of REVOCATION_STATUSES
    revocation_source: str = "none"  # one of REVOCATION_SOURCES

    def to_json(self) -> dict:
        out = {
            "field": self.field, "kind": self.kind, "subfilter": self.subfilter, "level": self.level,
            "signer": self.signer, "certificateSha256": self.certificate_sha256, "signedAt": _iso(self.signed_at),
        }
        if self.kind == "timestamp":
            out["tsaCertificateExpires"] = _iso(self.tsa_certificate_expires)
        else:
            out["timestampAt"] = _iso(self.timestamp_at)
        out.update({
            "intact": self.intact, "valid": self.valid, "wholeDocumentCovered": self.whole_document_covered,
            "coversWholeFile": self.covers_whole_file, "chainTrusted": self.chain_trusted,
            "timestampOk": self.timestamp_ok, "testSignature": self.test_signature,
            "revocation": self.revocation, "revocationSource": self.revocation_source,
        })
        if self.kind != "timestamp":
            out["adesLongTerm"] = self.ades_long_term
        out.update({"ok": self.ok, "messagesVi": list(self.messages_vi), "messagesEn": list(self.messages_en)})
        return out


@dataclass(frozen=True)
class PdfVerdict:
    """The verdict on one PDF: every signature and document timestamp, PDF/A-2b, and an
    overall ``ok``. The top-level signature fields describe the main (last non-timestamp)
    signature."""

    ok: bool
    intact: bool
    whole_document_covered: bool
    chain_trusted: bool
    timestamp_ok: bool
    pdfa_ok: bool
    pdfa_findings: tuple[str, ...]
    subfilter: str | None
    level: str | None
    signer: str | None
    signed_at: datetime | None  # Vietnam time
    test_signature: bool
    signatures: tuple[SignatureStatus, ...]
    messages_vi: tuple[str, ...]
    messages_en: tuple[str, ...]
    # the worst revocation status over every signature and document timestamp
    # ("revoked" > "unavailable" > "good" > "not-needed"; "unavailable" when there are none)
    revocation: str = "unavailable"
    revocation_policy: str = "hard"  # the policy the verdict was made under: "hard" or "soft"

    @property
    def main_signature(self) -> SignatureStatus | None:
        """The last signature that is not a document timestamp."""
        return next((s for s in reversed(self.signatures) if s.kind == "signature"), None)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "intact": self.intact,
            "wholeDocumentCovered": self.whole_document_covered,
            "chainTrusted": self.chain_trusted,
            "timestampOk": self.timestamp_ok,
            "pdfaOk": self.pdfa_ok,
            "pdfaFindings": list(self.pdfa_findings),
            "subfilter": self.subfilter,
            "level": self.level,
            "signer": self.signer,
            "signedAt": _iso(self.signed_at),
            "testSignature": self.test_signature,
            "revocation": self.revocation,
            "revocationPolicy": self.revocation_policy,
            "signatures": [s.to_json() for s in self.signatures],
            "messagesVi": list(self.messages_vi),
            "messagesEn": list(self.messages_en),
        }
