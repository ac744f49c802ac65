"""Fixtures for the services the storage tests need: a real S3 server and PostgreSQL.

Import into tests/conftest.py with ``from tests.services import *``. Nothing is skipped:
when a service cannot be started or reached the tests that need it FAIL with the reason.

- ``rgw`` (session): a throw-away Ceph RADOS Gateway started by scripts/rgw-start.sh in a
  temporary directory on a free port (about 12 s), stopped at the end of the session.
  Set SOHOA_TEST_RGW_ENV to the rgw.env of a gateway that is already running to reuse it.
- ``s3_settings`` / ``s3_store``: a fresh bucket (object lock, versioning) per test.
- ``s3_env``: SOHOA_STORAGE=s3 and SOHOA_S3_* in the environment, for CLI tests.
- ``pg_url`` (session): a throw-away PostgreSQL database on 127.0.0.1:5432, dropped at the
  end (admin URL: SOHOA_TEST_PG_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
- ``pg_engine``: the migrated index on that database, emptied before each test.
- ``sqlite_engine``: a migrated SQLite index in the test's temporary directory.
- ``index_engine``: parametrised over sqlite and postgresql.
- ``any_store``: parametrised over LocalStore and S3Store (the shared contract suite).
- ``redis_url``: a Redis database (1-15 on 127.0.0.1:6379) claimed for this test alone, emptied;
  claims are keys in database 0, so parallel test processes (pytest -n) never share one.
- ``amqp_url``: a RabbitMQ virtual host of its own on 127.0.0.1:5672 (guest), deleted afterwards.
- ``free_port()`` and ``sohoa_serve(env, log)``: a real ``sohoa serve`` on a free port of 127.0.0.1.

Each pytest-xdist worker is a session of its own: it starts its own gateway and PKI, so an
outage test (``rgw_outage``) never stops the gateway another worker's tests are using.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
RGW_START = ROOT / "scripts" / "rgw-start.sh"
RGW_STOP = ROOT / "scripts" / "rgw-stop.sh"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

__all__ = ["rgw", "rgw_outage", "redis_url", "amqp_url", "s3_settings", "s3_store", "s3_env", "pg_url", "pg_engine", "sqlite_engine",
           "index_engine", "any_store", "new_bucket_name"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sohoa_serve(env: dict, log: Path, *, ready_within: float = 60, cwd: Path | None = None) -> Iterator[str]:
    """``sohoa serve`` with ``env`` on a free port, its output in ``log``: its base URL once
    ``/healthz`` answers (the test fails with the log if it stops or takes longer); stopped after."""
    import httpx

    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("sohoa")), "serve", "--port", str(port)],
                                   env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_within
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, Path(log).read_text()
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _read_env_file(path: Path) -> dict:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def new_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def redis_url():
    """A Redis database of this test's own, emptied (Redis 127.0.0.1:6379 is started with the machine)."""
    import redis

    claims = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 120
    try:
        while True:
            number = next((n for n in range(1, 16) if claims.set(f"sohoa-test-db:{n}", owner, nx=True, ex=1800)), None)
            if number is not None:
                break
            if time.monotonic() > deadline:
                pytest.fail("No free Redis database (1-15) for the test within 120 s", pytrace=False)
            time.sleep(0.5)
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis is not running on 127.0.0.1:6379: {error}", pytrace=False)
    url = f"redis://127.0.0.1:6379/{number}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        if claims.get(f"sohoa-test-db:{number}") == owner.encode():
            claims.delete(f"sohoa-test-db:{number}")


@pytest.fixture
def amqp_url():
    """A RabbitMQ virtual host of this test's own (127.0.0.1:5672, guest/guest, started with the
    machine), so no other test's workers take its tasks; deleted afterwards."""
    vhost = f"sohoa-test-{uuid.uuid4().hex[:12]}"
    ctl = ["rabbitmqctl", "-q"]
    try:
        subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
        subprocess.run([*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                       capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.fail(f"Cannot make a RabbitMQ virtual host with rabbitmqctl: {error}", pytrace=False)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """Connection settings of a running RGW: endpoint, access_key, secret_key, secure."""
    reuse = os.environ.get("SOHOA_TEST_RGW_ENV")
    if reuse:
        env = _read_env_file(Path(reuse))
        yield {"endpoint": env["SOHOA_S3_ENDPOINT"], "access_key": env["SOHOA_S3_ACCESS_KEY"],
               "secret_key": env["SOHOA_S3_SECRET_KEY"], "secure": False, "region": None,
               "state": env.get("RGW_STATE_DIR")}
        return
    state = tmp_path_factory.mktemp("rgw") / "cluster"
    try:
        done = subprocess.run([str(RGW_START), str(state)], capture_output=True, text=True, timeout=150,
                              env={**os.environ, "RGW_WATCH_PID": str(os.getpid())})
    except FileNotFoundError as error:
        pytest.fail(f"Cannot start Ceph RGW for the S3 tests: {error}", pytrace=False)
    except subprocess.TimeoutExpired:
        subprocess.run([str(RGW_STOP), str(state), "--keep"], capture_output=True)
        pytest.fail(f"Ceph RGW did not start within 150 s (logs in {state}/log)", pytrace=False)
    if done.returncode != 0:
        pytest.fail("Cannot start Ceph RGW for the S3 tests (needs: apt-get install -y --no-install-recommends "
                    f"ceph-mon ceph-osd radosgw ceph-common):\n{done.stdout}\n{done.stderr}", pytrace=False)
    env = _read_env_file(state / "rgw.env")
    try:
        yield {"endpoint": env["SOHOA_S3_ENDPOINT"], "access_key": env["SOHOA_S3_ACCESS_KEY"],
               "secret_key": env["SOHOA_S3_SECRET_KEY"], "secure": False, "region": None, "state": str(state)}
    finally:
        subprocess.run([str(RGW_STOP), str(state)], capture_output=True, timeout=60)


@pytest.fixture
def s3_settings(rgw) -> dict:
    """S3 connection parameters with a bucket of its own (created by S3Store.connect)."""
    return {**{k: v for k, v in rgw.items() if k != "state"}, "bucket": new_bucket_name()}


def rgw_outage(rgw: dict):
    """Stop the gateway's radosgw process (the S3 server goes away; the cluster keeps its data)
    and return a function that starts it again, as it was, and waits until it answers."""
    import time
    import urllib.request

    state = Path(rgw["state"])
    pid = int((state / "run" / "rgw.pidx").read_text())
    gateway = psutil.Process(pid)
    argv, cwd = gateway.cmdline(), gateway.cwd()
    gateway.kill()
    # not our child (rgw-start.sh started it in the background): gone, or a zombie nobody reaped yet
    def ended() -> bool:
        try:
            return gateway.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 30
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.1)

    def restart() -> None:
        with open(state / "log" / "rgw.out", "ab") as log:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (state / "run" / "rgw.pidx").write_text(str(proc.pid))
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{rgw['endpoint']}/", timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    return restart


@pytest.fixture
def s3_store(s3_settings):
    from storage.s3 import S3Store

    return S3Store.connect(**s3_settings)


@pytest.fixture
def s3_env(s3_settings, monkeypatch) -> dict:
    monkeypatch.setenv("SOHOA_STORAGE", "s3")
    monkeypatch.setenv("SOHOA_S3_ENDPOINT", s3_settings["endpoint"])
    monkeypatch.setenv("SOHOA_S3_ACCESS_KEY", s3_settings["access_key"])
    monkeypatch.setenv("SOHOA_S3_SECRET_KEY", s3_settings["secret_key"])
    monkeypatch.setenv("SOHOA_S3_BUCKET", s3_settings["bucket"])
    monkeypatch.setenv("SOHOA_S3_SECURE", "false")
    return s3_settings


@contextmanager
def throwaway_pg_database(prefix: str = "sohoa_test"):
    """URL of a new, empty PostgreSQL database, dropped (with the engines sohoa opened on it)
    when the block ends. Fails the test, naming the admin URL, when it cannot be created."""
    import sqlalchemy as sa

    from storage import db

    admin_url = db.database_url(os.environ.get("SOHOA_TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\''))
    except Exception as error:
        admin.dispose()
        pytest.fail(f"Cannot create a PostgreSQL test database through {admin_url}: {error}", pytrace=False)
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        for cached in [k for k in db._engines if name in k]:
            db._engines.pop(cached).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """URL of a throw-away PostgreSQL database, dropped at the end of the session."""
    with throwaway_pg_database() as url:
        yield url


def _emptied(engine):
    import sqlalchemy as sa

    from storage import index

    with engine.begin() as conn:
        for table in (index.pages, index.events, index.documents, index.dossiers):
            conn.execute(table.delete())
        for table in ("job_pages", "jobs", "dossier_locks"):  # the access log is append-only: it stays
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return engine


@pytest.fixture(scope="session")
def _pg_index(pg_url):
    from storage.index import open_index

    engine = open_index(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(_pg_index):
    return _emptied(_pg_index)


@pytest.fixture
def sqlite_engine(tmp_path):
    from storage.index import open_index

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def index_engine(request):
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        from storage.local import LocalStore

        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")
