"""Migrations build the schema the models describe, from an empty database, with one head."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from lms_plugin import create_app, health
from lms_plugin.db import include_object
from lms_plugin.extensions import db


@pytest.fixture
def empty_database_url(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    base = make_url(url).set(drivername="postgresql+psycopg")
    name = f"lms_migr_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_exactly_one_head():
    assert len(health.migration_heads()) == 1


def test_upgrade_from_empty_matches_models_and_downgrades_cleanly(empty_database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x" * 40})
    with app.app_context():
        upgrade(directory=str(health.MIGRATIONS_DIR))
        with db.engine.connect() as conn:
            # include_object skips only the reviewed migration-only indexes (by name).
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": include_object})
            diff = compare_metadata(context, db.metadata)
            assert diff == [], f"models and migrations disagree: {diff}"
            assert set(context.get_current_heads()) == set(health.migration_heads())
        ok, report = health.check()
        assert ok and report["migrations"] == "at head"

        downgrade(directory=str(health.MIGRATIONS_DIR), revision="base")
        tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        db.engine.dispose()


def test_people_search_uses_the_trigram_index_and_the_comparison_skips_only_it(
        empty_database_url):
    """Migration 0012: on PostgreSQL a GIN trigram index on exactly the people search's
    expression, which the planner uses for the search's LIKE (issue 18 item 5); SQLite has
    none. The model/migration comparison skips that one index by name, and nothing else."""
    from sqlalchemy import bindparam, func, insert, select

    from lms_plugin.accounts.models import Organisation, User
    from lms_plugin.accounts.services import people_search_text

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x" * 40})
    with app.app_context():
        upgrade(directory=str(health.MIGRATIONS_DIR))
        postgres = db.engine.dialect.name == "postgresql"
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("user_account")}
        assert ("ix_user_account_search_trgm" in indexes) is postgres
        with db.engine.begin() as conn:
            org = conn.execute(insert(Organisation).values(slug="health", name="Health")
                               .returning(Organisation.id)).scalar_one()
            conn.execute(insert(User), [
                {"organisation_id": org, "name": f"Person {i}", "email": f"p{i}@x.example",
                 "department": "ICU" if i % 50 == 0 else "Ward", "session_token": str(i)}
                for i in range(2000)])
            search = (select(func.count()).select_from(User)
                      .where(User.organisation_id == org,
                             people_search_text().like("%icu%", escape="\\")))
            assert conn.scalar(search) == 40
            if postgres:
                conn.execute(text("ANALYZE user_account"))
                # Only a bitmap scan is left to the planner: it can use an index only when
                # the index's expression is the query's.
                for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
                    conn.execute(text(f"SET LOCAL {setting} = off"))
                # The search's own expression, compiled as the app sends it (no organisation
                # filter here: that has an index of its own).
                searched = select(func.count()).select_from(User).where(
                    people_search_text().like(bindparam("word"), escape="\\"))
                sql = str(searched.compile(dialect=conn.dialect))
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                    "EXPLAIN " + sql, {"word": "%icu%"}))
                assert "ix_user_account_search_trgm" in plan, plan
            # The exception is narrow: any other index the models do not declare is reported.
            conn.execute(text("CREATE INDEX ix_user_account_stray ON user_account (email)"))
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": include_object})
            diff = compare_metadata(context, db.metadata)
            assert [(d[0], d[1].name) for d in diff] == [("remove_index",
                                                          "ix_user_account_stray")], diff
        downgrade(directory=str(health.MIGRATIONS_DIR), revision="base")
        db.engine.dispose()
