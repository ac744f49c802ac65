"""One writer per dossier across every machine: the lock is held in the shared database.

PostgreSQL: a session advisory lock keyed by the dossier code, held on its own connection
for as long as the change takes; the server releases it when that connection ends, so a
worker killed while holding it never blocks the dossier. SQLite (one machine): a lease row
in ``dossier_locks`` naming the holder (host and process); a lease whose process is gone is
taken over.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import LockTimeout

metadata = sa.MetaData()
dossier_locks = sa.Table(
    "dossier_locks", metadata,
    sa.Column("code", sa.String(100), primary_key=True), sa.Column("holder", sa.String(200)),
    sa.Column("acquired", sa.Float),
)


def holder_name() -> str:
    """This process: its host, its process-id namespace (two containers given the same host name
    number their processes apart) and its process id."""
    return f"{_machine()}:{os.getpid()}"


def _machine() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:  # no /proc: the host name alone
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


def gone(holder: str) -> bool:
    """Whether the process ``holder_name`` named is known to be no longer running: a process of
    this machine and process-id namespace that is not there. One elsewhere, or one whose id is in
    use (perhaps by another process since), is not known to be gone."""
    machine, _, pid = holder.rpartition(":")
    # a holder named by an earlier version (host:pid, before the namespace was part of the name)
    if machine not in (_machine(), socket.gethostname()) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # there, and another user's
        return False
    return False


@contextmanager
def dossier_lock(engine: Engine, code: str, timeout: float = 900.0):
    """Hold the dossier's lock for the body; LockTimeout after ``timeout`` seconds of waiting."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, code, timeout):
            yield
    else:
        with _lease(engine, code, timeout):
            yield


def _advisory_key(code: str) -> int:
    return int.from_bytes(hashlib.sha256(b"sohoa-dossier:" + code.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _advisory(engine: Engine, code: str, timeout: float):
    key = _advisory_key(code)
    with engine.connect() as conn:
        deadline = time.monotonic() + timeout
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            conn.commit()
            if time.monotonic() > deadline:
                raise _busy(code, timeout)
            time.sleep(0.05)
        conn.commit()  # the lock belongs to the session, not to this transaction
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


@contextmanager
def _lease(engine: Engine, code: str, timeout: float):
    me, deadline = holder_name(), time.monotonic() + timeout
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(dossier_locks.insert().values(code=code, holder=me, acquired=time.time()))
            break
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            _take_over_if_abandoned(engine, code)
            if time.monotonic() > deadline:
                raise _busy(code, timeout) from None
            time.sleep(0.05)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(dossier_locks.delete().where(dossier_locks.c.code == code, dossier_locks.c.holder == me))


def _take_over_if_abandoned(engine: Engine, code: str) -> None:
    with engine.begin() as conn:
        holder = conn.execute(sa.select(dossier_locks.c.holder).where(dossier_locks.c.code == code)).scalar()
        if holder is None:
            return
        if gone(holder):
            conn.execute(dossier_locks.delete().where(dossier_locks.c.code == code, dossier_locks.c.holder == holder))


def _busy(code: str, timeout: float) -> LockTimeout:
    return LockTimeout(f"Hồ sơ {code} đang được một tiến trình khác cập nhật quá {timeout:.0f} giây; hãy thử lại sau",
                       f"dossier lock on {code} not acquired within {timeout:.0f} s")
