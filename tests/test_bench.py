"""The benchmarks keep running: each is started at a tiny size, as a new user would run it.

A benchmark nobody runs rots silently (bench_scale.py and bench_launch.py both stopped at
their first step when organisations became explicit, issue 12 item 1, and nothing noticed).
These runs check that a script works end to end, not its figures: figures are read from
``bench/README.md`` runs at full size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("TEST_DATABASE_URL", "").strip()


@pytest.mark.skipif(not URL.startswith("postgresql"),
                    reason="bench_scale.py generates with PostgreSQL's generate_series; "
                           "CI's PostgreSQL configurations run this")
def test_bench_scale_runs_end_to_end_at_a_tiny_scale():
    server = make_url(URL).set(database="postgres").render_as_string(hide_password=False)
    before = _bench_databases(server)
    done = subprocess.run(
        [sys.executable, "bench/bench_scale.py", "--scale", "0.002", "--repeat", "1",
         "--database-url", server],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    measured = {line.split(" | ")[0][2:] for line in table}
    for name in ("baseline: SELECT 1", "/admin/users?role=author", "/home (learner, 70 modules)",
                 "outbox prune: 20 batches"):
        assert name in measured, measured
    created = [line for line in done.stdout.splitlines() if "generating at scale" in line]
    assert created, done.stdout[-2000:]
    name = created[0].rsplit(" ", 1)[-1]
    assert name.startswith("lms_bench_scale_") and name not in before
    assert name not in _bench_databases(server)  # dropped afterwards


def _bench_databases(server: str) -> set[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(server)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'lms_bench_scale_%'")))
    finally:
        engine.dispose()


@pytest.mark.skipif(not URL.startswith("postgresql"),
                    reason="bench_launch.py serves the tool with gunicorn on PostgreSQL; "
                           "CI's PostgreSQL configurations run this")
def test_bench_launch_runs_end_to_end_for_two_seconds():
    server = make_url(URL).set(database="postgres").render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "bench/bench_launch.py", "--seconds", "2", "--workers", "1",
         "--clients", "1", "--learners", "5", "--rounds", "1", "--database-url", server,
         # This configuration's Redis, or none (LTI state in the database).
         "--redis-url", os.environ.get("REDIS_URL", "")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ratio full / bare:" in done.stdout, done.stdout[-2000:]


def test_bench_moodle_xml_runs_end_to_end_on_half_a_megabyte():
    done = subprocess.run([sys.executable, "bench/bench_moodle_xml.py", "--megabytes", "0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "convert takes" in done.stdout, done.stdout[-2000:]
