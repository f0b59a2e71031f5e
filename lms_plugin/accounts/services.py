"""Account rules: organisations, local users, roles, authentication and the audit log.

Services take plain values, ``flush()`` and never commit: the view or CLI command commits once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, literal_column, select, tuple_

from lms_plugin.accounts.models import AuditEvent, LocalCredential, Organisation, RoleGrant, User
from lms_plugin.authz import ROLES
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db

_hasher = PasswordHasher()
# A real hash of a random password: verifying against it when the email is unknown keeps the
# response time the same as for a wrong password, so login does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 12
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:64] or "org"


def get_or_create_organisation(name: str, timezone: str = "America/New_York") -> Organisation:
    name = name.strip()
    if not name:
        raise ValidationFailed("Organisation name is required", field="organisation")
    slug = slugify(name)
    org = db.session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        org = Organisation(slug=slug, name=name, timezone=timezone)
        db.session.add(org)
        db.session.flush()
    return org


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email):
        raise ValidationFailed(f"{email!r} is not a valid email address", field="email")
    return email


def grant_role(user: User, role: str, organisation_id: int | None = None) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; use one of {', '.join(ROLES)}",
                               field="role")
    org_id = organisation_id or user.organisation_id
    if not any(g.role == role and g.organisation_id == org_id for g in user.grants):
        user.grants.append(RoleGrant(role=role, organisation_id=org_id))
        db.session.flush()


def create_local_user(organisation: Organisation, email: str, name: str, password: str,
                      roles: tuple[str, ...] = ("learner",),
                      must_change_password: bool = False) -> User:
    email = _check_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    exists = db.session.scalar(select(LocalCredential.id).where(LocalCredential.email == email))
    if exists is not None:
        raise Conflict(f"a local account for {email} already exists", field="email")
    user = User(organisation=organisation, email=email, name=name or email)
    user.credential = LocalCredential(
        email=email, password_hash=hash_password(password),
        must_change_password=must_change_password,
    )
    db.session.add(user)
    db.session.flush()
    for role in roles:
        grant_role(user, role)
    return user


@dataclass(frozen=True)
class NewAdmin:
    user: User
    password: str | None  # the generated one-time password, or None when one was given


def create_admin(email: str, organisation_name: str, password: str | None = None) -> NewAdmin:
    """A local admin; with no password given, a one-time password to be changed at first use."""
    org = get_or_create_organisation(organisation_name)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(15)
    user = create_local_user(org, email, "Administrator", password, roles=("admin",),
                             must_change_password=generated is not None)
    record_audit("user.create_admin", actor=None, organisation_id=org.id,
                 target=("user", user.id), details={"email": user.email})
    return NewAdmin(user, generated)


def any_admin_exists() -> bool:
    # EXISTS, not a count: stops at the first admin instead of counting 50,000 grants.
    return bool(db.session.scalar(select(select(RoleGrant.id).where(
        RoleGrant.role == "admin").exists())))


def authenticate(email: str, password: str) -> User | None:
    """The active user with these local credentials, or None (same timing either way)."""
    email = email.strip().lower()
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == email))
    try:
        _hasher.verify(cred.password_hash if cred else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if cred is None or not cred.user.active:
        return None
    if _hasher.check_needs_rehash(cred.password_hash):
        cred.password_hash = hash_password(password)
    cred.user.last_login_at = utcnow()
    db.session.flush()
    return cred.user


def change_password(user: User, current: str, new: str) -> None:
    cred = user.credential
    if cred is None:
        raise ValidationFailed("this account signs in through the LMS", field="password")
    try:
        _hasher.verify(cred.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise ValidationFailed("current password is wrong", field="current_password") from None
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"new password must be at least {MIN_PASSWORD_LENGTH} characters",
            field="new_password",
        )
    cred.password_hash = hash_password(new)
    cred.must_change_password = False
    user.session_token = secrets.token_urlsafe(24)  # sign out every other session
    record_audit("user.change_password", actor=user, target=("user", user.id))


def load_user(user_id: str) -> User | None:
    """Flask-Login loader: the id carries the session token so stale sessions are refused."""
    ident, _, token = user_id.partition(":")
    if not ident.isdigit():
        return None
    user = db.session.get(User, int(ident))
    if user is None or not token or not secrets.compare_digest(user.session_token, token):
        return None
    return user


def get_user(organisation_id: int, user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != organisation_id:
        raise NotFound("no such person in your organisation")
    return user


#: What the people search looks in. Each entry is one column; a profile field added later
#: (employee id…) is searched by adding it here.
PEOPLE_SEARCH_FIELDS = (User.name, User.email, User.job_role, User.department, User.facility)


def people_search_text():
    """``lower(coalesce(name, '') || ' ' || coalesce(email, '') || …)``: the one expression
    searched, spelled with constants (not bound parameters) so that an expression index
    (a PostgreSQL trigram index, see bench/README.md) can serve it unchanged."""
    text_ = None
    for column in PEOPLE_SEARCH_FIELDS:
        part = func.coalesce(column, literal_column("''"))
        text_ = part if text_ is None else text_ + literal_column("' '") + part
    return func.lower(text_)


PEOPLE_PER_PAGE = 50
MAX_SEARCH_LENGTH = 100


@dataclass(frozen=True)
class PeoplePage:
    """One page of the people list: ``users`` by name, ``total`` matching people, and
    ``next_after`` (the id to pass as ``after`` for the next page, or None at the end)."""

    users: list[User]
    total: int
    next_after: int | None


def list_users(organisation_id: int, *, q: str | None = None, role: str | None = None,
               after: int | None = None, per_page: int = PEOPLE_PER_PAGE) -> PeoplePage:
    """The organisation's people by (name, id), filtered and keyset-paginated.

    ``q``: every whitespace-separated word must occur (case-insensitively, anywhere) in
    one of :data:`PEOPLE_SEARCH_FIELDS`; ``role``: people holding that tool role here;
    ``after``: the id of the last person of the previous page (the page starts after their
    (name, id), served by the (organisation_id, name, id) index however deep: no OFFSET).
    Raises ValidationFailed for an unknown role, an over-long search or an ``after`` that
    is not a person of this organisation.
    """
    q = (q or "").strip()
    if len(q) > MAX_SEARCH_LENGTH:
        raise ValidationFailed(f"search for at most {MAX_SEARCH_LENGTH} characters", field="q")
    where = [User.organisation_id == organisation_id]
    searched = people_search_text()
    for word in q.lower().split():
        # A word never holds a space, so it cannot match across two fields.
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(searched.like(f"%{escaped}%", escape="\\"))
    if role:
        if role not in ROLES:
            raise ValidationFailed(f"unknown role {role!r}; use one of {', '.join(ROLES)}",
                                   field="role")
        where.append(User.id.in_(select(RoleGrant.user_id).where(
            RoleGrant.organisation_id == organisation_id, RoleGrant.role == role)))
    total = db.session.scalar(select(func.count()).select_from(User).where(*where)) or 0
    page = select(User).where(*where)
    if after is not None:
        last = db.session.execute(select(User.name, User.id).where(
            User.id == after, User.organisation_id == organisation_id)).first()
        if last is None:
            raise ValidationFailed("'after' is not a person of your organisation", field="after")
        page = page.where(tuple_(User.name, User.id) > tuple_(last.name, last.id))
    users = list(db.session.scalars(page.order_by(User.name, User.id).limit(per_page + 1)))
    more = len(users) > per_page
    users = users[:per_page]
    return PeoplePage(users, total, users[-1].id if more else None)


def record_audit(action: str, *, actor: User | None, organisation_id: int | None = None,
                 target: tuple[str, Any] | None = None,
                 details: dict[str, Any] | None = None) -> AuditEvent:
    """Append to the audit log in the caller's transaction (so it commits with the change)."""
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor else None,
        organisation_id=organisation_id if organisation_id is not None
        else (actor.organisation_id if actor else None),
        target_type=target[0] if target else None,
        target_id=str(target[1]) if target else None,
        details=details or {},
    )
    db.session.add(event)
    db.session.flush()
    return event


def list_audit(organisation_id: int, limit: int = 200) -> list[AuditEvent]:
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.organisation_id == organisation_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    ))
