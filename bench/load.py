"""Load on one machine: uploads and searches over HTTP while two Celery workers convert.

    .venv/bin/python -m bench.load                          # 200 uploads, 2,000 searches (what the tests run)
    .venv/bin/python -m bench.load --long                   # 1,000 uploads, 10,000 searches, 100 clients
    .venv/bin/python -m bench.load --uploads 500 --searches 5000 --concurrency 40 --workers 4
    .venv/bin/python -m bench.load --api-processes 1            # the API in one process (default 2)
    .venv/bin/python -m bench.load --uploads 200 --concurrency 200 --searches 0 --workers 0 --drain-timeout 1 \
        --profile /tmp/api.raw                              # a burst of uploads alone, the API sampled by py-spy

Everything is real and on 127.0.0.1: ``sohoa serve`` (the HTTP API, in ``--api-processes``
processes: SOHOA_API_PROCESSES), ``sohoa worker`` processes
(``--concurrency 1`` each, in their own process groups), RabbitMQ as the broker (a virtual host
of its own, made with ``rabbitmqctl`` and deleted after), PostgreSQL as the database and the
search index (a database of its own, dropped after) and the local object store in a temporary
SOHOA_HOME. An operator's token uploads one tiny scanned page per request (400x300 px at
100 dpi, a few Vietnamese words and a number of its own), spread over a few dossiers, from
``--concurrency`` clients at once; an officer's token searches (phrases with and without
diacritics) from ``--search-concurrency`` clients at once, started with the uploads, so the
searches run while the workers are converting. Then the workers drain the queue (with a
deadline) and every accepted upload is checked: its job ``done``, its document once in its
dossier's manifest, the signed PDF in the store with the manifest's SHA-256, and its dossier
found by a search (the index). Prints a JSON report: counts, errors, lost and duplicated
documents, p50/p95/p99 of acceptance and search times, drain time, workers alive, targets
met, and the CPU time the API's processes spent per request (less dependent on what else runs
on the machine than the times are). The test suite runs the default size (tests/test_load.py) from this same code.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import psutil

ROOT = Path(__file__).resolve().parent.parent
SOHOA = str(Path(sys.executable).with_name("sohoa"))
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
UPLOAD_P95_TARGET = 1.0  # seconds: an upload is accepted (202) within this at the 95th percentile
SEARCH_P95_TARGET = 0.200  # seconds: a search answers within this at the 95th percentile
# what officers type: phrases with diacritics, without, words near each other, a number
QUERIES = ("đề nghị", "de nghi", "giấy chứng nhận", "giay chung nhan", "hộ kinh doanh", "ho kinh doanh",
           "đăng ký", "dang ky", "năm 2026", "nghị cấp", "chứng nhận hộ", "không có", "sổ hộ khẩu")


@dataclass(frozen=True)
class Scenario:
    uploads: int = 200
    searches: int = 2000
    concurrency: int = 20         # upload clients at once
    search_concurrency: int = 20  # search clients at once
    search_rate: float = 40       # searches a second arriving at random (Poisson), open loop; 0: each
                                  # of search_concurrency clients sends its next as soon as the last is answered
    dossiers: int = 50            # the uploads spread over this many dossiers (several documents each)
    workers: int = 2              # `sohoa worker --concurrency 1` processes
    api_processes: int = 2        # `sohoa serve` processes (SOHOA_API_PROCESSES)
    worker_nice: int = 10         # the workers' niceness: on one machine the API answers first
    drain_timeout: float = 900    # seconds the workers may take to finish every accepted upload
    seed: int = 16


@dataclass
class Timings:
    values: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        v = sorted(self.values)
        if not v:
            return {"n": 0}
        return {"n": len(v), "p50": _pct(v, 50), "p95": _pct(v, 95), "p99": _pct(v, 99), "max": round(v[-1], 4),
                "mean": round(sum(v) / len(v), 4)}


def _pct(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile (no interpolation: a value that was measured)."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 4)


# --------------------------------------------------------------------------- the pages


def page_png(n: int) -> bytes:
    """A tiny scanned page: 400x300 px, 8-bit grey, 100 dpi, three lines of Vietnamese, its own number."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, 22)
    image = Image.new("L", (400, 300), 250)
    draw = ImageDraw.Draw(image)
    for y, line in ((40, "Đơn đề nghị cấp giấy"), (90, "chứng nhận hộ kinh doanh"), (140, f"số {n:04d} năm 2026")):
        draw.text((20, y), line, font=font, fill=20)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(100, 100))
    return out.getvalue()


def dossier_code(n: int) -> str:
    return f"H23.50-261201-{n + 1:04d}"


# --------------------------------------------------------------------------- the services


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database, dropped after."""
    import sqlalchemy as sa

    name = f"sohoa_load_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _forget_engines(url: str) -> None:
    """Close this process's pooled connections to the database before it is dropped."""
    from storage import db

    for cached in [k for k in db._engines if url.rsplit("/", 1)[-1] in k]:
        db._engines.pop(cached).dispose()


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own (no other run's tasks, none of ours left), deleted after."""
    vhost = f"sohoa-load-{uuid.uuid4().hex[:10]}"
    _run(["rabbitmqctl", "-q", "add_vhost", vhost])
    try:
        _run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
        yield AMQP + vhost
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Processes started by this run, each in its own process group, stopped at the end."""

    def __init__(self, logs: Path):
        self.logs, self.started = logs, []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_ready(base: str, server: subprocess.Popen, procs: Processes, within: float = 90) -> None:
    """Until ``/readyz`` answers 200: the store, the database and the broker answer."""
    import httpx

    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sohoa serve is not ready:\n{procs.log('serve')}")
        time.sleep(0.3)


# --------------------------------------------------------------------------- the load


def _upload_request(host: str, token: str, code: str, n: int, page: bytes) -> bytes:
    """The whole HTTP/1.1 request of one upload (a multipart form: the title and one page), encoded
    before the load starts, as a browser holds its form: the time measured is the server's."""
    boundary = f"sohoa-load-{n:06d}-{uuid.uuid4().hex}"
    body = b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nĐơn số {n:04d}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="trang-{n:04d}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode(), page, f"\r\n--{boundary}--\r\n".encode()])
    head = (f"POST /api/v1/dossiers/{code}/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _exchange(connection: list, host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request on the client's keep-alive connection (opened, or opened again, as
    needed) and read the answer: (status, body)."""
    if not connection:
        connection[:] = await asyncio.open_connection(host, port)
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(fields.get("content-length", 0)))
    if fields.get("connection", "").lower() == "close":
        writer.close()
        connection.clear()
    return status, body


async def _uploads(base: str, token: str, scenario: Scenario, pages: list[bytes], results: list) -> None:
    """``scenario.concurrency`` clients, each on a connection of its own (like an operator's
    browser), uploading one page per request until every upload is sent. A plain asyncio
    HTTP/1.1 client rather than httpx: with hundreds of clients in one process, httpx's own CPU
    (its pool scans every connection on each request; each client makes a TLS context) took as
    much of the 2 cores as the server did, and would have been counted as the server's latency."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(scenario.uploads):
        queue.put_nowait(n)
    requests = [_upload_request(f"{host}:{port}", token, dossier_code(n % scenario.dossiers), n, pages[n])
                for n in range(scenario.uploads)]

    async def one_client() -> None:
        connection: list = []
        try:
            while not queue.empty():
                n = queue.get_nowait()
                started = time.perf_counter()
                try:
                    status, raw = await asyncio.wait_for(_exchange(connection, host, int(port), requests[n]), 120)
                    body = json.loads(raw) if raw else {}
                except Exception as exc:  # a refused or dropped connection is an error like any other
                    status, body = 0, {"error": repr(exc)}
                    if connection:
                        connection[1].close()
                        connection.clear()
                results.append({"n": n, "code": dossier_code(n % scenario.dossiers), "status": status,
                                "seconds": time.perf_counter() - started,
                                "job": (body.get("job") or {}).get("job") if status == 202 else None,
                                "error": None if status == 202 else body})
        finally:
            if connection:
                connection[1].close()

    await asyncio.gather(*(one_client() for _ in range(scenario.concurrency)))


async def _searches(base: str, token: str, scenario: Scenario, results: list) -> None:
    import httpx

    rng = random.Random(scenario.seed)
    queries = [rng.choice(QUERIES) for _ in range(scenario.searches)]
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=scenario.search_concurrency,
                          max_keepalive_connections=scenario.search_concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        async def timed(q: str, started: float) -> None:
            try:
                answer = await client.get("/api/v1/search", params={"q": q, "limit": 20})
                status, hits = answer.status_code, len(answer.json().get("hits", [])) if answer.status_code == 200 else 0
                error = None if status == 200 else answer.text[:300]
            except Exception as exc:
                status, hits, error = 0, 0, repr(exc)
            results.append({"q": q, "status": status, "seconds": time.perf_counter() - started, "hits": hits,
                            "error": error})

        async def one_client(mine: list[str]) -> None:
            for q in mine:
                await timed(q, time.perf_counter())

        if scenario.search_rate > 0:
            # officers arriving at random: each search is timed from the moment it was due, so a
            # client (or server) that falls behind is counted, not hidden
            began, due = time.perf_counter(), 0.0
            gate = asyncio.Semaphore(scenario.search_concurrency)

            async def arriving(q: str, at: float) -> None:
                await asyncio.sleep(max(0.0, began + at - time.perf_counter()))
                async with gate:
                    await timed(q, began + at)

            tasks = []
            for q in queries:
                due += rng.expovariate(scenario.search_rate)
                tasks.append(arriving(q, due))
            await asyncio.gather(*tasks)
            return
        k = scenario.search_concurrency
        await asyncio.gather(*(one_client(queries[i::k]) for i in range(k)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants alive now: the server's
    supervisor and the processes it serves from."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(_cpu_of(p) for p in tree)


def _cpu_of(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:  # gone meanwhile
        return 0.0
    return times.user + times.system


def _cpu_by_command() -> dict[str, float]:
    """CPU seconds (user + system) of every process alive now, summed by command name."""
    found: dict[str, float] = {}
    for process in psutil.process_iter(["name", "cpu_times"]):
        if (times := process.info["cpu_times"]) is not None:
            name = process.info["name"] or "?"
            found[name] = found.get(name, 0.0) + times.user + times.system
    return found


def _job_states(engine) -> dict[str, int]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT state, count(*) FROM jobs GROUP BY state")).all())


def _drain(engine, accepted: int, workers: list[subprocess.Popen], timeout: float) -> tuple[float, dict[str, int]]:
    """Wait until every accepted job is done or failed (or the deadline passes, or every worker died)."""
    started = time.monotonic()
    while True:
        states = _job_states(engine)
        if states.get("done", 0) + states.get("failed", 0) >= accepted:
            return time.monotonic() - started, states
        if time.monotonic() - started > timeout or all(w.poll() is not None for w in workers):
            return time.monotonic() - started, states
        time.sleep(1)


def _check_stored(home: Path, engine, accepted: list[dict]) -> dict:
    """Every accepted upload ends as exactly one stored, signed-as-recorded, indexed document."""
    import sqlalchemy as sa

    from storage import index as search_index
    from storage import jobs as job_table

    lost, duplicated, bad_pdf, not_indexed, failed = [], [], [], [], []
    by_code: dict[str, list[dict]] = {}
    for upload in accepted:
        by_code.setdefault(upload["code"], []).append(upload)
    jobs = {row["id"]: row for row in job_table.find(engine, ids=[u["job"] for u in accepted])}
    for code, uploads in sorted(by_code.items()):
        path = home / "store" / "dossiers" / code / "manifest.json"
        documents = json.loads(path.read_text())["documents"] if path.exists() else []
        by_id = {d["docId"]: d for d in documents}
        titles = [d["title"] for d in documents]
        for upload in uploads:
            job = jobs.get(upload["job"])
            if job is None or job["state"] != "done":
                (failed if job and job["state"] == "failed" else lost).append(
                    {"n": upload["n"], "job": upload["job"], "state": job and job["state"],
                     "error": job and job["error"]})
                continue
            document = by_id.get(job["doc_id"])
            if document is None or document["title"] != f"Đơn số {upload['n']:04d}":
                lost.append({"n": upload["n"], "job": upload["job"], "docId": job["doc_id"]})
                continue
            if titles.count(document["title"]) != 1:
                duplicated.append({"n": upload["n"], "docId": job["doc_id"]})
            pdf = home / "store" / document["pdf"]["key"]
            if not pdf.exists() or hashlib.sha256(pdf.read_bytes()).hexdigest() != document["pdf"]["sha256"]:
                bad_pdf.append({"n": upload["n"], "docId": job["doc_id"]})
        if len(documents) != len(uploads):
            duplicated.append({"dossier": code, "documents": len(documents), "uploads": len(uploads)})
        found = {h["docId"] for h in search_index.search(engine, "đề nghị", code_prefix=code, limit=100)}
        missing = sorted(set(by_id) - found)
        if missing:
            not_indexed.append({"dossier": code, "docIds": missing})
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM documents")).scalar()
    return {"lost": lost, "failed": failed, "duplicated": duplicated, "badPdf": bad_pdf, "notIndexed": not_indexed,
            "documentsIndexed": rows}


@dataclass
class Deployment:
    base: str
    tokens: dict
    engine: object
    home: Path
    server: subprocess.Popen
    workers: list
    procs: "Processes"
    broker_url: str


@contextmanager
def deployment(workers: int = 2, *, nice: int = 0, admin_url: str | None = None, work: Path | None = None,
               say=lambda message: None, api_processes: int = 1) -> Iterator[Deployment]:
    """A fresh deployment on 127.0.0.1: database, broker virtual host, home, an operator's and an
    officer's token, ``sohoa serve`` (in ``api_processes`` processes) and ``workers`` workers;
    all of it removed after."""
    from pipeline import config, service
    from storage.index import open_index

    admin_url = admin_url or os.environ.get("SOHOA_TEST_PG_ADMIN_URL", PG_ADMIN_URL)
    root = Path(tempfile.mkdtemp(prefix="sohoa-load-", dir=work))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        database_url = stack.enter_context(pg_database(admin_url))
        broker_url = stack.enter_context(rabbitmq_vhost())
        home = root / "home"
        env = {**os.environ, "SOHOA_HOME": str(home), "SOHOA_DATABASE_URL": database_url,
               "SOHOA_BROKER_URL": broker_url, "SOHOA_AUDIT_ANCHOR_INTERVAL": "3600", "OMP_THREAD_LIMIT": "1",
               "SOHOA_API_PROCESSES": str(api_processes)}
        for name in [k for k in env if k.startswith(("SOHOA_S3_", "SOHOA_REPLICA_", "SOHOA_WEBHOOK_"))] + [
                "SOHOA_STORAGE", "SOHOA_SIGNING_AGENCIES"]:
            env.pop(name, None)
        settings = config.load(env)
        stack.callback(_forget_engines, database_url)
        service.db_upgrade(settings)  # what `sohoa db upgrade`, `sohoa user add` and `sohoa token create` do
        tokens = {}
        for name, role in (("can-bo-mot-cua", "operator"), ("chuyen-vien", "officer")):
            service.add_user(settings, name, role, ("H23.50",), None)
            tokens[role] = service.create_token(settings, name)[1]
        engine = open_index(database_url, migrate_schema=False)
        stack.callback(engine.dispose)
        procs = Processes(root)
        stack.callback(procs.stop)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = procs.start("serve", [SOHOA, "serve", "--port", str(port)], env)
        niced = ["nice", "-n", str(nice)] if nice else []
        started = [procs.start(f"worker-{k}", [*niced, SOHOA, "worker", "--concurrency", "1"], env)
                   for k in range(workers)]
        _wait_ready(base, server, procs)
        say(f"ready: {base} ({api_processes} API processes), {workers} workers, broker {broker_url.rsplit('/', 1)[-1]}")
        yield Deployment(base, tokens, engine, home, server, started, procs, broker_url)


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy sampling the API's processes (``pid`` and its children) while the block runs, as
    collapsed stacks in ``out`` (``--profile``): only threads holding the GIL, so the samples
    are the Python CPU each stack spent; nothing when ``out`` is None."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                            "--subprocesses", "--gil", "--format", "raw", "--rate", "200", "--nonblocking",
                            "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)  # py-spy attaches before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def run(scenario: Scenario = Scenario(), *, admin_url: str | None = None, work: Path | None = None,
        progress=None, profile: Path | None = None) -> dict:
    """Set everything up, run the load, drain, check, tear down; the report (a dict). With
    ``profile``, the API's processes are sampled during the load (py-spy, collapsed stacks)."""
    say = progress or (lambda message: None)
    pages = [page_png(n) for n in range(scenario.uploads)]
    with deployment(scenario.workers, nice=scenario.worker_nice, admin_url=admin_url, work=work, say=say,
                    api_processes=scenario.api_processes) as d:
        base, tokens, engine, workers = d.base, d.tokens, d.engine, d.workers
        uploads: list[dict] = []
        searches: list[dict] = []
        marks: dict[str, float] = {}

        async def load() -> None:
            t0 = time.perf_counter()

            def jobs_open() -> int:
                return sum(v for k, v in _job_states(engine).items() if k not in ("done", "failed"))

            async def timed(name, coro):
                await coro
                marks[name] = time.perf_counter() - t0
                marks[f"{name}JobsOpen"] = jobs_open()

            async def converting_while_searching(searching: asyncio.Task) -> None:
                """The most jobs open at once while the searches ran (sampled every half second):
                whether the searches met busy workers does not hang on the instant they ended."""
                most = 0
                while not searching.done():
                    most = max(most, await asyncio.to_thread(jobs_open))
                    await asyncio.sleep(0.5)
                marks["searchesJobsOpenMost"] = most

            searching = asyncio.ensure_future(timed("searches", _searches(base, tokens["officer"], scenario, searches)))
            await asyncio.gather(timed("uploads", _uploads(base, tokens["operator"], scenario, pages, uploads)),
                                 searching, converting_while_searching(searching))

        with profiled(d.server.pid, profile):
            server_cpu, machine_cpu = _cpu_seconds(d.server.pid), _cpu_by_command()
            asyncio.run(load())
            server_cpu = _cpu_seconds(d.server.pid) - server_cpu
            machine_cpu = {name: seconds - machine_cpu.get(name, 0.0) for name, seconds in _cpu_by_command().items()}
        accepted = [u for u in uploads if u["status"] == 202 and u["job"]]
        say(f"uploads: {len(accepted)} of {scenario.uploads} accepted in {marks['uploads']:.1f} s; "
            f"searches: {len(searches)} in {marks['searches']:.1f} s; draining")
        drain_seconds, states = _drain(engine, len(accepted), workers, scenario.drain_timeout)
        say(f"drained in {drain_seconds:.1f} s: {states}")
        stored = _check_stored(d.home, engine, accepted)
        alive = [w.poll() is None for w in workers]
        server_alive = d.server.poll() is None
        failed = any(u["status"] != 202 for u in uploads) or any(s["status"] != 200 for s in searches)
        server_log = d.procs.log("serve")[-3000:] if failed or not server_alive else None

    upload_t = Timings([u["seconds"] for u in uploads])
    search_t = Timings([s["seconds"] for s in searches])
    upload_errors = [u for u in uploads if u["status"] != 202]
    search_errors = [s for s in searches if s["status"] != 200]
    report = {
        "scenario": asdict(scenario),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]},
        "uploads": {"sent": len(uploads), "accepted": len(accepted), "errors": len(upload_errors),
                    "errorSamples": upload_errors[:5], "wallSeconds": round(marks["uploads"], 2),
                    "seconds": upload_t.summary()},
        "searches": {"sent": len(searches), "errors": len(search_errors), "errorSamples": search_errors[:5],
                     "withHits": sum(1 for s in searches if s["hits"]), "wallSeconds": round(marks["searches"], 2),
                     "jobsOpenWhenDone": marks["searchesJobsOpen"],
                     "jobsOpenMostWhileSearching": marks["searchesJobsOpenMost"], "seconds": search_t.summary()},
        "drain": {"seconds": round(drain_seconds, 1), "jobs": states,
                  "documentsPerMinute": round(60 * states.get("done", 0) / max(drain_seconds + marks["uploads"], 1e-9), 1)},
        "stored": {**{k: (len(v) if isinstance(v, list) else v) for k, v in stored.items()},
                   "samples": {k: v[:5] for k, v in stored.items() if isinstance(v, list) and v}},
        "server": {"cpuSeconds": round(server_cpu, 1),  # what the API spent, whatever else ran on the machine
                   "cpuMsPerRequest": round(1000 * server_cpu / max(1, len(uploads) + len(searches)), 1)},
        # where the machine's CPU went during the load, by command (the client, the database, the broker...)
        "machineCpuSeconds": {name: round(seconds, 2) for name, seconds in
                              sorted(machine_cpu.items(), key=lambda item: -item[1]) if seconds >= 0.05},
        "workersAlive": sum(alive), "serverAlive": server_alive, "serverLogTail": server_log,
        "targets": {"uploadP95Seconds": UPLOAD_P95_TARGET, "searchP95Seconds": SEARCH_P95_TARGET},
    }
    report["ok"] = {
        "noErrors": not upload_errors and not search_errors,
        "noLoss": len(accepted) == scenario.uploads and not any(stored[k] for k in ("lost", "failed", "badPdf")),
        "noDuplicate": not stored["duplicated"],
        "searchable": not stored["notIndexed"],
        "workersBusyDuringSearches": marks["searchesJobsOpenMost"] > 0,
        "uploadP95": upload_t.summary().get("p95", math.inf) < UPLOAD_P95_TARGET,
        "searchP95": search_t.summary().get("p95", math.inf) < SEARCH_P95_TARGET,
        "nothingDied": all(alive) and server_alive,
    }
    report["passed"] = all(report["ok"].values())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int)
    parser.add_argument("--searches", type=int)
    parser.add_argument("--concurrency", type=int, help="upload clients at once (default 20)")
    parser.add_argument("--search-concurrency", type=int, help="search clients at once (default 20)")
    parser.add_argument("--search-rate", type=float,
                        help="searches a second arriving at random, open loop (default 40; 0: closed loop)")
    parser.add_argument("--dossiers", type=int, help="dossiers the uploads are spread over (default 50)")
    parser.add_argument("--workers", type=int, help="worker processes (default 2)")
    parser.add_argument("--api-processes", type=int, help="sohoa serve processes, SOHOA_API_PROCESSES (default 2)")
    parser.add_argument("--worker-nice", type=int, help="the workers' niceness (default 10; 0: none)")
    parser.add_argument("--drain-timeout", type=float, help="seconds for the workers to finish (default 900)")
    parser.add_argument("--long", action="store_true", help="1,000 uploads, 10,000 searches, 100 clients")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="sample the API during the load with py-spy (bench extra) into FILE, collapsed stacks")
    args = parser.parse_args(argv)
    base = Scenario(uploads=1000, searches=10000, concurrency=50, search_concurrency=50, dossiers=200,
                    drain_timeout=3600) if args.long else Scenario()
    chosen = {k: v for k, v in vars(args).items() if k not in ("long", "profile") and v is not None}
    scenario = Scenario(**{**asdict(base), **chosen})
    report = run(scenario, progress=lambda m: print(m, file=sys.stderr, flush=True), profile=args.profile)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
