"""Who is asking: a bearer token (the API) or a session cookie with a CSRF token (the web).

Every data route depends on ``require(permission)``: no valid credentials is 401, a user
whose role lacks the permission is 403 (and recorded in the access log). A request that
carries a session cookie and changes something must also carry the session's CSRF token
(``X-CSRF-Token`` header or ``csrf`` form field); the cookie is HttpOnly, SameSite=Strict and,
unless SOHOA_COOKIE_SECURE=false, Secure.

A credential found valid is trusted by the process for up to 5 seconds without asking the
database again (``pipeline.access``): revoked or logged out through this process, it stops
working at once; revoked elsewhere (``sohoa token revoke``, another server process), within
those 5 seconds.

The client address is the connection's peer: behind a reverse proxy, run uvicorn with
``--forwarded-allow-ips`` so that it is the citizen-facing address, not the proxy's.
"""
from __future__ import annotations

import secrets
import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline import service
from pipeline.service import Principal

SESSION_COOKIE = "sohoa_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def authenticate(request: Request) -> Principal | None:
    """The user of a request, or None; a session request that changes something without its
    CSRF token is refused (403)."""
    settings = request.app.state.settings
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        # known from the last few seconds: answered here; else the database is asked in a worker
        # thread, never on the event loop, which serves every request
        return service.recent_credentials(settings, token=token, ip=client_ip(request)) or \
            await run_in_threadpool(service.by_token, settings, token, client_ip(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = service.recent_credentials(settings, session=cookie, ip=client_ip(request)) or \
        await run_in_threadpool(service.by_session, settings, cookie, client_ip(request))
    if found is None:
        return None
    who, csrf = found
    request.state.csrf = csrf
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get("csrf")
        if not sent or not secrets.compare_digest(str(sent), csrf):
            raise HTTPException(403, detail={"code": "csrf", "message": "Phiên làm việc không hợp lệ (thiếu mã CSRF); "
                                                                         "tải lại trang rồi thử lại",
                                             "detail": "missing or wrong CSRF token"})
    return who


class Unauthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, detail={"code": "unauthenticated", "message": "Cần đăng nhập hoặc mã truy cập (Bearer)",
                                      "detail": "authentication required"},
                         headers={"WWW-Authenticate": "Bearer"})


# Declares the bearer token in the OpenAPI description (each route that needs it, so that
# generated clients send it); ``authenticate`` reads the header itself, and a session cookie too.
BEARER = HTTPBearer(auto_error=False, description="mã truy cập của 'sohoa token create' (Authorization: Bearer …)")


def require(permission: str):
    """A FastAPI dependency: the request's user, who must have ``permission``."""
    async def dependency(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None
                         ) -> Principal:  # (``_``: declared for the OpenAPI description; the web calls it bare)
        who = await authenticate(request)
        if who is None:
            raise Unauthenticated()
        if not who.may(permission):
            await run_in_threadpool(service.record_denied, request.app.state.settings, who, request.method,
                                    request.url.path, permission)
            raise HTTPException(403, detail={"code": "forbidden",
                                             "message": "Vai trò của bạn không được phép thực hiện thao tác này",
                                             "detail": f"role {who.role} lacks permission {permission}"})
        request.state.user = who
        return who

    return dependency


class LoginThrottle:
    """Failed logins per (user name, address): after ``failures`` in a row, that name is refused
    from that address for ``pause`` seconds, without its password being checked; each further
    failure doubles the pause, up to an hour. A successful login clears the count. Kept in the
    server process: with SOHOA_API_PROCESSES = n, each of the n processes counts the attempts it
    answers, so a name may be tried up to n times ``failures`` before every process pauses it;
    the access log keeps every attempt either way."""

    MAX_PAUSE = 3600
    MAX_ENTRIES = 100_000  # a flood of invented names cannot fill the memory

    def __init__(self, failures: int, pause: int) -> None:
        self.failures, self.pause = failures, pause
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (failures in a row, refused until)

    @staticmethod
    def _key(name: str, ip: str | None) -> tuple[str, str]:
        return name.strip().lower()[:200], ip or "-"

    def wait(self, name: str, ip: str | None) -> int:
        """Seconds before this name may try again from this address (0: now)."""
        with self._lock:
            _, until = self._seen.get(self._key(name, ip), (0, 0.0))
        return max(0, int(until - time.monotonic() + 0.999))

    def failed(self, name: str, ip: str | None) -> None:
        key = self._key(name, ip)
        with self._lock:
            count, _ = self._seen.pop(key, (0, 0.0))
            count += 1
            over = count - self.failures
            until = time.monotonic() + min(self.MAX_PAUSE, self.pause * 2 ** min(over, 12)) if over >= 0 else 0.0
            if len(self._seen) >= self.MAX_ENTRIES:  # forget the oldest first
                del self._seen[next(iter(self._seen))]
            self._seen[key] = (count, until)

    def succeeded(self, name: str, ip: str | None) -> None:
        with self._lock:
            self._seen.pop(self._key(name, ip), None)
