"""Password reset by mail, and the CLI's one-time password (issue 12 item 7).

A person who forgot their password asks for a link; the request only queues an
``accounts.password_reset`` job naming the address (``accounts.tasks``), and the worker runs
:func:`request_reset`. So the answer, and its timing, are the same whether or not the address
has an account (no account enumeration; the OWASP Forgot Password Cheat Sheet asks for the
same message and a consistent response time for existing and unknown accounts). An account
gets a mail with a random single-use token that expires after :data:`TOKEN_LIFETIME`; only
the token's SHA-256 is stored. Setting the new password (:func:`reset_password`) does not
sign the person in, ends every session of theirs, mails them a notice that the password
changed (the same cheat sheet's advice) and is audited.

Services flush and never commit: the view or CLI command commits once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import render_template
from sqlalchemy import delete, select, update

from lms_plugin import mail
from lms_plugin.accounts import services, sessions
from lms_plugin.accounts.models import LocalCredential, PasswordResetToken, User
from lms_plugin.db import utcnow
from lms_plugin.errors import NotFound, ValidationFailed
from lms_plugin.extensions import db

#: How long an emailed link works (the OWASP Forgot Password Cheat Sheet asks for tokens
#: that expire; an hour covers a mail that arrives late).
TOKEN_LIFETIME = timedelta(hours=1)
#: The reset page's path; the link in the mail is ``LMS_BASE_URL + RESET_PATH + token``.
RESET_PATH = "/auth/reset/"
INVALID_LINK = ("This link has expired or has already been used. Ask for a new one: "
                "links work once, for an hour.")


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256, hex (64 characters)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(user: User, now: datetime) -> str:
    """A fresh token for ``user`` (32 random bytes, URL-safe); earlier unused tokens of the
    person are deleted, so only the newest link works."""
    db.session.execute(delete(PasswordResetToken).where(
        PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None)))
    token = secrets.token_urlsafe(32)
    db.session.add(PasswordResetToken(user_id=user.id, token_hash=token_hash(token),
                                      created_at=now, expires_at=now + TOKEN_LIFETIME))
    db.session.flush()
    return token


def request_reset(email: str, base_url: str, now: datetime | None = None) -> None:
    """Mail a reset link to the active local account with this ``email``, if there is one.

    Returns nothing either way, so the caller cannot tell (nor show) whether the account
    exists. ``base_url``: ``LMS_BASE_URL`` (the link is ``base_url + RESET_PATH + token``).
    The mail goes through the outbox (:func:`lms_plugin.mail.queue`, marked sensitive: its
    body is removed from the outbox row once delivered). Audited as
    ``user.password_reset_requested`` when the account exists. Flushes.
    """
    now = now or utcnow()
    address = (email or "").strip().lower()
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == address))
    if cred is None or not cred.user.active:
        return
    user = cred.user
    link = f"{base_url.rstrip('/')}{RESET_PATH}{_new_token(user, now)}"
    minutes = int(TOKEN_LIFETIME.total_seconds() // 60)
    context = {"name": user.name or cred.email, "link": link, "minutes": minutes,
               "organisation": user.organisation.name}
    mail.queue(mail.Mail(
        to=cred.email, subject="Reset your training password",
        text=render_template("accounts/mail/password_reset.txt", **context),
        html=render_template("accounts/mail/password_reset.html", **context),
    ), organisation_id=user.organisation_id, sensitive=True)
    services.record_audit("user.password_reset_requested", actor=None,
                          organisation_id=user.organisation_id, target=("user", user.id))


def _valid_token(token: str, now: datetime) -> PasswordResetToken:
    row = db.session.scalar(select(PasswordResetToken).where(
        PasswordResetToken.token_hash == token_hash(token or "")))
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise NotFound(INVALID_LINK, field="token")
    user = db.session.get(User, row.user_id)
    if user is None or not user.active or user.credential is None:
        raise NotFound(INVALID_LINK, field="token")
    return row


def check_token(token: str, now: datetime | None = None) -> User:
    """The person a reset link belongs to, while it is unused and unexpired; NotFound
    (field ``token``, :data:`INVALID_LINK`) otherwise. Reads only: opening the link (a mail
    scanner fetching it, say) does not use it up."""
    return db.session.get(User, _valid_token(token, now or utcnow()).user_id)


def check_new_password(user: User, new: str, field: str = "new_password") -> None:
    """A new password is at least ``services.MIN_PASSWORD_LENGTH`` characters and differs
    from the person's current one (which may be the one-time password the CLI printed);
    ValidationFailed naming ``field`` otherwise."""
    if len(new) < services.MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Choose a password of at least {services.MIN_PASSWORD_LENGTH} "
                               "characters.", field=field)
    cred = user.credential
    if cred is not None and services.verify_password(cred.password_hash, new):
        raise ValidationFailed("Choose a password different from your current (or "
                               "one-time) password.", field=field)


def reset_password(token: str, new: str, now: datetime | None = None) -> User:
    """Set the password of the link's owner to ``new`` and use the link up.

    Checks :func:`check_new_password` first (nothing is used up by a refused password),
    then claims the token with one conditional UPDATE … RETURNING (two submissions of one
    link: exactly one succeeds). Every session of the person ends (server-side records and
    the per-person token), other reset links are deleted, ``user.password_reset`` is
    audited and a "your password was changed" notice is mailed (through the outbox).
    Raises NotFound (field ``token``) for an unknown, used or expired link and
    ValidationFailed (field ``new_password``) for a refused password. Flushes.
    """
    now = now or utcnow()
    row = _valid_token(token, now)
    user = db.session.get(User, row.user_id)
    check_new_password(user, new)
    claimed = db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None),
               PasswordResetToken.expires_at > now)
        .values(used_at=now).returning(PasswordResetToken.id),
        execution_options={"synchronize_session": False},
    ).first()
    if claimed is None:
        raise NotFound(INVALID_LINK, field="token")
    db.session.execute(delete(PasswordResetToken).where(
        PasswordResetToken.user_id == user.id, PasswordResetToken.id != row.id))
    _set_password(user, new, must_change=False)
    ended = sessions.end_all(user.id)
    services.record_audit("user.password_reset", actor=user, target=("user", user.id),
                          details={"via": "email link", "sessions_ended": ended})
    context = {"name": user.name or user.credential.email,
               "organisation": user.organisation.name, "when": f"{now:%-d %b %Y %H:%M} UTC"}
    mail.queue(mail.Mail(
        to=user.credential.email, subject="Your training password was changed",
        text=render_template("accounts/mail/password_changed.txt", **context),
        html=render_template("accounts/mail/password_changed.html", **context),
    ), organisation_id=user.organisation_id)
    return user


def _set_password(user: User, password: str, *, must_change: bool) -> None:
    user.credential.password_hash = services.hash_password(password)
    user.credential.must_change_password = must_change
    user.session_token = secrets.token_urlsafe(24)  # every signed cookie of the person dies
    db.session.flush()


def _local_account(email: str) -> User:
    address = (email or "").strip().lower()
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == address))
    if cred is None:
        raise NotFound(f"No local account with the email {address!r} (people arriving "
                       "from the LMS have no password here)", field="email")
    return cred.user


def issue_one_time_password(email: str) -> tuple[User, str]:
    """``lms-plugin users reset-password --email E``: a new one-time password for a local
    account (the first admin locked out, say), to be changed at the next sign-in, as
    ``ensure-admin`` prints one. Every session of the person ends; audited as
    ``user.password_reset`` (via ``command line``). Raises NotFound for an unknown email.
    Returns the person and the password (shown once, never stored in clear)."""
    user = _local_account(email)
    password = secrets.token_urlsafe(15)
    _set_password(user, password, must_change=True)
    db.session.execute(delete(PasswordResetToken).where(PasswordResetToken.user_id == user.id))
    ended = sessions.end_all(user.id)
    services.record_audit("user.password_reset", actor=None,
                          organisation_id=user.organisation_id, target=("user", user.id),
                          details={"via": "command line", "sessions_ended": ended})
    return user, password


def issue_reset_link(email: str, base_url: str, now: datetime | None = None) -> tuple[User, str]:
    """``lms-plugin users reset-password --email E --link``: a reset link for a local account,
    printed instead of mailed (for an install whose mail is not set up yet). The password
    stays as it is until the link is used. Raises NotFound for an unknown email."""
    now = now or utcnow()
    user = _local_account(email)
    link = f"{base_url.rstrip('/')}{RESET_PATH}{_new_token(user, now)}"
    services.record_audit("user.password_reset_requested", actor=None,
                          organisation_id=user.organisation_id, target=("user", user.id),
                          details={"via": "command line"})
    return user, link
