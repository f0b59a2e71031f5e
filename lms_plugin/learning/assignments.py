"""Assignments (issue 14): rules, their set-based evaluation, and the one status function.

* :func:`evaluate` opens and closes :class:`Assignment` rows for a whole organisation (or one
  person) in two statements (``INSERT … SELECT`` and ``UPDATE … FROM``), never a loop per
  person; running it twice changes nothing.
* :func:`status_rows` is THE status of every open assignment (per person and module): the
  learner home, the reminder job (``mail`` helper), reports and the CLI all read it, so a
  status is the same wherever it is shown. One statement; the label is chosen by
  :func:`classify` from the row's facts.

Statuses (DESIGN "Assignments"), most urgent first: ``failed`` (attempts of the current
cycle used up, an admin may grant more: :func:`grant_attempts`), ``overdue`` (never
completed, or retraining required, and the due date passed), ``expired`` (the last
completion lapsed), ``in_progress``, ``not_started``, ``expiring_soon`` (valid, but lapses
within the organisation's ``expiring_soon_days``, default 30), ``completed``.

Rules of validity for one assignment (rule ``r``, person ``u``, module ``m``):

* every completion of ``m`` by ``u`` counts, including one earned before the assignment
  existed or under an earlier department, while it is valid;
* a completion is valid until the earliest of its own ``expires_at`` (the version's
  ``validity_months``), ``completed_at + r.recurrence_months`` (recurrence anchored on the
  completion), and, when ``r.reopen_on_retraining``, the go-live of a newer published
  retraining-required version (:func:`learning.services.retraining_floors`);
* after a lapse the assignment is due at the lapse (so it is ``expired``); after a
  retraining go-live it is due at the go-live; otherwise at ``Assignment.due_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import (
    and_,
    case,
    except_,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lms_plugin.accounts.models import Organisation, User
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.db import UTCDateTime
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning.models import (
    AUDIENCE_KINDS,
    Assignment,
    AssignmentRule,
    AttemptGrant,
    Completion,
    LessonProgress,
    RuleAudience,
)
from lms_plugin.learning.sqltime import FAR_FUTURE, add_days, add_months, least
from lms_plugin.quizzes.models import Attempt

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Status labels, most urgent first (the order of the learner home and the reminder job).
STATUSES = ("failed", "overdue", "expired", "in_progress", "not_started", "expiring_soon",
            "completed")
LABELS = {
    "failed": "Failed: no attempts left", "overdue": "Overdue", "expired": "Expired",
    "in_progress": "In progress", "not_started": "Not started",
    "expiring_soon": "Expiring soon", "completed": "Completed",
}


def _ts(value: datetime):
    return literal(value, UTCDateTime())


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class RuleSpec:
    """What a rule says, as the admin page and the CLI give it.

    ``due_days`` (days after the rule starts to apply to the person) XOR ``due_on`` (a fixed
    date, due at 00:00 UTC that day); ``recurrence_months`` None = once; empty audience
    lists = everyone.
    """

    module_slug: str
    due_days: int | None = None
    due_on: date | None = None
    recurrence_months: int | None = None
    facilities: Sequence[str] = ()
    departments: Sequence[str] = ()
    job_roles: Sequence[str] = ()
    reopen_on_retraining: bool = True
    name: str = ""


def known_job_roles(organisation_id: int) -> set[str]:
    """The job-role spellings the organisation's content uses (``ModuleVersion.audience``),
    the vocabulary rules and rosters must use. One statement."""
    roles: set[str] = set()
    for (audience,) in db.session.execute(
            select(ModuleVersion.audience).join(Module, Module.id == ModuleVersion.module_id)
            .where(Module.organisation_id == organisation_id)):
        roles.update(str(r) for r in (audience or []))
    return roles


def _clean_values(values: Iterable[str]) -> list[str]:
    return sorted({v.strip() for v in values if v and v.strip()})


def add_rule(organisation_id: int, spec: RuleSpec, *, actor: User | None,
             now: datetime) -> AssignmentRule:
    """Create a rule, audit it and evaluate it over the organisation at once.

    Raises NotFound (unknown module of this organisation) and ValidationFailed with the
    field (``due``: neither or both of due_days/due_on; ``recurrence_months`` <= 0;
    ``job_roles``: a spelling no module's audience uses). Flushes; the caller commits.
    """
    module = db.session.scalar(select(Module).where(
        Module.organisation_id == organisation_id, Module.slug == spec.module_slug))
    if module is None:
        raise NotFound(f"No module {spec.module_slug!r} in this organisation", field="module")
    if (spec.due_days is None) == (spec.due_on is None):
        raise ValidationFailed("Give either a number of days or a fixed due date", field="due")
    if spec.due_days is not None and not 0 <= spec.due_days <= 3650:
        raise ValidationFailed("Days must be between 0 and 3650", field="due_days")
    if spec.recurrence_months is not None and not 1 <= spec.recurrence_months <= 120:
        raise ValidationFailed("Recurrence must be between 1 and 120 months",
                               field="recurrence_months")
    audience = {"facility": _clean_values(spec.facilities),
                "department": _clean_values(spec.departments),
                "job_role": _clean_values(spec.job_roles)}
    unknown = set(audience["job_role"]) - known_job_roles(organisation_id)
    if unknown:
        raise ValidationFailed(
            f"Unknown job role(s): {', '.join(sorted(unknown))} (use the spellings of the "
            f"modules' audience)", field="job_roles")
    due_on = (datetime(spec.due_on.year, spec.due_on.month, spec.due_on.day, tzinfo=UTC)
              if spec.due_on else None)
    _refuse_a_twin(organisation_id, spec, audience, due_on)
    rule = AssignmentRule(organisation_id=organisation_id, module_id=module.id,
                          name=spec.name[:200], due_days=spec.due_days, due_on=due_on,
                          recurrence_months=spec.recurrence_months,
                          reopen_on_retraining=spec.reopen_on_retraining, created_at=now)
    db.session.add(rule)
    db.session.flush()
    db.session.add_all(RuleAudience(rule_id=rule.id, kind=kind, value=value[:100])
                       for kind, values in audience.items() for value in values)
    db.session.flush()
    record_audit("assignment_rule.add", actor=actor, organisation_id=organisation_id,
                 target=("assignment_rule", rule.id),
                 details={"before": None, "after": describe_rule(rule, audience,
                                                                 spec.module_slug)})
    evaluate(organisation_id, now)
    return rule


def _refuse_a_twin(organisation_id: int, spec: RuleSpec, audience: dict[str, list[str]],
                   due_on: datetime | None) -> None:
    """Conflict (field ``module``) when a current rule of the organisation already says the
    same (module, due, recurrence, reopening, audience; the label does not count): a
    double-submitted form or a repeated command adds nothing."""
    def key(d: dict) -> tuple:
        return (d["module"], d["due_days"], d["due_on"], d["recurrence_months"],
                d["reopen_on_retraining"], sorted(d["facilities"]),
                sorted(d["departments"]), sorted(d["job_roles"]))

    wanted = key({"module": spec.module_slug, "due_days": spec.due_days,
                  "due_on": due_on.date().isoformat() if due_on else None,
                  "recurrence_months": spec.recurrence_months,
                  "reopen_on_retraining": spec.reopen_on_retraining,
                  "facilities": audience["facility"], "departments": audience["department"],
                  "job_roles": audience["job_role"]})
    for existing in list_rules(organisation_id):
        if key(existing) == wanted:
            raise Conflict(f"The same rule exists already (rule {existing['id']}); nothing "
                           "was added", field="module")


def describe_rule(rule: AssignmentRule, audience: dict[str, list[str]],
                  module_slug: str) -> dict:
    """A rule as plain JSON values (audit details, CLI list)."""
    return {"module": module_slug, "name": rule.name, "due_days": rule.due_days,
            "due_on": rule.due_on.date().isoformat() if rule.due_on else None,
            "recurrence_months": rule.recurrence_months,
            "reopen_on_retraining": rule.reopen_on_retraining,
            "facilities": audience.get("facility", []),
            "departments": audience.get("department", []),
            "job_roles": audience.get("job_role", [])}


def list_rules(organisation_id: int) -> list[dict]:
    """The organisation's current rules with module slug, audience and open-assignment count:
    three statements whatever the number of rules."""
    rules = db.session.execute(
        select(AssignmentRule, Module.slug).join(Module, Module.id == AssignmentRule.module_id)
        .where(AssignmentRule.organisation_id == organisation_id,
               AssignmentRule.removed_at.is_(None))
        .order_by(Module.slug, AssignmentRule.id)).all()
    ids = [r.id for r, _ in rules]
    audience: dict[int, dict[str, list[str]]] = {i: {k: [] for k in AUDIENCE_KINDS} for i in ids}
    for rule_id, kind, value in db.session.execute(
            select(RuleAudience.rule_id, RuleAudience.kind, RuleAudience.value)
            .where(RuleAudience.rule_id.in_(ids)).order_by(RuleAudience.value)):
        audience[rule_id][kind].append(value)
    counts = dict(db.session.execute(
        select(Assignment.rule_id, func.count(Assignment.id))
        .where(Assignment.rule_id.in_(ids), Assignment.closed_at.is_(None))
        .group_by(Assignment.rule_id)).all())
    return [{"id": rule.id, **describe_rule(rule, audience[rule.id], slug),
             "open_assignments": counts.get(rule.id, 0)} for rule, slug in rules]


def remove_rule(organisation_id: int, rule_id: int, *, actor: User | None,
                now: datetime) -> AssignmentRule:
    """Remove a rule: it stops applying and its open assignments are closed
    (``rule_removed``); the rule and its assignments stay as history. NotFound for a rule of
    another organisation or already removed."""
    rule = db.session.scalar(select(AssignmentRule).where(
        AssignmentRule.id == rule_id, AssignmentRule.organisation_id == organisation_id,
        AssignmentRule.removed_at.is_(None)))
    if rule is None:
        raise NotFound(f"No current assignment rule {rule_id}", field="rule")
    rule.removed_at = now
    db.session.flush()
    record_audit("assignment_rule.remove", actor=actor, organisation_id=organisation_id,
                 target=("assignment_rule", rule.id),
                 details={"before": {"removed_at": None},
                          "after": {"removed_at": now.isoformat()}})
    evaluate(organisation_id, now)
    return rule


# --------------------------------------------------------------------------- evaluation
def _audience_pairs(organisation_id: int, user_id: int | None):
    """Subquery (rule_id, user_id): every active person in every current rule's audience
    whose module has a published version. Set-based: "everyone" rules join the people of the
    organisation; the others join ``rule_audience`` to the people on each kind's column
    (three hash joins) and keep the (rule, person) pairs that matched every kind the rule
    names (within a kind any value matches)."""
    rule, user = AssignmentRule, User
    current = and_(rule.organisation_id == organisation_id, rule.removed_at.is_(None),
                   _has_published(rule.module_id))
    people = and_(user.organisation_id == organisation_id, user.active.is_(True))
    if user_id is not None:
        people = and_(people, user.id == user_id)
    everyone = (select(rule.id.label("rule_id"), user.id.label("user_id"))
                .select_from(rule).join(user, people)
                .where(current, ~exists().where(RuleAudience.rule_id == rule.id)))
    kinds = (select(RuleAudience.rule_id, func.count(func.distinct(RuleAudience.kind))
                    .label("kinds"))
             .group_by(RuleAudience.rule_id).subquery("kinds"))
    hits = union_all(*(
        select(RuleAudience.rule_id.label("rule_id"), user.id.label("user_id"))
        .select_from(RuleAudience)
        .join(rule, and_(rule.id == RuleAudience.rule_id, current))
        .join(user, and_(people, getattr(user, kind) == RuleAudience.value))
        .where(RuleAudience.kind == kind) for kind in AUDIENCE_KINDS)).subquery("hits")
    targeted = (select(hits.c.rule_id, hits.c.user_id)
                .join(kinds, kinds.c.rule_id == hits.c.rule_id)
                .group_by(hits.c.rule_id, hits.c.user_id, kinds.c.kinds)
                .having(func.count() == kinds.c.kinds))
    return union_all(everyone, targeted).subquery("audience")


def _has_published(module_id_column):
    return exists().where(ModuleVersion.module_id == module_id_column,
                          ModuleVersion.status == "published")


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` changed: ids of the assignments opened and closed."""

    opened: list[int]
    closed: list[int]


def evaluate(organisation_id: int, now: datetime, *, user_id: int | None = None) -> Evaluation:
    """Bring the organisation's open assignments in line with its rules, set-based.

    Opens an assignment (due ``now + due_days`` or the rule's fixed date) for every active
    person in a current rule's audience whose module has a published version and who has no
    open assignment for that rule; closes every open assignment whose rule was removed
    (``rule_removed``), whose module has no published version left (``module_retired``),
    whose person left (``left``) or moved out of the audience (``audience``). Two
    statements; with ``user_id`` only that person's rows (incremental evaluation after a
    profile change). Idempotent. Flushes; the caller commits.
    """
    rule, user = AssignmentRule, User
    open_rows = exists().where(Assignment.organisation_id == organisation_id,
                               Assignment.closed_at.is_(None))
    if user_id is not None:
        open_rows = open_rows.where(Assignment.user_id == user_id)
    if not db.session.scalar(select(or_(
            exists().where(rule.organisation_id == organisation_id, rule.removed_at.is_(None)),
            open_rows))):
        return Evaluation(opened=[], closed=[])  # no rule, nothing open: a read, no write
    due = case((rule.due_on.is_not(None), rule.due_on),
               else_=add_days(_ts(now), rule.due_days))
    wanted = _audience_pairs(organisation_id, user_id)
    chosen = (select(rule.organisation_id, wanted.c.rule_id, wanted.c.user_id, rule.module_id,
                     _ts(now), due)
              .select_from(wanted).join(rule, rule.id == wanted.c.rule_id))
    # Pairs that already have an open assignment are skipped by the partial unique index
    # (ON CONFLICT DO NOTHING), not by an anti-join: an anti-join against the table being
    # inserted into was planned as a nested loop re-reading the growing table per row.
    dialect = db.session.get_bind().dialect.name
    insert_into = pg_insert if dialect == "postgresql" else sqlite_insert
    opened = db.session.scalars(
        insert_into(Assignment).from_select(
            ["organisation_id", "rule_id", "user_id", "module_id", "assigned_at", "due_at"],
            chosen)
        .on_conflict_do_nothing(index_elements=["rule_id", "user_id"],
                                index_where=Assignment.closed_at.is_(None))
        .returning(Assignment.id)).all()

    # The open assignments no longer wanted: (rule, person) pairs open now EXCEPT the pairs
    # still wanted. A set operation, computed once (hash or sort), so it never turns into a
    # nested loop re-running the audience query per assignment (which the planner chose when
    # the rows just inserted had no statistics yet).
    still = _audience_pairs(organisation_id, user_id)
    open_now = select(Assignment.rule_id, Assignment.user_id).where(
        Assignment.organisation_id == organisation_id, Assignment.closed_at.is_(None))
    if user_id is not None:
        open_now = open_now.where(Assignment.user_id == user_id)
    gone = except_(open_now, select(still.c.rule_id, still.c.user_id))
    reason = case((rule.removed_at.is_not(None), "rule_removed"),
                  (~_has_published(Assignment.module_id), "module_retired"),
                  (user.active.is_(False), "left"), else_="audience")
    closing = (update(Assignment)
               .where(Assignment.rule_id == rule.id, Assignment.user_id == user.id,
                      Assignment.organisation_id == organisation_id,
                      Assignment.closed_at.is_(None),
                      tuple_(Assignment.rule_id, Assignment.user_id).in_(gone))
               .values(closed_at=now, closed_reason=reason)
               .returning(Assignment.id))
    if user_id is not None:
        closing = closing.where(Assignment.user_id == user_id)
    closed = db.session.scalars(closing, execution_options={"synchronize_session": False}).all()
    db.session.flush()
    return Evaluation(opened=list(opened), closed=list(closed))


# --------------------------------------------------------------------------- status
@dataclass(frozen=True)
class StatusRow:
    """One open assignment's status (see the module docstring for the rules).

    Times are aware UTC datetimes. ``due_at``: when it is (or was) due now — None while a
    never-expiring completion holds; ``valid_until``: end of the current completion's
    validity (None = never, or no valid completion); ``attempts_used`` / ``attempts_allowed``
    (None = unlimited) count in the current cycle and are only read while no completion is
    valid (0 / None otherwise).
    """

    assignment_id: int
    rule_id: int
    user_id: int
    module_id: int
    status: str
    due_at: datetime | None
    assigned_at: datetime
    last_completed_at: datetime | None
    valid_until: datetime | None
    cycle_start: datetime | None
    attempts_used: int
    attempts_allowed: int | None

    @property
    def label(self) -> str:
        return LABELS[self.status]

    @property
    def urgency(self) -> tuple[int, datetime]:
        """Sort key: most urgent status first, then the earliest due date."""
        return STATUSES.index(self.status), self.due_at or FAR_FUTURE


def retraining_floors(now: datetime, *, live: bool = True):
    """Subquery (module_id, number, go_live) per module: the newest published
    retraining-required version already live at ``now`` (``live``), or the earliest one
    published but going live after ``now`` (``live=False``). Go-live is ``go_live_at``, or
    ``published_at`` when none was set. The one definition of the retraining rule
    (DESIGN "Versions"), shared with ``learning.services``."""
    go_live = func.coalesce(ModuleVersion.go_live_at, ModuleVersion.published_at, _ts(EPOCH))
    base = (select(ModuleVersion.module_id,
                   (func.max if live else func.min)(ModuleVersion.number).label("number"),
                   (func.max if live else func.min)(go_live).label("go_live"))
            .where(ModuleVersion.status == "published",
                   ModuleVersion.retraining_required.is_(True),
                   (go_live <= _ts(now)) if live else (go_live > _ts(now)))
            .group_by(ModuleVersion.module_id))
    return base.subquery("floor" if live else "pending")


def _status_query(organisation_id: int, now: datetime, user_id: int | None,
                  module_ids: Sequence[int] | None):
    a, r = Assignment, AssignmentRule
    floor, pending = retraining_floors(now), retraining_floors(now, live=False)
    cv = ModuleVersion.__table__.alias("cv")
    far = _ts(FAR_FUTURE)
    excluded = and_(r.reopen_on_retraining.is_(True), floor.c.number.is_not(None),
                    cv.c.number < floor.c.number)
    own_until = least(
        func.coalesce(Completion.expires_at, far),
        case((r.recurrence_months.is_not(None),
              add_months(Completion.completed_at, r.recurrence_months)), else_=far),
        case((and_(r.reopen_on_retraining.is_(True), pending.c.number.is_not(None),
                   cv.c.number < pending.c.number), pending.c.go_live), else_=far))
    grouped = (
        select(a.id.label("assignment_id"), a.rule_id, a.user_id, a.module_id, a.assigned_at,
               a.due_at,
               func.max(case((~excluded, Completion.completed_at))).label("last_completed"),
               func.max(case((~excluded, own_until))).label("valid_until"),
               func.max(case((excluded, 1), else_=0)).label("retrain"),
               floor.c.go_live.label("floor_go_live"))
        .select_from(a)
        .join(r, r.id == a.rule_id)
        .outerjoin(floor, floor.c.module_id == a.module_id)
        .outerjoin(pending, pending.c.module_id == a.module_id)
        .outerjoin(Completion, and_(Completion.user_id == a.user_id,
                                    Completion.module_id == a.module_id,
                                    Completion.completed_at <= _ts(now)))
        .outerjoin(cv, cv.c.id == Completion.module_version_id)
        .where(a.organisation_id == organisation_id, a.closed_at.is_(None))
        .group_by(a.id, a.rule_id, a.user_id, a.module_id, a.assigned_at, a.due_at,
                  floor.c.go_live))
    if user_id is not None:
        grouped = grouped.where(a.user_id == user_id)
    if module_ids is not None:
        grouped = grouped.where(a.module_id.in_(module_ids))
    g = grouped.subquery("g")
    lapsed = and_(g.c.last_completed.is_not(None), g.c.valid_until <= _ts(now))
    cycle_start = case((lapsed, g.c.valid_until), (g.c.retrain == 1, g.c.floor_go_live),
                       else_=None)
    since = func.coalesce(cycle_start, _ts(EPOCH))
    av = ModuleVersion.__table__.alias("av")
    used = (select(func.count(Attempt.id)).join(av, av.c.id == Attempt.module_version_id)
            .where(Attempt.user_id == g.c.user_id, av.c.module_id == g.c.module_id,
                   Attempt.preview.is_(False), Attempt.started_at >= since)
            .scalar_subquery())
    open_attempt = (exists().where(Attempt.user_id == g.c.user_id,
                                   Attempt.module_version_id == av.c.id,
                                   av.c.module_id == g.c.module_id,
                                   Attempt.status == "in_progress",
                                   Attempt.preview.is_(False),
                                   Attempt.started_at >= since))
    lessons = exists().where(LessonProgress.user_id == g.c.user_id,
                             LessonProgress.module_version_id == av.c.id,
                             av.c.module_id == g.c.module_id,
                             LessonProgress.updated_at >= since)
    nv = ModuleVersion.__table__.alias("nv")
    limit = (select(nv.c.attempt_limit).where(nv.c.module_id == g.c.module_id,
                                              nv.c.status == "published")
             .order_by(nv.c.number.desc()).limit(1).scalar_subquery())
    granted = (select(func.coalesce(func.sum(AttemptGrant.extra), 0))
               .where(AttemptGrant.user_id == g.c.user_id,
                      AttemptGrant.module_id == g.c.module_id,
                      AttemptGrant.granted_at >= since).scalar_subquery())
    # While a completion is valid the attempt facts do not decide the status: CASE skips
    # their subqueries for those rows (most rows, in a trained workforce).
    valid_now = and_(g.c.last_completed.is_not(None), g.c.valid_until > _ts(now))
    return select(g.c.assignment_id, g.c.rule_id, g.c.user_id, g.c.module_id,
                  g.c.assigned_at, g.c.due_at, g.c.last_completed, g.c.valid_until,
                  g.c.retrain, g.c.floor_go_live, cycle_start.label("cycle_start"),
                  case((valid_now, 0), else_=used).label("used"),
                  case((valid_now, False), else_=open_attempt).label("open_attempt"),
                  case((valid_now, False), else_=lessons).label("lessons"),
                  case((valid_now, None), else_=limit).label("attempt_limit"),
                  case((valid_now, 0), else_=granted).label("granted")) \
        .order_by(g.c.user_id, g.c.module_id, g.c.assignment_id)


def classify(row, now: datetime, window: timedelta) -> StatusRow:
    """The status label of one row of :func:`_status_query` (rules: module docstring)."""
    valid_until = row.valid_until if row.valid_until != FAR_FUTURE else None
    valid = row.last_completed is not None and (valid_until is None or valid_until > now)
    allowed = None if row.attempt_limit is None else row.attempt_limit + int(row.granted or 0)
    used = int(row.used or 0)
    if valid:
        status = ("expiring_soon" if valid_until is not None and valid_until <= now + window
                  else "completed")
        due = valid_until
    else:
        if row.last_completed is not None:
            due, status = valid_until, "expired"
        elif row.retrain:
            due = row.floor_go_live
            status = "overdue" if due <= now else "not_started"
        else:
            due = row.due_at
            status = "overdue" if due <= now else "not_started"
        if allowed is not None and used >= allowed and not row.open_attempt:
            status = "failed"
        elif status == "not_started" and (used or row.open_attempt or row.lessons):
            status = "in_progress"
    return StatusRow(
        assignment_id=row.assignment_id, rule_id=row.rule_id, user_id=row.user_id,
        module_id=row.module_id, status=status, due_at=due, assigned_at=row.assigned_at,
        last_completed_at=row.last_completed, valid_until=valid_until if valid else None,
        cycle_start=row.cycle_start, attempts_used=used, attempts_allowed=allowed)


def expiring_window(organisation_id: int) -> timedelta:
    days = db.session.scalar(select(Organisation.expiring_soon_days).where(
        Organisation.id == organisation_id))
    return timedelta(days=30 if days is None else days)


def status_rows(organisation_id: int, *, user_id: int | None = None,
                module_ids: Sequence[int] | None = None,
                now: datetime) -> list[StatusRow]:
    """The status of every open assignment of the organisation (or of one person, or of
    some modules), ordered by person, module, assignment. Two statements whatever the
    number of people, rules and completions. Leavers have no open assignment, so they are
    out of compliance counts; their closed assignments and completions stay."""
    window = expiring_window(organisation_id)
    return [classify(row, now, window) for row in db.session.execute(
        _status_query(organisation_id, now, user_id, module_ids))]


def module_statuses(organisation_id: int, user_id: int, now: datetime) -> dict[int, StatusRow]:
    """One status per module for one person: the most urgent of its rules' assignments."""
    best: dict[int, StatusRow] = {}
    for row in status_rows(organisation_id, user_id=user_id, now=now):
        if row.module_id not in best or row.urgency < best[row.module_id].urgency:
            best[row.module_id] = row
    return best


# --------------------------------------------------------------------------- extra attempts
def grant_attempts(organisation_id: int, user_id: int, module_slug: str, extra: int, *,
                   reason: str, actor: User | None, now: datetime) -> AttemptGrant:
    """Give one person ``extra`` more quiz attempts on a module, in their current validity
    period / assignment cycle (a ``failed`` assignment becomes attemptable). Audited.
    NotFound for a person or module of another organisation; ValidationFailed (``extra``)
    unless 1..20."""
    person = db.session.scalar(select(User).where(User.id == user_id,
                                                  User.organisation_id == organisation_id))
    if person is None:
        raise NotFound("No such person in this organisation", field="user")
    module = db.session.scalar(select(Module).where(
        Module.organisation_id == organisation_id, Module.slug == module_slug))
    if module is None:
        raise NotFound(f"No module {module_slug!r} in this organisation", field="module")
    if not 1 <= extra <= 20:
        raise ValidationFailed("Grant between 1 and 20 extra attempts", field="extra")
    grant = AttemptGrant(user_id=user_id, module_id=module.id, extra=extra,
                         reason=reason[:2000], granted_by_id=actor.id if actor else None,
                         granted_at=now)
    db.session.add(grant)
    db.session.flush()
    record_audit("attempts.grant", actor=actor, organisation_id=organisation_id,
                 target=("user", user_id),
                 details={"before": None, "after": {"module": module_slug, "extra": extra,
                                                    "reason": reason[:2000]}})
    return grant


def extra_attempts(user_id: int, module_id: int, since: datetime | None) -> int:
    """Extra attempts granted to the person on the module from ``since`` (None = ever)."""
    query = select(func.coalesce(func.sum(AttemptGrant.extra), 0)).where(
        AttemptGrant.user_id == user_id, AttemptGrant.module_id == module_id)
    if since is not None:
        query = query.where(AttemptGrant.granted_at >= since)
    return int(db.session.scalar(query) or 0)
