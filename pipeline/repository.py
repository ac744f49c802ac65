"""Dossiers in the object store: reading a manifest, and changing one under the dossier's lock.

A manifest is the dossier's table of contents and is written last, so what it names is
visible and nothing else is. Every change is read-modify-write under ``dossier_lock``.
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from storage import keys
from storage.base import ObjectStore
from storage.errors import NotFound as ObjectNotFound

from . import manifest as mf
from .errors import IntegrityError, NotFound


def load_manifest(store: ObjectStore, code: str) -> dict | None:
    """The dossier's manifest, None if the dossier does not exist; IntegrityError if unreadable."""
    try:
        data = store.get(keys.manifest(code))
    except ObjectNotFound:
        return None
    try:
        return mf.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"Manifest của hồ sơ {code} bị hỏng, không đọc được; chưa thay đổi gì",
                             f"damaged manifest: {e}") from None


def require_manifest(store: ObjectStore, code: str) -> dict:
    """The dossier's manifest; NotFound when the dossier does not exist."""
    manifest = load_manifest(store, code)
    if manifest is None:
        raise NotFound(f"Không tìm thấy hồ sơ {code}", "dossier not found: no manifest")
    return manifest


def save_manifest(store: ObjectStore, code: str, manifest: dict) -> None:
    store.put(keys.manifest(code), mf.dumps(manifest), "application/json", {"dossier": code, "kind": "manifest"})


def dossier_codes(store: ObjectStore) -> list[str]:
    """Every dossier in the store (those with a manifest)."""
    return keys.codes_from_keys(store.list(keys.PREFIX))


@contextmanager
def dossier_lock(home: Path, code: str):
    """One writer per dossier on this machine: manifest updates are read-modify-write."""
    path = Path(home) / "locks" / f"{code}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
