"""Readiness checks behind ``/healthz``: database, migrations at head, Redis when configured."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text

from lms_plugin.extensions import db

#: Alembic revisions, shipped inside the package so a wheel install can upgrade its database.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

@cache
def migration_heads(directory: str = str(MIGRATIONS_DIR)) -> frozenset[str]:
    cfg = Config()
    cfg.set_main_option("script_location", directory)
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def check() -> tuple[bool, dict[str, Any]]:
    report: dict[str, Any] = {}
    ok = True
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
        report["database"] = "ok"
        at_head = current == migration_heads()
        report["migrations"] = "at head" if at_head else "pending: run lms-plugin db upgrade"
        ok = at_head
    except Exception as exc:  # any driver error means "not reachable" to an operator
        report["database"] = f"unreachable: {type(exc).__name__}"
        report["migrations"] = "unknown"
        ok = False
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url:
        from redis import Redis

        try:
            Redis.from_url(redis_url, socket_timeout=2).ping()
            report["redis"] = "ok"
        except Exception as exc:
            report["redis"] = f"unreachable: {type(exc).__name__}"
            ok = False
    else:
        report["redis"] = "not configured"
    # Reported, never a 503: a web node serves pages without a worker, and the balancer
    # must not take every node out because the (separate) worker stopped.
    try:
        from lms_plugin.jobs import heartbeat

        workers = heartbeat.status()
        report["worker"] = workers.describe()
        report["jobs_due"] = workers.due
    except Exception as exc:  # e.g. migrations pending: the table is not there yet
        report["worker"] = f"unknown: {type(exc).__name__}"
    finally:
        # A read-only probe leaves no transaction open: its shared locks would block DDL
        # (a migration) for as long as the caller keeps the session (seen in
        # test_migrations: the downgrade waited forever on the heartbeat table).
        db.session.rollback()
    report["status"] = "ok" if ok else "degraded"
    return ok, report
