# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Grades to the LMS: service token, line items, score documents and each platform answer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import func, select

from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.lti import ags_jobs, service_client
from lms_plugin.lti.ags import SCOPE_SCORE
from lms_plugin.lti.models import LtiPlatform
from tests.conftest import login
from tests.lti.ags_helpers import INSTRUCTOR, fake_lms, services  # noqa: F401 (fixtures)

T0 = datetime(2026, 3, 2, 8, 0, 0, 250000, tzinfo=UTC)
#: The worker's fake clock: after every enqueue (jobs are due from their real enqueue time).
C0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
ISO_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def _score(app, user_sub_link="link-1", *, user_id, score=80.0, at=T0,
           comment="Passed the quiz"):
    with app.app_context():
        link = db.session.scalar(select(ags_jobs.LtiResourceLink).where(
            ags_jobs.LtiResourceLink.resource_link_id == user_sub_link))
        job = ags_jobs.enqueue_score(link_id=link.id, user_id=user_id, score_given=score,
                                     event_at=at, comment=comment)
        db.session.commit()
        return job.id if job is not None else None


def _user_of(app, sub: str) -> int:
    with app.app_context():
        return db.session.scalar(select(ags_jobs.LtiIdentity.user_id).where(
            ags_jobs.LtiIdentity.sub == sub))


def _run(app, now=None):
    with app.app_context():
        report = jobs.run_due_jobs("test-worker", limit=100, now=now or C0)
        db.session.remove()
        return report


def _job(app, job_id):
    with app.app_context():
        job = db.session.get(OutboxJob, job_id)
        db.session.expunge(job)
        return job


def test_score_is_posted_with_token_lineitem_and_all_fields(app, client, launcher, services):
    lms = services.lms
    item = lms.add_lineitem("course-1", "bcma-basics")
    services.launch(launcher, client, sub="learner-7", module="bcma-basics",
                    lineitem=lms.lineitem_url(item))
    job_id = _score(app, user_id=_user_of(app, "learner-7"), score=87.5)

    report = _run(app)

    assert report.outcomes["succeeded"] == 1, (report, _job(app, job_id).last_error)
    accepted = lms.final(item, "learner-7")
    assert accepted is not None and accepted.score_given == 87.5
    raw = accepted.raw
    assert raw["userId"] == "learner-7"
    assert raw["scoreMaximum"] == 100
    assert raw["activityProgress"] == "Completed" and raw["gradingProgress"] == "FullyGraded"
    assert ISO_MICRO.match(raw["timestamp"]), raw["timestamp"]
    assert raw["timestamp"] == "2026-03-02T08:00:00.250000+00:00"
    assert raw["comment"] == "Passed the quiz"
    assert lms.token_requests == 1
    assert _job(app, job_id).status == "succeeded"


def test_client_assertion_is_signed_with_the_tool_key(app, services):
    with app.app_context():
        platform = db.session.get(LtiPlatform, services.platform_id)
        token = service_client.client_assertion(platform)
        key = service_client.current_signing_key()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, key.public_pem, algorithms=["RS256"],
                        audience=services.lms.token_url)
    assert header["kid"] == key.kid and header["alg"] == "RS256"
    assert claims["iss"] == claims["sub"] == services.platform.client_id
    assert claims["exp"] - claims["iat"] <= 300 and claims["jti"]


def test_token_is_cached_per_client_id_and_refreshed_after_a_401(app, client, launcher,
                                                                  services, make_platform):
    lms = services.lms
    item = lms.add_lineitem("course-1", "bcma-basics")
    services.launch(launcher, client, sub="learner-1", module="bcma-basics",
                    lineitem=lms.lineitem_url(item))
    user = _user_of(app, "learner-1")
    _score(app, user_id=user, score=10, at=T0)
    _run(app)
    _score(app, user_id=user, score=20, at=T0 + timedelta(seconds=5))
    _run(app, C0 + timedelta(seconds=5))
    assert lms.token_requests == 1  # the second score reused the cached token

    lms.tokens.clear()  # the platform expires every token: the next call gets a 401
    job_id = _score(app, user_id=user, score=30, at=T0 + timedelta(seconds=10))
    _run(app, C0 + timedelta(seconds=10))
    assert lms.token_requests == 2
    job = _job(app, job_id)
    assert job.status == "succeeded" and job.attempts == 1
    assert lms.final(item, "learner-1").score_given == 30

    # Same issuer, other client_id: never the first platform's token.
    with app.app_context():
        first = db.session.get(LtiPlatform, services.platform_id)
        other = LtiPlatform(organisation_id=first.organisation_id, issuer=first.issuer,
                            client_id="another-client", auth_login_url=first.auth_login_url,
                            auth_token_url=first.auth_token_url)
        scopes = [SCOPE_SCORE]
        assert service_client.cache_key(first, scopes) != service_client.cache_key(other, scopes)
        with pytest.raises(service_client.ServiceRefused):
            service_client.get_token(other, scopes)  # the fake knows only the first client


def test_line_item_is_created_once_then_found_by_resource_id(app, client, launcher, services):
    lms = services.lms
    services.launch(launcher, client, sub="a", module="sepsis-screen")
    services.launch(launcher, client, sub="b", module="sepsis-screen")
    _score(app, user_id=_user_of(app, "a"), score=90)
    _run(app)
    assert len(lms.lineitems) == 1
    item = lms.lineitems[1]
    assert (item.resource_id, item.score_maximum, item.tag) == ("sepsis-screen", 100,
                                                                 "lms-plugin-module")
    assert item.label == "Module sepsis-screen" and item.resource_link_id == "link-1"
    with app.app_context():
        assert services.link().lineitem_url == lms.lineitem_url(1)

    # A link whose stored URL was lost (e.g. the create's answer timed out) finds it again.
    with app.app_context():
        services.link().lineitem_url = None
        db.session.commit()
    _score(app, user_id=_user_of(app, "b"), score=70)
    _run(app)
    assert len(lms.lineitems) == 1
    assert lms.final(1, "b").score_given == 70


@pytest.mark.parametrize("binds_links", [True, False],
                         ids=["platform-binds-links", "platform-keeps-no-link"])
def test_a_module_placed_twice_in_one_course_gets_two_columns(app, client, launcher,
                                                              services, binds_links):
    """Two placements (resource links) of one module in one course are two gradebook
    columns: the line item is the link's own (its launch's ``lineitem`` claim, else the one
    bound to its ``resourceLinkId``, else created bound to it), never another placement's
    found by the module's resourceId alone (AGS 2.0: many line items may share a
    resourceId in a context; Canvas says so in its Line Items API)."""
    lms = services.lms
    lms.binds_links = binds_links
    for link in ("link-1", "link-2"):
        services.launch(launcher, client, sub="a", module="sepsis-screen", link=link)
    services.launch(launcher, client, sub="b", module="sepsis-screen", link="link-2")
    a, b = _user_of(app, "a"), _user_of(app, "b")
    _score(app, "link-1", user_id=a, score=90)
    _score(app, "link-2", user_id=a, score=70)
    _run(app)

    assert len(lms.lineitems) == 2
    with app.app_context():
        column = {name: services.link(name).lineitem_url for name in ("link-1", "link-2")}
    assert column["link-1"] != column["link-2"]
    item = {name: next(i for i in lms.lineitems if lms.lineitem_url(i) == url)
            for name, url in column.items()}
    assert lms.gradebook(item["link-1"], "a") == 90
    assert lms.gradebook(item["link-2"], "a") == 70
    for name in ("link-1", "link-2"):
        created = lms.lineitems[item[name]]
        assert (created.resource_id, created.tag) == ("sepsis-screen", "lms-plugin-module")
        assert created.resource_link_id == (name if binds_links else "")

    _score(app, "link-2", user_id=b, score=60, at=T0 + timedelta(seconds=5))
    _run(app, C0 + timedelta(seconds=5))
    assert len(lms.lineitems) == 2
    assert lms.gradebook(item["link-2"], "b") == 60
    assert lms.scores.get((item["link-1"], "b")) is None

    if binds_links:  # a lost line item URL is found again: this link's, not the other's
        with app.app_context():
            services.link("link-2").lineitem_url = None
            db.session.commit()
        _score(app, "link-2", user_id=a, score=75, at=T0 + timedelta(seconds=10))
        _run(app, C0 + timedelta(seconds=10))
        assert len(lms.lineitems) == 2
        assert lms.gradebook(item["link-2"], "a") == 75
        assert lms.gradebook(item["link-1"], "a") == 90


def test_a_failing_score_is_final_so_moodle_records_it(app, client, launcher, services):
    """Moodle saves scoreGiven only with FullyGraded (null otherwise): a failing score is
    still a final grade, so it must travel as Completed / FullyGraded (issue 9 item 2)."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    _score(app, user_id=_user_of(app, "u"), score=40)
    _run(app)
    accepted = lms.final(item, "u")
    assert accepted.raw["activityProgress"] == "Completed"
    assert accepted.raw["gradingProgress"] == "FullyGraded"
    assert accepted.raw["scoreGiven"] == 40 and accepted.raw["scoreMaximum"] == 100
    assert lms.gradebook(item, "u") == 40


@pytest.mark.parametrize("fault, reason", [
    ("500", "HTTP 500"), ("reset", "ConnectionError"), ("hang-before", "no complete answer"),
])
def test_transient_failures_are_retried_with_backoff(app, client, launcher, services, fault,
                                                     reason):
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    job_id = _score(app, user_id=_user_of(app, "u"))
    _run(app)  # warms the token cache
    job_id = _score(app, user_id=_user_of(app, "u"), score=95, at=T0 + timedelta(minutes=1))
    # Only the faulty call gets the short deadline (the launch's key fetch and the warm-up
    # above must not fail on a loaded machine).
    app.config["LMS_OUTBOUND_DEADLINE"] = 0.1
    lms.forced = [fault]
    _run(app, C0 + timedelta(minutes=1))
    app.config["LMS_OUTBOUND_DEADLINE"] = 10
    job = _job(app, job_id)
    assert job.status == "pending" and reason in job.last_error
    assert C0 + timedelta(minutes=1) <= job.next_attempt_at.replace(tzinfo=UTC) <= \
        C0 + timedelta(minutes=1, seconds=2)
    _run(app, C0 + timedelta(minutes=2))
    assert _job(app, job_id).status == "succeeded"
    assert lms.final(item, "u").score_given == 95


def test_429_is_retried_after_the_platforms_retry_after(app, client, launcher, services):
    lms = services.lms
    lms.retry_after = 120
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    job_id = _score(app, user_id=_user_of(app, "u"))
    lms.forced = ["429"]
    _run(app)
    job = _job(app, job_id)
    assert job.status == "pending" and "429" in job.last_error
    assert job.next_attempt_at.replace(tzinfo=UTC) == C0 + timedelta(seconds=120)
    assert _run(app, C0 + timedelta(seconds=119)).claimed == 0
    _run(app, C0 + timedelta(seconds=120))
    assert _job(app, job_id).status == "succeeded"


def test_moodle_same_second_collision_is_sent_again_later(app, client, launcher, services):
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    user = _user_of(app, "u")
    _score(app, user_id=user, score=50, at=T0)
    _run(app)
    second = _score(app, user_id=user, score=85, at=T0 + timedelta(microseconds=400000))
    _run(app, C0 + timedelta(seconds=1))
    assert lms.refusals[409] == 1
    assert _job(app, second).status == "succeeded"
    history = lms.scores[(item, "u")]
    assert [a.score_given for a in history] == [50, 85]
    assert history[1].timestamp > history[0].timestamp


@pytest.mark.parametrize(("flavour", "expected"), [
    # Moodle: a persisting 409 (the stored score is newer), recorded rather than retried.
    ("moodle", ("409",)),
    # Canvas: 400 for a timestamp older than the last result.
    ("canvas", ("HTTP 400", "timestamp")),
])
def test_a_score_older_than_the_platforms_is_rejected(app, client, launcher, services,
                                                      flavour, expected):
    lms = services.lms
    lms.flavour = flavour
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    user = _user_of(app, "u")
    _score(app, user_id=user, score=50, at=T0 + timedelta(minutes=10))
    _run(app)
    # A score from before (say, graded by hand in the LMS meanwhile): the outbox no longer
    # knows anything newer, so the platform's refusal is recorded, not retried forever.
    with app.app_context():
        db.session.execute(db.update(OutboxJob).values(coalesce_key="old"))
        db.session.commit()
    job_id = _score(app, user_id=user, score=20, at=T0)
    _run(app)
    job = _job(app, job_id)
    assert job.status == "rejected"
    for text in expected:
        assert text in job.last_error
    assert lms.final(item, "u").score_given == 50


@pytest.mark.parametrize("flavour, setup, status, message", [
    ("moodle", "no_gradebook", 400, "gradebook role"),
    ("canvas", "non_students", 422, "not a student"),
])
def test_definitive_refusals_are_rejected_and_visible(app, client, launcher, services,
                                                      flavour, setup, status, message,
                                                      factory):
    lms = services.lms
    lms.flavour = flavour
    getattr(lms, setup).add("teacher")
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="teacher", module="m1", roles=INSTRUCTOR,
                    lineitem=lms.lineitem_url(item))
    job_id = _score(app, user_id=_user_of(app, "teacher"))
    _run(app)
    job = _job(app, job_id)
    assert job.status == "rejected", job.last_error
    assert f"HTTP {status}" in job.last_error and message in job.last_error
    assert _run(app, C0 + timedelta(days=1)).claimed == 0  # no retry loop
    assert lms.refusals[status] == 1

    with app.app_context():
        org_name = db.session.get(LtiPlatform, services.platform_id).organisation.name
    admin = factory.user("admin", org=org_name)
    browser = app.test_client()
    login(browser, factory.email_of(admin))
    page = browser.get("/admin/jobs").get_data(as_text=True)
    assert f"#{job_id}" in page or f"/admin/jobs/{job_id}/retry" in page
    assert message in page


def test_an_older_score_enqueued_later_never_overwrites(app, client, launcher, services):
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    user = _user_of(app, "u")
    newer = _score(app, user_id=user, score=90, at=T0 + timedelta(minutes=5))
    older = _score(app, user_id=user, score=60, at=T0)
    _run(app, C0 + timedelta(minutes=6))
    assert _job(app, older).status == "superseded"
    assert _job(app, newer).status == "succeeded"
    assert [a.score_given for a in lms.scores[(item, "u")]] == [90]


def test_bad_scores_are_refused_and_nothing_is_written(app, client, launcher, services):
    services.launch(launcher, client, sub="u", module="m1")
    user = _user_of(app, "u")
    with app.app_context():
        link = services.link()
        for kwargs in ({"score_given": 101}, {"score_given": -1},
                       {"score_given": 5, "event_at": datetime(2026, 1, 1)}):
            arguments = {"link_id": link.id, "user_id": user, "event_at": T0, **kwargs}
            with pytest.raises(ValidationFailed):
                ags_jobs.enqueue_score(**arguments)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(OutboxJob)) == 0


def test_links_without_ags_or_other_modules_queue_nothing(app, client, launcher, services):
    services.launch(launcher, client, sub="u", module="m1", with_lineitems=False)
    user = _user_of(app, "u")
    with app.app_context():
        assert ags_jobs.enqueue_module_scores(user_id=user, module_slug="m1", score_percent=80,
                                              event_at=T0) == []
        assert ags_jobs.enqueue_module_scores(user_id=user, module_slug="other",
                                              score_percent=80, event_at=T0) == []
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(OutboxJob)) == 0


def test_moodle_409_for_a_score_overtaken_while_sending_is_superseded(app, client, launcher,
                                                                      services):
    """A newer score queued while this one was being sent: the 409 ends it as superseded
    (the worker's handler is called directly, as it is between claim and outcome)."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    user = _user_of(app, "u")
    _score(app, user_id=user, score=50, at=T0 + timedelta(minutes=10))
    _run(app)  # the platform now holds a score from T0 + 10 min
    with app.app_context():
        db.session.execute(db.update(OutboxJob).values(coalesce_key="old"))
        db.session.commit()
    older = _score(app, user_id=user, score=20, at=T0)
    _score(app, user_id=user, score=95, at=T0 + timedelta(minutes=20))
    with app.app_context():
        job = db.session.get(OutboxJob, older)
        context = jobs.JobContext(job_id=job.id, kind=job.kind, organisation_id=None,
                                  attempt=1, event_at=job.event_at, now=C0, worker_id="w")
        with pytest.raises(jobs.Superseded):
            ags_jobs.deliver_score(dict(job.payload), context)
        db.session.rollback()
    assert lms.refusals[409] == 1 and lms.final(item, "u").score_given == 50
