"""Intake drafts: the counter screen's pages before they become a document.

At the counter an operator names the dossier, drops files (JPEG, PNG, TIFF, PDF; a file may
hold several pages), sees each page straightened as a thumbnail with its quality flags,
reorders, replaces or removes pages, then confirms: ``materialise`` writes the pages, in order,
as files for one ``IngestRequest`` (the normal ingest job, which signs and indexes), and
``discard`` forgets the draft.

Everything lives in the object store, so nothing is lost when the browser closes and any web
process can serve the next request::

    work/intake/<draft>/draft.json                 id, dossier code, owner, created; when it was
                                                   confirmed (``close``: no longer open)
    work/intake/<draft>/files/<file>.<ext>         an uploaded file's bytes, stored before anything else
    work/intake/<draft>/files/<file>.json          its record (name, type, SHA-256, pages found)
    work/intake/<draft>/pages/<page>.json          a page: its file and page number, geometry, flags
    work/intake/<draft>/pages/<page>.<ext>         a page of a multi-page file as a file of its own
                                                   (a one-page PDF cut by pikepdf, a TIFF frame
                                                   re-encoded losslessly); a one-page file's page is
                                                   the uploaded file itself
    work/intake/<draft>/thumbs/<page>.jpg          the straightened thumbnail (240 px wide)
    work/intake/<draft>/order.json                 the page order the operator chose
    work/intake/<draft>/errors/<batch>.json        the files and pages an upload could not use
    work/intake/owners/<sha256(owner)[:32]>/<draft>.json   a user's open drafts (``list_open``)

``work/`` is the area with a lifecycle rule (docs/deployment.md): a draft abandoned for longer
than the rule's age disappears by itself (the local store has no such rule; ``discard`` it).

Each page is its own object, so two uploads running at once never overwrite each other: the
order is ``order.json``'s page ids that still exist, then the pages it does not name yet, in
the order their uploads started. Only the operator's own moves and replacements write
``order.json``.

A draft belongs to its owner: another user's draft id answers NotFound, as one that does not
exist. A bad file or page gives an error naming the file and page (kept with the draft until
``clear_errors``); the other files and pages go on.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import secrets
import tempfile
import time
import unicodedata
from dataclasses import dataclass, replace as dc_replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from ocr import cleanup, geometry, orientation as orient, quality
from ocr.engine import OcrEngine, PageTimeUp
from ocr.geometry import quarter_turn
from ocr.page import archive_image, black_text_marks, colour_text_gray, coloured_ink, straighten
from ocr.paper import page_resolution
from ocr.recognise import TesseractEngine
from storage.base import ObjectStore
from storage.errors import NotFound as ObjectNotFound, StorageUnavailable

from . import dossier, sheets
from .errors import InputError, NotFound, UsageError, without_frames
from .inputs import (EXTENSION, EXTENSIONS, MEDIA_TYPES, decoded_frame, load_page, open_image, page_frames, read_source,
                     shown_page, sniff, stated_extension)
from .repository import refuse_if_disposed

PREFIX = "work/intake/"
OWNERS = PREFIX + "owners/"
THUMB_WIDTH = 240
THUMB_QUALITY = 80
WORK_DPI = 150          # the preview looks at a copy of the page at most this fine
INK_LEVEL = 160         # as ocr.page: grey level below which the cleaned copy counts as ink
SKEW_SHOWN_DEG = 0.3    # a smaller skew is not worth a flag
MIN_DPI = 200           # the digitisation standard's minimum resolution for administrative papers
DARK_PAPER = 150        # paper (the sheet's 90th percentile grey) darker than this: a dark scan
_DRAFT_ID = re.compile(r"[0-9a-f]{32}")
_ITEM_ID = re.compile(r"[0-9a-f]{12}")

FLAG_LABELS = {
    "blank": "Trang trắng (không thấy chữ)",
    "blurry": "Ảnh bị mờ",
    "cut_off": "Có thể bị cắt mất một phần (chữ chạm mép)",
    "dark": "Ảnh quá tối",
    "low_dpi": "Độ phân giải thấp",
    "no_dpi": "Tệp không ghi độ phân giải",
    "rotated": "Trang bị xoay, đã xoay lại",
    "skewed": "Trang bị nghiêng, đã chỉnh thẳng",
}
WARNINGS = {"blank", "blurry", "cut_off", "dark", "low_dpi"}  # the others were corrected or are only information


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Flag:
    code: str        # blank | blurry | cut_off | dark | low_dpi | no_dpi | rotated | skewed
    label: str       # what the operator reads (Vietnamese), with the figure when there is one
    warning: bool    # True: the operator should look (rescan); False: corrected, or information

    def to_json(self) -> dict:
        return {"code": self.code, "label": self.label, "warning": self.warning}

    @classmethod
    def from_json(cls, data: dict) -> "Flag":
        return cls(data["code"], data["label"], bool(data["warning"]))


@dataclass(frozen=True)
class Page:
    """One page of the draft: where its bytes are, what the preview found."""

    id: str
    file_id: str
    file: str                # the uploaded file's name
    page: int                # 1-based, within that file
    kind: str                # jpeg | png | tiff | pdf: the type of the page's own bytes
    key: str                 # object key of the page's bytes (the uploaded file for a one-page file)
    sha256: str
    thumbnail_key: str
    width: int               # of the straightened page, in pixels of the page as scanned
    height: int
    dpi: float
    dpi_source: str          # header | paper-size | default (ocr.paper)
    orientation: int         # counter-clockwise quarter turn of the content in the scan (undone)
    skew_deg: float          # the small angle undone
    flags: tuple[Flag, ...]
    added: str               # sort key: when its upload started, file and page number

    @property
    def warnings(self) -> tuple[Flag, ...]:
        return tuple(f for f in self.flags if f.warning)

    @property
    def sheet(self) -> sheets.Sheet:
        # kept as scanned: flagged blank before it was turned or straightened (a page found blank
        # only once straightened has a turn of its own, as in the page stage)
        kept = any(f.code == "blank" for f in self.flags) and self.orientation == 0 and self.skew_deg == 0
        return sheets.Sheet(kept, self.orientation, (self.width / self.dpi, self.height / self.dpi))

    def to_json(self) -> dict:
        return {"id": self.id, "fileId": self.file_id, "file": self.file, "page": self.page, "kind": self.kind,
                "key": self.key, "sha256": self.sha256, "thumbnailKey": self.thumbnail_key, "width": self.width,
                "height": self.height, "dpi": self.dpi, "dpiSource": self.dpi_source,
                "orientation": self.orientation, "skewDeg": self.skew_deg,
                "flags": [f.to_json() for f in self.flags], "added": self.added}

    @classmethod
    def from_json(cls, d: dict) -> "Page":
        return cls(d["id"], d["fileId"], d["file"], int(d["page"]), d["kind"], d["key"], d["sha256"],
                   d["thumbnailKey"], int(d["width"]), int(d["height"]), float(d["dpi"]), d["dpiSource"],
                   int(d["orientation"]), float(d["skewDeg"]), tuple(Flag.from_json(f) for f in d["flags"]),
                   d["added"])


@dataclass(frozen=True)
class UploadedFile:
    id: str
    name: str
    kind: str | None         # None: not a JPEG, PNG, TIFF or PDF
    key: str
    sha256: str
    size: int
    pages: int               # pages found in it (those that failed included)
    failed: int              # pages that could not be used (1 for a file unusable as a whole)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "kind": self.kind, "key": self.key, "sha256": self.sha256,
                "size": self.size, "pages": self.pages, "failed": self.failed}

    @classmethod
    def from_json(cls, d: dict) -> "UploadedFile":
        return cls(d["id"], d["name"], d["kind"], d["key"], d["sha256"], int(d["size"]), int(d["pages"]),
                   int(d["failed"]))


@dataclass(frozen=True)
class PageError:
    """A file or page an upload could not use; ``page`` is None when the whole file is unusable."""

    file: str
    page: int | None
    message: str             # Vietnamese, naming the file and the page

    def to_json(self) -> dict:
        return {"file": self.file, "page": self.page, "message": self.message}

    @classmethod
    def from_json(cls, d: dict) -> "PageError":
        return cls(d["file"], d.get("page"), d["message"])


@dataclass(frozen=True)
class Draft:
    id: str
    dossier_code: str
    owner: str
    created: str
    pages: tuple[Page, ...]          # in the document's order
    files: tuple[UploadedFile, ...]
    errors: tuple[PageError, ...]

    @property
    def turns(self) -> list[int]:
        """The quarter turn each page takes from its neighbours in the document (``pipeline.sheets``:
        a blank page in a stack fed sideways), as the stored document will show it."""
        return sheets.turns([p.sheet for p in self.pages])

    def page(self, page_id: str) -> Page:
        for p in self.pages:
            if p.id == page_id:
                return p
        raise NotFound(f"Không có trang này trong bản nháp: {page_id}", "no such page in the draft")

    def to_json(self) -> dict:
        return {"id": self.id, "dossierCode": self.dossier_code, "owner": self.owner, "created": self.created,
                "pages": [p.to_json() for p in self.pages], "files": [f.to_json() for f in self.files],
                "errors": [e.to_json() for e in self.errors]}


# --------------------------------------------------------------------------- keys

def _draft_prefix(draft_id: str) -> str:
    if not isinstance(draft_id, str) or not _DRAFT_ID.fullmatch(draft_id):
        raise NotFound(f"Không tìm thấy bản nháp {str(draft_id)[:40]!r}", "no such draft")
    return f"{PREFIX}{draft_id}/"


def _owner_key(owner: str, draft_id: str) -> str:
    return f"{OWNERS}{hashlib.sha256(owner.encode()).hexdigest()[:32]}/{draft_id}.json"


def _item(prefix: str, folder: str, item_id: str, ext: str) -> str:
    if not _ITEM_ID.fullmatch(item_id or ""):
        raise NotFound(f"Không có trang này trong bản nháp: {str(item_id)[:40]!r}", "no such page in the draft")
    return f"{prefix}{folder}/{item_id}.{ext}"


def _new_id() -> str:
    return secrets.token_hex(6)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _put_json(store: ObjectStore, key: str, data) -> None:
    store.put(key, json.dumps(data, ensure_ascii=False).encode(), "application/json", {"kind": "intake"})


def _get_json(store: ObjectStore, key: str):
    return json.loads(store.get(key))


# --------------------------------------------------------------------------- drafts

def create(store: ObjectStore, dossier_code: str, owner: str) -> Draft:
    """A new, empty draft of a document for ``dossier_code`` (validated), belonging to ``owner``."""
    code = dossier.validate_key(dossier_code)
    owner = _check_owner(owner)
    refuse_if_disposed(store, code)  # told now, not when the papers are scanned and confirmed
    draft_id = secrets.token_hex(16)
    created = _now()
    _put_json(store, _draft_prefix(draft_id) + "draft.json",
              {"id": draft_id, "dossierCode": code, "owner": owner, "created": created})
    _put_json(store, _owner_key(owner, draft_id), {"id": draft_id, "dossierCode": code, "created": created})
    return Draft(draft_id, code, owner, created, (), (), ())


def get(store: ObjectStore, draft_id: str, owner: str) -> Draft:
    """The draft as it is now: pages in order, files, errors. NotFound when it is not ``owner``'s."""
    meta = _meta(store, draft_id, owner)
    prefix = _draft_prefix(draft_id)
    pages, files, errors = [], [], []
    for key in store.list(prefix):
        rest = key[len(prefix):]
        try:
            if rest.startswith("pages/") and rest.endswith(".json"):
                pages.append(Page.from_json(_get_json(store, key)))
            elif rest.startswith("files/") and rest.endswith(".json"):
                files.append(UploadedFile.from_json(_get_json(store, key)))
            elif rest.startswith("errors/") and rest.endswith(".json"):
                errors.extend(PageError.from_json(e) for e in _get_json(store, key))
        except ObjectNotFound:  # removed while we listed
            continue
    return Draft(meta["id"], meta["dossierCode"], meta["owner"], meta["created"],
                 _ordered(store, prefix, pages), tuple(files), tuple(errors))


def list_open(store: ObjectStore, owner: str) -> tuple[Draft, ...]:
    """``owner``'s drafts, the newest first."""
    owner = _check_owner(owner)
    prefix = _owner_key(owner, "x").rsplit("/", 1)[0] + "/"
    drafts = []
    for key in store.list(prefix):
        draft_id = key[len(prefix):].removesuffix(".json")
        try:
            drafts.append(get(store, draft_id, owner))
        except NotFound:
            _not_open(store, draft_id, owner, key)
    return tuple(sorted(drafts, key=lambda d: d.created, reverse=True))


CLOSED_KEEP_SECONDS = 3600  # a confirmed draft left by a process that stopped is discarded after this


def _not_open(store: ObjectStore, draft_id: str, owner: str, entry: str) -> None:
    """A listed draft that is no longer open: discarded or expired by the lifecycle rule (its
    entry is dropped), or confirmed and not yet discarded. A confirmed draft's files are kept
    while the pages read ahead from them are read (seconds); one still here an hour later was
    confirmed by a process that stopped before it could discard it, and is discarded now."""
    try:
        meta = _meta(store, draft_id, owner, closed_too=True)
    except NotFound:
        _delete(store, entry)
        return
    if time.time() - float(meta["closed"]) > CLOSED_KEEP_SECONDS:
        discard(store, draft_id, owner)



def close(store: ObjectStore, draft_id: str, owner: str) -> None:
    """The draft is confirmed: no longer open (it answers NotFound, ``list_open`` leaves it out),
    its objects kept until ``discard``."""
    meta = _meta(store, draft_id, owner)
    _put_json(store, _draft_prefix(draft_id) + "draft.json", {**meta, "closed": time.time()})


def discard(store: ObjectStore, draft_id: str, owner: str) -> None:
    """Forget the draft and everything uploaded to it (after its document is stored, or on cancel)."""
    _meta(store, draft_id, owner, closed_too=True)
    for key in store.list(_draft_prefix(draft_id)):
        if not key.endswith("/draft.json"):
            _delete(store, key)
    _delete(store, _draft_prefix(draft_id) + "draft.json")  # last: a half-discarded draft is still found
    _delete(store, _owner_key(owner, draft_id))


def clear_errors(store: ObjectStore, draft_id: str, owner: str) -> Draft:
    """The operator has read the upload errors: forget them."""
    _meta(store, draft_id, owner)
    prefix = _draft_prefix(draft_id)
    for key in store.list(prefix + "errors/"):
        _delete(store, key)
    return get(store, draft_id, owner)


def _check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise UsageError("Thiếu người dùng sở hữu bản nháp", "a draft needs an owner")
    return owner


def _meta(store: ObjectStore, draft_id: str, owner: str, *, closed_too: bool = False) -> dict:
    key = _draft_prefix(draft_id) + "draft.json"
    try:
        meta = _get_json(store, key)
    except ObjectNotFound:
        meta = None
    if meta is None or meta.get("owner") != owner:  # another user's draft is not revealed
        raise NotFound(f"Không tìm thấy bản nháp {draft_id}", "no such draft")
    if meta.get("closed") is not None and not closed_too:
        raise NotFound(f"Bản nháp {draft_id} đã được xác nhận thành tài liệu; xem lượt xử lý của nó",
                       "draft already confirmed")
    return meta


def _delete(store: ObjectStore, key: str) -> None:
    try:
        store.delete(key)
    except ObjectNotFound:
        pass


def _ordered(store: ObjectStore, prefix: str, pages: list[Page]) -> tuple[Page, ...]:
    try:
        chosen = _get_json(store, prefix + "order.json")
    except ObjectNotFound:
        chosen = []
    by_id = {p.id: p for p in pages}
    first = [by_id.pop(i) for i in chosen if i in by_id]
    return tuple(first + sorted(by_id.values(), key=lambda p: p.added))


def _save_order(store: ObjectStore, draft_id: str, page_ids: list[str]) -> None:
    _put_json(store, _draft_prefix(draft_id) + "order.json", page_ids)


# --------------------------------------------------------------------------- editing

def add_files(store: ObjectStore, draft_id: str, files: Sequence[tuple[str, bytes]], *, max_pixels: int,
              owner: str, lang: str = "vie", tessdata: str | None = None, time_limit: float | None = None,
              refused: Sequence[tuple[str, str]] = ()) -> Draft:
    """Add the files' pages at the end of the draft, in the files' order.

    Each file's bytes are stored first, then split into pages, each page previewed (orientation
    and deskew as the pipeline does them, a straightened thumbnail, quality flags). A file or
    page that cannot be used becomes an error entry naming it; the others go on. A page whose
    preview is not done ``time_limit`` seconds after it started is such a page (its tesseract
    stopped), so a page tesseract never ends cannot hold the counter's upload for ever.
    ``refused``: (name, why) of files sent with these that were not taken, listed as errors too.
    One upload to a draft at a time: the caller holds the draft's lock."""
    meta = _meta(store, draft_id, owner)
    reader = _Reader(lang, tessdata, time_limit)
    started = time.time_ns()
    existing = get(store, draft_id, owner)
    errors: list[PageError] = [_error(InputError(name, why)) for name, why in refused]
    added: list[Page] = []
    for index, (name, data) in enumerate(files):
        new, failed = _add_file(store, meta, existing.pages + tuple(added), name, data, max_pixels, reader,
                                f"{started:020d}.{index:04d}")
        added += new
        errors += failed
    _save_errors(store, draft_id, errors)
    return get(store, draft_id, owner)


def remove(store: ObjectStore, draft_id: str, page_id: str, owner: str) -> Draft:
    """Take a page out of the draft (its uploaded file stays until the draft is discarded)."""
    draft = get(store, draft_id, owner)
    page = draft.page(page_id)
    _forget_page(store, draft_id, page)
    return get(store, draft_id, owner)


def move(store: ObjectStore, draft_id: str, page_id: str, position: int, owner: str) -> Draft:
    """Put a page at ``position`` (0-based; past the end means last)."""
    draft = get(store, draft_id, owner)
    draft.page(page_id)
    order = [p.id for p in draft.pages if p.id != page_id]
    order.insert(max(0, min(int(position), len(order))), page_id)
    _save_order(store, draft_id, order)
    return get(store, draft_id, owner)


def replace(store: ObjectStore, draft_id: str, page_id: str, name: str, data: bytes, *, max_pixels: int,
            owner: str, lang: str = "vie", tessdata: str | None = None, time_limit: float | None = None) -> Draft:
    """Put the pages of a new file (a rescan) where the page is. When the new file gives no usable
    page, the old page stays and the draft's errors say why."""
    meta = _meta(store, draft_id, owner)
    draft = get(store, draft_id, owner)
    old = draft.page(page_id)
    others = tuple(p for p in draft.pages if p.id != page_id)
    new, errors = _add_file(store, meta, others, name, data, max_pixels, _Reader(lang, tessdata, time_limit),
                            f"{time.time_ns():020d}.0000")
    if not new:  # the operator must see that the page was not replaced, not only that the file is bad
        number = [p.id for p in draft.pages].index(page_id) + 1
        errors = [dc_replace(e, message=f"Trang {number} chưa được thay, vẫn giữ trang cũ: {e.message}") for e in errors]
    _save_errors(store, draft_id, errors)
    if new:
        current = [p.id for p in get(store, draft_id, owner).pages if p.id not in {n.id for n in new}]
        at = current.index(page_id) if page_id in current else len(current)
        _save_order(store, draft_id, current[:at] + [p.id for p in new] + current[at + 1:])
        _forget_page(store, draft_id, old)
    return get(store, draft_id, owner)


def _check_turn(turn: int) -> None:
    if turn not in (0, 90, 180, 270):
        raise NotFound(f"Không có ảnh xoay {str(turn)[:8]}° của trang", "turn must be 0, 90, 180 or 270")


def thumbnail(store: ObjectStore, draft_id: str, page_id: str, owner: str, turn: int = 0) -> bytes:
    """The page's straightened thumbnail (JPEG), turned by ``turn`` (``Draft.turns``) if asked."""
    _check_turn(turn)
    _meta(store, draft_id, owner)
    key = _item(_draft_prefix(draft_id), "thumbs", page_id, "jpg")
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise NotFound(f"Không có trang này trong bản nháp: {page_id}", "no such page in the draft") from None
    return _thumb_jpeg(quarter_turn(Image.open(io.BytesIO(data)), turn)) if turn else data


VIEW_WIDTH = 1240   # about 150 dpi across an A4 page: small print can be read on a screen
VIEW_QUALITY = 85


def page_view(store: ObjectStore, draft_id: str, page_id: str, owner: str, max_pixels: int, turn: int = 0) -> bytes:
    """The page straightened as its thumbnail is, VIEW_WIDTH wide (JPEG): the operator judges
    from it whether the page can be read, which a 160-pixel thumbnail could not say. Made when
    asked, from the page's own bytes."""
    _check_turn(turn)
    page = next((p for p in get(store, draft_id, owner).pages if p.id == page_id), None)
    if page is None:
        raise NotFound(f"Không có trang này trong bản nháp: {page_id}", "no such page in the draft")
    kept = _view_key(draft_id, page_id, turn)
    try:  # made once: a page is decoded whole to make it (review of 6e8bc5a)
        return store.get(kept)
    except ObjectNotFound:
        pass
    image, _ = load_page(page.file, page.kind, store.get(page.key), 1, max_pixels)  # its key holds it alone
    image = image.convert("L") if image.mode in ("1", "L") else image.convert("RGB")
    longest = max(image.size)
    if longest > 2 * VIEW_WIDTH:  # turned and deskewed at twice the size shown, not at the scan's
        factor = 2 * VIEW_WIDTH / longest
        image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                             Image.Resampling.BOX)
    white = 255 if image.mode == "L" else (255, 255, 255)
    straight = geometry.straighten(quarter_turn(image, (page.orientation + turn) % 360), page.skew_deg, white)
    if straight.width > VIEW_WIDTH:
        straight = straight.resize((VIEW_WIDTH, max(1, round(straight.height * VIEW_WIDTH / straight.width))),
                                   Image.Resampling.LANCZOS)
    out = io.BytesIO()
    straight.save(out, "JPEG", quality=VIEW_QUALITY, optimize=True)
    store.put(kept, out.getvalue(), "image/jpeg", {"kind": "intake-view"})
    return out.getvalue()


def _view_key(draft_id: str, page_id: str, turn: int) -> str:
    return _item(_draft_prefix(draft_id), "views", page_id, f"{turn}.jpg")


def materialise(store: ObjectStore, draft_id: str, folder: Path, owner: str) -> list[Path]:
    """The draft's pages as files in ``folder``, in order, for ``IngestRequest(code, files, title)``.

    A file whose pages are all there, together and in their own order, is written whole (the
    citizen's original bytes become the dossier's original); otherwise each page is written as
    its own file (a one-page PDF or a losslessly re-encoded TIFF frame). The bytes are checked
    against the SHA-256 recorded at upload."""
    draft = get(store, draft_id, owner)
    if not draft.pages:
        raise UsageError("Bản nháp chưa có trang nào", "the draft has no pages")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {f.id: f for f in draft.files}
    written = []
    for page, whole in _pieces(draft):
        n = len(written) + 1
        if whole is not None:
            data, kind, label = store.get(whole.key, sha256=whole.sha256), whole.kind, _stem(whole.name)
        else:
            data, kind = store.get(page.key, sha256=page.sha256), page.kind
            file = files.get(page.file_id)
            label = _stem(page.file) + (f"_trang-{page.page}" if file is None or file.pages > 1 else "")
        path = folder / f"{n:03d}_{label}.{EXTENSION[kind]}"
        path.write_bytes(data)
        written.append(path)
    return written


def handed_in(store: ObjectStore, draft_id: str, owner: str) -> list[tuple[str, bytes]]:
    """The files the draft's pages come from that ``materialise`` does not write whole (split,
    reordered, some pages removed or replaced), each (name, bytes) as the citizen handed it in,
    for ``IngestRequest.handed_in``: they are kept unchanged with the document. A file none of
    whose pages is left is not: the operator took it out."""
    draft = get(store, draft_id, owner)
    files = {f.id: f for f in draft.files}
    whole = {file.id for _, file in _pieces(draft) if file is not None}
    used = dict.fromkeys(p.file_id for p in draft.pages if p.file_id in files and p.file_id not in whole)
    return [(f"{n:03d}_{_stem(files[file_id].name)}.{EXTENSION.get(files[file_id].kind, 'bin')}",
             store.get(files[file_id].key, sha256=files[file_id].sha256)) for n, file_id in enumerate(used, start=1)]


def _pieces(draft: Draft) -> Iterator[tuple[Page, UploadedFile | None]]:
    """The draft's pages as ``materialise`` writes them, in order: (a page, None) for a page
    written alone, or (the first page of a file, that file) for a file written whole."""
    files = {f.id: f for f in draft.files}
    i = 0
    while i < len(draft.pages):
        file = files.get(draft.pages[i].file_id)
        run = _whole_file_run(draft.pages, i, file)
        yield draft.pages[i], file if run else None
        i += run or 1


def _whole_file_run(pages: tuple[Page, ...], start: int, file: UploadedFile | None) -> int:
    """How many pages from ``start`` are the whole of ``file`` in its own order (0: not the whole file)."""
    if file is None or file.failed or file.pages < 1 or start + file.pages > len(pages):
        return 0
    run = pages[start:start + file.pages]
    if all(p.file_id == file.id and p.page == k for k, p in enumerate(run, start=1)):
        return file.pages
    return 0


def _stem(name: str) -> str:
    stem = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).stem)
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "tep"
    return stem[:60]


def _forget_page(store: ObjectStore, draft_id: str, page: Page) -> None:
    prefix = _draft_prefix(draft_id)
    _delete(store, _item(prefix, "pages", page.id, "json"))  # first: the page is gone from the draft
    _delete(store, page.thumbnail_key)
    for turn in (0, 90, 180, 270):
        _delete(store, _view_key(draft_id, page.id, turn))
    if page.key.startswith(prefix + "pages/"):  # its own bytes, not the uploaded file's
        _delete(store, page.key)


def _save_errors(store: ObjectStore, draft_id: str, errors: list[PageError]) -> None:
    if errors:
        key = f"{_draft_prefix(draft_id)}errors/{time.time_ns():020d}-{secrets.token_hex(3)}.json"
        _put_json(store, key, [e.to_json() for e in errors])


# --------------------------------------------------------------------------- one upload

@dataclass(frozen=True)
class _Reader:
    """The recogniser of each page's preview: ``engine()`` starts the page's time limit."""
    lang: str
    tessdata: str | None
    time_limit: float | None

    def engine(self) -> OcrEngine:
        return TesseractEngine(self.lang, self.tessdata,
                               time.monotonic() + self.time_limit if self.time_limit else None)


def _add_file(store: ObjectStore, meta: dict, present: tuple[Page, ...], name: str, data: bytes,
              max_pixels: int, reader: _Reader, added: str) -> tuple[list[Page], list[PageError]]:
    """Store the file's bytes, then its pages one by one: (pages added, errors)."""
    prefix = _draft_prefix(meta["id"])
    name = dossier.visible_text(Path(str(name).replace("\\", "/")).name) or "tep"
    kind = sniff(data) if data else None
    file_id = _new_id()
    info = store.put(_item(prefix, "files", file_id, EXTENSION.get(kind, "bin")), data,
                     MEDIA_TYPES.get(kind, "application/octet-stream"), {"kind": "intake-upload", "filename": name})
    record = UploadedFile(file_id, name, kind, info.key, info.sha256, info.size, 0, 0)
    pages: list[Page] = []
    errors: list[PageError] = []
    try:
        split = _split(name, kind, data, max_pixels)
    except InputError as e:
        errors.append(_error(e))
        split = []
    seen = {p.sha256: p for p in present}
    with tempfile.TemporaryDirectory(prefix="sohoa-intake-") as tmp:
        for number, item in enumerate(split, start=1):
            if isinstance(item, InputError):  # (not raised: this frame, holding it, would be in its traceback)
                errors.append(_error(item))
                continue
            try:
                page_kind, page_bytes = item
                pages.append(_add_page(store, prefix, record, number, len(split), page_kind, page_bytes,
                                       max_pixels, reader, f"{added}.{number:05d}", seen, Path(tmp)))
                seen[pages[-1].sha256] = pages[-1]
            except InputError as e:
                errors.append(_error(e))
            except StorageUnavailable:
                raise
            except Exception as e:  # any decoder or preview failure is reported against its page
                errors.append(_error(InputError(name, f"không xử lý được trang ({type(e).__name__}: {e})", number)))
    record = dc_replace(record, pages=len(split), failed=len(errors))
    _put_json(store, _item(prefix, "files", file_id, "json"), record.to_json())
    return pages, errors


def _error(e: InputError) -> PageError:
    return PageError(e.file, e.page, e.message_vi)


def _split(name: str, kind: str | None, data: bytes, max_pixels: int) -> list:
    """The file's pages as (kind, bytes) each, or an InputError for a page that cannot be cut out;
    InputError for a file that is no usable file at all. Checks as ``inputs.read_source``."""
    if not data:
        raise InputError(name, "tệp rỗng, 0 byte (empty file)")
    if kind is None:
        raise InputError(name, "không phải JPEG, PNG, TIFF hay PDF (unsupported file type)")
    suffix = stated_extension(name)
    if suffix and suffix not in EXTENSIONS[kind]:
        raise InputError(name, f"phần mở rộng '{suffix}' không khớp nội dung "
                               f"{kind.upper()} (extension does not match content)")
    if kind == "pdf":
        return _split_pdf(name, data)
    return _split_image(name, kind, data, max_pixels)


def _split_pdf(name: str, data: bytes) -> list:
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            count = len(pdf.pages)
            if count == 0:
                raise InputError(name, "PDF không có trang nào (PDF has no pages)")
            if count == 1:
                return [("pdf", data)]
            pages = []
            for number in range(count):
                try:
                    one = pikepdf.new()
                    one.pages.append(pdf.pages[number])
                    out = io.BytesIO()
                    one.save(out, deterministic_id=True)  # the same page cut twice is the same bytes
                    pages.append(("pdf", out.getvalue()))
                except pikepdf.PdfError as e:
                    pages.append(InputError(name, f"không tách được trang PDF ({e})", number + 1))
            return pages
    except pikepdf.PasswordError:
        raise InputError(name, "PDF được mã hóa/có mật khẩu, không xử lý được (encrypted PDF)") from None
    except pikepdf.PdfError as e:
        raise InputError(name, f"PDF hỏng hoặc không đọc được ({e})") from None


def _split_image(name: str, kind: str, data: bytes, max_pixels: int) -> list:
    """The pages of an image file as ingest counts them (``inputs.page_frames``: a TIFF's previews
    and an MPO's gain map are no pages); a file of one page is its own page, bytes unchanged."""
    img = open_image(name, data, max_pixels)
    try:
        frames = page_frames(name, img, max_pixels, sizes=False)  # each page's size: decoded_frame
    except InputError as e:
        if e.page is None:
            raise
        # the pages after a damaged header cannot be reached: those before it are shown
        frames, damaged = page_frames(name, img, max_pixels, until=e.page - 1, sizes=False), without_frames(e)
    else:
        damaged = None
    if len(frames) == 1 and damaged is None:
        img.seek(frames[0])
        decoded_frame(name, img, 1, max_pixels)
        return [(kind, data)]
    pages: list = []
    for number, index in enumerate(frames, start=1):
        img.seek(index)
        try:
            pages.append(("tiff", frame_bytes(decoded_frame(name, img, number, max_pixels))))
        except InputError as e:
            pages.append(without_frames(e))
    return pages + ([damaged] if damaged is not None else [])


def frame_bytes(frame: Image.Image) -> bytes:
    """One decoded frame as a one-page TIFF of the page it shows (``inputs.shown_page``: 8-bit,
    unmirrored), losslessly: bitonal as CCITT G4, the rest deflated; the resolution and colour
    profile kept."""
    image = shown_page(frame)
    options = {"compression": "group4" if image.mode == "1" else "tiff_adobe_deflate"}
    if (dpi := frame.info.get("dpi")) is not None:
        options["dpi"] = tuple(float(v) for v in dpi)
    if (icc := frame.info.get("icc_profile")) is not None:
        options["icc_profile"] = icc
    out = io.BytesIO()
    image.save(out, "TIFF", **options)
    return out.getvalue()


def _add_page(store: ObjectStore, prefix: str, file: UploadedFile, number: int, count: int, kind: str,
              data: bytes, max_pixels: int, reader: _Reader, added: str, seen: dict[str, Page],
              tmp: Path) -> Page:
    """Check one page's bytes as ingest will, preview it, store its bytes, thumbnail and record."""
    digest = hashlib.sha256(data).hexdigest()
    if digest in seen:
        twin = seen[digest]
        raise InputError(file.name, f"giống hệt trang đã có ({twin.file}, trang {twin.page}); trang lặp không "
                                    "được thêm. Nếu giấy có hai trang giống hệt nhau, hãy quét lại trang đó",
                         number if count > 1 else None)
    # the same checks ingest's read_source will make of this page's file, so a page shown here
    # is a page ingest accepts
    probe = tmp / f"page-{number}.{EXTENSION[kind]}"
    probe.write_bytes(data)
    try:
        read_source(probe, max_pixels)
        image, stated = load_page(file.name, kind, data, 1, max_pixels)
    except InputError as e:
        raise InputError(file.name, e.reason, number if count > 1 or e.page is None else e.page, e.detail) from None
    try:
        found = preview(image, stated, reader.engine())
    except PageTimeUp:
        raise InputError(file.name, f"quá thời hạn {reader.time_limit:g} giây khi xem trước trang (tesseract bị "
                                    "dừng); hãy gửi lại hoặc quét lại trang", number if count > 1 else None) from None
    page_id = _new_id()
    key = file.key if count == 1 else _item(prefix, "pages", page_id, EXTENSION[kind])
    if count > 1:
        store.put(key, data, MEDIA_TYPES[kind], {"kind": "intake-page", "filename": file.name})
    thumb_key = _item(prefix, "thumbs", page_id, "jpg")
    store.put(thumb_key, found.thumbnail, "image/jpeg", {"kind": "intake-thumbnail"})
    page = Page(page_id, file.id, file.name, number, kind, key, digest, thumb_key, found.width, found.height,
                found.dpi, found.dpi_source, found.orientation, found.skew_deg, found.flags, added)
    _put_json(store, _item(prefix, "pages", page_id, "json"), page.to_json())
    return page


# --------------------------------------------------------------------------- preview

@dataclass(frozen=True)
class Preview:
    thumbnail: bytes         # JPEG, THUMB_WIDTH wide, the page straightened as the archive will be
    width: int
    height: int
    dpi: float
    dpi_source: str
    orientation: int
    skew_deg: float
    flags: tuple[Flag, ...]


def preview(image: Image.Image, stated: tuple[int, int] | None, engine: OcrEngine | None = None, *,
            shown: Image.Image | None = None) -> Preview:
    """Straighten a page as ``ocr.page.process_page`` does (quarter turn, deskew, border filled),
    without reading it: a thumbnail and the flags the image alone gives.

    Blank or not, orientation and skew are found on the page itself by the band test
    (``ocr.orientation.measure``: one or two short tesseract readings of the densest band, OSD when
    they disagree; the working copy straightened meanwhile). process_page uses the same test for a
    page on its side, and for a page whose lines run across it when its own reading is not
    plainly upright; otherwise it takes that reading's "the right way up", which the band test
    agreed with on every real and rendered page measured (bench/README.md), so ingest turns the
    page the same way. The straightened thumbnail and the other flags are made from a copy at
    most WORK_DPI fine; the page is not read here, so a page whose reading by ingest runs down it
    (its line axis taken wrongly: none of the real and rendered pages measured since 22fe348) is
    turned the other way by ingest only. A page written in coloured ink is looked at, as ingest
    reads it, in its grey copy where that ink is dark (``ocr.page.colour_text_gray``): ``image``
    is then that copy, and ``shown`` the colour scan the thumbnail is made of."""
    engine = engine or TesseractEngine("vie")
    resolution = page_resolution(image.size, stated)
    dpi = resolution.dpi
    work, work_dpi = _working_copy(image, dpi)
    seen = work if shown is None else _working_copy(shown, dpi)[0]  # what the thumbnail shows
    flags: list[Flag] = []
    if dpi < MIN_DPI - 0.5:
        flags.append(Flag("low_dpi", f"Độ phân giải thấp: {dpi:.0f} dpi (cần ít nhất {MIN_DPI} dpi)", True))
    if resolution.source != "header":
        guess = f"theo khổ {resolution.paper}" if resolution.paper else "mặc định"
        # a header's value out of reason (72 dpi: a camera's or an editor's default, not a scan's)
        # is said as such: "not recorded" contradicted what the file says (web review)
        said = (f"Tệp ghi {stated[0]:.0f} dpi, không hợp lý với cỡ ảnh" if stated and stated[0]
                else "Tệp không ghi độ phân giải")
        flags.append(Flag("no_dpi", f"{said}; lấy {dpi:.0f} dpi {guess}", False))
    width, height = image.size
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    # blank or not, orientation and skew: by process_page's band test, on the page at its own
    # resolution (a coarser copy turns some pages the wrong way), so ingest finds the same
    ink = cleanup.ink_gray_mask(image, dpi)

    @functools.cache
    def black_marks() -> int:  # counted while tesseract reads the orientation, off the operator's wait
        return len(black_text_marks(image, dpi, ink))

    def blank() -> bool:
        return black_marks() < quality.MIN_MARKS_FOR_CONTENT

    def straightened(orientation: int, skew: float):
        return None if blank() else straighten(work, work_dpi, orientation, skew)

    @functools.cache
    def in_colour() -> Image.Image | None:
        return colour_text_gray(image, dpi, black_marks()) if shown is None else None

    # A page whose ink is mostly coloured may be written in colour: that is settled first, as
    # ingest settles it, for the band test on its pale ink can take tesseract tens of seconds
    if shown is None and _mostly_coloured_ink(work, work_dpi) and (coloured := in_colour()) is not None:
        return preview(coloured, stated, engine, shown=image)
    found, straight = orient.measure_while(image, dpi, engine, ink, straightened)
    if (coloured := in_colour()) is not None:  # the few the coarse look above misses
        return preview(coloured, stated, engine, shown=image)
    if blank():
        # no black text, nothing to straighten by; kept as scanned (the orientation read is unused)
        flags.insert(0, Flag("blank", FLAG_LABELS["blank"], True))
        return Preview(_thumb(seen), width, height, dpi, resolution.source, 0, 0.0, tuple(flags))
    sheet = straight.sheet
    turned = quarter_turn(seen, found.orientation)
    # the thumbnail is turned from a copy twice its width, not from the whole working copy
    small = turned.resize((2 * THUMB_WIDTH, max(1, round(turned.height * 2 * THUMB_WIDTH / turned.width))),
                          Image.Resampling.BOX) if turned.width > 2 * THUMB_WIDTH and turned.mode != "1" else turned
    placement = straight.placement
    if shown is not None:  # the colour scan's paper, not its grey copy's
        paper = cleanup.paper_colour(seen, outside=cleanup.dark_border_mask(cleanup.to_gray(seen), work_dpi))
        placement = dc_replace(placement, paper=paper)
    archive = archive_image(small, placement.resized(small.size))

    ocr_gray, _ = cleanup.ocr_copy(sheet, work_dpi, remove_lines=True, level=INK_LEVEL)
    sheet_gray = cleanup.to_gray(sheet)
    for code in quality.page_flags_before_ocr(sheet_gray, ocr_gray < INK_LEVEL, work_dpi):
        flags.append(Flag(code, FLAG_LABELS[code], True))
    # how dark the paper looks: its brightness, not the grey that is read (where a tinted paper,
    # kraft or orange, reads paler)
    x0, y0, x1, y1 = straight.placement.sheet
    on_paper = turned.crop((max(0, x0), max(0, y0), min(turned.width, x1), min(turned.height, y1)))
    if work.mode != "1" and cleanup.percentile_u8(cleanup.to_gray(on_paper), 90) < DARK_PAPER:
        flags.append(Flag("dark", FLAG_LABELS["dark"], True))
    orientation = int(found.orientation) % 360
    skew = round(float(straight.skew_deg), 2)
    if orientation:
        flags.append(Flag("rotated", f"Trang bị xoay {orientation}°, đã xoay lại", False))
    if abs(skew) >= SKEW_SHOWN_DEG:
        flags.append(Flag("skewed", f"Trang nghiêng {abs(skew):.1f}°, đã chỉnh thẳng".replace(".", ","), False))
    if orientation % 180:
        width, height = height, width
    flags.sort(key=lambda f: not f.warning)  # what needs a look first
    return Preview(_thumb(archive), width, height, dpi, resolution.source, orientation, skew, tuple(flags))


def _mostly_coloured_ink(work: Image.Image, dpi: float) -> bool:
    """Whether most of the ink other than red on the working copy (at most WORK_DPI fine) is
    coloured, by a margin below ``quality.COLOUR_TEXT_SHARE`` (a coarse copy mixes thin strokes
    with paper): the pages worth asking ``colour_text_gray`` about before the orientation is read."""
    return work.mode == "RGB" and coloured_ink(work, dpi)[2] >= COARSE_COLOUR_SHARE


COARSE_COLOUR_SHARE = 0.6 * quality.COLOUR_TEXT_SHARE


def _working_copy(image: Image.Image, dpi: float) -> tuple[Image.Image, float]:
    if image.mode not in ("RGB", "L", "1"):
        image = image.convert("RGB")
    factor = WORK_DPI / dpi
    if factor >= 0.95:
        return image, dpi
    source = image.convert("L") if image.mode == "1" else image
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return source.resize(size, Image.Resampling.BOX), dpi * size[0] / image.width


def _thumb(image: Image.Image) -> bytes:
    image = image.convert("L") if image.mode in ("1", "L") else image.convert("RGB")
    height = max(1, round(image.height * THUMB_WIDTH / image.width))
    return _thumb_jpeg(image.resize((THUMB_WIDTH, height), Image.Resampling.LANCZOS, reducing_gap=3.0))


def _thumb_jpeg(small: Image.Image) -> bytes:
    out = io.BytesIO()
    small.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()
