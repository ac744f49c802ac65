"""The outbox of notices to the one-stop system: one row per notice, kept until delivered.

A notice is written here where its event happens, before anyone tries to send it, so that
none is lost when the receiver is down or the process dies. A deliverer claims a due row by
one conditional UPDATE (its ``attempts`` as read, still pending or its lease run out, due by
``next_at``): of two deliverers, on one machine or two, SQLite or PostgreSQL, exactly one
moves the row, and only that one sends it. A claimed row is ``sending`` with ``next_at`` the
end of its lease, so a deliverer that dies mid-send leaves it to be claimed again later.
Every settling update is conditional on the claim (``attempts`` and ``sending``), so a
deliverer whose lease ran out cannot overwrite the outcome of the one that took over.

    pending   waiting for its attempt at ``next_at`` (epoch seconds)
    sending   claimed; ``next_at`` is when the claim lapses
    delivered the receiver answered 2xx (``delivered``: when)
    failed    given up (``last_error``: why); ``requeue`` sends it again
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
notices = sa.Table(
    "notices", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("dossier", sa.String(100), nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("delivered", sa.String(40)),
)
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
STATES = (PENDING, SENDING, DELIVERED, FAILED)
_CLAIMABLE = (PENDING, SENDING)  # a sending row whose lease ran out: its deliverer died


def add(engine: Engine, *, event: str, dossier: str, payload: dict, created: str, next_at: float) -> int:
    """A new pending notice; returns its id."""
    with engine.begin() as conn:
        result = conn.execute(notices.insert().values(
            event=event, dossier=dossier, payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
            state=PENDING, attempts=0, next_at=next_at, created=created))
        return int(result.inserted_primary_key[0])


def get(engine: Engine, notice_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(notices).where(notices.c.id == notice_id)).first()
    return _row(row) if row is not None else None


def find(engine: Engine, *, dossier: str | None = None, event: str | None = None,
         states: tuple[str, ...] | None = None, limit: int | None = None, newest_first: bool = False) -> list[dict]:
    """Notices matching every filter given, oldest first (newest first when asked)."""
    query = sa.select(notices).order_by(*((notices.c.id.desc(),) if newest_first else (notices.c.id,)))
    if dossier is not None:
        query = query.where(notices.c.dossier == dossier)
    if event is not None:
        query = query.where(notices.c.event == event)
    if states is not None:
        query = query.where(notices.c.state.in_(states))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def counts(engine: Engine) -> dict[str, int]:
    """How many notices are in each state."""
    with engine.connect() as conn:
        found = dict(conn.execute(sa.select(notices.c.state, sa.func.count()).group_by(notices.c.state)).all())
    return {state: int(found.get(state, 0)) for state in STATES}


def claim_due(engine: Engine, *, now: float, lease: float, limit: int, ids: list[int] | None = None) -> list[dict]:
    """Claim up to ``limit`` notices due at ``now`` (only among ``ids`` when given) for one
    attempt each; returns the claimed rows, ``attempts`` already counting this attempt. A row
    another deliverer claimed first is skipped for the next due one."""
    claimed: list[dict] = []
    tried: list[int] = []
    while len(claimed) < limit:
        query = (sa.select(notices.c.id, notices.c.attempts)
                 .where(notices.c.state.in_(_CLAIMABLE), notices.c.next_at <= now)
                 .order_by(notices.c.next_at, notices.c.id).limit(limit - len(claimed)))
        if ids is not None:
            query = query.where(notices.c.id.in_(ids))
        if tried:
            query = query.where(notices.c.id.not_in(tried))
        with engine.connect() as conn:
            candidates = conn.execute(query).all()
        if not candidates:
            break
        for notice_id, attempts in candidates:
            tried.append(notice_id)
            with engine.begin() as conn:
                moved = conn.execute(notices.update().where(
                    notices.c.id == notice_id, notices.c.attempts == attempts,
                    notices.c.state.in_(_CLAIMABLE), notices.c.next_at <= now,
                ).values(state=SENDING, attempts=attempts + 1, next_at=now + lease)).rowcount
                if moved == 1:
                    claimed.append(_row(conn.execute(sa.select(notices).where(notices.c.id == notice_id)).one()))
    return claimed


def mark_delivered(engine: Engine, notice_id: int, attempt: int, *, at: str) -> bool:
    """The claimed attempt ``attempt`` was answered 2xx; False when the claim had lapsed and
    another deliverer holds the row."""
    return _settle(engine, notice_id, attempt, state=DELIVERED, delivered=at, last_error=None)


def mark_retry(engine: Engine, notice_id: int, attempt: int, *, next_at: float, error: str) -> bool:
    """The attempt failed: pending again, due at ``next_at``."""
    return _settle(engine, notice_id, attempt, state=PENDING, next_at=next_at, last_error=error)


def mark_failed(engine: Engine, notice_id: int, attempt: int, *, error: str) -> bool:
    """The attempt failed and no other will be made."""
    return _settle(engine, notice_id, attempt, state=FAILED, last_error=error)


def requeue(engine: Engine, *, now: float, ids: list[int] | None = None) -> int:
    """Failed notices (those of ``ids``, or all) pending again, due at ``now``, their attempts
    counted afresh; returns how many."""
    query = notices.update().where(notices.c.state == FAILED)
    if ids is not None:
        query = query.where(notices.c.id.in_(ids))
    with engine.begin() as conn:
        return conn.execute(query.values(state=PENDING, next_at=now, attempts=0)).rowcount


def _settle(engine: Engine, notice_id: int, attempt: int, **values) -> bool:
    with engine.begin() as conn:
        return conn.execute(notices.update().where(
            notices.c.id == notice_id, notices.c.attempts == attempt, notices.c.state == SENDING,
        ).values(**values)).rowcount == 1


def _row(row) -> dict:
    notice = row._asdict()
    notice["payload"] = json.loads(notice["payload"])
    return notice
