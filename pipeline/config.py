"""Settings from the SOHOA_* environment variables, read once at start-up into typed values.

``load(environ)`` is the only place that reads the environment; every layer below gets the
settings (or the part of them it needs) as arguments. Every setting has an embedded default,
so a bare ``sohoa ingest`` runs with local storage and SQLite under ``SOHOA_HOME`` (by
default the user's data directory, ``~/.local/share/sohoa``) and no broker. A value that cannot be used is a ConfigError naming the
variable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

DEFAULT_AGENCY = "Cơ quan số hóa (chưa cấu hình)"
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    bucket: str = "sohoa"
    secure: bool = False
    region: str | None = None
    lock_mode: str = "GOVERNANCE"
    retention_days: int = 3650


@dataclass(frozen=True)
class SigningSettings:
    p12: str | None = None
    p12_password: str | None = field(default=None, repr=False)
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    level: str | None = None
    tsa_url: str | None = None
    trust_roots: tuple[str, ...] = ()
    agency_name: str = DEFAULT_AGENCY
    revocation: str | None = None  # "hard" or "soft"; None: hard with a real key, soft with the development key

    @property
    def development(self) -> bool:
        """No agency key configured: the development key signs, loudly marked as a test."""
        return not (self.p12 or self.pkcs11_module)

    @property
    def revocation_policy(self) -> str:
        """"hard": a signature whose revocation status cannot be established fails; "soft": it passes, shown."""
        return self.revocation or ("soft" if self.development else "hard")


@dataclass(frozen=True)
class OcrSettings:
    lang: str = "vie"
    tessdata: str | None = None  # a directory with another <lang>.traineddata
    jpeg_quality: int = 65       # colour and grey page images in the PDF (progressive; chroma as the scan; bench/README.md)
    max_pixels: int = 150_000_000
    jobs: int = 0                # pages in parallel; 0 = every core
    engine: str = "vote"         # vote (tesseract and TrueOCR, voted line by line: ocr.vote) | tesseract | trueocr
    read_ahead: bool = True      # intake pages are read while the operator still reviews them (pipeline.early)


@dataclass(frozen=True)
class IndexSettings:
    database_url: str | None = None


@dataclass(frozen=True)
class BrokerSettings:
    url: str | None = None  # none: pages run in this process's pool
    # an unacknowledged task (its worker died) goes back to the queue after this long; longer
    # than the longest task, or a slow task would run twice (harmless, but wasted)
    visibility_timeout: int = 3600
    page_time_limit: int = 600       # seconds; the soft limit is 90 % of it
    finish_time_limit: int = 1800
    signing_agencies: tuple[str, ...] = ()  # agencies whose documents only their own signing host signs


@dataclass(frozen=True)
class ApiSettings:
    max_upload_bytes: int = 100 * 1024 * 1024   # one request's files together
    max_upload_files: int = 200
    session_hours: int = 10                      # a web login lasts one working day
    session_idle_minutes: int = 60               # and ends sooner once its browser sent nothing for so long
    cookie_secure: bool = True                   # the session cookie only over HTTPS (and localhost)
    max_file_bytes: int = 100 * 1024 * 1024     # one uploaded file
    hsts_seconds: int = 31536000                 # Strict-Transport-Security on answers over HTTPS (0: none)
    login_failures: int = 5                      # failed logins of one name from one address before a pause
    login_pause_seconds: int = 30                # the first pause; each further failure doubles it (to 1 h)
    processes: int = 1                           # `sohoa serve` processes sharing the port (uvicorn workers)
    metrics_dir: str | None = None               # PROMETHEUS_MULTIPROC_DIR: where several processes count metrics


@dataclass(frozen=True)
class AuditSettings:
    anchor_interval: int = 300   # seconds between anchors of the access log's head (sohoa serve)
    retention_days: int = 400    # anchors are kept under COMPLIANCE retention; logs at least 12 months


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = None       # the one-stop system's receiver; none: no notices
    secret: str | None = field(default=None, repr=False)  # HMAC-SHA256 key of the notices


@dataclass(frozen=True)
class ReplicaSettings:
    """The second copy on independent storage (``SOHOA_REPLICA_*``): a bucket on another S3
    endpoint, or a directory on other media; neither: no replica. The S3 replica keeps the
    primary's lock mode and default retention (SOHOA_S3_LOCK_MODE, SOHOA_RETENTION_DAYS)."""
    s3: S3Settings | None = None
    directory: Path | None = None

    @property
    def kind(self) -> str | None:
        """"s3", "local" or None (no replica configured)."""
        return "s3" if self.s3 is not None else "local" if self.directory is not None else None


@dataclass(frozen=True)
class FixitySettings:
    days: int = 30         # every stored object is re-read within this many days
    interval: int = 3600   # seconds between two slices (the Celery beat schedule)


@dataclass(frozen=True)
class Settings:
    home: Path
    storage: str = "local"
    home_origin: str = "SOHOA_HOME"  # or "default": the user's data directory
    s3: S3Settings = S3Settings()
    signing: SigningSettings = SigningSettings()
    ocr: OcrSettings = OcrSettings()
    index: IndexSettings = IndexSettings()
    broker: BrokerSettings = BrokerSettings()
    api: ApiSettings = ApiSettings()
    audit: AuditSettings = AuditSettings()
    webhook: WebhookSettings = WebhookSettings()
    replica: ReplicaSettings = ReplicaSettings()
    fixity: FixitySettings = FixitySettings()

    @property
    def db_url(self) -> str:
        return self.index.database_url or f"sqlite:///{self.home / 'index.sqlite3'}"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (the process environment by default)."""
    env = _Env(os.environ if environ is None else environ)
    storage = env.str("SOHOA_STORAGE", "local")
    if storage not in ("local", "s3"):
        raise ConfigError(f"SOHOA_STORAGE không hợp lệ: '{storage}' (local hoặc s3)", "SOHOA_STORAGE: local or s3")
    lock_mode = env.str("SOHOA_S3_LOCK_MODE", "GOVERNANCE").strip().upper()
    if lock_mode not in LOCK_MODES:
        raise ConfigError(f"SOHOA_S3_LOCK_MODE không hợp lệ: '{lock_mode}' (GOVERNANCE hoặc COMPLIANCE)",
                          "SOHOA_S3_LOCK_MODE: GOVERNANCE or COMPLIANCE")
    home = env.str("SOHOA_HOME")
    home_dir = Path(home).resolve() if home else default_home()
    s3 = S3Settings(
        endpoint=env.str("SOHOA_S3_ENDPOINT"),
        access_key=env.str("SOHOA_S3_ACCESS_KEY"),
        secret_key=env.secret("SOHOA_S3_SECRET_KEY"),
        bucket=env.str("SOHOA_S3_BUCKET", "sohoa"),
        secure=env.str("SOHOA_S3_SECURE", "false").lower() in ("1", "true", "yes"),
        region=env.str("SOHOA_S3_REGION"),
        lock_mode=lock_mode,
        retention_days=env.int("SOHOA_RETENTION_DAYS", 3650, minimum=1),
    )
    return Settings(
        home=home_dir,
        home_origin="SOHOA_HOME" if home else "default",
        storage=storage,
        s3=s3,
        signing=SigningSettings(
            p12=env.str("SOHOA_SIGN_P12"),
            p12_password=env.secret("SOHOA_SIGN_P12_PASSWORD"),
            pkcs11_module=env.str("SOHOA_SIGN_PKCS11_MODULE"),
            pkcs11_token=env.str("SOHOA_SIGN_PKCS11_TOKEN"),
            pkcs11_pin=env.secret("SOHOA_SIGN_PKCS11_PIN"),
            level=env.str("SOHOA_SIGN_LEVEL"),
            tsa_url=env.str("SOHOA_TSA_URL"),
            trust_roots=tuple(filter(None, (env.str("SOHOA_TRUST_ROOTS") or "").split(":"))),
            agency_name=env.str("SOHOA_AGENCY_NAME", DEFAULT_AGENCY),
            revocation=_revocation(env.str("SOHOA_REVOCATION")),
        ),
        ocr=OcrSettings(
            lang=env.str("SOHOA_OCR_LANG", "vie"),
            tessdata=env.str("SOHOA_TESSDATA"),
            jpeg_quality=env.int("SOHOA_JPEG_QUALITY", 65, minimum=1, maximum=100),
            max_pixels=env.int("SOHOA_MAX_PIXELS", 150_000_000, minimum=1),
            jobs=env.int("SOHOA_JOBS", 0, minimum=0),
            engine=_choice(env, "SOHOA_OCR_ENGINE", ("vote", "tesseract", "trueocr"), "vote"),
            read_ahead=env.str("SOHOA_INTAKE_READ_AHEAD", "true").lower() in ("1", "true", "yes"),
        ),
        index=IndexSettings(database_url=env.str("SOHOA_DATABASE_URL")),
        broker=BrokerSettings(
            url=env.str("SOHOA_BROKER_URL"),
            visibility_timeout=env.int("SOHOA_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=5),
            page_time_limit=env.int("SOHOA_PAGE_TIME_LIMIT", 600, minimum=10),
            finish_time_limit=env.int("SOHOA_FINISH_TIME_LIMIT", 1800, minimum=10),
            signing_agencies=tuple(a.strip().upper() for a in (env.str("SOHOA_SIGNING_AGENCIES") or "").split(",")
                                   if a.strip()),
        ),
        api=ApiSettings(
            max_upload_bytes=env.int("SOHOA_API_MAX_UPLOAD_MB", 100, minimum=1) * 1024 * 1024,
            max_upload_files=env.int("SOHOA_API_MAX_UPLOAD_FILES", 200, minimum=1),
            session_hours=env.int("SOHOA_SESSION_HOURS", 10, minimum=1, maximum=24 * 30),
            session_idle_minutes=env.int("SOHOA_SESSION_IDLE_MINUTES", 60, minimum=5, maximum=24 * 60),
            cookie_secure=env.str("SOHOA_COOKIE_SECURE", "true").lower() in ("1", "true", "yes"),
            max_file_bytes=env.int("SOHOA_API_MAX_FILE_MB", 100, minimum=1) * 1024 * 1024,
            hsts_seconds=env.int("SOHOA_HSTS_SECONDS", 31536000, minimum=0),
            login_failures=env.int("SOHOA_LOGIN_MAX_FAILURES", 5, minimum=1),
            login_pause_seconds=env.int("SOHOA_LOGIN_PAUSE_SECONDS", 30, minimum=1, maximum=3600),
            processes=env.int("SOHOA_API_PROCESSES", 1, minimum=1, maximum=64),
            # prometheus_client's own name for it, set by `sohoa serve` for its processes
            metrics_dir=env.str("PROMETHEUS_MULTIPROC_DIR"),
        ),
        audit=AuditSettings(
            anchor_interval=env.int("SOHOA_AUDIT_ANCHOR_INTERVAL", 300, minimum=10),
            retention_days=env.int("SOHOA_AUDIT_RETENTION_DAYS", 400, minimum=366),
        ),
        webhook=_webhook(env),
        replica=_replica(env, storage, s3, home_dir),
        fixity=FixitySettings(
            days=env.int("SOHOA_FIXITY_DAYS", 30, minimum=1, maximum=3650),
            interval=env.int("SOHOA_FIXITY_INTERVAL", 3600, minimum=1, maximum=7 * 24 * 3600),
        ),
    )


def _replica(env: "_Env", storage: str, primary: S3Settings, home: Path) -> ReplicaSettings:
    """The second copy, read like the primary S3 settings; refused when it is not independent of
    the primary (the same bucket on the same endpoint, or a directory inside the local store)."""
    endpoint, directory = env.str("SOHOA_REPLICA_S3_ENDPOINT"), env.str("SOHOA_REPLICA_DIR")
    if endpoint and directory:
        raise ConfigError("Chỉ đặt một trong SOHOA_REPLICA_S3_ENDPOINT và SOHOA_REPLICA_DIR (bản sao thứ hai là "
                          "một kho S3 khác hoặc một thư mục trên phương tiện khác)",
                          "SOHOA_REPLICA_S3_ENDPOINT and SOHOA_REPLICA_DIR are exclusive")
    if directory:
        path, store = Path(directory).resolve(), (home / "store").resolve()
        if storage == "local" and (path == store or store in path.parents or path in store.parents):
            raise ConfigError(f"SOHOA_REPLICA_DIR '{path}' trùng hoặc lồng với kho chính {store}: bản sao phải "
                              "nằm trên phương tiện độc lập", "SOHOA_REPLICA_DIR overlaps the primary store")
        return ReplicaSettings(directory=path)
    if not endpoint:
        stray = [n for n in ("SOHOA_REPLICA_S3_ACCESS_KEY", "SOHOA_REPLICA_S3_BUCKET", "SOHOA_REPLICA_S3_REGION")
                 if env.str(n)]
        if stray:
            raise ConfigError(f"{stray[0]} được đặt nhưng thiếu SOHOA_REPLICA_S3_ENDPOINT",
                              f"{stray[0]} needs SOHOA_REPLICA_S3_ENDPOINT")
        return ReplicaSettings()
    s3 = S3Settings(
        endpoint=endpoint,
        access_key=env.str("SOHOA_REPLICA_S3_ACCESS_KEY"),
        secret_key=env.secret("SOHOA_REPLICA_S3_SECRET_KEY"),
        bucket=env.str("SOHOA_REPLICA_S3_BUCKET", "sohoa"),
        secure=env.str("SOHOA_REPLICA_S3_SECURE", "false").lower() in ("1", "true", "yes"),
        region=env.str("SOHOA_REPLICA_S3_REGION"),
        lock_mode=primary.lock_mode,
        retention_days=primary.retention_days,
    )
    if storage == "s3" and _same_endpoint(s3.endpoint, primary.endpoint) and s3.bucket == primary.bucket:
        raise ConfigError(f"Bản sao (SOHOA_REPLICA_S3_*) trỏ vào chính bucket '{s3.bucket}' của kho chính: "
                          "bản sao phải ở kho độc lập", "the replica is the primary bucket")
    return ReplicaSettings(s3=s3)


def _same_endpoint(a: str | None, b: str | None) -> bool:
    def host(value: str | None) -> str:
        return (value or "").split("://", 1)[-1].rstrip("/").lower()

    return host(a) == host(b)


def _webhook(env: "_Env") -> WebhookSettings:
    url, secret = env.str("SOHOA_WEBHOOK_URL"), env.secret("SOHOA_WEBHOOK_SECRET")
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"SOHOA_WEBHOOK_URL không hợp lệ: '{url}' (http:// hoặc https://)",
                          "SOHOA_WEBHOOK_URL: an http(s) URL")
    if url and not secret:
        raise ConfigError("SOHOA_WEBHOOK_URL cần SOHOA_WEBHOOK_SECRET (khóa ký HMAC của thông báo)",
                          "SOHOA_WEBHOOK_URL needs SOHOA_WEBHOOK_SECRET")
    return WebhookSettings(url=url, secret=secret)


def default_home() -> Path:
    """The user's data directory (``~/.local/share/sohoa`` on Linux): the same wherever the
    command runs, never a folder that depends on the current directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sohoa", appauthor=False))


def _choice(env: "_Env", name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (env.str(name, default) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} không hợp lệ: '{value}' ({' | '.join(allowed)})", f"{name}: one of {', '.join(allowed)}")
    return value


def _revocation(value: str | None) -> str | None:
    if value is None:
        return None
    if value.strip().lower() not in ("hard", "soft"):
        raise ConfigError(f"SOHOA_REVOCATION không hợp lệ: '{value}' (hard hoặc soft)", "SOHOA_REVOCATION: hard or soft")
    return value.strip().lower()


class _Env:
    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self._environ.get(name)
        return value if value not in (None, "") else default

    def secret(self, name: str) -> str | None:
        """A secret from NAME or from the file named by NAME_FILE (never logged)."""
        value = self.str(name)
        if value is None and (path := self.str(name + "_FILE")):
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(f"Không đọc được tệp {path} của {name}_FILE", f"{name}_FILE: {e.strerror}") from None
        return value

    def int(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.str(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            raise ConfigError(f"{name} phải là số nguyên, không phải '{raw}'", f"{name}: not an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"{minimum if minimum is not None else ''}..{maximum if maximum is not None else ''}"
            raise ConfigError(f"{name} = {value} nằm ngoài khoảng cho phép {bounds}", f"{name} out of range {bounds}")
        return value
