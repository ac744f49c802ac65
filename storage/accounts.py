"""Users, their API tokens and web sessions, and dossier checklists, in the shared database.

Secrets are never stored: a token or a session cookie is kept as its SHA-256 and a password
as the hash the caller made (argon2, ``pipeline.access``). Rows are plain dicts.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(100), primary_key=True), sa.Column("role", sa.String(20)),
    sa.Column("agencies", sa.Text), sa.Column("password_hash", sa.Text), sa.Column("created", sa.String(40)),
    sa.Column("disabled", sa.String(40)),
)
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(16), primary_key=True), sa.Column("user_name", sa.String(100)),
    sa.Column("sha256", sa.String(64)), sa.Column("created", sa.String(40)), sa.Column("last_used", sa.String(40)),
    sa.Column("revoked", sa.String(40)),
)
web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True), sa.Column("user_name", sa.String(100)),
    sa.Column("csrf", sa.String(64)), sa.Column("created", sa.String(40)), sa.Column("expires", sa.Float),
)
checklists = sa.Table(
    "checklists", metadata,
    sa.Column("dossier", sa.String(100), primary_key=True), sa.Column("procedure", sa.String(100)),
    sa.Column("required", sa.Text), sa.Column("updated", sa.String(40)), sa.Column("updated_by", sa.String(100)),
)


def _user(row) -> dict | None:
    if row is None:
        return None
    user = row._asdict()
    user["agencies"] = tuple(json.loads(user["agencies"]))
    return user


def add_user(engine: Engine, name: str, role: str, agencies: tuple[str, ...], password_hash: str | None,
             now: str) -> bool:
    """Add a user; False when the name is taken."""
    try:
        with engine.begin() as conn:
            conn.execute(users.insert().values(name=name, role=role, agencies=json.dumps(list(agencies)),
                                               password_hash=password_hash, created=now))
        return True
    except sa.exc.IntegrityError:
        return False


def set_password(engine: Engine, name: str, password_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.name == name).values(password_hash=password_hash))


def get_user(engine: Engine, name: str) -> dict | None:
    with engine.connect() as conn:
        return _user(conn.execute(sa.select(users).where(users.c.name == name)).first())


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name))]


def add_token(engine: Engine, token_id: str, user: str, sha256: str, now: str) -> None:
    with engine.begin() as conn:
        conn.execute(api_tokens.insert().values(id=token_id, user_name=user, sha256=sha256, created=now))


def user_by_token(engine: Engine, sha256: str, now: str) -> dict | None:
    """The enabled user a live token belongs to (and note the token's use, to the minute: a
    token used by many requests at once is not one row every request waits to update)."""
    with engine.connect() as conn:
        token = conn.execute(sa.select(api_tokens).where(api_tokens.c.sha256 == sha256,
                                                         api_tokens.c.revoked.is_(None))).first()
        if token is None:
            return None
        user = _user(conn.execute(sa.select(users).where(users.c.name == token.user_name)).first())
    if (token.last_used or "")[:16] != now[:16]:
        with engine.begin() as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.id == token.id).values(last_used=now))
    return user if user and not user["disabled"] else None


def set_disabled(engine: Engine, name: str, when: str | None) -> tuple[bool, int]:
    """Lock the user (``when``: since when), its live tokens revoked and its web sessions ended
    with it (a lost machine's credentials must not come back when the user is let in again), or
    unlock it (None); (whether there is such a user, how many tokens were revoked)."""
    with engine.begin() as conn:
        found = conn.execute(users.update().where(users.c.name == name).values(disabled=when)).rowcount == 1
        revoked = 0
        if found and when is not None:
            revoked = conn.execute(api_tokens.update().where(api_tokens.c.user_name == name,
                                                             api_tokens.c.revoked.is_(None))
                                   .values(revoked=when)).rowcount
            conn.execute(web_sessions.delete().where(web_sessions.c.user_name == name))
        return found, revoked


def list_tokens(engine: Engine, user: str | None = None) -> list[dict]:
    """Every token (of ``user`` when given), oldest first: id, user, created, last used, revoked;
    never its hash."""
    query = sa.select(api_tokens.c.id, api_tokens.c.user_name, api_tokens.c.created, api_tokens.c.last_used,
                      api_tokens.c.revoked).order_by(api_tokens.c.created, api_tokens.c.id)
    if user is not None:
        query = query.where(api_tokens.c.user_name == user)
    with engine.connect() as conn:
        return [{"id": r.id, "user": r.user_name, "created": r.created, "lastUsed": r.last_used, "revoked": r.revoked}
                for r in conn.execute(query)]


def revoke_token(engine: Engine, token_id: str, now: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(api_tokens.update().where(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(None))
                            .values(revoked=now)).rowcount == 1


def add_session(engine: Engine, sha256: str, user: str, csrf: str, now: str, expires: float) -> None:
    with engine.begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.expires < expires - 60 * 86400))
        conn.execute(web_sessions.insert().values(sha256=sha256, user_name=user, csrf=csrf, created=now,
                                                  expires=expires))


def session(engine: Engine, sha256: str, now: float) -> tuple[dict, str, float, str] | None:
    """(user, csrf token, expiry as a Unix time, when it began) of a live session."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(web_sessions).where(web_sessions.c.sha256 == sha256,
                                                         web_sessions.c.expires > now)).first()
        if row is None:
            return None
        user = _user(conn.execute(sa.select(users).where(users.c.name == row.user_name)).first())
    return (user, row.csrf, row.expires, row.created) if user and not user["disabled"] else None


def extend_session(engine: Engine, sha256: str, expires: float) -> None:
    with engine.begin() as conn:
        conn.execute(web_sessions.update().where(web_sessions.c.sha256 == sha256, web_sessions.c.expires < expires)
                     .values(expires=expires))


def end_session(engine: Engine, sha256: str) -> None:
    with engine.begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.sha256 == sha256))


def set_checklist(engine: Engine, dossier: str, procedure: str, required: list[dict], now: str, by: str) -> None:
    values = dict(procedure=procedure, required=json.dumps(required, ensure_ascii=False), updated=now, updated_by=by)
    with engine.begin() as conn:
        if conn.execute(checklists.update().where(checklists.c.dossier == dossier).values(**values)).rowcount == 0:
            conn.execute(checklists.insert().values(dossier=dossier, **values))


def get_checklist(engine: Engine, dossier: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(checklists).where(checklists.c.dossier == dossier)).first()
    if row is None:
        return None
    found = row._asdict()
    found["required"] = json.loads(found["required"])
    return found
