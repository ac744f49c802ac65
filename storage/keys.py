"""Object key layout: everything of a dossier lives under its code.

    dossiers/<code>/manifest.json                  written last: makes documents visible
    dossiers/<code>/manifests/<n>.json             every manifest version (write-once history)
    dossiers/<code>/originals/<sha256>.<ext>       citizen's bytes, unchanged (lossless master)
    dossiers/<code>/documents/<docId>.pdf          signed PDF/A-2b (renewals: <docId>.v2.pdf, ...)
    dossiers/<code>/text/<docId>.txt               OCR text, pages separated by form feeds
    dossiers/<code>/text/<docId>.words.json        OCR words with boxes, per page
    dossiers/<code>/events/<UTC time>-<kind>-<id>.json   a preservation event, write-once (time order)
    dossiers/<code>/legal-hold.json                a legal hold in force (pipeline.disposal)
    dossiers/<code>/disposal-pending.json          a disposal approved and under way
    dossiers/<code>/disposal.json                  the record a disposed dossier keeps (write-once)
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import UnsafeKey

PREFIX = "dossiers/"
# Dossier codes are validated against the regulation formats above this layer; here a code
# only has to be one safe path segment, so that no caller can make a key outside its dossier.
_SEGMENT = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


def dossier_prefix(code: str) -> str:
    if not _SEGMENT.fullmatch(code) or ".." in code:
        raise UnsafeKey(f"Mã hồ sơ không dùng được làm khóa lưu trữ: {code!r}", f"unsafe dossier code for a key: {code!r}")
    return f"{PREFIX}{code}/"


def manifest(code: str) -> str:
    return dossier_prefix(code) + "manifest.json"


LEGAL_HOLD, DISPOSAL_PENDING, DISPOSAL = "legal-hold.json", "disposal-pending.json", "disposal.json"


def disposal_pending(code: str) -> str:
    return dossier_prefix(code) + DISPOSAL_PENDING


def disposal_record(code: str) -> str:
    return dossier_prefix(code) + DISPOSAL


def disposal_marks(code: str) -> tuple[str, str]:
    """The keys that say a dossier was disposed of, or is being: where its manifest went by approval."""
    return disposal_record(code), disposal_pending(code)


def original(code: str, digest: str, ext: str) -> str:
    ext = "".join(c for c in ext.lower() if c.isalnum())[:8] or "bin"
    return f"{dossier_prefix(code)}originals/{digest}.{ext}"


def document_pdf(code: str, doc_id: str, version: int = 1) -> str:
    """The signed PDF; a timestamp renewal stores version 2, 3, ... beside it, never over it."""
    suffix = "" if version == 1 else f".v{version}"
    return f"{dossier_prefix(code)}documents/{doc_id}{suffix}.pdf"


def manifest_version(code: str, version: int) -> str:
    """Every manifest version, kept write-once: the dossier's history."""
    return f"{dossier_prefix(code)}manifests/{version:06d}.json"


def document_text(code: str, doc_id: str) -> str:
    return f"{dossier_prefix(code)}text/{doc_id}.txt"


def document_words(code: str, doc_id: str) -> str:
    return f"{dossier_prefix(code)}text/{doc_id}.words.json"


_EVENT_KIND = re.compile(r"[a-z][a-z-]{0,39}")


def dossier_events(code: str) -> str:
    return dossier_prefix(code) + "events/"


def dossier_event(code: str, at: datetime, kind: str, event_id: str) -> str:
    """A preservation event of the dossier; the name starts with the UTC time to the microsecond,
    fixed width, so that listing ``dossier_events`` (sorted) gives the events oldest first."""
    if at.tzinfo is None or not _EVENT_KIND.fullmatch(kind) or not re.fullmatch(r"[0-9a-f]{8,32}", event_id):
        raise UnsafeKey(f"Sự kiện bảo quản không hợp lệ: {kind!r}, {event_id!r}",
                        f"event key needs an aware time, a kind [a-z-] and a hex id: {at!r}, {kind!r}, {event_id!r}")
    stamp = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{dossier_events(code)}{stamp}-{kind}-{event_id}.json"


def code_of(key: str) -> str | None:
    """The dossier an object key belongs to, or None for an object outside the dossiers."""
    if not key.startswith(PREFIX) or "/" not in key[len(PREFIX):]:
        return None
    return key[len(PREFIX):].split("/", 1)[0]


def codes_from_keys(keys: list[str]) -> list[str]:
    return sorted({k[len(PREFIX):].split("/", 1)[0] for k in keys if k.endswith("/manifest.json")})


# Outside the dossiers: work in progress and deployment-wide objects.
#     work/pages/<k[:2]>/<k>.json|img     a finished page (result and archive image), by content key
#     system/<name>                       one per deployment (the development signing key)
#     system/audit-anchors/<UTC time>-<rows>.json   the access log's head, write-once (in time order)
_HEX = re.compile(r"[0-9a-f]{64}")


def page_result(cache_key: str, suffix: str) -> str:
    """A finished page, named by its content key: any worker can reuse it."""
    if not _HEX.fullmatch(cache_key) or suffix not in ("json", "img"):
        raise UnsafeKey(f"Khóa trang không hợp lệ: {cache_key!r}", f"unsafe page key: {cache_key!r}.{suffix!r}")
    return f"work/pages/{cache_key[:2]}/{cache_key}.{suffix}"


PAGE_RESULTS = "work/pages/"


def system(name: str) -> str:
    if not _SEGMENT.fullmatch(name) or ".." in name:
        raise UnsafeKey(f"Tên đối tượng hệ thống không hợp lệ: {name!r}", f"unsafe system key: {name!r}")
    return f"system/{name}"


AUDIT_ANCHORS = "system/audit-anchors/"


def audit_anchor(at: datetime, rows: int) -> str:
    """An anchor of the access log's head taken at ``at`` (timezone-aware) covering ``rows`` rows.
    The name starts with the UTC time to the microsecond, fixed width, so listing
    ``AUDIT_ANCHORS`` (sorted) returns the anchors oldest first."""
    if at.tzinfo is None or rows < 0:
        raise UnsafeKey(f"Thời điểm hoặc số dòng của mốc nhật ký không hợp lệ: {at!r}, {rows!r}",
                        f"anchor key needs an aware time and rows >= 0: {at!r}, {rows!r}")
    stamp = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{AUDIT_ANCHORS}{stamp}-{rows:012d}.json"
