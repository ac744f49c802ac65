"""Typed data at the seams: page tasks and results, documents, verdicts, summaries.

All frozen. Those that cross a process or a machine (``PageTask``, ``PageResult``) round-trip
through JSON with ``to_json``/``from_json``, and a page result carries a reference to its
stored image (a page-cache key), never the bytes. Every ``to_json`` gives the JSON that the
command line's ``--json`` prints and that the HTTP API will answer with.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from storage.jobs import ACTIVE as ACTIVE_JOB_STATES

# a page's quality flags, as an operator reads them
FLAG_VI = {"blank": "trang trắng", "blurry": "mờ", "cut_off": "có thể bị cắt mất nội dung",
           "low_confidence": "độ tin cậy OCR thấp"}
# TT 05/2025 maintenance codes, as an archivist reads them
MAINTENANCE_VI = {"01": "vĩnh viễn", "02": "70 năm", "03": "50 năm", "04": "30 năm", "05": "20 năm", "06": "10 năm",
                  "07": "khác"}

if TYPE_CHECKING:
    from .signing.status import PdfVerdict


def _from_json(cls, data: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- pages

@dataclass(frozen=True)
class PageTask:
    """One page of one original to straighten and read. Everything a worker needs, as JSON."""

    key: str           # the original's object key (stored before any processing)
    file: str          # the name the operator gave (for messages)
    kind: str          # jpeg | png | tiff | pdf
    sha256: str        # the original's SHA-256, checked before the page is read
    page: int          # 1-based
    lang: str = "vie"
    tessdata: str | None = None
    engine: str = "tesseract"
    jpeg_quality: int = 65
    max_pixels: int = 150_000_000

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PageTask":
        return _from_json(cls, data)


@dataclass(frozen=True)
class PageResult:
    """The outcome of a page task: a failure (``error`` set, nothing else), or the archive image's
    reference in the page cache with its geometry and OCR."""

    file: str
    page: int
    error: str | None = None
    image_key: str | None = None   # page-cache key of the encoded archive image
    encoding: str = ""             # "jpeg" (DCTDecode) or "flate1" (1-bit, FlateDecode)
    width: int = 0
    height: int = 0
    dpi: tuple[float, float] = (0, 0)
    dpi_source: str = ""           # header | paper-size:<A4, Letter, ...> | default (see ocr.paper)
    color_mode: str = ""           # rgb | gray | bitonal
    orientation: int = 0
    skew_deg: float = 0.0
    placement: dict | None = None  # how the PDF places the image on the page (ocr.page.Placement), None: it is the page
    confidence: float = 0.0
    flags: tuple[str, ...] = ()
    words: tuple[dict, ...] = ()
    text: str = ""
    review: tuple[dict, ...] = ()  # lines for a person to read again (ocr.review)
    cached: bool = False
    code: str = ""                 # the page stage's version that made it (pipeline.pages.code_version)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PageResult":
        return _from_json(cls, data)


# --------------------------------------------------------------------------- ingest

@dataclass(frozen=True)
class PageSummary:
    number: int
    file: str
    page: int
    orientation: int
    skew_deg: float
    ocr_confidence: float
    flags: tuple[str, ...]

    @classmethod
    def from_manifest(cls, page: dict) -> "PageSummary":
        # only the number is certain: a manifest edited by hand may pass the schema without the rest
        skew = page.get("skewDeg", page.get("skew_deg", 0.0))  # sohoa.manifest/1 wrote skew_deg
        source = page.get("source") or {}
        return cls(page.get("number", 0), source.get("file", ""), source.get("page", 0), page.get("orientation", 0),
                   skew, page.get("ocrConfidence", 0.0), tuple(page.get("flags", ())))

    def to_json(self) -> dict:
        return {"number": self.number, "file": self.file, "page": self.page, "orientation": self.orientation,
                "skewDeg": self.skew_deg, "ocrConfidence": self.ocr_confidence, "flags": list(self.flags)}


@dataclass(frozen=True)
class IngestRequest:
    """One document to add to a dossier: its files' pages in order."""

    dossier_code: str
    files: tuple[str, ...]
    title: str
    maintenance: str | None = None
    paper_file_code: str | None = None
    jobs: int | None = None
    # the paper file's first and last dates (31/12/2019 or ISO, checked by ``dossier.paper_dates``):
    # the dossier's startDate and endDate, from which its retention counts, not the days it was digitised
    paper_dates: tuple[str, str] | None = None
    unsigned: bool = False        # store without a signature: an explicit choice, recorded
    change_recorded: bool = False  # allow changing a recorded paper file code or maintenance code, recorded
    # files as the citizen handed them in, kept unchanged with the document but not read as its
    # pages: the counter's files whose pages the operator rearranged (``files`` then holds them one by one)
    handed_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestSummary:
    dossier_code: str
    doc_id: str
    title: str
    duplicate: bool
    pages: tuple[PageSummary, ...]
    pdf: dict                       # {key, sha256, size} of the signed PDF/A
    signature: dict | None          # the manifest's signature record
    warnings: tuple[str, ...] = ()
    reused_pages: int = 0           # pages finished by an earlier, failed attempt and not redone

    def to_json(self) -> dict:
        out = {"dossierCode": self.dossier_code, "docId": self.doc_id, "title": self.title,
               "duplicate": self.duplicate, "pages": [p.to_json() for p in self.pages], "pdf": self.pdf,
               "signature": self.signature, "reusedPages": self.reused_pages}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# --------------------------------------------------------------------------- dossiers

@dataclass(frozen=True)
class DocumentView:
    """A document of a dossier as an officer sees it."""

    doc_id: str
    title: str
    number_of_pages: int
    signature: dict | None
    pdf: dict
    flagged_pages: tuple[PageSummary, ...]
    review: tuple[dict, ...] = ()  # lines to read against the page: {page, line, text, reason, conf, box, alt?}

    @classmethod
    def from_manifest(cls, doc: dict) -> "DocumentView":
        pages = doc.get("pages", [])  # the schema requires docId, sequence and pdf only
        flagged = tuple(PageSummary.from_manifest(p) for p in pages if p.get("flags"))
        review = tuple({"page": p.get("number", 0), **line} for p in pages for line in p.get("review", ()))
        return cls(doc["docId"], doc.get("title", ""), doc.get("numberOfPage", len(pages)), doc.get("signature"),
                   doc["pdf"], flagged, review)


@dataclass(frozen=True)
class DossierView:
    """A dossier: its manifest (the JSON ``show --json`` prints) and typed documents."""

    code: str
    title: str
    total_doc: int
    number_of_page: int
    updated: str
    documents: tuple[DocumentView, ...]
    manifest: dict = field(repr=False, compare=False)
    paper_file_code: str = ""
    maintenance: str | None = None
    start_date: str = ""            # ISO
    end_date: str = ""
    dates_from_paper: bool = False  # the paper file's own dates, else the days it was digitised

    @classmethod
    def from_manifest(cls, manifest: dict) -> "DossierView":
        documents = tuple(DocumentView.from_manifest(d) for d in manifest["documents"])
        return cls(manifest["dossierCode"], manifest.get("title", ""), manifest.get("totalDoc", len(documents)),
                   manifest.get("numberOfPage", sum(d.number_of_pages for d in documents)), manifest.get("updated", ""),
                   documents, manifest, manifest.get("paperFileCode") or manifest["dossierCode"],
                   manifest.get("maintenance"), manifest.get("startDate") or "", manifest.get("endDate") or "",
                   manifest.get("datesFrom") == "paper")

    @property
    def maintenance_vi(self) -> str:
        """"06 (10 năm)", or that none was given."""
        if not self.maintenance:
            return "chưa ghi"
        return f"{self.maintenance} ({MAINTENANCE_VI.get(self.maintenance, '?')})"

    def to_json(self) -> dict:
        return self.manifest


@dataclass(frozen=True)
class ExportResult:
    code: str
    directory: str
    files: tuple[str, ...]   # the PDFs written, then manifest.json

    def to_json(self) -> dict:
        return {"dossierCode": self.code, "directory": self.directory, "files": list(self.files)}


@dataclass(frozen=True)
class DocumentLink:
    doc_id: str
    url: str
    expires_seconds: int

    def to_json(self) -> dict:
        return {"docId": self.doc_id, "url": self.url, "expiresSeconds": self.expires_seconds}


# --------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class DocumentVerdict:
    """One stored document judged: fixity against the manifest, signature, PDF/A, the other objects."""

    doc_id: str | None
    ok: bool
    checks: dict[str, bool]
    message_vi: str
    message_en: str
    details: PdfVerdict | None = None

    def to_json(self) -> dict:
        return {"docId": self.doc_id, "ok": self.ok, "checks": dict(self.checks), "messageVi": self.message_vi,
                "messageEn": self.message_en, "details": self.details.to_json() if self.details else None}


@dataclass(frozen=True)
class RenewalResult:
    doc_id: str | None
    renewed: bool
    message_vi: str
    message_en: str
    expires: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"docId": self.doc_id, "renewed": self.renewed, "expires": self.expires,
                               "messageVi": self.message_vi, "messageEn": self.message_en}
        if self.sha256:
            out["sha256"] = self.sha256
        return out


@dataclass(frozen=True)
class DossierReport:
    """Per-dossier outcomes of verify or renew over several dossiers; ``failed`` if any did not pass."""

    results: dict[str, tuple]   # code -> tuple of DocumentVerdict or RenewalResult
    failed: bool
    objects: dict | None = None  # verify --all: the whole store's objects checked (pipeline.fixity.StoreAudit)
    unindexed: tuple[str, ...] = ()  # verify --all: dossiers in the store the search index does not hold

    def to_json(self) -> dict:
        return {code: [r.to_json() for r in items] for code, items in self.results.items()}


# --------------------------------------------------------------------------- search and logs

@dataclass(frozen=True)
class SearchHit:
    dossier_code: str
    doc_id: str
    page: int
    snippet: str
    score: float
    exact: bool
    tier: str = "all"   # phrase | phrase-folded | near | all (see storage.index)
    title: str | None = None  # the document's

    def to_json(self) -> dict:
        return {"dossierCode": self.dossier_code, "docId": self.doc_id, "title": self.title, "page": self.page,
                "snippet": self.snippet, "score": self.score, "exact": self.exact, "tier": self.tier}


@dataclass(frozen=True)
class TitleHit:
    """A dossier (``doc_id`` None) or a document whose title holds the query's words."""
    dossier_code: str
    doc_id: str | None
    title: str
    exact: bool  # with the query's diacritics

    def to_json(self) -> dict:
        return {"dossierCode": self.dossier_code, "docId": self.doc_id, "title": self.title, "exact": self.exact}


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[SearchHit, ...]
    offset: int = 0     # hits left out before these (a next page)
    more: bool = False  # more hits follow these
    titles: tuple[TitleHit, ...] = ()  # with the first page of hits only

    def to_json(self) -> dict:
        return {"query": self.query, "hits": [h.to_json() for h in self.hits], "offset": self.offset,
                "more": self.more, "titles": [t.to_json() for t in self.titles]}


@dataclass(frozen=True)
class ReindexResult:
    dossiers: int
    documents: int
    pages: int
    errors: tuple[dict, ...]   # {dossierCode, error} for each dossier that could not be read

    def to_json(self) -> dict:
        return {"dossiers": self.dossiers, "documents": self.documents, "pages": self.pages,
                "errors": list(self.errors)}


@dataclass(frozen=True)
class SystemInfo:
    """Where this installation keeps things and what it runs with (``sohoa info``)."""

    home: str
    home_origin: str
    dossiers: int | None      # None when counting would need a remote listing
    storage: dict
    index: dict
    signing: dict
    versions: dict

    def to_json(self) -> dict:
        return {"home": self.home, "homeOrigin": self.home_origin, "dossiers": self.dossiers,
                "storage": self.storage, "index": self.index, "signing": self.signing, "versions": self.versions}


@dataclass(frozen=True)
class CacheReport:
    pages: int
    bytes: int
    cleared: bool

    def to_json(self) -> dict:
        return {"pages": self.pages, "bytes": self.bytes, "cleared": self.cleared}


@dataclass(frozen=True)
class AuditReport:
    intact: bool
    lines: int            # lines read; where the chain broke when not intact
    events: tuple[dict, ...]

    def to_json(self) -> dict:
        return {"intact": self.intact, "lines": self.lines, "events": list(self.events)}



# --------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class JobView:
    """A document being converted, as any machine sees it in the shared database."""

    id: str
    dossier: str
    title: str
    state: str                 # queued | running | finishing | done | failed | discarded
    pages_total: int
    pages_done: int
    pages_failed: int
    doc_id: str | None = None
    error: dict | None = None  # {code, exit, message, detail} of a failed job
    attempts: int = 1
    batch: str | None = None
    source: str | None = None
    created: str = ""
    updated: str = ""
    kind: str = "ingest"       # "bulk": the bulk run sends the finishing tasks, in the source's order
    resumed: bool = False      # (an upload's answer) the same files were already being converted: this job

    @classmethod
    def from_row(cls, job: dict) -> "JobView":
        import json

        error = json.loads(job["error"]) if job.get("error") else None
        return cls(job["id"], job["dossier"], job["title"], job["state"], job["pages_total"], job["pages_done"],
                   job["pages_failed"], job.get("doc_id"), error, job.get("attempts") or 1, job.get("batch"),
                   job.get("source"), job.get("created") or "", job.get("updated") or "", job.get("kind") or "ingest")

    @property
    def active(self) -> bool:
        """Queued, running or finishing: not yet done, failed or given up."""
        return self.state in ACTIVE_JOB_STATES

    def to_json(self) -> dict:
        return {"job": self.id, "dossierCode": self.dossier, "title": self.title, "state": self.state,
                "pages": self.pages_total, "pagesDone": self.pages_done, "pagesFailed": self.pages_failed,
                "docId": self.doc_id, "error": self.error, "attempts": self.attempts, "batch": self.batch,
                "source": self.source, "created": self.created, "updated": self.updated}
