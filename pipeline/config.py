"""Configuration from SOHOA_* environment variables, read once per process.

Every setting has an embedded default, so a bare ``sohoa ingest`` runs with local
storage and SQLite under ``SOHOA_HOME`` (``./sohoa-data``) and no broker.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_or_file(name: str) -> str | None:
    """A secret from NAME or from the file named by NAME_FILE (never logged)."""
    value = _env(name)
    if value is None and (path := _env(name + "_FILE")):
        value = Path(path).read_text(encoding="utf-8").strip()
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    storage: str = "local"
    database_url: str | None = None
    jobs: int = 0
    max_pixels: int = 150_000_000
    ocr_lang: str = "vie"
    agency_name: str = "Cơ quan số hóa (chưa cấu hình)"
    s3: dict = field(default_factory=dict)
    sign: dict = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'index.sqlite3'}"


def load() -> Settings:
    home = Path(_env("SOHOA_HOME", "./sohoa-data")).resolve()
    return Settings(
        home=home,
        storage=_env("SOHOA_STORAGE", "local"),
        database_url=_env("SOHOA_DATABASE_URL"),
        jobs=int(_env("SOHOA_JOBS", "0")),
        max_pixels=int(_env("SOHOA_MAX_PIXELS", "150000000")),
        ocr_lang=_env("SOHOA_OCR_LANG", "vie"),
        agency_name=_env("SOHOA_AGENCY_NAME", "Cơ quan số hóa (chưa cấu hình)"),
        s3={
            "endpoint": _env("SOHOA_S3_ENDPOINT"),
            "access_key": _env("SOHOA_S3_ACCESS_KEY"),
            "secret_key": _env_or_file("SOHOA_S3_SECRET_KEY"),
            "bucket": _env("SOHOA_S3_BUCKET", "sohoa"),
            "secure": _env("SOHOA_S3_SECURE", "false").lower() in ("1", "true", "yes"),
            "region": _env("SOHOA_S3_REGION"),
            "lock_mode": _env("SOHOA_S3_LOCK_MODE", "GOVERNANCE"),
            "retention_days": _env("SOHOA_RETENTION_DAYS"),
        },
        sign={
            "p12": _env("SOHOA_SIGN_P12"),
            "p12_password": _env_or_file("SOHOA_SIGN_P12_PASSWORD"),
            "pkcs11_module": _env("SOHOA_SIGN_PKCS11_MODULE"),
            "pkcs11_token": _env("SOHOA_SIGN_PKCS11_TOKEN"),
            "pkcs11_pin": _env_or_file("SOHOA_SIGN_PKCS11_PIN"),
            "level": _env("SOHOA_SIGN_LEVEL"),
            "tsa_url": _env("SOHOA_TSA_URL"),
            "trust_roots": _env("SOHOA_TRUST_ROOTS"),
        },
    )
