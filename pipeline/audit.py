"""Audit log: one JSON line per creation, change, access or failure (CV 7197, NĐ 30/2020).

Append-only file ``SOHOA_HOME/logs/audit.jsonl``; each line carries the SHA-256 of the
previous line, so a removed or edited line breaks the chain (tamper-evident).
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def now_vn() -> datetime:
    return datetime.now(VN).replace(microsecond=0)


def record(home: Path, action: str, outcome: str = "success", **detail) -> dict:
    path = Path(home) / "logs" / "audit.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        last = b""
        for line in f:
            last = line
        event = {"at": now_vn().isoformat(), "actor": _actor(), "action": action, "outcome": outcome,
                 **detail, "prev": hashlib.sha256(last.rstrip(b"\n")).hexdigest()}
        f.write(json.dumps(event, ensure_ascii=False).encode() + b"\n")
        f.flush()
    return event


def verify_chain(home: Path) -> tuple[bool, int]:
    """(chain intact, number of lines)."""
    path = Path(home) / "logs" / "audit.jsonl"
    if not path.exists():
        return True, 0
    prev, n = b"", 0
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            linked = json.loads(line).get("prev") == hashlib.sha256(prev).hexdigest()
        except (ValueError, AttributeError):
            linked = False  # a garbled line is a break, not a crash
        if not linked:
            return False, n
        prev = line
    return True, n


def tail(home: Path, last: int) -> list[dict]:
    path = Path(home) / "logs" / "audit.jsonl"
    if not path.exists() or last <= 0:
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()[-last:]]


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
