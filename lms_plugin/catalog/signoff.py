"""Clinical sign-off before publish (issue 17).

An organisation names the reviewers a module needs. A reviewer is either a *role name*
("nurse educator", "pharmacist", "privacy officer") that people hold (an admin designates
holders: ``SignoffRoleHolder``), or one *named person*. A reviewer applies to every module of
the organisation (``module_id`` None) or to one module.

A version is publishable only after every reviewer that applies to its module has approved
that exact version: an approval stores the version's ``content_hash`` and counts only while
the version still has that hash. A change to a draft (a re-import with other content) deletes
its stale approvals (audited as ``signoff.cleared``), so a change after approval clears it.
``catalog.services.publish_version`` is the one place that checks the gate.

An organisation that names no reviewers has no gate: that is how a demo organisation
publishes the shipped content. Real organisations get the shipped content as drafts
(``lms-plugin setup``), and the setup text tells the admin to name reviewers.

Services flush and never commit; errors are ``errors.ValidationFailed`` (422, with a field),
``NotFound`` (404, also for another organisation's ids) or ``Conflict`` (409).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog.models import (
    Module,
    ModuleVersion,
    SignoffApproval,
    SignoffReviewer,
    SignoffRoleHolder,
)
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db

ROLE_NAME_MAX = 100  # SignoffReviewer.role_name


def normalise_role(name: str) -> str:
    """A role name as stored: trimmed, inner spaces collapsed, lower-case ("Nurse  Educator"
    -> "nurse educator"). ValidationFailed (field ``role``) when empty or over 100 chars."""
    role = " ".join((name or "").split()).lower()
    if not role:
        raise ValidationFailed("a reviewer role name must not be empty", field="role")
    if len(role) > ROLE_NAME_MAX:
        raise ValidationFailed(f"the role name is {len(role)} characters; at most "
                               f"{ROLE_NAME_MAX}", field="role")
    return role


@dataclass
class ReviewerStatus:
    """One required reviewer of a version and its approval (None: not yet, or stale)."""

    reviewer: SignoffReviewer
    label: str  # "pharmacist" or "Dr Ana Ruiz (medical director)"
    approval: SignoffApproval | None


def _label(reviewer: SignoffReviewer, people: dict[int, User]) -> str:
    if reviewer.user_id is None:
        return reviewer.role_name
    person = people.get(reviewer.user_id)
    who = (person.name or person.email or f"user {person.id}") if person else "a removed user"
    return f"{who} ({reviewer.role_name})"


def _people(ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


def list_reviewers(organisation_id: int, module_id: int | None = None, *,
                   applying: bool = False) -> list[SignoffReviewer]:
    """Reviewers named for the scope: ``module_id`` None = the organisation-wide list; a
    module id = that module's own list, or with ``applying`` every reviewer that applies to
    the module (organisation-wide ones plus its own). Ordered by role name."""
    stmt = select(SignoffReviewer).where(SignoffReviewer.organisation_id == organisation_id)
    if module_id is None:
        stmt = stmt.where(SignoffReviewer.module_id.is_(None))
    elif applying:
        stmt = stmt.where(or_(SignoffReviewer.module_id.is_(None),
                              SignoffReviewer.module_id == module_id))
    else:
        stmt = stmt.where(SignoffReviewer.module_id == module_id)
    return list(db.session.scalars(stmt.order_by(SignoffReviewer.role_name,
                                                 SignoffReviewer.id)))


def describe(reviewers: list[SignoffReviewer]) -> list[str]:
    people = _people({r.user_id for r in reviewers if r.user_id is not None})
    return [_label(r, people) for r in reviewers]


def set_reviewers(organisation_id: int, *, roles: list[str],
                  people: list[tuple[User, str]], module: Module | None = None,
                  actor: User | None = None) -> list[SignoffReviewer]:
    """Replace the reviewer list of a scope (the organisation, or ``module``) with ``roles``
    (role names) and ``people`` ((user, the role they sign as)). Approvals given by a
    reviewer that is no longer named go with it. Audited ``signoff.reviewers_set`` with the
    list before and after. A person or module of another organisation is NotFound."""
    if module is not None and module.organisation_id != organisation_id:
        raise NotFound("no such module in your organisation")
    wanted: set[tuple[str, int | None]] = {(normalise_role(r), None) for r in roles}
    for person, role in people:
        if person.organisation_id != organisation_id:
            raise NotFound("no such person in your organisation")
        wanted.add((normalise_role(role), person.id))
    module_id = module.id if module is not None else None
    existing = list_reviewers(organisation_id, module_id)
    before = describe(existing)
    keep = {(r.role_name, r.user_id): r for r in existing}
    for key, reviewer in keep.items():
        if key not in wanted:
            db.session.delete(reviewer)
    for role, user_id in sorted(wanted - set(keep), key=lambda k: (k[0], k[1] or 0)):
        db.session.add(SignoffReviewer(organisation_id=organisation_id, module_id=module_id,
                                       role_name=role, user_id=user_id))
    db.session.flush()
    result = list_reviewers(organisation_id, module_id)
    record_audit("signoff.reviewers_set", actor=actor, organisation_id=organisation_id,
                 target=("module", module_id) if module_id else ("organisation",
                                                                 organisation_id),
                 details={"before": before, "after": describe(result)})
    return result


def add_role_holder(organisation_id: int, role: str, person: User, *,
                    actor: User | None = None) -> SignoffRoleHolder:
    """Designate ``person`` as holding reviewer role ``role`` (idempotent); audited
    ``signoff.role_holder_added``. Another organisation's person is NotFound."""
    if person.organisation_id != organisation_id:
        raise NotFound("no such person in your organisation")
    role = normalise_role(role)
    holder = db.session.scalar(select(SignoffRoleHolder).where(
        SignoffRoleHolder.organisation_id == organisation_id,
        SignoffRoleHolder.role_name == role, SignoffRoleHolder.user_id == person.id))
    if holder is None:
        holder = SignoffRoleHolder(organisation_id=organisation_id, role_name=role,
                                   user_id=person.id)
        db.session.add(holder)
        db.session.flush()
        record_audit("signoff.role_holder_added", actor=actor,
                     organisation_id=organisation_id, target=("user", person.id),
                     details={"role": role, "before": None, "after": role})
    return holder


def held_roles(organisation_id: int, user_id: int) -> set[str]:
    return set(db.session.scalars(select(SignoffRoleHolder.role_name).where(
        SignoffRoleHolder.organisation_id == organisation_id,
        SignoffRoleHolder.user_id == user_id)))


def status(version: ModuleVersion) -> list[ReviewerStatus]:
    """Every reviewer that applies to the version's module, with its current approval (an
    approval of other content, an older hash, is shown as missing). Three statements."""
    module = version.module
    reviewers = list_reviewers(module.organisation_id, module.id, applying=True)
    approvals = {a.reviewer_id: a for a in db.session.scalars(select(SignoffApproval).where(
        SignoffApproval.version_id == version.id,
        SignoffApproval.content_hash == version.content_hash))}
    people = _people({r.user_id for r in reviewers if r.user_id is not None})
    return [ReviewerStatus(r, _label(r, people), approvals.get(r.id)) for r in reviewers]


def missing(version: ModuleVersion) -> list[str]:
    """Labels of the reviewers who have not approved this exact version (empty: publishable
    as far as sign-off goes)."""
    return [s.label for s in status(version) if s.approval is None]


def clear_stale(version: ModuleVersion, *, actor: User | None = None) -> int:
    """Delete approvals given to other content of this version (its hash changed since);
    audited ``signoff.cleared`` with the cleared reviewers. Returns how many."""
    stale = db.session.execute(
        delete(SignoffApproval)
        .where(SignoffApproval.version_id == version.id,
               SignoffApproval.content_hash != version.content_hash)
        .returning(SignoffApproval.reviewer_name, SignoffApproval.role_name,
                   SignoffApproval.content_hash)
        .execution_options(synchronize_session=False)
    ).all()
    if stale:
        record_audit("signoff.cleared", actor=actor,
                     organisation_id=version.module.organisation_id,
                     target=("module_version", version.id),
                     details={"module": version.module.slug, "version": version.number,
                              "reason": "the version changed after approval",
                              "before": [f"{n} ({r}) approved {h[:12]}" for n, r, h in stale],
                              "after": [], "content_hash": version.content_hash})
    return len(stale)


def approve(version: ModuleVersion, person: User, *, role: str | None = None,
            actor: User | None = None, expected_hash: str | None = None) -> SignoffApproval:
    """Record ``person``'s approval of this exact version (its current content hash) for the
    one required reviewer they stand for: a reviewer naming them, or a role they hold
    (``role`` chooses when they could sign for several). Audited ``signoff.approve`` with
    name, role, time and hash.

    Refused: a version of another organisation (404); a version that is not a draft (409:
    published content is immutable, sign-off happens before publishing); a person who is not
    a required reviewer of this module, or who already approved it (422, field ``role``);
    ``expected_hash`` given (the hash the reviewer's page showed) and no longer the version's
    (409, nothing written: the draft changed after they read it).
    """
    module = version.module
    if person.organisation_id != module.organisation_id:
        raise NotFound("no such module version in your organisation")
    if version.status != "draft":
        raise Conflict(f"{module.slug} version {version.number} is {version.status}; only a "
                       "draft is signed off (publishing comes after every approval)")
    if expected_hash is not None and expected_hash != version.content_hash:
        raise Conflict(f"{module.slug} version {version.number} changed after you opened it: "
                       "read it again before approving (nothing was recorded)")
    clear_stale(version, actor=actor)
    wanted = normalise_role(role) if role else None
    holds = held_roles(module.organisation_id, person.id)
    candidates = []
    for item in status(version):
        reviewer = item.reviewer
        if stands_for(reviewer, person.id, holds) and (wanted is None
                                                       or reviewer.role_name == wanted):
            candidates.append(item)
    if not candidates:
        raise ValidationFailed(
            f"{person.name or person.email} is not a required reviewer of {module.slug}"
            + (f" as {wanted}" if wanted else "")
            + f" (required: {', '.join(s.label for s in status(version)) or 'nobody'})",
            field="role")
    open_items = [c for c in candidates if c.approval is None]
    if not open_items:
        raise ValidationFailed(f"{person.name or person.email} already approved "
                               f"{module.slug} version {version.number}", field="role")
    if len(open_items) > 1:
        raise ValidationFailed(
            "you could sign as " + ", ".join(c.reviewer.role_name for c in open_items)
            + ": choose one with --role (one approval per reviewer)", field="role")
    reviewer = open_items[0].reviewer
    approval = SignoffApproval(version_id=version.id, reviewer_id=reviewer.id,
                               user_id=person.id,
                               reviewer_name=person.name or person.email or str(person.id),
                               role_name=reviewer.role_name,
                               content_hash=version.content_hash, approved_at=utcnow())
    db.session.add(approval)
    db.session.flush()
    record_audit("signoff.approve", actor=actor or person,
                 organisation_id=module.organisation_id,
                 target=("module_version", version.id),
                 details={"module": module.slug, "version": version.number,
                          "reviewer": approval.reviewer_name, "role": approval.role_name,
                          "approved_at": approval.approved_at.isoformat(),
                          "content_hash": approval.content_hash,
                          "before": None, "after": "approved"})
    return approval


# ------------------------------------------------------------------ what waits for whom

@dataclass
class DraftSignoff:
    """A draft and its required reviewers' state; ``mine``: the reviewers a given person
    stands for (named, or a role they hold) that have not approved it yet."""

    version: ModuleVersion
    statuses: list[ReviewerStatus]
    mine: list[ReviewerStatus]

    @property
    def waiting(self) -> int:
        return sum(1 for s in self.statuses if s.approval is None)


def stands_for(reviewer: SignoffReviewer, user_id: int | None, holds: set[str]) -> bool:
    if reviewer.user_id is not None:
        return reviewer.user_id == user_id
    return reviewer.role_name in holds


def drafts(organisation_id: int, person: User | None = None) -> list[DraftSignoff]:
    """Every draft of the organisation with its sign-off state (the same rule as
    :func:`status`: an approval counts only for the version's current hash), ordered by
    module slug. With ``person``, ``mine`` lists the open reviewers they stand for. Five
    statements whatever the number of drafts and reviewers (no N+1)."""
    from sqlalchemy.orm import contains_eager

    reviewers = list(db.session.scalars(
        select(SignoffReviewer).where(SignoffReviewer.organisation_id == organisation_id)
        .order_by(SignoffReviewer.role_name, SignoffReviewer.id)))
    versions = list(db.session.scalars(
        select(ModuleVersion).join(Module, Module.id == ModuleVersion.module_id)
        .options(contains_eager(ModuleVersion.module))
        .where(Module.organisation_id == organisation_id, ModuleVersion.status == "draft")
        .order_by(Module.slug)))
    if not versions:
        return []
    hashes = {v.id: v.content_hash for v in versions}
    approvals = {(a.version_id, a.reviewer_id): a for a in db.session.scalars(
        select(SignoffApproval).where(SignoffApproval.version_id.in_(hashes)))
        if a.content_hash == hashes[a.version_id]}
    people = _people({r.user_id for r in reviewers if r.user_id is not None})
    holds = held_roles(organisation_id, person.id) if person is not None else set()
    result = []
    for version in versions:
        statuses = [ReviewerStatus(r, _label(r, people), approvals.get((version.id, r.id)))
                    for r in reviewers if r.module_id in (None, version.module_id)]
        mine = [s for s in statuses if s.approval is None and person is not None
                and stands_for(s.reviewer, person.id, holds)]
        result.append(DraftSignoff(version, statuses, mine))
    return result


def is_reviewer(person: User) -> bool:
    """True when ``person`` is a required reviewer in their organisation: named on a
    reviewer, or holding a role some reviewer names. One statement."""
    holds = select(SignoffRoleHolder.role_name).where(
        SignoffRoleHolder.organisation_id == person.organisation_id,
        SignoffRoleHolder.user_id == person.id)
    found = db.session.scalar(select(SignoffReviewer.id).where(
        SignoffReviewer.organisation_id == person.organisation_id,
        or_(SignoffReviewer.user_id == person.id,
            (SignoffReviewer.user_id.is_(None)) & SignoffReviewer.role_name.in_(holds)))
        .limit(1))
    return found is not None
