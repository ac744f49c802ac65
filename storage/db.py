"""The database: one engine per URL and process, and its schema version.

The schema is made by the Alembic migrations shipped in ``storage/migrations`` and is
changed only by ``upgrade`` (``sohoa db upgrade``, run at install and after each update).
``engine_for`` never migrates a shared database, where many workers would race to do it on
their first use: it refuses one whose schema is not the code's (``SchemaOutdated``). The
embedded SQLite file is the exception: it lives on one machine, so its first user upgrades
it under a file lock beside it, and a bare ``sohoa ingest`` works on a new home.
"""
from __future__ import annotations

import fcntl
import functools
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import DatabaseError, SchemaNewer, SchemaOutdated

VERSION_TABLE = "sohoa_schema_version"
MIGRATIONS = Path(__file__).with_name("migrations")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _fresh_in_child() -> None:
    """A forked process gets a lock of its own (the parent's may be held by a thread that is not
    in the child, which would then wait on it for ever) and connections of its own: the engines
    it inherits keep their checked schema but leave the parent's pooled connections to the parent.
    A Celery worker checks the schema, then forks its pool; each child took the same connection,
    one socket for several processes, and a page task failed on a connection another had left in
    a transaction ("can't change 'autocommit' now", the bad-input review)."""
    global _engines_lock
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_fresh_in_child)


def database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases and in-memory SQLite)."""
    url = database_url(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):])
    return None


BUSY_SECONDS = 30  # how long an SQLite connection waits for another's write lock


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")
    _write_ahead_log(cursor)  # searches keep reading while an ingest writes
    cursor.close()


def _write_ahead_log(cursor) -> None:
    """Put the file in WAL mode (kept in the file: once switched, asking again changes nothing).
    Switching a new file takes its lock without waiting on busy_timeout, so a second connection
    opening the same new file at that moment (another thread of the command, another command)
    would fail with "database is locked": the switch is tried again until BUSY_SECONDS pass."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_disk_full(context) -> None:
    """An SQLite file on a full disk: what to do, in Vietnamese, rather than the driver's text."""
    original = context.original_exception
    if context.is_pre_ping or not isinstance(original, sqlite3.OperationalError):
        return
    if getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(original):
        where = sqlite_path(str(context.engine.url)) if context.engine is not None else None
        raise DatabaseError(f"Hết chỗ trống trên đĩa chứa cơ sở dữ liệu {where or ''}; hãy giải phóng chỗ trống "
                            "rồi chạy lại", f"database or disk is full: {original}") from context.sqlalchemy_exception


def _unreachable(context) -> None:
    """A database server that cannot be reached (refused, dropped): what to do, in Vietnamese, the
    server named without its password. Callers retry DatabaseError as they retry an outage."""
    refused = context.connection is None and isinstance(context.sqlalchemy_exception, sa.exc.OperationalError)
    if context.is_pre_ping or context.engine is None or not (context.is_disconnect or refused):
        return
    url = context.engine.url
    raise DatabaseError(f"Không kết nối được cơ sở dữ liệu {url.host or ''}:{url.port or ''}/{url.database or ''}; "
                        "hãy kiểm tra máy chủ cơ sở dữ liệu rồi chạy lại",
                        f"database unreachable: {context.original_exception}") from context.sqlalchemy_exception


def create_engine(url: str) -> Engine:
    """An engine on the database at ``url``, as it is (no schema check)."""
    url = database_url(url)
    if (path := sqlite_path(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # a server answers up to ~20 requests at once: connections beyond the pool would be opened and
    # closed for every request (a new PostgreSQL backend each time), so the pool keeps that many
    pool = {} if sqlite_path(url) is not None or url.startswith("sqlite") else {"pool_size": 20, "max_overflow": 20}
    engine = sa.create_engine(url, pool_pre_ping=True, **pool)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "handle_error", _sqlite_disk_full)
    else:
        sa.event.listen(engine, "handle_error", _unreachable)
    return engine


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the schema to ``revision``; returns (version before, version after)."""
    from alembic import command
    from alembic.config import Config

    before = current_revision(engine)
    _refuse_newer(before)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _upgrade_lock(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every migration's revision, read from the ``revision`` lines of the migration files."""
    return frozenset(revision[1] for path in (MIGRATIONS / "versions").glob("*.py")
                     if (revision := _REVISION.search(path.read_text(encoding="utf-8"))) is not None)


@functools.cache
def head_revision() -> str:
    """The newest migration's revision, read from the ``revision`` and ``down_revision`` lines
    of the migration files (one chain, as alembic keeps them) without importing alembic: that
    import took 0.2 s at the start of every command, which then found the schema up to date."""
    parents = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        if down := _DOWN_REVISION.search(path.read_text(encoding="utf-8")):
            parents.add(down[1])
    heads = set(known_revisions()) - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS} have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


_REVISION = re.compile(r'^revision\s*=\s*"([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision\s*=\s*"([^"]+)"', re.MULTILINE)


def check_schema(engine: Engine) -> None:
    """SchemaOutdated unless the database holds the schema this code expects; SchemaNewer when a
    newer sohoa migrated it (an upgrade rolled back without its database: an older code would be
    told to run 'sohoa db upgrade', which fails on a revision it does not know)."""
    have, want = current_revision(engine), head_revision()
    _refuse_newer(have)
    if have != want:
        raise SchemaOutdated(have, want)


def _refuse_newer(have: str | None) -> None:
    """SchemaNewer when the database's revision is none this code's migrations know."""
    if have is not None and have not in known_revisions():
        raise SchemaNewer(have, head_revision())


def engine_for(url: str) -> Engine:
    """The engine for ``url``, one per URL and process, its schema checked once (the embedded
    SQLite file is upgraded instead, see the module's docstring)."""
    url = database_url(url)
    with _engines_lock:  # two threads of a new command (the signer's, the main) must share one
        if url not in _engines:
            engine = create_engine(url)
            if sqlite_path(url) is not None or url == "sqlite:///:memory:":
                if current_revision(engine) != head_revision():
                    upgrade(engine)  # which refuses a newer schema (SchemaNewer)
            else:
                check_schema(engine)
            _engines[url] = engine
        return _engines[url]


def close_all() -> None:
    """Close the connections every engine of this process holds (an SQLite file's last connection
    folds its write-ahead log back into the file and removes it)."""
    for engine in _engines.values():
        engine.dispose()


@contextmanager
def _upgrade_lock(engine: Engine):
    """One migration at a time: an advisory lock on PostgreSQL, a file lock beside an SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(495790354273)"))  # the bytes of "sohoa"
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(495790354273)"))
                conn.commit()
        return
    path = sqlite_path(str(engine.url))
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".migrate.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
