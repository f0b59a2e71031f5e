"""What a validated launch does: find or create the person, record course and link, roles.

Takes plain values (the platform id and the verified claims), flushes, never commits.
Identities are keyed by (organisation of the platform, issuer, sub): hosted Canvas tenants
share one issuer, so two platforms with overlapping ``sub`` values never share a user.
"""

from __future__ import annotations

import functools
import re
import typing as t
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import grant_role
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti.models import (
    LtiContext,
    LtiIdentity,
    LtiMembership,
    LtiPlatform,
    LtiResourceLink,
)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

#: Default LTI role (short name) → tool roles. ``Administrator`` depends on its scope: an
#: institution or system administrator (or a bare ``Administrator``) is an officer; a course
#: (membership) administrator manages content like an instructor.
DEFAULT_ROLE_MAP: dict[str, tuple[str, ...]] = {
    "Learner": ("learner",),
    "Student": ("learner",),
    "Instructor": ("author", "learner"),
    "Faculty": ("author", "learner"),
    "ContentDeveloper": ("author", "learner"),
    "TeachingAssistant": ("author", "learner"),
    "Mentor": ("author", "learner"),
    "Administrator": ("officer",),
    "SysAdmin": ("officer",),
}


@dataclass(frozen=True)
class LtiRole:
    uri: str  # as sent
    scope: str  # membership | institution | system
    name: str  # short name, e.g. Learner, TeachingAssistant


def parse_role(role: str) -> LtiRole:
    """Normalise full LIS v2 URIs, LTI 1.1 URNs and bare names to (scope, short name)."""
    raw = role.strip()
    scope, name = "", raw
    if raw.startswith(LIS):
        rest = raw[len(LIS):]  # membership#Learner, membership/Instructor#TeachingAssistant…
        path, _, name = rest.partition("#")
        scope = path.split("/")[0]
        if scope == "membership" and "/" in path and not name:
            name = path.split("/")[-1]
    elif raw.startswith("urn:lti:"):
        kind, _, tail = raw[len("urn:lti:"):].partition(":")
        name = tail.rsplit("/", 1)[-1]
        scope = {"role": "membership", "instrole": "institution", "sysrole": "system"}.get(
            kind, "")
    elif "#" in raw:
        name = raw.rsplit("#", 1)[-1]
    return LtiRole(raw, scope or "", name)


def map_roles(roles: Iterable[str], overrides: Mapping[str, t.Any] | None = None) -> set[str]:
    """Tool roles for these LTI roles; the platform's ``role_mapping`` wins (full URI first,
    then short name). With nothing mapped the person is a learner: everyone who launches can
    at least take training."""
    overrides = overrides or {}
    granted: set[str] = set()
    for value in roles:
        if not isinstance(value, str):
            continue
        role = parse_role(value)
        if role.uri in overrides or role.name in overrides:
            mapped = overrides.get(role.uri, overrides.get(role.name)) or []
            granted.update(r for r in mapped if isinstance(r, str))
            continue
        if role.name == "Administrator" and role.scope == "membership":
            granted.update(("author", "learner"))
            continue
        granted.update(DEFAULT_ROLE_MAP.get(role.name, ()))
    if not granted:
        granted.add("learner")
    return granted


def _substituted(value: t.Any) -> str | None:
    """A custom value, or None when the LMS left a variable unsubstituted (``$Canvas.x``)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.startswith("$") or (text.startswith("${") and text.endswith("}")):
        return None
    return text


def module_slug_from(custom: Mapping[str, t.Any], target_link_uri: str | None) -> str | None:
    """The module the link opens: custom ``module`` on the link, else ``?module=`` on the URI."""
    slug = _substituted(custom.get("module"))
    if slug is None and target_link_uri:
        values = parse_qs(urlsplit(target_link_uri).query).get("module")
        slug = values[0].strip() if values else None
    if slug:
        slug = slug.lower()
    return slug if slug and _SLUG_RE.match(slug) else None


def _upsert(model: type, lookup: dict[str, t.Any], create: Callable[[], t.Any]) -> t.Any:
    """Select by ``lookup`` or insert; a concurrent insert of the same key is re-read."""
    query = select(model).filter_by(**lookup)
    row = db.session.scalar(query)
    if row is not None:
        return row
    try:
        with db.session.begin_nested():
            row = create()
            db.session.add(row)
    except IntegrityError:
        row = db.session.scalar(query)
        if row is None:
            raise
    return row


#: "Last launch" times are kept to this precision: a learner who launches twice within a
#: minute (a double click, a second module in the same course) causes no timestamp writes.
TOUCH_INTERVAL = timedelta(seconds=60)


def _assign(row: t.Any, attr: str, value: t.Any) -> None:
    """Set ``row.attr`` only when it changes: an unchanged returning launch then leaves the
    session clean, so its flushes and the commit skip the unit-of-work pass entirely."""
    if getattr(row, attr) != value:
        setattr(row, attr, value)


def _stale(when: datetime | None, now: datetime) -> bool:
    return when is None or now - when >= TOUCH_INTERVAL


@dataclass(frozen=True)
class LaunchOutcome:
    user_id: int
    platform_id: int
    deployment_id: str
    context_pk: int | None
    resource_link_pk: int | None
    module_slug: str | None
    message_type: str
    user: User | None = None  # the row itself, so the view signs in without re-reading it

    def session_data(self) -> dict[str, t.Any]:
        """The plain dict put in ``flask.session["lti"]`` for the rest of the app."""
        return {
            "platform_id": self.platform_id,
            "deployment_id": self.deployment_id,
            "context_pk": self.context_pk,
            "resource_link_pk": self.resource_link_pk,
            "module_slug": self.module_slug,
            "message_type": self.message_type,
        }

    @property
    def redirect_path(self) -> str:
        return f"/modules/{self.module_slug}" if self.module_slug else "/home"


def _profile(user: User, claims: Mapping[str, t.Any], custom: Mapping[str, t.Any]) -> None:
    name = _substituted(claims.get("name")) or " ".join(
        p for p in (_substituted(claims.get("given_name")),
                    _substituted(claims.get("family_name"))) if p
    )
    if name:
        _assign(user, "name", name[:200])
    email = _substituted(claims.get("email"))
    if email and "@" in email:
        _assign(user, "email", email.lower()[:320])
    for field in ("job_role", "department", "facility"):
        value = _substituted(custom.get(field))
        if value:
            _assign(user, field, value[:100])


@functools.cache
def _returning_query(with_course: bool) -> t.Any:
    """Built once per process with bound parameters: constructing this statement and its
    cache key on every launch cost about as much as running it."""
    query = select(LtiIdentity).options(
        joinedload(LtiIdentity.user).joinedload(User.grants)).where(
        LtiIdentity.organisation_id == bindparam("org_id"),
        LtiIdentity.issuer == bindparam("issuer"), LtiIdentity.sub == bindparam("sub"))
    if not with_course:
        return query
    return query.add_columns(LtiContext, LtiMembership, LtiResourceLink).select_from(
        LtiIdentity).outerjoin(
        LtiContext, and_(LtiContext.platform_id == bindparam("platform_id"),
                         LtiContext.context_id == bindparam("context_key"))
    ).outerjoin(LtiMembership, and_(LtiMembership.context_id == LtiContext.id,
                                    LtiMembership.user_id == LtiIdentity.user_id)
    ).outerjoin(LtiResourceLink, and_(LtiResourceLink.context_id == LtiContext.id,
                                      LtiResourceLink.resource_link_id == bindparam("link_id")))


def complete_launch(platform_id: int, claims: Mapping[str, t.Any]) -> LaunchOutcome:
    """Apply a validated id_token: person, roles, course, link, enrolment."""
    platform = db.session.get(LtiPlatform, platform_id)
    assert platform is not None, "validated launch for a missing platform"
    now = utcnow()
    org_id = platform.organisation_id
    custom = claims.get(CLAIM + "custom") or {}
    if not isinstance(custom, Mapping):
        custom = {}
    roles = [r for r in claims.get(CLAIM + "roles") or [] if isinstance(r, str)]

    context_claim = claims.get(CLAIM + "context")
    context_key = (str(context_claim["id"]) if isinstance(context_claim, Mapping)
                   and context_claim.get("id") else None)
    link_claim = claims.get(CLAIM + "resource_link")
    link_id = (str(link_claim["id"]) if isinstance(link_claim, Mapping)
               and link_claim.get("id") else None)

    # A returning learner's identity, user, role grants, course, enrolment and link come back
    # in ONE query (one round trip); only what does not exist yet is inserted below.
    found = db.session.execute(_returning_query(context_key is not None), {
        "org_id": org_id, "issuer": platform.issuer, "sub": claims["sub"],
        "platform_id": platform.id, "context_key": context_key, "link_id": link_id,
    }).unique().first()
    identity = found[0] if found is not None else None
    known_course = tuple(found[1:]) if found is not None and context_key is not None else None
    if identity is None:
        user = User(organisation_id=org_id, name="")
        db.session.add(user)
        db.session.flush()
        identity = _upsert(LtiIdentity, {"organisation_id": org_id, "issuer": platform.issuer,
                                         "sub": claims["sub"]},
                           lambda: LtiIdentity(organisation_id=org_id, issuer=platform.issuer,
                                               sub=claims["sub"], user_id=user.id,
                                               platform_id=platform.id))
        if identity.user_id != user.id:  # lost a race with a concurrent first launch
            db.session.delete(user)
    user = identity.user
    if _stale(identity.last_launch_at, now):
        identity.last_launch_at = now
    if _stale(user.last_login_at, now):
        user.last_login_at = now
    _profile(user, claims, custom)
    if not user.name:
        user.name = f"LMS user {claims['sub']}"[:200]
    for role in sorted(map_roles(roles, platform.role_mapping)):
        grant_role(user, role, org_id)

    context_pk = link_pk = None
    module_slug = module_slug_from(custom, claims.get(CLAIM + "target_link_uri"))
    if context_key is not None:
        assert isinstance(context_claim, Mapping)
        nrps = claims.get(NRPS_CLAIM) or {}
        known = known_course
        if known is None:  # a first launch: the person did not exist for the query above
            known = db.session.execute(
                select(LtiContext, LtiMembership, LtiResourceLink)
                .outerjoin(LtiMembership, and_(LtiMembership.context_id == LtiContext.id,
                                               LtiMembership.user_id == user.id))
                .outerjoin(LtiResourceLink, and_(LtiResourceLink.context_id == LtiContext.id,
                                                 LtiResourceLink.resource_link_id == link_id))
                .where(LtiContext.platform_id == platform.id,
                       LtiContext.context_id == context_key)
            ).first()
        context, membership, link = known if known is not None else (None, None, None)
        context = context or _upsert(
            LtiContext, {"platform_id": platform.id, "context_id": str(context_claim["id"])},
            lambda: LtiContext(platform_id=platform.id, context_id=str(context_claim["id"])))
        _assign(context, "title", str(context_claim.get("title") or "")[:500])
        _assign(context, "label", str(context_claim.get("label") or "")[:255])
        if isinstance(nrps, Mapping) and nrps.get("context_memberships_url"):
            _assign(context, "memberships_url", str(nrps["context_memberships_url"])[:1000])
        db.session.flush()
        context_pk = context.id
        membership = membership or _upsert(
            LtiMembership, {"user_id": user.id, "context_id": context.id},
            lambda: LtiMembership(user_id=user.id, context_id=context.id))
        _assign(membership, "roles", roles)
        if not membership.active:  # back in the course (the roster sync had removed them)
            membership.active, membership.removed_at = True, None
        if _stale(membership.last_launch_at, now):
            membership.last_launch_at = now

        if link_id is not None:
            link = link or _upsert(
                LtiResourceLink, {"context_id": context.id, "resource_link_id": link_id},
                lambda: LtiResourceLink(context_id=context.id, resource_link_id=link_id))
            _assign(link, "title", str(link_claim.get("title") or "")[:500])
            if module_slug:
                _assign(link, "module_slug", module_slug)
            ags = claims.get(AGS_CLAIM) or {}
            if isinstance(ags, Mapping):
                _assign(link, "lineitem_url", ags.get("lineitem") or link.lineitem_url)
                _assign(link, "lineitems_url", ags.get("lineitems") or link.lineitems_url)
                if isinstance(ags.get("scope"), list):
                    _assign(link, "ags_scopes", [s for s in ags["scope"] if isinstance(s, str)])
            db.session.flush()
            link_pk = link.id
            module_slug = link.module_slug
    db.session.flush()
    return LaunchOutcome(
        user_id=user.id, platform_id=platform.id,
        deployment_id=str(claims.get(CLAIM + "deployment_id")),
        context_pk=context_pk, resource_link_pk=link_pk, module_slug=module_slug,
        message_type=str(claims.get(CLAIM + "message_type")), user=user,
    )
