"""The eth (Ð, ð), which legacy VNI and TCVN3 conversions put for Đ, folds to D like Đ.

storage.index.fold maps it since 2026-12-05 (PostgreSQL's unaccent always did); a page indexed
before keeps the eth in its folded text, which SQLite's full-text index reads: rewritten here,
one character for one, as fold writes it.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE pages SET text_folded = replace(replace(text_folded, 'Ð', 'D'), 'ð', 'd') "
               "WHERE text_folded LIKE '%Ð%' OR text_folded LIKE '%ð%'")


def downgrade() -> None:
    pass  # the old folding is not wanted back: the rewritten pages fold as newly indexed ones do
