"""``lms-plugin worker`` and ``lms-plugin outbox list|retry``."""

from __future__ import annotations

import os
import signal
import threading
import uuid

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.extensions import db
from lms_plugin.jobs import services
from tests.jobs import kinds
from tests.jobs.helpers import all_jobs, job_row, make_job


def _invoke(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_worker_once_drains_due_jobs_in_process(app, org_id):
    with app.app_context():
        ids = [services.enqueue("test.record", {"n": n}, organisation_id=org_id).id
               for n in range(5)]
        rejected = services.enqueue("test.record", {"outcome": "reject"}).id
        db.session.commit()
    result = _invoke(app, "worker", "--once", "--in-process")
    assert result.exit_code == 0, result.output
    assert "Ran jobs: 1 rejected, 5 succeeded" in result.output
    assert all(kinds.calls[i] == 1 for i in ids) and kinds.calls[rejected] == 1
    again = _invoke(app, "worker", "--once", "--in-process")
    assert "No jobs were due." in again.output
    assert sum(kinds.calls.values()) == 6


def test_worker_once_ends_even_when_a_job_is_due_again_at_once(app):
    with app.app_context():
        job_id = services.enqueue("test.record", {"outcome": "retry", "after": 0}).id
        db.session.commit()
    result = _invoke(app, "worker", "--once", "--in-process")
    assert result.exit_code == 0, result.output
    assert kinds.calls[job_id] == 2
    assert job_row(app, job_id).status == "pending"


def test_worker_loop_stops_cleanly_on_sigterm(app, monkeypatch):
    """The polling loop sleeps when idle and leaves on SIGTERM with its summary."""
    with app.app_context():
        job_id = services.enqueue("test.record", {}).id
        db.session.commit()
    app.config["LMS_JOB_POLL_INTERVAL"] = 0.05
    idle_after_the_job = threading.Event()
    real_run = services.run_due_jobs

    def run_and_report(*args, **kwargs):
        # The loop's own poll: an empty one after the job ran means the loop is idle (about
        # to sleep), which is when SIGTERM must stop it. An event, not a fixed wait.
        report = real_run(*args, **kwargs)
        if report.claimed == 0 and kinds.calls.get(job_id, 0) >= 1:
            idle_after_the_job.set()
        return report

    monkeypatch.setattr(services, "run_due_jobs", run_and_report)

    finished = threading.Event()

    def stop_once_idle() -> None:
        if idle_after_the_job.wait(timeout=60) and not finished.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Thread(target=stop_once_idle, daemon=True)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        timer.start()
        result = _invoke(app, "worker", "--in-process")
    finally:
        finished.set()  # first: a timer released below must not signal a finished loop
        idle_after_the_job.set()
        timer.join(timeout=65)
        app.config.pop("LMS_JOB_POLL_INTERVAL")
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert result.exit_code == 0, result.output
    assert "SIGTERM, stopping after the current job" in result.output
    assert "Ran jobs: 1 succeeded" in result.output
    assert kinds.calls[job_id] == 1


def test_worker_with_redis_uses_rq(app, monkeypatch):
    """With REDIS_URL (CI's second run) the same command runs RQ; without, it polls."""
    with app.app_context():
        ids = [services.enqueue("test.record", {"n": n}).id for n in range(3)]
        db.session.commit()
    args = ["worker", "--once"]
    if os.environ.get("REDIS_URL"):
        monkeypatch.setitem(app.config, "REDIS_URL", os.environ["REDIS_URL"])
        args += ["--queue", f"lms-test-{uuid.uuid4().hex[:8]}"]
    else:
        monkeypatch.setitem(app.config, "REDIS_URL", None)
    result = _invoke(app, *args)
    assert result.exit_code == 0, result.output
    assert ("RQ on" in result.output) == bool(os.environ.get("REDIS_URL"))
    assert [kinds.calls[i] for i in ids] == [1, 1, 1]
    assert {job.status for job in all_jobs(app)} == {"succeeded"}


def test_outbox_list_shows_jobs_and_filters_by_status(app, org_id):
    failed = make_job(app, org_id, status="failed", last_error="gave up: 503 from Canvas")
    done = make_job(app, org_id, status="succeeded")
    everything = _invoke(app, "outbox", "list")
    assert everything.exit_code == 0
    assert f"{failed}\tfailed\ttest.noop" in everything.output
    assert f"{done}\tsucceeded" in everything.output
    only_failed = _invoke(app, "outbox", "list", "--status", "failed")
    assert "gave up: 503 from Canvas" in only_failed.output
    assert f"{done}\tsucceeded" not in only_failed.output
    none = _invoke(app, "outbox", "list", "--status", "rejected")
    assert "No jobs with status rejected." in none.output
    bad = _invoke(app, "outbox", "list", "--status", "exploded")
    assert bad.exit_code != 0 and "exploded" in bad.output


def test_outbox_retry_one_and_all_failed(app, org_id, factory):
    other_org = factory.organisation("Other Health")
    rejected = make_job(app, org_id, status="rejected", last_error="400")
    failed = [make_job(app, org_id, status="failed"), make_job(app, other_org, status="failed")]

    one = _invoke(app, "outbox", "retry", str(rejected))
    assert one.exit_code == 0, one.output
    assert f"Queued again: #{rejected}" in one.output
    assert job_row(app, rejected).status == "pending"

    every = _invoke(app, "outbox", "retry", "--all-failed")
    assert every.exit_code == 0, every.output
    assert [job_row(app, i).status for i in failed] == ["pending", "pending"]
    assert "No failed jobs." in _invoke(app, "outbox", "retry", "--all-failed").output
    with app.app_context():
        actions = sorted(db.session.scalars(select(AuditEvent.action)))
    assert actions == ["job.retry", "job.retry_all_failed", "job.retry_all_failed"]


def test_outbox_retry_refuses_bad_requests_and_changes_nothing(app, org_id):
    pending = make_job(app, org_id, status="pending")
    for args, message in [
        (["99999"], "no job #99999"),
        ([str(pending)], "only failed or rejected jobs can be retried"),
        ([], "give a job ID or --all-failed"),
        ([str(pending), "--all-failed"], "give a job ID or --all-failed"),
    ]:
        result = _invoke(app, "outbox", "retry", *args)
        assert result.exit_code != 0
        assert message in result.output
    assert job_row(app, pending).status == "pending"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
