"""Walks every route for every kind of person: no route can ship without an access rule.

When you add a route, add its endpoint to ``EXPECTED`` with the roles that may use it and
whether its URL names a record of one organisation (``scoped``), plus a sample value for any
new URL parameter in ``sample_args``.
"""

from __future__ import annotations

import pytest

from lms_plugin.authz import AUTHENTICATED, COURSE_AUTHOR, PUBLIC, policy_of
from tests.catalog.helpers import sample_asset
from tests.conftest import csrf_token, login
from tests.jobs.helpers import make_job
from tests.learning.builders import build_module
from tests.lti.ags_helpers import sample_context
from tests.reports.helpers import sample_export, sample_framework

ANY = frozenset({PUBLIC})
SIGNED_IN = frozenset({AUTHENTICATED})

# endpoint -> (who may use it, URL names a record of one organisation)
EXPECTED: dict[str, tuple[frozenset[str], bool]] = {
    "static": (ANY, False),
    "core.index": (ANY, False),
    "core.healthz": (ANY, False),
    "accounts.login": (ANY, False),
    "accounts.logout": (SIGNED_IN, False),
    "accounts.change_password": (SIGNED_IN, False),
    "accounts.user_list": (frozenset({"admin"}), False),
    "accounts.user_detail": (frozenset({"admin"}), True),
    "accounts.audit_log": (frozenset({"admin", "officer"}), False),
    "catalog.asset": (SIGNED_IN, True),
    "jobs.job_list": (frozenset({"admin"}), False),
    # Learner pages: anyone with a role (authors/officers/admins see them as a preview).
    "learning.home": (frozenset({"learner", "author", "officer", "admin"}), False),
    "learning.module": (frozenset({"learner", "author", "officer", "admin"}), True),
    "learning.lesson": (frozenset({"learner", "author", "officer", "admin"}), True),
    "learning.start_quiz": (frozenset({"learner", "author", "officer", "admin"}), True),
    "learning.attempt": (frozenset({"learner", "author", "officer", "admin"}), True),
    "learning.submit": (frozenset({"learner", "author", "officer", "admin"}), True),
    "learning.result": (frozenset({"learner", "author", "officer", "admin"}), True),
    "jobs.retry": (frozenset({"admin"}), True),
    "jobs.retry_failed": (frozenset({"admin"}), False),
    "lti_registration.canvas_config": (ANY, False),
    "lti_registration.dynamic_registration": (ANY, False),
    # LTI endpoints: public, protected by the LTI security framework (state, nonce, id_token).
    "lti.login": (ANY, False),
    "lti.launch": (ANY, False),
    "lti.jwks": (ANY, False),
    # Deep-linking picker: instructors/content developers after a deep-linking launch
    # (COURSE_AUTHOR: the author of the launch's course; tests/lti/test_launch_roles.py).
    "lti_deep_link.picker": (frozenset({"author", COURSE_AUTHOR}), False),
    "lti_deep_link.respond": (frozenset({"author", COURSE_AUTHOR}), False),
    # LMS courses and the roster (NRPS) sync button (course authors: their course only).
    "lti_roster.courses": (frozenset({"author", "admin", COURSE_AUTHOR}), False),
    "lti_roster.sync": (frozenset({"author", "admin", COURSE_AUTHOR}), True),
    # Reports (issue 16): officers and admins, their organisation only.
    "reports.framework_list": (frozenset({"officer", "admin"}), False),
    "reports.framework_import": (frozenset({"officer", "admin"}), False),
    "reports.framework_detail": (frozenset({"officer", "admin"}), True),
    "reports.framework_export": (frozenset({"officer", "admin"}), True),
    "reports.competency_matrix": (frozenset({"officer", "admin"}), False),
    "reports.competency_export": (frozenset({"officer", "admin"}), False),
    "reports.export_status": (frozenset({"officer", "admin"}), True),
    "reports.export_download": (frozenset({"officer", "admin"}), True),
    "reports.completions": (frozenset({"officer", "admin"}), False),
    "reports.completions_export": (frozenset({"officer", "admin"}), False),
    "reports.item_modules": (frozenset({"author", "officer", "admin"}), False),
    "reports.item_analysis": (frozenset({"author", "officer", "admin"}), True),
    "reports.item_export": (frozenset({"author", "officer", "admin"}), True),
}

PERSONAS = ("anonymous", "learner", "author", "officer", "admin", "other_admin")


def expected_allowed(persona: str, allowed: frozenset[str], scoped: bool) -> bool:
    if PUBLIC in allowed:
        return True
    if persona == "anonymous":
        return False
    if AUTHENTICATED in allowed:
        return not (scoped and persona == "other_admin")  # another organisation's record
    if persona == "other_admin":
        return "admin" in allowed and not scoped
    return persona in allowed


@pytest.fixture
def sample_args(factory) -> dict[str, object]:
    """A real record of the home organisation for every URL parameter."""
    return {
        "filename": "app.css",
        "user_id": factory.user("learner", email="sample-person@example.org"),
        # A lesson image of a module of the home organisation.
        "module_id": (asset := sample_asset(factory.app))[0],
        "path": asset[1],
        # A failed job of the home organisation (retrying it is what an admin may do).
        # A published module of the home organisation, with lessons and a quiz.
        "slug": build_module(factory.app, slug="sample-module")["slug"],
        "position": 1,
        "job_id": make_job(factory.app, factory.organisation("General Hospital"),
                           status="failed", last_error="sample"),
        # An LMS course of the home organisation whose launches offered NRPS.
        "context_id": sample_context(factory.app),
        # A competency framework and a finished background export of the home organisation.
        "framework_id": sample_framework(factory.app),
        "export_id": sample_export(factory.app),
    }


def test_every_route_has_an_expectation_and_a_policy(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - EXPECTED.keys())
    assert not missing, f"add these endpoints to EXPECTED in tests/test_authz.py: {missing}"
    assert not sorted(EXPECTED.keys() - endpoints), "EXPECTED names endpoints that no longer exist"
    for endpoint, view in app.view_functions.items():
        if endpoint == "static":
            continue
        allowed, _ = EXPECTED[endpoint]
        assert policy_of(view) == allowed, f"{endpoint}: policy {policy_of(view)} != {allowed}"


def _status_is_allowed(response, persona: str) -> bool:
    if response.status_code in (401, 403, 404):
        return False
    return not (response.status_code == 302
                and "/auth/login" in response.headers.get("Location", ""))


def test_url_map_walk_for_every_role(app, factory, sample_args):
    clients = {}
    emails = {}
    for persona in PERSONAS:
        client = app.test_client()
        if persona != "anonymous":
            role = "admin" if persona == "other_admin" else persona
            org = "Other Health" if persona == "other_admin" else "General Hospital"
            emails[persona] = factory.email_of(factory.user(role, org=org))
            assert login(client, emails[persona]).status_code == 302
        clients[persona] = client

    failures = []
    checked = 0
    for rule in app.url_map.iter_rules():
        allowed, scoped = EXPECTED[rule.endpoint]
        url = rule.build({a: sample_args[a] for a in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for persona in PERSONAS:
                client = clients[persona]
                data = {"csrf_token": csrf_token(client)} if method == "POST" else None
                response = client.open(url, method=method, data=data)
                got = _status_is_allowed(response, persona)
                want = expected_allowed(persona, allowed, scoped)
                checked += 1
                if got != want:
                    failures.append(f"{method} {url} as {persona}: {response.status_code}, "
                                    f"expected {'allow' if want else 'deny'}")
                if rule.endpoint == "accounts.logout" and persona in emails:
                    login(client, emails[persona])  # signed out by the request: sign back in
    assert checked >= len(EXPECTED) * len(PERSONAS)
    assert not failures, "\n".join(failures)


def test_denial_shapes(client, login_as):
    """Anonymous HTML is sent to sign in, anonymous JSON gets 401, a wrong role gets 403."""
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")
    json_response = client.get("/admin/users", headers={"Accept": "application/json"})
    assert json_response.status_code == 401
    assert json_response.get_json()["status"] == 401
    login_as("learner")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403
    assert "does not have access" in forbidden.get_data(as_text=True)


def test_allow_rejects_unknown_roles():
    from lms_plugin.authz import allow

    with pytest.raises(ValueError):
        allow("superuser")
    with pytest.raises(ValueError):
        allow()


def test_app_refuses_a_route_without_policy():
    from flask import Flask

    from lms_plugin.authz import check_policies

    bare = Flask("bare")
    bare.add_url_rule("/x", "x", lambda: "x")
    with pytest.raises(RuntimeError, match="x"):
        check_policies(bare)
