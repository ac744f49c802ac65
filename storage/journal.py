"""The access log in the database: append-only and hash-chained.

Each row holds the SHA-256 of the row before it (``prev_sha256``, unique) and its own
(``sha256``, over its fields and that link). A row edited or removed, even by someone who
may drop the append-only triggers, breaks the chain at that row; two writers that read the
same last row cannot both append after it, so the loser reads again and appends after the
winner. Rows are kept as written: a reader gets back exactly the event it appended.

The threads of one process that append at the same time share one transaction (group commit):
the first to get the process's write turn appends every event waiting, in the order they came,
and commits once; the others find theirs done. Each caller still returns only once its own
event is committed, so nothing is acknowledged that a crash could lose, but under load the
advisory lock is taken and the log flushed once per batch instead of once per event.
"""
from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", sa.String(40)),
    sa.Column("actor", sa.String(200)), sa.Column("action", sa.String(40)), sa.Column("outcome", sa.String(20)),
    sa.Column("dossier", sa.String(100)), sa.Column("detail", sa.Text),
    sa.Column("prev_sha256", sa.String(64)), sa.Column("sha256", sa.String(64)),
)
GENESIS = hashlib.sha256(b"").hexdigest()
FIELDS = ("at", "actor", "action", "outcome")
_ATTEMPTS = 50
_APPEND_LOCK = 0x53_4F_48_4F_41  # PostgreSQL advisory lock of the appenders ("SOHOA")


def row_sha256(row: dict) -> str:
    """The hash of a row's content and its link to the row before."""
    canonical = json.dumps([row["at"], row["actor"], row["action"], row["outcome"], row["dossier"],
                            row["detail"], row["prev_sha256"]], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_BATCH = 500  # events in one transaction at most


class _Pending:
    __slots__ = ("base", "sha256", "error")

    def __init__(self, base: dict):
        self.base, self.sha256, self.error = base, None, None


class _Appender:
    """The appends of one process to one database: whoever holds ``turn`` writes every event
    waiting (flat combining); a failed batch is written again one event at a time, so that one
    bad event fails only its own caller."""

    def __init__(self) -> None:
        self.waiting: list[_Pending] = []
        self.queue = threading.Lock()  # guards ``waiting``
        self.turn = threading.Lock()   # one writer of this process at a time

    def append(self, engine: Engine, base: dict) -> str:
        mine = _Pending(base)
        with self.queue:
            self.waiting.append(mine)
        with self.turn:
            if mine.sha256 is None and mine.error is None:  # no writer before took it: write all waiting
                with self.queue:
                    taken, self.waiting = self.waiting, []
                try:
                    for start in range(0, len(taken), _BATCH):
                        self._write(engine, taken[start:start + _BATCH])
                finally:  # interrupted: the callers not written to hear so, none waits forever
                    for pending in taken:
                        if pending.sha256 is None and pending.error is None:
                            pending.error = RuntimeError("access log: the append was interrupted")
        if mine.error is not None:
            raise mine.error
        return mine.sha256

    @staticmethod
    def _write(engine: Engine, batch: list[_Pending]) -> None:
        try:
            digests = _insert(engine, [p.base for p in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                return
            for pending in batch:
                _Appender._write(engine, [pending])
            return
        for pending, digest in zip(batch, digests):
            pending.sha256 = digest


_appenders: "weakref.WeakKeyDictionary[Engine, _Appender]" = weakref.WeakKeyDictionary()
_appenders_lock = threading.Lock()


def _appender(engine: Engine) -> _Appender:
    with _appenders_lock:
        found = _appenders.get(engine)
        if found is None:
            found = _appenders[engine] = _Appender()
        return found


def append(engine: Engine, event: dict) -> dict:
    """Append ``event`` (``at``, ``actor``, ``action``, ``outcome``, any other JSON fields) after
    the last row; returns the event as stored, with its ``sha256``, once it is committed."""
    detail = {k: v for k, v in event.items() if k not in FIELDS}
    base = {**{k: str(event[k]) for k in FIELDS}, "dossier": detail.get("dossier"),
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)}
    return {**event, "sha256": _appender(engine).append(engine, base)}


def _insert(engine: Engine, bases: list[dict]) -> list[str]:
    """Append rows after the last one, chained in this order, in one transaction; their sha256."""
    for _ in range(_ATTEMPTS):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # appenders queue here instead of colliding and retrying
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
                last = conn.execute(sa.select(access_log.c.sha256).order_by(access_log.c.id.desc()).limit(1)).scalar()
                rows = []
                for base in bases:
                    row = {**base, "prev_sha256": last or GENESIS}
                    row["sha256"] = last = row_sha256(row)
                    rows.append(row)
                # executemany: the rows go in one round trip, still as one INSERT each, in order,
                # so the ids follow the chain's order
                conn.execute(access_log.insert(), rows)
            return [row["sha256"] for row in rows]
        except sa.exc.IntegrityError:  # another writer appended after the same row first
            continue
        except sa.exc.OperationalError as e:  # SQLite: another writer committed after our read
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            time.sleep(random.uniform(0.01, 0.1))
    raise RuntimeError("access log: could not append after repeated contention")


def _event(row) -> dict:
    return {"at": row.at, "actor": row.actor, "action": row.action, "outcome": row.outcome,
            **json.loads(row.detail), "sha256": row.sha256}


def verify(engine: Engine) -> tuple[bool, int, int | None]:
    """(chain intact, rows, position of the first row that breaks it (1-based) or None)."""
    previous, count = GENESIS, 0
    with engine.connect() as conn:
        for count, row in enumerate(conn.execute(sa.select(access_log).order_by(access_log.c.id)), start=1):
            data = row._asdict()
            if data["prev_sha256"] != previous or row_sha256(data) != data["sha256"]:
                return False, count, count
            previous = data["sha256"]
    return True, count, None


def head(engine: Engine) -> tuple[int, int | None, str]:
    """(rows, id of the last row or None, its sha256 or GENESIS for an empty log), read in one
    statement so the three belong together."""
    rows = sa.select(sa.func.count()).select_from(access_log).scalar_subquery()
    query = sa.select(rows, access_log.c.id, access_log.c.sha256).order_by(access_log.c.id.desc()).limit(1)
    with engine.connect() as conn:
        found = conn.execute(query).first()
    if found is None:
        return 0, None, GENESIS
    return int(found[0]), int(found[1]), found[2]


def locate(engine: Engine, row_id: int) -> tuple[int, str] | None:
    """(position of the row with this id, 1-based, counted as rows with an id up to it; its stored
    sha256), or None when no row has that id."""
    with engine.connect() as conn:
        digest = conn.execute(sa.select(access_log.c.sha256).where(access_log.c.id == row_id)).scalar()
        if digest is None:
            return None
        position = conn.execute(sa.select(sa.func.count()).select_from(access_log)
                                .where(access_log.c.id <= row_id)).scalar()
    return int(position), digest


def holds(engine: Engine, dossier: str, action: str, outcome: str, **fields: str) -> bool:
    """Whether an event of ``dossier`` with this action and outcome holds each of ``fields``."""
    query = sa.select(access_log.c.id).where(access_log.c.dossier == dossier, access_log.c.action == action,
                                             access_log.c.outcome == outcome)
    for name, value in fields.items():  # as ``append`` writes it: "name": "value"
        query = query.where(access_log.c.detail.contains(json.dumps({name: value}, ensure_ascii=False)[1:-1],
                                                         autoescape=True))
    with engine.connect() as conn:
        return conn.execute(query.limit(1)).first() is not None


def tail(engine: Engine, last: int, dossier: str | None = None) -> list[dict]:
    """The last ``last`` events, oldest first (of one dossier when given)."""
    if last <= 0:
        return []
    query = sa.select(access_log).order_by(access_log.c.id.desc()).limit(last)
    if dossier is not None:
        query = query.where(access_log.c.dossier == dossier)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_event(r) for r in reversed(rows)]
