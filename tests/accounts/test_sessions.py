"""Server-side sessions (issue 10 item 6): a session ends at logout, by an admin, on a
password change, after the idle timeout and at its absolute lifetime."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from lms_plugin.accounts import sessions
from lms_plugin.accounts.models import AuditEvent, User, UserSession
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from tests.conftest import PASSWORD, csrf_token, login


def _copy_cookie(app, source):
    """A second browser holding a copy of ``source``'s session cookie (a stolen cookie)."""
    thief = app.test_client()
    cookie = source.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    return thief


def _live_sessions(app, user_id: int) -> int:
    with app.app_context():
        return sessions.active_count(user_id)


def test_a_copied_cookie_is_dead_after_logout(app, client, login_as):
    user_id = login_as("admin")
    thief = _copy_cookie(app, client)
    assert thief.get("/admin/users").status_code == 200  # the copy works while signed in
    assert _live_sessions(app, user_id) == 1
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/admin")})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 302
    assert thief.get("/admin/users").status_code == 302  # the copy died with the session
    assert _live_sessions(app, user_id) == 0
    if not app.config.get("REDIS_URL"):
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_a_session_from_before_this_change_does_not_sign_anyone_in(app, client, factory):
    """Cookies issued before server-side sessions (no session id) are refused."""
    user_id = factory.user("admin")
    with app.app_context():
        token = db.session.get(User, user_id).session_token
    with client.session_transaction() as sess:
        sess["_user_id"] = f"{user_id}:{token}"
        sess["_fresh"] = True
    assert client.get("/admin/users").status_code == 302


def test_idle_timeout_with_a_frozen_clock(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        assert login(client, "ada@example.org").status_code == 302
        clock.shift(timedelta(minutes=29))
        assert client.get("/admin/users").status_code == 200  # activity refreshes it
        clock.shift(timedelta(minutes=29))
        assert client.get("/admin/users").status_code == 200  # 58 min after sign-in
        clock.shift(timedelta(minutes=31))  # 31 idle minutes (default LMS_SESSION_IDLE 30m)
        assert client.get("/admin/users").status_code == 302
        assert _live_sessions(app, user_id) == 0
        # the prune job deletes the expired record
        if not app.config.get("REDIS_URL"):
            with app.app_context():
                assert sessions.prune() == 1
                db.session.commit()
                assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_idle_timeout_is_configurable(app, client, factory):
    factory.user("admin", email="ada@example.org")
    app.config["LMS_SESSION_IDLE"] = timedelta(minutes=5)
    try:
        with time_machine.travel(utcnow(), tick=False) as clock:
            assert login(client, "ada@example.org").status_code == 302
            clock.shift(timedelta(minutes=4))
            assert client.get("/admin/users").status_code == 200
            clock.shift(timedelta(minutes=6))
            assert client.get("/admin/users").status_code == 302
    finally:
        app.config["LMS_SESSION_IDLE"] = timedelta(minutes=30)


def test_absolute_lifetime_ends_even_an_active_session(app, client, factory):
    factory.user("admin", email="ada@example.org")
    with time_machine.travel(utcnow(), tick=False) as clock:
        assert login(client, "ada@example.org").status_code == 302
        for _ in range(35):  # a request every 20 minutes for 11 h 40 min
            clock.shift(timedelta(minutes=20))
            assert client.get("/admin/users").status_code == 200
        clock.shift(timedelta(minutes=21))  # 12 h 01 min after sign-in (LMS_SESSION_MAX)
        assert client.get("/admin/users").status_code == 302


def test_password_change_ends_every_other_session(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    laptop, ward_pc = app.test_client(), app.test_client()
    for browser in (laptop, ward_pc, client):
        assert login(browser, "ada@example.org").status_code == 302
    thief = _copy_cookie(app, ward_pc)
    assert _live_sessions(app, user_id) == 3
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a much longer password",
        "confirm_password": "a much longer password",
        "csrf_token": csrf_token(client, "/account/password")})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200  # the browser that changed it
    for other in (laptop, ward_pc, thief):
        assert other.get("/admin/users").status_code == 302
    assert _live_sessions(app, user_id) == 1


def test_admin_signs_a_person_out_everywhere_from_the_cli(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    other = app.test_client()
    for browser in (client, other):
        assert login(browser, "ada@example.org").status_code == 302
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "sign-out", "--email", "ADA@example.org"])
    assert result.exit_code == 0, result.output
    assert "2 session(s) ended" in result.output
    assert client.get("/admin/users").status_code == 302
    assert other.get("/admin/users").status_code == 302
    assert _live_sessions(app, user_id) == 0
    with app.app_context():
        event = db.session.scalar(select(AuditEvent)
                                  .where(AuditEvent.action == "user.sign_out_everywhere"))
        assert event.target_id == str(user_id)
        assert event.details == {"sessions_ended": 2}
    # and they can sign in again afterwards
    assert login(client, "ada@example.org").status_code == 302
    assert client.get("/admin/users").status_code == 200


def test_sign_out_of_an_unknown_email_is_a_clear_error(app, factory):
    factory.user("admin", email="ada@example.org")
    result = app.test_cli_runner().invoke(args=["users", "sign-out", "--email",
                                                "nobody@example.org"])
    assert result.exit_code != 0
    assert "no person with the email nobody@example.org" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_signing_in_again_ends_the_previous_session_of_that_browser(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    assert login(client, "ada@example.org").status_code == 302
    old = _copy_cookie(app, client)
    assert login(client, "ada@example.org").status_code == 302
    assert old.get("/admin/users").status_code == 302
    assert client.get("/admin/users").status_code == 200
    assert _live_sessions(app, user_id) == 1


def test_the_scheduled_job_prunes_expired_sessions_and_limit_events(app, client, factory):
    from lms_plugin.accounts.models import RateLimitHit
    from lms_plugin.jobs import schedule
    from lms_plugin.jobs import services as jobs

    factory.user("admin", email="ada@example.org")
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        assert login(client, "ada@example.org").status_code == 302
        assert login(app.test_client(), "ada@example.org", "wrong password!").status_code == 422
        clock.shift(timedelta(hours=2))
        fresh = app.test_client()
        assert login(fresh, "ada@example.org").status_code == 302
        now = utcnow()
        with app.app_context():
            assert "accounts.prune_expired" in schedule.enqueue_due(now)
            jobs.run_due_jobs("w1", now=now)
            if not app.config.get("REDIS_URL"):  # Redis expires its keys by itself
                assert db.session.scalar(select(func.count()).select_from(UserSession)) == 1
                assert db.session.scalar(select(func.count()).select_from(RateLimitHit)) == 0
        assert fresh.get("/admin/users").status_code == 200
        assert client.get("/admin/users").status_code == 302


def test_a_deactivated_person_is_signed_out_at_the_next_request(app, client, login_as):
    user_id = login_as("admin")
    assert client.get("/admin/users").status_code == 200
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert client.get("/admin/users").status_code == 302
