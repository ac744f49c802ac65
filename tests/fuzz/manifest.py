"""Fuzz target ``manifest``: ``pipeline.manifest.loads``, what reads a stored manifest back (the
dossier's manifest.json and every version in its history), then the functions ingest calls on
what it returned.

Property: ``loads`` either refuses the bytes with ValueError (which the doors report as a
damaged manifest, IntegrityError) or returns a manifest whose dossier code is a safe key
segment, every object key it names a safe key under ``dossiers/<code>/``, every docId one of
the dossier's and every SHA-256 exactly 64 hex digits; on an accepted
manifest ``find_document``, ``next_sequence`` and ``next_version`` (what ingest calls next)
answer without an exception. Seeds are valid manifests of both
schema versions; the dictionary holds the schema's names so that mutants stay valid-ish."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.fuzz import Finding

PROPERTY = ("only ValueError; else the code is a safe key segment, every key a safe key under "
            "dossiers/CODE/, docIds and SHA-256 exact; find_document, next_sequence, next_version answer")
ENTRY_POINTS = "pipeline.manifest.loads, then find_document, next_sequence, next_version"
INSTRUMENT = ("pipeline.manifest", "jsonschema")  # the modules whose branches guide the fuzzer
DICTIONARY = [
    # names of the schema (a mutant that renames a field keeps its structure)
    '"schema"', '"sohoa.manifest/1"', '"sohoa.manifest/2"', '"dossierCode"', '"fileCode"', '"paperFileCode"',
    '"title"', '"maintenance"', '"mode"', '"totalDoc"', '"numberOfPage"', '"manifestVersion"',
    '"previousManifestSha256"', '"documents"', '"events"', '"docId"', '"sequence"', '"inputSha256"', '"pdf"',
    '"text"', '"words"', '"originals"', '"pdfVersions"', '"signature"', '"pages"', '"key"', '"sha256"',
    '"size"', '"at"', '"reason"', '"type"', '"filename"', '"unsigned"',
    # values and JSON's own tokens, escapes and number forms
    '"dossiers/"', '/originals/', '/documents/', '/text/', '..', '/', 'null', 'true', 'false', '[]', '{}',
    '[[[[[[[[', '{"a":', '\\n', '\\u0000', '\\u002f', '\\ud800', '\\"', '1e999', '-1', '0.5',
    '99999999999999999999', '"signed"', '"timestamp-renewal"',
]


def instrumented_imports() -> None:
    import jsonschema  # noqa: F401

    import pipeline.manifest  # noqa: F401


def test_one_input(data: bytes) -> None:
    from pipeline import manifest as mf
    from storage import keys
    from storage.base import check_key
    from storage.errors import UnsafeKey

    try:
        manifest = mf.loads(data)
    except ValueError:  # json's own errors, UnicodeDecodeError and the schema's are ValueErrors
        return
    code = manifest["dossierCode"]
    try:
        prefix = keys.dossier_prefix(code)
    except UnsafeKey:
        raise Finding(f"manifest accepted with a dossier code that is no safe key segment: {code!r}") from None
    for doc in manifest["documents"]:
        if not re.fullmatch(r"[0-9A-Z.-]+\.[0-9]{3,}", doc["docId"]) or not doc["docId"].startswith(code + "."):
            raise Finding(f"manifest accepted with docId {doc['docId']!r} in dossier {code!r}")
        for ref in (doc.get("pdf"), doc.get("text"), doc.get("words"), *doc.get("originals", []),
                    *doc.get("pdfVersions", [])):
            if not ref:
                continue
            if not re.fullmatch(r"[0-9a-f]{64}", ref["sha256"]):
                raise Finding(f"manifest accepted with SHA-256 {ref['sha256']!r}")
            try:
                check_key(ref["key"])
            except UnsafeKey:
                raise Finding(f"manifest accepted naming an unsafe key: {ref['key']!r}") from None
            if not ref["key"].startswith(prefix):
                raise Finding(f"manifest accepted naming a key outside {prefix}: {ref['key']!r}")
    mf.find_document(manifest, "0" * 64)
    mf.next_sequence(manifest)
    mf.next_version(manifest, data)


# --------------------------------------------------------------------------- seeds

def _ref(code: str, folder: str, name: str, n: int) -> dict:
    return {"key": f"dossiers/{code}/{folder}/{name}", "sha256": f"{n:064x}", "size": 1000 + n}


def _document(code: str, sequence: int, pages: int, now: datetime, renewed: bool = False) -> dict:
    doc_id = f"{code}.{sequence:03d}"
    pdf = _ref(code, "documents", f"{doc_id}.pdf", sequence)
    versions = [{**pdf, "at": now.isoformat(), "reason": "signed"}]
    if renewed:
        versions.append({**_ref(code, "documents", f"{doc_id}.v2.pdf", 90 + sequence),
                         "at": (now + timedelta(days=700)).isoformat(), "reason": "timestamp-renewal"})
    return {
        "docId": doc_id, "sequence": sequence, "title": "Tờ khai đăng ký hộ kinh doanh", "created": now.isoformat(),
        "numberOfPage": pages, "format": "PDF/A-2b", "language": "vi", "confidenceLevel": "02",
        "inputSha256": f"{sequence + 7:064x}",
        "originals": [{**_ref(code, "originals", f"{n + 40:064x}.jpg", n + 40), "filename": f"trang{n}.jpg"}
                      for n in range(1, pages + 1)],
        "pdf": {k: versions[-1][k] for k in ("key", "sha256", "size")}, "text": _ref(code, "text", f"{doc_id}.txt", 20 + sequence),
        "words": _ref(code, "text", f"{doc_id}.words.json", 30 + sequence),
        "signature": {"subfilter": "ETSI.CAdES.detached", "level": "B-LT", "signedAt": now.isoformat(),
                      "algorithm": "sha256_rsa"},
        "pages": [{"number": n, "source": {"file": f"trang{n}.jpg", "page": 1, "sha256": f"{n + 40:064x}"},
                   "width": 2480, "height": 3508, "dpi": [300, 300], "dpiSource": "header", "colorMode": "gray",
                   "orientation": 0, "skewDeg": -0.09, "ocrConfidence": 91.5, "flags": ["blank"] if n == 2 else [],
                   "review": [{"line": 3, "text": "Cộng hòa", "reason": "low-confidence", "conf": 41.0,
                               "box": [10, 20, 300, 60]}]} for n in range(1, pages + 1)],
        "pdfVersions": versions,
    }


def seeds() -> dict[str, bytes]:
    from pipeline import manifest as mf

    now = datetime(2026, 12, 1, 19, 30, tzinfo=timezone(timedelta(hours=7)))
    out = {}
    for name, code, docs, legacy in (("ordinary", "H23.50-261201-0001", 2, False),
                                     ("central", "M01.001.01-260201-DV0001", 1, False),
                                     ("archive", "000.00.12.H15-2019-0123", 1, False),
                                     ("empty", "H15.50.05.13-261008-0975", 0, False),
                                     ("legacy", "H23.50-261201-0002", 1, True)):
        manifest = mf.new(code, "Hồ sơ đăng ký hộ kinh doanh", now, maintenance="06")
        for sequence in range(1, docs + 1):
            manifest = mf.with_document(manifest, _document(code, sequence, 2, now, renewed=sequence == 2), now)
        if legacy:
            manifest = {**manifest, "schema": "sohoa.manifest/1"}
            for doc in manifest["documents"]:
                doc.pop("pdfVersions")
                for page in doc["pages"]:
                    page["skew_deg"] = page.pop("skewDeg")
        else:
            manifest = mf.next_version(manifest, None)
        data = mf.dumps(manifest)
        mf.loads(data)  # a seed the reader refuses would teach the fuzzer nothing
        out[f"{name}.json"] = data
        out[f"{name}-compact.json"] = json.dumps(mf.loads(data), separators=(",", ":")).encode()
    return out


def write_seeds(directory: Path) -> int:
    for name, data in seeds().items():
        (directory / name).write_bytes(data)
    return len(seeds())
