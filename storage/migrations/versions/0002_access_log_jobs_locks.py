"""The access log, jobs and dossier locks: what many workers on many machines share.

- ``access_log``: every creation, change, access and failure, append-only and hash-chained
  (each row carries the SHA-256 of the row before; ``prev_sha256`` is unique, so two writers
  can never fork the chain); triggers refuse UPDATE and DELETE.
- ``jobs`` and ``job_pages``: a document being converted, page by page, so any machine can
  say how far it got and a failed job can be retried without redoing finished pages.
- ``dossier_locks``: on SQLite (one machine), the lease that lets one writer change a
  dossier's manifest; PostgreSQL uses advisory locks instead and leaves it empty.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("dossier", sa.String(100), index=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("dossier", sa.String(100), nullable=False, index=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("pages_total", sa.Integer, nullable=False),
        sa.Column("doc_id", sa.String(120)),
        sa.Column("error", sa.Text),
        sa.Column("batch", sa.String(64), index=True),
        sa.Column("source", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
    )
    op.create_table(
        "job_pages",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("result_key", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("worker", sa.String(200)),
        sa.Column("updated", sa.String(40), nullable=False),
    )
    op.create_table(
        "dossier_locks",
        sa.Column("code", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired", sa.Float, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER access_log_no_{event.lower()} BEFORE {event} ON access_log "
                       "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION sohoa_access_log_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION 'access_log is append-only'; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
                   "FOR EACH ROW EXECUTE FUNCTION sohoa_access_log_append_only()")
        op.execute("CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION sohoa_access_log_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS access_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS access_log_no_delete")
    for table in ("dossier_locks", "job_pages", "jobs", "access_log"):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS sohoa_access_log_append_only() CASCADE")
