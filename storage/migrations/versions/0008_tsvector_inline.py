"""PostgreSQL: each page's tsvector kept in the page's row, and the unused ``tsv_exact`` dropped.

A phrase is checked against each page holding its words (a citizen's name: ~5,000 of 100,000
pages), and a tsvector longer than ~2 kB (most pages) was kept out of line, in TOAST, read back
through its own index for each page. Kept in the row (STORAGE MAIN: compressed, moved out only
when the row would not fit in a block), it is read with the row. ``tsv_exact`` (the words with
their diacritics) was written for every page and never read: ranking reads the page text.

Only rows written from now on are laid out so; ``VACUUM FULL pages`` rewrites the others
(docs/deployment.md). Dropping the column frees its space at that rewrite too.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WORDS = r"regexp_replace(text, '[^[:alnum:]]+', ' ', 'g')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pages DROP COLUMN IF EXISTS tsv_exact")
        op.execute("ALTER TABLE pages ALTER COLUMN tsv SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pages ALTER COLUMN tsv SET STORAGE EXTENDED")
        op.execute("ALTER TABLE pages ADD COLUMN tsv_exact tsvector "
                   f"GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, {_WORDS})) STORED")
