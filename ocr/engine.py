"""The OCR engine contract: what the page stage needs from a recogniser.

Tesseract (``ocr.recognise.TesseractEngine``) is the engine today; another recogniser (a
second model, a line-voting ensemble) plugs in by meeting this protocol, with no change to
the page stage.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

import numpy as np


class PageTimeUp(Exception):
    """The page's time ran out: an engine given a ``deadline`` (``time.monotonic()`` seconds)
    stops a recogniser still running then, and starts none after it."""


class ReadingStopped(Exception):
    """A reading given a ``stop`` event ended because the event was set."""


class ReadingAbandoned(Exception):
    """A reading given ``abandon_if`` ended because the first words read passed that test."""


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (None: no limit); PageTimeUp once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise PageTimeUp()
    return left


class OcrEngine(Protocol):
    """A recogniser of words on grey page images.

    - ``lang`` is the language read when a call names none.
    - ``read`` returns the words of a grey (uint8) image in reading order, each
      ``{text (NFC), x0, y0, x1, y1, conf (0-100), line}``, boxes in the caller's pixels
      (divided by ``scale`` when the caller enlarged the image by it); ``line`` ids follow
      reading order from 0; ``psm`` is tesseract's page-segmentation mode number (3 a page,
      6 a block, 7 a line), which other engines map to their own layout modes.
    - ``orientation`` returns the counter-clockwise quarter turn (0, 90, 180, 270) the engine
      sees in a band of text, or None when it cannot tell.
    - ``has_language`` tells whether a model for ``lang`` is installed.
    - ``version`` identifies the engine, its version and its models: a cached page result is
      reused only under the same version.
    - ``fastest`` returns the quickest of its recognisers that reads ``lang`` (itself when it is
      one recogniser), for a yes-or-no reading of a small image such as the orientation test's.
    - ``load`` loads now what the first read would otherwise load (models, the version), for a
      caller with time to spare before its pages come; safe to call from another thread.
    - ``read`` given ``stop`` (an Event another thread may set) ends as soon as it can once the
      event is set and raises ReadingStopped; a recogniser that cannot be interrupted checks
      between its steps.
    - ``read`` given ``abandon_if(words, reader)`` shows it the words of the engine's fastest
      recogniser (``reader``: its name) as soon as they are read, a first part of them where that
      recogniser can read part of the page first (TrueOCR: its widest lines); when it returns True
      while the reading is not over, what is still reading is stopped and ReadingAbandoned raised. It
      serves a caller that would throw the reading away if it were not upright (a page turned
      over); tesseract alone reads a page in one step and ignores it.
    - An engine made with a ``deadline`` raises PageTimeUp rather than read past it.
    """

    name: str
    lang: str

    def read(self, gray: np.ndarray, *, psm: int = 3, dpi: int = 300, scale: float = 1.0,
             whitelist: str | None = None, lang: str | None = None, stop: threading.Event | None = None,
             abandon_if: Callable[[list[dict], str], bool] | None = None) -> list[dict]: ...

    def orientation(self, gray: np.ndarray) -> int | None: ...

    def has_language(self, lang: str) -> bool: ...

    def version(self) -> str: ...

    def fastest(self) -> "OcrEngine": ...

    def load(self) -> None: ...
