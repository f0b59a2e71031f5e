"""An LTI launch signs in through a server-side session too (issue 10 item 6)."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from lms_plugin.accounts import sessions
from lms_plugin.accounts.models import User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from tests.conftest import csrf_token


def _user_id(app) -> int:
    with app.app_context():
        return db.session.query(User.id).one()[0]


def test_launch_session_ends_at_logout_and_a_copy_dies_with_it(app, client, moodle, launcher):
    assert launcher.launch(client, moodle).status_code == 302
    assert client.get("/home").status_code == 200
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    assert thief.get("/home").status_code == 200
    with app.app_context():
        assert sessions.active_count(_user_id(app)) == 1
    # No sign-out link inside the LMS frame (issue 12.6); the route still works.
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    assert thief.get("/home").status_code in (302, 401)
    with app.app_context():
        assert sessions.active_count(_user_id(app)) == 0


def test_a_relaunch_replaces_the_browser_session(app, client, moodle, launcher):
    assert launcher.launch(client, moodle).status_code == 302
    before = client.get_cookie("session").value
    assert launcher.launch(client, moodle).status_code == 302
    old = app.test_client()
    old.set_cookie("session", before)
    assert old.get("/home").status_code in (302, 401)
    with app.app_context():
        assert sessions.active_count(_user_id(app)) == 1


def test_launch_session_idles_out(app, client, moodle, launcher):
    with time_machine.travel(utcnow(), tick=False) as clock:
        assert launcher.launch(client, moodle).status_code == 302
        clock.shift(timedelta(minutes=25))
        assert client.get("/home").status_code == 200
        clock.shift(timedelta(minutes=31))
        assert client.get("/home").status_code in (302, 401)


def test_launch_keeps_the_return_url_for_back_to_the_course(app, client, moodle, launcher):
    """issue 12.6: ``launch_presentation.return_url`` gives "Back to the course" on every
    page; inside the LMS frame there is no sign-out link (the LMS signs people out)."""
    response = launcher.launch(client, moodle, {"lti:launch_presentation": {
        "return_url": "https://moodle.example.org/course/view.php?id=2",
        "document_target": "iframe"}})
    assert response.status_code == 302
    page = client.get("/home").get_data(as_text=True)
    assert 'href="https://moodle.example.org/course/view.php?id=2"' in page
    assert "Back to the course" in page and "Sign out" not in page
    assert "Back to the course" in client.get("/no/such/page").get_data(as_text=True)
