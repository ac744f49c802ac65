"""sohoa's page OCR stage: orientation, deskew, clean-up, Vietnamese OCR and quality flags.

``process_page(image, dpi, engine=None, options=DEFAULT_OPTIONS) -> dict`` (see :mod:`ocr.page`)
is the one entry point; the recogniser is an ``ocr.engine.OcrEngine`` (tesseract by default).
No file, network or environment access happens here besides the engine's own.
"""
from ocr.page import process_page

__all__ = ["process_page"]
