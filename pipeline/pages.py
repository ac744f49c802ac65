"""The page stage: one page of one original in, one PDF-ready page out.

``run_page(task, cache)`` is the unit of parallel work (a local process or a Celery task):
a ``PageTask`` names the stored original by its object key and the page; the ``PageResult``
holds the page's geometry and OCR and refers to its encoded page image (the scan, its quarter
turn undone, never resampled: the PDF places it, ``PageResult.placement``) by its content key
in the ``PageCache`` (the object store), so tasks and results cross processes and machines
as JSON and any worker can pick up any page. A failure comes back as a result with ``error`` set,
naming the file and page, never as an exception.

Results are cached by a key made of the original's SHA-256, the page number, the options and
a hash of the code and OCR engine that produce them, so a retried ingest never redoes a page
that already finished, and a change of code or model never reuses a stale result.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import multiprocessing.util
import os
import shutil
import socket
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageFile

from ocr.engine import OcrEngine, PageTimeUp
from ocr.page import process_page
from ocr.paper import page_resolution
from ocr.recognise import TesseractEngine
from ocr.trueocr_engine import TrueOcrEngine
from ocr.vote import VotingEngine
from storage import keys
from storage.base import ObjectStore
from storage.errors import NotFound as ObjectNotFound, StorageError, StorageUnavailable

from .config import OcrSettings
from .errors import InputError
from .inputs import jpeg_frame, load_page
from .models import PageResult, PageTask

def _voting(lang: str, tessdata: str | None, deadline: float | None = None) -> VotingEngine:
    """Tesseract and TrueOCR read every line; the vote keeps the better-spelt reading (ocr.vote)."""
    return VotingEngine(TesseractEngine(lang, tessdata, deadline), TrueOcrEngine(lang, deadline=deadline))


ENGINES = {"tesseract": TesseractEngine, "trueocr": TrueOcrEngine, "vote": _voting}


def engine_for(task: PageTask, deadline: float | None = None) -> OcrEngine:
    return ENGINES[task.engine](task.lang, task.tessdata, deadline=deadline)


def load_engine(ocr: OcrSettings) -> None:
    """Load the configured recognisers' models in this process now (``OcrEngine.load``): page
    processes forked afterwards share them instead of each loading its own. A model that cannot
    be loaded is left for the pages to fail on, each with its file and page named."""
    try:
        ENGINES[ocr.engine](ocr.lang, ocr.tessdata).load()
    except Exception:  # noqa: BLE001 - reported by every page that reads with it
        logging.getLogger(__name__).info("recognisers not loaded ahead", exc_info=True)


class PageCache:
    """Finished pages in the object store, under their content key (``storage.keys.page_result``):
    the encoded page image first, then the result that names it, so a result is never
    visible without its image, and a page finished by any worker serves every other."""

    def __init__(self, store: ObjectStore):
        self.store = store

    def result(self, key: str) -> PageResult | None:
        try:
            meta = self.store.get(keys.page_result(key, "json"))
        except ObjectNotFound:
            return None
        if not self.store.exists(keys.page_result(key, "img")):
            return None
        return PageResult.from_json(json.loads(meta))

    def store_page(self, key: str, image: bytes, result: PageResult) -> None:
        self.store.put(keys.page_result(key, "img"), image, "application/octet-stream", {"kind": "page-image"})
        self.store.put(keys.page_result(key, "json"), json.dumps(result.to_json(), ensure_ascii=False).encode(),
                       "application/json", {"kind": "page-result"})

    def image(self, key: str) -> bytes:
        return self.store.get(keys.page_result(key, "img"))

    def discard(self, cache_keys) -> None:
        """Forget finished pages once their document is stored (the cache only serves retries)."""
        for key in cache_keys:
            for suffix in ("json", "img"):
                try:
                    self.store.delete(keys.page_result(key, suffix))
                except ObjectNotFound:
                    pass

    def usage(self) -> tuple[int, int]:
        """(pages, bytes) held."""
        held = self.store.list(keys.PAGE_RESULTS)
        size = sum(info.size for k in held if (info := self.store.stat(k)) is not None)
        return sum(k.endswith(".img") for k in held), size

    def clear(self) -> tuple[int, int]:
        """Remove every cached page; returns what was held."""
        held = self.usage()
        for key in self.store.list(keys.PAGE_RESULTS):
            try:
                self.store.delete(key)
            except ObjectNotFound:
                pass
        return held


def _sources_hash() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted([*(root / "ocr").rglob("*.py"), Path(__file__).resolve(), root / "pipeline" / "inputs.py"]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# read when this module is imported (a worker's start, before its pool forks), not at the first
# page: files replaced under a running worker must not lend their version to its old code
_CODE_VERSION = _sources_hash()


def code_version() -> str:
    """Hash of the sources that decide a page's result (ocr package, this module, inputs), as they
    were when this process imported them."""
    return _CODE_VERSION


def cache_key(task: PageTask, engine: OcrEngine | None = None) -> str:
    engine = engine or engine_for(task)
    basis = json.dumps([task.sha256, task.page, task.lang, task.jpeg_quality, code_version(),
                        engine.name, engine.version()])
    return hashlib.sha256(basis.encode()).hexdigest()


FULL_CHROMA = 0  # Pillow's JPEG subsampling codes: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0


def encode_image(img: Image.Image, jpeg_quality: int, subsampling: int = FULL_CHROMA) -> tuple[bytes, str, str]:
    """(bytes, PDF encoding, colour mode): colour and grey as progressive JPEG, bitonal losslessly.

    Every pixel of the scan is kept (no downsampling); colour keeps its chroma at full resolution
    unless ``subsampling`` says the scan itself had less (``scan_subsampling``). Progressive coding
    with optimised Huffman tables is lossless over the baseline JPEG of the same quality and about
    7 % smaller (bench/size.py measures bytes, PSNR, SSIM and words read for every choice)."""
    if img.mode == "1":
        return zlib.compress(img.tobytes(), 6), "flate1", "bitonal"
    buf = io.BytesIO()
    mode = "rgb" if img.mode == "RGB" else "gray"
    image = img.convert("RGB" if mode == "rgb" else "L")
    # an optimised JPEG is written in one block; Pillow's default block is too small for a busy
    # colour page (guilloche, dense patterns) whose JPEG outgrows width x height bytes
    previous, ImageFile.MAXBLOCK = ImageFile.MAXBLOCK, max(ImageFile.MAXBLOCK, 3 * image.width * image.height + 65536)
    try:
        image.save(buf, "JPEG", quality=jpeg_quality, subsampling=subsampling, optimize=True, progressive=True)
    finally:
        ImageFile.MAXBLOCK = previous
    return buf.getvalue(), "jpeg", mode


def scan_subsampling(kind: str, data: bytes) -> int:
    """The chroma subsampling of the scan as it was delivered: a scanner's 4:2:0 JPEG holds its
    colour at half resolution already, and re-encoding it so loses nothing more; every other
    input (PNG, TIFF, PDF, a 4:4:4 JPEG) keeps full-resolution chroma."""
    if kind != "jpeg":
        return FULL_CHROMA
    from PIL import JpegImagePlugin

    try:
        with Image.open(io.BytesIO(data)) as scan:
            sampling = JpegImagePlugin.get_sampling(scan) if scan.mode == "RGB" else FULL_CHROMA
    except Exception:  # the page itself decoded; an odd header only costs bytes here
        return FULL_CHROMA
    return sampling if sampling in (1, 2) else FULL_CHROMA


# JPEG frames a PDF reader's DCTDecode takes: baseline, extended sequential and progressive
# Huffman coding (SOF0-2); arithmetic-coded or lossless JPEG are re-encoded
_DCT_FRAMES = {0xC0, 0xC1, 0xC2}


def scan_jpeg(kind: str, data: bytes, archive: Image.Image) -> bytes | None:
    """The scanner's own JPEG when the page image is that JPEG pixel for pixel (a page that needed
    no quarter turn), else None: kept as it is, the page loses nothing to a second lossy encoding."""
    if kind != "jpeg" or archive.mode not in ("RGB", "L") or (jpeg_frame(data) or (None,))[0] not in _DCT_FRAMES:
        return None
    with Image.open(io.BytesIO(data)) as scan:
        # an Adobe marker may declare RGB or CMYK samples, which a reader's DCTDecode would not
        # convert like Pillow does; MPO carries further images after the first
        if scan.format != "JPEG" or "adobe" in scan.info or scan.mode != archive.mode or scan.size != archive.size:
            return None
        return data if scan.tobytes() == archive.tobytes() else None


def page_image(found: dict, kind: str, data: bytes, jpeg_quality: int) -> tuple[bytes, str, str]:
    """The page image of a processed page (``process_page``'s result: the scan, its quarter turn
    undone, placed on the page by the PDF) as ``encode_image`` gives it, or the scanner's own JPEG
    when the page needed no quarter turn and that JPEG is no larger."""
    encoded, encoding, color_mode = encode_image(found["image"], jpeg_quality, scan_subsampling(kind, data))
    if found["orientation"] == 0 and len(data) <= len(encoded) and (kept := scan_jpeg(kind, data, found["image"])):
        return kept, encoding, color_mode
    return encoded, encoding, color_mode


class _Originals:
    """This process's local copies of the originals its pages come from, the last few: the pages
    of a 100-page TIFF fetch it (and check its SHA-256) once per process, and each page reads only
    its own frame from the file, so a worker's memory does not grow with the original's size.

    The copies are citizens' papers: a pool's process removes them when it ends, a process that
    reads a document's pages itself (``borrowed``) once they are done, and the folder of a
    process killed outright is removed by the next process that makes one. A folder is in use
    while its process holds the lock on its ``.lock`` file (flock: released by the kernel when the
    process dies, whichever machine or container shares the temporary folder)."""

    KEEP = 2
    PREFIX = "sohoa-originals-"

    def __init__(self):
        self._lock_fd: int | None = None
        self.reset()

    def reset(self) -> None:
        """Hold nothing yet (also a forked process's start: it keeps copies of its own, since two
        processes writing one file of a folder both inherited would truncate what the other reads;
        the parent's lock is left to the parent)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing a copy does not unlock: the parent's descriptor still holds it
        self._lock = threading.Lock()
        self._held: OrderedDict[str, Path] = OrderedDict()
        self._folder: Path | None = None
        self._lock_fd = None
        self._users = 0
        self._finalizer: multiprocessing.util.Finalize | None = None

    def path(self, store: ObjectStore, task: PageTask) -> Path:
        with self._lock:
            if task.sha256 in self._held:
                self._held.move_to_end(task.sha256)
                return self._held[task.sha256]
            if self._folder is None:
                _remove_abandoned(self.PREFIX)
                self._folder, self._lock_fd = _locked_folder(self.PREFIX)
                if self._finalizer is None:
                    # removed when the process ends, a pool's process too: it ends without running
                    # atexit handlers, but with multiprocessing's own finalizers
                    self._finalizer = multiprocessing.util.Finalize(None, self.discard, exitpriority=0)
            target = self._folder / task.sha256
            store.get_file(task.key, target, sha256=task.sha256)  # the stored original, its fixity checked
            self._held[task.sha256] = target
            while len(self._held) > self.KEEP:
                self._held.popitem(last=False)[1].unlink(missing_ok=True)
            return target

    @contextmanager
    def borrowed(self):
        """Around pages read in this process: once the last such run ends, the copies are removed."""
        with self._lock:
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._discard()

    def discard(self) -> None:
        """Remove this process's copies (at its end)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._folder, self._lock_fd, self._held = None, None, OrderedDict()


def _locked_folder(prefix: str) -> tuple[Path, int]:
    """A new folder named ``prefix``..., its ``.lock`` held: made under another name and renamed
    once locked, so that no other process ever sees it unlocked."""
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix}"))
    fd = os.open(staging / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = staging.with_name(f"{prefix}{os.getpid()}-{staging.name.removeprefix('.' + prefix)}")
    staging.rename(folder)
    return folder, fd


def _remove_abandoned(prefix: str) -> None:
    """The folders whose process ended without removing them (killed outright): copies of
    citizens' papers are not left in the temporary folder until the machine restarts."""
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            fd = os.open(folder / ".lock", os.O_RDWR)
        except OSError:  # being removed by its process, or made by a version without locks
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process holds it: in use
            continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


_originals = _Originals()
discard_originals = _originals.discard
borrowed_originals = _originals.borrowed
os.register_at_fork(after_in_child=_originals.reset)


def _process(task: PageTask, store: ObjectStore, engine: OcrEngine, key: str,
             deadline: float | None = None) -> tuple[bytes, PageResult]:
    original = _originals.path(store, task)
    image, stated = load_page(task.file, task.kind, original, task.page, task.max_pixels, deadline)
    data = original.read_bytes() if task.kind == "jpeg" else b""  # one page: its encoding is looked at below
    # A header that cannot be true of a paper page (72/96 dpi from phones, none at all) would
    # make a wrong-sized PDF page; the OCR stage and the PDF use the same corrected resolution.
    resolution = page_resolution(image.size, stated)
    dpi = stated if resolution.source == "header" else (round(resolution.dpi, 2),) * 2
    found = process_page(image, dpi, engine)
    turned = found["image"]
    if found["orientation"] % 180:  # a quarter turn: the scan's rows are the page's columns
        dpi = (dpi[1], dpi[0])
    encoded, encoding, color_mode = page_image(found, task.kind, data, task.jpeg_quality)
    return encoded, PageResult(
        file=task.file, page=task.page, image_key=key, encoding=encoding, width=turned.width,
        height=turned.height, dpi=(dpi[0], dpi[1]), dpi_source=resolution.source + (
            f":{resolution.paper}" if resolution.paper else ""), color_mode=color_mode,
        orientation=int(found["orientation"]), skew_deg=float(found["skew_deg"]),
        placement=found["placement"].to_json() if found["placement"] is not None else None,
        confidence=float(found["confidence"]), flags=tuple(found["flags"]), words=tuple(found["words"]),
        text=found["text"], review=tuple(found["review"]), code=code_version())


def run_page(task: PageTask, cache: PageCache, time_limit: float | None = None) -> PageResult:
    """Process one page, from the cache when its result exists.

    A bad page comes back as a result with ``error`` set, and so does one whose recognisers are
    still reading ``time_limit`` seconds after it started (without workers nothing else stops a
    tesseract that never ends); a store that cannot be reached raises (``StorageUnavailable``),
    so that the caller can retry the task later."""
    try:
        deadline = time.monotonic() + time_limit if time_limit else None
        engine = engine_for(task, deadline)
        key = cache_key(task, engine)
        if (done := cache.result(key)) is not None:
            return PageResult.from_json({**done.to_json(), "cached": True})
        image, result = _process(task, cache.store, engine, key, deadline)
    except InputError as e:  # the operator reads the Vietnamese; the library's English goes to the log
        if e.detail:
            logging.getLogger(__name__).warning("%s, page %s: %s", task.file, task.page, e.detail)
        return PageResult(task.file, task.page, error=e.message_vi)
    except PageTimeUp:
        return over_time(task, time_limit)
    except StorageUnavailable:
        raise
    except StorageError as e:  # the original is missing or altered in the store
        return PageResult(task.file, task.page, error=f"Lỗi xử lý {task.file}, trang {task.page}: {e}")
    except Exception as e:  # any decoder or OCR failure is reported against its page
        if (outage := disk_full(e)) is not None:  # this machine's disk: an outage
            raise outage from None
        return PageResult(task.file, task.page, error=f"Lỗi xử lý {task.file}, trang {task.page}: {type(e).__name__}: {e}")
    cache.store_page(key, image, result)
    return result


def disk_full(e: BaseException) -> StorageUnavailable | None:
    """``e`` as this machine's full disk (its temporary files, its copies of originals, the PDF
    being written), when it is one: an outage to wait out and retry, said with the machine and
    the folder; None for any other error. Read as a bad page it failed every document of a bulk
    run for good, in English (the chaos review)."""
    if not isinstance(e, OSError) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = e.filename or tempfile.gettempdir()
    return StorageUnavailable(f"Hết chỗ trống trên đĩa của máy xử lý {socket.gethostname()} ({where}); hãy giải "
                              "phóng chỗ trống: việc đang chờ các worker sẽ tự chạy tiếp, việc đã dừng vì lỗi này thì "
                              "chạy lại (sohoa retry)", f"no space left on device: {e}")


def run_page_json(task: dict, store: ObjectStore, time_limit: float | None = None) -> dict:
    """``run_page`` with JSON in and out: what crosses to a worker process or machine."""
    return run_page(PageTask.from_json(task), PageCache(store), time_limit).to_json()


def over_time(task: PageTask, seconds: float) -> PageResult:
    return PageResult(task.file, task.page, error=f"Lỗi xử lý {task.file}, trang {task.page}: quá thời hạn "
                                                  f"{seconds:g} giây cho một trang (SOHOA_PAGE_TIME_LIMIT), đã dừng")
