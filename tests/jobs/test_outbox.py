"""Outbox services: enqueue, coalescing, outcomes, backoff, give-up, leases, schedules."""

from __future__ import annotations

import random
import threading
from contextlib import nullcontext
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule, services
from lms_plugin.jobs.models import OutboxJob
from tests.dbapi import rowcount_unknown
from tests.jobs import kinds
from tests.jobs.conftest import T0
from tests.jobs.helpers import all_jobs, job_row


def _count(app, model=OutboxJob) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _enqueue(app, payload=None, *, kind="test.record", now=T0, **kwargs) -> int:
    with app.app_context():
        job = services.enqueue(kind, payload or {}, now=now, **kwargs)
        db.session.commit()
        return job.id


def _run(app, now, worker="w1", limit=50, rng=None):
    with app.app_context():
        return services.run_due_jobs(worker, limit, now, rng=rng)


# ------------------------------------------------------------------ enqueue


def test_job_exists_only_if_the_callers_transaction_commits(app):
    with app.app_context():
        db.session.add(Organisation(slug="rolled-back", name="Rolled back"))
        services.enqueue("test.record", {"n": 1}, now=T0)
        assert db.session.scalar(select(func.count()).select_from(OutboxJob)) == 1  # flushed
        db.session.rollback()
    assert _count(app) == 0 and _count(app, Organisation) == 0

    with app.app_context():
        org = Organisation(slug="committed", name="Committed")
        db.session.add(org)
        db.session.flush()
        services.enqueue("test.record", {"n": 2}, organisation_id=org.id, now=T0)
        db.session.commit()
    [job] = all_jobs(app)
    assert (job.status, job.payload, job.attempts) == ("pending", {"n": 2}, 0)
    assert job.next_attempt_at == T0 and job.event_at == T0
    assert job.give_up_at == T0 + timedelta(hours=24)  # LMS_JOB_GIVE_UP_AFTER default


@pytest.mark.parametrize(("kind", "payload", "kwargs", "field"), [
    ("", {}, {}, "kind"),
    ("test.record", ["not", "an", "object"], {}, "payload"),
    ("test.record", {"when": object()}, {}, "payload"),
    ("test.record", {}, {"coalesce_key": ""}, "coalesce_key"),
    ("test.record", {}, {"event_at": datetime(2026, 3, 2, 8, 0)}, "event_at"),
])
def test_bad_enqueue_is_refused_and_writes_nothing(app, kind, payload, kwargs, field):
    with app.app_context(), pytest.raises(ValidationFailed) as raised:
        services.enqueue(kind, payload, **kwargs)
    assert raised.value.field == field
    assert _count(app) == 0


def test_newer_event_supersedes_older_pending_job(app):
    old = _enqueue(app, {"v": 1}, coalesce_key="score:u1", event_at=T0)
    new = _enqueue(app, {"v": 2}, coalesce_key="score:u1", event_at=T0 + timedelta(seconds=1))
    other = _enqueue(app, {"v": 9}, coalesce_key="score:u2", event_at=T0)
    assert job_row(app, old).status == "superseded"
    assert f"#{new}" in job_row(app, old).last_error
    assert job_row(app, new).status == "pending" and job_row(app, other).status == "pending"
    _run(app, T0 + timedelta(seconds=2))
    assert set(kinds.calls) == {new, other}
    assert job_row(app, old).status == "superseded"


def test_newer_job_exists_is_the_one_public_check(app):
    """``jobs.newer_job_exists`` (the runner's supersede rule, also asked by the AGS
    handler): a later event of the same key, or the same event enqueued later."""
    first = _enqueue(app, {"v": 1}, coalesce_key="score:u1", event_at=T0)
    same_time_later = _enqueue(app, {"v": 2}, coalesce_key="score:u1", event_at=T0)
    older_late = _enqueue(app, {"v": 0}, coalesce_key="score:u1",
                          event_at=T0 - timedelta(seconds=1))
    lone = _enqueue(app, {"v": 3}, coalesce_key="score:u2", event_at=T0)
    unkeyed = _enqueue(app, {"v": 4})
    with app.app_context():
        assert services.newer_job_exists(first) and services.newer_job_exists(older_late)
        assert not services.newer_job_exists(same_time_later)
        assert not services.newer_job_exists(lone)
        assert not services.newer_job_exists(unkeyed)
        assert not services.newer_job_exists(10**9)
        job = db.session.get(OutboxJob, first)
        assert services.newer_job_id(job) == same_time_later


def test_older_event_enqueued_later_never_overwrites_newer(app):
    new = _enqueue(app, {"v": 2}, coalesce_key="score:u1", event_at=T0 + timedelta(seconds=5))
    late_old = _enqueue(app, {"v": 1}, coalesce_key="score:u1", event_at=T0)
    assert job_row(app, late_old).status == "superseded"
    assert job_row(app, new).status == "pending"
    _run(app, T0 + timedelta(seconds=10))
    # Even after the newer one was sent, an older event that arrives is not sent.
    later_old = _enqueue(app, {"v": 0}, coalesce_key="score:u1",
                         event_at=T0 + timedelta(seconds=1))
    _run(app, T0 + timedelta(seconds=20))
    assert dict(kinds.calls) == {new: 1}
    assert job_row(app, later_old).status == "superseded"


def test_same_event_time_later_enqueue_wins(app):
    first = _enqueue(app, {"v": 1}, coalesce_key="k", event_at=T0)
    second = _enqueue(app, {"v": 2}, coalesce_key="k", event_at=T0)
    assert [job_row(app, first).status, job_row(app, second).status] == ["superseded",
                                                                         "pending"]


def test_claim_supersedes_an_older_job_that_slipped_past_coalescing(app):
    """Two requests enqueueing at the same instant can both leave a pending job: the claim
    still sends only the newest."""
    old = _enqueue(app, {"v": 1}, coalesce_key="race-a", event_at=T0)
    new = _enqueue(app, {"v": 2}, coalesce_key="race-b", event_at=T0 + timedelta(seconds=1))
    with app.app_context():  # as if both had been enqueued with one key, concurrently
        db.session.get(OutboxJob, new).coalesce_key = "race-a"
        db.session.commit()
    report = _run(app, T0 + timedelta(seconds=2))
    assert report.outcomes == {"superseded": 1, "succeeded": 1}
    assert dict(kinds.calls) == {new: 1}
    assert job_row(app, old).status == "superseded"


def test_jobs_of_one_key_run_one_at_a_time(app):
    running = _enqueue(app, {}, coalesce_key="k", event_at=T0)
    with app.app_context():  # another worker is sending it right now
        job = db.session.get(OutboxJob, running)
        job.status, job.locked_by, job.locked_at = "running", "other-worker", T0
        db.session.commit()
    newer = _enqueue(app, {}, coalesce_key="k", event_at=T0 + timedelta(seconds=1))
    assert _run(app, T0 + timedelta(seconds=2)).claimed == 0  # waits for the running one
    with app.app_context():
        job = db.session.get(OutboxJob, running)
        job.status, job.locked_by, job.locked_at = "succeeded", None, None
        db.session.commit()
    assert _run(app, T0 + timedelta(seconds=3)).outcomes == {"succeeded": 1}
    assert dict(kinds.calls) == {newer: 1}


# ------------------------------------------------------------------ outcomes


def test_success_commits_handler_writes_with_the_outcome(app):
    job_id = _enqueue(app, {"audit": True})
    report = _run(app, T0)
    assert (report.claimed, report.outcomes) == (1, {"succeeded": 1})
    job = job_row(app, job_id)
    assert (job.status, job.attempts, job.finished_at, job.locked_by) == (
        "succeeded", 1, T0, None)
    assert _count(app, AuditEvent) == 1
    assert _run(app, T0 + timedelta(days=1)).claimed == 0  # never again
    assert kinds.calls[job_id] == 1


def test_retry_rolls_back_handler_writes_and_backs_off_with_full_jitter(app):
    job_id = _enqueue(app, {"outcome": "retry", "audit": True})
    now = T0
    for attempt in range(1, 8):
        _run(app, now, rng=random.Random(attempt))
        job = job_row(app, job_id)
        assert (job.status, job.attempts) == ("pending", attempt)
        assert job.last_error == "platform answered 503"
        delay = (job.next_attempt_at - now).total_seconds()
        assert 0 <= delay <= min(900, 2 * 2 ** (attempt - 1))  # base 2s, cap 15 min
        assert _run(app, job.next_attempt_at - timedelta(microseconds=1)).claimed == 0 \
            or delay == 0
        now = job.next_attempt_at
    assert _count(app, AuditEvent) == 0


def test_backoff_bounds():
    class Highest(random.Random):
        def uniform(self, a, b):
            return b

    for attempts in range(1, 30):
        ceiling = min(900.0, 2.0 * 2 ** (attempts - 1))
        assert services.backoff_delay(attempts, rng=Highest(), base=2, cap=900) == ceiling
        samples = [services.backoff_delay(attempts, rng=random.Random(i), base=2, cap=900)
                   for i in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        if attempts > 3:  # full jitter: spread over the whole range, not clustered at the top
            assert min(samples) < ceiling / 4 and max(samples) > ceiling * 3 / 4


def test_backoff_settings_come_from_config(app, monkeypatch):
    monkeypatch.setitem(app.config, "LMS_JOB_BACKOFF_BASE", "1m")
    monkeypatch.setitem(app.config, "LMS_JOB_BACKOFF_CAP", 90)
    with app.app_context():
        top = [services.backoff_delay(n, rng=random.Random(0)) for n in range(1, 6)]
    assert all(0 <= d <= 90 for d in top)
    monkeypatch.setitem(app.config, "LMS_JOB_BACKOFF_BASE", "soon")
    with app.app_context(), pytest.raises(Exception, match="LMS_JOB_BACKOFF_BASE"):
        services.backoff_delay(1)


def test_retry_after_is_honoured(app):
    job_id = _enqueue(app, {"outcome": "retry", "after": 120, "reason": "429"})
    _run(app, T0)
    job = job_row(app, job_id)
    assert job.next_attempt_at == T0 + timedelta(seconds=120)
    assert _run(app, T0 + timedelta(seconds=119)).claimed == 0
    assert _run(app, T0 + timedelta(seconds=120)).claimed == 1
    assert kinds.calls[job_id] == 2
    contexts = [ctx for _, _, ctx in kinds.seen]
    assert [c.attempt for c in contexts] == [1, 2]
    assert {c.idempotency_key for c in contexts} == {f"outbox-{job_id}"}  # same across retries


def test_gives_up_after_the_configured_age(app, monkeypatch):
    monkeypatch.setitem(app.config, "LMS_JOB_GIVE_UP_AFTER", "1h")
    job_id = _enqueue(app, {"outcome": "retry", "after": 7200, "reason": "503 from Moodle"})
    _run(app, T0)
    job = job_row(app, job_id)
    assert job.give_up_at == T0 + timedelta(hours=1)
    assert job.next_attempt_at == job.give_up_at  # a last try at the deadline, not never
    _run(app, T0 + timedelta(hours=1))
    job = job_row(app, job_id)
    assert job.status == "failed"
    assert job.last_error == "gave up after 2 attempts: 503 from Moodle"
    assert job.finished_at == T0 + timedelta(hours=1)
    assert _run(app, T0 + timedelta(days=3)).claimed == 0
    assert kinds.calls[job_id] == 2


def test_definitive_refusal_is_rejected_and_not_retried(app):
    job_id = _enqueue(app, {"outcome": "reject", "reason": "422: user is not a student"})
    assert _run(app, T0).outcomes == {"rejected": 1}
    job = job_row(app, job_id)
    assert job.status == "rejected"
    assert job.last_error == "rejected: 422: user is not a student"
    assert _run(app, T0 + timedelta(days=1)).claimed == 0
    assert kinds.calls[job_id] == 1


def test_unexpected_exception_and_unknown_kind_are_retried(app):
    crash = _enqueue(app, {"outcome": "crash"})
    unknown = _enqueue(app, {}, kind="nobody.handles.this")
    assert _run(app, T0).outcomes == {"pending": 2}
    assert job_row(app, crash).last_error == "RuntimeError: handler bug"
    assert "no handler is registered for job kind 'nobody.handles.this'" in job_row(
        app, unknown).last_error


def test_job_of_a_dead_worker_is_reclaimed_after_the_lease(app):
    job_id = _enqueue(app, {})
    with app.app_context():  # what a killed worker leaves behind
        job = db.session.get(OutboxJob, job_id)
        job.status, job.locked_by, job.locked_at, job.attempts = "running", "dead:1", T0, 1
        db.session.commit()
    assert _run(app, T0 + timedelta(minutes=4), worker="w2").claimed == 0
    report = _run(app, T0 + timedelta(minutes=5, seconds=1), worker="w2")
    assert report.outcomes == {"succeeded": 1}
    job = job_row(app, job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert dict(kinds.workers) == {"w2": 1}


# ------------------------------------------------------------------ retry, list


def test_retry_job_and_list_jobs_are_organisation_isolated(app, factory):
    home = factory.organisation("General Hospital")
    away = factory.organisation("Other Health")
    failed = _enqueue(app, {"outcome": "reject"}, organisation_id=home)
    foreign = _enqueue(app, {"outcome": "reject"}, organisation_id=away)
    _run(app, T0)
    with app.app_context():
        assert [j.id for j in services.list_jobs(home, "rejected")] == [failed]
        with pytest.raises(NotFound):
            services.retry_job(foreign, home)
        with pytest.raises(ValidationFailed):
            services.list_jobs(home, "exploded")
        job = services.retry_job(failed, home, now=T0 + timedelta(hours=1))
        assert (job.status, job.next_attempt_at) == ("pending", T0 + timedelta(hours=1))
        assert job.give_up_at == T0 + timedelta(hours=25)
        with pytest.raises(Conflict):
            services.retry_job(failed, home)
        db.session.commit()
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "job.retry"))
        assert (event.organisation_id, event.target_id) == (home, str(failed))
    assert job_row(app, foreign).status == "rejected"


# ------------------------------------------------------------------ schedule


@pytest.fixture
def periodic():
    schedule.every("test.record", timedelta(hours=1), {"periodic": True})
    yield
    schedule.cancel("test.record")


def test_periodic_job_is_enqueued_when_due(app, periodic):
    with app.app_context():
        assert schedule.enqueue_due(T0) == ["test.record"]
        assert schedule.enqueue_due(T0 + timedelta(minutes=59)) == []
        assert schedule.enqueue_due(T0 + timedelta(hours=1)) == ["test.record"]
    jobs = all_jobs(app)
    assert [(j.kind, j.payload, j.coalesce_key) for j in jobs] == [
        ("test.record", {"periodic": True}, "schedule:test.record")] * 2
    # The first slot's job never ran, so the second supersedes it: runs never stack up.
    assert [j.status for j in jobs] == ["superseded", "pending"]


def test_periodic_job_is_enqueued_once_by_several_workers(app, periodic):
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(schedule.enqueue_due(T0))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(map(len, results)) == [0, 0, 0, 1]
    assert _count(app) == 1


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        schedule.every("test.record", timedelta(0))


# ------------------------------------------------------------------ rowcount (issue 9)
# A driver may report ``rowcount`` -1 (SQLAlchemy 2.1 does for some statements on
# PostgreSQL): the schedule and the outcome of a job are decided by RETURNING instead.


def test_periodic_job_is_enqueued_when_the_driver_cannot_count_rows(app, periodic):
    with rowcount_unknown(app), app.app_context():
        assert schedule.enqueue_due(T0) == ["test.record"]
        assert schedule.enqueue_due(T0 + timedelta(minutes=59)) == []
        assert schedule.enqueue_due(T0 + timedelta(hours=1)) == ["test.record"]
    assert [j.kind for j in all_jobs(app)] == ["test.record"] * 2


def test_outcome_is_recorded_without_a_false_lease_alarm(app, caplog):
    job_id = _enqueue(app, {"audit": True})
    with rowcount_unknown(app):
        report = _run(app, T0)
    assert report.outcomes == {"succeeded": 1}
    assert job_row(app, job_id).status == "succeeded"
    assert "lease lost" not in caplog.text
    assert _count(app, AuditEvent) == 1  # the handler's write was kept


@pytest.mark.parametrize("rowcount", ["reported", "unknown"])
def test_outcome_of_a_job_taken_over_meanwhile_is_not_recorded(app, caplog, rowcount):
    job_id = _enqueue(app, {"outcome": "lose_lease", "audit": True})
    with rowcount_unknown(app) if rowcount == "unknown" else nullcontext():
        report = _run(app, T0)
    assert report.outcomes == {"lost": 1}
    job = job_row(app, job_id)
    assert (job.status, job.finished_at) == ("running", None)  # not marked succeeded
    assert "lease lost" in caplog.text
    assert _count(app, AuditEvent) == 0  # the worker holding the job now runs it for good
