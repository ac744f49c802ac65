"""The page stage: one page of one original in, one PDF-ready page render out.

``run_page`` is the unit of parallel work (a process here, a Celery task later): its
input is a small JSON-able dict naming the original file and the page, its output a
dict with the encoded archive image and the OCR result. Results are cached under
``SOHOA_HOME/work/pages`` by a key made of the original's SHA-256, the page number and
a hash of the code and options that produce them, so a retried ingest never redoes a
page that already finished, and a change of OCR code never reuses a stale result.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image

from .errors import InputError
from .inputs import load_page

JPEG_QUALITY = int(os.environ.get("SOHOA_JPEG_QUALITY", "90"))


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the sources that decide a page's result (ocr package, this module, inputs)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted([*(root / "ocr").rglob("*.py"), Path(__file__).resolve(), root / "pipeline" / "inputs.py"]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=4)
def recogniser_version(model_dir: str) -> str:
    """Tesseract's version and the model directory in use: another model, another result."""
    import pytesseract

    return f"{pytesseract.get_tesseract_version()}|{model_dir}"


def cache_key(task: dict) -> str:
    basis = json.dumps([task["sha256"], task["page"], task["lang"], JPEG_QUALITY, code_version(),
                        recogniser_version(os.environ.get("SOHOA_TESSDATA", ""))])
    return hashlib.sha256(basis.encode()).hexdigest()


def encode_image(img: Image.Image) -> tuple[bytes, str, str]:
    """(bytes, PDF encoding, colour mode): colour and grey as JPEG, bitonal losslessly."""
    if img.mode == "1":
        import zlib

        return zlib.compress(img.tobytes(), 6), "flate1", "bitonal"
    buf = io.BytesIO()
    mode = "rgb" if img.mode == "RGB" else "gray"
    img.convert("RGB" if mode == "rgb" else "L").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return buf.getvalue(), "jpeg", mode


def _process(task: dict) -> dict:
    from ocr.page import effective_dpi, process_page

    data = Path(task["path"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != task["sha256"]:
        raise InputError(task["file"], "tệp đã thay đổi trong khi xử lý (file changed during processing)", task["page"])
    image, stated = load_page(task["file"], task["kind"], data, task["page"], task["max_pixels"])
    # A header that cannot be true of a paper page (72/96 dpi from phones, none at all) would
    # make a metre-wide PDF page; the OCR stage and the PDF use the same corrected resolution.
    resolution = round(effective_dpi(image.size, stated))
    dpi = stated if resolution == stated[0] else (resolution, resolution)
    result = process_page(image, dpi, lang=task["lang"])
    archive = result.pop("image")
    result = json.loads(json.dumps(result, default=_plain))  # numpy scalars -> plain JSON values
    encoded, encoding, color_mode = encode_image(archive)
    return {**result, "width": archive.width, "height": archive.height, "dpi": list(dpi),
            "colorMode": color_mode, "encoding": encoding, "image": encoded}


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def run_page(task: dict) -> dict:
    """Process one page, from cache when its result exists; errors come back as data."""
    work = Path(task["work_dir"])
    key = cache_key(task)
    meta_path, image_path = work / f"{key}.json", work / f"{key}.img"
    if meta_path.is_file() and image_path.is_file():
        result = json.loads(meta_path.read_text(encoding="utf-8"))
        result["image"] = image_path.read_bytes()
        return result | {"cached": True}
    try:
        result = _process(task)
    except InputError as e:
        return {"error": str(e), "file": task["file"], "page": task["page"]}
    except Exception as e:  # any decoder or OCR failure is reported against its page
        return {"error": f"Lỗi xử lý {task['file']}, trang {task['page']}: {type(e).__name__}: {e}",
                "file": task["file"], "page": task["page"]}
    from storage.local import write_atomic

    write_atomic(image_path, result["image"])
    write_atomic(meta_path, json.dumps({k: v for k, v in result.items() if k != "image"}, ensure_ascii=False).encode())
    return result | {"cached": False}


def _init_worker() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"  # page-level parallelism; tesseract's OpenMP would thrash


def run_pages(tasks: list[dict], jobs: int) -> list[dict]:
    """Run page tasks over ``jobs`` processes (0 = all cores); results in task order."""
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(tasks) == 1:
        _init_worker()
        return [run_page(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_init_worker) as pool:
        return list(pool.map(run_page, tasks))
