"""Several workers at once never run a job twice (row locking: SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.jobs import services
from lms_plugin.jobs.models import OutboxJob
from tests.jobs import kinds
from tests.jobs.conftest import T0

JOBS = 500
WORKERS = 4


def test_four_workers_drain_500_jobs_each_exactly_once(app):
    with app.app_context():
        for n in range(JOBS):
            services.enqueue("test.record", {"n": n, "audit": n % 5 == 0}, now=T0)
        db.session.commit()

    barrier = threading.Barrier(WORKERS, timeout=120)
    errors: list[BaseException] = []
    claims: list[int] = []
    first: dict[str, int] = {}

    def work(worker: str) -> None:
        try:
            with app.app_context():  # each worker its own app context, session, connection
                barrier.wait()
                # Every worker makes one claim while the others make theirs, then all go on:
                # the work is shared by construction (500 jobs, 4 claims of 7), not by luck.
                report = services.run_due_jobs(worker, limit=7, now=T0)
                first[worker] = report.claimed
                claims.append(report.claimed)
                barrier.wait()
                idle = 0
                while idle < 3:  # a few empty polls: others may still be claiming
                    report = services.run_due_jobs(worker, limit=7, now=T0)
                    claims.append(report.claimed)
                    idle = idle + 1 if report.claimed == 0 else 0
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors, errors
    assert max(claims) == 7  # the limit holds per claim
    assert len(kinds.calls) == JOBS
    assert set(kinds.calls.values()) == {1}  # every handler call exactly once
    assert sum(kinds.workers.values()) == JOBS
    assert first == {f"w{i}": 7 for i in range(WORKERS)}  # each took a full claim at once
    assert set(kinds.workers) == {f"w{i}" for i in range(WORKERS)}  # the work was shared
    assert min(kinds.workers.values()) >= 7, kinds.workers
    with app.app_context():
        statuses = dict(db.session.execute(
            select(OutboxJob.status, func.count()).group_by(OutboxJob.status)).all())
        attempts = db.session.scalar(select(func.max(OutboxJob.attempts)))
    assert statuses == {"succeeded": JOBS}
    assert attempts == 1
