"""Password reset by mail (issue 12 item 7): "Forgot your password?" -> an emailed
single-use link that expires -> a new password typed twice; the same answer for unknown
addresses; sessions end; audited. Mail goes through the outbox to a real SMTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from lms_plugin.accounts import password_reset
from lms_plugin.accounts.models import AuditEvent, LocalCredential, PasswordResetToken
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from tests.conftest import PASSWORD, csrf_token, login
from tests.smtp_server import Inbox, parts, smtp_backend

NEW = "a brand new passphrase"
SENT = "a link to choose a new password is on its way"


@pytest.fixture
def inbox(app) -> Iterator[Inbox]:
    with smtp_backend(app) as server:
        yield server


def _ask(client, email: str):
    return client.post("/auth/forgot", data={
        "email": email, "csrf_token": csrf_token(client, "/auth/forgot")})


def _deliver(app) -> None:
    """Run the worker twice: the request job (looks the address up), then the mail job."""
    with app.app_context():
        jobs.run_due_jobs("test-worker")
        jobs.run_due_jobs("test-worker")


def _link(inbox: Inbox) -> str:
    text, html = parts(inbox.messages[-1])
    link = re.search(r"http://tool\.test/auth/reset/\S+", text).group(0)
    assert f'href="{link}"' in html
    return link.removeprefix("http://tool.test")


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _hash(app, user_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(LocalCredential.password_hash)
                                 .where(LocalCredential.user_id == user_id))


def test_sign_in_page_offers_forgot_password(client):
    html = client.get("/auth/login").get_data(as_text=True)
    assert 'href="/auth/forgot"' in html and "Forgot your password?" in html


def test_reset_by_mail_end_to_end(app, client, factory, inbox):
    user_id = factory.user("admin", email="ada@example.org")
    other_device = app.test_client()
    assert login(other_device, "ada@example.org").status_code == 302
    before = _hash(app, user_id)

    response = _ask(client, "Ada@Example.org ")
    assert response.status_code == 200
    assert SENT in response.get_data(as_text=True)
    assert inbox.received == []  # never from inside the request: the outbox delivers it
    _deliver(app)
    [(rcpt, message)] = inbox.received
    assert rcpt == ["ada@example.org"]
    assert message["Subject"] == "Reset your training password"
    path = _link(inbox)
    with app.app_context():
        row = db.session.scalars(select(PasswordResetToken)).one()
        assert row.token_hash == password_reset.token_hash(path.rsplit("/", 1)[1])
        assert path.rsplit("/", 1)[1] not in row.token_hash  # only the hash is stored
        job = db.session.scalars(select(OutboxJob).where(OutboxJob.kind == "mail.send")).one()
        assert path not in str(job.payload)  # removed from the outbox once delivered

    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "ada@example.org" in page.get_data(as_text=True)

    token = csrf_token(client, path)
    mismatch = client.post(path, data={"new_password": NEW, "confirm_password": NEW + "x",
                                       "csrf_token": token})
    assert mismatch.status_code == 422
    assert "The two passwords are not the same" in mismatch.get_data(as_text=True)
    same = client.post(path, data={"new_password": PASSWORD, "confirm_password": PASSWORD,
                                   "csrf_token": token})
    assert same.status_code == 422
    assert "different from your current" in same.get_data(as_text=True)
    short = client.post(path, data={"new_password": "short", "confirm_password": "short",
                                    "csrf_token": token})
    assert short.status_code == 422
    assert _hash(app, user_id) == before  # nothing written by a refused password
    assert _count(app, PasswordResetToken, PasswordResetToken.used_at.is_(None)) == 1

    done = client.post(path, data={"new_password": NEW, "confirm_password": NEW,
                                   "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/auth/login"
    assert _hash(app, user_id) != before
    assert other_device.get("/admin/users").status_code == 302  # every session ended
    assert login(app.test_client(), "ada@example.org").status_code == 422  # old password
    assert login(app.test_client(), "ada@example.org", NEW).status_code == 302
    _deliver(app)
    notice = inbox.messages[-1]
    assert notice["Subject"] == "Your training password was changed"
    assert "If this was not you" in parts(notice)[0]
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.target_id == str(user_id)).order_by(AuditEvent.id)).all()
        assert "user.password_reset_requested" in actions and "user.password_reset" in actions

    again = client.get(path)  # single use
    assert again.status_code == 410
    assert "expired or has already been used" in again.get_data(as_text=True)
    reuse = client.post(path, data={"new_password": NEW + "!", "confirm_password": NEW + "!",
                                    "csrf_token": csrf_token(client, "/auth/forgot")})
    assert reuse.status_code == 410


def test_unknown_address_gets_the_same_answer_and_nothing_is_written(app, client, factory,
                                                                      inbox):
    factory.user("admin", email="ada@example.org")
    known = _ask(client, "ada@example.org").get_data(as_text=True)
    unknown = _ask(client, "nobody@example.org").get_data(as_text=True)
    strip = lambda html, email: html.replace(email, "EMAIL")  # noqa: E731
    assert strip(known, "ada@example.org") == strip(unknown, "nobody@example.org")
    # The request did the same work for both: one job naming the address, nothing else.
    with app.app_context():
        assert [(j.kind, j.payload) for j in db.session.scalars(
            select(OutboxJob).order_by(OutboxJob.id))] == [
            ("accounts.password_reset", {"email": "ada@example.org"}),
            ("accounts.password_reset", {"email": "nobody@example.org"})]
    assert _count(app, PasswordResetToken) == 0
    _deliver(app)
    assert _count(app, PasswordResetToken) == 1
    assert _count(app, OutboxJob, OutboxJob.kind == "mail.send") == 1
    assert [rcpt for rcpt, _ in inbox.received] == [["ada@example.org"]]


def test_bad_email_is_a_field_error(client):
    response = _ask(client, "not-an-email")
    assert response.status_code == 422
    assert 'id="email-error"' in response.get_data(as_text=True)


def test_the_link_expires_after_an_hour_and_a_new_request_replaces_the_old(app, client,
                                                                           factory, inbox):
    factory.user("admin", email="ada@example.org")
    _ask(client, "ada@example.org")
    _deliver(app)
    first = _link(inbox)
    _ask(client, "ada@example.org")
    _deliver(app)
    second = _link(inbox)
    assert first != second
    assert client.get(first).status_code == 410  # only the newest link works
    assert client.get(second).status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=61), tick=False):
        expired = client.get(second)
        assert expired.status_code == 410
        post = client.post(second, data={"new_password": NEW, "confirm_password": NEW,
                                         "csrf_token": csrf_token(client, "/auth/forgot")})
        assert post.status_code == 410


def test_an_inactive_account_gets_no_mail(app, client, factory, inbox):
    user_id = factory.user("admin", email="ada@example.org")
    with app.app_context():
        db.session.get(LocalCredential, _cred_id(user_id)).user.active = False
        db.session.commit()
    assert _ask(client, "ada@example.org").status_code == 200
    _deliver(app)
    assert _count(app, OutboxJob, OutboxJob.kind == "mail.send") == 0
    assert _count(app, PasswordResetToken) == 0


def _cred_id(user_id: int) -> int:
    return db.session.scalar(select(LocalCredential.id).where(
        LocalCredential.user_id == user_id))


def test_asking_too_often_is_throttled_with_words_for_people(app, client, factory):
    factory.user("admin", email="ada@example.org")
    statuses = [_ask(client, "ada@example.org").status_code for _ in range(6)]
    assert statuses[:5] == [200] * 5
    assert statuses[5] == 429
    body = _ask(client, "ada@example.org").get_data(as_text=True)
    assert "Too many attempts. Try again in a minute." in body
    assert _count(app, OutboxJob) == 5


def test_cli_reset_prints_a_one_time_password_to_change_at_sign_in(app, client, factory):
    user_id = factory.user("admin", email="ada@example.org")
    other_device = app.test_client()
    assert login(other_device, "ada@example.org").status_code == 302
    result = app.test_cli_runner().invoke(args=["users", "reset-password", "--email",
                                                "ADA@example.org"])
    assert result.exit_code == 0, result.output
    one_time = result.output.split("One-time password (change it at first sign-in): ")[1]
    one_time = one_time.strip()
    assert other_device.get("/admin/users").status_code == 302  # sessions ended
    response = login(client, "ada@example.org", one_time)
    assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    token = csrf_token(client, "/account/password")
    reused = client.post("/account/password", data={
        "current_password": one_time, "new_password": one_time, "confirm_password": one_time,
        "csrf_token": token})
    assert reused.status_code == 422
    assert "different from your current (or one-time) password" in reused.get_data(
        as_text=True)
    once = client.post("/account/password", data={
        "current_password": one_time, "new_password": NEW, "csrf_token": token})
    assert once.status_code == 422  # typed only once
    assert "Type the new password a second time." in once.get_data(as_text=True)
    changed = client.post("/account/password", data={
        "current_password": one_time, "new_password": NEW, "confirm_password": NEW,
        "csrf_token": token})
    assert changed.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.details).where(
            AuditEvent.action == "user.password_reset",
            AuditEvent.target_id == str(user_id)))["via"] == "command line"


def test_cli_reset_link_works_once(app, client, factory):
    factory.user("admin", email="ada@example.org")
    result = app.test_cli_runner().invoke(args=["users", "reset-password", "--email",
                                                "ada@example.org", "--link"])
    assert result.exit_code == 0, result.output
    path = re.search(r"http://tool\.test(/auth/reset/\S+)", result.output).group(1)
    assert login(app.test_client(), "ada@example.org").status_code == 302  # still works
    done = client.post(path, data={"new_password": NEW, "confirm_password": NEW,
                                   "csrf_token": csrf_token(client, path)})
    assert done.status_code == 302
    assert client.get(path).status_code == 410


def test_cli_reset_of_an_unknown_email_is_one_line(app):
    result = app.test_cli_runner().invoke(args=["users", "reset-password", "--email",
                                                "nobody@example.org"])
    assert result.exit_code == 1
    assert "No local account with the email 'nobody@example.org'" in result.output
    assert "Traceback" not in result.output
