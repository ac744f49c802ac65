"""A dossier's preservation events (PREMIS 3 events): what was done to it, when, by whom or by
what, and with what outcome.

Each event is one write-once JSON object under ``dossiers/<code>/events/`` (``storage.keys``),
so events travel with the dossier (replication, restore, packaging) and no later action can
rewrite them. The manifest history already records ingestion, signing and timestamp renewal;
``from_manifest`` states those as events. Actions that leave the manifest as it is record their
own event here: fixity checks, signature validation, replication, packaging, disposal. An action
records its event on the failure path too, before it raises (as Archivematica's verify_aip does).

An event: ``{"id", "type", "at", "outcome" ("success" | "failure" | "warning"), "detail",
"outcomeDetail", "agent": {"software", "actor"}, "objects": [object keys]}``; ``type`` is the
label of the Library of Congress PREMIS event type vocabulary (``TYPES``).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Sequence

from storage import keys
from storage.base import ObjectStore

from . import audit

# PREMIS event type labels (id.loc.gov/vocabulary/preservation/eventType) and the short kind
# that names the stored object.
TYPES = {
    "ingestion": "ingestion",
    "digital signature generation": "signing",
    "digital signature validation": "validation",
    "fixity check": "fixity",
    "replication": "replication",
    "information package creation": "packaging",
    "deletion": "disposal",
    "metadata modification": "metadata",
    "policy assignment": "hold",
}
OUTCOMES = ("success", "failure", "warning")


def software() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"sohoa {version('sohoa')}"
    except PackageNotFoundError:
        return "sohoa"


def event(event_type: str, outcome: str, *, detail: str = "", outcome_detail: str = "",
          objects: Sequence[str] = (), at: datetime | None = None, actor: str | None = None) -> dict:
    """A new event (not stored); pure but for its id and, unless given, the time and actor."""
    if event_type not in TYPES or outcome not in OUTCOMES:
        raise ValueError(f"unknown PREMIS event type or outcome: {event_type!r}, {outcome!r}")
    # to the microsecond: the stored events are listed in the order of their keys' times
    return {"id": uuid.uuid4().hex, "type": event_type, "at": (at or datetime.now(audit.VN)).isoformat(),
            "outcome": outcome, "detail": detail, "outcomeDetail": outcome_detail,
            "agent": {"software": software(), "actor": actor or audit.current_actor()},
            "objects": list(objects)}


def record(store: ObjectStore, code: str, event_type: str, outcome: str, **fields) -> dict:
    """Make an event and store it with the dossier (write-once); returns it."""
    new = event(event_type, outcome, **fields)
    key = keys.dossier_event(code, datetime.fromisoformat(new["at"]), TYPES[event_type], new["id"])
    store.put(key, json.dumps(new, ensure_ascii=False, sort_keys=True).encode("utf-8"),
              "application/json", retain=True)
    return new


def recorded(store: ObjectStore, code: str) -> list[dict]:
    """The dossier's stored events, oldest first (each read with the SHA-256 the store keeps)."""
    out = []
    for key in store.list(keys.dossier_events(code)):
        info = store.stat(key)
        out.append(json.loads(store.get(key, info.sha256 if info else None)))
    return out


# the manifest's own event types (pipeline.manifest, pipeline.renewal) as PREMIS event types
# (a document timestamp is a signature of the document: a renewal is a signature generation)
MANIFEST_TYPES = {"ingest": "ingestion", "change": "metadata modification",
                  "timestamp-renewal": "digital signature generation"}


def from_manifest(manifest: dict) -> list[dict]:
    """The events the manifest records (ingestion, metadata changes, timestamp renewals) and each
    document's signing (its signature record), as PREMIS events, oldest first. Their ids are
    derived from what they state, so stating them twice gives the same events."""
    docs = {d.get("docId"): d for d in manifest.get("documents", [])}
    out = []
    for old in manifest.get("events", []):
        event_type = MANIFEST_TYPES.get(old.get("type"))
        if event_type is None or not old.get("at"):
            continue
        doc = docs.get(old.get("docId")) or {}
        objects = [o["key"] for o in (*doc.get("originals", []), *doc.get("handedIn", []))
                   if o.get("key")] if event_type == "ingestion" else []
        objects += [(doc.get("pdf") or {}).get("key")] if doc else []
        out.append(_stated(event_type, old["at"], " ".join(filter(None, (old.get("docId"), old.get("detail")))),
                           [k for k in objects if k], old.get("outcome", "success")))
    for doc_id, doc in docs.items():
        signature = doc.get("signature") or {}
        versions = doc.get("pdfVersions") or [doc.get("pdf") or {}]
        if signature.get("signedAt"):
            detail = f"{doc_id}: PAdES {signature.get('level', '')} {signature.get('algorithm') or ''}"
            out.append(_stated("digital signature generation", signature["signedAt"], detail.strip(),
                               [versions[0].get("key")] if versions[0].get("key") else []))
    return sorted(out, key=_when)


def _when(event: dict) -> datetime:
    """The event's time, for ordering (times are written with their offsets, not all the same)."""
    at = datetime.fromisoformat(event["at"])
    return at if at.tzinfo else at.replace(tzinfo=audit.VN)


def _stated(event_type: str, at: str, detail: str, objects: list, outcome: str = "success") -> dict:
    stable = uuid.uuid5(uuid.NAMESPACE_URL, f"sohoa:{event_type}:{at}:{detail}").hex
    return {"id": stable, "type": event_type, "at": at, "outcome": outcome, "detail": detail,
            "outcomeDetail": "", "agent": {"software": "sohoa", "actor": None}, "objects": objects}


def history(store: ObjectStore, code: str, manifest: dict) -> list[dict]:
    """Every event of the dossier: those the manifest states and those stored, oldest first."""
    return sorted(from_manifest(manifest) + recorded(store, code), key=_when)


def record_verification(store: ObjectStore, code: str, verdicts: Sequence, failure: str | None = None) -> None:
    """The fixity check and the signature validation a verification of the dossier made: from
    its verdicts (``pipeline.models.DocumentVerdict``), or, when it could not judge the dossier,
    one failed fixity check saying why (``failure``)."""
    if failure is not None:
        record(store, code, "fixity check", "failure", detail="dossier verification", outcome_detail=failure)
        return
    fixity_bad = [v for v in verdicts if not (v.checks.get("sha256", False) and v.checks.get("size", False))]
    record(store, code, "fixity check", "failure" if fixity_bad or not verdicts else "success",
           detail=f"SHA-256 and size of {len(verdicts)} stored PDF(s) against the manifest",
           outcome_detail="; ".join(v.message_en for v in fixity_bad))
    signed_bad = [v for v in verdicts if not v.ok]
    record(store, code, "digital signature validation", "failure" if signed_bad or not verdicts else "success",
           detail=f"PAdES signatures, chain, timestamps and PDF/A of {len(verdicts)} document(s)",
           outcome_detail="; ".join(v.message_en for v in signed_bad))
