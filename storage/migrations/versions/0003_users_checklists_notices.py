"""Users and their credentials, intake checklists and notices to the one-stop system.

- ``users``: a person or system with one role (operator, officer, archivist, admin) and the
  agency codes it is scoped to (JSON list; empty: the whole deployment); ``password_hash``
  (argon2) for the web login, empty for a system that only uses tokens.
- ``api_tokens``: bearer tokens, stored only as their SHA-256; ``id`` is the token's public
  prefix, so a token can be named and revoked without being known.
- ``web_sessions``: a web login: the SHA-256 of the cookie's secret, its CSRF token, expiry.
- ``checklists``: a dossier's procedure and the papers it requires (set by the one-stop system).
- ``jobs.submitted_by``: the user who uploaded a document (an operator sees its own intake).
- ``notices``: the outbox of signed notices to the one-stop system (``SOHOA_WEBHOOK_URL``),
  one row per notice with its delivery attempts, so none is lost when the receiver is down.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("submitted_by", sa.String(100)))
        jobs.create_index("ix_jobs_submitted_by", ["submitted_by"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("agencies", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("disabled", sa.String(40)),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("last_used", sa.String(40)),
        sa.Column("revoked", sa.String(40)),
    )
    op.create_table(
        "web_sessions",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_table(
        "checklists",
        sa.Column("dossier", sa.String(100), primary_key=True),
        sa.Column("procedure", sa.String(100), nullable=False),
        sa.Column("required", sa.Text, nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("dossier", sa.String(100), nullable=False, index=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("delivered", sa.String(40)),
    )


def downgrade() -> None:
    for table in ("notices", "checklists", "web_sessions", "api_tokens", "users"):
        op.drop_table(table)
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_submitted_by")
        jobs.drop_column("submitted_by")
