"""What operations run on, built from the settings: the object store, the shared database,
the signer, the page executor and the index update. The service layer, the Celery tasks and
the bulk runner all open them here, the same way."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import datetime
from functools import partial
from pathlib import Path

from storage import db, index as search_index, keys
from storage.errors import NotFound as ObjectNotFound
from storage.locks import dossier_lock
from storage.base import ObjectStore
from storage.local import LocalStore

from .config import Settings
from .errors import ConfigError, PinRefused, SigningError
from .executor import LocalPoolExecutor, PageExecutor
from .ingest import IngestContext
from .signing.devpki import DEV_DIR_NAME, PREVIOUS_CAS, ensure_development_key, needs_renewal
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
    return LocalPoolExecutor(partial(open_store, settings), settings.ocr.jobs if jobs is None else jobs,
                             time_limit=settings.broker.page_time_limit)


# what opening the agency's key last met in this process (its SigningError), by signing settings;
# none once it opens. A PIN the token refused (PinRefused) is not tried again: a token locks
# after a few wrong tries
_KEY_TROUBLE: dict = {}


def signer_for(settings: Settings) -> Signer:
    refused = _KEY_TROUBLE.get(settings.signing)
    if isinstance(refused, PinRefused):
        raise SigningError(f"{refused.message_vi}; không thử lại mã PIN này (token bị khóa sau vài lần sai): sửa "
                           "mã PIN rồi khởi động lại dịch vụ", refused.detail)
    development_pki(settings)
    try:
        signer = load_signer(settings.signing, settings.home)
    except (SigningError, ConfigError) as exc:  # a trust-root file that cannot be read is a ConfigError
        _KEY_TROUBLE[settings.signing] = exc
        raise
    _KEY_TROUBLE.pop(settings.signing, None)
    return signer


def key_trouble(settings: Settings) -> str | None:
    """Why the agency's key last failed to open in this process (Vietnamese), or None: it opened,
    or was not opened yet. Readiness reports it without opening the key itself (a token allows one
    login per process, and a wrong PIN must not be tried once more)."""
    trouble = _KEY_TROUBLE.get(settings.signing)
    return trouble.message_vi if trouble is not None else None


DEV_PKI_FILES = ("ca.pem", "signer.pem", "signer.key.pem")


def development_pki(settings: Settings, *, create: bool = True, now: datetime | None = None) -> None:
    """One development key per deployment, kept in the object store: make this machine's
    ``SOHOA_HOME/dev-signing`` hold it, creating it (once, under a lock in the shared
    database) when the deployment has none yet, and renewing it there when it expires (the
    earlier CAs go with it, ``PREVIOUS_CAS``). Without it every worker machine would sign with
    a CA of its own, which no other machine knows. Only when no agency key is set; ``create``
    False (verifying): only what the store holds is written here."""
    if not settings.signing.development:
        return
    store, key = open_store(settings), keys.system("dev-signing.json")
    directory = settings.home / DEV_DIR_NAME
    bundle = _stored_bundle(store, key)
    if bundle is None and not create:
        return
    if create and (bundle is None or needs_renewal(bundle["signer.pem"].encode(), now)):
        with dossier_lock(database(settings), "system.dev-signing"):
            bundle = _stored_bundle(store, key)  # another machine may have made or renewed it meanwhile
            if bundle is None or needs_renewal(bundle["signer.pem"].encode(), now):
                if bundle is not None:
                    _materialise(directory, bundle)  # the expired key is then kept aside here
                ensure_development_key(directory, now)
                previous = [] if bundle is None else [*bundle.get(PREVIOUS_CAS, []), bundle["ca.pem"]]
                bundle = {**{name: (directory / name).read_text() for name in DEV_PKI_FILES},
                          **({PREVIOUS_CAS: previous} if previous else {})}
                store.put(key, json.dumps(bundle).encode(), "application/json", {"kind": "development-key"})
    _materialise(directory, bundle)


def _stored_bundle(store: ObjectStore, key: str) -> dict | None:
    try:
        return json.loads(store.get(key))
    except ObjectNotFound:
        return None


def _materialise(directory: Path, bundle: dict) -> None:
    """Write the deployment's development key into ``directory``; a different local key is kept
    aside as expired, so that signatures it made are still known as test signatures."""
    previous = "".join(bundle.get(PREVIOUS_CAS, []))
    if all((directory / n).is_file() and (directory / n).read_text() == bundle[n] for n in DEV_PKI_FILES):
        if previous and not _holds(directory / PREVIOUS_CAS, previous):
            _write_atomically(directory / PREVIOUS_CAS, previous)
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dev-signing-", dir=directory.parent))
    for name in DEV_PKI_FILES:
        (staging / name).write_text(bundle[name])
    if previous:
        (staging / PREVIOUS_CAS).write_text(previous)
    (staging / "signer.key.pem").chmod(0o600)
    if directory.exists():
        directory.rename(directory.with_name(f"{directory.name}.expired-{time.strftime('%Y%m%d%H%M%S')}-"
                                             f"{os.getpid()}"))
    try:
        staging.rename(directory)
    except OSError:  # another process of this machine put it there first
        shutil.rmtree(staging, ignore_errors=True)


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # one of its own per thread
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(staging, path)


def ingest_context(settings: Settings, *, store: ObjectStore | None = None, signer: Signer | None = None,
                   executor: PageExecutor | None = None, progress=None) -> IngestContext:
    """What an ingest, a job step or a bulk run works with; with a broker the document is signed
    by the worker that finishes it, not by the caller."""
    return IngestContext(store=store or open_store(settings), db=database(settings), executor=executor,
                         ocr=settings.ocr, signer=signer, index=index_update(settings), progress=progress,
                         remote_signing=bool(settings.broker.url),
                         webhook=settings.webhook if settings.webhook.url else None)


def index_update(settings: Settings):
    """The callable an ingest indexes its new document with."""
    def index(manifest: dict, texts: dict[str, list[str]]) -> None:
        search_index.index_dossier(database(settings), manifest, texts)

    return index
