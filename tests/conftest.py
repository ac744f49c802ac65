"""Shared fixtures: an isolated SOHOA_HOME, rendered Vietnamese page files, the CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.pagegen import PageSpec, render_page

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
pytest_plugins = ["tests.services"]  # rgw, s3_store, s3_env, pg_url, index_engine, any_store, ...


@pytest.fixture(scope="session")
def pki():
    """The test PKI (CA, signers, OCSP, CRL, TSA over HTTP on 127.0.0.1); see tests/pki/harness.py."""
    from tests.pki import harness

    try:
        return harness.test_pki()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "sohoa-data"
    monkeypatch.setenv("SOHOA_HOME", str(path))
    monkeypatch.delenv("SOHOA_STORAGE", raising=False)
    monkeypatch.delenv("SOHOA_DATABASE_URL", raising=False)
    return path


@pytest.fixture
def cli(home, capsys):
    """Run ``sohoa ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from api.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def save_page(page, path: Path, **kw) -> Path:
    page.image.save(path, dpi=page.dpi, **kw)
    return path


@pytest.fixture(scope="session")
def rendered():
    """Rendered pages, by name, shared by the tests of a session (rendering costs ~1 s)."""
    cache = {}

    def get(name: str, **spec):
        if name not in cache:
            cache[name] = render_page(PageSpec(**spec))
        return cache[name]

    return get


def stored_keys(home: Path) -> list[str]:
    """Every file of the local store under ``home``, but the deployment's own objects (``system/``:
    the development key, made the first time a command signs), which are no dossier's data."""
    root = home / "store"
    if not root.exists():
        return []
    return sorted(k for p in root.rglob("*") if p.is_file()
                  if not (k := p.relative_to(root).as_posix()).startswith("system/"))


def manifest_of(home: Path, code: str) -> dict:
    return json.loads((home / "store" / "dossiers" / code / "manifest.json").read_text(encoding="utf-8"))


def audit_events(home: Path) -> list[dict]:
    """Every event of the access log of the embedded database under ``home``, oldest first."""
    from pipeline import audit
    from storage import db

    return audit.tail(db.engine_for(f"sqlite:///{home / 'index.sqlite3'}"), 1_000_000)


def cached_pages(home: Path) -> list[Path]:
    """Finished pages kept for a retry in the local store under ``home``."""
    return sorted((home / "store" / "work" / "pages").rglob("*.img"))


def interruptible() -> None:
    """A child process's ``preexec_fn``: Ctrl-C (SIGINT) stops it, as at a terminal, even when the
    suite itself runs in the background (a shell starts background jobs with SIGINT ignored, and
    Python then never turns it into KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
