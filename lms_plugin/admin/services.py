"""Read models of the admin pages: a few set-based queries each, organisation-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.accounts.services import get_user
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiPlatform
from lms_plugin.quizzes.models import Attempt

#: Rows shown per section of a person's page (newest first).
PERSON_ROWS = 50


@dataclass(frozen=True)
class PersonRecord:
    """Everything a person's admin page shows (issue 12.10): ``identities``
    (platform name, issuer, sub, last launch), ``grants`` (role, source), ``launches``
    (course title, roles, last launch, active), ``attempts`` (module title, version,
    number, status, score, passed, submitted), ``completions`` (module title, version,
    score, passed, completed, expires). Lists hold row mappings, newest first."""

    user: User
    identities: list[Any]
    grants: list[RoleGrant]
    launches: list[Any]
    attempts: list[Any]
    completions: list[Any]


def person_record(organisation_id: int, user_id: int) -> PersonRecord:
    """A person of this organisation with their LMS and training history (five queries,
    whatever the history's length; at most :data:`PERSON_ROWS` of each). Raises NotFound
    for a person of another organisation."""
    user = get_user(organisation_id, user_id)
    identities = db.session.execute(
        select(LtiPlatform.name.label("platform"), LtiIdentity.issuer, LtiIdentity.sub,
               LtiIdentity.last_launch_at, LtiIdentity.created_at)
        .outerjoin(LtiPlatform, LtiPlatform.id == LtiIdentity.platform_id)
        .where(LtiIdentity.user_id == user.id, LtiIdentity.organisation_id == organisation_id)
        .order_by(LtiIdentity.id)).mappings().all()
    launches = db.session.execute(
        select(LtiContext.title, LtiContext.label, LtiPlatform.name.label("platform"),
               LtiMembership.roles, LtiMembership.last_launch_at, LtiMembership.active)
        .join(LtiContext, LtiContext.id == LtiMembership.context_id)
        .join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
        .where(LtiMembership.user_id == user.id,
               LtiPlatform.organisation_id == organisation_id)
        .order_by(LtiMembership.last_launch_at.desc().nulls_last(), LtiMembership.id.desc())
        .limit(PERSON_ROWS)).mappings().all()
    attempts = db.session.execute(
        select(ModuleVersion.title, ModuleVersion.number.label("version"), Attempt.number,
               Attempt.status, Attempt.score, Attempt.passed, Attempt.preview,
               Attempt.started_at, Attempt.submitted_at)
        .join(ModuleVersion, ModuleVersion.id == Attempt.module_version_id)
        .join(Module, Module.id == ModuleVersion.module_id)
        .where(Attempt.user_id == user.id, Module.organisation_id == organisation_id)
        .order_by(Attempt.started_at.desc(), Attempt.id.desc())
        .limit(PERSON_ROWS)).mappings().all()
    completions = db.session.execute(
        select(ModuleVersion.title, ModuleVersion.number.label("version"), Completion.score,
               Completion.passed, Completion.completed_at, Completion.expires_at)
        .join(ModuleVersion, ModuleVersion.id == Completion.module_version_id)
        .join(Module, Module.id == Completion.module_id)
        .where(Completion.user_id == user.id, Module.organisation_id == organisation_id)
        .order_by(Completion.completed_at.desc(), Completion.id.desc())
        .limit(PERSON_ROWS)).mappings().all()
    grants = sorted((g for g in user.grants if g.organisation_id == organisation_id),
                    key=lambda g: g.role)
    return PersonRecord(user, list(identities), grants, list(launches), list(attempts),
                        list(completions))


def home_counts(organisation_id: int) -> dict[str, int]:
    """People, and platforms enabled / registered, of the organisation (two counts)."""
    people = db.session.scalar(select(func.count()).select_from(User).where(
        User.organisation_id == organisation_id)) or 0
    row = db.session.execute(select(
        func.count(), func.count().filter(LtiPlatform.enabled.is_(True)))
        .where(LtiPlatform.organisation_id == organisation_id)).one()
    return {"people": people, "platforms": row[0], "enabled_platforms": row[1]}
