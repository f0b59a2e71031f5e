"""LTI Dynamic Registration against a fake platform served over HTTP on 127.0.0.1.

The fake platform is a real HTTP server in a thread (the tool's ``requests`` calls go over
the loopback network), shaped like Moodle 4.x (``mod/lti/openid-configuration.php``) or
Canvas (``/api/lti/security/openid-configuration``). Every failure is checked to leave the
database exactly as it was.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation
from lms_plugin.extensions import db
from lms_plugin.lti import registration
from lms_plugin.lti.models import LtiDeployment, LtiPlatform, LtiToolKey
from tests.conftest import csrf_token

TOKEN = "reg-token-abc.def.ghi"
AGS_NRPS = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakePlatform:
    """A platform whose answers each test sets; it records every request it receives."""

    base: str
    config_path: str = "/mod/lti/openid-configuration.php"
    config_status: int = 200
    config_body: bytes | None = None  # raw override (bad JSON, …)
    config: dict[str, Any] = field(default_factory=dict)
    registration_status: int = 200
    registration_answer: Any = None
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)

    @property
    def config_url(self) -> str:
        return self.base + self.config_path

    def register_url(self, token: str | None = TOKEN) -> str:
        from urllib.parse import urlencode

        params = {"openid_configuration": self.config_url}
        if token:
            params["registration_token"] = token
        return "/lti/register?" + urlencode(params)

    def moodle(self, *, deployment_id: str = "7", client_id: str = "aBcD1234efGH") -> None:
        """Moodle 4.x: the openid-configuration.php document and a registration answer."""
        base = self.base
        self.config_path = "/mod/lti/openid-configuration.php"
        self.config = {
            "issuer": base,
            "token_endpoint": f"{base}/mod/lti/token.php",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "jwks_uri": f"{base}/mod/lti/certs.php",
            "authorization_endpoint": f"{base}/mod/lti/auth.php",
            "registration_endpoint": f"{base}/mod/lti/openid-registration.php",
            "scopes_supported": [
                "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
                "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting",
                "openid",
            ],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
            registration.PLATFORM_CONFIGURATION: {
                "product_family_code": "moodle",
                "version": "4.1.9 (Build: 20240212)",
                "messages_supported": ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"],
                "placements": ["AddContentMenu"],
                "variables": ["Context.id", "Person.name.full", "Person.email.primary"],
            },
        }
        self.registration_answer = lambda body: {
            **body, "client_id": client_id,
            registration.TOOL_CONFIGURATION: {
                **body[registration.TOOL_CONFIGURATION], "deployment_id": deployment_id},
        }

    def canvas(self, *, deployment_id: str | None = "12:8865aa05b4b79b64a91a86042e43af5ea8ae79eb",
               client_id: str = "10000000000042") -> None:
        """Canvas: /api/lti/security/openid-configuration and /api/lti/registrations."""
        base = self.base
        self.config_path = "/api/lti/security/openid-configuration"
        self.config = {
            "issuer": base,
            "authorization_endpoint": f"{base}/api/lti/authorize_redirect",
            "registration_endpoint": f"{base}/api/lti/registrations",
            "jwks_uri": f"{base}/api/lti/security/jwks",
            "token_endpoint": f"{base}/login/oauth2/token",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "scopes_supported": [*AGS_NRPS,
                                 "https://canvas.instructure.com/lti/public_jwk/scope/update"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "picture", "email", "name", "given_name",
                                 "family_name", "locale"],
            "subject_types_supported": ["public"],
            "authorization_server": "canvas.instructure.com",
            registration.PLATFORM_CONFIGURATION: {
                "product_family_code": "canvas",
                "version": "vCloud",
                "messages_supported": [
                    {"type": "LtiResourceLinkRequest",
                     "placements": ["account_navigation", "course_navigation"]},
                    {"type": "LtiDeepLinkingRequest",
                     "placements": ["assignment_selection", "link_selection"]},
                ],
                "variables": ["ResourceLink.id", "Canvas.account.name"],
                "https://canvas.instructure.com/lti/account_name": "Mercy Health School",
                "https://canvas.instructure.com/lti/account_lti_guid":
                    "pNu5F9EoIATW6XqZ33C5tiqomb7bFJ4IGWFoCFy6:canvas-lms",
            },
        }

        def answer(body: dict[str, Any]) -> dict[str, Any]:
            tool = dict(body[registration.TOOL_CONFIGURATION])
            if deployment_id is not None:
                tool["deployment_id"] = deployment_id
            return {**body, "client_id": client_id, registration.TOOL_CONFIGURATION: tool}

        self.registration_answer = answer

    def registration_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]


def _handler_for(platform: FakePlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if status in (301, 302):
                self.send_header("Location", platform.base + "/elsewhere")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            platform.requests.append(Recorded("GET", self.path, dict(self.headers), None))
            if platform.delay:
                time.sleep(platform.delay)
            if self.path.split("?")[0] != platform.config_path:
                self._send(404, b'{"error": "not found"}')
                return
            body = platform.config_body
            if body is None:
                body = json.dumps(platform.config).encode()
            self._send(platform.config_status, body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            platform.requests.append(Recorded("POST", self.path, dict(self.headers), body))
            if self.path != platform.config.get("registration_endpoint", "").replace(
                    platform.base, ""):
                self._send(404, b'{"error": "not found"}')
                return
            answer = platform.registration_answer
            if callable(answer):
                answer = answer(body)
            self._send(platform.registration_status, json.dumps(answer).encode())

    return Handler


@pytest.fixture
def fake_platform() -> Iterator[FakePlatform]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    platform = FakePlatform(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler_for(platform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield platform
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


#: Tests that arrange the organisations themselves; every other test runs with the one
#: organisation a first-run setup creates.
OWN_ORGANISATIONS = {"test_no_organisation_yet_is_refused_before_the_platform_registers",
                     "test_anonymous_caller_does_not_see_the_organisation",
                     "test_several_organisations_without_admin_are_refused_before_posting"}


@pytest.fixture(autouse=True)
def _one_organisation(request, factory) -> None:
    if request.node.originalname not in OWN_ORGANISATIONS:
        factory.organisation("Default Health System")


#: The outbound deadline in these tests: every failure answers no sooner than this.
DEADLINE = 0.5


@pytest.fixture(autouse=True)
def _short_deadline(app) -> Iterator[None]:
    saved = app.config.get("LMS_OUTBOUND_DEADLINE")
    app.config["LMS_OUTBOUND_DEADLINE"] = DEADLINE
    yield
    app.config["LMS_OUTBOUND_DEADLINE"] = saved


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (LtiPlatform, LtiDeployment, AuditEvent, Organisation, LtiToolKey)
        }


@pytest.fixture
def unchanged(app) -> Iterator[Callable[[], None]]:
    """Call the returned check after a failing request: nothing may have been written."""
    before = counts(app)

    def check() -> None:
        assert counts(app) == before

    yield check


def the_platform(app) -> LtiPlatform:
    with app.app_context():
        platform = db.session.scalars(select(LtiPlatform)).one()
        db.session.expunge_all()
        return platform


def _scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)


# ---------------------------------------------------------------------------- success


def test_moodle_registration_without_admin_is_stored_pending_in_the_only_org(
        app, client, factory, fake_platform):
    first_org = factory.organisation("Default Health System")
    fake_platform.moodle(deployment_id="7", client_id="aBcD1234efGH")

    response = client.get(fake_platform.register_url())

    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    platform = the_platform(app)
    base = fake_platform.base
    assert platform.issuer == base
    assert platform.client_id == "aBcD1234efGH"
    assert platform.auth_login_url == f"{base}/mod/lti/auth.php"
    assert platform.auth_token_url == f"{base}/mod/lti/token.php"
    assert platform.key_set_url == f"{base}/mod/lti/certs.php"
    assert platform.deployment_ids == ["7"]
    assert platform.organisation_id == first_org  # no admin signed in: default organisation
    assert platform.enabled is False  # pending approval by a tool admin
    assert "(moodle)" in platform.name

    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "lti.platform.dynamic_registration")).one()
        assert event.actor_id is None
        assert event.organisation_id == first_org
        assert event.target_id == str(platform.id)
        assert event.details["client_id"] == "aBcD1234efGH"
        assert event.details["product_family_code"] == "moodle"
        assert db.session.scalar(select(func.count()).select_from(LtiToolKey)) == 1

    # The closing page: local script only (CSP), pending notice, no automatic close.
    assert 'src="/static/lti/registration-close.js"' in html
    assert all(not body.strip() for body in _scripts(html))
    assert 'data-auto-close="false"' in html
    assert f"lms-plugin platform enable {platform.id}" in html
    assert "aBcD1234efGH" in html
    assert "Manage tools" in html
    js = client.get("/static/lti/registration-close.js").get_data(as_text=True)
    assert "window.parent.postMessage({subject: \"org.imsglobal.lti.close\"}, \"*\")" in js


def test_moodle_registration_request_has_the_lti_tool_configuration(client, fake_platform):
    fake_platform.moodle()

    assert client.get(fake_platform.register_url()).status_code == 200

    get, post = fake_platform.requests
    assert get.method == "GET" and get.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.path == "/mod/lti/openid-registration.php"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["Content-Type"] == "application/json"
    body = post.body
    assert body["application_type"] == "web"
    assert body["response_types"] == ["id_token"]
    assert set(body["grant_types"]) == {"implicit", "client_credentials"}
    assert body["initiate_login_uri"] == "http://tool.test/lti/login"
    assert body["redirect_uris"] == ["http://tool.test/lti/launch"]
    assert body["jwks_uri"] == "http://tool.test/lti/jwks"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["client_name"]
    assert set(body["scope"].split()) == set(AGS_NRPS)
    tool = body[registration.TOOL_CONFIGURATION]
    assert tool["domain"] == "tool.test"
    assert tool["target_link_uri"] == "http://tool.test/lti/launch"
    assert {"iss", "sub", "name", "email"} <= set(tool["claims"])
    types = {m["type"]: m for m in tool["messages"]}
    assert set(types) == {"LtiResourceLinkRequest", "LtiDeepLinkingRequest"}
    assert types["LtiDeepLinkingRequest"]["target_link_uri"] == "http://tool.test/lti/launch"
    assert "placements" not in types["LtiResourceLinkRequest"]  # Canvas-only vocabulary
    assert registration.CANVAS_PRIVACY_LEVEL not in tool


def test_canvas_registration_by_signed_in_admin_is_enabled_in_admin_org(
        app, client, factory, login_as, fake_platform):
    factory.organisation("Default Health System")  # the default: must NOT be used
    admin_id = login_as("admin", org="Mercy Health")
    admin_org = factory.org_of(admin_id)
    fake_platform.canvas(client_id="10000000000042")

    # The admin's GET asks for confirmation after reading the LMS's configuration (so the
    # page names the LMS by its own issuer, issue 12.10); nothing is registered or stored.
    confirm = client.get(fake_platform.register_url())
    assert confirm.status_code == 200
    assert "Register and enable" in confirm.get_data(as_text=True)
    assert f"issuer <code>{fake_platform.base}" in confirm.get_data(as_text=True)
    assert [r.method for r in fake_platform.requests] == ["GET"]
    fake_platform.requests.clear()
    assert counts(app)["LtiPlatform"] == 0
    response = client.post("/lti/register", data={
        "csrf_token": csrf_token(client, fake_platform.register_url()),
        "openid_configuration": fake_platform.config_url,
        "registration_token": TOKEN,
    })

    assert response.status_code == 200, response.get_data(as_text=True)
    platform = the_platform(app)
    assert platform.organisation_id == admin_org
    assert platform.enabled is True
    assert platform.client_id == "10000000000042"
    assert platform.deployment_ids == ["12:8865aa05b4b79b64a91a86042e43af5ea8ae79eb"]
    assert platform.auth_login_url == f"{fake_platform.base}/api/lti/authorize_redirect"
    assert platform.auth_token_url == f"{fake_platform.base}/login/oauth2/token"
    assert platform.key_set_url == f"{fake_platform.base}/api/lti/security/jwks"
    assert platform.name.startswith("Mercy Health School")
    html = response.get_data(as_text=True)
    assert 'data-auto-close="true"' in html
    assert "lms-plugin platform enable" not in html
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "lti.platform.dynamic_registration")).one()
        assert event.actor_id == admin_id
        assert event.details["enabled"] is True

    body = fake_platform.registration_requests()[0].body
    tool = body[registration.TOOL_CONFIGURATION]
    types = {m["type"]: m for m in tool["messages"]}
    assert types["LtiResourceLinkRequest"]["placements"] == ["course_navigation"]
    assert types["LtiDeepLinkingRequest"]["placements"] == ["link_selection",
                                                            "assignment_selection"]
    assert tool[registration.CANVAS_PRIVACY_LEVEL] == "public"
    assert tool["custom_parameters"]["department"] == "$Canvas.account.name"
    assert set(body["scope"].split()) == set(AGS_NRPS)  # not Canvas's extra scopes


def test_admin_post_without_csrf_token_is_refused(app, client, login_as, fake_platform):
    """A foreign page cannot borrow a signed-in admin's session to enable a registration."""
    login_as("admin", org="Mercy Health")
    before = counts(app)
    fake_platform.canvas()

    response = client.post("/lti/register", data={
        "openid_configuration": fake_platform.config_url, "registration_token": TOKEN})

    assert response.status_code == 400
    assert fake_platform.requests == []
    assert counts(app) == before


def test_admin_confirmation_without_configuration_url_names_the_problem(app, client,
                                                                        login_as):
    login_as("admin")
    before = counts(app)
    _fails(client, "/lti/register", 400, "openid_configuration is missing")
    assert counts(app) == before


def test_learner_signed_in_is_treated_like_anonymous(app, client, factory, login_as,
                                                     fake_platform):
    factory.organisation("Default Health System")
    login_as("learner", org="Mercy Health")  # a second organisation: no admin to choose
    fake_platform.moodle()
    before = counts(app)

    _fails(client, fake_platform.register_url(), 409, "several organisations",
           "Sign in to the tool as an administrator")

    assert counts(app) == before
    assert [r.method for r in fake_platform.requests] == ["GET"]  # never asked to register


def test_no_organisation_yet_is_refused_before_the_platform_registers(app, client,
                                                                      fake_platform, unchanged):
    fake_platform.moodle()

    html = _fails(client, fake_platform.register_url(), 409, "no organisation yet",
                  "lms-plugin org create NAME")

    assert "lms-plugin platform add" not in html  # it would be refused as well
    assert [r.method for r in fake_platform.requests] == ["GET"]  # no registration POST
    unchanged()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Organisation)) == 0


def test_several_organisations_without_admin_are_refused_before_posting(
        app, client, factory, fake_platform, unchanged):
    factory.organisation("Mercy Health")
    factory.organisation("St Elsewhere")
    fake_platform.moodle()
    before = counts(app)

    _fails(client, fake_platform.register_url(), 409, "several organisations")

    assert counts(app) == before
    assert [r.method for r in fake_platform.requests] == ["GET"]


def test_several_organisations_an_issuer_already_registered_in_one_keeps_it(
        app, client, factory, fake_platform):
    mercy = factory.organisation("Mercy Health")
    factory.organisation("St Elsewhere")
    fake_platform.moodle(client_id="first")
    with app.app_context():
        from lms_plugin.lti import services as lti_services

        lti_services.register_platform(
            issuer=fake_platform.base, client_id="first",
            auth_login_url=f"{fake_platform.base}/mod/lti/auth.php",
            auth_token_url=f"{fake_platform.base}/mod/lti/token.php",
            key_set_url=f"{fake_platform.base}/mod/lti/certs.php", organisation_id=mercy)
        db.session.commit()
    fake_platform.moodle(client_id="second-tool")

    assert client.get(fake_platform.register_url()).status_code == 200

    with app.app_context():
        second = db.session.scalars(select(LtiPlatform).where(
            LtiPlatform.client_id == "second-tool")).one()
        assert second.organisation_id == mercy
        assert second.enabled is False


def test_canvas_answer_without_deployment_id_stores_platform_without_deployment(
        app, client, fake_platform):
    fake_platform.canvas(deployment_id=None)

    response = client.get(fake_platform.register_url())

    assert response.status_code == 200
    platform = the_platform(app)
    assert platform.deployment_ids == []
    assert f"lms-plugin platform add-deployment {platform.id}" in response.get_data(
        as_text=True)


def test_registration_without_token_sends_no_authorization(app, client, fake_platform):
    fake_platform.moodle()

    assert client.get(fake_platform.register_url(token=None)).status_code == 200

    assert all("Authorization" not in r.headers for r in fake_platform.requests)
    assert the_platform(app).client_id == "aBcD1234efGH"


def test_json_caller_gets_problem_document_on_failure(client, unchanged):
    response = client.get("/lti/register", headers={"Accept": "application/json"})

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "openid_configuration is missing" in response.get_json()["detail"]
    unchanged()


# ----------------------------------------------------------------------------- failures


def _fails(client, url: str, status: int, *phrases: str) -> str:
    response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == status, html
    for phrase in phrases:
        assert phrase in html, html
    assert "Nothing was registered" in html
    return html


UNIFORM = "could not be fetched or were not usable"


def _fails_uniformly(client, url: str, caplog, *logged: str) -> str:
    """The one answer for every failure after the URL was accepted; the reason is logged
    for the tool's administrator, never shown to the (anonymous) caller."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lms_plugin.lti.registration"):
        started = time.monotonic()
        html = _fails(client, url, 400, UNIFORM)
        elapsed = time.monotonic() - started
    assert elapsed >= DEADLINE * 0.95, elapsed  # same timing, whatever failed
    log = " ".join(r.getMessage() for r in caplog.records)
    for phrase in logged:
        assert phrase in log, log
        assert phrase not in html
    return html


def test_missing_openid_configuration(client, unchanged):
    _fails(client, "/lti/register?registration_token=x", 400, "openid_configuration is missing")
    unchanged()


def test_unreachable_configuration_url(client, unchanged, caplog):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mod/lti/openid-configuration.php"
    _fails_uniformly(client, f"/lti/register?openid_configuration={url}", caplog,
                     "could not be reached")
    unchanged()


def test_configuration_that_times_out(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.delay = DEADLINE * 3
    started = time.monotonic()
    _fails_uniformly(client, fake_platform.register_url(), caplog, "no complete answer")
    assert time.monotonic() - started < DEADLINE * 2.5  # cut at the deadline
    unchanged()


def test_configuration_that_is_not_json(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.config_body = b"<html>Moodle login page</html>"
    html = _fails_uniformly(client, fake_platform.register_url(), caplog, "not valid JSON")
    assert "Moodle login page" not in html
    assert fake_platform.registration_requests() == []
    unchanged()


def test_configuration_http_error(client, fake_platform, unchanged, caplog):
    fake_platform.canvas()
    fake_platform.config_status = 401
    _fails_uniformly(client, fake_platform.register_url(), caplog, "answered HTTP 401")
    unchanged()


def test_configuration_redirect_is_not_followed(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.config_status = 302
    _fails_uniformly(client, fake_platform.register_url(), caplog, "answered HTTP 302")
    assert len(fake_platform.requests) == 1  # /elsewhere never requested
    unchanged()


def test_issuer_mismatch(client, fake_platform, unchanged, caplog):
    fake_platform.canvas()
    fake_platform.config["issuer"] = "https://canvas.instructure.com"
    html = _fails_uniformly(client, fake_platform.register_url(), caplog,
                            "does not match the origin", "https://canvas.instructure.com")
    assert "https://canvas.instructure.com" not in html
    assert fake_platform.registration_requests() == []
    unchanged()


def test_issuer_on_another_port_is_a_mismatch(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.config["issuer"] = "http://127.0.0.1:1"
    _fails_uniformly(client, fake_platform.register_url(), caplog, "does not match the origin")
    unchanged()


@pytest.mark.parametrize("missing", ["registration_endpoint", "jwks_uri", "token_endpoint",
                                     "authorization_endpoint"])
def test_required_endpoint_missing(client, fake_platform, unchanged, missing, caplog):
    fake_platform.moodle()
    del fake_platform.config[missing]
    _fails_uniformly(client, fake_platform.register_url(), caplog, f"has no {missing}")
    assert fake_platform.registration_requests() == []
    unchanged()


def test_platform_configuration_claim_missing(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    del fake_platform.config[registration.PLATFORM_CONFIGURATION]
    _fails_uniformly(client, fake_platform.register_url(), caplog, "not an LTI 1.3 platform")
    unchanged()


def test_endpoint_on_plain_http_elsewhere_is_refused(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.config["jwks_uri"] = "http://moodle.example.org/mod/lti/certs.php"
    _fails_uniformly(client, fake_platform.register_url(), caplog, "jwks_uri must use https")
    unchanged()


def test_plain_http_configuration_url_is_refused_without_any_request(client, unchanged,
                                                                     monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("no request may be made for an http URL")

    monkeypatch.setattr(registration.outbound, "request", no_network)
    url = "http://moodle.example.org/mod/lti/openid-configuration.php"
    _fails(client, f"/lti/register?openid_configuration={url}", 400, "must use https")
    _fails(client, "/lti/register?openid_configuration=ftp://x.example.org/c", 400,
           "absolute https URL")
    _fails(client, "/lti/register?openid_configuration=https://u:p@x.example.org/c", 400,
           "must not contain credentials")
    unchanged()


def test_localhost_http_is_refused_in_production(app, client, fake_platform, unchanged,
                                                 monkeypatch):
    fake_platform.moodle()
    monkeypatch.setitem(app.config, "LMS_ENV", "production")
    _fails(client, fake_platform.register_url(), 400, "must use https")
    assert fake_platform.requests == []
    unchanged()


def test_platform_rejects_registration(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.registration_status = 401
    fake_platform.registration_answer = {"error": "token_already_used"}
    _fails_uniformly(client, fake_platform.register_url(), caplog, "refused the registration",
                     "HTTP 401", "token_already_used")
    unchanged()


def test_platform_rejects_registration_with_oauth_error(client, fake_platform, unchanged,
                                                       caplog):
    fake_platform.canvas()
    fake_platform.registration_status = 400
    fake_platform.registration_answer = {"error": "invalid_client_metadata",
                                         "error_description": "scope not allowed"}
    _fails_uniformly(client, fake_platform.register_url(), caplog, "invalid_client_metadata",
                     "scope not allowed")
    unchanged()


def test_registration_answer_without_client_id(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.registration_answer = {"application_type": "web"}
    _fails_uniformly(client, fake_platform.register_url(), caplog, "has no client_id")
    unchanged()


def test_registration_answer_not_json(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.registration_answer = "not an object"
    _fails_uniformly(client, fake_platform.register_url(), caplog, "not a JSON object")
    unchanged()


def test_registering_again_updates_the_registration(app, client, fake_platform):
    """Moodle's "Update" on a tool registration: same issuer, same client id and type id
    (mod/lti/openid-registration.php updates the existing type). Issue 12.13."""
    fake_platform.moodle(client_id="same-client", deployment_id="7")
    assert client.get(fake_platform.register_url()).status_code == 200
    platform_id = the_platform(app).id
    base = fake_platform.base
    fake_platform.config["authorization_endpoint"] = f"{base}/mod/lti/auth2.php"
    fake_platform.registration_answer = lambda body: {
        **body, "client_id": "same-client",
        registration.TOOL_CONFIGURATION: {
            **body[registration.TOOL_CONFIGURATION], "deployment_id": "9"}}

    response = client.get(fake_platform.register_url())

    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "The registration is current" in html
    assert "lms-plugin platform add" not in html
    platform = the_platform(app)
    assert platform.id == platform_id  # the same registration, not a second one
    assert platform.auth_login_url == f"{base}/mod/lti/auth2.php"
    assert platform.deployment_ids == ["7", "9"]
    assert platform.enabled is False  # still pending: an update approves nothing
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiPlatform)) == 1
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "lti.platform.dynamic_reregistration")).one()
        assert event.target_id == str(platform_id)
        assert event.details["changes"]["auth_login_url"] == {
            "from": f"{base}/mod/lti/auth.php", "to": f"{base}/mod/lti/auth2.php"}
        assert event.details["changes"]["deployment_ids"]["to"] == ["7", "9"]


def test_registering_again_unchanged_says_it_is_current(app, client, fake_platform):
    fake_platform.moodle(client_id="same-client")
    assert client.get(fake_platform.register_url()).status_code == 200
    before = counts(app)

    response = client.get(fake_platform.register_url())

    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "The registration is current" in html and "Nothing had changed" in html
    after = counts(app)
    assert after.pop("AuditEvent") == before.pop("AuditEvent") + 1  # audited all the same
    assert after == before


def test_registering_again_keeps_an_enabled_registration_enabled(app, client, login_as,
                                                                 fake_platform):
    login_as("admin", org="Default Health System")
    fake_platform.moodle(client_id="same-client")
    for _ in range(2):
        response = client.post("/lti/register", data={
            "csrf_token": csrf_token(client, fake_platform.register_url()),
            "openid_configuration": fake_platform.config_url, "registration_token": TOKEN})
        assert response.status_code == 200, response.get_data(as_text=True)
    assert "The registration is current" in response.get_data(as_text=True)
    assert the_platform(app).enabled is True


def test_admin_of_another_organisation_cannot_update_a_registration(app, client, factory,
                                                                    login_as, fake_platform):
    fake_platform.moodle(client_id="same-client")
    assert client.get(fake_platform.register_url()).status_code == 200
    login_as("admin", org="St Elsewhere")
    before = counts(app)
    fake_platform.config["authorization_endpoint"] = f"{fake_platform.base}/evil.php"

    response = client.post("/lti/register", data={
        "csrf_token": csrf_token(client, fake_platform.register_url()),
        "openid_configuration": fake_platform.config_url, "registration_token": TOKEN})

    assert response.status_code == 409
    assert "another organisation" in response.get_data(as_text=True)
    assert counts(app) == before
    assert the_platform(app).auth_login_url.endswith("/mod/lti/auth.php")


def test_oversized_configuration_is_refused(client, fake_platform, unchanged, caplog):
    fake_platform.moodle()
    fake_platform.config["padding"] = "x" * (registration.MAX_RESPONSE_BYTES + 10)
    _fails_uniformly(client, fake_platform.register_url(), caplog, "larger than")
    unchanged()


# ------------------------------------------------------------------------- service level


def test_parse_accepts_moodle_and_canvas_shapes(fake_platform):
    fake_platform.moodle()
    moodle = registration.parse_platform_configuration(
        fake_platform.config, fake_platform.config_url, allow_http_localhost=True)
    assert moodle.is_moodle and not moodle.is_canvas
    assert "LtiDeepLinkingRequest" in moodle.messages_supported
    fake_platform.canvas()
    canvas = registration.parse_platform_configuration(
        fake_platform.config, fake_platform.config_url, allow_http_localhost=True)
    assert canvas.is_canvas
    assert canvas.account_name == "Mercy Health School"
    assert canvas.messages_supported == ("LtiResourceLinkRequest", "LtiDeepLinkingRequest")


def test_https_issuer_matches_default_port():
    doc = {
        "issuer": "https://moodle.example.org",
        "authorization_endpoint": "https://moodle.example.org/mod/lti/auth.php",
        "token_endpoint": "https://moodle.example.org/mod/lti/token.php",
        "jwks_uri": "https://moodle.example.org/mod/lti/certs.php",
        "registration_endpoint": "https://moodle.example.org/mod/lti/openid-registration.php",
        registration.PLATFORM_CONFIGURATION: {"product_family_code": "moodle"},
    }
    config = registration.parse_platform_configuration(
        doc, "https://moodle.example.org:443/mod/lti/openid-configuration.php",
        allow_http_localhost=False)
    assert config.issuer == "https://moodle.example.org"
    with pytest.raises(registration.PlatformConfigurationInvalid, match="does not match"):
        registration.parse_platform_configuration(
            doc, "https://evil.example.org/mod/lti/openid-configuration.php",
            allow_http_localhost=False)


# ------------------------------------------------------------- unauthenticated SSRF (10.2)


def test_registration_endpoint_on_another_origin_gets_no_token(client, fake_platform,
                                                               unchanged, caplog):
    """The registration token is POSTed only to the configuration's own origin."""
    other = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    elsewhere = FakePlatform(base=f"http://127.0.0.1:{other.server_address[1]}")
    other.RequestHandlerClass = _handler_for(elsewhere)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        fake_platform.moodle()
        fake_platform.config["registration_endpoint"] = elsewhere.base + "/steal"
        _fails_uniformly(client, fake_platform.register_url(), caplog,
                         "registration_endpoint", "is not on the origin")
    finally:
        other.shutdown()
        other.server_close()
    assert elsewhere.requests == []
    assert fake_platform.registration_requests() == []
    unchanged()


def test_every_failure_looks_the_same_to_the_caller(client, fake_platform, unchanged, caplog):
    """Closed port, silent server, HTTP error, not an LMS: one status, one page, one timing
    floor, so the page cannot be used to map what listens where."""
    fake_platform.moodle()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/mod/lti/openid-configuration.php"
    pages = {"closed port": _fails_uniformly(
        client, f"/lti/register?openid_configuration={closed}", caplog)}
    fake_platform.config_status = 404
    pages["http error"] = _fails_uniformly(client, fake_platform.register_url(), caplog)
    fake_platform.config_status = 200
    fake_platform.config_body = b"SSH-2.0-OpenSSH_9.6"
    pages["not an LMS"] = _fails_uniformly(client, fake_platform.register_url(), caplog)
    assert len(set(pages.values())) == 1, pages
    unchanged()


def test_host_resolving_to_loopback_is_refused_when_private_addresses_are_blocked(
        app, client, fake_platform, unchanged, caplog, monkeypatch):
    """``localhost`` is a name: the address is checked when connecting (DNS rebinding)."""
    fake_platform.moodle()
    monkeypatch.setitem(app.config, "LMS_OUTBOUND_BLOCK_PRIVATE", True)
    port = fake_platform.base.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/mod/lti/openid-configuration.php"
    _fails_uniformly(client, f"/lti/register?openid_configuration={url}", caplog,
                     "loopback, private or reserved")
    assert fake_platform.requests == []
    unchanged()


def test_anonymous_caller_does_not_see_the_organisation(app, client, factory, fake_platform):
    factory.organisation("St Elsewhere Secret Division")  # the only one
    fake_platform.moodle()
    response = client.get(fake_platform.register_url())
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "St Elsewhere Secret Division" not in html
    assert "Organisation" not in html


def test_admin_sees_the_organisation_the_registration_joined(client, login_as, fake_platform):
    login_as("admin", org="Mercy Health")
    fake_platform.moodle()
    response = client.post("/lti/register", data={
        "csrf_token": csrf_token(client, fake_platform.register_url()),
        "openid_configuration": fake_platform.config_url, "registration_token": TOKEN})
    assert response.status_code == 200
    assert "Mercy Health" in response.get_data(as_text=True)


def test_registration_token_is_not_written_to_the_access_log(app, caplog):
    """werkzeug's access log, through a real server: the request line is redacted."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret = "SECRET-registration-token-123"
    url = (f"http://127.0.0.1:{server.server_port}/lti/register?openid_configuration="
           f"ftp://x.example.org/c&registration_token={secret}")
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            try:
                urlopen(url, timeout=5)
            except HTTPError as exc:
                assert exc.code == 400
    finally:
        server.shutdown()
        server.server_close()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/lti/register" in line for line in lines), lines
    assert not any(secret in line for line in lines), lines
    assert any("registration_token=[redacted]" in line for line in lines), lines


def test_registration_token_is_not_written_to_gunicorns_access_log(app, caplog):
    """gunicorn logs its access line with a dict of atoms (request line, query, referrer)."""
    secret = "SECRET-registration-token-456"
    atoms = {"h": "10.0.0.1", "r": f"GET /lti/register?registration_token={secret} HTTP/1.1",
             "q": f"openid_configuration=x&registration_token={secret}",
             "f": f"https://tool/lti/register?registration_token%3D{secret}", "s": "200",
             "U": f"/lti/launch?state=s&id_token={secret}"}
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logging.getLogger("gunicorn.access").info(
            '%(h)s "%(r)s" %(s)s "%(q)s" "%(f)s" %(U)s', atoms)
    line = caplog.records[-1].getMessage()
    assert secret not in line and line.count("[redacted]") == 4, line
    assert "state=s&id_token=[redacted]" in line
