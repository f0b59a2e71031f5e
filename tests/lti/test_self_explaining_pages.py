"""Pages that explain themselves (issue 12.10): the LTI addresses opened directly in a
browser say what they are for and how to use them (a friendly 4xx page, nothing written);
an admin's registration confirmation reads the LMS's configuration before naming it."""

from __future__ import annotations

import socket

from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiPlatform


def _platforms(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(LtiPlatform))


def test_register_opened_directly_explains_dynamic_registration(app, client):
    response = client.get("/lti/register")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This address is for your LMS, not for a browser" in html
    assert "http://tool.test/lti/register" in html and "Add LTI Advantage" in html
    assert "Nothing was registered" in html
    assert _platforms(app) == 0


def test_login_opened_directly_explains_the_launch(client):
    response = client.get("/lti/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "LTI sign-in address" in html and "use its link in your Moodle" in html
    assert "refused" not in html  # nothing went wrong: it was simply opened on its own


def test_deep_link_without_a_request_explains_the_picker(client, login_as):
    login_as("author")
    response = client.get("/lti/deep-link")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "where an instructor picks training modules" in html
    assert "Add an activity or resource" in html


def test_admin_confirmation_checks_the_configuration_url_first(app, client, login_as):
    login_as("admin")
    with socket.socket() as sock:  # a port nobody listens on: not an LMS
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mod/lti/openid-configuration.php"
    response = client.get(f"/lti/register?openid_configuration={url}&registration_token=t")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Register and enable" not in html and "The LMS at" not in html
    assert "Nothing was registered" in html
    assert _platforms(app) == 0
