"""The HTTP API (``sohoa serve``): the one-stop system's and the web interface's door.

Every route goes through the service layer only, as the command line does; each request acts
as its authenticated user (``api.security``), and every read, download, search, verification
and write of dossier data is a row of the access log, naming that user, role and address.
A dossier outside the user's agency scope answers 404, as one that does not exist.

    POST /api/v1/dossiers/{code}/documents     202 + job; converted in the background
    GET  /api/v1/jobs, /api/v1/jobs/{id}        state, pages done of total, docId, error
    POST /api/v1/jobs/{id}/retry                a failed job again (finished pages kept)
    POST /api/v1/jobs/{id}/discard              a failed job given up for good ({"reason"}; originals kept)
    GET  /api/v1/dossiers/{code}                documents, pages, flags, signature summary
    GET  /api/v1/dossiers/{code}/documents/{docId}/pdf   the signed PDF (?link=1: a presigned S3 URL)
    GET  /api/v1/dossiers/{code}/verify         verdicts
    GET  /api/v1/dossiers/{code}/access         who did what with the dossier (archivist, admin)
    GET|PUT /api/v1/dossiers/{code}/checklist   required papers, which are missing, which being digitised
    GET  /api/v1/search?q=...                   pages, with or without diacritics
    GET  /api/v1/reports/digitisation?quarter=2026-Q4[&format=csv|xlsx]
    GET  /healthz, /readyz, /metrics
"""
from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Annotated, Iterator, Literal

from fastapi import Body, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import service
from pipeline.config import Settings
from pipeline.errors import EXPECTED, UsageError, describe
from pipeline.service import Principal

from . import web
from .metrics import Metrics, MetricsMiddleware
from .status import status_of
from .security import LoginThrottle, require

log = logging.getLogger("sohoa.http")
API = "/api/v1"


def _field(loc) -> str:
    """Where a request's value is wrong, as the client named it: "title", "q" (not "body.title")."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "yêu cầu"


def _vi_problem(error: dict) -> str:
    """A request validation error (pydantic's type and context) said in Vietnamese."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return "thiếu (bắt buộc)"
    if kind in ("string_too_short", "too_short"):
        return f"quá ngắn (ít nhất {ctx.get('min_length', 1)} ký tự)" if kind.startswith("string") else \
            f"quá ít (ít nhất {ctx.get('min_length', 1)})"
    if kind in ("string_too_long", "too_long"):
        return f"quá dài (tối đa {ctx.get('max_length')} ký tự)" if kind.startswith("string") else \
            f"quá nhiều (tối đa {ctx.get('max_length')})"
    if kind in ("literal_error", "enum"):
        return f"phải là một trong: {ctx.get('expected', '')}".replace(" or ", ", ")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "phải là số nguyên"
    if kind in ("float_parsing", "float_type"):
        return "phải là số"
    if kind in ("bool_parsing", "bool_type"):
        return "phải là true hoặc false"
    bounds = {"greater_than_equal": ("ge", "ít nhất"), "greater_than": ("gt", "lớn hơn"),
              "less_than_equal": ("le", "tối đa"), "less_than": ("lt", "nhỏ hơn")}
    if kind in bounds:
        key, words = bounds[kind]
        return f"phải {words} {ctx.get(key)}"
    if kind == "json_invalid":
        return "JSON không hợp lệ"
    if kind in ("string_type", "list_type", "dict_type", "model_attributes_type"):
        return "sai kiểu dữ liệu"
    return "giá trị không hợp lệ"


# what a dossier code is written with (any case): anything else is no code's start (a 422, not a query)
CODE_PREFIX = r"^[0-9A-Za-z.\-]+$"


class ErrorDetail(BaseModel):
    code: str = Field(description="máy đọc: usage, input, unsupported_type, dossier_code, not_found, forbidden, "
                                  "unauthenticated, conflict, integrity, too_large, broker, …")
    message: str = Field(description="tiếng Việt, cho người dùng")
    detail: str = Field(description="tiếng Anh, cho nhật ký")


class ErrorBody(BaseModel):
    """Every error, of every route, in one shape."""
    error: ErrorDetail


# declared on every route of the description (the 422 replaces FastAPI's own, which the API never sends)
ERROR_RESPONSES = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "yêu cầu không hợp lệ"), (401, "thiếu hoặc sai mã truy cập (WWW-Authenticate: Bearer)"),
    (403, "vai trò không được phép"), (404, "không có, hoặc ngoài các cơ quan của người dùng"),
    (409, "xung đột với trạng thái hiện tại"), (413, "tệp hoặc yêu cầu quá lớn"), (415, "loại tệp không nhận"),
    (422, "thiếu trường, trường rỗng hoặc ngoài giới hạn; tệp không đọc được"), (500, "lỗi máy chủ"),
    (503, "kho, cơ sở dữ liệu hoặc hàng đợi chưa sẵn sàng"))}


def create_app(settings: Settings, *, background: bool = True, periodic: bool = False) -> FastAPI:
    """The application. ``background``: run uploaded jobs in this process when no broker is set;
    ``periodic``: also anchor the access log and deliver notices on their intervals (the server
    does, a test client need not)."""
    metrics = Metrics(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if background:
            service.warm_up(settings)
            with service.acting(STARTUP):  # uploads a server stopped before it converted them (an upgrade)
                for job_id in await run_in_threadpool(service.resume_left_behind, settings):
                    start_job(job_id, STARTUP, queued=True)
        with periodic_rounds(settings) if periodic else nullcontext():
            try:
                yield
            finally:
                app.state.runner.shutdown(wait=False, cancel_futures=False)
                if background:
                    service.stop_reading_ahead()

    app = FastAPI(title="sohoa", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  responses=ERROR_RESPONSES,
                  description="Số hóa hồ sơ thủ tục hành chính: tiếp nhận, tra cứu, xác minh, báo cáo.")
    app.state.settings = settings
    app.state.runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sohoa-job")

    def start_job(job_id: str, who: Principal, queued: bool = False) -> None:
        """Convert a recorded job (an upload, a confirmed intake, a retry) after the answer is sent;
        ``queued``: already recorded as waiting in this process."""
        if background:
            if not (queued or settings.broker.url):
                try:
                    service.queue_here(settings, job_id)
                except Exception as exc:  # not marked: the job is still run here, as before
                    log.warning("job %s not recorded as queued here: %s", job_id, describe(exc).detail)
            app.state.runner.submit(_run_job, settings, job_id, who)

    app.state.start_job = start_job
    app.state.login_throttle = LoginThrottle(settings.api.login_failures, settings.api.login_pause_seconds)
    # plain ASGI middleware (not BaseHTTPMiddleware): no task, stream or copy of the answer per request
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(UploadLimitMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)  # last added, outermost: every answer has them

    for expected in EXPECTED:
        @app.exception_handler(expected)
        async def sohoa_error(request: Request, exc: Exception):
            return _error_response(exc)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception):
        # answered outside the middleware (Starlette's outermost error handler): the headers here
        response = _error_response(exc)
        _harden(response.headers, request.url.path, request.url.scheme, settings)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _browser_page(request):  # an address no route answers, asked for by a browser: the 404 page
            return web.error_page(request, exc)
        detail = exc.detail if isinstance(exc.detail, dict) else {
            "code": "http", "message": HTTP_MESSAGES.get(exc.status_code, f"Yêu cầu không thực hiện được "
                                                                          f"(HTTP {exc.status_code})"),
            "detail": str(exc.detail)}
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        said = "; ".join(f"{_field(e['loc'])}: {_vi_problem(e)}" for e in problems)
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in problems)
        return JSONResponse({"error": {"code": "usage", "message": f"Yêu cầu không hợp lệ: {said}",
                                       "detail": fields}}, status_code=422)

    # ------------------------------------------------------------------ health

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The store, the database and (when configured) the broker answer."""
        problems = service.readiness(settings)
        ready = all(p is None for p in problems.values())
        return JSONResponse({"ready": ready, "checks": {k: ("ok" if v is None else v) for k, v in problems.items()}},
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics_page(who: Annotated[Principal, Depends(require("metrics"))]) -> Response:
        """Prometheus metrics (a token of an archivist or admin)."""
        return Response(metrics.render(), media_type=metrics.content_type)

    # ------------------------------------------------------------------ intake

    @app.post(API + "/dossiers/{code}/documents", status_code=202, tags=["intake"], responses={
        202: {"description": "{job, href}: the job (Location: its address); with duplicate: true, the job already "
                             "converting these files"},
        200: {"description": "{duplicate: true, document}: the dossier already holds these files"}})
    async def upload(code: str, request: Request, files: Annotated[list[UploadFile], File()],
                     who: Annotated[Principal, Depends(require("upload"))],
                     title: Annotated[str, Form(min_length=1, max_length=1000,
                                                description="tên tài liệu (bắt buộc, tối đa 1000 ký tự)")],
                     maintenance: Annotated[Literal["01", "02", "03", "04", "05", "06", "07"] | None, Form(
                         description="thời hạn bảo quản của hồ sơ theo TT 05/2025 (01 vĩnh viễn … 06 10 năm, "
                                     "07 khác); mặc định: chưa ghi, khóa ghi-một-lần 10 năm")] = None,
                     paper_file_code: Annotated[str | None, Form(alias="paperFileCode", min_length=1, max_length=100,
                                                                 description="mã hồ sơ giấy")] = None,
                     start_date: Annotated[str | None, Form(alias="startDate", max_length=20,
                                                            description="ngày bắt đầu của hồ sơ giấy "
                                                                        "(31/12/2019 hoặc 2019-12-31)")] = None,
                     end_date: Annotated[str | None, Form(alias="endDate", max_length=20,
                                                          description="ngày kết thúc của hồ sơ giấy")] = None,
                     ) -> JSONResponse:
        """One document of the dossier, its pages in the order of ``files``: answers 202 with the
        job at once; the pages are converted in the background (``GET /api/v1/jobs/{id}``). The
        dossier's fields, as ``sohoa ingest`` takes them, are set with its first document (a
        recorded one is not changed: 409)."""
        code = service.visible(who, code)
        if len(files) > settings.api.max_upload_files:
            raise UsageError(f"Quá nhiều tệp: {len(files)} (tối đa {settings.api.max_upload_files} tệp mỗi lần)",
                             "too many files")
        loaded = []
        for f in files:
            if f.size is not None and f.size > settings.api.max_file_bytes:
                return _too_large_file(f.filename, f.size, settings)
            data = await f.read()
            if len(data) > settings.api.max_file_bytes:
                return _too_large_file(f.filename, len(data), settings)
            if not data:
                return JSONResponse({"error": {"code": "input", "message": f"Tệp không hợp lệ: {f.filename}: tệp rỗng, "
                                               "0 byte", "detail": f"{f.filename}: empty file"}}, status_code=422)
            if service.page_format(data) is None:
                return JSONResponse({"error": {"code": "unsupported_type", "message":
                                               f"Tệp '{f.filename}' không phải PDF, TIFF, JPEG hay PNG",
                                               "detail": f"{f.filename}: unsupported type"}}, status_code=415)
            loaded.append((f.filename or "page", data))

        dates = (start_date or "", end_date or "") if start_date or end_date else None

        def accept():
            with service.acting(who):
                return service.accept_upload(settings, code, title, loaded, who, maintenance=maintenance,
                                             paper_file_code=paper_file_code, paper_dates=dates)

        job, duplicate = await run_in_threadpool(accept)
        if duplicate is not None:
            return JSONResponse({"duplicate": True, "document": duplicate.to_json()}, status_code=200)
        answer = {"job": job.to_json(), "href": f"{API}/jobs/{job.id}"}
        if job.resumed:  # the same files sent again while they are converted: that job, said so
            answer["duplicate"] = True
            if (wanted := service.check_title(title)) != job.title:
                answer["warnings"] = [f"Các tệp này đang được số hóa với tên «{job.title}»; tên «{wanted}» "
                                      "không được dùng"]
        await run_in_threadpool(app.state.start_job, job.id, who)  # it writes to the database (review)
        return JSONResponse(answer, status_code=202, headers={"Location": f"{API}/jobs/{job.id}"})

    @app.get(API + "/jobs", tags=["intake"])
    def list_jobs(who: Annotated[Principal, Depends(require("jobs"))],
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=1_000_000, description="bỏ qua bấy nhiêu lượt mới nhất")] = 0,
                  dossier: Annotated[str | None, Query(max_length=100,
                                                       description="chỉ các lượt của hồ sơ này")] = None,
                  state: Annotated[Literal["queued", "running", "finishing", "done", "failed", "discarded"] | None,
                                   Query()] = None) -> dict:
        """The latest jobs, oldest first: an operator's own uploads; every job in scope for the other
        roles; ``offset`` newer ones left out, ``more`` when older ones follow."""
        with service.acting(who):
            found, more = service.job_page(settings, who, limit, offset, dossier, state)
        return {"jobs": [j.to_json() for j in found], "offset": offset, "more": more}

    @app.get(API + "/jobs/{job_id}", tags=["intake"])
    def get_job(job_id: str, who: Annotated[Principal, Depends(require("jobs"))]) -> dict:
        """A job's state, pages done of total, its document when done, its error when failed."""
        with service.acting(who):
            return service.job_for(settings, job_id, who).to_json()

    @app.post(API + "/jobs/{job_id}/retry", status_code=202, tags=["intake"])
    def retry_job(job_id: str, who: Annotated[Principal, Depends(require("retry"))]) -> JSONResponse:
        """Run a failed job again; the pages it finished are not redone (409 when it is done)."""
        with service.acting(who):
            job = service.reopen_job(settings, job_id, who)
        app.state.start_job(job.id, who)
        return JSONResponse({"job": job.to_json(), "href": f"{API}/jobs/{job.id}"}, status_code=202)

    @app.post(API + "/jobs/{job_id}/discard", tags=["intake"])
    def discard_job(job_id: str, who: Annotated[Principal, Depends(require("retry"))],
                    reason: Annotated[str, Body(embed=True, max_length=1000)]) -> dict:
        """Give up a failed job for good, with a reason (409 unless it failed); its originals stay."""
        with service.acting(who):
            return {"job": service.discard_job(settings, job_id, reason, who).to_json()}

    @app.get(API + "/dossiers/{code}/checklist", tags=["intake"])
    def get_checklist(code: str, who: Annotated[Principal, Depends(require("checklist"))]) -> dict:
        """The dossier's procedure, its required papers and those still missing."""
        code = service.visible(who, code)
        with service.acting(who):
            return service.checklist(settings, code)

    @app.put(API + "/dossiers/{code}/checklist", tags=["intake"])
    def put_checklist(code: str, who: Annotated[Principal, Depends(require("checklist"))],
                      procedure: Annotated[str, Body(max_length=100)],
                      required: Annotated[list[str], Body(max_length=100)]) -> dict:
        """Set the dossier's procedure code and required papers (the one-stop system or an officer)."""
        code = service.visible(who, code)
        with service.acting(who):
            return service.set_checklist(settings, code, procedure, required, who.name)

    # ------------------------------------------------------------------ retrieval

    @app.get(API + "/dossiers/{code}", tags=["retrieval"])
    def get_dossier(code: str, who: Annotated[Principal, Depends(require("read"))]) -> dict:
        """The dossier's documents, pages, flags and signature summary (its manifest)."""
        code = service.visible(who, code)
        with service.acting(who):
            return service.show(settings, code).manifest

    @app.get(API + "/dossiers/{code}/documents/{doc_id}/pdf", tags=["retrieval"], response_class=Response, responses={
        200: {"content": {"application/pdf": {}}, "description": "the signed PDF/A; ETag: its SHA-256"},
        206: {"content": {"application/pdf": {}}, "description": "the range asked for (Content-Range)"},
        304: {"description": "If-None-Match named its ETag"}, 307: {"description": "link=true: the presigned link"},
        416: {"model": ErrorBody, "description": "the range lies outside the file"}})
    def get_pdf(code: str, doc_id: str, request: Request, who: Annotated[Principal, Depends(require("download"))],
                link: Annotated[bool, Query()] = False) -> Response:
        """The signed PDF/A, fixity checked; with ``link=true`` on S3, a redirect to a link that
        expires in 5 minutes. Its ETag is its SHA-256: ``If-None-Match`` with it answers 304;
        ``Range: bytes=a-b`` answers that part (206); HEAD answers the headers alone."""
        code = service.visible(who, code)
        with service.acting(who):
            if link:
                found = service.link(settings, code, doc_id, expires=300)
                return RedirectResponse(found[0].url, status_code=307)
            pdf = service.document_pdf_record(settings, code, doc_id)
            etag = f'"{pdf["sha256"]}"'
            headers = {"Content-Disposition": web.content_disposition("attachment", doc_id, pdf["title"]), "ETag": etag,
                       "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                       "Accept-Ranges": "bytes"}
            if _matches(request.headers.get("if-none-match"), etag):  # answered from the manifest: nothing read
                return Response(status_code=304, headers={"ETag": etag, "Cache-Control": headers["Cache-Control"]})
            if request.scope.get(HEAD):  # the headers alone: nothing read, no download recorded
                return Response(media_type="application/pdf", headers={**headers, "Content-Length": str(pdf["size"])})
            asked = request.headers.get("range")
            if asked is not None and request.headers.get("if-range", etag) != etag:  # changed since: the whole file
                asked = None
            part = _byte_range(asked, pdf["size"]) if asked is not None else None
            if asked is not None and part is None:
                return JSONResponse({"error": {"code": "range", "message": "Khoảng byte yêu cầu nằm ngoài tệp",
                                               "detail": f"range not satisfiable: {asked[:100]}"}},
                                    status_code=416, headers={"Content-Range": f"bytes */{pdf['size']}"})
            partial = part is not None and part != (0, pdf["size"])
            # every answer that sends bytes is a download in the access log (a part: with its range)
            data, _ = service.document_pdf(settings, code, doc_id, pdf=pdf,
                                           part=f"{part[0]}-{part[1] - 1}" if partial else None)
        if partial and part[1] <= len(data):
            return Response(data[part[0]:part[1]], status_code=206, media_type="application/pdf", headers={
                **headers, "Content-Range": f"bytes {part[0]}-{part[1] - 1}/{len(data)}"})
        return Response(data, media_type="application/pdf", headers=headers)

    @app.get(API + "/dossiers/{code}/verify", tags=["retrieval"])
    def verify(code: str, who: Annotated[Principal, Depends(require("verify"))]) -> dict:
        """Each document's verdict: fixity, signature, PDF/A."""
        code = service.visible(who, code)
        with service.acting(who):
            verdicts = service.verify_dossier(settings, code)
        return {"dossierCode": code, "ok": bool(verdicts) and all(v.ok for v in verdicts),
                "documents": [v.to_json() for v in verdicts]}

    @app.get(API + "/dossiers/{code}/access", tags=["retrieval"])
    def dossier_access(code: str, who: Annotated[Principal, Depends(require("access-log"))]) -> dict:
        """Who read, downloaded, searched into or changed the dossier, and when, from where."""
        code = service.visible(who, code)
        with service.acting(who):
            return {"dossierCode": code, "events": list(service.dossier_access(settings, code))}

    @app.get(API + "/search", tags=["retrieval"])
    def search(q: Annotated[str, Query(min_length=1, max_length=500)],
               who: Annotated[Principal, Depends(require("search"))],
               limit: Annotated[int, Query(ge=1, le=100)] = 20,
               code_prefix: Annotated[str | None, Query(
                   alias="codePrefix", max_length=100, pattern=CODE_PREFIX,
                   description="chỉ hồ sơ có mã bắt đầu bằng, ví dụ H23.50")] = None,
               offset: Annotated[int, Query(ge=0, le=service.MAX_SEARCH_OFFSET,
                                            description="bỏ qua bấy nhiêu kết quả đầu (trang sau)")] = 0
               ) -> JSONResponse:
        """Pages whose words match, with or without diacritics, in the user's agencies (and, with
        ``codePrefix``, in the dossiers whose code starts with it). A query that reads as a dossier
        code, or the start of one, also lists those dossiers (``dossiers``), as the web's search does."""
        prefix = service.code_prefix_in(q) if who.may("read") else None
        with service.acting(who):
            found = service.search(settings, q, code_prefix=code_prefix, limit=limit, scope=who.agencies, offset=offset)
            by_code = service.dossiers_by_code(settings, prefix, scope=who.agencies, limit=limit) if prefix else ()
        # plain JSON types: no validation pass over the hits
        return JSONResponse({**found.to_json(), **({"dossiers": list(by_code)} if prefix else {})})

    @app.get(API + "/dossiers", tags=["retrieval"])
    def list_dossiers(code_prefix: Annotated[str, Query(alias="codePrefix", min_length=1, max_length=100,
                                                        pattern=CODE_PREFIX, description="ví dụ H23.50-2612")],
                      who: Annotated[Principal, Depends(require("read"))],
                      limit: Annotated[int, Query(ge=1, le=500)] = 50,
                      offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict:
        """The dossiers in the user's agencies whose code starts with ``codePrefix`` (any case), in
        code order, ``offset`` left out; ``more`` when others follow."""
        with service.acting(who):
            found = service.dossiers_by_code(settings, code_prefix, limit=limit + 1, scope=who.agencies, offset=offset)
        return {"codePrefix": code_prefix.strip().upper(), "dossiers": list(found[:limit]), "offset": offset,
                "more": len(found) > limit}

    # ------------------------------------------------------------------ reports

    @app.get(API + "/reports/digitisation", tags=["reports"], response_class=Response)
    def digitisation_report(quarter: Annotated[str, Query(max_length=20, description="ví dụ 2026-Q4")],
                            who: Annotated[Principal, Depends(require("report"))],
                            format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json") -> Response:
        """The quarterly digitisation report of the user's agencies (JSON, CSV or XLSX)."""
        with service.acting(who):
            found = service.digitisation_report(settings, quarter, who.agencies)
        if format == "csv":
            return Response(service.report_file(found, "csv"), media_type="text/csv; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="bao-cao-so-hoa-{found.quarter}.csv"'})
        if format == "xlsx":
            return Response(service.report_file(found, "xlsx"), headers={
                "Content-Disposition": f'attachment; filename="bao-cao-so-hoa-{found.quarter}.xlsx"'},
                media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        return JSONResponse(found.to_json())

    web.mount(app)
    return app


def app_from_environment() -> FastAPI:
    """The application of one of several ``sohoa serve`` processes (SOHOA_API_PROCESSES > 1):
    its settings read from the environment it inherited; the process that started it runs the
    periodic rounds, once for all."""
    from pipeline import config

    settings = config.load()
    service.database_ready(settings)  # the schema checked, the engine made before the first request
    return create_app(settings, periodic=False)


@contextmanager
def periodic_rounds(settings: Settings) -> Iterator[None]:
    """The server's own rounds while inside: anchor the access log's head; deliver due notices."""
    stop, threads = threading.Event(), []
    for name, target in service.periodic_tasks(settings):
        thread = threading.Thread(target=target, args=(stop,), name=f"sohoa-{name}", daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


STARTUP = Principal("sohoa serve", "admin", via="startup")  # who resumes what a stopped server left


def _run_job(settings: Settings, job_id: str, who: Principal) -> None:
    """Convert an uploaded job in this process; its failure is recorded on the job, not raised."""
    try:
        with service.acting(who):
            service.run_job(settings, job_id)
    except Exception as exc:  # the job row and the access log hold the outcome
        report = describe(exc)
        (log.warning if report.expected else log.exception)("job %s: %s", job_id, report.detail or report.message_vi)


def _error_response(exc: Exception) -> JSONResponse:
    report = describe(exc)
    if not report.expected:
        log.exception("unexpected error", exc_info=exc)
    return JSONResponse({"error": report.to_json()}, status_code=status_of(report))


class UploadLimitMiddleware:
    """Refuse a request body larger than the upload limit before it is read (413), and one
    streamed without saying its length (411: chunked). A request with neither header has no body
    (HTTP/1.1), as a bare ``curl -X POST .../retry`` sends: it goes through."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings
        self.limit = settings.api.max_upload_bytes + 64 * 1024  # the multipart envelope around the files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._refused(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refused(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            mb = self.settings.api.max_upload_bytes // (1024 * 1024)
            if _browser_page(Request(scope)):  # a form: a page, with the way back to its draft
                kept = (", các trang đã có vẫn giữ nguyên. Hãy tải từng tệp một, hoặc chia tệp lớn thành nhiều tệp "
                        "nhỏ hơn" if web.form_page(scope["path"]) else "")
                return web.error_page(Request(scope), StarletteHTTPException(413, {"message": (
                    f"Dữ liệu gửi lên quá lớn (tối đa {mb} MB mỗi lần): chưa nhận gì{kept}.")}))
            return JSONResponse({"error": {"code": "too_large", "message": f"Tệp tải lên quá lớn (tối đa {mb} MB mỗi lần)",
                                           "detail": "request body too large"}}, status_code=413)
        if length is None and scope["method"] in ("POST", "PUT", "PATCH") and "transfer-encoding" in headers:
            return JSONResponse({"error": {"code": "length_required", "message": "Thiếu độ dài nội dung (Content-Length)",
                                           "detail": "Content-Length required"}}, status_code=411)
        return None


def _browser_page(request: Request) -> bool:
    """Whether the answer should be a page: a browser (it accepts HTML) asking outside the API."""
    return not request.url.path.startswith((API, "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi")) \
        and "text/html" in request.headers.get("accept", "")


# messages of the answers Starlette itself makes (no route, wrong method, a body it cannot parse)
HTTP_MESSAGES = {400: "Yêu cầu không hợp lệ (dữ liệu gửi lên không đọc được)", 401: "Cần đăng nhập hoặc mã truy cập",
                 403: "Không được phép", 404: "Không tìm thấy địa chỉ này", 405: "Địa chỉ này không nhận phương thức này",
                 406: "Không có dạng trả lời được yêu cầu", 413: "Dữ liệu gửi lên quá lớn",
                 415: "Kiểu dữ liệu gửi lên không được hỗ trợ", 429: "Quá nhiều yêu cầu; hãy thử lại sau"}
# every answer: nothing runs or loads from it, no framing, no referrer, not stored by a browser or proxy
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                                               "form-action 'none'",
                    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}


def _harden(headers: MutableHeaders, path: str, scheme: str, settings: Settings) -> None:
    """The security headers an answer did not set itself (the web pages set a policy of their
    own), and Strict-Transport-Security when the request came over HTTPS (directly, or through a
    proxy uvicorn trusts, ``--forwarded-allow-ips``)."""
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and path.startswith("/static/"):
            value = "no-cache"  # the stylesheet and script: no personal data, revalidated
        headers.setdefault(name, value)
    if scheme == "https" and settings.api.hsts_seconds:
        headers["Strict-Transport-Security"] = f"max-age={settings.api.hsts_seconds}; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                _harden(MutableHeaders(scope=message), scope["path"], scope["scheme"], self.settings)
            await send(message)

        await self.app(scope, receive, hardened)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """An ``If-None-Match`` naming the entity tag (weakly compared, in a list, or ``*``)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,18})-(\d{0,18})\s*", re.IGNORECASE)


def _byte_range(asked: str, size: int) -> tuple[int, int] | None:
    """[start, end) of one ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range; the whole file for a
    header this does not read (several ranges, another unit, a range ending before it starts:
    ignored, answered whole, as RFC 9110 allows); None when it lies outside the file (416)."""
    m = _RANGE.fullmatch(asked)
    if m is None or m[1] == m[2] == "" or (m[1] and m[2] and int(m[2]) < int(m[1])):
        return 0, size
    if not m[1]:  # the last n bytes
        n = int(m[2])
        return (max(0, size - n), size) if n > 0 and size else None
    start = int(m[1])
    end = min(size, int(m[2]) + 1) if m[2] else size
    return (start, end) if start < size else None


HEAD = "sohoa.head"  # set in a request's scope when it was a HEAD, answered as GET without its body


class HeadAsGetMiddleware:
    """HEAD answered as GET without its body (RFC 9110: the same headers): load balancers' probes
    of /healthz and clients asking a download's size and ETag (FastAPI's routes answer GET only)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        inner = {**scope, "method": "GET", HEAD: True}  # (a route may answer HEAD without its body's work)
        try:
            await self.app(inner, receive, headers_only)
        finally:
            if "route" in inner:  # what the routing found, for the metrics around this middleware
                scope["route"] = inner["route"]


def _too_large_file(name: str | None, size: int, settings: Settings) -> JSONResponse:
    mb = settings.api.max_file_bytes // (1024 * 1024)
    shown = f"{size / 1048576:.1f}".replace(".", ",")  # the Vietnamese decimal comma
    return JSONResponse({"error": {"code": "too_large", "message": f"Tệp '{name}' quá lớn: {shown} MB "
                                                                    f"(tối đa {mb} MB mỗi tệp)",
                                   "detail": f"{name}: file larger than {mb} MiB"}}, status_code=413)
