"""Course scope: what a person's LTI roles give them in ONE course, read at every request.

An LTI launch's roles are about the course (context) it came from: an Instructor of course A
is nobody special in course B. So the launch grants organisation-wide only ``learner``
(unless the registration's ``grant_org_roles`` is on) and keeps the roles as sent on the
enrolment (``LtiMembership.roles``), which every launch and roster sync refreshes; the
rights are computed from them here, per request, by :func:`lms_plugin.lti.launch.lti_rights`
(issue 10 item 5). A later Learner launch, or a roster sync that lists the person as a
learner or as gone, therefore ends the rights at once, in every session.

"The course" of a request is the one the session was launched from (``session["lti"]``).
"""

from __future__ import annotations

from flask import g, session
from flask_login import current_user
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.errors import Forbidden
from lms_plugin.extensions import db
from lms_plugin.lti import nrps
from lms_plugin.lti.launch import course_rights
from lms_plugin.lti.models import LtiContext, LtiMembership, LtiPlatform

#: Organisation-wide roles that see and sync every course's roster.
ROSTER_MANAGERS = frozenset({"author", "admin"})


def course_roles(user_id: int, organisation_id: int, context_pk: int | None) -> frozenset[str]:
    """The rights the person's enrolment in course ``context_pk`` gives (e.g. ``{"author"}``);
    empty for no course, another organisation's course, a disabled registration, or an
    enrolment the roster sync marked inactive."""
    if context_pk is None:
        return frozenset()
    row = db.session.execute(
        select(LtiMembership.roles, LtiPlatform.role_mapping)
        .join(LtiContext, LtiContext.id == LtiMembership.context_id)
        .join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiMembership.user_id == user_id, LtiMembership.context_id == context_pk,
               LtiMembership.active.is_(True), LtiPlatform.organisation_id == organisation_id,
               LtiPlatform.enabled.is_(True))).first()
    if row is None:
        return frozenset()
    return course_rights(row.roles if isinstance(row.roles, list) else [], row.role_mapping)


def session_course() -> int | None:
    """The course (``LtiContext`` id) this session was launched from, if any."""
    lti = session.get("lti")
    value = lti.get("context_pk") if isinstance(lti, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def current_course_roles() -> frozenset[str]:
    """For ``authz.allow``: the signed-in person's rights in the session's course (one query
    per request, only when a course-scoped policy is checked)."""
    if "lms_course_roles" not in g:
        g.lms_course_roles = (
            course_roles(current_user.id, current_user.organisation_id, session_course())
            if current_user.is_authenticated else frozenset())
    return g.lms_course_roles


def _manages_course(user: User, context_id: int, session_context: int | None) -> bool:
    return bool(user.role_names & ROSTER_MANAGERS) or (
        context_id == session_context
        and "author" in course_roles(user.id, user.organisation_id, context_id))


def roster_courses(user: User, session_context: int | None) -> list[nrps.CourseRoster]:
    """The courses whose roster ``user`` may see: all of the organisation's for an
    organisation-wide author or admin, else the session's course if they author it."""
    courses = nrps.list_courses(user.organisation_id)
    if user.role_names & ROSTER_MANAGERS:
        return courses
    return [c for c in courses if _manages_course(user, c.context.id, session_context)]


def request_roster_sync(user: User, context_id: int, session_context: int | None) -> None:
    """Queue a roster sync of ``context_id`` for ``user``. Raises Forbidden unless they are
    an organisation-wide author/admin or the author of that course in this session;
    NotFound (from :func:`nrps.request_sync`) for another organisation's course."""
    if not _manages_course(user, context_id, session_context):
        raise Forbidden("You can sync only the roster of the course you launched the "
                        "tool from as its instructor.")
    nrps.request_sync(context_id, user.organisation_id)
