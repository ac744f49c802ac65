"""Jobs in the shared database: one row per document being converted, one per page.

Any machine can read how far a job got; the page rows make a retry redo only the pages that
failed, and make a page finished twice (a redelivered task) count once.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True), sa.Column("kind", sa.String(20)),
    sa.Column("dossier", sa.String(100)), sa.Column("title", sa.Text), sa.Column("state", sa.String(20)),
    sa.Column("request", sa.Text), sa.Column("input_sha256", sa.String(64)), sa.Column("pages_total", sa.Integer),
    sa.Column("doc_id", sa.String(120)), sa.Column("error", sa.Text), sa.Column("batch", sa.String(64)),
    sa.Column("source", sa.Text), sa.Column("attempts", sa.Integer), sa.Column("created", sa.String(40)),
    sa.Column("updated", sa.String(40)), sa.Column("submitted_by", sa.String(100)),
)
job_pages = sa.Table(
    "job_pages", metadata,
    sa.Column("job_id", sa.String(32), primary_key=True), sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(20)), sa.Column("result_key", sa.String(64)), sa.Column("error", sa.Text),
    sa.Column("worker", sa.String(200)), sa.Column("updated", sa.String(40)),
)
ACTIVE = ("queued", "running", "finishing")
# a failed job given up (``sohoa discard``, or its dossier disposed of): never run again
DISCARDED = "discarded"
FINAL = ("done", "failed", DISCARDED)  # no worker moves a job out of these by itself
_CHUNK = 500  # job ids per query


# built once: an upload runs these, and building a statement costs more than running it here
_ACTIVE_FOR_FILES = (sa.select(jobs).where(jobs.c.dossier == sa.bindparam("dossier"),
                                          jobs.c.input_sha256 == sa.bindparam("input_sha256"),
                                          jobs.c.state.in_(ACTIVE))
                     .order_by(jobs.c.created, jobs.c.id).limit(1))
_PAGES_SETTLED = (sa.select(sa.func.count().filter(job_pages.c.state == "done"),
                            sa.func.count().filter(job_pages.c.state == "failed"))
                  .where(job_pages.c.job_id == sa.bindparam("job_id")))
_PAGES_TO_DO = (sa.select(job_pages.c.number).where(job_pages.c.job_id == sa.bindparam("job_id"),
                                                     job_pages.c.state != "done")
                .order_by(job_pages.c.number))


def create(engine: Engine, job_id: str, *, kind: str, dossier: str, title: str, request: dict, input_sha256: str,
           pages: int, now: str, batch: str | None = None, source: str | None = None,
           submitted_by: str | None = None) -> tuple[dict, bool]:
    """The job for these files: (a new queued job's row, True), or (the row of the job already
    converting the same files into the same dossier, False), looked up and written in one
    transaction. The rows are as ``find`` gives them."""
    with engine.begin() as conn:
        active = conn.execute(_ACTIVE_FOR_FILES, {"dossier": dossier, "input_sha256": input_sha256}).first()
        if active is not None:
            done, failed = conn.execute(_PAGES_SETTLED, {"job_id": active.id}).one()
            return _listed(active, done, failed), False
        row = dict(id=job_id, kind=kind, dossier=dossier, title=title, state="queued",
                   request=json.dumps(request, ensure_ascii=False), input_sha256=input_sha256, pages_total=pages,
                   doc_id=None, error=None, batch=batch, source=source, attempts=1, created=now, updated=now,
                   submitted_by=submitted_by)
        conn.execute(jobs.insert(), row)
        if pages:
            conn.execute(job_pages.insert(), [dict(job_id=job_id, number=n, state="queued", updated=now)
                                              for n in range(1, pages + 1)])
    return {**row, "request": request, "pages_done": 0, "pages_failed": 0}, True


def pages_to_do(engine: Engine, job_id: str) -> list[int]:
    """The numbers of the job's pages not done yet."""
    with engine.connect() as conn:
        return list(conn.execute(_PAGES_TO_DO, {"job_id": job_id}).scalars())


def get(engine: Engine, job_id: str) -> dict | None:
    """The job with its pages' states (``pages``: number -> {state, result_key, error})."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            return None
        pages = conn.execute(sa.select(job_pages).where(job_pages.c.job_id == job_id)
                             .order_by(job_pages.c.number)).all()
    return _job(row, pages)


def _job(row, pages) -> dict:
    job = row._asdict()
    job["request"] = json.loads(job["request"])
    job["pages"] = [p._asdict() for p in pages]
    job["pages_done"] = sum(p.state == "done" for p in pages)
    job["pages_failed"] = sum(p.state == "failed" for p in pages)
    return job


def find(engine: Engine, *, dossier: str | None = None, batch: str | None = None,
         input_sha256: str | None = None, states: tuple[str, ...] | None = None,
         ids: list[str] | None = None, submitted_by: str | None = None, newest: int | None = None,
         source: str | None = None, agencies: tuple[str, ...] = (), skip: int = 0) -> list[dict]:
    """Jobs matching every filter given, oldest first, without their page rows (with ``ids``,
    in chunks, so that no query holds more parameters than the database takes; with
    ``newest``, only that many of the latest, ``skip`` newer ones left out). ``agencies``: only
    the dossiers whose code is one of them followed by '.' or '-' (none: every dossier)."""
    if ids is not None and len(ids) > _CHUNK:
        found = sorted((job for start in range(0, len(ids), _CHUNK)
                        for job in find(engine, dossier=dossier, batch=batch, input_sha256=input_sha256,
                                        states=states, ids=ids[start:start + _CHUNK], submitted_by=submitted_by,
                                        newest=None if newest is None else newest + skip, source=source,
                                        agencies=agencies)),
                       key=lambda job: (job["created"], job["id"]))
        return found if newest is None else found[max(0, len(found) - skip - newest):len(found) - skip]
    order = (jobs.c.created.desc(), jobs.c.id.desc()) if newest is not None else (jobs.c.created, jobs.c.id)
    query = sa.select(jobs).order_by(*order).limit(newest).offset(skip or None)
    if agencies:
        query = query.where(sa.or_(*(sa.func.substr(jobs.c.dossier, 1, len(a) + 1).in_([a + ".", a + "-"])
                                     for a in agencies)))
    if ids is not None:
        query = query.where(jobs.c.id.in_(ids))
    for column, value in ((jobs.c.dossier, dossier), (jobs.c.batch, batch), (jobs.c.input_sha256, input_sha256),
                          (jobs.c.submitted_by, submitted_by), (jobs.c.source, source)):
        if value is not None:
            query = query.where(column == value)
    if states is not None:
        query = query.where(jobs.c.state.in_(states))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        counts = {}
        if rows:
            for job_id, state, n in conn.execute(
                    sa.select(job_pages.c.job_id, job_pages.c.state, sa.func.count())
                    .where(job_pages.c.job_id.in_([r.id for r in rows]))
                    .group_by(job_pages.c.job_id, job_pages.c.state)):
                counts.setdefault(job_id, {})[state] = n
    found = [_listed(row, counts.get(row.id, {}).get("done", 0), counts.get(row.id, {}).get("failed", 0))
             for row in rows]
    return found[::-1] if newest is not None else found


def requests_of(engine: Engine, dossier: str, states: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(job id, request) of the dossier's jobs in ``states``, oldest first; no page rows."""
    query = (sa.select(jobs.c.id, jobs.c.request).where(jobs.c.dossier == dossier, jobs.c.state.in_(states))
             .order_by(jobs.c.created, jobs.c.id))
    with engine.connect() as conn:
        return [(row.id, json.loads(row.request)) for row in conn.execute(query)]


def _listed(row, done: int, failed: int) -> dict:
    """A job row as ``find`` gives it: its request decoded, its pages counted, no page rows."""
    return {**row._asdict(), "request": json.loads(row.request), "pages_done": done, "pages_failed": failed}


def page_settled(engine: Engine, job_id: str, number: int, *, state: str, now: str, result_key: str | None = None,
                 error: str | None = None, worker: str | None = None) -> tuple[int, int, int]:
    """Record a page's outcome (again, harmlessly, for a redelivered task); returns the job's
    (pages done, pages failed, pages in all)."""
    with engine.begin() as conn:
        conn.execute(job_pages.update().where(job_pages.c.job_id == job_id, job_pages.c.number == number)
                     .values(state=state, result_key=result_key, error=error, worker=worker, updated=now))
        conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.state == "queued")
                     .values(state="running", updated=now))
        counts = dict(conn.execute(sa.select(job_pages.c.state, sa.func.count()).where(job_pages.c.job_id == job_id)
                                   .group_by(job_pages.c.state)).all())
        total = conn.execute(sa.select(jobs.c.pages_total).where(jobs.c.id == job_id)).scalar()
    return counts.get("done", 0), counts.get("failed", 0), total or 0


def set_state(engine: Engine, job_id: str, state: str, *, now: str, only_from: tuple[str, ...] | None = None,
              **values) -> bool:
    """Move the job to ``state`` (from one of ``only_from`` when given); True if it moved."""
    query = jobs.update().where(jobs.c.id == job_id)
    if only_from is not None:
        query = query.where(jobs.c.state.in_(only_from))
    with engine.begin() as conn:
        return conn.execute(query.values(state=state, updated=now, **values)).rowcount == 1


def reopen(engine: Engine, job_id: str, *, now: str, only_from: tuple[str, ...],
           kind: str | None = None) -> list[int] | None:
    """Make a failed or stalled job (in one of ``only_from``) run again: its failed pages queued,
    its finished pages kept, its kind changed to ``kind`` when given; returns the page numbers
    still to do, None when the job was in no state of ``only_from``."""
    with engine.begin() as conn:
        moved = conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.state.in_(only_from))
                             .values(state="queued", error=None, attempts=jobs.c.attempts + 1, updated=now,
                                     **({"kind": kind} if kind else {})))
        if moved.rowcount != 1:
            return None
        # the pages to do again are no process's yet: the one that read them last may be gone
        conn.execute(job_pages.update().where(job_pages.c.job_id == job_id, job_pages.c.state != "done")
                     .values(state="queued", error=None, worker=None, updated=now))
        return [n for (n,) in conn.execute(sa.select(job_pages.c.number).where(
            job_pages.c.job_id == job_id, job_pages.c.state != "done").order_by(job_pages.c.number))]


def hand_to(engine: Engine, job_id: str, worker: str, *, now: str) -> None:
    """Mark the job's pages no process has taken as waiting in ``worker``'s own queue (an embedded
    server runs its uploads one after the other, in its own process)."""
    with engine.begin() as conn:
        conn.execute(job_pages.update().where(job_pages.c.job_id == job_id, job_pages.c.state == "queued",
                                              job_pages.c.worker.is_(None)).values(worker=worker, updated=now))


def count_by_state(engine: Engine) -> dict[str, int]:
    """How many jobs are in each state (for the metrics page)."""
    with engine.connect() as conn:
        return {state: n for state, n in conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state))}


def results_shared(engine: Engine, result_keys) -> set[str]:
    """Of these page results (cache keys), those that pages of two or more open jobs name: the same
    file in several documents shares them, and the first document stored must not clear them
    from under the others."""
    wanted = sorted({k for k in result_keys if k})
    if not wanted:
        return set()
    with engine.connect() as conn:
        return set(conn.execute(
            sa.select(job_pages.c.result_key).join(jobs, jobs.c.id == job_pages.c.job_id)
            .where(jobs.c.state.in_(ACTIVE), job_pages.c.result_key.in_(wanted))
            .group_by(job_pages.c.result_key).having(sa.func.count(sa.distinct(job_pages.c.job_id)) > 1)).scalars())


def quiet_since(engine: Engine, states: tuple[str, ...] = ACTIVE) -> dict[str, str]:
    """For each of these states, when the job in it that has moved least recently last moved (its
    state or one of its pages changed): ISO times as the rows hold them (the metrics page; a time
    that keeps falling behind is a job nobody takes, a worker gone)."""
    open_ids = sa.select(jobs.c.id).where(jobs.c.state.in_(states))
    pages_moved = (sa.select(job_pages.c.job_id, sa.func.max(job_pages.c.updated).label("moved"))
                   .where(job_pages.c.job_id.in_(open_ids)).group_by(job_pages.c.job_id).subquery())
    moved = sa.case((pages_moved.c.moved > jobs.c.updated, pages_moved.c.moved), else_=jobs.c.updated)
    with engine.connect() as conn:
        return {state: at for state, at in conn.execute(
            sa.select(jobs.c.state, sa.func.min(moved)).select_from(
                jobs.outerjoin(pages_moved, pages_moved.c.job_id == jobs.c.id))
            .where(jobs.c.state.in_(states)).group_by(jobs.c.state)) if at}


def dossiers_done(engine: Engine) -> list[str]:
    """The dossiers a job committed a document to: each must be in the store, whatever the
    search index (rebuilt from the store) still knows."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(jobs.c.dossier).where(jobs.c.state == "done").distinct()).scalars())
