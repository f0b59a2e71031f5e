"""Walks every route for every kind of person: no route can ship without an access rule.

When you add a route, add its endpoint to ``EXPECTED`` with the roles that may use it and
whether its URL names a record of one organisation (``scoped``), plus a sample value for any
new URL parameter in ``sample_args``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lms_plugin.authz import AUTHENTICATED, COURSE_AUTHOR, PUBLIC, policy_of
from lms_plugin.catalog.models import Module
from tests.catalog.authoring_helpers import sample_system
from tests.catalog.helpers import sample_asset
from tests.conftest import csrf_token, login
from tests.credits.helpers import sample_certificate
from tests.jobs.helpers import make_job
from tests.learning.builders import build_module
from tests.lti.ags_helpers import sample_context
from tests.reports.helpers import sample_export, sample_framework


def sample_platform(app) -> int:
    """A platform registration of the home organisation."""
    from lms_plugin.extensions import db
    from lms_plugin.lti.services import find_platform

    with app.app_context():
        found = find_platform("https://lms.example.edu", "sample-client")
        if found is None:
            from lms_plugin.lti.services import register_platform

            found = register_platform(
                "https://lms.example.edu", "sample-client", "https://lms.example.edu/auth",
                "https://lms.example.edu/token", "https://lms.example.edu/jwks",
                deployment_ids=["1"], organisation_name="General Hospital")
            db.session.commit()
        return found.id

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
    "accounts.forgot_password": (ANY, False),
    # An unknown link answers 410 ("expired or used"): the page itself is public.
    "accounts.reset_password": (ANY, False),
    "accounts.user_list": (frozenset({"admin"}), False),
    "accounts.audit_log": (frozenset({"admin", "officer"}), False),
    # Administration (issue 13): the admin home, people, settings, platforms, keys, audit.
    "admin.home": (frozenset({"admin"}), False),
    "admin.person": (frozenset({"admin"}), True),
    "accounts.settings": (frozenset({"admin"}), False),
    "accounts.grant_role": (frozenset({"admin"}), True),
    "accounts.revoke_role": (frozenset({"admin"}), True),
    "accounts.set_active": (frozenset({"admin"}), True),
    "accounts.add_local_signin": (frozenset({"admin"}), True),
    "accounts.audit_export": (frozenset({"admin", "officer"}), False),
    "lti_admin.platform_list": (frozenset({"admin"}), False),
    "lti_admin.platform_add": (frozenset({"admin"}), False),
    "lti_admin.platform_detail": (frozenset({"admin"}), True),
    "lti_admin.add_deployment": (frozenset({"admin"}), True),
    "lti_admin.set_enabled": (frozenset({"admin"}), True),
    "lti_admin.rotate_key": (frozenset({"admin"}), False),
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
    # Assignment rules and the staff roster upload (issue 14).
    "learning_admin.rules": (frozenset({"admin"}), False),
    "learning_admin.add_rule": (frozenset({"admin"}), False),
    "learning_admin.remove_rule": (frozenset({"admin"}), True),
    "learning_admin.staff_import": (frozenset({"admin"}), False),
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
    # Authoring (catalog/authoring_views.py): the organisation's authors and admins.
    **{f"authoring.{name}": (frozenset({"author", "admin"}), scoped) for name, scoped in (
        ("module_list", False), ("module_new", False), ("module_page", True),
        ("open_draft", True), ("metadata", True), ("lesson_new", True),
        ("lesson_edit", True), ("lesson_move", True), ("lesson_delete", True),
        ("image_upload", True), ("question_new", True), ("question_edit", True),
        ("question_move", True), ("question_delete", True), ("publish", True),
        ("retire", True), ("restore", True), ("diff", True), ("export_zip", True),
        ("import_zip", False), ("bank", True), ("system_list", False),
        ("system_new", False), ("system_edit", True))},
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
    # CE credit (issue 15): learner pages, the author's activity page, public verification.
    "credits.disclosure": (frozenset({"learner", "author", "officer", "admin"}), True),
    "credits.evaluation": (frozenset({"learner", "author", "officer", "admin"}), True),
    "credits.claim": (frozenset({"learner", "author", "officer", "admin"}), True),
    "credits.certificate": (frozenset({"learner", "author", "officer", "admin"}), True),
    "credits.certificate_pdf": (frozenset({"learner", "author", "officer", "admin"}), True),
    "credits.transcript": (frozenset({"learner", "author", "officer", "admin"}), False),
    "credits.edit_activity": (frozenset({"author", "admin"}), True),
    "credits.verify": (ANY, False),
    "credits.registry_exports": (frozenset({"officer", "admin"}), False),
    "credits.correct": (frozenset({"officer", "admin"}), True),
    "credits.registry_export_csv": (frozenset({"officer", "admin"}), False),
    # Clinical sign-off (issue 17): signed-in people who are required reviewers (a reviewer
    # is not an organisation role: AUTHENTICATED plus ``signoff.is_reviewer``, 403 for the
    # rest). No persona here is a reviewer (REVIEWERS_ONLY): the reviewer's side is tested in
    # tests/catalog/test_signoff_pages.py.
    "signoff.waiting": (SIGNED_IN, False),
    "signoff.review": (SIGNED_IN, True),
    "signoff.approve": (SIGNED_IN, True),
}

# The built-in demo LMS (issue 12.3), registered only when LMS_DEMO is on: all public, like an
# LMS's endpoints seen from the tool (launches pass the tool's LTI checks; the services need
# the demo's bearer token, tests/demo/test_demo_lms.py).
DEMO_EXPECTED: dict[str, tuple[frozenset[str], bool]] = {
    "demo.course": (ANY, False),
    "demo.launch": (ANY, False),
    "demo.auth": (ANY, False),
    "demo.jwks": (ANY, False),
    "demo.token": (ANY, False),
    "demo.lineitems": (ANY, False),
    "demo.lineitem": (ANY, False),
    "demo.scores": (ANY, False),
    "demo.memberships": (ANY, False),
    "demo.deep_link_return": (ANY, False),
}

# Pages of one person's own record: every other person of the organisation without the
# officer or admin role gets a 404, like another organisation's record.
OWN_RECORD = {"credits.certificate", "credits.certificate_pdf"}
# Pages of the organisation's named clinical reviewers only: signed-in is not enough, and no
# persona of the walk is a reviewer (every one is refused).
REVIEWERS_ONLY = {"signoff.waiting", "signoff.review", "signoff.approve"}

PERSONAS = ("anonymous", "learner", "author", "officer", "admin", "other_admin")


def expected_allowed(persona: str, allowed: frozenset[str], scoped: bool,
                     endpoint: str = "") -> bool:
    if endpoint in OWN_RECORD and persona in ("learner", "author"):
        return False
    if endpoint in REVIEWERS_ONLY:
        return False
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
        "slug": (sample := build_module(factory.app, slug="sample-module"))["slug"],
        # A CE certificate of another learner on that module (which offers CE credit).
        "code": sample_certificate(factory, sample),
        "registry": "pars",
        "position": 1,
        "job_id": make_job(factory.app, factory.organisation("General Hospital"),
                           status="failed", last_error="sample"),
        # An LMS course of the home organisation whose launches offered NRPS.
        "context_id": sample_context(factory.app),
        "token": "not-a-real-reset-token",
        # An assignment rule of the home organisation (on the sample module).
        "rule_id": _sample_rule(factory.app),
        # A question of the sample module's newest version, and a clinical system.
        "index": 1,
        "system_id": sample_system(factory.app),
        "platform_id": sample_platform(factory.app),
        "role": "learner",
        # A competency framework and a finished background export of the home organisation.
        "framework_id": sample_framework(factory.app),
        "export_id": sample_export(factory.app),
        # The sample module's newest version (a reviewer's sign-off page).
        "version_id": _sample_version(factory.app),
    }


def _sample_version(app) -> int:
    from lms_plugin.catalog import services
    from lms_plugin.extensions import db

    with app.app_context():
        module = db.session.scalar(select(Module).where(Module.slug == "sample-module"))
        return services.latest_version(module).id


def _sample_rule(app) -> int:
    from lms_plugin.db import utcnow
    from lms_plugin.extensions import db
    from lms_plugin.learning import assignments
    from lms_plugin.learning.models import AssignmentRule

    with app.app_context():
        module = db.session.scalar(select(Module).where(Module.slug == "sample-module"))
        rule = AssignmentRule(organisation_id=module.organisation_id, module_id=module.id,
                              due_days=30, created_at=utcnow())
        db.session.add(rule)
        db.session.commit()
        assert assignments.list_rules(module.organisation_id)
        return rule.id


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


def test_demo_routes_have_an_expectation_and_a_policy(app):
    from tests.demo.helpers import demo_app

    demo = demo_app(app)
    added = {rule.endpoint for rule in demo.url_map.iter_rules()} - {
        rule.endpoint for rule in app.url_map.iter_rules()}
    assert added == DEMO_EXPECTED.keys()
    for endpoint in added:
        assert policy_of(demo.view_functions[endpoint]) == DEMO_EXPECTED[endpoint][0]


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
                # As a WSGI server does: a streamed body (a CSV export) that nobody reads
                # is closed, which ends any context its generator pushed. Unclosed, such a
                # context stays pushed and the next request in this thread reuses its ``g``
                # (and so its signed-in person).
                response.close()
                want = expected_allowed(persona, allowed, scoped, rule.endpoint)
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
