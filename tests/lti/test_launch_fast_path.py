"""The launch hot path: the login's registration cache and the returning learner's one query.

These pin down the performance work in ``bench/README.md`` without weakening any check: a
login served from the cache still refuses a registration disabled in this process at once,
a launch always reads the registration row (so a registration disabled by another process
is refused at launch even while a login cache elsewhere still holds it), and a returning
learner's launch reads everything it needs in one statement and writes nothing when
nothing changed.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, select, update

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.lti import services
from lms_plugin.lti.models import LtiContext, LtiMembership, LtiPlatform
from tests.lti.platform import oidc_login


@contextmanager
def statements(app):
    """Collect the SQL statements the app runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_second_login_reads_the_registration_from_the_cache(app, client, moodle):
    assert oidc_login(client, moodle).status_code == 302
    with statements(app) as seen:
        response = oidc_login(client, moodle)
    assert response.status_code == 302
    assert moodle.auth_login_url in response.headers["Location"]
    assert not [s for s in seen if "lti_platform" in s]


def test_cached_login_is_refused_at_once_when_disabled_in_this_process(app, client, moodle):
    assert oidc_login(client, moodle).status_code == 302  # now cached
    with app.app_context():
        services.set_enabled(moodle.platform_id, False)
        db.session.commit()
    response = oidc_login(client, moodle)
    assert response.status_code == 403
    assert "disabled" in response.get_data(as_text=True)


def test_launch_refuses_a_registration_disabled_elsewhere_despite_a_cached_login(
        app, client, moodle, launcher, count_rows):
    login = launcher.login(client, moodle)  # caches the enabled registration
    with app.app_context():
        # As another worker process would: a plain UPDATE this process's cache never sees.
        db.session.execute(update(LtiPlatform).where(LtiPlatform.id == moodle.platform_id)
                           .values(enabled=False))
        db.session.commit()
    before = count_rows()
    token = moodle.sign(moodle.claims(login.nonce))
    response = client.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert response.status_code == 403
    assert "disabled" in response.get_data(as_text=True)
    assert count_rows() == before


def test_login_cache_can_be_turned_off(app, client, moodle, monkeypatch):
    monkeypatch.setitem(app.config, "LTI_REGISTRATION_CACHE_SECONDS", 0)
    app.extensions.pop("lti_login_registrations", None)
    try:
        assert oidc_login(client, moodle).status_code == 302
        with app.app_context():
            db.session.execute(update(LtiPlatform).where(LtiPlatform.id == moodle.platform_id)
                               .values(enabled=False))
            db.session.commit()
        assert oidc_login(client, moodle).status_code == 403
    finally:
        app.extensions.pop("lti_login_registrations", None)  # the next test gets the default


def test_returning_learner_launch_is_one_read_and_no_writes(app, client, moodle, launcher):
    assert launcher.launch(client, moodle).status_code == 302  # first launch: inserts
    with statements(app) as seen:
        response = launcher.launch(client, moodle)
    assert response.status_code == 302
    # Besides the nonce claim (in the database here, as there is no Redis): registration
    # + deployment + identity + user + grants + course + enrolment + link in a single
    # statement; nothing changed, so nothing is written.
    app_sql = [s for s in seen if "lti_stored_value" not in s]
    assert [s.split()[0] for s in app_sql] == ["SELECT"]
    for table in ("lti_platform", "lti_deployment", "lti_identity", "user_account",
                  "role_grant", "lti_context", "lti_membership", "lti_resource_link"):
        assert table in app_sql[0]


def test_returning_learner_changes_are_still_written(app, client, moodle, launcher):
    assert launcher.launch(client, moodle).status_code == 302
    instructor = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
    response = launcher.launch(client, moodle, {
        "name": "Renamed Person", "lti:roles": [instructor],
        "lti:context": {"id": "course-1", "title": "New course title"}})
    assert response.status_code == 302
    with app.app_context():
        membership = db.session.scalars(select(LtiMembership)).one()
        assert membership.roles == [instructor]
        assert db.session.get(LtiContext, membership.context_id).title == "New course title"
        user = db.session.get(User, membership.user_id)
        assert user.name == "Renamed Person"
        assert {g.role for g in user.grants} == {"author", "learner"}
