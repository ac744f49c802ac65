"""Search by dossier-code prefix reads the dossier's pages from an index (issue 17).

PostgreSQL: an index on pages.dossier_code in the "C" collation, so a prefix is a range of
codes in byte order whatever the database's collation (storage.index gives the range next
to the exact prefix test). SQLite compares in byte order already and uses
ix_pages_dossier_code.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_pages_dossier_code_c ON pages (dossier_code COLLATE "C")')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_pages_dossier_code_c")
