"""E-ARK SIP packages of a dossier (CSIP 2.1 / SIP 2.1), for hand-over to the archive, and their re-import.

``build_sip(store, code, out_dir)`` writes ``out_dir/<code>/``, named by the dossier code (the
package's OBJID; the code never changes), read from the object store with every object's
SHA-256 checked against the manifest (``store.get(key, sha256)``)::

    METS.xml                                   package METS: header, dmdSecs, amdSec, fileSec, structMap
    metadata/descriptive/dossier.xml           TT 05/2025 fields of the dossier and each document
    metadata/descriptive/manifest.json         the dossier's current manifest, byte for byte
    metadata/preservation/premis.xml           PREMIS 3: an object per file (SHA-256 fixity), events, agents
    metadata/preservation/manifests/<n>.json   every manifest version (the write-once history)
    metadata/preservation/events/<name>.json   every event stored with the dossier, byte for byte
    documentation/README.txt                   what the package holds and how to check it (vi, en)
    schemas/sohoa-dossier.xsd                  the schema of dossier.xml
    schemas/sohoa-manifest.schema.json         the JSON Schema of the manifests
    representations/rep1/METS.xml              representation METS: every data file with its SHA-256
    representations/rep1/data/<path>           object ``dossiers/<code>/<path>``: originals (the citizen's
                                               bytes), every signed PDF/A version, OCR text, OCR words

Every file but the two METS documents is listed with SIZE, CHECKSUM and CHECKSUMTYPE="SHA-256"
in a METS document (the representation METS in the package METS). The package is written to a
hidden sibling directory and renamed into place at the end: a failure leaves no half package,
and an existing package is never overwritten.

``import_sip(store, sip_dir)`` is the reverse. It checks every file the METS documents list
(present, same size, same SHA-256), refuses files they do not list, paths that leave the
package, a manifest history that does not chain, and a manifest naming an object the package
does not hold, all before storing anything, and names each file at fault. Then it puts the
objects back under their keys (``storage.keys``) with the content types, metadata and
write-once flags ingest gives them, the manifest history next, and ``manifest.json`` last, so
that the dossier becomes visible whole, with the same bytes: its signatures verify as before. A
dossier already in the store is refused unless it holds exactly this manifest. The search index
is not touched (``sohoa reindex`` rebuilds it from the store).

The XML is written with lxml, not metsrw: metsrw 0.7 writes Archivematica's METS (structMap
TYPE "physical" LABEL "Archivematica default", no IDs on fileSec and fileGrp, no ``csip:``
attributes, mdRef without SIZE/CREATED/CHECKSUM), which CSIP refuses, and it has no place for
the CSIP header agents. Checking follows bagit's model: every problem of a package (missing,
changed, unexpected) is collected and reported at once. Where the reference validator
(eark-validator 1.1.3) reads the CSIP rules differently from the text of the specification,
the package meets the validator: every fileGrp carries ``csip:CONTENTINFORMATIONTYPE`` "OTHER"
(its CSIP63), the structMap's "Representations" division points to the representation file
group and holds the "Representations/rep1" division with its ``mptr`` (its CSIP103-109), and
the agency is the package's IPOWNER agent, since it requires every CREATOR agent to be software
(its CSIP12-16). Its SIP14 contradicts its CSIP15/CSIP16 and the METS schema on the software
agent's note, so no METS-valid package passes it; ``scripts/eark_validate.py`` reports that one
finding as waived, and every other as an error.

The builders of the XML trees (``dossier_xml``, ``premis_xml``, ``representation_mets``,
``package_mets``, ``readme``) and the readers (``mets_entries``, ``package_problems``) are pure;
reading the store and the file system happens in ``build_sip`` and ``import_sip`` only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Sequence

from lxml import etree

from storage import keys
from storage.base import ObjectStore
from storage.errors import NotFound as ObjectNotFound

from . import dossier, manifest as mf
from .audit import now_vn
from .errors import Conflict, DossierCodeError, IntegrityError
from .repository import refuse_if_disposed, require_manifest

METS_NS = "http://www.loc.gov/METS/"
XLINK_NS = "http://www.w3.org/1999/xlink"
CSIP_NS = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
SIP_NS = "https://DILCIS.eu/XML/METS/SIPExtensionMETS"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PREMIS_NS = "http://www.loc.gov/premis/v3"
DOSSIER_NS = "urn:sohoa:ns:dossier:1"

SIP_PROFILE = "https://earksip.dilcis.eu/profile/E-ARK-SIP.xml"
METS_SCHEMA_LOCATION = " ".join([
    METS_NS, "http://www.loc.gov/standards/mets/mets.xsd",
    XLINK_NS, "http://www.loc.gov/standards/mets/xlink.xsd",
    CSIP_NS, "https://earkcsip.dilcis.eu/schema/DILCISExtensionMETS.xsd",
    SIP_NS, "https://earksip.dilcis.eu/schema/DILCISExtensionSIPMETS.xsd"])
PREMIS_SCHEMA_LOCATION = f"{PREMIS_NS} https://www.loc.gov/standards/premis/premis.xsd"
CONTENT_CATEGORY = "Text"                          # CSIP content category (mets/@TYPE)
CONTENT_INFORMATION_TYPE = "TT05/2025/TT-BNV"      # csip:OTHERCONTENTINFORMATIONTYPE
DESCRIPTIVE_MDTYPE = "TT05/2025/TT-BNV"
MANIFEST_MDTYPE = mf.SCHEMA.split("/")[0]          # "sohoa.manifest"
REPRESENTATION = "rep1"
PDFA_PRONOM = "fmt/477"                            # PRONOM: PDF/A-2b

METS_FILE = "METS.xml"
REP_DIR = f"representations/{REPRESENTATION}"
DATA_DIR = f"{REP_DIR}/data"
DESCRIPTIVE = "metadata/descriptive/dossier.xml"
MANIFEST = "metadata/descriptive/manifest.json"
PREMIS = "metadata/preservation/premis.xml"
HISTORY_DIR = "metadata/preservation/manifests"
EVENTS_DIR = "metadata/preservation/events"      # the events stored with the dossier (pipeline.events)
EVENT_MDTYPE = "sohoa.event"
_EVENT_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[a-z][a-z-]{0,39}-[0-9a-f]{8,32}\.json")
README = "documentation/README.txt"
DOSSIER_XSD = "schemas/sohoa-dossier.xsd"
MANIFEST_SCHEMA = "schemas/sohoa-manifest.schema.json"


# --------------------------------------------------------------------------- the files of a package

@dataclass(frozen=True)
class PackedFile:
    """One file of the package: its path from the package root, its bytes' SHA-256 and size,
    and, for a dossier object, its key in the store."""

    path: str
    sha256: str
    size: int
    mimetype: str
    created: str
    kind: str                       # original, pdf, text, words, manifest, descriptive, ...
    key: str | None = None
    doc_ids: tuple[str, ...] = ()
    format_name: str | None = None
    original_name: str | None = None
    source_paths: tuple[str, ...] = ()   # the files it was made from (PREMIS derivation)


@dataclass(frozen=True)
class DossierObject:
    """An object the manifest names, with what the store and the package need of it."""

    key: str
    sha256: str
    size: int
    kind: str
    mimetype: str
    created: str
    doc_ids: tuple[str, ...] = ()
    original_name: str | None = None
    version: int | None = None
    reason: str | None = None
    source_keys: tuple[str, ...] = ()
    store_metadata: dict = field(default_factory=dict, compare=False)
    retain: bool = False


def data_path(code: str, key: str) -> str:
    """Where object ``key`` of dossier ``code`` lies in the package: its path below the dossier's
    folder, under the representation's data folder."""
    prefix = keys.dossier_prefix(code)
    if not key.startswith(prefix):
        raise IntegrityError(f"Đối tượng {key} không thuộc hồ sơ {code}", f"key {key!r} lies outside dossier {code}")
    return f"{DATA_DIR}/{key[len(prefix):]}"


def history_path(version: int) -> str:
    return f"{HISTORY_DIR}/{version:06d}.json"


def _version_of(doc_id: str, key: str) -> int:
    name = key.rsplit("/", 1)[1]
    m = re.fullmatch(re.escape(doc_id) + r"(?:\.v([0-9]+))?\.pdf", name)
    return int(m[1]) if m and m[1] else 1


def dossier_objects(manifest: dict) -> list[DossierObject]:
    """Every object the manifest names, each once, in document order: originals, every PDF
    version (the current one included), OCR text, OCR words. With the content type, metadata and
    write-once flag ingest stores it with (``pipeline.ingest``, ``pipeline.renewal``)."""
    code = manifest["dossierCode"]
    lock = mf.lock_metadata(manifest)  # until the dossier is due
    found: dict[str, DossierObject] = {}

    def add(obj: DossierObject) -> None:
        if obj.key in found:
            before = found[obj.key]
            if before.sha256 != obj.sha256:
                raise IntegrityError(f"Manifest của hồ sơ {code} ghi hai mã băm khác nhau cho {obj.key}",
                                     f"manifest names {obj.key} with two SHA-256 values")
            found[obj.key] = replace(before, doc_ids=tuple(dict.fromkeys(before.doc_ids + obj.doc_ids)))
        else:
            found[obj.key] = obj

    for doc in manifest["documents"]:
        doc_id = doc["docId"]
        created = doc.get("created") or manifest.get("created") or ""
        meta = {"dossier": code, "doc-id": doc_id}
        originals = [o["key"] for o in doc.get("originals", [])]
        for o in doc.get("originals", []):
            add(DossierObject(o["key"], o["sha256"], o["size"], "original", o.get("mediaType") or "application/octet-stream",
                              created, (doc_id,), o.get("filename"),
                              store_metadata={"dossier": code, "kind": "original",
                                              "filename": o.get("filename")} | lock, retain=True))
        for o in doc.get("handedIn", []):  # a file handed in whose pages the originals hold rearranged
            add(DossierObject(o["key"], o["sha256"], o["size"], "original", o.get("mediaType") or "application/octet-stream",
                              created, (doc_id,), o.get("filename"),
                              store_metadata={"dossier": code, "kind": "handed-in",
                                              "filename": o.get("filename")} | lock, retain=True))
        versions = list(doc.get("pdfVersions") or [])
        if not any(v["key"] == doc["pdf"]["key"] for v in versions):
            versions.append({**doc["pdf"], "at": created, "reason": "signed" if doc.get("signature") else "stored"})
        previous: tuple[str, ...] = tuple(originals)
        for v in versions:
            add(DossierObject(v["key"], v["sha256"], v["size"], "pdf", "application/pdf", v.get("at") or created,
                              (doc_id,), version=_version_of(doc_id, v["key"]), reason=v.get("reason"),
                              source_keys=previous,
                              store_metadata=meta | {"kind": "pdf"} | lock, retain=True))
            previous = (v["key"],)
        for kind, mimetype in (("text", "text/plain"), ("words", "application/json")):
            if doc.get(kind):
                ref = doc[kind]
                add(DossierObject(ref["key"], ref["sha256"], ref["size"], kind, mimetype, created, (doc_id,),
                                  source_keys=tuple(originals), store_metadata=meta | {"kind": kind}))
    return list(found.values())


STORE_CONTENT_TYPE = {"text": "text/plain; charset=utf-8"}


# --------------------------------------------------------------------------- XML: small helpers

def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _sub(parent, ns: str, name: str, text: str | None = None, **attrib) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name), {k: v for k, v in attrib.items() if v is not None})
    if text is not None:
        el.text = str(text)
    return el


def xml_id(prefix: str, text: str) -> str:
    """An xml:ID (NCName) from a prefix and a path or code: characters other than letters,
    digits, '.', '-' and '_' become '_'."""
    return prefix + "-" + re.sub(r"[^A-Za-z0-9._-]", "_", text)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --------------------------------------------------------------------------- descriptive metadata

DOSSIER_FIELDS = ("fileCode", "dossierCode", "paperFileCode", "title", "maintenance", "mode", "language",
                  "startDate", "endDate", "totalDoc", "numberOfPage", "format", "confidenceLevel",
                  "created", "updated")
DOCUMENT_FIELDS = ("docId", "sequence", "title", "created", "numberOfPage", "format", "language",
                   "confidenceLevel", "inputSha256")
SIGNATURE_FIELDS = ("signer", "signedAt", "level", "subfilter", "algorithm", "certificateSha256",
                    "issuerSha256", "testSignature")


def agency_code(code: str) -> str | None:
    """The agency code a dossier code begins with (QĐ 20/2020), None for a code of no known format."""
    try:
        return dossier.parse_key(code)["agency"]
    except DossierCodeError:
        return None


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dossier_xml(manifest: dict, objects: list[DossierObject], *, agency: str | None = None) -> etree._Element:
    """The dossier's TT 05/2025 metadata as the manifest records it (fields it lacks are left
    out), each document's, and where each document's files lie in the package."""
    code = manifest["dossierCode"]
    root = etree.Element(_q(DOSSIER_NS, "dossier"), nsmap={None: DOSSIER_NS}, schema=manifest.get("schema", mf.SCHEMA))
    for name in DOSSIER_FIELDS[:3]:
        if manifest.get(name) is not None:
            _sub(root, DOSSIER_NS, name, _text(manifest[name]))
    if agency_code(code):
        _sub(root, DOSSIER_NS, "agencyCode", agency_code(code))
    if agency:
        _sub(root, DOSSIER_NS, "agency", agency)
    for name in DOSSIER_FIELDS[3:]:
        if manifest.get(name) is not None:
            _sub(root, DOSSIER_NS, name, _text(manifest[name]))
    docs = _sub(root, DOSSIER_NS, "documents")
    for doc in manifest["documents"]:
        el = _sub(docs, DOSSIER_NS, "document")
        for name in DOCUMENT_FIELDS:
            if doc.get(name) is not None:
                _sub(el, DOSSIER_NS, name, _text(doc[name]))
        if doc.get("signature"):
            sign = _sub(el, DOSSIER_NS, "inforSign")
            for name in SIGNATURE_FIELDS:
                if doc["signature"].get(name) is not None:
                    _sub(sign, DOSSIER_NS, name, _text(doc["signature"][name]))
        if doc.get("unsigned"):
            _sub(el, DOSSIER_NS, "unsigned", "true")
        for obj in objects:
            if doc["docId"] in obj.doc_ids:
                _sub(el, DOSSIER_NS, "file", role=obj.kind, path=data_path(code, obj.key), sha256=obj.sha256,
                     size=str(obj.size), version=str(obj.version) if obj.version else None, reason=obj.reason,
                     originalName=obj.original_name)
    return root


DOSSIER_XSD_TEXT = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- The descriptive metadata of a sohoa dossier package (metadata/descriptive/dossier.xml):
     the TT 05/2025/TT-BNV fields the dossier's manifest records, for the dossier and each document. -->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{DOSSIER_NS}" targetNamespace="{DOSSIER_NS}"
           elementFormDefault="qualified">
  <xs:simpleType name="sha256"><xs:restriction base="xs:string"><xs:pattern value="[0-9a-f]{{64}}"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="code100"><xs:restriction base="xs:string"><xs:maxLength value="100"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="title"><xs:restriction base="xs:string"><xs:maxLength value="1000"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="twoDigits"><xs:restriction base="xs:string"><xs:pattern value="0[1-9]"/></xs:restriction></xs:simpleType>
  <xs:element name="dossier">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="fileCode" type="code100" minOccurs="0"/>
        <xs:element name="dossierCode" type="code100"/>
        <xs:element name="paperFileCode" type="code100" minOccurs="0"/>
        <xs:element name="agencyCode" type="xs:string" minOccurs="0"/>
        <xs:element name="agency" type="xs:string" minOccurs="0"/>
        <xs:element name="title" type="title" minOccurs="0"/>
        <xs:element name="maintenance" type="twoDigits" minOccurs="0"/>
        <xs:element name="mode" type="twoDigits" minOccurs="0"/>
        <xs:element name="language" type="xs:string" minOccurs="0"/>
        <xs:element name="startDate" type="xs:date" minOccurs="0"/>
        <xs:element name="endDate" type="xs:date" minOccurs="0"/>
        <xs:element name="totalDoc" type="xs:nonNegativeInteger" minOccurs="0"/>
        <xs:element name="numberOfPage" type="xs:nonNegativeInteger" minOccurs="0"/>
        <xs:element name="format" type="xs:string" minOccurs="0"/>
        <xs:element name="confidenceLevel" type="twoDigits" minOccurs="0"/>
        <xs:element name="created" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="updated" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="documents">
          <xs:complexType><xs:sequence><xs:element ref="document" minOccurs="0" maxOccurs="unbounded"/></xs:sequence></xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="schema" type="xs:string"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="document">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="docId" type="code100"/>
        <xs:element name="sequence" type="xs:positiveInteger"/>
        <xs:element name="title" type="title" minOccurs="0"/>
        <xs:element name="created" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="numberOfPage" type="xs:nonNegativeInteger" minOccurs="0"/>
        <xs:element name="format" type="xs:string" minOccurs="0"/>
        <xs:element name="language" type="xs:string" minOccurs="0"/>
        <xs:element name="confidenceLevel" type="twoDigits" minOccurs="0"/>
        <xs:element name="inputSha256" type="sha256" minOccurs="0"/>
        <xs:element name="inforSign" minOccurs="0">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="signer" type="xs:string" minOccurs="0"/>
              <xs:element name="signedAt" type="xs:dateTime" minOccurs="0"/>
              <xs:element name="level" type="xs:string" minOccurs="0"/>
              <xs:element name="subfilter" type="xs:string" minOccurs="0"/>
              <xs:element name="algorithm" type="xs:string" minOccurs="0"/>
              <xs:element name="certificateSha256" type="sha256" minOccurs="0"/>
              <xs:element name="issuerSha256" type="sha256" minOccurs="0"/>
              <xs:element name="testSignature" type="xs:boolean" minOccurs="0"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="unsigned" type="xs:boolean" minOccurs="0"/>
        <xs:element name="file" minOccurs="0" maxOccurs="unbounded">
          <xs:complexType>
            <xs:attribute name="role" use="required">
              <xs:simpleType><xs:restriction base="xs:string">
                <xs:enumeration value="original"/><xs:enumeration value="pdf"/>
                <xs:enumeration value="text"/><xs:enumeration value="words"/>
              </xs:restriction></xs:simpleType>
            </xs:attribute>
            <xs:attribute name="path" type="xs:string" use="required"/>
            <xs:attribute name="sha256" type="sha256" use="required"/>
            <xs:attribute name="size" type="xs:nonNegativeInteger" use="required"/>
            <xs:attribute name="version" type="xs:positiveInteger"/>
            <xs:attribute name="reason" type="xs:string"/>
            <xs:attribute name="originalName" type="xs:string"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def readme(manifest: dict, version: str, now: datetime) -> str:
    """The package's documentation: what it holds and how to check it, in Vietnamese and English."""
    code = manifest["dossierCode"]
    return f"""Gói nộp lưu E-ARK (SIP, CSIP 2.1) của hồ sơ {code}
Tạo bởi sohoa {version} lúc {now.isoformat()}.

- METS.xml: mô tả gói; mọi tệp đều có mã băm SHA-256 (CHECKSUMTYPE="SHA-256").
- metadata/descriptive/dossier.xml: đặc tả hồ sơ và từng tài liệu theo TT 05/2025/TT-BNV
  (lược đồ: schemas/sohoa-dossier.xsd); manifest.json: mục lục hồ sơ đúng từng byte.
- metadata/preservation/premis.xml: đối tượng, sự kiện (tiếp nhận, ký số, gia hạn dấu thời gian,
  kiểm tra mã băm, đóng gói) và tác nhân theo PREMIS 3; manifests/: mọi phiên bản manifest.
- representations/{REPRESENTATION}/data/: bản gốc công dân nộp (nguyên vẹn), mọi phiên bản PDF/A-2b đã ký,
  văn bản OCR và vị trí từng chữ. Mã hồ sơ giữ nguyên.
Kiểm tra: tính SHA-256 của từng tệp và so với METS; chữ ký số PAdES nằm trong tệp PDF.

E-ARK submission information package (SIP, CSIP 2.1) of dossier {code},
made by sohoa {version} at {now.isoformat()}.
METS.xml lists every file with its SHA-256; metadata/descriptive holds the TT 05/2025 metadata
(dossier.xml) and the dossier's manifest byte for byte; metadata/preservation holds PREMIS 3
objects, events and agents and every manifest version; representations/{REPRESENTATION}/data holds the
citizen's original files unchanged, every signed PDF/A-2b version, the OCR text and words. The
PDF signatures (PAdES) are inside the PDF files and verify unchanged after re-import.
"""


# --------------------------------------------------------------------------- PREMIS

@dataclass(frozen=True)
class Agent:
    id_type: str
    id_value: str
    name: str
    type: str                 # software, organization
    version: str | None = None
    note: str | None = None


def software_agent(version: str) -> Agent:
    return Agent("sohoa-agent", f"sohoa-{version}", "sohoa", "software", version)


def agency_agent(code: str, agency: str | None) -> Agent | None:
    """The agency: by its name when given, identified by the agency code of the dossier code."""
    ident = agency_code(code)
    if agency is None and ident is None:
        return None
    return Agent("agency-code" if ident else "agency-name", ident or agency, agency or ident, "organization")


def signer_agent(signature: dict) -> Agent:
    ident = signature.get("certificateSha256") or hashlib.sha256(signature.get("signer", "").encode()).hexdigest()
    return Agent("certificate-sha256", ident, signature.get("signer") or ident, "organization",
                 note="test signature" if signature.get("testSignature") else None)


@dataclass(frozen=True)
class Event:
    """A PREMIS event: what happened, when, with what outcome, by which agents, to which files."""

    type: str
    at: str
    detail: str
    outcome: str = "success"
    outcome_note: str | None = None
    agents: tuple[tuple[Agent, str], ...] = ()        # (agent, role)
    objects: tuple[tuple[str, str], ...] = ()          # (package path, role)


def _sort_time(stamp: str) -> tuple:
    try:
        at = datetime.fromisoformat(stamp)
        return (0, at.timestamp() if at.tzinfo else at.replace(tzinfo=now_vn().tzinfo).timestamp(), stamp)
    except (TypeError, ValueError):
        return (1, 0.0, str(stamp))


EVENT_TYPES = {"ingest": "ingestion", "timestamp-renewal": "digital signature generation",
               "change": "metadata modification"}


def dossier_events(manifest: dict, objects: list[DossierObject], *, software: Agent, agency: Agent | None,
                   now: datetime, stored: Sequence[dict] = ()) -> list[Event]:
    """The dossier's life as the manifest records it, then this packaging: the ingestion of each
    document (its originals in, its PDF/A, text and words out), its signing (from the signature
    record), each timestamp renewal (the PDF version it made), other recorded changes, the
    events stored with the dossier (``stored``, ``pipeline.events``: fixity checks, signature
    validations, replication, earlier packaging), the SHA-256 check of every object read for the
    package, and the package's creation. Oldest first."""
    code = manifest["dossierCode"]
    path = {o.key: data_path(code, o.key) for o in objects}
    ours = ((software, "executing program"),) + (((agency, "implementer"),) if agency else ())
    events: list[Event] = []
    renewals: dict[str, list[DossierObject]] = {}
    for doc in manifest["documents"]:
        renewals[doc["docId"]] = [o for o in objects if doc["docId"] in o.doc_ids and o.kind == "pdf"
                                  and o.reason == "timestamp-renewal"]
        sig = doc.get("signature")
        if sig:
            first = next((o for o in objects if doc["docId"] in o.doc_ids and o.kind == "pdf"), None)
            events.append(Event(
                "digital signature generation", sig.get("signedAt") or doc.get("created", ""),
                f"{doc['docId']}: PAdES {sig.get('level')} ({sig.get('subfilter')}, {sig.get('algorithm')}) "
                f"signed by {sig.get('signer')}" + ("; test signature" if sig.get("testSignature") else ""),
                agents=ours + ((signer_agent(sig), "authorizer"),),
                objects=((path[first.key], "outcome"),) if first else ()))
    seen: dict[str, int] = {}
    for event in manifest.get("events", []):
        kind, doc_id = event.get("type", ""), event.get("docId")
        doc = next((d for d in manifest["documents"] if d["docId"] == doc_id), None)
        linked: tuple[tuple[str, str], ...] = ()
        if kind == "ingest" and doc is not None:
            mine = [o for o in objects if doc_id in o.doc_ids]
            first_pdf = [o for o in mine if o.kind == "pdf"][:1]
            linked = tuple((path[o.key], "source") for o in mine if o.kind == "original") + tuple(
                (path[o.key], "outcome") for o in mine if o.kind in ("text", "words") or o in first_pdf)
        elif kind == "timestamp-renewal" and doc is not None:
            n = seen.get(doc_id, 0)
            seen[doc_id] = n + 1
            if n < len(renewals[doc_id]):
                made = renewals[doc_id][n]
                linked = tuple((path[k], "source") for k in made.source_keys if k in path) + ((path[made.key], "outcome"),)
        detail = (f"{doc_id}: " if doc_id else "") + str(event.get("detail") or kind)
        events.append(Event(EVENT_TYPES.get(kind, kind or "other"), event.get("at", ""), detail,
                            event.get("outcome", "success"), agents=ours, objects=linked))
    for event in stored:
        events.append(Event(event["type"], event["at"], event.get("detail") or event["type"], event["outcome"],
                            event.get("outcomeDetail") or None, agents=ours,
                            objects=tuple((path[k], "source") for k in event.get("objects", []) if k in path)))
    events.sort(key=lambda e: _sort_time(e.at))
    stamp = now.isoformat()
    every = tuple((path[o.key], "source") for o in objects)
    events.append(Event("fixity check", stamp, "SHA-256 of every object checked against the manifest while packaging",
                        outcome_note=f"{len(objects)} objects, SHA-256 as recorded", agents=ours, objects=every))
    events.append(Event("information package creation", stamp, f"E-ARK SIP (CSIP 2.1, SIP 2.1) of dossier {code}",
                        agents=ours, objects=every))
    return events


def premis_xml(code: str, files: list[PackedFile], events: list[Event]) -> etree._Element:
    """PREMIS 3: the dossier as an intellectual entity, a file object per package file (SHA-256
    fixity, size, format, where it came from), the events and their agents."""
    P = PREMIS_NS
    root = etree.Element(_q(P, "premis"), nsmap={"premis": P, "xsi": XSI_NS}, version="3.0")
    root.set(_q(XSI_NS, "schemaLocation"), PREMIS_SCHEMA_LOCATION)
    event_ids = [f"{code}-event-{n:04d}" for n in range(1, len(events) + 1)]
    by_path: dict[str, list[str]] = {}
    for ident, event in zip(event_ids, events):
        for p, _ in event.objects:
            by_path.setdefault(p, []).append(ident)

    entity = _sub(root, P, "object")
    entity.set(_q(XSI_NS, "type"), "premis:intellectualEntity")
    oid = _sub(entity, P, "objectIdentifier")
    _sub(oid, P, "objectIdentifierType", "dossier-code")
    _sub(oid, P, "objectIdentifierValue", code)
    for ident, event in zip(event_ids, events):
        if not event.objects:
            _link_event(entity, ident)

    for f in files:
        obj = _sub(root, P, "object")
        obj.set(_q(XSI_NS, "type"), "premis:file")
        if f.key:
            oid = _sub(obj, P, "objectIdentifier")
            _sub(oid, P, "objectIdentifierType", "sohoa-object-key")
            _sub(oid, P, "objectIdentifierValue", f.key)
        oid = _sub(obj, P, "objectIdentifier")
        _sub(oid, P, "objectIdentifierType", "package-path")
        _sub(oid, P, "objectIdentifierValue", f.path)
        chars = _sub(obj, P, "objectCharacteristics")
        _sub(chars, P, "compositionLevel", "0")
        fixity = _sub(chars, P, "fixity")
        _sub(fixity, P, "messageDigestAlgorithm", "SHA-256")
        _sub(fixity, P, "messageDigest", f.sha256)
        _sub(fixity, P, "messageDigestOriginator", "sohoa")
        _sub(chars, P, "size", str(f.size))
        fmt = _sub(chars, P, "format")
        _sub(_sub(fmt, P, "formatDesignation"), P, "formatName", f.format_name or f.mimetype)
        if f.format_name == "PDF/A-2b":
            reg = _sub(fmt, P, "formatRegistry")
            _sub(reg, P, "formatRegistryName", "PRONOM")
            _sub(reg, P, "formatRegistryKey", PDFA_PRONOM)
        if f.original_name:
            _sub(obj, P, "originalName", f.original_name)
        rel = _sub(obj, P, "relationship")
        _sub(rel, P, "relationshipType", "structural")
        _sub(rel, P, "relationshipSubType", "is included in")
        related = _sub(rel, P, "relatedObjectIdentifier")
        _sub(related, P, "relatedObjectIdentifierType", "dossier-code")
        _sub(related, P, "relatedObjectIdentifierValue", code)
        for source in f.source_paths:
            rel = _sub(obj, P, "relationship")
            _sub(rel, P, "relationshipType", "derivation")
            _sub(rel, P, "relationshipSubType", "has source")
            related = _sub(rel, P, "relatedObjectIdentifier")
            _sub(related, P, "relatedObjectIdentifierType", "package-path")
            _sub(related, P, "relatedObjectIdentifierValue", source)
        for ident in by_path.get(f.path, []):
            _link_event(obj, ident)

    agents: dict[tuple[str, str], Agent] = {}
    for ident, event in zip(event_ids, events):
        el = _sub(root, P, "event")
        eid = _sub(el, P, "eventIdentifier")
        _sub(eid, P, "eventIdentifierType", "sohoa-event")
        _sub(eid, P, "eventIdentifierValue", ident)
        _sub(el, P, "eventType", event.type)
        _sub(el, P, "eventDateTime", event.at)
        _sub(_sub(el, P, "eventDetailInformation"), P, "eventDetail", event.detail)
        outcome = _sub(el, P, "eventOutcomeInformation")
        _sub(outcome, P, "eventOutcome", event.outcome)
        if event.outcome_note:
            _sub(_sub(outcome, P, "eventOutcomeDetail"), P, "eventOutcomeDetailNote", event.outcome_note)
        for agent, role in event.agents:
            agents.setdefault((agent.id_type, agent.id_value), agent)
            link = _sub(el, P, "linkingAgentIdentifier")
            _sub(link, P, "linkingAgentIdentifierType", agent.id_type)
            _sub(link, P, "linkingAgentIdentifierValue", agent.id_value)
            _sub(link, P, "linkingAgentRole", role)
        targets = event.objects or ((code, "outcome"),)
        for target, role in targets:
            link = _sub(el, P, "linkingObjectIdentifier")
            _sub(link, P, "linkingObjectIdentifierType", "package-path" if event.objects else "dossier-code")
            _sub(link, P, "linkingObjectIdentifierValue", target)
            _sub(link, P, "linkingObjectRole", role)
    for agent in agents.values():
        el = _sub(root, P, "agent")
        aid = _sub(el, P, "agentIdentifier")
        _sub(aid, P, "agentIdentifierType", agent.id_type)
        _sub(aid, P, "agentIdentifierValue", agent.id_value)
        _sub(el, P, "agentName", agent.name)
        _sub(el, P, "agentType", agent.type)
        if agent.version:
            _sub(el, P, "agentVersion", agent.version)
        if agent.note:
            _sub(el, P, "agentNote", agent.note)
    return root


def _link_event(obj, ident: str) -> None:
    link = _sub(obj, PREMIS_NS, "linkingEventIdentifier")
    _sub(link, PREMIS_NS, "linkingEventIdentifierType", "sohoa-event")
    _sub(link, PREMIS_NS, "linkingEventIdentifierValue", ident)


# --------------------------------------------------------------------------- METS

def _mets_root(objid: str, label: str) -> etree._Element:
    root = etree.Element(_q(METS_NS, "mets"), nsmap={"mets": METS_NS, "xlink": XLINK_NS, "csip": CSIP_NS,
                                                     "sip": SIP_NS, "xsi": XSI_NS})
    root.set("OBJID", objid)
    root.set("LABEL", label)
    root.set("TYPE", CONTENT_CATEGORY)
    root.set(_q(CSIP_NS, "CONTENTINFORMATIONTYPE"), "OTHER")
    root.set(_q(CSIP_NS, "OTHERCONTENTINFORMATIONTYPE"), CONTENT_INFORMATION_TYPE)
    root.set("PROFILE", SIP_PROFILE)
    root.set(_q(XSI_NS, "schemaLocation"), METS_SCHEMA_LOCATION)
    return root


def _mets_header(root, code: str, now: datetime, version: str, agency: str | None) -> None:
    stamp = now.isoformat()
    hdr = _sub(root, METS_NS, "metsHdr", CREATEDATE=stamp, LASTMODDATE=stamp, RECORDSTATUS="NEW")
    hdr.set(_q(CSIP_NS, "OAISPACKAGETYPE"), "SIP")
    creator = _sub(hdr, METS_NS, "agent", ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    _sub(creator, METS_NS, "name", "sohoa")
    _sub(creator, METS_NS, "note", version).set(_q(CSIP_NS, "NOTETYPE"), "SOFTWARE VERSION")
    owner = agency_agent(code, agency)
    if owner is not None:
        el = _sub(hdr, METS_NS, "agent", ROLE="IPOWNER", TYPE="ORGANIZATION")
        _sub(el, METS_NS, "name", owner.name)
        if owner.id_type == "agency-code":
            _sub(el, METS_NS, "note", owner.id_value).set(_q(CSIP_NS, "NOTETYPE"), "IDENTIFICATIONCODE")
    _sub(hdr, METS_NS, "altRecordID", code, TYPE="REFERENCECODE")


def _checksummed(el, f: PackedFile) -> None:
    el.set("MIMETYPE", f.mimetype)
    el.set("SIZE", str(f.size))
    el.set("CREATED", f.created)
    el.set("CHECKSUM", f.sha256)
    el.set("CHECKSUMTYPE", "SHA-256")


def _md_ref(parent, f: PackedFile, mdtype: str, other: str | None = None, href: str | None = None) -> None:
    ref = _sub(parent, METS_NS, "mdRef", LOCTYPE="URL", MDTYPE=mdtype, OTHERMDTYPE=other)
    ref.set(_q(XLINK_NS, "type"), "simple")
    ref.set(_q(XLINK_NS, "href"), href or f.path)
    _checksummed(ref, f)


def _file(group, f: PackedFile, href: str, file_id: str) -> etree._Element:
    el = _sub(group, METS_NS, "file", ID=file_id)
    _checksummed(el, f)
    if f.key:
        el.set("OWNERID", f.key)
    if f.format_name == "PDF/A-2b":
        el.set(_q(SIP_NS, "FILEFORMATNAME"), "PDF/A-2b")
        el.set(_q(SIP_NS, "FILEFORMATREGISTRY"), "PRONOM")
        el.set(_q(SIP_NS, "FILEFORMATKEY"), PDFA_PRONOM)
    loc = _sub(el, METS_NS, "FLocat", LOCTYPE="URL")
    loc.set(_q(XLINK_NS, "type"), "simple")
    loc.set(_q(XLINK_NS, "href"), href)
    return el


def _group(parent, use: str, group_id: str) -> etree._Element:
    group = _sub(parent, METS_NS, "fileGrp", ID=group_id, USE=use)
    group.set(_q(CSIP_NS, "CONTENTINFORMATIONTYPE"), "OTHER")
    group.set(_q(CSIP_NS, "OTHERCONTENTINFORMATIONTYPE"), CONTENT_INFORMATION_TYPE)
    return group


def representation_mets(code: str, manifest: dict, data: list[PackedFile], now: datetime, version: str,
                        agency: str | None) -> etree._Element:
    """The representation's METS: every data file (paths relative to the representation folder)
    with its SHA-256, a physical structMap, and a logical one giving each document's files."""
    root = _mets_root(REPRESENTATION, f"{code} {REPRESENTATION}")
    _mets_header(root, code, now, version, agency)
    sec = _sub(root, METS_NS, "fileSec", ID=xml_id("filesec", REPRESENTATION))
    group = _group(sec, "Data", xml_id("filegrp", REPRESENTATION + "-data"))
    ids = {}
    for f in data:
        ids[f.path] = xml_id("file", f.path[len(DATA_DIR) + 1:])
        _file(group, f, f.path[len(REP_DIR) + 1:], ids[f.path])
    phys = _sub(root, METS_NS, "structMap", ID=xml_id("structmap", REPRESENTATION), TYPE="PHYSICAL", LABEL="CSIP")
    top = _sub(phys, METS_NS, "div", ID=xml_id("div", REPRESENTATION), LABEL=REPRESENTATION)
    data_div = _sub(top, METS_NS, "div", ID=xml_id("div", REPRESENTATION + "-data"), LABEL="Data")
    _sub(data_div, METS_NS, "fptr", FILEID=group.get("ID"))
    logical = _sub(root, METS_NS, "structMap", ID=xml_id("structmap", REPRESENTATION + "-documents"),
                   TYPE="LOGICAL", LABEL="Documents")
    top = _sub(logical, METS_NS, "div", ID=xml_id("div", code), LABEL=code, TYPE="dossier")
    for doc in manifest["documents"]:
        div = _sub(top, METS_NS, "div", ID=xml_id("div", doc["docId"]), LABEL=doc.get("title") or doc["docId"],
                   TYPE="document", ORDER=str(doc["sequence"]), ORDERLABEL=doc["docId"])
        for f in data:
            if doc["docId"] in f.doc_ids:
                _sub(div, METS_NS, "fptr", FILEID=ids[f.path])
    return root


def package_mets(code: str, manifest: dict, *, descriptive: list[tuple[PackedFile, str]],
                 preservation: list[tuple[PackedFile, str, str, str | None]], documentation: list[PackedFile],
                 schemas: list[PackedFile], rep_mets: PackedFile, now: datetime, version: str,
                 agency: str | None) -> etree._Element:
    """The package METS. ``descriptive``: (file, OTHERMDTYPE) as dmdSecs; ``preservation``:
    (file, MDTYPE, STATUS, OTHERMDTYPE) as digiprovMDs; documentation and schemas files; the
    representation METS in the "Representations/rep1" file group."""
    root = _mets_root(code, manifest.get("title") or code)
    _mets_header(root, code, now, version, agency)
    stamp = now.isoformat()
    dmd_ids, adm_ids = [], []
    for f, other in descriptive:
        dmd_id = xml_id("dmd", f.path.rsplit("/", 1)[1])
        dmd_ids.append(dmd_id)
        _md_ref(_sub(root, METS_NS, "dmdSec", ID=dmd_id, CREATED=stamp, STATUS="CURRENT"), f, "OTHER", other)
    amd = _sub(root, METS_NS, "amdSec", ID=xml_id("amd", code))
    for f, mdtype, status, other in preservation:
        adm_id = xml_id("digiprov", f.path.rsplit("/", 1)[1])
        adm_ids.append(adm_id)
        _md_ref(_sub(amd, METS_NS, "digiprovMD", ID=adm_id, STATUS=status), f, mdtype, other)
    sec = _sub(root, METS_NS, "fileSec", ID=xml_id("filesec", code))
    groups = {}
    for use, files in (("Documentation", documentation), ("Schemas", schemas),
                       (f"Representations/{REPRESENTATION}", [rep_mets])):
        group = _group(sec, use, xml_id("filegrp", use.lower().replace("/", "-")))
        groups[use] = group.get("ID")
        for f in files:
            _file(group, f, f.path, xml_id("file", f.path))
    smap = _sub(root, METS_NS, "structMap", ID=xml_id("structmap", code), TYPE="PHYSICAL", LABEL="CSIP")
    top = _sub(smap, METS_NS, "div", ID=xml_id("div", code + "-root"), LABEL=code)
    _sub(top, METS_NS, "div", ID=xml_id("div", "metadata"), LABEL="Metadata",
         ADMID=" ".join(adm_ids) or None, DMDID=" ".join(dmd_ids) or None)
    for label in ("Documentation", "Schemas"):
        _sub(_sub(top, METS_NS, "div", ID=xml_id("div", label.lower()), LABEL=label), METS_NS, "fptr",
             FILEID=groups[label])
    reps = _sub(top, METS_NS, "div", ID=xml_id("div", "representations"), LABEL="Representations")
    rep_group = groups[f"Representations/{REPRESENTATION}"]
    _sub(reps, METS_NS, "fptr", FILEID=rep_group)
    rep = _sub(reps, METS_NS, "div", ID=xml_id("div", REPRESENTATION), LABEL=f"Representations/{REPRESENTATION}")
    ptr = _sub(rep, METS_NS, "mptr", LOCTYPE="URL")
    ptr.set(_q(XLINK_NS, "type"), "simple")
    ptr.set(_q(XLINK_NS, "href"), rep_mets.path)
    ptr.set(_q(XLINK_NS, "title"), rep_group)
    return root


# --------------------------------------------------------------------------- reading a package's METS

@dataclass(frozen=True)
class Listed:
    """A file a METS document lists: path from the package root, size and SHA-256."""

    path: str
    size: int | None
    sha256: str | None
    checksum_type: str | None


_SAFE_PATH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


def mets_entries(mets: etree._Element, base: str = "") -> list[Listed]:
    """Every file a METS document lists (fileSec files and mdRefs), paths made relative to the
    package root (``base``: the folder of the METS document)."""
    found = []
    for el in mets.iter(_q(METS_NS, "file"), _q(METS_NS, "mdRef")):
        loc = el.find(_q(METS_NS, "FLocat")) if el.tag == _q(METS_NS, "file") else el
        href = (loc.get(_q(XLINK_NS, "href")) if loc is not None else None) or ""
        if href.startswith("file://./"):
            href = href[len("file://./"):]
        size = el.get("SIZE")
        found.append(Listed(f"{base}/{href}" if base else href, int(size) if size and size.isdigit() else None,
                            (el.get("CHECKSUM") or "").lower() or None, el.get("CHECKSUMTYPE")))
    return found


def representation_pointers(mets: etree._Element) -> list[str]:
    """Paths of the representation METS documents the package METS points to (structMap mptr)."""
    return [ptr.get(_q(XLINK_NS, "href")) or "" for ptr in mets.iter(_q(METS_NS, "mptr"))]


def safe_path(path: str) -> bool:
    """A relative path of plain segments, none of them '.' or '..': it cannot leave the package."""
    return bool(_SAFE_PATH.fullmatch(path)) and not any(p in (".", "..") for p in path.split("/"))


def package_problems(listed: list[Listed], present: dict[str, tuple[int, str]], exempt: set[str]) -> list[tuple[str, str, str]]:
    """What is wrong with a package, per file: (path, Vietnamese reason, English reason).
    ``present``: every file in the package folder with its size and SHA-256; ``exempt``: files no
    METS lists by design (the package METS)."""
    problems, seen = [], set()
    for entry in listed:
        p = entry.path
        if not safe_path(p):
            problems.append((p, "đường dẫn không an toàn", "unsafe path"))
            continue
        if p in seen:
            continue
        seen.add(p)
        if entry.checksum_type != "SHA-256" or not entry.sha256 or entry.size is None:
            problems.append((p, "METS không ghi kích thước và mã băm SHA-256", "no SIZE and SHA-256 CHECKSUM in the METS"))
        elif p not in present:
            problems.append((p, "thiếu tệp", "file missing"))
        elif present[p][1] != entry.sha256:
            problems.append((p, "mã băm SHA-256 khác với METS (tệp đã bị thay đổi)", "SHA-256 differs from the METS (file changed)"))
        elif present[p][0] != entry.size:
            problems.append((p, "kích thước khác với METS", "size differs from the METS"))
    for p in sorted(set(present) - seen - exempt):
        problems.append((p, "tệp không có trong METS", "file not listed in any METS"))
    return problems


# --------------------------------------------------------------------------- I/O: building

def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sohoa")
    except PackageNotFoundError:
        return "unknown"


def _manifest_history(store: ObjectStore, code: str, manifest: dict) -> list[tuple[int, bytes]]:
    """Every manifest version's bytes, oldest first, each checked by the next one's
    ``previousManifestSha256`` and the newest against the manifest read. A manifest written
    before manifests had a history (no ``manifestVersion``) is its only version, numbered 0."""
    newest = manifest.get("manifestVersion")
    if newest is None:
        data = store.get(keys.manifest(code))
        if mf.loads(data) != manifest:
            raise Conflict(f"Hồ sơ {code} vừa được thay đổi trong lúc đóng gói; chưa tạo gói, hãy chạy lại",
                           "manifest changed while packaging")
        return [(0, data)]
    versions: list[tuple[int, bytes]] = []
    expected: str | None = None
    for number in range(newest, 0, -1):
        try:
            data = store.get(keys.manifest_version(code, number), sha256=expected)
        except ObjectNotFound:
            raise IntegrityError(f"Hồ sơ {code} thiếu phiên bản manifest {number}; chưa tạo gói",
                                 f"manifest version {number} missing") from None
        version = mf.loads(data)
        if number == newest and version != manifest:
            raise IntegrityError(f"manifest.json của hồ sơ {code} khác phiên bản cuối trong lịch sử; chưa tạo gói",
                                 "manifest.json differs from the last version in its history")
        versions.append((number, data))
        expected = version.get("previousManifestSha256")
        if number > 1 and expected is None:
            raise IntegrityError(f"Phiên bản manifest {number} của hồ sơ {code} không nối với phiên bản trước; chưa tạo gói",
                                 f"manifest version {number} has no link to version {number - 1}")
    return versions[::-1]


def _packed(path: str, data: bytes, mimetype: str, created: str, kind: str, **kw) -> PackedFile:
    return PackedFile(path, hashlib.sha256(data).hexdigest(), len(data), mimetype, created, kind, **kw)


def build_sip(store: ObjectStore, code: str, out_dir: Path, *, agency: str | None = None,
              now: datetime | None = None) -> Path:
    """Write the E-ARK SIP of dossier ``code`` as ``out_dir/<code>`` and return that path.
    ``agency``: the name of the agency handing the dossier over (its IPOWNER agent and the
    implementer of its PREMIS events). Conflict if the package folder exists; storage
    IntegrityError if an object's bytes differ from the manifest."""
    manifest = require_manifest(store, code)
    code = manifest["dossierCode"]
    now = now or datetime.now(now_vn().tzinfo)  # to the microsecond: after every event it packs
    stamp, version = now.isoformat(), software_version()
    out_dir = Path(out_dir)
    final = out_dir / code
    if final.exists():
        raise Conflict(f"Đã có gói {final}; chọn thư mục khác hoặc xóa gói cũ trước", "package folder exists")
    objects = dossier_objects(manifest)
    history = _manifest_history(store, code, manifest)

    files: dict[str, bytes] = {}
    packed: list[PackedFile] = []
    by_key = {o.key: data_path(code, o.key) for o in objects}
    for o in objects:
        data = store.get(o.key, sha256=o.sha256)  # fixity checked on every byte that enters the package
        if len(data) != o.size:
            raise IntegrityError(f"Kích thước {o.key} khác với manifest; chưa tạo gói", f"size of {o.key} differs from the manifest")
        path = by_key[o.key]
        files[path] = data
        packed.append(PackedFile(path, o.sha256, o.size, o.mimetype, o.created or stamp, o.kind, o.key, o.doc_ids,
                                 "PDF/A-2b" if o.kind == "pdf" else None, o.original_name,
                                 tuple(by_key[k] for k in o.source_keys if k in by_key)))

    rep = serialize(representation_mets(code, manifest, packed, now, version, agency))
    rep_file = _packed(f"{REP_DIR}/{METS_FILE}", rep, "application/xml", stamp, "mets")
    current = history[-1][1]
    manifest_file = _packed(MANIFEST, current, "application/json", manifest.get("updated") or stamp, "manifest")
    versions = [_packed(history_path(n), data, "application/json",
                        mf.loads(data).get("updated") or stamp, "manifest-version",
                        key=keys.manifest_version(code, n))
                for n, data in history if n > 0]
    desc = serialize(dossier_xml(manifest, objects, agency=agency))
    desc_file = _packed(DESCRIPTIVE, desc, "application/xml", stamp, "descriptive")
    doc_text = readme(manifest, version, now).encode("utf-8")
    doc_file = _packed(README, doc_text, "text/plain", stamp, "documentation")
    xsd = DOSSIER_XSD_TEXT.encode("utf-8")
    xsd_file = _packed(DOSSIER_XSD, xsd, "application/xml", stamp, "schema")
    schema = mf.SCHEMA_FILE.read_bytes()
    schema_file = _packed(MANIFEST_SCHEMA, schema, "application/json", stamp, "schema")
    files.update({rep_file.path: rep, manifest_file.path: current, desc_file.path: desc, doc_file.path: doc_text,
                  xsd_file.path: xsd, schema_file.path: schema})
    files.update({f.path: data for f, (_, data) in zip(versions, [h for h in history if h[0] > 0])})
    event_files: list[PackedFile] = []  # the stored events' files

    stored_events = []
    for key in store.list(keys.dossier_events(code)):
        info = store.stat(key)
        data = store.get(key, info.sha256 if info else None)
        stored_events.append(json.loads(data))
        stored_file = _packed(f"{EVENTS_DIR}/{key.rsplit('/', 1)[1]}", data, "application/json",
                              stored_events[-1].get("at") or stamp, "event", key=key)
        event_files.append(stored_file)
        files[stored_file.path] = data
    software, owner = software_agent(version), agency_agent(code, agency)
    events = dossier_events(manifest, objects, software=software, agency=owner, now=now, stored=stored_events)
    premis_files = [*packed, rep_file, manifest_file, *versions, *event_files, desc_file, doc_file,
                    xsd_file, schema_file]
    premis = serialize(premis_xml(code, premis_files, events))
    premis_file = _packed(PREMIS, premis, "application/xml", stamp, "premis")
    files[premis_file.path] = premis

    preservation = [(premis_file, "PREMIS", "CURRENT", None)] + [
        (f, "OTHER", "CURRENT" if i == len(versions) - 1 else "SUPERSEDED", MANIFEST_MDTYPE)
        for i, f in enumerate(versions)] + [(f, "OTHER", "CURRENT", EVENT_MDTYPE) for f in event_files]
    root = package_mets(code, manifest, descriptive=[(desc_file, DESCRIPTIVE_MDTYPE), (manifest_file, MANIFEST_MDTYPE)],
                        preservation=preservation, documentation=[doc_file], schemas=[xsd_file, schema_file],
                        rep_mets=rep_file, now=now, version=version, agency=agency)
    files[METS_FILE] = serialize(root)

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{code}.", suffix=".part"))
    try:
        for rel, data in files.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        work.chmod(0o755)
        os.rename(work, final)  # refuses a non-empty folder made meanwhile: never over another package
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------- I/O: importing

def _parse(path: Path, shown: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as e:
        raise IntegrityError(f"Gói hồ sơ không đọc được {shown}; chưa nhập gì", f"{shown} unreadable: {e}") from None


def _present(sip_dir: Path) -> dict[str, tuple[int, str]]:
    """Every regular file in the package folder with its size and SHA-256 (symbolic links are
    listed as unreadable, never followed)."""
    found = {}
    for path in sorted(sip_dir.rglob("*")):
        rel = path.relative_to(sip_dir).as_posix()
        if path.is_symlink():
            found[rel] = (-1, "symlink")
        elif path.is_file():
            h, size = hashlib.sha256(), 0
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    size += len(block)
            found[rel] = (size, h.hexdigest())
    return found


def _refuse(problems: list[tuple[str, str, str]]) -> IntegrityError:
    shown = problems[:20]
    more = f" (và {len(problems) - 20} tệp khác)" if len(problems) > 20 else ""
    return IntegrityError("Gói hồ sơ bị thay đổi hoặc thiếu tệp, chưa nhập gì: "
                          + "; ".join(f"{p}: {vi}" for p, vi, _ in shown) + more,
                          "package refused, nothing stored: " + "; ".join(f"{p}: {en}" for p, _, en in problems))


def import_sip(store: ObjectStore, sip_dir: Path) -> str:
    """Store the dossier of the E-ARK SIP in ``sip_dir`` (as ``build_sip`` writes it) and return
    its code. Every file is checked against the METS before anything is stored; IntegrityError
    naming the files otherwise, Conflict if the store holds another version of the dossier."""
    sip_dir = Path(sip_dir)
    if not (sip_dir / METS_FILE).is_file():
        raise IntegrityError(f"Không có {METS_FILE} trong {sip_dir}: không phải gói E-ARK; chưa nhập gì",
                             f"no {METS_FILE} in {sip_dir}")
    mets = _parse(sip_dir / METS_FILE, METS_FILE)
    code = mets.get("OBJID") or ""
    try:
        code = dossier.validate_key(code)
        keys.dossier_prefix(code)
    except DossierCodeError as e:
        raise IntegrityError(f"{METS_FILE}: OBJID không phải mã hồ sơ: {e.message_vi}; chưa nhập gì",
                             f"OBJID is not a dossier code: {code!r}") from None
    refuse_if_disposed(store, code)  # a package made before a disposal never brings the dossier back
    present = _present(sip_dir)
    listed = mets_entries(mets)
    in_root = {e.path: e for e in listed}
    unlisted = []
    for href in representation_pointers(mets):
        if not safe_path(href) or href not in in_root:
            unlisted.append((href, "METS biểu diễn không được liệt kê với mã băm trong METS.xml",
                             "representation METS not listed with its checksum in METS.xml"))
        elif present.get(href, (None, None))[1] == in_root[href].sha256:  # read only once checked
            listed += mets_entries(_parse(sip_dir / href, href), href.rsplit("/", 1)[0] if "/" in href else "")
    problems = unlisted + package_problems(listed, present, {METS_FILE})
    if problems:
        raise _refuse(problems)

    checked = {e.path: e.sha256 for e in listed}

    def read(rel: str) -> bytes:
        """The bytes of a listed file, checked again against the METS as they are read."""
        if rel not in checked:
            raise _refuse([(rel, "thiếu tệp (manifest cần nhưng METS không liệt kê)", "file missing from the METS")])
        data = (sip_dir / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != checked[rel]:
            raise _refuse([(rel, "mã băm SHA-256 khác với METS (tệp đã bị thay đổi)", "SHA-256 differs from the METS")])
        return data

    current = read(MANIFEST)
    try:
        manifest = mf.loads(current)
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"Manifest trong gói ({MANIFEST}) bị hỏng; chưa nhập gì", f"damaged manifest: {e}") from None
    if manifest["dossierCode"] != code:
        raise IntegrityError(f"Manifest trong gói là của hồ sơ {manifest['dossierCode']}, không phải {code}; chưa nhập gì",
                             "manifest dossierCode differs from the METS OBJID")
    history: list[tuple[int, bytes]] = []
    newest = manifest.get("manifestVersion")
    previous = None
    for number in range(1, (newest or 0) + 1):
        data = read(history_path(number))
        version = mf.loads(data)
        link = version.get("previousManifestSha256")
        if version.get("manifestVersion") != number or version["dossierCode"] != code or \
                (previous is not None and link != hashlib.sha256(previous).hexdigest()):
            raise _refuse([(history_path(number), "phiên bản manifest không nối với phiên bản trước",
                            "manifest version does not chain to the one before")])
        history.append((number, data))
        previous = data
    if newest is not None and previous != current:
        raise _refuse([(MANIFEST, "khác phiên bản cuối trong lịch sử manifest", "differs from the last manifest version")])

    unsafe = [(p, "tên tệp sự kiện không hợp lệ", "not an event file name") for p in checked
              if p.startswith(EVENTS_DIR + "/") and not _EVENT_NAME.fullmatch(p[len(EVENTS_DIR) + 1:])]
    if unsafe:
        raise _refuse(unsafe)
    objects = dossier_objects(manifest)
    missing = [(data_path(code, o.key), "manifest cần tệp này nhưng gói không có", "named by the manifest, not in the package")
               for o in objects if data_path(code, o.key) not in checked]
    differs = [(data_path(code, o.key), "mã băm SHA-256 khác với manifest", "SHA-256 differs from the manifest")
               for o in objects if data_path(code, o.key) in checked and checked[data_path(code, o.key)] != o.sha256]
    if missing or differs:
        raise _refuse(missing + differs)

    try:
        existing = store.get(keys.manifest(code))
    except ObjectNotFound:
        existing = None
    if existing is not None and existing != current:
        raise Conflict(f"Kho đã có hồ sơ {code} với nội dung khác; không nhập đè", "dossier exists with another manifest")

    for o in objects:
        data = read(data_path(code, o.key))
        store.put(o.key, data, STORE_CONTENT_TYPE.get(o.kind, o.mimetype), o.store_metadata, retain=o.retain)
    for rel in [p for p in checked if p.startswith(EVENTS_DIR + "/")]:
        name = rel[len(EVENTS_DIR) + 1:]
        store.put(keys.dossier_events(code) + name, read(rel), "application/json", retain=True)
    meta = {"dossier": code, "kind": "manifest"} | mf.lock_metadata(manifest)  # as repository.save_manifest
    for number, data in history:
        store.put(keys.manifest_version(code, number), data, "application/json", meta, retain=True)
    store.put(keys.manifest(code), current, "application/json", meta)  # last: the dossier appears whole
    return code

