"""Storage: the object store (local directory or S3), key layout, index."""
from __future__ import annotations

from .base import ObjectInfo, ObjectStore  # noqa: F401


def open_store(settings) -> "ObjectStore":
    """The object store chosen by SOHOA_STORAGE (local by default)."""
    if settings.storage == "local":
        from .local import LocalStore

        return LocalStore(settings.home / "store")
    if settings.storage == "s3":
        from .s3 import S3Store

        return S3Store.from_settings(settings.s3)
    raise ValueError(f"SOHOA_STORAGE không hợp lệ: '{settings.storage}' (local hoặc s3)")
