"""Workers beat; /admin/jobs and /healthz say when jobs are due and no worker runs (12.2)."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs import heartbeat, worker
from lms_plugin.jobs.models import WorkerHeartbeat
from tests.jobs.helpers import job_row, make_job


def _beat(app, worker_id: str, age: timedelta) -> None:
    with app.app_context():
        heartbeat.beat(worker_id, "loop", utcnow() - age)
        db.session.commit()


def _heartbeats(app) -> list[WorkerHeartbeat]:
    with app.app_context():
        rows = list(db.session.scalars(select(WorkerHeartbeat)))
        for row in rows:
            db.session.expunge(row)
        return rows


def test_due_job_without_worker_warns_on_jobs_page_and_fresh_heartbeat_clears_it(
        app, client, login_as, org_id):
    login_as("admin")
    make_job(app, org_id, kind="ags.score")  # pending, due now

    page = client.get("/admin/jobs").get_data(as_text=True)
    assert 'id="worker-warning"' in page
    assert "No background worker is running." in page
    assert "1 job(s) are waiting to be sent" in page
    assert "since this tool was installed" in page
    assert "lms-plugin worker" in page

    _beat(app, "old-host:1:abc", timedelta(minutes=10))  # a worker that stopped
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert 'id="worker-warning"' in page and "for 10 minutes" in page

    _beat(app, "host:2:def", timedelta(seconds=5))
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert 'id="worker-warning"' not in page
    assert "Background worker: running (1 seen in the last 3 minutes)" in page


def test_no_warning_when_nothing_is_due(app, client, login_as, org_id, factory):
    login_as("admin")
    make_job(app, org_id, status="succeeded")
    make_job(app, factory.organisation("Other Health"))  # due, but not this admin's
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert 'id="worker-warning"' not in page
    assert "none seen yet; no jobs are waiting" in page


def test_stale_limit_comes_from_the_setting(app, client, login_as, org_id):
    login_as("admin")
    make_job(app, org_id)
    _beat(app, "host:3:aaa", timedelta(minutes=2))
    assert 'id="worker-warning"' not in client.get("/admin/jobs").get_data(as_text=True)
    saved = app.config["LMS_WORKER_STALE"]
    app.config["LMS_WORKER_STALE"] = timedelta(minutes=1)
    try:
        page = client.get("/admin/jobs").get_data(as_text=True)
    finally:
        app.config["LMS_WORKER_STALE"] = saved
    assert 'id="worker-warning"' in page and "for 2 minutes" in page


def test_healthz_reports_the_worker_without_failing_the_check(app, client, org_id):
    make_job(app, org_id)
    body = client.get("/healthz").get_json()
    assert (body["worker"], body["jobs_due"]) == ("never seen", 1)
    _beat(app, "host:4:bbb", timedelta(minutes=5))
    body = client.get("/healthz").get_json()
    assert body["worker"] == "none seen for 5 minutes"
    _beat(app, "host:4:bbb", timedelta(seconds=1))
    body = client.get("/healthz").get_json()
    assert body["worker"] == "ok"


def test_the_worker_loop_beats_and_sends_due_jobs(app, org_id):
    job_id = make_job(app, org_id)  # test.noop: succeeds
    stop = threading.Event()
    calls = []

    def clock():  # one pass: beat, schedule, run; then the stop flag is up
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        return utcnow()

    with app.app_context():
        worker.run_loop("host:5:ccc", stop, poll_interval=0, now=clock, kind="loop")
    assert job_row(app, job_id).status == "succeeded"
    [row] = _heartbeats(app)
    assert (row.worker_id, row.kind) == ("host:5:ccc", "loop")
    assert utcnow() - row.last_seen < timedelta(minutes=1)


def test_beat_refreshes_one_row_and_forgets_long_silent_workers(app):
    _beat(app, "gone:1:x", heartbeat.FORGET_AFTER + timedelta(hours=1))
    _beat(app, "w:1:y", timedelta(minutes=1))
    _beat(app, "w:1:y", timedelta(seconds=0))
    [row] = _heartbeats(app)
    assert row.worker_id == "w:1:y"
    assert row.last_seen - row.started_at >= timedelta(seconds=59)


def test_outbox_commands_warn_when_jobs_are_due_and_no_worker_runs(app, org_id):
    make_job(app, org_id)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    assert "Warning: 1 job(s) are due but no worker has been seen yet" in listed.output
    once = runner.invoke(args=["worker", "--once", "--in-process"])  # beats, then sends
    assert once.exit_code == 0, once.output
    assert [row.kind for row in _heartbeats(app)] == ["once"]
    make_job(app, org_id)
    assert "Warning" not in runner.invoke(args=["outbox", "list"]).output
