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
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
            assert diff == [], f"models and migrations disagree: {diff}"
            assert set(context.get_current_heads()) == set(health.migration_heads())
        ok, report = health.check()
        assert ok and report["migrations"] == "at head"

        downgrade(directory=str(health.MIGRATIONS_DIR), revision="base")
        tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        db.engine.dispose()
