"""The dossier manifest (docs/manifest.md): pure functions from facts to JSON."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from storage import keys
from storage.base import check_key
from storage.errors import UnsafeKey

from .errors import Conflict
from .models import PageResult

SCHEMA = "sohoa.manifest/2"
LEGACY_SCHEMAS = ("sohoa.manifest/1",)  # read, and written as the current schema on the next change
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


def new(code: str, title: str, now: datetime, paper_file_code: str | None = None,
        maintenance: str | None = None, mode: str = "01") -> dict:
    stamp = now.isoformat()
    return {
        "schema": SCHEMA, "dossierCode": code, "fileCode": code, "paperFileCode": paper_file_code or code,
        "title": title, "language": "vi", "format": "PDF/A-2b", "confidenceLevel": "02",
        "maintenance": maintenance, "mode": mode,
        "startDate": now.date().isoformat(), "endDate": now.date().isoformat(),
        "totalDoc": 0, "numberOfPage": 0, "created": stamp, "updated": stamp,
        "documents": [], "events": [],
    }


def with_dossier_fields(manifest: dict, maintenance: str | None, paper_file_code: str | None,
                        now: datetime | None = None, allow_change: bool = False,
                        paper_dates: tuple[str, str] | None = None) -> dict:
    """The manifest with the operator's maintenance code, paper file code and paper file dates
    applied.

    A new dossier takes them as given. Once the dossier holds a document, its paper file code
    (the dossier code unless one was given) is recorded, and so are a maintenance code and the
    paper file's dates once set: a different value is refused, since it decides retention and the
    link to the paper file, unless ``allow_change``, and then the change is an event of the
    manifest. A maintenance code or paper dates not set yet are simply taken. Paper dates
    (``datesFrom`` "paper") are the dossier's startDate and endDate; without them those are the
    days its documents were digitised.
    """
    settled = bool(manifest["documents"])
    updates, changes = {}, []
    if maintenance is not None and maintenance != manifest["maintenance"]:
        if manifest["maintenance"] is not None:
            _recorded_change(manifest, allow_change, changes,
                             f"đã có thời hạn bảo quản {manifest['maintenance']}; không đổi thành {maintenance} khi "
                             "thêm tài liệu", "maintenance code already set",
                             f"maintenance: {manifest['maintenance']} -> {maintenance}")
        updates["maintenance"] = maintenance
    if paper_file_code is not None and paper_file_code != manifest["paperFileCode"]:
        if settled:
            _recorded_change(manifest, allow_change, changes,
                             f"đã ghi mã hồ sơ giấy {manifest['paperFileCode']}; không đổi thành {paper_file_code}",
                             "paper file code already recorded",
                             f"paperFileCode: {manifest['paperFileCode']} -> {paper_file_code}")
        updates["paperFileCode"] = paper_file_code
    recorded = (manifest["startDate"], manifest["endDate"]) if manifest.get("datesFrom") == "paper" else None
    if paper_dates is not None and tuple(paper_dates) != recorded:
        if recorded:
            shown, wanted = f"{recorded[0]}..{recorded[1]}", f"{paper_dates[0]}..{paper_dates[1]}"
            _recorded_change(manifest, allow_change, changes,
                             f"đã ghi thời gian của hồ sơ giấy {shown}; không đổi thành {wanted}",
                             "paper file dates already recorded", f"paper dates: {shown} -> {wanted}")
        updates.update(startDate=paper_dates[0], endDate=paper_dates[1], datesFrom="paper")
    if changes:
        stamp = (now or datetime.now().astimezone()).isoformat()
        updates["events"] = [*manifest["events"], {"at": stamp, "type": "change", "outcome": "success",
                                                    "detail": "; ".join(changes)}]
    return {**manifest, **updates}


def _recorded_change(manifest: dict, allow_change: bool, changes: list[str], refused_vi: str, refused_en: str,
                     change: str) -> None:
    """A recorded dossier value about to change: refused (Conflict) unless ``allow_change``, then noted."""
    if not allow_change:
        code = manifest["dossierCode"]
        raise Conflict(f"Hồ sơ {code} {refused_vi} (nếu thật sự cần đổi: 'sohoa ingest {code} … --change-recorded')",
                       refused_en)
    changes.append(change)


def input_digest(source_hashes: list[str]) -> str:
    """The re-ingest key: the same files in the same order give the same document."""
    return hashlib.sha256("\n".join(source_hashes).encode()).hexdigest()


def find_reordered(manifest: dict, source_hashes: list[str]) -> dict | None:
    """The document made of these very files in another order, if the dossier holds one."""
    wanted = sorted(source_hashes)
    return next((d for d in manifest["documents"] if d.get("originals")
                 and [o.get("sha256") for o in d["originals"]] != source_hashes
                 and sorted(o.get("sha256") or "" for o in d["originals"]) == wanted), None)


def find_document(manifest: dict, digest: str) -> dict | None:
    # inputSha256 is optional in the schema (a document imported or written by sohoa.manifest/1
    # may lack it): such a document is never the same input again
    return next((d for d in manifest["documents"] if d.get("inputSha256") == digest), None)


def next_sequence(manifest: dict) -> int:
    return max((d["sequence"] for d in manifest["documents"]), default=0) + 1


def document_objects(doc: dict) -> list[dict]:
    """Every stored object a document entry names (PDF and its versions, text, words, originals,
    the files handed in whose pages were rearranged, and the abandoned PDFs of attempts stopped
    before their manifest), as recorded."""
    return [ref for ref in (doc.get("pdf"), doc.get("text"), doc.get("words"), *doc.get("originals", []),
                            *doc.get("handedIn", []), *doc.get("pdfVersions", []), *doc.get("abandoned", [])) if ref]


def page_entry(number: int, source: dict, result: PageResult) -> dict:
    entry = {"number": number, "source": source, "width": result.width, "height": result.height,
             "dpi": list(result.dpi), "dpiSource": result.dpi_source, "colorMode": result.color_mode,
             "orientation": result.orientation, "skewDeg": round(result.skew_deg, 3),
             "ocrConfidence": round(result.confidence, 2), "flags": list(result.flags)}
    if result.placement:  # how the PDF draws the scan on the page (ocr.page.Placement); absent: as it is
        entry["placement"] = dict(result.placement)
    if result.review:  # lines for a person to read against the page (ocr.review); absent: none
        entry["review"] = [dict(line) for line in result.review]
    return entry


def closing_day(manifest: dict, now: datetime | None = None) -> str | None:
    """The day (ISO) the dossier's retention counts from: its paper file's last date, else the day
    its last document came in (``now`` when one is coming in), else its last update. The
    write-once lock of each object it stores ends when that period does (metadata ``closed``,
    storage.retention)."""
    if manifest.get("datesFrom") != "paper" and now is not None:
        return now.date().isoformat()
    for day in (manifest.get("endDate"), manifest.get("updated"), manifest.get("created")):
        try:  # the first that is a day (a package's manifest may carry anything)
            return date.fromisoformat(str(day or "")[:10]).isoformat()
        except ValueError:
            continue
    return None


def lock_metadata(manifest: dict, now: datetime | None = None) -> dict:
    """The object metadata that sets how long the store's write-once lock holds an object of the
    dossier (storage.retention): its maintenance code and ``closing_day``."""
    return {"maintenance": manifest.get("maintenance"), "closed": closing_day(manifest, now)}


def with_document(manifest: dict, document: dict, now: datetime) -> dict:
    """A new manifest with the document appended and the dossier totals updated."""
    docs = [*manifest["documents"], document]
    end = closing_day(manifest, now)
    return {**manifest, "documents": docs, "totalDoc": len(docs),
            "numberOfPage": sum(d["numberOfPage"] for d in docs), "endDate": end,
            "updated": now.isoformat(), "title": manifest["title"] or document["title"],
            "events": [*manifest["events"], {"at": now.isoformat(), "type": "ingest", "docId": document["docId"],
                                             "outcome": "success",
                                             "detail": f"{document['numberOfPage']} trang"}]}


def dumps(manifest: dict) -> bytes:
    return json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=False).encode("utf-8")


def loads(data: bytes) -> dict:
    """A stored manifest, checked against the JSON Schema and against its own dossier: every
    docId belongs to the dossier and every key lies under the dossier's folder. ValueError
    otherwise; nothing of a manifest reaches a path before this check.

    The schema's patterns are searched with ``re.search``, where ``$`` also matches before a
    final newline, and its code pattern allows '..': the code, docIds, keys and SHA-256 are
    checked again here in full (findings of tests/fuzz/manifest.py)."""
    try:
        manifest = json.loads(data)
        problems = sorted(_validator().iter_errors(manifest), key=lambda e: list(e.absolute_path))
    except RecursionError:  # JSON nested deeper than the interpreter's recursion limit
        raise ValueError("manifest nested too deeply to be a manifest") from None
    if problems:
        where = "/".join(str(p) for p in problems[0].absolute_path) or "(root)"
        raise ValueError(f"manifest does not match {SCHEMA}: {where}: {problems[0].message}")
    code = manifest["dossierCode"]
    try:
        prefix = keys.dossier_prefix(code)
    except UnsafeKey:
        raise ValueError(f"dossierCode {code!r} is not a dossier code") from None
    previous = manifest.get("previousManifestSha256")
    if previous is not None and not _SHA256.fullmatch(previous):
        raise ValueError(f"previousManifestSha256 {previous!r} is not 64 hex digits")
    for doc in manifest["documents"]:
        if not doc["docId"].startswith(code + ".") or not _DOC_ID.fullmatch(doc["docId"]):
            raise ValueError(f"docId {doc['docId']!r} is not a document of {code}")
        if "inputSha256" in doc and not _SHA256.fullmatch(doc["inputSha256"]):
            raise ValueError(f"inputSha256 {doc['inputSha256']!r} is not 64 hex digits")
        for ref in document_objects(doc):
            if not ref["key"].startswith(prefix):
                raise ValueError(f"key {ref['key']!r} lies outside dossier {code}")
            try:
                check_key(ref["key"])
            except UnsafeKey:
                raise ValueError(f"key {ref['key']!r} is not a safe object key") from None
            if not _SHA256.fullmatch(ref["sha256"]):
                raise ValueError(f"SHA-256 {ref['sha256']!r} of {ref['key']!r} is not 64 hex digits")
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")
_DOC_ID = re.compile(r"[0-9A-Z][0-9A-Z.-]*\.[0-9]{3,}")


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def next_version(manifest: dict, previous: bytes | None) -> dict:
    """The manifest as the next version of the dossier's history: its number, and the SHA-256
    of the version before it (None for the first), so that no version can be edited or dropped
    unseen."""
    before = loads(previous) if previous is not None else None
    number = (before.get("manifestVersion", 0) if before else 0) + 1
    return {**manifest, "schema": SCHEMA, "manifestVersion": number,
            "previousManifestSha256": hashlib.sha256(previous).hexdigest() if previous is not None else None}
