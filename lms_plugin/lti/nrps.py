"""Names and Role Provisioning: sync a course's roster from the LMS.

For contexts whose launch offered NRPS (``LtiContext.memberships_url``). Members who never
launched are created as people (identity by organisation + issuer + sub, exactly as the
launch does), so "assigned but never started" reports are true; members the LMS no longer
lists (or lists as Inactive/Deleted) are marked inactive, never deleted. Pages are followed
through ``Link: <…>; rel="next"``; where the platform offers ``rel="differences"``, the next
sync asks only for changes.

Runs as the ``nrps.sync`` job (one per context, coalesced), enqueued by the periodic
``nrps.sync_all`` job and by the "Sync roster" button.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from flask import current_app
from sqlalchemy import func, insert, select, update

from lms_plugin.accounts.models import RoleGrant
from lms_plugin.accounts.services import normalise_email, provision_people
from lms_plugin.db import utcnow
from lms_plugin.errors import NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.jobs.services import (
    JobContext,
    PermanentFailure,
    RetryLater,
    enqueue,
    job_handler,
)
from lms_plugin.lti import claims as claim_rules
from lms_plugin.lti.launch import lti_rights
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiPlatform
from lms_plugin.lti.service_client import (
    ServiceRefused,
    ServiceUrlRefused,
    TransientServiceError,
    service_request,
)

SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
KIND = "nrps.sync"
KIND_ALL = "nrps.sync_all"
SYNC_INTERVAL = timedelta(hours=12)
#: The periodic fan-out starts the courses' syncs evenly over this window, so 200 courses
#: (or a worker's first start, when every course is due) never arrive as one wave.
SYNC_SPREAD = timedelta(hours=1)
MAX_PAGES = 1000  # a loop guard: a platform whose "next" never ends
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')

log = logging.getLogger(__name__)


def parse_links(header: str | None) -> dict[str, str]:
    """``Link`` header → {rel: url} (RFC 8288, the subset NRPS uses)."""
    links: dict[str, str] = {}
    for url, rels in _LINK.findall(header or ""):
        for rel in rels.split():
            links.setdefault(rel, url)
    return links


@dataclass
class SyncReport:
    members: int = 0
    created: int = 0
    deactivated: int = 0
    reactivated: int = 0
    differences: bool = False


def fetch_members(platform: LtiPlatform, url: str) -> tuple[list[dict[str, Any]], str | None]:
    """All members across pages, and the platform's differences link (if any)."""
    members: list[dict[str, Any]] = []
    differences = None
    for _ in range(MAX_PAGES):
        response = service_request(platform, "GET", url, [SCOPE], accept=MEMBERSHIP_TYPE)
        data = response.json()
        page = data.get("members") if isinstance(data, Mapping) else None
        members.extend(m for m in page or [] if isinstance(m, Mapping))
        links = parse_links(response.headers.get("Link"))
        differences = links.get("differences", differences)
        if not links.get("next"):
            return members, differences
        # A relative link is resolved against the page; service_request checks the host.
        url = urljoin(url, links["next"])
    raise ValidationFailed("the roster has more pages than the tool follows")


def member_roles(member: Mapping[str, Any]) -> list[str]:
    """A roster member's roles: an array of strings, else none (a string is not iterated
    into characters)."""
    roles = member.get("roles")
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []


#: Members applied per round of set-based statements: bounds both the statement count
#: (about seven per chunk, whatever the chunk holds) and the parameters of one IN list.
CHUNK = 500


def roster_grants(lti_roles: list[str], platform: LtiPlatform) -> frozenset[str]:
    """The organisation-wide tool roles a roster listing gives a person: the ONE place where a
    roster sync decides role grants, by the launch's own rule (:func:`lti_rights`).

    ``learner``, unless the registration grants organisation roles (``grant_org_roles``):
    rights in a course (Instructor…) are read from the enrolment's roles at every request
    (``lti.course_scope``), which the sync keeps up to date; Mentor and TeachingAssistant
    are never authors.
    """
    return frozenset(lti_rights(lti_roles, platform.role_mapping,
                                platform.grant_org_roles).organisation)


@dataclass
class _Listed:
    sub: str
    active: bool
    roles: list[str]
    name: str
    email: str | None


def _listed(member: Mapping[str, Any]) -> _Listed | None:
    """One member of the LMS's list as plain values, by the id_token's claim rule
    (:mod:`lms_plugin.lti.claims`); ``None`` without a usable ``user_id``. A malformed name
    or email is left out; an over-long email is refused (logged), never cut (issue 9)."""
    try:
        sub = claim_rules.Text(255, required=True, number_ok=True)("member user_id",
                                                                   member.get("user_id"))
    except claim_rules.ClaimError:
        return None
    if not sub:
        return None
    try:
        fields = claim_rules.person_fields(member)
    except claim_rules.ClaimError:
        fields = {}
    name = fields.get("name") or " ".join(
        fields[k] for k in ("given_name", "family_name") if fields.get(k))
    email = fields.get("email")
    if email and "@" in email:
        try:
            email = normalise_email(email)
        except ValidationFailed as exc:
            log.warning("roster member %s: email not stored: %s", sub, exc.message)
            email = None
    else:
        email = None
    return _Listed(sub=sub, active=str(member.get("status") or "Active") == "Active",
                   roles=member_roles(member), name=(name or f"LMS user {sub}")[:200],
                   email=email)


def _create_people(platform: LtiPlatform, new: list[_Listed], now: datetime) -> dict[str, int]:
    """Users, identities and role grants for members never seen before: three statements
    (bulk INSERTs) whatever their number; {sub: user id}."""
    org_id = platform.organisation_id
    ids = provision_people(org_id, [{"name": m.name, "email": m.email} for m in new], now)
    by_sub = {m.sub: uid for m, uid in zip(new, ids, strict=True)}
    db.session.execute(insert(LtiIdentity), [
        {"organisation_id": org_id, "issuer": platform.issuer, "sub": m.sub,
         "user_id": by_sub[m.sub], "platform_id": platform.id, "created_at": now}
        for m in new])
    grants = [{"user_id": by_sub[m.sub], "organisation_id": org_id, "role": role,
               "source": "lti", "created_at": now}
              for m in new for role in sorted(roster_grants(m.roles, platform))]
    if grants:
        db.session.execute(insert(RoleGrant), grants)
    return by_sub


def _apply_chunk(platform: LtiPlatform, context: LtiContext, chunk: list[_Listed],
                 now: datetime, report: SyncReport, seen: set[int]) -> None:
    """Apply up to :data:`CHUNK` members with a constant number of statements: look up
    identities, create the new people, look up memberships, insert and update in bulk."""
    subs = [m.sub for m in chunk]
    known = dict(db.session.execute(
        select(LtiIdentity.sub, LtiIdentity.user_id).where(
            LtiIdentity.organisation_id == platform.organisation_id,
            LtiIdentity.issuer == platform.issuer, LtiIdentity.sub.in_(subs))).all())
    # Listed as inactive and unknown here: nobody to record.
    new = [m for m in chunk if m.sub not in known and m.active]
    if new:
        known.update(_create_people(platform, new, now))
        report.created += len(new)
    listed = [(known[m.sub], m) for m in chunk if m.sub in known]
    memberships = {row.user_id: row for row in db.session.execute(
        select(LtiMembership.id, LtiMembership.user_id, LtiMembership.active,
               LtiMembership.roles)
        .where(LtiMembership.context_id == context.id,
               LtiMembership.user_id.in_([uid for uid, _ in listed]))).all()}
    inserts, updates = [], []
    for user_id, m in listed:
        seen.add(user_id)
        row = memberships.get(user_id)
        if row is None:
            if m.active:  # never enrolled here as far as we know: nothing to record otherwise
                inserts.append({"user_id": user_id, "context_id": context.id, "roles": m.roles,
                                "created_at": now, "last_launch_at": None, "active": True})
                memberships[user_id] = None  # listed twice: insert once
            continue
        roles = m.roles or list(row.roles or [])
        active, removed_at = row.active, None
        if m.active and not row.active:
            active = True
            report.reactivated += 1
        elif not m.active and row.active:
            active, removed_at = False, now
            report.deactivated += 1
        if active != row.active or roles != list(row.roles or []):
            values = {"id": row.id, "roles": roles, "active": active}
            if active != row.active:
                values["removed_at"] = removed_at
            updates.append(values)
    if inserts:
        db.session.execute(insert(LtiMembership), inserts)
    # Executemany by primary key, one statement per set of columns changed.
    for keys in {tuple(sorted(u)) for u in updates}:
        db.session.execute(update(LtiMembership),
                           [u for u in updates if tuple(sorted(u)) == keys],
                           execution_options={"synchronize_session": False})


def roster_is_suspicious(listed_active: int, active_before: int, min_share: float) -> bool:
    """A full roster listing fewer than ``min_share`` of the active members (an empty one
    included) looks like a platform hiccup, not everyone leaving (issue 9 item 5)."""
    return active_before > 0 and listed_active < min_share * active_before


def sync_context(context_id: int, now: datetime | None = None) -> SyncReport:
    """Fetch the roster and apply it, set-based per :data:`CHUNK` members (flush, no commit;
    the job commits).

    A full roster that lists fewer than ``LMS_ROSTER_MIN_SHARE`` of the active members
    removes nobody: ``LtiContext.roster_warning`` says why, and the course page shows it.
    Raises NotFound (no such course) and ValidationFailed (no roster service).
    """
    now = now or utcnow()
    context = db.session.get(LtiContext, context_id)
    if context is None:
        raise NotFound(f"no course #{context_id}")
    if not context.memberships_url:
        raise ValidationFailed("this course's launches never offered the roster service",
                               field="context_id")
    platform = db.session.get(LtiPlatform, context.platform_id)
    use_differences = bool(context.roster_differences_url)
    members, differences = fetch_members(
        platform, context.roster_differences_url or context.memberships_url)
    report = SyncReport(members=len(members), differences=use_differences)
    listed = list({m.sub: m for m in filter(None, map(_listed, members))}.values())
    listed_active = sum(1 for m in listed if m.active)
    min_share = float(current_app.config["LMS_ROSTER_MIN_SHARE"])
    suspicious = False
    if not use_differences:
        active_before = db.session.scalar(
            select(func.count()).select_from(LtiMembership).where(
                LtiMembership.context_id == context.id, LtiMembership.active.is_(True))) or 0
        suspicious = roster_is_suspicious(listed_active, active_before, min_share)
    seen: set[int] = set()
    for start in range(0, len(listed), CHUNK):
        _apply_chunk(platform, context, listed[start:start + CHUNK], now, report, seen)
    warning = None
    if suspicious:
        warning = (f"On {now:%Y-%m-%d %H:%M} UTC the LMS listed {listed_active} active "
                   f"member(s) of the {active_before} known: nobody was removed. Sync again "
                   "later, or check the course in the LMS.")
    elif not use_differences:  # a full roster: whoever it does not list has left the course
        gone = [row.id for row in db.session.execute(
            select(LtiMembership.id, LtiMembership.user_id).where(
                LtiMembership.context_id == context.id, LtiMembership.active.is_(True))).all()
            if row.user_id not in seen]
        for start in range(0, len(gone), CHUNK * 2):
            db.session.execute(
                update(LtiMembership)
                .where(LtiMembership.id.in_(gone[start:start + CHUNK * 2]))
                .values(active=False, removed_at=now),
                execution_options={"synchronize_session": False})
        report.deactivated += len(gone)
    if not use_differences:  # a changes-only sync neither proves nor disproves a warning
        context.roster_warning = warning
    # After a suspicious roster the next sync fetches the full roster again, not the
    # changes since this doubtful one.
    # A differences URL longer than its column is dropped, not cut (a cut URL is a wrong
    # one): the next sync then fetches the full roster.
    context.roster_differences_url = differences if (
        differences and len(differences) <= 1000 and not suspicious) else None
    context.roster_synced_at = now
    db.session.flush()
    return report


# --------------------------------------------------------------------------- people's side


@dataclass(frozen=True)
class CourseRoster:
    context: LtiContext
    active: int
    never_launched: int
    inactive: int


def _context_of(context_id: int, organisation_id: int) -> LtiContext:
    context = db.session.scalar(
        select(LtiContext).join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiContext.id == context_id, LtiPlatform.organisation_id == organisation_id))
    if context is None:
        raise NotFound(f"no course #{context_id} in your organisation")
    return context


def list_courses(organisation_id: int) -> list[CourseRoster]:
    """The organisation's LMS courses with roster counts, for the roster page."""
    contexts = db.session.scalars(
        select(LtiContext).join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiPlatform.organisation_id == organisation_id)
        .order_by(LtiContext.title, LtiContext.id)).all()
    counts: dict[int, dict[str, int]] = {c.id: {"active": 0, "never": 0, "inactive": 0}
                                         for c in contexts}
    rows = db.session.execute(
        select(LtiMembership.context_id, LtiMembership.active,
               LtiMembership.last_launch_at.is_(None), func.count())
        .where(LtiMembership.context_id.in_(list(counts)))
        .group_by(LtiMembership.context_id, LtiMembership.active,
                  LtiMembership.last_launch_at.is_(None))).all()
    for context_id, active, never, n in rows:
        entry = counts[context_id]
        if not active:
            entry["inactive"] += n
        else:
            entry["active"] += n
            if never:
                entry["never"] += n
    return [CourseRoster(c, counts[c.id]["active"], counts[c.id]["never"],
                         counts[c.id]["inactive"]) for c in contexts]


def request_sync(context_id: int, organisation_id: int,
                 now: datetime | None = None) -> OutboxJob:
    """Queue a roster sync of one course (the button); refused if the LMS never offered it."""
    context = _context_of(context_id, organisation_id)
    if not context.memberships_url:
        raise ValidationFailed("this course's launches never offered the roster service "
                               "(Names and Role Provisioning)", field="context_id")
    return enqueue_sync(context, organisation_id, now)


def enqueue_sync(context: LtiContext, organisation_id: int,
                 now: datetime | None = None, not_before: datetime | None = None) -> OutboxJob:
    return enqueue(KIND, {"context_id": context.id}, organisation_id=organisation_id,
                   coalesce_key=f"{KIND}:{context.id}", now=now, event_at=now,
                   not_before=not_before)


def enqueue_all(now: datetime | None = None, spread: timedelta = SYNC_SPREAD) -> int:
    """One sync job per course that offered NRPS (the periodic fan-out), their starts spread
    evenly over ``spread`` (course i of n at now + i * spread / n, in id order)."""
    now = now or utcnow()
    rows = db.session.execute(
        select(LtiContext, LtiPlatform.organisation_id)
        .join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiContext.memberships_url.is_not(None), LtiPlatform.enabled.is_(True))
        .order_by(LtiContext.id)).all()
    for i, (context, organisation_id) in enumerate(rows):
        enqueue_sync(context, organisation_id, now, not_before=now + spread * i / len(rows))
    return len(rows)


# --------------------------------------------------------------------------- jobs


@job_handler(KIND)
def run_sync(payload: dict[str, Any], ctx: JobContext) -> None:
    """One course's roster; network trouble retries, a refusal is recorded."""
    try:
        sync_context(int(payload["context_id"]), ctx.now)
    except TransientServiceError as exc:
        raise RetryLater(exc.reason, after_seconds=exc.retry_after) from None
    except ServiceRefused as exc:
        raise PermanentFailure(f"the platform refused the roster (HTTP {exc.status}): "
                               f"{exc.message}") from None
    except ServiceUrlRefused as exc:
        raise PermanentFailure(f"the roster was not fetched: {exc.reason}") from None
    except (NotFound, ValidationFailed) as exc:
        raise PermanentFailure(str(exc)) from None


@job_handler(KIND_ALL)
def run_sync_all(payload: dict[str, Any], ctx: JobContext) -> None:
    """The periodic fan-out: one coalesced sync job per NRPS course."""
    enqueue_all(ctx.now)


schedule.every(KIND_ALL, SYNC_INTERVAL)
