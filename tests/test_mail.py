"""lms_plugin.mail: messages built with both parts, delivered to a real SMTP server on
loopback (aiosmtpd) or to .eml files; failures classified for the outbox's retries."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from lms_plugin import mail
from lms_plugin.config import ConfigError, load_config
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from tests.smtp_server import free_port, parts, silent_server, smtp_server

SAMPLE = mail.Mail(to="Ana Núñez <ana@example.org>", subject="Due soon:\n BCMA overrides",
                   text="Hello Ana,\nopen https://tool.test/m/bcma\n",
                   html='<p>Hello Ana, <a href="https://tool.test/m/bcma">open it</a></p>')


def _smtp(port: int, **extra) -> dict:
    return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port,
            "MAIL_TIMEOUT": 5.0, **extra}


def test_smtp_delivery_arrives_with_both_parts_and_headers():
    message = mail.build(SAMPLE, "Training <no-reply@hospital.org>",
                         message_id="<outbox-7@hospital.org>")
    with smtp_server() as inbox:
        where = mail.deliver(message, _smtp(inbox.port))
    assert where == f"smtp://127.0.0.1:{inbox.port}"
    [(rcpt, got)] = inbox.received
    assert rcpt == ["ana@example.org"]
    assert got["From"] == "Training <no-reply@hospital.org>"
    assert got["To"] == "Ana Núñez <ana@example.org>"
    assert got["Subject"] == "Due soon: BCMA overrides"  # the line break cannot inject
    assert got["Message-ID"] == "<outbox-7@hospital.org>"
    assert got["Auto-Submitted"] == "auto-generated"
    assert got.get_content_type() == "multipart/alternative"
    text, html = parts(got)
    assert "https://tool.test/m/bcma" in text
    assert 'href="https://tool.test/m/bcma"' in html


def test_tls_is_never_dropped_for_clear_text():
    """MAIL_USE_TLS=1 and a server that offers no STARTTLS: a (retried) failure, nothing
    sent in clear."""
    with smtp_server() as inbox, pytest.raises(mail.MailError) as info:
        mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"),
                     _smtp(inbox.port, MAIL_USE_TLS=True))
    assert info.value.transient and "STARTTLS" in info.value.message.upper()
    assert inbox.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_username_and_password():
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"tool", b"s3cret")
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    options = {"authenticator": authenticator, "auth_require_tls": False,
               "auth_required": True, "auth_exclude_mechanism": ["LOGIN"]}
    with smtp_server(**options) as inbox:
        mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"),
                     _smtp(inbox.port, MAIL_USERNAME="tool", MAIL_PASSWORD="s3cret"))
        with pytest.raises(mail.MailError) as info:
            mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"),
                         _smtp(inbox.port, MAIL_USERNAME="tool", MAIL_PASSWORD="wrong"))
    assert len(inbox.received) == 1
    assert not info.value.transient and "535" in info.value.message  # refused: no retry


def test_file_backend_writes_one_eml_per_message(tmp_path: Path):
    settings = {"MAIL_BACKEND": "file", "MAIL_FILE_DIR": str(tmp_path / "mail")}
    first = mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"), settings)
    second = mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"), settings)
    files = sorted((tmp_path / "mail").iterdir())
    assert [str(f) for f in files] == sorted([first, second])
    assert all(f.suffix == ".eml" for f in files)
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["To"] == "Ana Núñez <ana@example.org>"
    assert "https://tool.test/m/bcma" in parts(parsed)[0]


def test_unreachable_server_is_transient():
    with pytest.raises(mail.MailError) as info:
        mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"), _smtp(free_port()))
    assert info.value.transient


@pytest.mark.parametrize(("reply", "transient"), [
    ("550 5.1.1 No such user here", False),
    ("451 4.3.0 Mailbox busy, try later", True),
])
def test_refused_recipient_is_permanent_for_5xx_and_transient_for_4xx(reply, transient):
    with smtp_server() as inbox:
        inbox.refuse_rcpt = reply
        with pytest.raises(mail.MailError) as info:
            mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"), _smtp(inbox.port))
    assert info.value.transient is transient
    assert reply.split()[0] in info.value.message
    assert inbox.received == []


def test_a_silent_server_hits_the_total_deadline():
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(mail.MailError) as info:
            mail.deliver(mail.build(SAMPLE, "no-reply@hospital.org"),
                         _smtp(port, MAIL_TIMEOUT=0.5))
        elapsed = time.monotonic() - started
    assert info.value.transient
    assert elapsed < 3


@pytest.mark.parametrize("to", ["not an address", "a@b.org, c@d.org", "x@y.org\nBcc: z@z.org"])
def test_bad_recipients_are_refused_before_anything_is_queued(app, to):
    with app.app_context(), pytest.raises(mail.MailError):
        mail.queue(mail.Mail(to=to, subject="s", text="t", html="<p>t</p>"))
    with app.app_context():
        assert db.session.scalars(select(OutboxJob)).all() == []


def test_queue_many_checks_every_address_first(app):
    good = SAMPLE
    bad = mail.Mail(to="nobody", subject="s", text="t", html="<p>t</p>")
    with app.app_context():
        with pytest.raises(mail.MailError):
            mail.queue_many([good, bad])
        assert db.session.scalars(select(OutboxJob)).all() == []
        mail.queue_many([good, good], organisation_id=None)
        db.session.commit()
        assert [j.kind for j in db.session.scalars(select(OutboxJob))] == ["mail.send"] * 2


def test_queue_writes_a_job_the_worker_delivers_once(app):
    with smtp_server() as inbox:
        app.config.update(_smtp(inbox.port), MAIL_FROM="Training <no-reply@hospital.org>")
        try:
            with app.app_context():
                mail.queue(SAMPLE, sensitive=True)
                db.session.commit()
                job = db.session.scalars(select(OutboxJob)).one()
                assert (job.kind, job.status) == ("mail.send", "pending")
                assert inbox.received == []  # nothing leaves inside the transaction
                report = jobs.run_due_jobs("w1")
                assert report.outcomes["succeeded"] == 1
                again = jobs.run_due_jobs("w1")
                assert again.claimed == 0
                db.session.expire_all()
                done = db.session.get(OutboxJob, job.id)
                # The body (a reset link, say) is gone from the row once delivered.
                assert done.payload["text"] == done.payload["html"] == "[removed after delivery]"
                assert done.payload["to"] == SAMPLE.to
        finally:
            app.config.update(MAIL_BACKEND="file")
    [message] = inbox.messages
    assert message["Message-ID"] == f"<outbox-{job.id}@hospital.org>"


def test_a_server_that_is_down_makes_the_job_retry_and_a_5xx_rejects_it(app):
    app.config.update(_smtp(free_port()))
    try:
        with app.app_context():
            mail.queue(SAMPLE)
            db.session.commit()
            assert jobs.run_due_jobs("w1").outcomes["pending"] == 1  # retried later
            job = db.session.scalars(select(OutboxJob)).one()
            assert "ConnectionRefusedError" in job.last_error
        with smtp_server() as inbox:
            inbox.refuse_rcpt = "550 5.1.1 No such user here"
            app.config["MAIL_PORT"] = inbox.port
            with app.app_context():
                db.session.execute(OutboxJob.__table__.update().values(
                    next_attempt_at=job.created_at))
                db.session.commit()
                assert jobs.run_due_jobs("w1").outcomes["rejected"] == 1
    finally:
        app.config.update(MAIL_BACKEND="file")


def test_file_backend_is_the_default(tmp_path):
    cfg = load_config(tmp_path, {})
    assert cfg["MAIL_BACKEND"] == "file"
    assert cfg["MAIL_FILE_DIR"] == str(tmp_path / "mail")
    assert (cfg["MAIL_PORT"], cfg["MAIL_USE_TLS"], cfg["MAIL_TIMEOUT"]) == (25, False, 30.0)
    smtp = load_config(tmp_path, {"MAIL_BACKEND": "SMTP", "MAIL_SERVER": "mail.hospital.org",
                                  "MAIL_USE_TLS": "1", "MAIL_USERNAME": "tool",
                                  "MAIL_PASSWORD": "s3cret", "MAIL_TIMEOUT": "10s",
                                  "MAIL_FROM": "Training <no-reply@hospital.org>"})
    assert (smtp["MAIL_BACKEND"], smtp["MAIL_PORT"], smtp["MAIL_USE_TLS"],
            smtp["MAIL_TIMEOUT"]) == ("smtp", 587, True, 10.0)


@pytest.mark.parametrize(("env", "message"), [
    ({"MAIL_BACKEND": "sendmail"}, "MAIL_BACKEND must be file or smtp"),
    ({"MAIL_BACKEND": "smtp"}, "MAIL_SERVER is not set"),
    ({"MAIL_PORT": "70000"}, "MAIL_PORT must be a port number"),
    ({"MAIL_PORT": "smtp"}, "MAIL_PORT must be a port number"),
    ({"MAIL_USE_TLS": "maybe"}, "MAIL_USE_TLS must be 1 or 0"),
    ({"MAIL_USERNAME": "tool"}, "MAIL_USERNAME and MAIL_PASSWORD go together"),
    ({"MAIL_FROM": "no-reply"}, "MAIL_FROM: 'no-reply' is not one email address"),
    ({"MAIL_FROM": "a@b.org, c@d.org"}, "MAIL_FROM"),
    ({"MAIL_TIMEOUT": "0"}, "MAIL_TIMEOUT must be a positive duration"),
])
def test_bad_mail_settings_are_refused_at_start(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env)


def test_production_smtp_needs_a_sender_and_tls_for_a_login(tmp_path):
    base = {"LMS_ENV": "production", "SECRET_KEY": "x" * 40,
            "DATABASE_URL": "postgresql+psycopg://db/lms", "LMS_BASE_URL": "https://t.org",
            "MAIL_BACKEND": "smtp", "MAIL_SERVER": "mail.hospital.org"}
    with pytest.raises(ConfigError, match="MAIL_FROM is not set"):
        load_config(tmp_path, base)
    base["MAIL_FROM"] = "no-reply@hospital.org"
    with pytest.raises(ConfigError, match="MAIL_USERNAME needs MAIL_USE_TLS=1"):
        load_config(tmp_path, {**base, "MAIL_USERNAME": "u", "MAIL_PASSWORD": "p"})
    assert load_config(tmp_path, {**base, "MAIL_USERNAME": "u", "MAIL_PASSWORD": "p",
                                  "MAIL_USE_TLS": "1"})["MAIL_USE_TLS"] is True
