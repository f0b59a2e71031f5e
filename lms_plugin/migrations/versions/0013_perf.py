"""perf: trigram index for the people search (PostgreSQL only)

Revision ID: 0013_perf
Revises: 0012_worker_run
Create Date: 2026-11-30 01:35:00

The people search (``accounts.services.list_users``) filters on ONE expression,
``accounts.services.people_search_text()``, with ``LIKE '%word%'`` per word. A GIN index with
``gin_trgm_ops`` (pg_trgm) on exactly that expression serves such substring searches; the
text below must stay the expression's SQL as SQLAlchemy renders it, or the planner cannot
match it (``tests/test_migrations.py`` checks with EXPLAIN that it does).

The models cannot declare this index (an expression with an operator class, PostgreSQL
only), so the model/migration comparison skips it by name
(``lms_plugin.db.MIGRATION_ONLY_INDEXES``). SQLite has no trigram index; its search
scans, which is fine at the sizes SQLite serves.

pg_trgm is a trusted extension since PostgreSQL 13: the database owner may create it.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013_perf'
down_revision = "0012_worker_run"
branch_labels = None
depends_on = None

INDEX = "ix_user_account_search_trgm"
SEARCH_TEXT = (
    "lower(coalesce(user_account.name, '') || ' ' || coalesce(user_account.email, '')"
    " || ' ' || coalesce(user_account.job_role, '') || ' '"
    " || coalesce(user_account.department, '') || ' '"
    " || coalesce(user_account.facility, ''))"
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX {INDEX} ON user_account USING gin ({SEARCH_TEXT} gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    # The extension stays: other database objects may use it, and it is harmless.
