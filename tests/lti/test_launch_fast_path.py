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
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine, event, select, text, update

from lms_plugin.accounts.models import User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti import services
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiPlatform
from tests.lti.platform import oidc_login


@contextmanager
def statements(app):  # noqa: ARG001
    """Collect the SQL statements the app runs inside the block, on every engine (the app's
    and the launch reader's). On PostgreSQL at the driver, because the launch's lookup runs
    on the psycopg cursor directly; the pool's ping is left out."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if conn.dialect.name != "postgresql":
            seen.append(statement)

    driver_execute = psycopg.Cursor.execute

    def execute(cursor, query, params=None, **kwargs):
        text_ = query if isinstance(query, str) else query.as_string(cursor)
        if text_.strip().lower() not in {"select 1", ";"}:  # SQLAlchemy 2.1 pings with ";"
            seen.append(text_)
        return driver_execute(cursor, query, params, **kwargs)

    event.listen(Engine, "before_cursor_execute", record)
    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = driver_execute  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", record)


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
    app_sql = [s for s in seen if "lti_stored_value" not in s and "user_session" not in s]
    assert [s.split()[0] for s in app_sql] == ["SELECT"]
    # The sign-in: one write, the browser's previous server-side session moved to a new id
    # (Redis when configured, else one UPDATE by primary key).
    session_sql = [s.split()[0] for s in seen if "user_session" in s]
    assert session_sql == ([] if app.config.get("REDIS_URL") else ["UPDATE"])
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
        # Course-scoped: the enrolment's roles carry the rights; organisation-wide only
        # learner (tests/lti/test_launch_roles.py).
        assert {g.role for g in user.grants} == {"learner"}


def _age_launch_times(app, hours: int = 2) -> None:
    """As at the start of the next shift: every last-launch time is hours old."""
    with app.app_context():
        old = utcnow() - timedelta(hours=hours)
        db.session.execute(update(LtiIdentity).values(last_launch_at=old))
        db.session.execute(update(User).values(last_login_at=old))
        db.session.execute(update(LtiMembership).values(last_launch_at=old))
        db.session.commit()


def _launch_times(app) -> list:
    with app.app_context():
        times = [db.session.scalar(select(LtiIdentity.last_launch_at)),
                 db.session.scalar(select(User.last_login_at)),
                 db.session.scalar(select(LtiMembership.last_launch_at))]
        db.session.remove()
        return times


def test_first_launch_of_a_shift_writes_the_times_in_one_statement(
        app, client, moodle, launcher, count_rows):
    assert launcher.launch(client, moodle).status_code == 302
    _age_launch_times(app)
    before = count_rows()
    with statements(app) as seen:
        response = launcher.launch(client, moodle)
    assert response.status_code == 302
    assert all(utcnow() - when < timedelta(seconds=30) for when in _launch_times(app))
    assert count_rows() == before  # updated, nothing created
    # (the sign-in's one session write is checked by the test above)
    app_sql = [s for s in seen if "lti_stored_value" not in s and "user_session" not in s]
    assert app_sql[0].startswith("SELECT")
    writes = app_sql[1:]
    with app.app_context():
        dialect = db.engine.dialect.name
    if dialect == "postgresql":  # one statement: atomic on the autocommit reader
        assert len(writes) == 1 and writes[0].lstrip().startswith("WITH")
        assert all(f"UPDATE {t}" in writes[0]
                   for t in ("user_account", "lti_identity", "lti_membership"))
    else:  # SQLite: one UPDATE per row through the request's session
        assert sorted(w.split()[1] for w in writes) == ["lti_identity", "lti_membership",
                                                        "user_account"]


def test_profile_change_of_a_returning_learner_is_written(app, client, moodle, launcher,
                                                          count_rows):
    assert launcher.launch(client, moodle).status_code == 302
    before = count_rows()
    with statements(app) as seen:
        response = launcher.launch(client, moodle, {
            "name": "Jane Q. Nurse", "email": "JQN@Example.org",
            "lti:custom": {"job_role": "nurse", "department": "ICU"}})
    assert response.status_code == 302
    assert count_rows() == before
    assert not [s for s in seen if s.startswith("INSERT") and "lti_stored_value" not in s]
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert (user.name, user.email, user.job_role, user.department) == (
            "Jane Q. Nurse", "jqn@example.org", "nurse", "ICU")


def test_deactivated_person_is_refused_and_nothing_is_touched(app, client, moodle, launcher):
    assert launcher.launch(client, moodle).status_code == 302
    _age_launch_times(app)
    aged = _launch_times(app)
    with app.app_context():
        db.session.execute(update(User).values(active=False))
        db.session.commit()
    response = launcher.launch(app.test_client(), moodle, {"name": "Someone Else"})
    assert response.status_code == 403
    assert _launch_times(app) == aged
    with app.app_context():
        assert db.session.scalar(select(User.name)) == "Jane Nurse"


def test_launch_survives_the_database_dropping_its_connections(app, client, moodle,
                                                               launcher):
    """The lookup's reader skips the pool's ping: a connection the server closed (restart,
    failover, idle timeout) costs a retry, never a failed launch."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the reader engine and its retry exist only on PostgreSQL")
    assert launcher.launch(client, moodle).status_code == 302  # the reader has a connection
    with app.app_context():
        db.session.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        db.session.commit()
    _age_launch_times(app)  # the next launch also writes, through the reader
    assert launcher.launch(client, moodle).status_code == 302
    assert all(utcnow() - when < timedelta(seconds=30) for when in _launch_times(app))
