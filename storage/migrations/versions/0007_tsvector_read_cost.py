"""PostgreSQL: what reading a page's tsvector costs, told to the planner (``storage.index``).

The planner counts a full-text match as one cheap operator, whereas each page's tsvector is read
back from its TOAST storage: it read the pages newest first, 20 for each one holding a query's
words when 5 % of pages hold them, where the word index names those pages (a citizen's name:
300-700 ms at 100,000 pages). ``sohoa_tsvector_read`` is always true; written beside a match, it
gives each page read its cost, so the word index is chosen when it names few enough pages.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# about 2.5 page reads (cpu_operator_cost 0.0025 each); the choice changed little from 300 to 3,000
# (bench.search, 100,000 pages)
_COST = 1000


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION sohoa_tsvector_read(integer) RETURNS boolean LANGUAGE plpgsql "
                   f"IMMUTABLE STRICT PARALLEL SAFE COST {_COST} AS $$BEGIN RETURN true; END$$")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS sohoa_tsvector_read(integer)")
