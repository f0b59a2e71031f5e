"""What a validated launch does: find or create the person, record course and link, roles.

Takes plain values (the registration and the verified claims), flushes, never commits.
A returning learner whose rows all exist takes a fast path: the registration and every row
the launch touches come back in one read (:func:`lookup`), and only changed columns are
written, by primary key, without building ORM objects (``bench/README.md`` has why).
Identities are keyed by (organisation of the platform, issuer, sub): hosted Canvas tenants
share one issuer, so two platforms with overlapping ``sub`` values never share a user.
"""

from __future__ import annotations

import functools
import re
import threading
import typing as t
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import psycopg
from flask import current_app
from psycopg.rows import dict_row
from sqlalchemy import Engine, and_, bindparam, create_engine, select, union_all, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import joinedload

from lms_plugin.accounts.models import RoleGrant, SignedInUser, User
from lms_plugin.accounts.services import provision_people, sync_lti_grants
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.lti.models import (
    LtiContext,
    LtiDeployment,
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
#: (membership) administrator manages content like an instructor. A TeachingAssistant and a
#: Mentor (Canvas observers, parents) are learners: neither writes content or places it in
#: a course, and an observer sees nothing of a mentee here (LTI 1.3 core §A.2.3 roles;
#: issue 10 item 5). Only :func:`lti_rights` decides what these become, and where.
DEFAULT_ROLE_MAP: dict[str, tuple[str, ...]] = {
    "Learner": ("learner",),
    "Student": ("learner",),
    "Instructor": ("author", "learner"),
    "Faculty": ("author", "learner"),
    "ContentDeveloper": ("author", "learner"),
    "TeachingAssistant": ("learner",),
    "Mentor": ("learner",),
    "Administrator": ("officer",),
    "SysAdmin": ("officer",),
}

#: Tool roles an LTI role can give within its own course (context): ``author`` there means
#: placing modules in that course (deep linking) and seeing and syncing its roster.
COURSE_ROLES = frozenset({"author"})
#: What everyone who launches holds organisation-wide: they can take their training.
BASE_ORG_ROLES = frozenset({"learner"})


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


@dataclass(frozen=True)
class LtiRights:
    """What a person's LTI roles give: ``organisation`` roles (role grants, every course)
    and ``course`` rights (only in the course whose launch or roster sent the roles)."""

    organisation: frozenset[str]
    course: frozenset[str]


def lti_rights(roles: Iterable[t.Any], role_mapping: Mapping[str, t.Any] | None = None,
               grant_org_roles: bool = False) -> LtiRights:
    """THE mapping from LTI roles to tool rights, for launches and roster syncs alike.

    ``roles``: role URIs/names as the platform sent them (non-strings ignored);
    ``role_mapping``: the registration's overrides (:func:`map_roles`); ``grant_org_roles``:
    the registration's setting. Organisation-wide, everyone is a learner; the mapped roles
    become organisation-wide grants only with ``grant_org_roles``. Within the course the
    mapped ``author`` stays a course right. Officer and admin are never course rights: they
    come from a local grant or from ``grant_org_roles``.
    """
    mapped = map_roles(roles, role_mapping)
    organisation = BASE_ORG_ROLES | (mapped if grant_org_roles else frozenset())
    return LtiRights(frozenset(organisation), frozenset(mapped & COURSE_ROLES))


def course_rights(roles: Iterable[t.Any], role_mapping: Mapping[str, t.Any] | None = None
                  ) -> frozenset[str]:
    """Rights these LTI roles (an enrolment's, as sent) give in their course."""
    return lti_rights(roles, role_mapping).course


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


def _stale(when: datetime | None, now: datetime) -> bool:
    return when is None or now - when >= TOUCH_INTERVAL


@dataclass(frozen=True)
class PlatformRef:
    """What a launch needs to know of the registration it arrived through."""

    id: int
    organisation_id: int
    issuer: str
    role_mapping: Mapping[str, t.Any]
    grant_org_roles: bool = False


@dataclass(frozen=True)
class LaunchPlan:
    """What a validated id_token asks for, as column values: computed once, then compared
    with (and written to) the rows by either path below."""

    sub: str
    profile: dict[str, str]  # user columns the claims set
    default_name: str  # for a person the claims give no name
    roles: tuple[str, ...]  # organisation-wide tool roles from LTI, sorted (lti_rights)
    lti_roles: list[str]  # as sent, kept on the enrolment (course rights come from these)
    course_rights: tuple[str, ...]  # what lti_roles give in this course (for display only)
    context_key: str | None
    context: dict[str, t.Any]
    link_id: str | None
    link: dict[str, t.Any]
    module_slug: str | None  # named by this launch (custom parameter or target_link_uri)
    deployment_id: str
    message_type: str


def presentation(claims: Mapping[str, t.Any]) -> dict[str, str | None]:
    """``return_url`` and ``document_target`` of the ``launch_presentation`` claim (LTI 1.3
    core §5.4.3; both optional), for ``flask.session["lti"]``. A return URL that is not
    http(s) or is longer than 1000 characters is dropped (never a ``javascript:`` link on a
    page); an unknown target is dropped too."""
    claim = claims.get(CLAIM + "launch_presentation")
    if not isinstance(claim, Mapping):
        return {"return_url": None, "document_target": None}
    url = claim.get("return_url")
    if not (isinstance(url, str) and len(url) <= 1000
            and url.lower().startswith(("https://", "http://"))):
        url = None
    target = claim.get("document_target")
    return {"return_url": url,
            "document_target": target if target in ("iframe", "frame", "window") else None}


def claim_keys(claims: Mapping[str, t.Any]) -> tuple[str | None, str | None]:
    """The course (context id) and link (resource link id) an id_token names, if any."""
    keys: list[str | None] = []
    for claim in ("context", "resource_link"):
        value = claims.get(CLAIM + claim)
        keys.append(str(value["id"]) if isinstance(value, Mapping) and value.get("id")
                    else None)
    return keys[0], keys[1]


def plan_launch(claims: Mapping[str, t.Any], role_mapping: Mapping[str, t.Any],
                grant_org_roles: bool = False) -> LaunchPlan:
    """What the validated id_token asks for. ``claims`` is the body as :mod:`lti.claims`
    checked and normalised it (types and sizes); the cuts below only fit joined text
    (a name from given and family name) to its column."""
    custom = claims.get(CLAIM + "custom") or {}
    if not isinstance(custom, Mapping):
        custom = {}
    roles = [r for r in claims.get(CLAIM + "roles") or [] if isinstance(r, str)]

    profile: dict[str, str] = {}
    name = _substituted(claims.get("name")) or " ".join(
        p for p in (_substituted(claims.get("given_name")),
                    _substituted(claims.get("family_name"))) if p
    )
    if name:
        profile["name"] = name[:200]
    email = _substituted(claims.get("email"))
    if email and "@" in email:  # lti.claims refused an address longer than the column
        profile["email"] = email.lower()
    for field in ("job_role", "department", "facility"):
        value = _substituted(custom.get(field))
        if value:
            profile[field] = value[:100]
    hire_date = _hire_date(_substituted(custom.get("hire_date")))
    if hire_date is not None:
        profile["hire_date"] = hire_date  # type: ignore[assignment]

    context_key, link_id = claim_keys(claims)
    context_claim = claims.get(CLAIM + "context")
    context: dict[str, t.Any] = {}
    if context_key is not None:
        assert isinstance(context_claim, Mapping)
        context = {"title": str(context_claim.get("title") or "")[:500],
                   "label": str(context_claim.get("label") or "")[:255]}
        nrps = claims.get(NRPS_CLAIM) or {}
        if isinstance(nrps, Mapping) and nrps.get("context_memberships_url"):
            context["memberships_url"] = str(nrps["context_memberships_url"])[:1000]

    rights = lti_rights(roles, role_mapping, grant_org_roles)
    module_slug = module_slug_from(custom, claims.get(CLAIM + "target_link_uri"))
    link_claim = claims.get(CLAIM + "resource_link")
    link: dict[str, t.Any] = {}
    if link_id is not None:
        assert isinstance(link_claim, Mapping)
        link["title"] = str(link_claim.get("title") or "")[:500]
        if module_slug:
            link["module_slug"] = module_slug
        ags = claims.get(AGS_CLAIM) or {}
        if isinstance(ags, Mapping):
            if ags.get("lineitem"):
                link["lineitem_url"] = ags["lineitem"]
            if ags.get("lineitems"):
                link["lineitems_url"] = ags["lineitems"]
            if isinstance(ags.get("scope"), list):
                link["ags_scopes"] = [s for s in ags["scope"] if isinstance(s, str)]

    return LaunchPlan(
        sub=str(claims["sub"]), profile=profile,
        default_name=f"LMS user {claims['sub']}"[:200],
        roles=tuple(sorted(rights.organisation)), lti_roles=roles,
        course_rights=tuple(sorted(rights.course)) if context_key is not None else (),
        context_key=context_key, context=context, link_id=link_id, link=link,
        module_slug=module_slug,
        deployment_id=str(claims.get(CLAIM + "deployment_id")),
        message_type=str(claims.get(CLAIM + "message_type")),
    )


def _hire_date(value: str | None) -> date | None:
    """The ``hire_date`` custom parameter as a date (ISO 8601 YYYY-MM-DD, optionally with a
    time as Canvas/Moodle date variables give); None when absent or not a date (a launch is
    never refused for it)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


#: Profile columns whose change re-evaluates the person's assignment rules (issue 14).
ASSIGNMENT_FIELDS = frozenset({"job_role", "department", "facility", "hire_date"})


def _changed(current: t.Callable[[str], t.Any], wanted: Mapping[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in wanted.items() if current(k) != v}


def row_updates(plan: LaunchPlan, now: datetime, *, user: t.Callable[[str], t.Any],
                identity: t.Callable[[str], t.Any],
                context: t.Callable[[str], t.Any] | None = None,
                membership: t.Callable[[str], t.Any] | None = None,
                link: t.Callable[[str], t.Any] | None = None) -> dict[str, dict[str, t.Any]]:
    """The column values to write, per row, for rows that exist (each given as a getter of
    its current values). Both paths use this one function: the fast path on plain rows,
    the ORM path on mapped objects. Only values that differ are returned, so an unchanged
    returning launch writes nothing."""
    out: dict[str, dict[str, t.Any]] = {}
    user_set = _changed(user, plan.profile)
    if not user_set.get("name", user("name")):
        user_set["name"] = plan.default_name
    if _stale(user("last_login_at"), now):
        user_set["last_login_at"] = now
    out["user"] = user_set
    out["identity"] = {"last_launch_at": now} if _stale(identity("last_launch_at"), now) else {}
    if context is not None:
        out["context"] = _changed(context, plan.context)
    if membership is not None:
        member_set = _changed(membership, {"roles": plan.lti_roles})
        if not membership("active"):  # back in the course (the roster sync had removed them)
            member_set.update(active=True, removed_at=None)
        if _stale(membership("last_launch_at"), now):
            member_set["last_launch_at"] = now
        out["membership"] = member_set
    if link is not None:
        out["link"] = _changed(link, plan.link)
    return out


@dataclass(frozen=True)
class LaunchOutcome:
    user_id: int
    platform_id: int
    deployment_id: str
    context_pk: int | None
    resource_link_pk: int | None
    module_slug: str | None
    message_type: str
    #: What ``login_user`` gets: the ORM row, or a :class:`SignedInUser` on the fast path.
    user: User | SignedInUser | None = None
    #: Rights in the launch's course, for the page navigation only: authorisation reads
    #: them from the enrolment at every request (``lti.course_scope``).
    course_rights: tuple[str, ...] = ()
    #: A column rules match on changed (job role, department, facility, hire date).
    profile_changed: bool = False

    def session_data(self) -> dict[str, t.Any]:
        """The plain dict put in ``flask.session["lti"]`` for the rest of the app."""
        return {
            "platform_id": self.platform_id,
            "deployment_id": self.deployment_id,
            "context_pk": self.context_pk,
            "resource_link_pk": self.resource_link_pk,
            "module_slug": self.module_slug,
            "message_type": self.message_type,
            "course_rights": list(self.course_rights),
        }

    @property
    def redirect_path(self) -> str:
        return f"/modules/{self.module_slug}" if self.module_slug else "/home"


# --- the lookup: registration + returning learner in one statement ---------------------

#: Registration columns a launch needs (also what the login cache keeps).
PLATFORM_COLUMNS = ("id", "organisation_id", "issuer", "client_id", "auth_login_url",
                    "auth_token_url", "key_set_url", "public_key_pem", "token_audience",
                    "enabled", "role_mapping", "grant_org_roles")
_USER_COLUMNS = ("id", "name", "email", "job_role", "department", "facility", "hire_date",
                 "active", "session_token", "last_login_at")
_CONTEXT_COLUMNS = ("id", "title", "label", "memberships_url")
_MEMBERSHIP_COLUMNS = ("id", "roles", "active", "last_launch_at")
_LINK_COLUMNS = ("id", "title", "module_slug", "lineitem_url", "lineitems_url", "ags_scopes")


@dataclass(frozen=True)
class LaunchLookup:
    """One read for a launch: the registration row, whether the deployment is known, and
    what already exists of the person (identity, user, grants) and of their course
    (context, enrolment, link). Read before the signature is checked (the registration
    holds the key), so nothing in it may be used unless the id_token then validates."""

    platform: dict[str, t.Any]
    deployment_known: bool
    identity: dict[str, t.Any] | None
    user: dict[str, t.Any] | None
    grants: frozenset[str]  # every role the person holds in the organisation
    lti_grants: frozenset[str]  # those of them derived from launches (source "lti")
    context: dict[str, t.Any] | None
    membership: dict[str, t.Any] | None
    link: dict[str, t.Any] | None
    context_key: str | None
    link_id: str | None
    sub: str | None


@functools.cache
def _lookup_query() -> t.Any:
    """Built once per process with bound parameters (building it cost as much as running it).
    Plain columns, no ORM entities: a returning launch builds no mapped objects at all."""
    p, d = LtiPlatform.__table__, LtiDeployment.__table__
    i, u, g = LtiIdentity.__table__, User.__table__, RoleGrant.__table__
    c, m, lk = LtiContext.__table__, LtiMembership.__table__, LtiResourceLink.__table__
    columns = [p.c[n].label("p_" + n) for n in PLATFORM_COLUMNS]
    columns += [d.c.id.label("d_id"), i.c.id.label("i_id"),
                i.c.last_launch_at.label("i_last_launch_at"), g.c.role.label("g_role"),
                g.c.source.label("g_source")]
    columns += [u.c[n].label("u_" + n) for n in _USER_COLUMNS]
    columns += [c.c[n].label("c_" + n) for n in _CONTEXT_COLUMNS]
    columns += [m.c[n].label("m_" + n) for n in _MEMBERSHIP_COLUMNS]
    columns += [lk.c[n].label("l_" + n) for n in _LINK_COLUMNS]
    joined = (
        p.outerjoin(d, and_(d.c.platform_id == p.c.id,
                            d.c.deployment_id == bindparam("deployment_id")))
        .outerjoin(i, and_(i.c.organisation_id == p.c.organisation_id,
                           i.c.issuer == p.c.issuer, i.c.sub == bindparam("sub")))
        .outerjoin(u, u.c.id == i.c.user_id)
        .outerjoin(g, and_(g.c.user_id == u.c.id, g.c.organisation_id == p.c.organisation_id))
        .outerjoin(c, and_(c.c.platform_id == p.c.id,
                           c.c.context_id == bindparam("context_key")))
        .outerjoin(m, and_(m.c.context_id == c.c.id, m.c.user_id == u.c.id))
        .outerjoin(lk, and_(lk.c.context_id == c.c.id,
                            lk.c.resource_link_id == bindparam("link_id")))
    )
    return select(*columns).select_from(joined).where(
        p.c.issuer == bindparam("iss"), p.c.client_id == bindparam("client_id"))


def _part(row: Mapping[str, t.Any], prefix: str, names: Iterable[str]) -> dict[str, t.Any] | None:
    if row[prefix + "id"] is None:
        return None
    return {n: row[prefix + n] for n in names}


_reader_lock = threading.Lock()


def _reader() -> Engine:
    """The engine the launch's lookup (and fast-path write) runs on: autocommit (no
    BEGIN/COMMIT round trips) and without the pool's pre-ping (a round trip per checkout),
    which :func:`_on_reader` replaces by retrying once on a dropped connection. Its own
    small pool per worker process (created there, after gunicorn forks); SQLite just uses
    the application's engine."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        return engine
    reader = current_app.extensions.get("lti_launch_reader")
    if reader is not None and reader.url == engine.url:
        return reader
    with _reader_lock:  # threaded workers: one reader engine per process
        reader = current_app.extensions.get("lti_launch_reader")
        if reader is not None and reader.url == engine.url:
            return reader
        reader = current_app.extensions["lti_launch_reader"] = create_engine(
            engine.url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_size=2,
            max_overflow=8,
            # Asynchronous commit for what this engine writes: last-launch times and values
            # the LMS sends again at every launch (profile, course title, link). A crash
            # can lose the last fraction of a second of them, never corrupt anything, and
            # the next launch writes them again; in exchange a shift's first launches do
            # not each wait for a WAL flush to disk. Everything else keeps durable commits.
            connect_args={"options": "-c synchronous_commit=off"})
        return reader


def lookup(iss: str, client_id: str, deployment_id: str | None, sub: str | None,
           context_key: str | None, link_id: str | None) -> LaunchLookup | None:
    """Registration and returning learner in ONE statement on an autocommit connection
    (:func:`_reader`): a launch that then has nothing to write costs this one round trip.
    None when no registration has this (issuer, client_id)."""
    params = {"iss": iss, "client_id": client_id, "deployment_id": deployment_id,
              "sub": sub, "context_key": context_key, "link_id": link_id}
    rows = _on_reader(lambda conn: _fetch_lookup(conn, params))
    if not rows:
        return None
    row = rows[0]
    identity = ({"id": row["i_id"], "last_launch_at": row["i_last_launch_at"]}
                if row["i_id"] is not None else None)
    return LaunchLookup(
        platform={n: row["p_" + n] for n in PLATFORM_COLUMNS},
        deployment_known=row["d_id"] is not None,
        identity=identity,
        user=_part(row, "u_", _USER_COLUMNS) if identity else None,
        grants=frozenset(r["g_role"] for r in rows if r["g_role"] is not None),
        lti_grants=frozenset(r["g_role"] for r in rows
                             if r["g_role"] is not None and r["g_source"] == "lti"),
        context=_part(row, "c_", _CONTEXT_COLUMNS),
        membership=_part(row, "m_", _MEMBERSHIP_COLUMNS),
        link=_part(row, "l_", _LINK_COLUMNS),
        context_key=context_key, link_id=link_id, sub=sub,
    )


def _on_reader(work: Callable[[t.Any], t.Any]) -> t.Any:
    """Run ``work(connection)`` on a reader connection; once more on a fresh connection if
    the server had dropped this one (the reader skips the pool's ping). Only for work that
    is one statement: it either happened or not, and running it again does no harm."""
    for attempt in (1, 2):
        try:
            with _reader().connect() as conn:
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    # Raised by the driver itself (see _fetch_lookup): its connection is no
                    # good, so it must not go back to the pool.
                    conn.invalidate()
                    raise
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
        except psycopg.OperationalError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@functools.cache
def _lookup_sql(dialect: t.Any) -> str:
    return str(_lookup_query().compile(dialect=dialect))


def _fetch_lookup(conn: t.Any, params: dict[str, t.Any]) -> list[t.Any]:
    """Run the lookup. On PostgreSQL straight on the psycopg cursor with the SQL compiled
    once: SQLAlchemy's per-execution work (cache key, execution context, result metadata,
    row processors) was ~0.19 ms of CPU per launch against ~0.07 ms for the query itself,
    and psycopg already returns what the columns hold (aware datetimes, decoded JSON,
    booleans). Elsewhere (SQLite) through SQLAlchemy."""
    if conn.dialect.name != "postgresql":
        return conn.execute(_lookup_query(), params).mappings().all()
    with conn.connection.dbapi_connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(_lookup_sql(conn.dialect), params)
        return cursor.fetchall()


def _write_rows(writes: list[tuple[t.Any, int, dict[str, t.Any]]]) -> None:
    """Update these rows (table, primary key, values). On PostgreSQL as ONE statement on the
    autocommit reader (each UPDATE a data-modifying CTE), so it is atomic by itself and costs
    one round trip instead of ping + BEGIN + one UPDATE per row + COMMIT. On SQLite through
    the request's session (one writer at a time there), committed with the request."""
    if _reader().dialect.name != "postgresql":
        for table, pk, values in writes:
            db.session.execute(update(table).where(table.c.id == pk).values(**values))
        return
    shape = tuple((table.name, tuple(sorted(values))) for table, _, values in writes)
    params = {f"w{n}_{column}": value for n, (_, pk, values) in enumerate(writes)
              for column, value in (*values.items(), ("id", pk))}
    statement = _combined_update(shape)
    _on_reader(lambda conn: conn.execute(statement, params).all())


@functools.cache
def _combined_update(shape: tuple[tuple[str, tuple[str, ...]], ...]) -> t.Any:
    """The combined UPDATE for this shape (which columns of which tables), with bound
    parameters ``w<n>_<column>``, built once: building and hashing a fresh CTE statement
    at every launch cost more CPU than running it. A handful of shapes occur (the three
    last-launch times, plus a profile or course field now and then)."""
    tables = {model.__table__.name: model.__table__ for model in _TABLES.values()}
    reads = []
    for n, (name, columns) in enumerate(shape):
        table = tables[name]
        cte = (update(table).where(table.c.id == bindparam(f"w{n}_id"))
               .values({c: bindparam(f"w{n}_{c}", type_=table.c[c].type) for c in columns})
               .returning(table.c.id).cte(f"w{n}"))
        reads.append(select(cte.c.id))  # referenced, so each CTE is rendered
    return reads[0] if len(reads) == 1 else union_all(*reads)


_TABLES = {"user": User, "identity": LtiIdentity, "context": LtiContext,
           "membership": LtiMembership, "link": LtiResourceLink}


def _fast_launch(platform: PlatformRef, plan: LaunchPlan, found: LaunchLookup,
                 now: datetime) -> LaunchOutcome | None:
    """A returning learner whose rows all exist: write only changed columns (by primary key,
    no ORM objects), or nothing at all. None when something must be created (a first
    launch, a new course, link or role, or a role to remove): the ORM path below does that."""
    if (found.sub != plan.sub or found.identity is None or found.user is None
            or found.context_key != plan.context_key or found.link_id != plan.link_id
            or found.lti_grants != set(plan.roles) - (found.grants - found.lti_grants)):
        return None
    has_context = plan.context_key is not None
    if has_context and (found.context is None or found.membership is None
                        or (plan.link_id is not None and found.link is None)):
        return None
    link = found.link if has_context and plan.link_id is not None else None
    updates = row_updates(
        plan, now, user=found.user.__getitem__, identity=found.identity.__getitem__,
        context=found.context.__getitem__ if has_context else None,
        membership=found.membership.__getitem__ if has_context else None,
        link=link.__getitem__ if link is not None else None)
    rows = {"user": found.user, "identity": found.identity, "context": found.context,
            "membership": found.membership, "link": link}
    writes = []
    for name, values in updates.items():
        if values:
            table = _TABLES[name].__table__
            if "updated_at" in table.c:
                values["updated_at"] = now
            writes.append((table, rows[name]["id"], values))  # type: ignore[index]
    user = found.user
    if writes and user["active"]:  # a deactivated person is refused: nothing is written
        _write_rows(writes)
    return LaunchOutcome(
        user_id=user["id"], platform_id=platform.id, deployment_id=plan.deployment_id,
        context_pk=found.context["id"] if has_context else None,  # type: ignore[index]
        resource_link_pk=link["id"] if link is not None else None,
        module_slug=(plan.link.get("module_slug") or link["module_slug"]) if link is not None
        else plan.module_slug,
        message_type=plan.message_type,
        user=SignedInUser(user["id"], user["session_token"], user["active"]),
        course_rights=plan.course_rights,
        profile_changed=bool(ASSIGNMENT_FIELDS & set(updates["user"])),
    )


def complete_launch(platform: PlatformRef, claims: Mapping[str, t.Any],
                    found: LaunchLookup | None = None) -> LaunchOutcome:
    """Apply a validated id_token: person, roles, course, link, enrolment.

    With ``found`` (the launch's :func:`lookup`) a returning learner takes the fast path;
    otherwise, or when something must be created, the ORM path. Flushes, never commits.
    """
    plan = plan_launch(claims, platform.role_mapping, platform.grant_org_roles)
    now = utcnow()
    outcome = _fast_launch(platform, plan, found, now) if found is not None else None
    if outcome is None:
        outcome = _orm_launch(platform, plan, now)
    if outcome.profile_changed:  # a first launch too: the new person's rules apply now
        assignments.evaluate(platform.organisation_id, now, user_id=outcome.user_id)
    return outcome


def _orm_launch(platform: PlatformRef, plan: LaunchPlan, now: datetime) -> LaunchOutcome:
    """Find or create every row through the ORM (inserts behind savepoints, so concurrent
    first launches of the same person or course converge), then write what differs."""
    org_id = platform.organisation_id
    identity = db.session.scalar(
        select(LtiIdentity).options(joinedload(LtiIdentity.user).joinedload(User.grants))
        .where(LtiIdentity.organisation_id == org_id, LtiIdentity.issuer == platform.issuer,
               LtiIdentity.sub == plan.sub))
    created = identity is None
    if identity is None:
        # The one function that makes people from an LMS (the roster sync uses it too).
        user = db.session.get(User, provision_people(org_id, [{"name": ""}], now)[0])
        identity = _upsert(LtiIdentity, {"organisation_id": org_id, "issuer": platform.issuer,
                                         "sub": plan.sub},
                           lambda: LtiIdentity(organisation_id=org_id, issuer=platform.issuer,
                                               sub=plan.sub, user_id=user.id,
                                               platform_id=platform.id))
        if identity.user_id != user.id:  # lost a race with a concurrent first launch
            db.session.delete(user)
    user = identity.user
    sync_lti_grants(user, org_id, plan.roles)

    context = membership = link = None
    if plan.context_key is not None:
        context_key = plan.context_key
        context = _upsert(
            LtiContext, {"platform_id": platform.id, "context_id": context_key},
            lambda: LtiContext(platform_id=platform.id, context_id=context_key))
        db.session.flush()
        membership = _upsert(
            LtiMembership, {"user_id": user.id, "context_id": context.id},
            lambda: LtiMembership(user_id=user.id, context_id=context.id))
        if plan.link_id is not None:
            link_id = plan.link_id
            link = _upsert(
                LtiResourceLink, {"context_id": context.id, "resource_link_id": link_id},
                lambda: LtiResourceLink(context_id=context.id, resource_link_id=link_id))
    rows = {"user": user, "identity": identity, "context": context,
            "membership": membership, "link": link}
    updates = row_updates(
        plan, now, user=functools.partial(getattr, user),
        identity=functools.partial(getattr, identity),
        context=functools.partial(getattr, context) if context is not None else None,
        membership=functools.partial(getattr, membership) if membership is not None else None,
        link=functools.partial(getattr, link) if link is not None else None)
    for name, values in updates.items():
        for attr, value in values.items():
            setattr(rows[name], attr, value)
    db.session.flush()
    return LaunchOutcome(
        user_id=user.id, platform_id=platform.id, deployment_id=plan.deployment_id,
        context_pk=context.id if context is not None else None,
        resource_link_pk=link.id if link is not None else None,
        module_slug=link.module_slug if link is not None else plan.module_slug,
        message_type=plan.message_type, user=user, course_rights=plan.course_rights,
        profile_changed=created or bool(ASSIGNMENT_FIELDS & set(updates["user"])),
    )
