"""What operations run on, built from the settings: the object store, the shared database,
the signer, the page executor and the index update. The service layer, the Celery tasks and
the bulk runner all open them here, the same way."""
from __future__ import annotations

from functools import partial

from storage import db, index as search_index
from storage.base import ObjectStore
from storage.local import LocalStore

from .config import Settings
from .executor import LocalPoolExecutor, PageExecutor
from .signing.keys import Signer, load_signer


def open_store(settings: Settings) -> ObjectStore:
    """The object store chosen by SOHOA_STORAGE (local by default)."""
    if settings.storage == "s3":
        from storage.s3 import S3Store

        s3 = settings.s3
        return S3Store.connect(s3.endpoint, s3.access_key, s3.secret_key, bucket=s3.bucket, secure=s3.secure,
                               region=s3.region, lock_mode=s3.lock_mode, retention_days=s3.retention_days)
    return LocalStore(settings.home / "store")


def database(settings: Settings):
    """The shared database (index, access log, jobs, locks), its schema checked."""
    return db.engine_for(settings.db_url)


def page_executor(settings: Settings, jobs: int | None = None) -> PageExecutor:
    return LocalPoolExecutor(partial(open_store, settings), settings.ocr.jobs if jobs is None else jobs)


def signer_for(settings: Settings) -> Signer:
    return load_signer(settings.signing, settings.home)


def index_update(settings: Settings):
    """The callable an ingest indexes its new document with."""
    def index(manifest: dict, texts: dict[str, list[str]]) -> None:
        search_index.index_dossier(database(settings), manifest, texts)

    return index
