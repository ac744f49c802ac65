"""Tesseract through pytesseract, behind the OcrEngine contract (``ocr.engine``).

Pages are parallelised over processes, so tesseract's own OpenMP threads would oversubscribe
the cores (measured 9.6 s against 2.2 s per page on 2 cores): the process that starts the
work sets OMP_THREAD_LIMIT=1 once (``api`` at start-up, the page pool's worker initialiser).
"""
from __future__ import annotations

import functools
import shlex
import subprocess
import threading
import unicodedata
from pathlib import Path
from typing import Callable

import numpy as np
import pytesseract
from PIL import Image

from ocr.engine import PageTimeUp, ReadingStopped, time_left

DEFAULT_PSM = 3
_STOP_POLL = 0.02  # seconds between looks at a reading's stop event


class TesseractEngine:
    """Tesseract (Debian's tesseract-ocr with the vie, eng and osd models) as an OcrEngine.

    ``tessdata``: a directory holding another ``<lang>.traineddata``; used for a language
    only when it holds that model, else tesseract's own models are read."""

    name = "tesseract"

    def __init__(self, lang: str = "vie", tessdata: str | None = None, deadline: float | None = None):
        self.lang = lang
        self.tessdata = tessdata or None
        self.deadline = deadline

    def version(self) -> str:
        return _tesseract_version() + f"|{self.tessdata or ''}"

    def has_language(self, lang: str) -> bool:
        return lang in _installed_languages(self.tessdata or "")

    def fastest(self) -> "TesseractEngine":
        return self

    def load(self) -> None:
        """Tesseract loads its model at every call; what is kept is its version (a process run)."""
        self.version()

    def read(self, gray: np.ndarray, *, psm: int = DEFAULT_PSM, dpi: int = 300, scale: float = 1.0,
             whitelist: str | None = None, lang: str | None = None, stop: threading.Event | None = None,
             abandon_if: Callable | None = None) -> list[dict]:
        """Words of a grey page image in tesseract's reading order.

        Boxes are divided by ``scale`` (the factor the caller enlarged the image by), so they are
        in the caller's pixel coordinates.  ``line`` numbers follow reading order from 0.
        """
        lang = lang or self.lang
        data = self._tsv(Image.fromarray(gray), lang, self._config(psm, lang, dpi, whitelist), stop)
        words, line_ids = [], {}
        for i, raw in enumerate(data["text"]):
            text = unicodedata.normalize("NFC", raw or "").strip()
            conf = float(data["conf"][i])
            if not text or conf < 0:
                continue
            key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
            line = line_ids.setdefault(key, len(line_ids))
            left, top, width, height = (data[k][i] for k in ("left", "top", "width", "height"))
            words.append({
                "text": text,
                "x0": int(round(left / scale)), "y0": int(round(top / scale)),
                "x1": int(round((left + width) / scale)), "y1": int(round((top + height) / scale)),
                "conf": round(conf, 2), "line": line,
            })
        return words

    def orientation(self, gray: np.ndarray) -> int | None:
        """Tesseract OSD's counter-clockwise quarter turn of the content, or None if it cannot tell."""
        try:
            osd = self._bounded(pytesseract.image_to_osd, Image.fromarray(gray),
                                config="--psm 0 -c min_characters_to_try=5", output_type=pytesseract.Output.DICT)
        except pytesseract.TesseractError:
            return None
        return int(osd["rotate"]) % 360

    def _tessdata_for(self, lang: str) -> Path | None:
        if self.tessdata and all((Path(self.tessdata) / f"{part}.traineddata").is_file() for part in lang.split("+")):
            return Path(self.tessdata)
        return None

    def _tsv(self, image: Image.Image, lang: str, config: str, stop: threading.Event | None) -> dict:
        """``pytesseract.image_to_data`` as a dict, run here so that its tesseract process can be
        killed when ``stop`` is set (ReadingStopped) as well as when the page's deadline passes
        (PageTimeUp); pytesseract's own call can only time out."""
        image.format = "BMP"  # tesseract reads a temporary file; BMP is written 10x faster than PNG
        with pytesseract.pytesseract.save(image) as (base, source):
            command = [pytesseract.pytesseract.tesseract_cmd, source, base, "-l", lang,
                       "-c", "tessedit_create_tsv=1", *shlex.split(config)]
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise pytesseract.TesseractNotFoundError() from None
            try:
                while True:
                    left = time_left(self.deadline)
                    wait = left if stop is None else min(_STOP_POLL, left or _STOP_POLL)
                    try:
                        _, errors = process.communicate(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        if stop is not None and stop.is_set():
                            raise ReadingStopped() from None
            finally:
                if process.returncode is None:
                    process.kill()
                    process.communicate()
            if process.returncode:
                raise pytesseract.TesseractError(process.returncode, pytesseract.pytesseract.get_errors(errors))
            text = Path(f"{base}.tsv").read_text(encoding="utf-8")
        return pytesseract.pytesseract.file_to_dict(text, "\t", -1)

    def _bounded(self, call, *args, **kwargs):
        """A pytesseract call, its tesseract process killed once the page's deadline passes."""
        left = time_left(self.deadline)
        try:
            return call(*args, **kwargs, timeout=left or 0)  # pytesseract: 0 waits for ever
        except RuntimeError as e:
            if left is not None and "timeout" in str(e).lower():
                raise PageTimeUp() from None
            raise

    def _config(self, psm: int, lang: str, dpi: int, whitelist: str | None) -> str:
        parts = [f"--psm {psm}", f"-c user_defined_dpi={dpi}"]
        if whitelist:
            parts.append(f"-c tessedit_char_whitelist={whitelist}")
        directory = self._tessdata_for(lang)
        if directory is not None:
            parts.insert(0, f'--tessdata-dir "{directory}"')
        return " ".join(parts)


@functools.lru_cache(maxsize=1)
def _tesseract_version() -> str:
    return str(pytesseract.get_tesseract_version())


@functools.lru_cache(maxsize=4)
def _installed_languages(configured: str) -> frozenset[str]:
    languages = set(pytesseract.get_languages(config=""))
    if configured and Path(configured).is_dir():
        languages |= {p.name.removesuffix(".traineddata") for p in Path(configured).glob("*.traineddata")}
    return frozenset(languages)


def words_to_text(words: list[dict]) -> str:
    lines: dict[int, list[str]] = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word["text"])
    return unicodedata.normalize("NFC", "\n".join(" ".join(texts) for texts in lines.values()))
