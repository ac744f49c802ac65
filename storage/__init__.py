"""Storage: object stores (local directory, S3), their key layout, and the search index.

The bottom layer beside ``ocr``: it imports nothing of sohoa above it. Stores are built by
the caller from explicit parameters (``LocalStore(root)``, ``S3Store.connect(...)``).
"""
from __future__ import annotations

from .base import ObjectInfo, ObjectStore  # noqa: F401
