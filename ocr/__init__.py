"""sohoa's page OCR stage: orientation, deskew, clean-up, Vietnamese OCR and quality flags.

``process_page(image, dpi, lang="vie") -> dict`` (see :mod:`ocr.page`) is the one entry point.
"""
from ocr.page import process_page

__all__ = ["process_page"]
