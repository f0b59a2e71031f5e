# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""The grade policy decides what the LMS gradebook shows (issue 9 item 2).

Through the public surface: an LTI launch, quiz attempts through the learning services, the
worker sending to the fake LMS, which keeps a gradebook the way Moodle does (``scoreGiven``
saved only with FullyGraded, null otherwise) or the way Canvas does (ignored unless
FullyGraded). The gradebook cell is what these tests check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.learning import services as learning
from lms_plugin.lti.models import LtiIdentity
from tests.learning.builders import build_module
from tests.lti.ags_helpers import fake_lms, services  # noqa: F401 (fixtures)

#: Eight one-point questions: 8 right = 100 %, 3 right = 37.5 %.
EIGHT = [{"key": f"q{i}", "type": "single_choice", "prompt": f"Question {i}?",
          "data": {"options": [{"id": "a", "text": "Right"}, {"id": "b", "text": "Wrong"}],
                   "answer": "a"}} for i in range(8)]
NOW = datetime.now(UTC).replace(microsecond=0)


def _setup(app, client, launcher, services, *, flavour="moodle", **settings):
    services.lms.flavour = flavour
    content = build_module(app, slug="cpoe-basics", questions=EIGHT, **settings)
    item = services.lms.add_lineitem("course-1", "cpoe-basics")
    services.launch(launcher, client, sub="nurse-1", module="cpoe-basics",
                    lineitem=services.lms.lineitem_url(item))
    with app.app_context():
        user_id = db.session.scalar(select(LtiIdentity.user_id))
    return content, item, user_id


def _sit(app, content, user_id, right: int, at: datetime) -> float:
    """One attempt with ``right`` correct answers, graded at ``at`` (committed)."""
    with app.app_context():
        attempt = learning.start_quiz(user_id, content["version_id"], at)
        responses = {qid: ("a" if n < right else "b")
                     for n, qid in enumerate(content["questions"].values())}
        outcome = learning.submit_quiz(attempt.id, user_id, responses, at)
        db.session.commit()
        score = outcome.attempt.score
        db.session.remove()
        return score


def _send(app):
    with app.app_context():
        jobs.run_due_jobs("w", limit=100, now=datetime.now(UTC) + timedelta(hours=1))
        db.session.remove()


def _set_policy(app, policy: str):
    result = app.test_cli_runner().invoke(
        args=["org", "set-grade-policy", "General Hospital", policy])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("flavour", ["moodle", "canvas"])
def test_a_failed_resit_keeps_the_pass_in_the_gradebook(app, client, launcher, services,
                                                        flavour):
    content, item, user_id = _setup(app, client, launcher, services, flavour=flavour)
    assert _sit(app, content, user_id, 8, NOW - timedelta(hours=3)) == 100
    _send(app)
    assert _sit(app, content, user_id, 3, NOW - timedelta(hours=2)) == 37.5
    _send(app)
    lms = services.lms
    assert lms.gradebook_history(item, "nurse-1") == [100, 100]
    for accepted in lms.scores[(item, "nurse-1")]:
        assert accepted.raw["gradingProgress"] == "FullyGraded"
        assert accepted.raw["activityProgress"] == "Completed"
        assert accepted.raw["scoreMaximum"] == 100
    comment = lms.final(item, "nurse-1").raw["comment"]
    assert "Highest attempt" in comment and "latest attempt 2: 37.5%" in comment


def test_a_failed_first_attempt_shows_its_score(app, client, launcher, services):
    content, item, user_id = _setup(app, client, launcher, services)
    _sit(app, content, user_id, 3, NOW - timedelta(hours=1))
    _send(app)
    accepted = services.lms.final(item, "nurse-1")
    assert accepted.raw["gradingProgress"] == "FullyGraded"
    assert accepted.raw["activityProgress"] == "Completed"
    assert services.lms.gradebook(item, "nurse-1") == 37.5


def test_most_recent_policy_sends_the_failed_resit(app, client, launcher, services):
    content, item, user_id = _setup(app, client, launcher, services)
    _set_policy(app, "most-recent")
    _sit(app, content, user_id, 8, NOW - timedelta(hours=3))
    _send(app)
    _sit(app, content, user_id, 3, NOW - timedelta(hours=2))
    _send(app)
    assert services.lms.gradebook_history(item, "nurse-1") == [100, 37.5]
    assert services.lms.final(item, "nurse-1").raw["gradingProgress"] == "FullyGraded"


@pytest.mark.parametrize("policy, shown", [("highest", 100), ("most_recent", 37.5)])
def test_coalesced_jobs_send_the_policy_score_of_send_time(app, client, launcher, services,
                                                           policy, shown):
    """The pass and the re-sit queued before the worker runs: coalescing keeps the newest
    job (the re-sit's), and it sends the policy's score over both attempts."""
    content, item, user_id = _setup(app, client, launcher, services)
    _set_policy(app, policy)
    _sit(app, content, user_id, 8, NOW - timedelta(hours=3))
    _sit(app, content, user_id, 3, NOW - timedelta(hours=2))
    _send(app)
    assert services.lms.gradebook_history(item, "nurse-1") == [shown]
    with app.app_context():
        statuses = db.session.scalars(select(OutboxJob.status).order_by(OutboxJob.id)).all()
    assert statuses == ["superseded", "succeeded"]


def test_the_highest_counts_within_the_current_validity_period(app, client, launcher,
                                                               services):
    """A pass whose completion has expired no longer holds the grade up: the new period
    starts afresh. While the completion is valid, a failed re-sit re-sends the pass.
    (The clock is frozen at each sitting: the worker computes the score at send time.)"""
    content, item, user_id = _setup(app, client, launcher, services, validity_months=12)
    for when, right in ((datetime(2025, 1, 10, 9, tzinfo=UTC), 8),
                        (datetime(2025, 12, 1, 9, tzinfo=UTC), 3),  # completion still valid
                        (datetime(2026, 2, 1, 9, tzinfo=UTC), 3)):  # it expired on 10 Jan
        with time_machine.travel(when, tick=False):
            _sit(app, content, user_id, right, when)
            _send(app)
    assert services.lms.gradebook_history(item, "nurse-1") == [100, 100, 37.5]


def test_moodle_erases_a_grade_that_is_not_fully_graded(fake_lms):
    """The fake platform behaves as Moodle does, so the tests above prove the cell."""
    import json
    import urllib.request

    fake_lms.tokens["t"] = (datetime.now(UTC).timestamp() + 60,
                            {"https://purl.imsglobal.org/spec/lti-ags/scope/score"})
    item = fake_lms.add_lineitem("course-1", "m")
    url = fake_lms.lineitem_url(item).split("?")[0] + "/scores"

    def post(body):
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": "Bearer t",
                                                  "Content-Type":
                                                  "application/vnd.ims.lis.v1.score+json"})
        try:
            return urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    base = {"userId": "u", "scoreGiven": 100, "scoreMaximum": 100,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": "2026-01-01T10:00:00+00:00"}
    assert post(base) == 200 and fake_lms.gradebook(item, "u") == 100
    assert post({**base, "scoreGiven": 37.5, "activityProgress": "InProgress",
                 "gradingProgress": "Pending", "timestamp": "2026-01-01T10:00:05+00:00"}) == 200
    assert fake_lms.gradebook(item, "u") is None  # the recorded 100 became "-"
    assert post({k: v for k, v in base.items() if k != "activityProgress"}
                | {"timestamp": "2026-01-01T10:00:09+00:00"}) == 400


# --------------------------------------------------------------------------- the setting
def test_set_grade_policy_cli_changes_the_setting_and_audits(app):
    build_module(app)
    result = _set_policy(app, "most-recent")
    assert "most_recent" in result.output
    with app.app_context():
        org = db.session.scalar(select(Organisation))
        assert org.grade_policy == "most_recent"
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "organisation.set_grade_policy")) == 1


@pytest.mark.parametrize("args, message", [
    (["General Hospital", "average"], "choose one of highest, most_recent"),
    (["No Such Hospital", "highest"], "No organisation"),
])
def test_set_grade_policy_refuses_bad_input_and_changes_nothing(app, args, message):
    build_module(app)
    result = app.test_cli_runner().invoke(args=["org", "set-grade-policy", *args])
    assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert db.session.scalar(select(Organisation.grade_policy)) == "highest"
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "organisation.set_grade_policy")) == 0


def test_a_job_queued_before_the_grade_policy_sends_the_policy_score(app, client, launcher,
                                                                     services):
    """An outbox job from before this change (``completed: false``, no policy) retried after
    the upgrade must not erase or lower the pass either."""
    content, item, user_id = _setup(app, client, launcher, services)
    _sit(app, content, user_id, 8, NOW - timedelta(hours=3))
    _sit(app, content, user_id, 3, NOW - timedelta(hours=2))
    with app.app_context():
        for job in db.session.scalars(select(OutboxJob)):
            job.payload = {**{k: v for k, v in job.payload.items() if k != "policy"},
                           "completed": job.payload["score_given"] >= 80}
        db.session.commit()
    _send(app)
    assert services.lms.gradebook_history(item, "nurse-1") == [100]
    assert services.lms.final(item, "nurse-1").raw["gradingProgress"] == "FullyGraded"
