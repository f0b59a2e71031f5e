"""Security headers (issue 10 item 7): only the organisation's own platforms may frame LTI
pages; sign-in, admin and other pages without an LTI context may not be framed; HSTS in
production only."""

from __future__ import annotations

import re

import pytest

from lms_plugin import create_app
from lms_plugin.extensions import db
from lms_plugin.lti import services as lti_services
from tests.conftest import csrf_token, login
from tests.lti import conftest as lti_fixtures

# The LTI fixtures (a platform with its key server, a launching browser), found by name.
key_server = lti_fixtures.key_server
_lti_isolation = lti_fixtures._lti_isolation
make_platform = lti_fixtures.make_platform
launcher = lti_fixtures.launcher

FOREIGN = "https://attacker.example"


def ancestors(response) -> list[str]:
    csp = response.headers["Content-Security-Policy"]
    match = re.search(r"frame-ancestors ([^;]+)", csp)
    assert match, csp
    return match.group(1).split()


def assert_not_framable(response) -> None:
    assert ancestors(response) == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"


def assert_only_origins(response, *expected: str) -> None:
    found = ancestors(response)
    assert found[0] == "'self'"
    for token in found:  # no scheme wildcards (https:), no host wildcards
        assert token == "'self'" or re.fullmatch(r"https?://[a-z0-9.\-\[\]:]+", token), token
    assert set(found[1:]) == set(expected), found
    assert "X-Frame-Options" not in response.headers  # CSP names the origins instead


@pytest.fixture
def hospital(make_platform):
    return make_platform(issuer="https://moodle.hospital.example")


def test_pages_without_an_lti_context_cannot_be_framed(client, login_as):
    for path in ("/", "/auth/login", "/static/app.css"):
        response = client.get(path)
        assert_not_framable(response)
        assert FOREIGN not in response.headers["Content-Security-Policy"]
    login_as("admin")
    for path in ("/admin/users", "/admin/audit", "/admin/jobs", "/account/password", "/"):
        assert_not_framable(client.get(path))


def test_lti_pages_are_framed_only_by_the_organisations_enabled_platforms(
        app, client, hospital, make_platform, launcher):
    sibling = make_platform(issuer="https://canvas.hospital.example")  # same organisation
    other_org = make_platform(issuer="https://lms.other-health.example",
                              organisation="Other Health")
    disabled = make_platform(issuer="https://old-moodle.hospital.example")
    with app.app_context():
        lti_services.set_enabled(disabled.platform_id, False)
        db.session.commit()
    assert launcher.launch(client, hospital).status_code == 302
    own = {"https://moodle.hospital.example", "https://canvas.hospital.example",
           "http://" + hospital.auth_login_url.split("/")[2]}
    response = client.get("/home")
    assert response.status_code == 200
    assert_only_origins(response, *own)
    csp = response.headers["Content-Security-Policy"]
    for stranger in (FOREIGN, "https://lms.other-health.example",
                     "https://old-moodle.hospital.example", "https:"):
        assert f" {stranger} " not in f" {csp.split('frame-ancestors')[1].split(';')[0]} "
    assert other_org.platform_id and sibling.platform_id
    # an LTI session still never frames sign-in or admin pages
    assert_not_framable(client.get("/account/password"))


def test_disabling_a_platform_takes_its_origin_off_at_once(app, client, hospital, make_platform,
                                                          launcher):
    sibling = make_platform(issuer="https://canvas.hospital.example")
    assert launcher.launch(client, hospital).status_code == 302
    assert "https://canvas.hospital.example" in ancestors(client.get("/home"))  # cached now
    with app.app_context():
        lti_services.set_enabled(sibling.platform_id, False)
        db.session.commit()
    assert "https://canvas.hospital.example" not in ancestors(client.get("/home"))


def test_the_launch_pages_are_framed_by_the_launching_platform_only(client, hospital,
                                                                     make_platform):
    make_platform(issuer="https://lms.other-health.example", organisation="Other Health")
    # the cookie-check page of the OIDC login is shown inside the LMS frame
    response = client.get("/lti/login", query_string={
        "iss": hospital.issuer, "login_hint": "u1", "target_link_uri": "http://tool.test/lti/launch",
        "client_id": hospital.client_id})
    assert "https://moodle.hospital.example" in ancestors(response)
    assert "https://lms.other-health.example" not in ancestors(response)
    # a refused launch's message too; a forged issuer gets no origin at all
    refused = client.post("/lti/launch", data={"id_token": "x.eyJpc3MiOiAiaHR0cHM6Ly9hdHRh"
                                               "Y2tlci5leGFtcGxlIn0.y", "state": "s"})
    assert refused.status_code >= 400
    assert ancestors(refused) == ["'self'"]


def test_a_views_own_policy_gets_frame_ancestors_too(app, client, login_as):
    """The module-image route sets its own sandbox policy: it must not lose framing rules."""
    from tests.catalog.test_services import sample_asset

    module_id, path = sample_asset(app)
    login_as("learner")
    response = client.get(f"/content/{module_id}/{path}")
    assert response.status_code == 200
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert_not_framable(response)


def test_hsts_only_in_production(app, client, database_url):
    assert "Strict-Transport-Security" not in client.get("/").headers
    production = create_app({**{k: app.config[k] for k in (
        "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE_URI")},
        "LMS_ENV": "production", "LMS_BASE_URL": "https://tool.example", "TESTING": True})
    response = production.test_client().get("/", base_url="https://tool.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert_not_framable(response)


def test_login_page_is_not_framable_after_a_failed_sign_in(client, factory):
    factory.user("admin", email="ada@example.org")
    assert_not_framable(login(client, "ada@example.org", "wrong password!!"))
    token = csrf_token(client)
    assert token


def test_dynamic_registration_is_framed_by_the_registering_lms_only(client):
    response = client.get("/lti/register", query_string={
        "openid_configuration": "https://moodle.hospital.example/mod/lti/openid-configuration.php",
        "registration_token": "t"})
    assert_only_origins(response, "https://moodle.hospital.example")
    no_config = client.get("/lti/register")
    assert ancestors(no_config) == ["'self'"]
    assert FOREIGN not in no_config.headers["Content-Security-Policy"]
