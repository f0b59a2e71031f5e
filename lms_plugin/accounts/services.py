"""Account rules: organisations, local users, roles, authentication and the audit log.

Services take plain values, ``flush()`` and never commit: the view or CLI command commits once.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from limits import parse as parse_limit
from sqlalchemy import and_, func, literal_column, select, tuple_

from lms_plugin.accounts import sessions
from lms_plugin.accounts.models import (
    GRADE_POLICIES,
    GRANT_SOURCES,
    AuditEvent,
    LocalCredential,
    Organisation,
    RoleGrant,
    User,
)
from lms_plugin.authz import ROLES
from lms_plugin.config import password_hash_parameters
from lms_plugin.db import check_fits, utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db, limiter

MIN_PASSWORD_LENGTH = 12
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: RFC 5321 section 4.5.3.1: a local part holds at most 64 octets and a path at most 256
#: including its angle brackets, so an address that can receive mail is at most 254 long.
EMAIL_MAX_LENGTH = 254
EMAIL_LOCAL_MAX_LENGTH = 64


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:64] or "org"


#: The organisation the first-run setup creates when there is none (``lms-plugin setup``).
FIRST_ORGANISATION = "Default Health System"


def get_or_create_organisation(name: str, timezone: str = "America/New_York") -> Organisation:
    """The organisation of this name (created, flushed, when new).

    Only for test fixtures (the first-run setup uses :func:`create_organisation`): every
    command and request names an *existing* organisation through
    :func:`resolve_organisation`, so a typo never creates an empty organisation (issue 12.1).
    Raises ValidationFailed (field ``organisation``) for an empty name or one longer than
    the column holds (200 characters).
    """
    name = name.strip()
    if not name:
        raise ValidationFailed("Organisation name is required", field="organisation")
    check_fits(name, Organisation.name, "The organisation name", "organisation")
    slug = slugify(name)
    org = db.session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        org = Organisation(slug=slug, name=name, timezone=timezone)
        db.session.add(org)
        db.session.flush()
    return org


def list_organisations(*, include_demo: bool = True) -> list[Organisation]:
    """Every organisation, oldest first; ``include_demo=False`` leaves out the demo LMS's
    organisation (``Organisation.is_demo``, issue 12.3), which is never chosen for a
    command or a registration that names no organisation."""
    query = select(Organisation).order_by(Organisation.id)
    if not include_demo:
        query = query.where(Organisation.is_demo.is_(False))
    return list(db.session.scalars(query))


def _known_names(orgs: list[Organisation]) -> str:
    return ", ".join(repr(o.name) for o in orgs)


NO_ORGANISATION_HINT = ("create one with: lms-plugin org create NAME "
                        "(or run lms-plugin setup, which creates the first one)")


def check_timezone(timezone: str) -> str:
    """``timezone`` stripped when it is an IANA zone name (``Europe/Dublin``); otherwise
    ValidationFailed (field ``timezone``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    zone = (timezone or "").strip()
    try:
        if not zone:
            raise ValueError
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"Unknown time zone {timezone!r}: give an IANA name such as "
                               "America/New_York or Europe/Dublin", field="timezone") from None
    return zone


def create_organisation(name: str, timezone: str | None = None) -> Organisation:
    """A new organisation (``lms-plugin org create``), the only way one is made after the
    first-run setup. ``timezone``: an IANA name, default ``LMS_DEFAULT_TIMEZONE``.

    Raises ValidationFailed for an empty or over-long name or an unknown time zone, and
    Conflict when an organisation with the same name (same slug) exists. Audited; flushes.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Organisation name is required", field="organisation")
    check_fits(name, Organisation.name, "The organisation name", "organisation")
    zone = check_timezone(timezone if timezone is not None
                          else current_app.config.get("LMS_DEFAULT_TIMEZONE", "America/New_York"))
    slug = slugify(name)
    existing = db.session.scalar(select(Organisation).where(Organisation.slug == slug))
    if existing is not None:
        raise Conflict(f"An organisation {existing.name!r} exists already", field="organisation")
    org = Organisation(slug=slug, name=name, timezone=zone)
    db.session.add(org)
    db.session.flush()
    record_audit("organisation.create", actor=None, organisation_id=org.id,
                 target=("organisation", org.id), details={"name": name, "timezone": zone})
    return org


def find_organisation(slug_or_name: str) -> Organisation:
    """The organisation with this slug (or whose name slugifies to it).

    Raises NotFound naming the known organisations (or how to create one) otherwise.
    """
    text = (slug_or_name or "").strip()
    org = db.session.scalar(select(Organisation).where(
        Organisation.slug.in_({text, slugify(text)})).limit(1)) if text else None
    if org is None:
        orgs = list_organisations()
        known = (f"known organisations: {_known_names(orgs)}" if orgs
                 else f"there is none yet; {NO_ORGANISATION_HINT}")
        raise NotFound(f"No organisation {slug_or_name!r} ({known})", field="organisation")
    return org


def resolve_organisation(name: str | None) -> Organisation:
    """The organisation a command or registration acts for (issue 12.1).

    A name given: that organisation (by name or slug), else NotFound listing the known
    ones. No name: the one organisation when there is exactly one; ValidationFailed asking
    for a name (and listing them) when there are several; NotFound saying how to create one
    when there is none. Never creates an organisation.
    """
    if name is not None and name.strip():
        return find_organisation(name)
    orgs = list_organisations(include_demo=False)  # the demo LMS's is never a default
    if len(orgs) == 1:
        return orgs[0]
    if not orgs:
        raise NotFound(f"There is no organisation yet; {NO_ORGANISATION_HINT}",
                       field="organisation")
    raise ValidationFailed(f"There are {len(orgs)} organisations ({_known_names(orgs)}): "
                           "name one with --organisation", field="organisation")


def set_expiring_window(organisation: str, days: int) -> Organisation:
    """How many days before a completion lapses its assignment shows "expiring soon"
    (default 30; ``learning.assignments.status_rows``). NotFound for an unknown
    organisation, ValidationFailed unless 0..365. Audited (before/after); flushes."""
    if not 0 <= days <= 365:
        raise ValidationFailed("The window must be 0 to 365 days", field="expiring_soon_days")
    org = find_organisation(organisation)
    if org.expiring_soon_days != days:
        record_audit("organisation.set_expiring_window", actor=None, organisation_id=org.id,
                     target=("organisation", org.id),
                     details={"before": {"expiring_soon_days": org.expiring_soon_days},
                              "after": {"expiring_soon_days": days}})
        org.expiring_soon_days = days
        db.session.flush()
    return org


def set_grade_policy(organisation: str, policy: str) -> Organisation:
    """Choose which graded attempt the LMS gradebook shows for everyone in ``organisation``
    (a slug or name): ``"highest"`` (the highest graded attempt of the current validity
    period, Moodle's quiz default) or ``"most_recent"`` (the latest graded attempt, which may
    lower the grade). The rule itself is ``learning.services.policy_score``.

    Raises NotFound for an unknown organisation and ValidationFailed (naming the allowed
    values) for an unknown policy; nothing is written then. Audited; flushes, no commit.
    Scores already in the gradebook change at the learner's next graded attempt.
    """
    choice = (policy or "").strip().lower().replace("-", "_")
    if choice not in GRADE_POLICIES:
        raise ValidationFailed(f"Unknown grade policy {policy!r}: choose one of "
                               f"{', '.join(GRADE_POLICIES)}", field="grade_policy")
    org = find_organisation(organisation)
    if org.grade_policy != choice:
        record_audit("organisation.set_grade_policy", actor=None, organisation_id=org.id,
                     target=("organisation", org.id),
                     details={"from": org.grade_policy, "to": choice})
        org.grade_policy = choice
        db.session.flush()
    return org


@functools.cache
def _hashing(profile: str) -> tuple[PasswordHasher, str]:
    """The argon2 hasher of ``LMS_PASSWORD_HASH_PROFILE`` and a dummy hash made with it.

    The dummy is a real hash of a random password: verifying against it when the email is
    unknown costs the same as a wrong password, so sign-in does not reveal which emails
    exist. Built on first use (not at import: a hash at full cost takes most of a second).
    """
    hasher = PasswordHasher.from_parameters(password_hash_parameters(profile))
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def _hasher() -> PasswordHasher:
    return _hashing(current_app.config["LMS_PASSWORD_HASH_PROFILE"])[0]


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` at the cost of ``LMS_PASSWORD_HASH_PROFILE``
    (``standard``: RFC 9106 section 4, argon2-cffi's default; ``fast``: tests only)."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (argon2; False for a malformed hash)."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    """``email`` stripped and lower-cased, or ValidationFailed (field ``email``) when it is
    not an address or is longer than RFC 5321 allows (:data:`EMAIL_MAX_LENGTH` in all,
    :data:`EMAIL_LOCAL_MAX_LENGTH` before the ``@``). Refused, never cut: a shortened address
    belongs to someone else or to nobody (issue 9, item 6).
    """
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationFailed(f"The email address is {len(email)} characters long; at most "
                               f"{EMAIL_MAX_LENGTH} are allowed (RFC 5321)", field="email")
    if not _EMAIL_RE.match(email):
        raise ValidationFailed(f"{email!r} is not a valid email address", field="email")
    local = email.rsplit("@", 1)[0]
    if len(local) > EMAIL_LOCAL_MAX_LENGTH:
        raise ValidationFailed(f"The part of the email address before the @ is {len(local)} "
                               f"characters long; at most {EMAIL_LOCAL_MAX_LENGTH} are allowed "
                               "(RFC 5321)", field="email")
    return email


def grant_role(user: User, role: str, organisation_id: int | None = None,
               source: str = "local") -> None:
    """Give ``user`` the organisation-wide ``role`` (kept when already held). ``source``:
    ``local`` (an admin's or the CLI's grant) or ``lti`` (see :func:`sync_lti_grants`).
    Raises ValidationFailed for an unknown role or source."""
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; use one of {', '.join(ROLES)}",
                               field="role")
    if source not in GRANT_SOURCES:
        raise ValidationFailed(f"unknown grant source {source!r}", field="source")
    org_id = organisation_id or user.organisation_id
    if not any(g.role == role and g.organisation_id == org_id for g in user.grants):
        user.grants.append(RoleGrant(role=role, organisation_id=org_id, source=source))
        db.session.flush()


def sync_lti_grants(user: User, organisation_id: int, roles: Iterable[str]) -> bool:
    """Make the user's launch-derived grants (source ``lti``) in this organisation exactly
    ``roles``: missing ones added, others removed; local grants (an admin's) are kept and
    never duplicated. Every launch calls this, so a role the LMS no longer sends is gone at
    the next launch (issue 10 item 5). True when something changed; flushes."""
    wanted = set(roles)
    changed = False
    for grant in list(user.grants):
        if (grant.organisation_id == organisation_id and grant.source == "lti"
                and grant.role not in wanted):
            user.grants.remove(grant)
            changed = True
    held = {g.role for g in user.grants if g.organisation_id == organisation_id}
    for role in sorted(wanted - held):
        grant_role(user, role, organisation_id, source="lti")
        changed = True
    if changed:
        db.session.flush()
    return changed


def create_local_user(organisation: Organisation, email: str, name: str, password: str,
                      roles: tuple[str, ...] = ("learner",),
                      must_change_password: bool = False) -> User:
    email = normalise_email(email)
    check_fits(name, User.name, "The name", "name")
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


def create_admin(email: str, organisation_name: str | None,
                 password: str | None = None) -> NewAdmin:
    """A local admin of an existing organisation (:func:`resolve_organisation`: the one
    there is when ``organisation_name`` is None); with no password given, a one-time
    password to be changed at first use. Raises NotFound / ValidationFailed for the
    organisation (never creates one), ValidationFailed / Conflict for the email."""
    org = resolve_organisation(organisation_name)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(15)
    user = create_local_user(org, email, "Administrator", password, roles=("admin",),
                             must_change_password=generated is not None)
    record_audit("user.create_admin", actor=None, organisation_id=org.id,
                 target=("user", user.id), details={"email": user.email})
    return NewAdmin(user, generated)


def ensure_first_admin(email: str, organisation_name: str | None) -> NewAdmin | None:
    """First-run setup (``lms-plugin setup`` / ``users ensure-admin``): None when an admin
    exists; otherwise a new admin. On an install without any organisation this is the one
    place that creates one, explicitly: ``organisation_name`` or :data:`FIRST_ORGANISATION`
    (documented in the README). With organisations present, the name is resolved like any
    command's (:func:`resolve_organisation`)."""
    if any_admin_exists():
        return None
    if not list_organisations(include_demo=False):
        org = create_organisation(organisation_name or FIRST_ORGANISATION)
        return create_admin(email, org.slug)
    return create_admin(email, organisation_name)


def setup_organisation(organisation_name: str | None) -> Organisation:
    """The organisation ``lms-plugin setup`` imports the shipped content into: the one named
    (:func:`find_organisation`), else the organisation of the oldest admin account (the one
    the first-run setup created), else :func:`resolve_organisation`'s answer."""
    if organisation_name is not None and organisation_name.strip():
        return find_organisation(organisation_name)
    org_id = db.session.scalar(select(User.organisation_id).join(
        RoleGrant, RoleGrant.user_id == User.id).where(RoleGrant.role == "admin")
        .order_by(RoleGrant.id).limit(1))
    if org_id is not None:
        return db.session.get(Organisation, org_id)
    return resolve_organisation(None)


def any_admin_exists() -> bool:
    # EXISTS, not a count: stops at the first admin instead of counting 50,000 grants.
    return bool(db.session.scalar(select(select(RoleGrant.id).where(
        RoleGrant.role == "admin").exists())))


def authenticate(email: str, password: str) -> User | None:
    """The active user with these local credentials, or None (same timing either way)."""
    email = email.strip().lower()
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == email))
    hasher, dummy_hash = _hashing(current_app.config["LMS_PASSWORD_HASH_PROFILE"])
    try:
        hasher.verify(cred.password_hash if cred else dummy_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if cred is None or not cred.user.active:
        return None
    if hasher.check_needs_rehash(cred.password_hash):
        cred.password_hash = hash_password(password)
    cred.user.last_login_at = utcnow()
    db.session.flush()
    return cred.user


def change_password(user: User, current: str, new: str, keep_session: str | None = None) -> None:
    """Set a new password (argon2) after checking the current one.

    Every other session of the person ends (server-side records and the per-person token);
    ``keep_session`` (the session id of the browser making the change) survives. Raises
    ValidationFailed naming the field for a wrong current password, or a new one that is too
    short or the same as the current (one-time) password.
    """
    cred = user.credential
    if cred is None:
        raise ValidationFailed("this account signs in through the LMS", field="password")
    try:
        _hasher().verify(cred.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise ValidationFailed("current password is wrong", field="current_password") from None
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"new password must be at least {MIN_PASSWORD_LENGTH} characters",
            field="new_password",
        )
    if secrets.compare_digest(new.encode(), current.encode()):
        # The one-time password printed by the CLI must not stay in use (issue 12.7).
        raise ValidationFailed("Choose a password different from your current (or one-time) "
                               "password.", field="new_password")
    cred.password_hash = hash_password(new)
    cred.must_change_password = False
    user.session_token = secrets.token_urlsafe(24)  # sign out every other session
    sessions.end_all(user.id, keep_sid=keep_session)
    record_audit("user.change_password", actor=user, target=("user", user.id))


def sign_out_everywhere(email: str, actor: User | None = None) -> tuple[User, int]:
    """An admin's "sign this person out": end every session of the person with this email
    (local account email or profile email); returns the person and how many sessions ended.

    The per-person token is rotated too, so even a session the store no longer lists (a Redis
    flush) cannot come back. Raises NotFound for an unknown email, Conflict when several
    people share it (LTI profiles may), naming the count.
    """
    email = email.strip().lower()
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == email))
    if cred is not None:
        user = cred.user
    else:
        matches = list(db.session.scalars(
            select(User).where(func.lower(User.email) == email).limit(3)))
        if not matches:
            raise NotFound(f"no person with the email {email}", field="email")
        if len(matches) > 1:
            raise Conflict(f"several people have the email {email}; sign them out from "
                           "their admin pages", field="email")
        user = matches[0]
    ended = sessions.end_all(user.id)
    user.session_token = secrets.token_urlsafe(24)
    record_audit("user.sign_out_everywhere", actor=actor,
                 organisation_id=user.organisation_id, target=("user", user.id),
                 details={"sessions_ended": ended})
    return user, ended


def record_login_throttled(email: str, address: str, limit: str, *,
                           per_address: bool) -> AuditEvent | None:
    """Audit that sign-ins were refused for a while (``login.throttled``), under the
    account's organisation when the email is a local account (so its admins see it).

    At most one event per email, address and minute: a flood of refused attempts is one
    line, not thousands (the dedupe key lives in the limiter's shared storage).
    """
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or "lms"
    if not limiter.limiter.hit(parse_limit("1/minute"), prefix, "audit-throttle", email,
                               address):
        return None
    cred = db.session.scalar(select(LocalCredential).where(LocalCredential.email == email))
    return record_audit(
        "login.throttled", actor=None,
        organisation_id=cred.user.organisation_id if cred else None,
        target=("user", cred.user_id) if cred else None,
        details={"email": email, "address": address, "limit": limit,
                 "scope": "address" if per_address else "account+address"})


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
#: A search's count stops here ("500+"): counting every match of a common word would read
#: as many rows again as there are matches (issue 18 item 5; /admin/jobs does the same).
PEOPLE_COUNT_CAP = 500


@dataclass(frozen=True)
class PeoplePage:
    """One page of the people list: ``users`` by name, ``total`` matching people, and
    ``next_after`` (the id to pass as ``after`` for the next page, or None at the end).

    ``cap``: for a search or role filter, ``total`` is counted up to ``cap + 1`` (a value
    above ``cap`` means "more than ``cap``"); None for the unfiltered list (exact head count).
    """

    users: list[User]
    total: int
    next_after: int | None
    cap: int | None = None


def list_users(organisation_id: int, *, q: str | None = None, role: str | None = None,
               after: int | None = None, per_page: int = PEOPLE_PER_PAGE) -> PeoplePage:
    """The organisation's people by (name, id), filtered and keyset-paginated.

    ``q``: every whitespace-separated word must occur (case-insensitively, anywhere) in
    one of :data:`PEOPLE_SEARCH_FIELDS`; ``role``: people holding that tool role here;
    ``after``: the id of the last person of the previous page (the page starts after their
    (name, id), served by the (organisation_id, name, id) index however deep: no OFFSET).
    A filtered count stops at :data:`PEOPLE_COUNT_CAP` + 1; when the matches are no more than
    that, the page is sorted from exactly their ids. On PostgreSQL the words are served by a
    trigram index on :func:`people_search_text` (migration 0013_perf), a role by
    ``ix_role_grant_org_role`` (0022_people). Two statements (three after the first page).
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
    cap = PEOPLE_COUNT_CAP if len(where) > 1 else None
    page = select(User)
    if cap is None:
        total = db.session.scalar(select(func.count()).select_from(User).where(*where)) or 0
        page = page.where(*where)
    else:
        # A filter: read the ids of at most cap + 1 matches (the trigram index or the
        # role_grant (organisation_id, role) index finds them). When they are all there is
        # (total <= cap), the page is taken from exactly those ids, sorted by primary-key
        # look-ups: walking the (organisation_id, name, id) index in name order and testing
        # each person would read the whole organisation when the matches are few and sort
        # late (role=author: 50,253 people read for 51; bench/README.md). When there are
        # more, matches are dense enough that the name-order walk stops early.
        if role and len(where) == 2:  # the role alone: its grants are the matches
            ids = select(RoleGrant.user_id).where(RoleGrant.organisation_id == organisation_id,
                                                  RoleGrant.role == role)
        else:
            ids = select(User.id).where(*where)
        matched = list(db.session.scalars(ids.limit(cap + 1)))
        total = len(matched)
        # No organisation_id term beside the ids: with it, PostgreSQL walks the (organisation_id,
        # name, id) index again, testing each person against the id list (163 ms at 50,000).
        # The ids are this organisation's already (a grant's organisation is its holder's).
        page = page.where(User.id.in_(matched) if total <= cap else and_(*where))
    if after is not None:
        last = db.session.execute(select(User.name, User.id).where(
            User.id == after, User.organisation_id == organisation_id)).first()
        if last is None:
            raise ValidationFailed("'after' is not a person of your organisation", field="after")
        page = page.where(tuple_(User.name, User.id) > tuple_(last.name, last.id))
    users = list(db.session.scalars(page.order_by(User.name, User.id).limit(per_page + 1)))
    more = len(users) > per_page
    users = users[:per_page]
    return PeoplePage(users, total, users[-1].id if more else None, cap)


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


# --- the audit log page ------------------------------------------------------------------

AUDIT_PER_PAGE = 50
#: Largest text a filter accepts (the columns: action 100, target type 50, target id 100).
AUDIT_FILTER_MAX = 100


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page (and its CSV export) shows: every field optional.

    ``actor_id``: the person who acted; ``action``: an exact action (``lti.platform.add``)
    or, ending with ``.``, every action under that prefix (``lti.platform.``);
    ``target_type`` / ``target_id``: what was changed (``user`` / ``42``); ``since`` /
    ``until``: UTC instants, ``since <= created_at < until`` (see
    :func:`lms_plugin.accounts.timezones.day_range` for days in the organisation's zone).
    """

    actor_id: int | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: Any = None
    until: Any = None


def check_audit_filter(actor_id: int | None, action: str | None, target_type: str | None,
                       target_id: str | None, since: Any = None,
                       until: Any = None) -> AuditFilter:
    """An :class:`AuditFilter` from typed values, stripped. Raises ValidationFailed naming
    the field for text longer than :data:`AUDIT_FILTER_MAX`, a target id without its
    type, or a range that ends before it starts."""
    values = {}
    for name, value in (("action", action), ("target_type", target_type),
                        ("target_id", target_id)):
        value = (value or "").strip() or None
        if value is not None and len(value) > AUDIT_FILTER_MAX:
            raise ValidationFailed(f"at most {AUDIT_FILTER_MAX} characters", field=name)
        values[name] = value
    if values["target_id"] and not values["target_type"]:
        raise ValidationFailed("choose what kind of target the id belongs to",
                               field="target_type")
    if since is not None and until is not None and until <= since:
        raise ValidationFailed("the range ends before it starts", field="until")
    return AuditFilter(actor_id=actor_id, since=since, until=until, **values)


def _audit_where(organisation_id: int, f: AuditFilter) -> list[Any]:
    where = [AuditEvent.organisation_id == organisation_id]
    if f.actor_id is not None:
        where.append(AuditEvent.actor_id == f.actor_id)
    if f.action:
        if f.action.endswith("."):
            escaped = f.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(AuditEvent.action.like(escaped + "%", escape="\\"))
        else:
            where.append(AuditEvent.action == f.action)
    if f.target_type:
        where.append(AuditEvent.target_type == f.target_type)
    if f.target_id:
        where.append(AuditEvent.target_id == f.target_id)
    if f.since is not None:
        where.append(AuditEvent.created_at >= f.since)
    if f.until is not None:
        where.append(AuditEvent.created_at < f.until)
    return where


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first; ``next_before``: the id to pass as
    ``before`` for the next (older) page, or None at the end."""

    events: list[AuditEvent]
    next_before: int | None


def list_audit(organisation_id: int, f: AuditFilter | None = None, *,
               before: int | None = None, limit: int = AUDIT_PER_PAGE) -> AuditPage:
    """The organisation's audit events matching ``f``, newest first on (created_at, id),
    keyset-paginated: ``before`` is the id of the last event of the previous page (no
    OFFSET, so page 1,000 costs what page 1 does; each filter has its index, migration
    0018_admin). Raises ValidationFailed when ``before`` is not an event of this
    organisation. Another organisation's events are never read."""
    where = _audit_where(organisation_id, f or AuditFilter())
    query = select(AuditEvent).where(*where)
    if before is not None:
        last = db.session.execute(select(AuditEvent.created_at, AuditEvent.id).where(
            AuditEvent.id == before, AuditEvent.organisation_id == organisation_id)).first()
        if last is None:
            raise ValidationFailed("'before' is not an audit entry of your organisation",
                                   field="before")
        query = query.where(tuple_(AuditEvent.created_at, AuditEvent.id)
                            < tuple_(last.created_at, last.id))
    events = list(db.session.scalars(query.order_by(
        AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(events, events[-1].id if more else None)


AUDIT_CSV_HEADER = ("id", "created_at_utc", "actor_id", "actor_name", "action",
                    "target_type", "target_id", "details_json")


def iter_audit_rows(conn: Any, organisation_id: int, f: AuditFilter | None = None,
                    batch: int = 1000) -> Iterable[tuple[Any, ...]]:
    """Every matching event as a CSV row (:data:`AUDIT_CSV_HEADER`), newest first, read in
    keyset batches of ``batch`` (memory stays flat at a million events; no OFFSET) on
    ``conn`` (a SQLAlchemy Connection or Session: a streamed response reads after the
    request's session has ended). ``details_json`` holds the before/after as JSON."""
    import json

    where = _audit_where(organisation_id, f or AuditFilter())
    names = dict(conn.execute(select(User.id, User.name).where(
        User.organisation_id == organisation_id, User.id.in_(
            select(AuditEvent.actor_id).where(*where).distinct()))).all())
    last = None
    while True:
        query = select(AuditEvent.id, AuditEvent.created_at, AuditEvent.actor_id,
                       AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id,
                       AuditEvent.details).where(*where)
        if last is not None:
            query = query.where(tuple_(AuditEvent.created_at, AuditEvent.id) < last)
        rows = conn.execute(query.order_by(
            AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(batch)).all()
        for row in rows:
            yield (row.id, row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row.actor_id or "",
                   names.get(row.actor_id, "system" if row.actor_id is None else ""),
                   row.action, row.target_type or "", row.target_id or "",
                   json.dumps(row.details or {}, sort_keys=True, ensure_ascii=False))
        if len(rows) < batch:
            return
        last = tuple_(rows[-1].created_at, rows[-1].id)


def changes(obj: Any, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set each attribute of ``values`` on ``obj``; returns ``{field: {"before": old,
    "after": new}}`` for the ones that changed (the audit entry's ``details``)."""
    changed = {}
    for name, new in values.items():
        old = getattr(obj, name)
        if old != new:
            changed[name] = {"before": old, "after": new}
            setattr(obj, name, new)
    return changed


# --- administration: organisation settings and people ------------------------------------

def update_organisation(organisation_id: int, *, name: str, timezone: str,
                        actor: User | None) -> Organisation:
    """Rename the organisation and set its time zone (an IANA name: every page shows
    times in it). Raises ValidationFailed (field ``name`` or ``timezone``) for an empty or
    over-long name or an unknown zone, Conflict (field ``name``) when another organisation
    has the same name; nothing changes then. The slug stays (URLs and commands keep
    working). Audited with before/after; flushes."""
    org = db.session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("no such organisation")
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Give the organisation a name", field="name")
    check_fits(name, Organisation.name, "The organisation name", "name")
    zone = check_timezone(timezone)
    clash = db.session.scalar(select(Organisation.id).where(
        Organisation.id != org.id, func.lower(Organisation.name) == name.lower()))
    if clash is not None:
        raise Conflict(f"another organisation is called {name!r}", field="name")
    changed = changes(org, {"name": name, "timezone": zone})
    if changed:
        record_audit("organisation.update", actor=actor, organisation_id=org.id,
                     target=("organisation", org.id), details=changed)
        db.session.flush()
    return org


def admin_grant_role(organisation_id: int, user_id: int, role: str,
                     actor: User | None) -> User:
    """An admin gives a person an organisation role (a ``local`` grant, which launches
    never remove). Raises NotFound for a person of another organisation, ValidationFailed
    (field ``role``) for an unknown role, Conflict when the role is already held. Audited
    with the roles before and after; flushes."""
    user = get_user(organisation_id, user_id)
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; use one of {', '.join(ROLES)}",
                               field="role")
    before = sorted(user.role_names)
    if role in before:
        raise Conflict(f"{user.name} already holds the role {role}", field="role")
    grant_role(user, role)
    record_audit("user.grant_role", actor=actor, organisation_id=organisation_id,
                 target=("user", user.id),
                 details={"role": role, "roles": {"before": before,
                                                  "after": sorted(user.role_names)}})
    return user


def admin_revoke_role(organisation_id: int, user_id: int, role: str,
                      actor: User | None) -> User:
    """An admin removes a role from a person. Raises NotFound (other organisation, or a
    role not held), ValidationFailed when an admin would remove their own admin role or
    the organisation's last admin would lose it (nobody could then administer it). A role
    a platform's launches grant comes back at the next launch. Audited; flushes."""
    user = get_user(organisation_id, user_id)
    grant = next((g for g in user.grants if g.organisation_id == organisation_id
                  and g.role == role), None)
    if grant is None:
        raise NotFound(f"{user.name} does not hold the role {role!r}", field="role")
    if role == "admin":
        if actor is not None and actor.id == user.id:
            raise ValidationFailed("you cannot remove your own admin role", field="role")
        admins = db.session.scalar(select(func.count()).select_from(RoleGrant).where(
            RoleGrant.organisation_id == organisation_id, RoleGrant.role == "admin"))
        if admins <= 1:
            raise ValidationFailed("this is the organisation's last admin", field="role")
    before = sorted(user.role_names)
    user.grants.remove(grant)
    db.session.flush()
    record_audit("user.revoke_role", actor=actor, organisation_id=organisation_id,
                 target=("user", user.id),
                 details={"role": role, "source": grant.source,
                          "roles": {"before": before, "after": sorted(user.role_names)}})
    return user


def set_user_active(organisation_id: int, user_id: int, active: bool,
                    actor: User | None) -> User:
    """Deactivate (or reactivate) a person: a deactivated person cannot sign in or launch,
    and every session of theirs ends at once. Raises NotFound for another organisation's
    person, ValidationFailed for an admin deactivating themselves. Audited; flushes."""
    user = get_user(organisation_id, user_id)
    if not active and actor is not None and actor.id == user.id:
        raise ValidationFailed("you cannot deactivate yourself", field="active")
    changed = changes(user, {"active": active})
    if changed:
        if not active:
            sessions.end_all(user.id)
            user.session_token = secrets.token_urlsafe(24)
        record_audit("user.activate" if active else "user.deactivate", actor=actor,
                     organisation_id=organisation_id, target=("user", user.id),
                     details=changed)
        db.session.flush()
    return user


def find_person(organisation_id: int, text_: str) -> User:
    """A person of the organisation named by ``text_``: their id (digits) or an email
    (local sign-in email first, then profile email). Raises ValidationFailed (field
    ``actor``) when nobody, or several people with that profile email, match."""
    text_ = (text_ or "").strip()
    if text_.isascii() and text_.isdigit():
        user = db.session.get(User, int(text_)) if int(text_) <= 2**31 - 1 else None
        if user is not None and user.organisation_id == organisation_id:
            return user
        raise ValidationFailed(f"no person with id {text_} in your organisation",
                               field="actor")
    email = text_.lower()
    user = db.session.scalar(select(User).join(LocalCredential).where(
        LocalCredential.email == email, User.organisation_id == organisation_id))
    if user is None:
        found = list(db.session.scalars(select(User).where(
            User.organisation_id == organisation_id, func.lower(User.email) == email).limit(2)))
        if len(found) > 1:
            raise ValidationFailed(f"several people have the email {email}: give the id on "
                                   "their page", field="actor")
        user = found[0] if found else None
    if user is None:
        raise ValidationFailed(f"nobody in your organisation has the id or email {text_!r}",
                               field="actor")
    return user


def add_local_signin(organisation_id: int, user_id: int, email: str,
                     actor: User | None) -> str:
    """Link a person who arrives by LTI to a local account: the same person (their
    identities, attempts and completions stay theirs) gets a local sign-in with ``email``
    and a one-time password, returned once, to change at first sign-in. Raises NotFound
    (another organisation), Conflict when they have one already or the email is another
    account's, ValidationFailed (field ``email``) for a bad address. Audited; flushes."""
    user = get_user(organisation_id, user_id)
    if user.credential is not None:
        raise Conflict(f"{user.name} already signs in locally as {user.credential.email}",
                       field="email")
    email = normalise_email(email)
    if db.session.scalar(select(LocalCredential.id).where(LocalCredential.email == email)):
        raise Conflict(f"a local account for {email} already exists", field="email")
    password = secrets.token_urlsafe(15)
    user.credential = LocalCredential(email=email, password_hash=hash_password(password),
                                      must_change_password=True)
    db.session.flush()
    record_audit("user.add_local_signin", actor=actor, organisation_id=organisation_id,
                 target=("user", user.id),
                 details={"local_email": {"before": None, "after": email}})
    return password


def provision_people(organisation_id: int, people: list[dict[str, Any]],
                     now: Any = None) -> list[int]:
    """Create people who arrive from an LMS (a first launch, a roster sync): the one place
    that makes such people. ``people``: dicts of :class:`User` columns (``name``,
    ``email``, ``job_role``…); returns their new ids in the same order. One bulk INSERT
    whatever their number (each row's random session token tells the returned ids apart:
    RETURNING order is not guaranteed by every database, and asking for it makes SQLite
    insert row by row). Flushes; the caller adds identities and grants."""
    from sqlalchemy import insert

    from lms_plugin.accounts.models import new_session_token

    if not people:
        return []
    now = now or utcnow()
    tokens = [new_session_token() for _ in people]
    rows = db.session.execute(
        insert(User).returning(User.id, User.session_token),
        [{"active": True, "created_at": now, **person, "organisation_id": organisation_id,
          "session_token": token} for person, token in zip(people, tokens, strict=True)]
    ).all()
    by_token = {token: uid for uid, token in rows}
    return [by_token[token] for token in tokens]
