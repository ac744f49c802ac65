"""Audit log: one event per creation, change, access or failure (CV 7197, NĐ 30/2020).

Events go to the ``access_log`` table of the shared database (``storage.journal``):
append-only and hash-chained, one log for every worker, door and machine of a deployment.
"""
from __future__ import annotations

import getpass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from storage import journal

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def now_vn() -> datetime:
    return datetime.now(VN).replace(microsecond=0)


def record(db: Engine, action: str, outcome: str = "success", *, actor: str | None = None, **detail) -> dict:
    """Append one event; returns it as stored."""
    return journal.append(db, {"at": now_vn().isoformat(), "actor": actor or _actor(), "action": action,
                               "outcome": outcome, **detail})


def verify_chain(db: Engine) -> tuple[bool, int, int | None]:
    """(chain intact, events, first event that breaks it)."""
    return journal.verify(db)


def tail(db: Engine, last: int) -> list[dict]:
    return journal.tail(db, last)


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
