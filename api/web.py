"""The web interface (issue 13): server-rendered pages in Vietnamese for the counter, the back
office and the archive, on the same service layer and the same permissions as the HTTP API.

    GET  /                      each role's home screen
    GET|POST /login, POST /logout   the session cookie (HttpOnly, SameSite=Strict, Secure)
    GET|POST /intake            the counter: the dossier code (typed or scanned), the open drafts
    GET  /intake/{draft}        the draft's pages (straightened thumbnails, flags), the checklist
    POST /intake/{draft}/pages, .../pages/{page}/move|remove|replace, .../submit, .../discard
    GET  /jobs, /jobs/{id}      conversions: progress (the page polls /api/v1/jobs/{id}), errors
    GET  /search?q=             pages of the user's agencies, with or without diacritics
    GET  /dossiers/{code}       documents, each with its verdict and its PDF in the browser
    GET  /reports?quarter=      the quarterly digitisation report: table, chart, CSV and XLSX

Pages other than /login and /static need a session: without one the browser is sent to
/login?next=...; a role without the permission gets the 403 page (recorded in the access log,
as by the API); a dossier outside the user's agencies is the same 404 page as one that does not
exist. Every form that changes something carries the session's CSRF token. Every read and write
goes through ``pipeline.service`` inside ``service.acting`` so that the access log names the user.

No front-end build and nothing fetched from elsewhere: the templates are Jinja2, the script is
one small file under /static, and the pages work without it (it adds the drop zone's drop and
the job page's live progress).
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from pipeline import service
from pipeline.service import ROLE_NAMES_VI, Principal
from pipeline.errors import Conflict, ExitCode, NotFound, SohoaError, UsageError, describe

from .security import SESSION_COOKIE, authenticate, client_ip, require
from .status import status_of

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
LOGIN_CSRF_COOKIE = "sohoa_login_csrf"
HOME = {"operator": "/intake", "officer": "/search", "archivist": "/jobs", "admin": "/jobs"}
JOB_STATES = {"queued": "Đang chờ xử lý", "running": "Đang xử lý các trang",
              "finishing": "Đang hoàn tất (PDF/A, ký số, lập chỉ mục)", "done": "Hoàn tất", "failed": "Bị lỗi",
              "discarded": "Đã bỏ (không chạy lại)"}
CHECK_NAMES = {"sha256": "Toàn vẹn tệp (SHA-256)", "size": "Kích thước tệp", "integrity": "Nội dung được ký không đổi",
               "coverage": "Chữ ký phủ toàn bộ tệp", "chain": "Chuỗi chứng thư số", "timestamp": "Dấu thời gian",
               "revocation": "Chứng thư chưa bị thu hồi", "signature": "Chữ ký số", "pdfa": "Chuẩn PDF/A",
               "manifestSignature": "Chữ ký của hồ sơ điện tử", "otherObjects": "Các tệp đi kèm",
               "manifestHistory": "Lịch sử hồ sơ điện tử", "versions": "Phiên bản PDF cuối cùng",
               "identity": "Tệp thuộc đúng hồ sơ và tài liệu"}
# every page: nothing from elsewhere, no inline script or style, framed only by this site
HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "object-src 'self'; frame-src 'self'; frame-ancestors 'self'; "
                                      "form-action 'self'; base-uri 'none'",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin",
           "Cache-Control": "private, no-store"}


# --------------------------------------------------------------------------- rendering

def _vn_time(value: str | None) -> str:
    """An ISO time as Vietnamese read it: 01/12/2026 19:30 (Vietnam time)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(VN)
    return moment.strftime("%d/%m/%Y %H:%M")


def _vn_date(value: str | None) -> str:
    """An ISO day as Vietnamese read it: 31/12/2019."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").strftime("%d/%m/%Y")
    except ValueError:
        return str(value or "")


def _vn_number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{int(value):,}".replace(",", ".")


def _snippet(text: str) -> Markup:
    """A search snippet, escaped, with the best match's [spans] marked."""
    out, rest = [], text or ""
    while "[" in rest:
        before, _, after = rest.partition("[")
        inside, closed, tail = after.partition("]")
        if not closed:
            break
        out += [escape(before), Markup("<mark>"), escape(inside), Markup("</mark>")]
        rest = tail
    out.append(escape(rest))
    return Markup("").join(out)


_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters.update(vn_time=_vn_time, vn_date=_vn_date,
                    vn_number=_vn_number, snippet=_snippet, urlq=lambda s: quote(str(s), safe=""))
_env.globals.update(JOB_STATES=JOB_STATES, ROLE_NAMES_VI=ROLE_NAMES_VI, CHECK_NAMES=CHECK_NAMES)


def _nav(who: Principal | None) -> list[tuple[str, str]]:
    if who is None:
        return []
    items = [("upload", "/intake", "Tiếp nhận"), ("search", "/search", "Tra cứu"), ("jobs", "/jobs", "Lượt xử lý"),
             ("report", "/reports", "Báo cáo")]
    return [(href, label) for permission, href, label in items if who.may(permission)]


def _page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    who = getattr(request.state, "user", None)
    html = _env.get_template(template).render(
        who=who, csrf=getattr(request.state, "csrf", ""), nav=_nav(who), path=request.url.path,
        role_name=ROLE_NAMES_VI.get(who.role, who.role) if who else "", **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(target: str | None) -> str:
    """A same-site path to go on to after logging in, else "/"."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            c in target for c in "\r\n\\"):
        return "/"
    return target


class _Exit(Exception):
    """Stop a page early with this response (a redirect to the login, the 403 page)."""

    def __init__(self, response: Response) -> None:
        super().__init__("web exit")
        self.response = response


def error_page(request: Request, exc: Exception) -> Response:
    """The page a browser is shown for ``exc`` (also for what no web route answered: an unknown
    address, an upload over the limit, which showed the API's JSON)."""
    return _error_page(request, exc)


_FORM_PAGES = re.compile(r"/(intake|jobs)/([0-9a-f]{32})(?:/.*)?")


def form_page(path: str) -> str | None:
    """The page of the draft or job a form posted to ``path`` belongs to, or None: the only places
    an error page links back to (a path taken as it came could lead off the site)."""
    found = _FORM_PAGES.fullmatch(path)
    return f"/{found.group(1)}/{found.group(2)}" if found else None


def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, _Exit):
        return exc.response
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        if exc.status_code == 404:
            return _page(request, "404.html", 404)
        if exc.status_code == 403:
            return _page(request, "403.html", 403, message=detail.get("message"),
                         csrf_failed=detail.get("code") == "csrf")
        return _page(request, "error.html", exc.status_code, message=detail.get("message") or "Yêu cầu không hợp lệ",
                     back=form_page(request.url.path) if request.method == "POST" else None)
    if isinstance(exc, RequestValidationError):
        return _page(request, "error.html", 400, message="Yêu cầu không hợp lệ: thiếu hoặc sai một trường của biểu mẫu")
    report = describe(exc)
    if report.expected and report.exit_code == ExitCode.NOT_FOUND:
        return _page(request, "404.html", 404)
    if not report.expected:
        import logging

        logging.getLogger("sohoa.web").exception("unexpected error", exc_info=exc)
    return _page(request, "error.html", status_of(report),
                 message=report.message_vi if report.expected else "Đã có lỗi ngoài dự kiến; hãy thử lại hoặc báo "
                                                                    "quản trị hệ thống")


class WebRoute(APIRoute):
    """A route whose errors are pages (HTML in Vietnamese), not the API's JSON."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (_Exit, HTTPException, RequestValidationError, SohoaError) as exc:
                return _error_page(request, exc)
            except Exception as exc:
                if describe(exc).expected:  # storage and other errors the service reports
                    return _error_page(request, exc)
                raise

        return route


router = APIRouter(include_in_schema=False, route_class=WebRoute)


# --------------------------------------------------------------------------- who is asking

def _login_redirect(request: Request) -> RedirectResponse:
    if request.method != "GET":
        # a form sent after its session ended (every form is on a page that needs one): nothing was
        # done and the files it carried were not kept, so say so, and come back to its page
        back = _referring_path(request)
        return _see_other("/login?" + urlencode({"het-han": 1, **({"next": back} if back != "/" else {})}))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if target == "/":
        return _see_other("/login")
    return _see_other("/login?" + urlencode({"next": target}))


def _referring_path(request: Request) -> str:
    """The path of the page a form was sent from, on this site ("/" when there is none). Only the
    path is taken: behind a reverse proxy the Host the application sees is not the browser's, and a
    path of this site is all a redirect may go to."""
    referrer = urlsplit(request.headers.get("referer", ""))
    return _safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))


def user(permission: str | None = None):
    """A page's dependency: the session's user, who must have ``permission`` (the API's names)."""
    async def dependency(request: Request) -> Principal:
        try:
            who = await authenticate(request)
            if who is None:
                raise _Exit(_login_redirect(request))
            request.state.user = who
            if permission is not None and not who.may(permission):
                await require(permission)(request)  # records the refusal in the access log, raises 403
            return who
        except HTTPException as exc:
            raise _Exit(_error_page(request, exc)) from None

    return dependency


def _acting(who: Principal):
    return service.acting(who)


def _visible(who: Principal, code: str) -> str:
    """The dossier code, checked, if the user's scope covers it; NotFound (the 404 page) otherwise."""
    try:
        return service.visible(who, code)
    except NotFound:
        raise
    except SohoaError:
        raise NotFound("Không tìm thấy hồ sơ", "not a dossier code") from None


Who = Principal  # annotations below read as the page's user


# --------------------------------------------------------------------------- login, logout, home

@router.get("/login")
def login_form(request: Request, next: str = "/", bye: int = 0,
               ended: Annotated[int, Query(alias="het-han")] = 0) -> Response:
    token = secrets.token_urlsafe(24)
    notice = "Bạn đã đăng xuất." if bye else None
    if ended:
        notice = ("Phiên làm việc đã hết hạn nên thao tác vừa rồi chưa được thực hiện (tệp đã chọn chưa được "
                  "gửi). Hãy đăng nhập lại rồi làm lại.")
    response = _page(request, "login.html", next=_safe_next(next), login_csrf=token, notice=notice)
    _set_login_csrf(request, response, token)
    return response


def _set_login_csrf(request: Request, response: Response, token: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=settings.api.cookie_secure, path="/login")


@router.post("/login")
def login(request: Request, name: Annotated[str, Form(max_length=200)] = "",
          password: Annotated[str, Form(max_length=1000)] = "", next: Annotated[str, Form(max_length=2000)] = "/",
          login_csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    settings = request.app.state.settings
    throttle, ip = request.app.state.login_throttle, client_ip(request)
    sent = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    status, wait = 401, 0
    if not sent or not secrets.compare_digest(sent, login_csrf):
        error = "Trang đăng nhập đã hết hạn. Hãy nhập lại tên đăng nhập và mật khẩu."
        found = None
    elif name.strip() and (wait := throttle.wait(name, ip)):  # too many failures: the password is not even tried
        status, found = 429, None
        error = f"Đăng nhập sai quá nhiều lần. Hãy thử lại sau {wait} giây."
    else:
        found = (service.login(settings, name.strip(), password, ip, request.cookies.get(SESSION_COOKIE, ""))
                 if name.strip() and password else None)
        if name.strip() and password:
            (throttle.failed if found is None else throttle.succeeded)(name, ip)
        error = "Tên đăng nhập hoặc mật khẩu không đúng."
    if found is None:
        token = secrets.token_urlsafe(24)
        response = _page(request, "login.html", status, next=_safe_next(next), login_csrf=token, error=error,
                         name=name.strip())
        if wait:
            response.headers["Retry-After"] = str(wait)
        _set_login_csrf(request, response, token)
        return response
    who, secret, _csrf = found
    response = _see_other(_safe_next(next) if _safe_next(next) != "/" else HOME.get(who.role, "/search"))
    # no Max-Age: the login ends with the browser too (the server ends it sooner when idle)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict", secure=settings.api.cookie_secure,
                        path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, who: Annotated[Who, Depends(user())]) -> Response:
    settings = request.app.state.settings
    with _acting(who):
        service.logout(settings, request.cookies.get(SESSION_COOKIE, ""), who)
    response = _see_other("/login?bye=1")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=settings.api.cookie_secure)
    return response


@router.get("/")
def home(who: Annotated[Who, Depends(user())]) -> Response:
    return _see_other(HOME.get(who.role, "/search"))


# --------------------------------------------------------------------------- intake (operator)

def _intake_home(request: Request, who: Principal, status: int = 200, **context) -> HTMLResponse:
    settings = request.app.state.settings
    with _acting(who):
        drafts = service.intake_drafts(settings, who)
        jobs = list(reversed(service.jobs_for(settings, who, 10)))
    return _page(request, "intake.html", status, drafts=drafts, jobs=jobs, **context)


@router.get("/intake")
def intake_home(request: Request, who: Annotated[Who, Depends(user("upload"))]) -> Response:
    if request.query_params.get("da-huy"):
        return _intake_home(request, who, notice="Đã hủy bản nháp; các trang của nó đã được xóa.")
    return _intake_home(request, who)


@router.post("/intake")
def intake_start(request: Request, who: Annotated[Who, Depends(user("upload"))],
                 code: Annotated[str, Form(max_length=200)] = "") -> Response:
    code = code.strip()
    if not code:
        return _intake_home(request, who, 400, error="Hãy nhập hoặc quét mã hồ sơ.", code=code)
    try:  # typed in lower case, or pasted from Word with its dashes: read as the search box reads it
        code = service.check_code(service.code_prefix_in(code) or code)
    except SohoaError as exc:
        return _intake_home(request, who, 400, error=describe(exc).message_vi, code=code)
    if not who.sees(code):
        return _intake_home(request, who, 400, code=code,
                            error=f"Mã hồ sơ {code} không thuộc cơ quan bạn được tiếp nhận "
                                  f"({', '.join(who.agencies)}).")
    with _acting(who):
        draft = service.intake_create(request.app.state.settings, code, who)
    return _see_other(f"/intake/{draft.id}")


def _draft_page(request: Request, who: Principal, draft_id: str, status: int = 200, **context) -> HTMLResponse:
    settings = request.app.state.settings
    with _acting(who):
        draft = service.intake_draft(settings, draft_id, who)
        checklist = service.checklist(settings, draft.dossier_code) if who.may("checklist") else None
    required = list((checklist or {}).get("required") or [])
    missing = list((checklist or {}).get("missing") or [])
    converting = list((checklist or {}).get("converting") or [])
    return _page(request, "draft.html", status, draft=draft, checklist=checklist, required=required, missing=missing,
                 converting=converting,
                 warnings=sum(1 for p in draft.pages if p.warnings), turns=draft.turns,
                 pages_shown=_pages_shown(draft), **context)


def _pages_shown(draft) -> str:
    """The pages a window shows, as its confirmation sends them back: their count and a digest of
    their ids in order (the ids themselves capped a draft at ~1,500 pages; review)."""
    ids = ",".join(p.id for p in draft.pages)
    return f"{len(draft.pages)}:{hashlib.sha256(ids.encode()).hexdigest()[:32]}"


@router.get("/intake/{draft_id}")
def intake_draft(request: Request, draft_id: str, who: Annotated[Who, Depends(user("upload"))],
                 thay: Annotated[int, Query(ge=2, le=10000)] | None = None) -> Response:
    try:
        return _draft_page(request, who, draft_id, notice=f"Một trang đã được thay bằng {thay} trang của tệp vừa "
                                                          "chọn; hãy xem lại thứ tự." if thay else None)
    except NotFound:  # Back after confirming: the job the draft became (it was the 404 page)
        if job_id := service.intake_confirmed_job(request.app.state.settings, draft_id, who):
            return _see_other(f"/jobs/{job_id}")
        raise


def _page_gone(request: Request, who: Principal, draft_id: str) -> Response:
    """An action on a page a stale window still shows: the draft as it is now, saying so, or, the
    draft itself gone, what became of it (both were the 404 page)."""
    try:
        return _draft_page(request, who, draft_id, 409, error="Trang này không còn trong bản nháp (đã bị bỏ hoặc "
                                                               "thay ở cửa sổ khác); đây là bản nháp hiện tại.")
    except NotFound:
        return _no_longer_open(request, who, draft_id)


@dataclass(frozen=True)
class _Sent:
    """The files of a form: those taken, those not (name, why: empty, not a page's type), and
    when the whole upload is refused (too large, too many) its status and why."""
    loaded: list[tuple[str, bytes]]
    not_taken: list[tuple[str, str]]
    status: int = 200
    refused: str | None = None


def _files(request: Request, files: list[UploadFile] | None) -> _Sent:
    """The API's limits, each file's type read from its bytes. One file not of a page's type no
    longer refuses the others: each such file is named (only the first was, the counter review)."""
    limits = request.app.state.settings.api
    loaded, not_taken = [], []
    for f in files or []:
        if f.size is not None and f.size > limits.max_file_bytes:
            return _Sent([], [], 413, f"Tệp '{f.filename}' quá lớn (tối đa {limits.max_file_bytes // 1048576} MB mỗi "
                                      "tệp); chưa thêm tệp nào.")
        data = f.file.read()
        if f.filename and not data:
            not_taken.append((f.filename, "tệp rỗng, 0 byte"))
        elif f.filename or data:
            if service.page_format(data) is None:
                not_taken.append((f.filename or "tep", "không phải PDF, TIFF, JPEG hay PNG"))
            else:
                loaded.append((f.filename or "tep", data))
    if len(loaded) > limits.max_upload_files:
        return _Sent([], [], 413, f"Quá nhiều tệp: {len(loaded)} (tối đa {limits.max_upload_files} tệp mỗi lần); "
                                  "chưa thêm tệp nào.")
    return _Sent(loaded, not_taken)


def _not_added(request: Request, who: Principal, names: list[str]) -> Response:
    """Files sent to a draft that is no longer open (confirmed or given up in another window): the
    counter's home, saying that they were not added (it was the 404 page)."""
    chosen = ", ".join(names[:5]) + (f" và {len(names) - 5} tệp khác" if len(names) > 5 else "")
    return _intake_home(request, who, 409, notice=f"Bản nháp này không còn mở (đã được xác nhận hoặc đã bị bỏ ở cửa "
                                                  f"sổ khác): các tệp vừa chọn ({chosen}) CHƯA được thêm. Hãy mở "
                                                  "bản nháp mới cho hồ sơ rồi chọn lại.")


@router.post("/intake/{draft_id}/pages")
def intake_add(request: Request, draft_id: str, who: Annotated[Who, Depends(user("upload"))],
               files: Annotated[list[UploadFile] | None, File()] = None) -> Response:
    sent = _files(request, files)
    try:
        if sent.refused:
            return _draft_page(request, who, draft_id, sent.status, error=sent.refused)
        if not sent.loaded and not sent.not_taken:
            return _draft_page(request, who, draft_id, 400, error="Chưa chọn tệp nào: chọn hoặc thả các trang cần thêm.")
        with _acting(who):
            draft = service.intake_add(request.app.state.settings, draft_id, sent.loaded, who, refused=sent.not_taken)
    except Conflict as busy:
        return _draft_page(request, who, draft_id, 409, error=busy.message_vi + ".")
    except NotFound:
        return _not_added(request, who, [name for name, _ in sent.loaded + sent.not_taken])
    return _see_other(f"/intake/{draft.id}#trang")


@router.post("/intake/{draft_id}/pages/{page_id}/move")
def intake_move(request: Request, draft_id: str, page_id: str, who: Annotated[Who, Depends(user("upload"))],
                direction: Annotated[str, Form(pattern="^(up|down)$")]) -> Response:
    settings = request.app.state.settings
    with _acting(who):
        try:
            draft = service.intake_draft(settings, draft_id, who)
            ids = [p.id for p in draft.pages]
            if page_id not in ids:
                return _page_gone(request, who, draft_id)
            at = ids.index(page_id) + (-1 if direction == "up" else 1)
            service.intake_move(settings, draft_id, page_id, max(0, at), who)
        except NotFound:  # the draft confirmed or given up in another window (it was the 404 page)
            return _page_gone(request, who, draft_id)
    return _see_other(f"/intake/{draft_id}#p-{page_id}")


@router.post("/intake/{draft_id}/pages/{page_id}/remove")
def intake_remove(request: Request, draft_id: str, page_id: str,
                  who: Annotated[Who, Depends(user("upload"))]) -> Response:
    with _acting(who):
        try:
            service.intake_remove(request.app.state.settings, draft_id, page_id, who)
        except NotFound:
            return _page_gone(request, who, draft_id)
    return _see_other(f"/intake/{draft_id}#trang")


@router.post("/intake/{draft_id}/pages/{page_id}/replace")
def intake_replace(request: Request, draft_id: str, page_id: str, who: Annotated[Who, Depends(user("upload"))],
                   file: Annotated[UploadFile | None, File()] = None) -> Response:
    sent = _files(request, [file] if file is not None else [])
    if sent.refused or sent.not_taken:
        return _draft_page(request, who, draft_id, sent.status if sent.refused else 415, error=sent.refused or (
            f"Tệp '{sent.not_taken[0][0]}': {sent.not_taken[0][1]}; trang chưa được thay."))
    if not sent.loaded:
        return _draft_page(request, who, draft_id, 400, error="Chưa chọn tệp để thay trang.")
    name, data = sent.loaded[0]
    with _acting(who):
        try:
            before = len(service.intake_draft(request.app.state.settings, draft_id, who).pages)
            after = len(service.intake_replace(request.app.state.settings, draft_id, page_id, name, data, who).pages)
        except NotFound:
            return _page_gone(request, who, draft_id)
        except Conflict as busy:
            return _draft_page(request, who, draft_id, 409, error=busy.message_vi + ".")
    # a file of several pages replaces one page with all of them: said (the count changed silently)
    return _see_other(f"/intake/{draft_id}?thay={after - before + 1}#trang" if after > before
                      else f"/intake/{draft_id}#trang")


@router.post("/intake/{draft_id}/errors/clear")
def intake_clear_errors(request: Request, draft_id: str, who: Annotated[Who, Depends(user("upload"))]) -> Response:
    with _acting(who):
        service.intake_clear_errors(request.app.state.settings, draft_id, who)
    return _see_other(f"/intake/{draft_id}")


@router.post("/intake/{draft_id}/discard")
def intake_discard(request: Request, draft_id: str, who: Annotated[Who, Depends(user("upload"))]) -> Response:
    with _acting(who):
        service.intake_discard(request.app.state.settings, draft_id, who)
    return _see_other("/intake?da-huy=1")  # said on the page it lands on: the draft is gone


@router.get("/intake/{draft_id}/pages/{page_id}/thumb")
def intake_thumbnail(request: Request, draft_id: str, page_id: str,
                     who: Annotated[Who, Depends(user("upload"))], turn: int = 0) -> Response:
    with _acting(who):
        return _jpeg(service.intake_thumbnail(request.app.state.settings, draft_id, page_id, who, turn))


@router.get("/intake/{draft_id}/pages/{page_id}/view")
def intake_page_view(request: Request, draft_id: str, page_id: str,
                     who: Annotated[Who, Depends(user("upload"))], turn: int = 0) -> Response:
    """The page straightened, large enough to judge whether it can be read."""
    with _acting(who):
        return _jpeg(service.intake_page_view(request.app.state.settings, draft_id, page_id, who, turn))


def _jpeg(data: bytes) -> Response:
    # a citizen's page: not kept in the browser's cache, where it outlived a logout on a shared PC
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store",
                                                            "X-Content-Type-Options": "nosniff"})


@router.post("/intake/{draft_id}/submit")
def intake_submit(request: Request, draft_id: str, who: Annotated[Who, Depends(user("upload"))],
                  title_choice: Annotated[str, Form(max_length=500)] = "",
                  title_other: Annotated[str, Form(max_length=1000)] = "",
                  pages: Annotated[str, Form(max_length=100)] = "") -> Response:
    settings = request.app.state.settings
    title = " ".join((title_other or title_choice or "").split())
    typed = {"title_choice": title_choice, "title_other": title_other}  # shown again when it is refused (review)
    if not title:
        return _draft_page(request, who, draft_id, 400, title_error="Hãy chọn hoặc nhập tên giấy tờ.", **typed)
    with _acting(who):
        try:
            draft = service.intake_draft(settings, draft_id, who)
        except NotFound:
            return _no_longer_open(request, who, draft_id)
        if not who.sees(draft.dossier_code):
            raise NotFound("Không tìm thấy hồ sơ", "dossier out of scope")
        if not draft.pages:
            return _draft_page(request, who, draft_id, 400,
                               error="Bản nháp chưa có trang nào: thêm trang trước khi xác nhận.", **typed)
        if pages and pages != _pages_shown(draft):  # confirmed from a window showing other pages
            return _draft_page(request, who, draft_id, 409, error=(
                f"Bản nháp đã thay đổi ở cửa sổ khác: cửa sổ này hiện {pages.split(':')[0]} trang, bản nháp giờ có "
                f"{len(draft.pages)} trang. Hãy xem lại các trang dưới đây rồi xác nhận lại; chưa số hóa gì."), **typed)
        try:
            job, duplicate = service.intake_submit(settings, draft_id, title, who)
        except UsageError as exc:
            return _draft_page(request, who, draft_id, 400, title_error=exc.message_vi, **typed)
        except Conflict as busy:  # pages still being read in: what this window shows is not all of them
            return _draft_page(request, who, draft_id, 409, error=busy.message_vi + ".", **typed)
        except NotFound:  # the other click of a double click confirmed it meanwhile
            return _no_longer_open(request, who, draft_id)
    if duplicate is not None:
        return _intake_home(request, who, notice=f"Hồ sơ {duplicate.dossier_code} đã có đúng các trang này "
                                                 f"(tài liệu “{duplicate.title}”, mã {duplicate.doc_id}); "
                                                 "không tạo tài liệu mới.")
    request.app.state.start_job(job.id, who)
    return _see_other(f"/jobs/{job.id}")


def _no_longer_open(request: Request, who: Principal, draft_id: str) -> Response:
    """A confirmation of a draft no longer open: confirmed already (a double click) shows the job
    it became; otherwise (given up, or confirmed as pages the dossier already held) the latest jobs."""
    if job_id := service.intake_confirmed_job(request.app.state.settings, draft_id, who):
        return _see_other(f"/jobs/{job_id}")
    return _intake_home(request, who, 409, notice="Bản nháp này không còn mở (đã được xác nhận hoặc đã bị bỏ); "
                                                  "không tạo tài liệu mới.")


# --------------------------------------------------------------------------- jobs

@router.get("/jobs")
def jobs_page(request: Request, who: Annotated[Who, Depends(user("jobs"))]) -> Response:
    with _acting(who):
        jobs = list(reversed(service.jobs_for(request.app.state.settings, who, 100)))
    return _page(request, "jobs.html", jobs=jobs, running=sum(j.active for j in jobs),
                 failed=sum(j.state == "failed" for j in jobs))


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, who: Annotated[Who, Depends(user("jobs"))]) -> Response:
    with _acting(who):
        job = service.job_for(request.app.state.settings, job_id, who)
        review = service.job_review(request.app.state.settings, job)
    return _page(request, "job.html", job=job, review=review, server_fault=SERVER_FAULT)


SERVER_FAULT = ("Lỗi này do máy chủ, không do giấy tờ: hãy báo quản trị hệ thống. Các trang đã được lưu; khi máy chủ "
                "đã được sửa, bấm «Chạy lại», không cần quét lại.")


@router.post("/jobs/{job_id}/retry")
def job_retry(request: Request, job_id: str, who: Annotated[Who, Depends(user("retry"))]) -> Response:
    """A failed job run again from its page (its finished pages kept), followed there."""
    with _acting(who):
        job = service.reopen_job(request.app.state.settings, job_id, who)
    request.app.state.start_job(job.id, who)
    return _see_other(f"/jobs/{job.id}")


@router.post("/jobs/{job_id}/discard")
def job_discard(request: Request, job_id: str, who: Annotated[Who, Depends(user("retry"))],
                reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """A failed job given up for good, with the reason the operator typed (its originals stay)."""
    settings = request.app.state.settings
    with _acting(who):
        try:
            service.discard_job(settings, job_id, reason, who)
        except UsageError as exc:
            return _page(request, "job.html", 400, job=service.job_for(settings, job_id, who), review=(),
                         reason_error=exc.message_vi, reason=reason, server_fault=SERVER_FAULT)
    return _see_other(f"/jobs/{job_id}")


@router.get("/verify")
def verify_jump(code: Annotated[str, Query(max_length=200)], who: Annotated[Who, Depends(user("verify"))]) -> Response:
    """The jobs page's "check a dossier" form: to the dossier's page, where its verdicts are."""
    return _see_other(f"/dossiers/{quote(service.code_prefix_in(code) or code.strip(), safe='')}")


# --------------------------------------------------------------------------- search and dossiers (officer)

SEARCH_LIMIT = 50  # hits on the web's page; more words or a code narrow a search that finds more
SEARCH_CHARS = 500  # as the API's q


@router.get("/search")
def search_page(request: Request, who: Annotated[Who, Depends(user("search"))],
                q: Annotated[str, Query(max_length=20_000)] = "",
                ma: Annotated[str, Query(max_length=100)] = "",
                tu: Annotated[int, Query(ge=0, le=service.MAX_SEARCH_OFFSET)] = 0) -> Response:
    q, within = q.strip(), service.code_prefix_in(ma) or ma.strip().upper()  # Word's dashes too
    if len(q) > SEARCH_CHARS:  # a pasted paragraph: said on the search page (it was the generic form error)
        return _page(request, "search.html", 422, q=q[:SEARCH_CHARS], ma=ma, result=None,
                     error=f"Nội dung tìm dài {_vn_number(len(q))} ký tự; tối đa {SEARCH_CHARS} ký tự")
    if within and service.code_prefix_in(within) is None and not re.fullmatch(r"[0-9A-Z]+", within):
        return _page(request, "search.html", 422, q=q, ma=ma, result=None,
                     error=f"“{ma.strip()}” không phải mã hồ sơ hay phần đầu của mã (ví dụ H23.50 hoặc H23.50-2612)")
    if not q:
        return _page(request, "search.html", q="", ma=within, result=None)
    code_link, doc_link, by_code = None, None, ()
    prefix = service.code_prefix_in(q)
    try:
        code = service.check_code(prefix or q)
        code_link = code if who.sees(code) and who.may("read") else None
    except SohoaError:
        # a document's id, as the job and dossier pages show it (CODE.001): its document (it found nothing)
        if (doc := re.fullmatch(r"(.+)\.\d{3,}", q.upper())) is not None:
            try:
                code = service.check_code(doc.group(1))
                doc_link = (code, doc.group()) if who.sees(code) and who.may("read") else None
            except SohoaError:
                pass
    with _acting(who):
        if prefix and who.may("read"):  # a code, or the start of one: the dossiers it names
            by_code = service.dossiers_by_code(request.app.state.settings, prefix, scope=who.agencies)
        result = service.search(request.app.state.settings, q, code_prefix=within or None, limit=SEARCH_LIMIT,
                                scope=who.agencies, offset=tu)
    following = "/search?" + urlencode({"q": q, **({"ma": within} if within else {}), "tu": tu + SEARCH_LIMIT}) \
        if result.more and tu + SEARCH_LIMIT <= service.MAX_SEARCH_OFFSET else None
    return _page(request, "search.html", q=q, ma=within, result=result, code_link=code_link, doc_link=doc_link,
                 by_code=by_code, following=following)


@router.get("/dossiers/{code}")
def dossier_page(request: Request, code: str, who: Annotated[Who, Depends(user("read"))],
                 doc: Annotated[str | None, Query(max_length=200)] = None,
                 page: Annotated[int | None, Query(alias="trang", ge=1, le=100_000)] = None) -> Response:
    settings = request.app.state.settings
    code = _visible(who, code)
    with _acting(who):
        view = service.show(settings, code)
        verdicts = {v.doc_id: v for v in service.verify_dossier(settings, code)} if who.may("verify") else {}
        checklist = service.checklist(settings, code) if who.may("checklist") else None
    shown = next((d for d in view.documents if d.doc_id == doc), view.documents[0] if view.documents else None)
    page = page if shown is not None and page is not None and page <= shown.number_of_pages else None
    return _page(request, "dossier.html", view=view, verdicts=verdicts, checklist=checklist, shown=shown,
                 may_download=who.may("download"), page=page)


def content_disposition(kind: str, doc_id: str, title: str) -> str:
    """``attachment`` or ``inline``, named by the document id (ASCII, for every client) and, for
    those that read RFC 6266's ``filename*``, by its id and title: "….001 Đơn đề nghị.pdf"."""
    shown = " ".join("".join(c for c in title if c.isprintable() and c not in '/\\"').split())[:100]
    named = quote(f"{doc_id} {shown}.pdf" if shown else f"{doc_id}.pdf", safe="")
    return f"{kind}; filename=\"{doc_id}.pdf\"; filename*=UTF-8''{named}"


@router.get("/dossiers/{code}/documents/{doc_id}/pdf")
def document_pdf(request: Request, code: str, doc_id: str, who: Annotated[Who, Depends(user("download"))],
                 download: Annotated[bool, Query()] = False) -> Response:
    code = _visible(who, code)
    with _acting(who):
        pdf = service.document_pdf_record(request.app.state.settings, code, doc_id)
        data, sha256 = service.document_pdf(request.app.state.settings, code, doc_id, pdf=pdf)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": content_disposition("attachment" if download else "inline", doc_id, pdf["title"]),
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "frame-ancestors 'self'", "X-Frame-Options": "SAMEORIGIN"})


# --------------------------------------------------------------------------- report (archivist)

def _this_quarter() -> str:
    now = datetime.now(VN)
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


@router.get("/reports")
def report_page(request: Request, who: Annotated[Who, Depends(user("report"))],
                quarter: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    quarter = (quarter or _this_quarter()).strip().upper()
    try:
        with _acting(who):
            found = service.digitisation_report(request.app.state.settings, quarter, who.agencies)
    except UsageError as exc:
        return _page(request, "report.html", 400, quarter=quarter, error=exc.message_vi, found=None)
    quarter = f"{found.year}-Q{found.q}"

    def month_label(month: str | None) -> str:
        if month is None:
            return f"Cả quý {found.q}/{found.year}"
        y, m = month.split("-")
        return f"Tháng {int(m)}/{y}"

    return _page(request, "report.html", quarter=quarter, found=found, chart=Markup(service.report_file(found, "svg").decode("utf-8")),
                 month_label=month_label,
                 flag_label=service.flag_label,
                 csv_href=f"/api/v1/reports/digitisation?quarter={quarter}&format=csv",
                 xlsx_href=f"/api/v1/reports/digitisation?quarter={quarter}&format=xlsx")


# --------------------------------------------------------------------------- mounting

def mount(app: FastAPI) -> None:
    """Add the web interface to the HTTP application: its pages and /static. A confirmed intake is
    converted by ``app.state.start_job(job_id, who)``, as the API's uploads are (api.http)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
