"""Dossiers, documents, pages with their text, events; full-text search per database.

SQLite: an FTS5 table over pages(text, text_folded), kept in step by triggers; the
tokenizer keeps diacritics, and text_folded holds the diacritic-free copy, so one index
answers both the folded match and the exact-diacritic ranking.
PostgreSQL: generated tsvector columns, 'simple' for exact words and 'sohoa_unaccent'
(simple + unaccent, which folds đ to d) for folded words, with a GIN index.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FTS_CONFIG = "sohoa_unaccent"


def upgrade() -> None:
    op.create_table(
        "dossiers",
        sa.Column("code", sa.String(100), primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("maintenance", sa.String(8)),
        sa.Column("state", sa.String(32), nullable=False, server_default="stored"),
        sa.Column("total_doc", sa.Integer),
        sa.Column("number_of_page", sa.Integer),
        sa.Column("created", sa.String(40)),
        sa.Column("updated", sa.String(40)),
        sa.Column("manifest_sha256", sa.String(64)),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("doc_id", sa.String(120), primary_key=True),
        sa.Column("dossier_code", sa.String(100), sa.ForeignKey("dossiers.code", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("sequence", sa.Integer),
        sa.Column("title", sa.Text),
        sa.Column("number_of_page", sa.Integer),
        sa.Column("created", sa.String(40)),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("pdf_key", sa.Text),
        sa.Column("pdf_sha256", sa.String(64)),
        sa.Column("text_key", sa.Text),
        sa.Column("text_sha256", sa.String(64)),
    )
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dossier_code", sa.String(100), sa.ForeignKey("dossiers.code", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("doc_id", sa.String(120), sa.ForeignKey("documents.doc_id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_folded", sa.Text, nullable=False),
        sa.UniqueConstraint("doc_id", "number", name="uq_pages_doc_number"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dossier_code", sa.String(100), sa.ForeignKey("dossiers.code", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("doc_id", sa.String(120)),
        sa.Column("at", sa.String(40)),
        sa.Column("type", sa.String(40)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("detail", sa.Text),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE pages_fts USING fts5(text, text_folded, content='pages', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 0')")
        op.execute(
            "CREATE TRIGGER pages_fts_insert AFTER INSERT ON pages BEGIN "
            "INSERT INTO pages_fts(rowid, text, text_folded) VALUES (new.id, new.text, new.text_folded); END")
        op.execute(
            "CREATE TRIGGER pages_fts_delete AFTER DELETE ON pages BEGIN "
            "INSERT INTO pages_fts(pages_fts, rowid, text, text_folded) "
            "VALUES ('delete', old.id, old.text, old.text_folded); END")
        op.execute(
            "CREATE TRIGGER pages_fts_update AFTER UPDATE ON pages BEGIN "
            "INSERT INTO pages_fts(pages_fts, rowid, text, text_folded) "
            "VALUES ('delete', old.id, old.text, old.text_folded); "
            "INSERT INTO pages_fts(rowid, text, text_folded) VALUES (new.id, new.text, new.text_folded); END")
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = '{FTS_CONFIG}') THEN "
            f"CREATE TEXT SEARCH CONFIGURATION {FTS_CONFIG} (COPY = simple); "
            f"ALTER TEXT SEARCH CONFIGURATION {FTS_CONFIG} "
            "ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part, "
            "numword, numhword, hword_numpart "
            "WITH unaccent, simple; END IF; END $$")
        # Every run of non-alphanumerics becomes a space first, so syllables are the tokens
        # as in SQLite (PostgreSQL's parser would read "15/2020/NĐ-CP" as a file path).
        words = r"regexp_replace(text, '[^[:alnum:]]+', ' ', 'g')"
        op.execute("ALTER TABLE pages ADD COLUMN tsv_exact tsvector "
                   f"GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, {words})) STORED")
        op.execute("ALTER TABLE pages ADD COLUMN tsv tsvector "
                   f"GENERATED ALWAYS AS (to_tsvector('{FTS_CONFIG}'::regconfig, {words})) STORED")
        op.execute("CREATE INDEX ix_pages_tsv ON pages USING gin (tsv)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("pages_fts_insert", "pages_fts_delete", "pages_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS pages_fts")
    for table in ("events", "pages", "documents", "dossiers"):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {FTS_CONFIG}")
