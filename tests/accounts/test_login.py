from __future__ import annotations

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, LocalCredential, User
from lms_plugin.extensions import db
from tests.conftest import PASSWORD, csrf_token, login


def test_login_success_regenerates_session_and_audits(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker before sign-in"
    response = login(client, "ADA@example.org ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"].startswith(f"{user_id}:")
    assert client.get("/admin/users").status_code == 200
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.login"))
        assert event.actor_id == user_id
        assert db.session.get(User, user_id).last_login_at is not None


def test_wrong_password_and_unknown_email_look_the_same(client, factory):
    factory.user("admin", email="ada@example.org")
    wrong = login(client, "ada@example.org", "not the password")
    unknown = login(client, "nobody@example.org", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 422
        assert "Email or password is not correct." in response.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_login_without_csrf_token_is_rejected(client, factory):
    factory.user("admin", email="ada@example.org")
    response = client.post("/auth/login", data={"email": "ada@example.org",
                                                "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_login_form_names_the_bad_field(client):
    token = csrf_token(client)
    response = client.post("/auth/login", data={"email": "not-an-email", "password": "",
                                                "csrf_token": token})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in page
    assert "Invalid email address." in page
    assert "This field is required." in page


def test_failed_logins_are_rate_limited_per_account(app, client, factory):
    factory.user("admin", email="ada@example.org")
    for _ in range(5):
        assert login(client, "ada@example.org", "wrong password!").status_code == 422
    blocked = login(client, "ada@example.org", PASSWORD)
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    # another account from a different address is unaffected
    other = app.test_client()
    factory.user("admin", email="bob@example.org")
    token = csrf_token(other)
    ok = other.post("/auth/login", data={"email": "bob@example.org", "password": PASSWORD,
                                         "csrf_token": token},
                    environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert ok.status_code == 302


def test_successful_logins_do_not_count_against_the_limit(client, factory):
    factory.user("admin", email="ada@example.org")
    for _ in range(7):
        assert login(client, "ada@example.org").status_code == 302


def test_open_redirect_is_refused(client, factory):
    factory.user("admin", email="ada@example.org")
    token = csrf_token(client)
    response = client.post("/auth/login?next=//evil.example/steal",
                           data={"email": "ada@example.org", "password": PASSWORD,
                                 "csrf_token": token})
    assert response.headers["Location"] == "/"
    token = csrf_token(client)
    response = client.post("/auth/login?next=/admin/users",
                           data={"email": "ada@example.org", "password": PASSWORD,
                                 "csrf_token": token})
    assert response.headers["Location"] == "/admin/users"


def test_logout_needs_post_with_csrf_and_ends_the_session(client, login_as):
    login_as("admin")
    assert client.get("/auth/logout").status_code == 405
    assert client.post("/auth/logout").status_code == 400  # no CSRF token
    assert client.get("/admin/users").status_code == 200
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/admin")})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 302


def test_password_change_signs_out_other_sessions(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    other_device = app.test_client()
    login(other_device, "ada@example.org")
    login(client, "ada@example.org")
    token = csrf_token(client, "/account/password")
    too_short = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "short", "csrf_token": token})
    assert too_short.status_code == 422
    wrong = client.post("/account/password", data={
        "current_password": "nope nope nope", "new_password": "a much longer password",
        "confirm_password": "a much longer password",
        "csrf_token": token})
    assert wrong.status_code == 422
    assert "current password is wrong" in wrong.get_data(as_text=True)
    with app.app_context():
        unchanged = db.session.scalar(select(LocalCredential.password_hash)
                                      .where(LocalCredential.user_id == user_id))
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a much longer password",
        "confirm_password": "a much longer password",
        "csrf_token": token})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200  # this session continues
    assert other_device.get("/admin/users").status_code == 302  # the other one is gone
    with app.app_context():
        changed = db.session.scalar(select(LocalCredential.password_hash)
                                    .where(LocalCredential.user_id == user_id))
    assert changed != unchanged
    assert login(app.test_client(), "ada@example.org", "a much longer password").status_code == 302


def test_admin_sees_only_own_organisation(app, client, factory, login_as):
    mine = factory.user("learner", email="mine@example.org")
    theirs = factory.user("learner", email="theirs@example.org", org="Other Health")
    login_as("admin")
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "mine@example.org" in listing
    assert "theirs@example.org" not in listing
    assert client.get(f"/admin/users/{mine}").status_code == 200
    assert client.get(f"/admin/users/{theirs}").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 3
