"""``lms-plugin run``: the outbox worker runs beside the development server (issue 12.2) and
``--setup`` (make run) says what it does, the password last (issue 12.4)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from lms_plugin import create_app, serve
from lms_plugin.cli import cli
from lms_plugin.extensions import db
from lms_plugin.jobs import worker
from lms_plugin.jobs.models import WorkerHeartbeat
from tests.jobs import kinds  # noqa: F401  (registers the test.noop job kind)
from tests.jobs.helpers import job_row, make_job


def _wait_for(condition, timeout: float = 15.0) -> bool:
    """Poll ``condition`` until true or ``timeout`` (a bounded wait on a real thread)."""
    deadline = time.monotonic() + timeout
    done = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        done.wait(0.05)
    return condition()


@pytest.fixture
def started(monkeypatch):
    """Records every embedded worker the command starts."""
    handles: list[worker.EmbeddedWorker] = []
    real = worker.start_embedded

    def _start(app, **kwargs):
        handle = real(app, poll_interval=0.05)
        handles.append(handle)
        return handle

    monkeypatch.setattr(worker, "start_embedded", _start)
    return handles


def _invoke(app, *args, env=None):
    return CliRunner().invoke(cli, ["run", *args], obj=ScriptInfo(create_app=lambda: app),
                              env=env or {}, catch_exceptions=False)


def test_run_starts_the_worker_that_sends_due_jobs_and_stops_it_with_the_server(
        app, monkeypatch, started, factory):
    job_id = make_job(app, factory.organisation())
    seen = {}

    def fake_serve(app_, host, port, *, threaded, ready):
        ready()  # the server is bound: the worker starts, the message is printed
        seen["sent"] = _wait_for(lambda: job_row(app, job_id).status == "succeeded")
        seen["alive"] = started[0].thread.is_alive()

    monkeypatch.setattr(serve, "serve", fake_serve)
    result = _invoke(app, "--port", "5999")
    assert result.exit_code == 0, result.output
    assert seen == {"sent": True, "alive": True}
    assert not started[0].thread.is_alive()  # stopped together with the server
    with app.app_context():
        beats = db.session.scalars(select(WorkerHeartbeat.kind)).all()
    assert beats == ["embedded"]
    assert "Ctrl-C stops it and its background worker" in result.output
    assert "Grades reach the LMS through the background worker" in result.output


def test_no_worker_when_asked_or_in_production(app, monkeypatch, started):
    monkeypatch.setattr(serve, "serve", lambda *a, ready, **k: ready())
    result = _invoke(app, "--no-worker")
    assert result.exit_code == 0, result.output
    assert "run `lms-plugin worker` so grades reach the LMS" in result.output
    app.config["LMS_ENV"] = "production"
    try:
        assert _invoke(app).exit_code == 0
    finally:
        app.config["LMS_ENV"] = "testing"
    assert started == []


def test_under_the_reloader_only_the_serving_child_runs_a_worker(app, monkeypatch, started):
    import flask.cli

    calls = []
    monkeypatch.setattr(flask.cli, "run_simple", lambda *a, **k: calls.append(
        (bool(started), k["use_reloader"])))
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    parent = _invoke(app, "--reload")  # the watching parent: says so once, runs no worker
    assert parent.exit_code == 0 and "lms_plugin is running at" in parent.output
    assert calls == [(False, True)]
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")  # the child it starts
    child = _invoke(app, "--reload")
    assert child.exit_code == 0 and "lms_plugin is running at" not in child.output
    assert calls[1] == (True, True)
    assert not started[0].thread.is_alive()


def test_setup_numbers_its_steps_and_prints_the_password_last(tmp_path, monkeypatch,
                                                              started):
    fresh = create_app({"TESTING": True, "LMS_ENV": "testing",
                        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests",
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
                        "LMS_BASE_URL": "http://tool.test"})
    monkeypatch.setattr(serve, "serve", lambda *a, ready, **k: ready())
    result = _invoke(fresh, "--setup", "--first-step", "2", "--port", "5123")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "INFO" not in out and "alembic" not in out  # no migration log wall
    steps = re.findall(r"^\[(\d)/5\] ([^…\n]+)", out, re.M)
    assert [(n, text.strip()) for n, text in steps] == [
        ("2", "Migrating the database"), ("3", "Setting up the admin account"),
        ("4", "Importing the shipped training content"),
        ("5", "Starting the server and the background worker")]
    assert re.search(r"Migrating the database … \d+ migration\(s\) applied", out)
    password = re.search(r"One-time password  (\S+)", out)
    assert password
    tail = out[out.index("[5/5]"):]
    assert password.group(0) in tail and "http://127.0.0.1:5123/auth/login" in tail
    assert "docs/moodle.md" in tail and "http://tool.test/lti/register" in tail
    with fresh.app_context():
        from lms_plugin.accounts.services import any_admin_exists

        assert any_admin_exists()

    again = _invoke(fresh, "--setup")  # second run: nothing to do, no new password
    assert again.exit_code == 0, again.output
    assert "Migrating the database … up to date" in again.output
    assert "an admin account exists already" in again.output
    assert "One-time password" not in again.output
    for handle in started:
        assert not handle.thread.is_alive()
    with fresh.app_context():
        db.engine.dispose()
