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

from sqlalchemy import func, select

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import grant_role, normalise_email
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


def _person(platform: LtiPlatform, member: Mapping[str, Any], now: datetime, *,
            create: bool) -> tuple[User | None, bool]:
    """The member's user, created (never launched) when the identity is new and ``create``.
    None for a member whose ``user_id`` is not an identifier (claim rule of lti.claims)."""
    try:
        sub = claim_rules.Text(255, required=True, number_ok=True)("member user_id",
                                                                   member["user_id"])
    except claim_rules.ClaimError:
        return None, False
    identity = db.session.scalar(select(LtiIdentity).where(
        LtiIdentity.organisation_id == platform.organisation_id,
        LtiIdentity.issuer == platform.issuer, LtiIdentity.sub == sub))
    if identity is not None:
        return identity.user, False
    if not create:
        return None, False
    try:  # name and email by the same rule as the id_token's; malformed ones are left out
        fields = claim_rules.person_fields(member)
    except claim_rules.ClaimError:
        fields = {}
    name = fields.get("name") or " ".join(
        fields[k] for k in ("given_name", "family_name") if fields.get(k))
    user = User(organisation_id=platform.organisation_id,
                name=(name or f"LMS user {sub}")[:200])
    email = fields.get("email")
    if email and "@" in email:
        try:  # refused, not cut: a shortened address would reach someone else (issue 9)
            user.email = normalise_email(email)
        except ValidationFailed as exc:
            log.warning("roster member %s: email not stored: %s", sub, exc.message)
    db.session.add(user)
    db.session.flush()
    db.session.add(LtiIdentity(organisation_id=platform.organisation_id,
                               issuer=platform.issuer, sub=sub, user_id=user.id,
                               platform_id=platform.id, created_at=now))
    roles = member_roles(member)
    # Organisation-wide only what lti_rights says (learner, unless the registration grants
    # org roles); course rights come from the enrolment's roles (lti.course_scope).
    rights = lti_rights(roles, platform.role_mapping, platform.grant_org_roles)
    for role in sorted(rights.organisation):
        grant_role(user, role, platform.organisation_id, source="lti")
    return user, True


def sync_context(context_id: int, now: datetime | None = None) -> SyncReport:
    """Fetch the roster and apply it (flush, no commit; the job commits)."""
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
    existing = {m.user_id: m for m in db.session.scalars(
        select(LtiMembership).where(LtiMembership.context_id == context.id))}
    seen: set[int] = set()
    for member in members:
        if not member.get("user_id"):
            continue
        status = str(member.get("status") or "Active")
        user, created = _person(platform, member, now, create=status == "Active")
        if user is None:
            continue  # listed as inactive and unknown here: nobody to record
        report.created += created
        seen.add(user.id)
        membership = existing.get(user.id)
        roles = member_roles(member)
        if membership is None:
            if status != "Active":
                continue  # never enrolled here as far as we know: nothing to record
            membership = LtiMembership(user_id=user.id, context_id=context.id, roles=roles,
                                       created_at=now, last_launch_at=None, active=True)
            db.session.add(membership)
            existing[user.id] = membership
            continue
        if roles:
            membership.roles = roles
        if status == "Active" and not membership.active:
            membership.active, membership.removed_at = True, None
            report.reactivated += 1
        elif status != "Active" and membership.active:
            membership.active, membership.removed_at = False, now
            report.deactivated += 1
    if not use_differences:  # a full roster: whoever it does not list has left the course
        for user_id, membership in existing.items():
            if user_id not in seen and membership.active:
                membership.active, membership.removed_at = False, now
                report.deactivated += 1
    context.roster_differences_url = differences[:1000] if differences else None
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
                 now: datetime | None = None) -> OutboxJob:
    return enqueue(KIND, {"context_id": context.id}, organisation_id=organisation_id,
                   coalesce_key=f"{KIND}:{context.id}", now=now, event_at=now)


def enqueue_all(now: datetime | None = None) -> int:
    """One sync job per course that offered NRPS (the periodic fan-out)."""
    rows = db.session.execute(
        select(LtiContext, LtiPlatform.organisation_id)
        .join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiContext.memberships_url.is_not(None), LtiPlatform.enabled.is_(True))).all()
    for context, organisation_id in rows:
        enqueue_sync(context, organisation_id, now)
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
