"""End-to-end launches against the test platform: login, id_token, user, session, redirect."""

from __future__ import annotations

from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiResourceLink
from tests.dbapi import rowcount_unknown
from tests.lti.platform import LIS, login_state, oidc_login


def _user_by_sub(app, sub: str) -> User:
    with app.app_context():
        identity = db.session.scalar(select(LtiIdentity).where(LtiIdentity.sub == sub))
        assert identity is not None
        user = identity.user
        _ = user.role_names, user.organisation
        db.session.expunge_all()
        return user


def test_login_redirects_to_platform_with_state_cookie_and_nonce(client, moodle):
    response = oidc_login(client, moodle)
    login = login_state(response)
    assert login.redirect.startswith(moodle.auth_login_url + "?")
    assert "redirect_uri=http%3A%2F%2Ftool.test%2Flti%2Flaunch" in login.redirect
    assert f"client_id={moodle.client_id}" in login.redirect
    assert "login_hint=hint-1" in login.redirect and "lti_message_hint=msg-1" in login.redirect
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith(f"lti1p3-{login.state}=") and "HttpOnly" in c for c in cookies)


def test_login_by_post_works_too(client, moodle):
    assert login_state(oidc_login(client, moodle, method="POST")).state


def test_full_launch_logs_in_and_records_course_link_and_enrolment(app, client, moodle,
                                                                   launcher):
    response = launcher.launch(client, moodle, {
        "lti:custom": {"module": "bcma-basics", "job_role": "RN", "department": "ICU",
                       "facility": "Main campus"},
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
            "scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
            "lineitem": "https://lms.example/lineitems/7",
            "lineitems": "https://lms.example/lineitems"},
        "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": {
            "context_memberships_url": "https://lms.example/memberships",
            "service_versions": ["2.0"]},
    })
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/modules/bcma-basics"

    user = _user_by_sub(app, "user-1")
    assert (user.name, user.email) == ("Jane Nurse", "jane.nurse@example.org")
    assert (user.job_role, user.department, user.facility) == ("RN", "ICU", "Main campus")
    assert user.role_names == {"learner"}
    with app.app_context():
        context = db.session.scalar(select(LtiContext))
        link = db.session.scalar(select(LtiResourceLink))
        membership = db.session.scalar(select(LtiMembership))
        assert (context.context_id, context.title, context.label) == (
            "course-1", "BCMA training", "BCMA")
        assert context.memberships_url == "https://lms.example/memberships"
        assert (link.resource_link_id, link.module_slug) == ("link-1", "bcma-basics")
        assert link.lineitem_url == "https://lms.example/lineitems/7"
        assert link.ags_scopes == ["https://purl.imsglobal.org/spec/lti-ags/scope/score"]
        assert membership.user_id == user.id and membership.roles == [
            LIS + "membership#Learner"]
        context_pk, link_pk = context.id, link.id

    with client.session_transaction() as sess:
        assert sess["_user_id"].startswith(f"{user.id}:")
        assert sess["lti"] == {
            "platform_id": moodle.platform_id, "deployment_id": "1", "context_pk": context_pk,
            "resource_link_pk": link_pk, "module_slug": "bcma-basics",
            "message_type": "LtiResourceLinkRequest", "course_rights": [],
            "return_url": None, "document_target": None}


def test_second_launch_updates_the_same_person(app, client, moodle, launcher, count_rows):
    assert launcher.launch(client, moodle).status_code == 302
    before = count_rows()
    response = launcher.launch(client, moodle, {"name": "Jane Q. Nurse", "email":
                                                "JQN@Example.org"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/home"
    assert count_rows() == before
    user = _user_by_sub(app, "user-1")
    assert (user.name, user.email) == ("Jane Q. Nurse", "jqn@example.org")


def test_module_from_target_link_uri_query(client, moodle, launcher):
    response = launcher.launch(client, moodle, {
        "lti:target_link_uri": "http://tool.test/lti/launch?module=downtime-101"})
    assert response.headers["Location"] == "/modules/downtime-101"


def test_session_is_cleared_before_login(app, client, moodle, launcher, login_as):
    login_as("admin")
    with client.session_transaction() as sess:
        sess["leftover"] = "x"
    assert launcher.launch(client, moodle).status_code == 302
    with client.session_transaction() as sess:
        assert "leftover" not in sess
    user = _user_by_sub(app, "user-1")
    with client.session_transaction() as sess:
        assert sess["_user_id"].startswith(f"{user.id}:")


def test_launched_user_is_signed_in_for_later_requests(app, client, moodle, launcher):
    assert client.get("/account/password").status_code == 302  # anonymous: sent to sign in
    launcher.launch(client, moodle)
    assert client.get("/account/password").status_code == 200


def test_launch_succeeds_when_the_driver_cannot_count_rows(app, client, moodle, launcher,
                                                           count_rows):
    """Issue 9: on PostgreSQL without Redis every launch was refused (nonce claim trusted
    ``rowcount``, -1 there); the replay of the same id_token is still refused."""
    before = count_rows()
    with rowcount_unknown(app):
        login = launcher.login(client, moodle)
        token = moodle.sign(moodle.claims(login.nonce))
        first = client.post("/lti/launch", data={"id_token": token, "state": login.state})
        assert first.status_code == 302, first.get_data(as_text=True)
        replay = client.post("/lti/launch", data={"id_token": token, "state": login.state})
        assert replay.status_code in (400, 401)
    assert _user_by_sub(app, "user-1").name == "Jane Nurse"
    assert count_rows()["LtiIdentity"] == before["LtiIdentity"] + 1
