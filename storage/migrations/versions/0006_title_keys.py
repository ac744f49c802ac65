"""Titles are searched: dossiers and documents keep their title folded (``storage.index.title_key``).

The titles indexed before get their key here, computed as the index computes it, so a dossier
indexed before this version is found by its title without a ``sohoa reindex``.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    from storage.index import title_key

    connection = op.get_bind()
    for table, key in (("dossiers", "code"), ("documents", "doc_id")):
        if "title_folded" not in {c["name"] for c in sa.inspect(connection).get_columns(table)}:
            with op.batch_alter_table(table) as altered:
                altered.add_column(sa.Column("title_folded", sa.Text))
        rows = connection.execute(sa.text(f"SELECT {key}, title FROM {table} WHERE title IS NOT NULL")).all()
        for start in range(0, len(rows), _BATCH):
            connection.execute(sa.text(f"UPDATE {table} SET title_folded = :folded WHERE {key} = :key"),
                               [{"key": k, "folded": title_key(t)} for k, t in rows[start:start + _BATCH]])


def downgrade() -> None:
    for table in ("dossiers", "documents"):
        with op.batch_alter_table(table) as altered:
            altered.drop_column("title_folded")
