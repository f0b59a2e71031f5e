"""The built-in demo LMS (issue 12.3): real LTI 1.3 launches, deep linking, AGS and NRPS
against the tool, over HTTP on loopback, from its own demo organisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts import services as accounts
from lms_plugin.accounts.models import Organisation, RoleGrant, User
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.demo import services as demo
from lms_plugin.demo.models import DemoLineItem, DemoLink, DemoScore
from lms_plugin.errors import NotFound
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.learning import services as learning
from lms_plugin.lti import nrps
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiPlatform
from tests.demo.helpers import correct_responses, demo_app, launch, local, served


@pytest.fixture(scope="module")
def live(app):
    """The demo-enabled app, served on 127.0.0.1 (yields (app, base URL))."""
    application = demo_app(app)
    with served(application) as url:
        yield application, url


@pytest.fixture
def demo_client(live):
    return live[0].test_client()


def _course(client) -> str:
    page = client.get("/demo/")
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


def _user(sub: str) -> User:
    return db.session.scalar(select(User).join(LtiIdentity, LtiIdentity.user_id == User.id)
                             .where(LtiIdentity.sub == sub))


def test_the_demo_is_off_unless_enabled(client, factory):
    assert client.get("/demo/").status_code == 404
    assert client.get("/demo/jwks").status_code == 404


def test_the_course_page_sets_up_a_labelled_demo_organisation_once(live, demo_client):
    app, url = live
    html = _course(demo_client)
    assert "Demo LMS, built into the training tool" in html
    assert "Nia Okafor" in html and "No grades yet" in html
    _course(demo_client)  # idempotent
    with app.app_context():
        orgs = db.session.scalars(select(Organisation)).all()
        assert [(o.name, o.is_demo) for o in orgs] == [("Demo Hospital (demo LMS)", True)]
        platform = db.session.scalar(select(LtiPlatform))
        assert (platform.issuer, platform.key_set_url) == (url + "/demo", url + "/demo/jwks")
        assert platform.organisation_id == orgs[0].id
        modules = db.session.scalar(select(func.count()).select_from(Module).where(
            Module.organisation_id == orgs[0].id))
        assert modules >= 7
        # The shipped content is published here, and only here (issue 17): a real
        # organisation gets it as drafts awaiting its own clinical sign-off.
        statuses = set(db.session.scalars(select(ModuleVersion.status).join(Module).where(
            Module.organisation_id == orgs[0].id)))
        assert statuses == {"published"}
        assert [link.custom for link in db.session.scalars(select(DemoLink))] == [
            {"module": demo.FIRST_MODULE}]


def test_commands_without_an_organisation_ignore_the_demo_one(live, demo_client, factory):
    app, _ = live
    _course(demo_client)
    with app.app_context(), pytest.raises(NotFound, match="no organisation yet"):
        accounts.resolve_organisation(None)  # the demo's is never the default
    factory.organisation("Mercy Health")
    with app.app_context():
        assert accounts.resolve_organisation(None).name == "Mercy Health"
        assert accounts.find_organisation("demo-lms").is_demo  # named, it is found


def test_a_nurse_launches_passes_the_quiz_and_the_grade_reaches_the_gradebook(
        live, demo_client):
    app, url = live
    _course(demo_client)
    with app.app_context():
        link_id = db.session.scalar(select(DemoLink.id))
    response = launch(demo_client, "nurse", link_id)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith(f"/modules/{demo.FIRST_MODULE}")
    now = datetime.now(UTC)
    with app.app_context():
        nurse = _user("demo-nurse")
        assert nurse.name == "Nia Okafor" and nurse.organisation.is_demo
        module = db.session.scalar(select(Module).where(
            Module.organisation_id == nurse.organisation_id, Module.slug == demo.FIRST_MODULE))
        version = learning.current_version(module)
        attempt = learning.start_quiz(nurse.id, version.id, now)
        db.session.commit()
        outcome = learning.submit_quiz(attempt.id, nurse.id,
                                       correct_responses(db.session, attempt), now)
        db.session.commit()
        assert outcome.attempt.passed
        # The worker: token (client assertion) → line item search/creation → score, all
        # over HTTP to the demo's endpoints on this loopback server.
        jobs.run_due_jobs("demo-test", now=now + timedelta(minutes=5))
        db.session.remove()
        item = db.session.scalar(select(DemoLineItem))
        assert item.resource_id == demo.FIRST_MODULE
        assert item.resource_link_id == f"demo-link-{link_id}"
        score = db.session.scalar(select(DemoScore))
        assert (score.user_id, score.score_given, score.score_maximum) == (
            "demo-nurse", 100.0, 100.0)
        assert (score.activity_progress, score.grading_progress) == ("Completed",
                                                                     "FullyGraded")
    html = _course(demo_client)
    assert "100 / 100" in html


def test_the_instructor_adds_a_module_through_the_picker(live, demo_client):
    app, _ = live
    _course(demo_client)
    response = launch(demo_client, "instructor")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/lti/deep-link")
    picker = demo_client.get("/lti/deep-link")
    assert picker.status_code == 200
    assert "cpoe-safe-ordering" in picker.get_data(as_text=True)
    from tests.conftest import csrf_token

    answer = demo_client.post("/lti/deep-link", data={
        "csrf_token": csrf_token(demo_client, "/lti/deep-link"),
        "module": ["cpoe-safe-ordering"]})
    assert answer.status_code == 200
    from tests.demo.helpers import form_action, hidden_inputs

    html = answer.get_data(as_text=True)
    back = demo_client.post(local(form_action(html, "lti-deep-link-return")),
                            data=hidden_inputs(html))
    assert back.status_code == 302 and local(back.headers["Location"]) == "/demo/"
    with app.app_context():
        links = db.session.scalars(select(DemoLink).order_by(DemoLink.id)).all()
        assert [link.custom.get("module") for link in links] == [demo.FIRST_MODULE,
                                                                 "cpoe-safe-ordering"]
        item = db.session.scalar(select(DemoLineItem))
        assert (item.resource_id, item.resource_link_id) == (
            "cpoe-safe-ordering", links[1].resource_link_id)
    assert "Added to the demo course" in _course(demo_client)
    # A replayed answer is refused: the data came from one request only... and a forged one
    # (not signed by the tool) never adds a link.
    forged = demo_client.post("/demo/deep-link-return", data={"JWT": "x.y.z"})
    assert forged.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DemoLink)) == 2


def test_an_officer_launch_gives_the_officer_role(live, demo_client):
    app, _ = live
    _course(demo_client)
    with app.app_context():
        link_id = db.session.scalar(select(DemoLink.id))
    assert launch(demo_client, "officer", link_id).status_code == 302
    with app.app_context():
        officer = _user("demo-officer")
        roles = set(db.session.scalars(select(RoleGrant.role).where(
            RoleGrant.user_id == officer.id)))
        assert "officer" in roles


def test_the_tool_reads_the_roster_through_nrps(live, demo_client):
    app, _ = live
    _course(demo_client)
    with app.app_context():
        link_id = db.session.scalar(select(DemoLink.id))
    launch(demo_client, "nurse", link_id)
    with app.app_context():
        context = db.session.scalar(select(LtiContext))
        report = nrps.sync_context(context.id)
        db.session.commit()
        assert report is not None
        subs = set(db.session.scalars(select(LtiIdentity.sub)))
        assert subs == {"demo-nurse", "demo-instructor", "demo-officer"}
    assert "The tool last read this roster" in _course(demo_client)


def test_the_service_endpoints_need_the_tools_signed_assertion(live, demo_client):
    _course(demo_client)
    assert demo_client.get("/demo/lineitems").status_code == 401
    assert demo_client.get("/demo/memberships",
                           headers={"Authorization": "Bearer forged"}).status_code == 401
    refused = demo_client.post("/demo/token", data={
        "grant_type": "client_credentials", "client_assertion_type": demo.ASSERTION_TYPE,
        "client_assertion": "not-a-jwt", "scope": demo.SCOPE_SCORE})
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"


def test_the_auth_endpoint_refuses_what_the_course_did_not_issue(live, demo_client):
    _course(demo_client)
    opened = demo_client.get("/demo/auth")
    assert opened.status_code == 400
    assert "start one from the demo course page" in opened.get_data(as_text=True)
    forged = demo_client.get("/demo/auth?scope=openid&response_type=id_token&client_id="
                             "lms-plugin-demo&response_mode=form_post&prompt=none"
                             "&redirect_uri=http://evil.test/&nonce=n&state=s")
    assert forged.status_code == 400
    assert "redirect_uri" in forged.get_data(as_text=True)
    assert demo_client.get("/demo/launch?person=ghost").status_code == 404


def test_the_landing_page_links_the_demo_only_when_it_is_on(client, demo_client):
    assert 'href="/demo/"' in demo_client.get("/").get_data(as_text=True)
    assert "/demo/" not in client.get("/").get_data(as_text=True)


def test_a_link_added_under_another_base_url_names_the_current_one(live, demo_client):
    import jwt

    from tests.demo.helpers import hidden_inputs

    app, url = live
    _course(demo_client)
    with app.app_context():
        link = db.session.scalar(select(DemoLink))
        link.url = "http://127.0.0.1:1/lti/launch?module=" + demo.FIRST_MODULE  # old port
        db.session.commit()
        link_id = link.id
    to_login = demo_client.get(f"/demo/launch?person=nurse&link={link_id}")
    to_auth = demo_client.get(local(to_login.headers["Location"]))
    page = demo_client.get(local(to_auth.headers["Location"])).get_data(as_text=True)
    claims = jwt.decode(hidden_inputs(page)["id_token"], options={"verify_signature": False})
    assert claims[demo.CLAIM + "target_link_uri"] == (
        f"{url}/lti/launch?module={demo.FIRST_MODULE}")
    response = demo_client.post("/lti/launch", data=hidden_inputs(page))
    assert response.headers["Location"].endswith(f"/modules/{demo.FIRST_MODULE}")
