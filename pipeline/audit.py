"""Audit log: one event per creation, change, access or failure (CV 7197, NĐ 30/2020).

Events go to the ``access_log`` table of the shared database (``storage.journal``):
append-only and hash-chained, one log for every worker, door and machine of a deployment.
"""
from __future__ import annotations

import getpass
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from storage import journal

from .errors import UsageError, shown_text

VN = ZoneInfo("Asia/Ho_Chi_Minh")
# who the current request acts for (set by the HTTP and web doors): name, role, ip, via
_acting: ContextVar[dict | None] = ContextVar("sohoa_acting", default=None)


@contextmanager
def acting(name: str, role: str, ip: str | None, via: str):
    """Every event recorded inside is the named user's, with their role and address."""
    token = _acting.set({"actor": name, "role": role, "ip": ip, "via": via})
    try:
        yield
    finally:
        _acting.reset(token)


MIN_REASON = 10  # characters: a reason an auditor can read, not "ok"


def stated_reason(reason: str) -> str:
    """The reason given for a step that cannot be undone (a disposal, a job given up), its
    whitespace folded; UsageError when it is too short to tell an auditor anything."""
    reason = " ".join((reason or "").split())
    if len(reason) < MIN_REASON:
        raise UsageError(f"Cần nêu lý do (ít nhất {MIN_REASON} ký tự)", f"a reason of at least {MIN_REASON} characters")
    return reason


def now_vn() -> datetime:
    return datetime.now(VN).replace(microsecond=0)


def record(db: Engine, action: str, outcome: str = "success", *, actor: str | None = None, **detail) -> dict:
    """Append one event; returns it as stored. Inside ``acting(...)`` the event names that user,
    their role and address; otherwise the operating-system user at the command line."""
    who = _acting.get()
    if who is not None and actor is None:
        actor = who["actor"]
        detail = {"role": who["role"], "ip": who["ip"], "via": who["via"], **detail}
    detail = {k: shown_text(v) if isinstance(v, str) else v for k, v in detail.items()}  # (a path not UTF-8)
    return journal.append(db, {"at": now_vn().isoformat(), "actor": actor or _actor(), "action": action,
                               "outcome": outcome, **detail})


def logged(db: Engine, action: str, outcome: str, *, dossier: str, **fields: str) -> bool:
    """Whether the log holds such an event of ``dossier`` (one lost to an outage is written late)."""
    return journal.holds(db, dossier, action, outcome, **fields)


def current_actor() -> str:
    """Who an event recorded now is for: the acting user, else the operating-system user."""
    who = _acting.get()
    return who["actor"] if who is not None else _actor()


def verify_chain(db: Engine) -> tuple[bool, int, int | None]:
    """(chain intact, events, first event that breaks it)."""
    return journal.verify(db)


def tail(db: Engine, last: int, dossier: str | None = None) -> list[dict]:
    return journal.tail(db, last, dossier)


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
