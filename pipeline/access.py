"""Who may do what: roles, their permissions, and the agencies a user is scoped to.

Four roles (issue 13): an *operator* takes in papers at the counter and sees the dossiers it
took in; an *officer* reads, searches, downloads and verifies; an *archivist* runs bulk work,
verification, retention and reports; an *admin* manages users and tokens. Every role is scoped
to agency codes: a user with ``agencies = ("000.00.12.H15",)`` sees only dossiers whose code
starts with that agency code; a user with no agency codes sees the whole deployment.

A prefix matches at a code's part boundary only (the next character is ``.`` or ``-``), so the
scope ``H15`` covers ``H15.50-261201-0001`` and ``H15-2019-7`` but not ``H150-261201-0001``.

The doors may ask for a credential with ``cached=True``: a token or session this process found
valid is then trusted for up to ``CREDENTIALS_CACHE_SECONDS`` (5 s) without asking the database
again, so that a client sending many requests costs one lookup per few seconds, not one per
request. A token revoked or a session ended by this process stops working at once (its cache
entry goes with it); one revoked by another process (``sohoa token revoke``, another server
process or machine) stops working within those 5 seconds. A session never outlives its expiry.
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from storage import accounts

from . import audit
from .errors import Conflict, NotFound, UsageError

ROLES = ("operator", "officer", "archivist", "admin")
ROLE_NAMES_VI = {"operator": "Cán bộ tiếp nhận", "officer": "Cán bộ xử lý", "archivist": "Cán bộ lưu trữ",
                 "admin": "Quản trị"}

# permission -> the roles that have it
PERMISSIONS: dict[str, frozenset[str]] = {
    "upload": frozenset({"operator", "admin"}),
    "read": frozenset({"officer", "archivist", "admin"}),
    "search": frozenset({"officer", "archivist", "admin"}),
    "download": frozenset({"officer", "archivist", "admin"}),
    "verify": frozenset({"officer", "archivist", "admin"}),
    "checklist": frozenset({"operator", "officer", "admin"}),
    "jobs": frozenset({"operator", "officer", "archivist", "admin"}),
    "retry": frozenset({"operator", "archivist", "admin"}),
    "bulk": frozenset({"archivist", "admin"}),
    "report": frozenset({"archivist", "admin"}),
    "access-log": frozenset({"archivist", "admin"}),
    "metrics": frozenset({"archivist", "admin"}),
    "users": frozenset({"admin"}),
}


def in_scope(code: str, agencies: Sequence[str]) -> bool:
    """Whether dossier ``code`` belongs to one of ``agencies`` (none: every dossier)."""
    if not agencies:
        return True
    return any(code == a or (code.startswith(a) and code[len(a)] in ".-") for a in agencies)


@dataclass(frozen=True)
class Principal:
    """The user a request acts for, as the doors and the access log see it."""
    name: str
    role: str
    agencies: tuple[str, ...] = ()
    ip: str | None = None
    via: str = "http"  # "http" (token), "web" (session), "cli"

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def sees(self, code: str) -> bool:
        return in_scope(code, self.agencies)


# --------------------------------------------------------------------------- users and credentials

_hasher = PasswordHasher()  # argon2id with the library's current parameters
TOKEN_PREFIX = "sohoa_"
MIN_PASSWORD = 10
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
_AGENCY = re.compile(r"[0-9A-Z]+(?:\.[0-9A-Z]+)*")


@functools.cache
def dummy_hash() -> str:
    """What a login for an unknown name is checked against, so that it costs the time a known
    name's does. Made once per process, on first use (a server makes it before serving,
    ``service.warm_up``): an argon2 hash takes 0.1 s, which every command paid at import."""
    return _hasher.hash("sohoa: no such user")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def principal(user: dict, *, ip: str | None, via: str) -> Principal:
    return Principal(user["name"], user["role"], tuple(user["agencies"]), ip, via)


def add_user(db: Engine, name: str, role: str, agencies: Sequence[str], password: str | None) -> Principal:
    """A new user with one role, scoped to ``agencies`` (none: the whole deployment)."""
    if not _NAME.fullmatch(name or ""):
        raise UsageError(f"Tên người dùng '{name}' không hợp lệ: 2–64 ký tự a-z, 0-9, '.', '_', '@', '-'",
                         "user name: 2-64 of a-z 0-9 . _ @ -")
    if role not in ROLES:
        raise UsageError(f"Vai trò '{role}' không có; chọn một trong: {', '.join(ROLES)}", "unknown role")
    agencies = tuple(dict.fromkeys(a.strip().upper() for a in agencies if a.strip()))
    for a in agencies:
        if not _AGENCY.fullmatch(a):
            raise UsageError(f"Mã cơ quan '{a}' không hợp lệ (nhóm chữ số và chữ in hoa cách nhau bằng dấu chấm)",
                             "agency code: dot-separated groups of 0-9A-Z")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UsageError(f"Mật khẩu phải có ít nhất {MIN_PASSWORD} ký tự", "password too short")
    hashed = _hasher.hash(password) if password else None
    if not accounts.add_user(db, name, role, agencies, hashed, audit.now_vn().isoformat()):
        raise Conflict(f"Đã có người dùng '{name}'", "user exists")
    audit.record(db, "user-add", user=name, role=role, agencies=list(agencies))
    return Principal(name, role, agencies, via="cli")


def create_token(db: Engine, name: str) -> tuple[str, str]:
    """(token id, token) for user ``name``; the token is shown once and only its hash is kept."""
    if accounts.get_user(db, name) is None:
        raise NotFound(f"Không có người dùng '{name}'", "no such user")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    accounts.add_token(db, token_id, name, _sha256(token), audit.now_vn().isoformat())
    audit.record(db, "token-create", user=name, token=token_id)
    return token_id, token


def set_disabled(db: Engine, name: str, disabled: bool) -> int:
    """Lock a user out: its tokens revoked and its web sessions ended (at once in this process,
    within ``CREDENTIALS_CACHE_SECONDS`` in the others), for good: a user let back in needs a new
    token and logs in again. Or let it back in. Recorded in the access log; returns the tokens revoked."""
    found, revoked = accounts.set_disabled(db, name, audit.now_vn().isoformat() if disabled else None)
    if not found:
        raise NotFound(f"Không có người dùng '{name}'", "no such user")
    _recent(db).clear()
    audit.record(db, "user-disable" if disabled else "user-enable", user=name,
                 **({"tokensRevoked": revoked} if disabled else {}))
    return revoked


def revoke_token(db: Engine, token_id: str) -> None:
    revoked = accounts.revoke_token(db, token_id, audit.now_vn().isoformat())
    _recent(db).clear()  # only the token's hash is known there, not its id: forget them all
    if not revoked:
        raise NotFound(f"Không có mã truy cập '{token_id}' còn hiệu lực", "no such live token")
    audit.record(db, "token-revoke", token=token_id)


def by_token(db: Engine, token: str, *, ip: str | None, cached: bool = False) -> Principal | None:
    """The user a bearer token belongs to; None for an unknown, revoked or disabled one.
    ``cached``: trust this process's lookup of the last few seconds (see the module's docstring)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key = ("token", _sha256(token))
    user = _recent(db).get(key) if cached else None
    if user is None:
        user = accounts.user_by_token(db, key[1], audit.now_vn().isoformat())
        if user and cached:
            _recent(db).put(key, user, CREDENTIALS_CACHE_SECONDS)
    return principal(user, ip=ip, via="http") if user else None


def recent_token(db: Engine, token: str, *, ip: str | None) -> Principal | None:
    """The user of a token this process found valid in the last few seconds, without asking the
    database (None: not known lately; ask ``by_token``)."""
    user = _recent(db).get(("token", _sha256(token))) if token.startswith(TOKEN_PREFIX) else None
    return principal(user, ip=ip, via="http") if user else None


def recent_session(db: Engine, secret: str, *, ip: str | None) -> tuple[Principal, str] | None:
    """As ``recent_token``, for a web session: (user, CSRF token) or None."""
    found = _recent(db).get(("session", _sha256(secret))) if secret else None
    return (principal(found[0], ip=ip, via="web"), found[1]) if found else None


def unknown_name(name: str) -> str:
    """How the access log names a failed login's name that is no user's: what was typed there is
    often the password, typed one field too early, so only a digest of it is kept ("?" and 12
    hex digits): the same text tried again still shows as the same name."""
    return "?" + _sha256(name or "")[:12]


def login(db: Engine, name: str, password: str, *, ip: str | None, hours: int,
          idle_minutes: int) -> tuple[Principal, str, str] | None:
    """(user, session secret for the cookie, CSRF token) when the password is right; None
    otherwise. Either way the attempt is in the access log. The session lasts ``hours``, and ends
    sooner when no request uses it for ``idle_minutes`` (``by_session`` moves that end on)."""
    user = accounts.get_user(db, name) if _NAME.fullmatch(name or "") else None
    try:
        ok = _hasher.verify(user["password_hash"] if user and user["password_hash"] else dummy_hash(), password)
        ok = ok and user is not None and bool(user["password_hash"]) and not user["disabled"]
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        audit.record(db, "login", "failure", actor=name if user is not None else unknown_name(name), ip=ip,
                     via="web")
        return None
    if _hasher.check_needs_rehash(user["password_hash"]):
        accounts.set_password(db, name, _hasher.hash(password))
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    accounts.add_session(db, _sha256(secret), name, csrf, audit.now_vn().isoformat(),
                         time.time() + min(hours * 3600, idle_minutes * 60))
    who = principal(user, ip=ip, via="web")
    audit.record(db, "login", actor=name, role=who.role, ip=ip, via="web")
    return who, secret, csrf


def by_session(db: Engine, secret: str, *, ip: str | None, cached: bool = False, hours: int | None = None,
               idle_minutes: int | None = None) -> tuple[Principal, str] | None:
    """(user, CSRF token) of a live web session (``cached``: as ``by_token``); with ``hours`` and
    ``idle_minutes`` (as ``login`` took them), its end moved to ``idle_minutes`` from now, never
    past ``hours`` after the login (at most once a minute: a write)."""
    if not secret:
        return None
    key = ("session", _sha256(secret))
    found = _recent(db).get(key) if cached else None
    if found is None:
        now = time.time()
        found = accounts.session(db, key[1], now)
        if found and hours and idle_minutes:
            ends = min(now + idle_minutes * 60, datetime.fromisoformat(found[3]).timestamp() + hours * 3600)
            if ends > found[2] + 60:
                accounts.extend_session(db, key[1], ends)
                found = (*found[:2], ends, found[3])
        if found and cached:  # never trusted past the session's own expiry
            _recent(db).put(key, found, min(CREDENTIALS_CACHE_SECONDS, found[2] - time.time()))
    return (principal(found[0], ip=ip, via="web"), found[1]) if found else None


def end_earlier_session(db: Engine, secret: str, *, ip: str | None) -> None:
    """A browser logging in while another user's (or its own) session is live there: that
    session is ended, not left usable beside the new one."""
    if (found := by_session(db, secret, ip=ip)) is not None:
        logout(db, secret, found[0])


def logout(db: Engine, secret: str, who: Principal) -> None:
    accounts.end_session(db, _sha256(secret))
    _recent(db).drop(("session", _sha256(secret)))
    audit.record(db, "logout", actor=who.name, role=who.role, ip=who.ip, via="web")


# --------------------------------------------------------------------------- credentials seen lately

CREDENTIALS_CACHE_SECONDS = 5.0


class _Recent:
    """Credentials this process found valid lately: key -> (what the lookup found, trusted until)."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], tuple[object, float]] = {}

    def get(self, key: tuple[str, str]):
        with self._lock:
            found = self._found.get(key)
        return found[0] if found is not None and time.monotonic() < found[1] else None

    def put(self, key: tuple[str, str], value, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if len(self._found) >= self.MAX_ENTRIES:  # stale ones first, else the oldest
                now = time.monotonic()
                for stale in [k for k, (_, until) in self._found.items() if until <= now] or [next(iter(self._found))]:
                    del self._found[stale]
            self._found[key] = (value, time.monotonic() + seconds)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._found.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


_caches: "weakref.WeakKeyDictionary[Engine, _Recent]" = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _recent(db: Engine) -> _Recent:
    """The credentials seen lately on this database (one cache per engine: per database)."""
    with _caches_lock:
        found = _caches.get(db)
        if found is None:
            found = _caches[db] = _Recent()
        return found
