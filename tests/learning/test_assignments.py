"""Assignment rules, set-based evaluation and the one status function (issue 14).

Each edge case of the issue is written as history at fixed times (the services take ``now``)
and read through ``assignments.status_rows`` (what the learner home, the reminder job and
reports show); quiz sittings go through the learning services.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.catalog.models import ModuleVersion, Question
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning import services as learning
from lms_plugin.learning.assignments import RuleSpec
from lms_plugin.learning.models import Assignment, Completion
from tests.learning.builders import add_version, build_module

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
ONE = [{"key": "q1", "type": "single_choice", "prompt": "Question?",
        "data": {"options": [{"id": "a", "text": "Right"}, {"id": "b", "text": "Wrong"}],
                 "answer": "a"}}]


def staff(app, factory, *, department="Emergency", job_role="nurse", facility="Main",
          org="General Hospital") -> int:
    user_id = factory.user("learner", org=org)
    with app.app_context():
        user = db.session.get(User, user_id)
        user.department, user.job_role, user.facility = department, job_role, facility
        db.session.commit()
    return user_id


def update_user(app, user_id: int, **values) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        for key, value in values.items():
            setattr(user, key, value)
        db.session.commit()


def add_rule(app, org_id: int, at: datetime = T0, **spec) -> int:
    spec.setdefault("module_slug", "cpoe-basics")
    if "due_on" not in spec:
        spec.setdefault("due_days", 30)
    with app.app_context():
        rule = assignments.add_rule(org_id, RuleSpec(**spec), actor=None, now=at)
        db.session.commit()
        return rule.id


def evaluate(app, org_id: int, at: datetime, user_id: int | None = None):
    with app.app_context():
        result = assignments.evaluate(org_id, at, user_id=user_id)
        db.session.commit()
        return result


def statuses(app, org_id: int, at: datetime, user_id: int | None = None):
    with app.app_context():
        return assignments.status_rows(org_id, user_id=user_id, now=at)


def status_of(app, org_id: int, user_id: int, at: datetime):
    rows = statuses(app, org_id, at, user_id)
    assert len(rows) == 1, rows
    return rows[0]


def complete(app, user_id: int, module_id: int, version_id: int, at: datetime,
             months: int | None = 12) -> None:
    with app.app_context():
        db.session.add(Completion(
            user_id=user_id, module_id=module_id, module_version_id=version_id, score=100,
            passed=True, completed_at=at,
            expires_at=learning.add_months(at, months) if months else None))
        db.session.commit()


def sit(app, user_id: int, version_id: int, *, right: bool, at: datetime) -> None:
    with app.app_context():
        attempt = learning.start_quiz(user_id, version_id, at)
        ids = db.session.scalars(select(Question.id).where(
            Question.version_id == version_id)).all()
        learning.submit_quiz(attempt.id, user_id, dict.fromkeys(ids, "a" if right else "b"),
                             at)
        db.session.commit()


@pytest.fixture
def module(app):
    return build_module(app, questions=ONE)


def test_rule_for_everyone_opens_assignments_once(app, factory, module):
    org = module["organisation_id"]
    people = [staff(app, factory) for _ in range(3)]
    add_rule(app, org)
    rows = statuses(app, org, T0)
    assert sorted(r.user_id for r in rows) == sorted(people)
    assert {r.status for r in rows} == {"not_started"}
    assert {r.due_at for r in rows} == {T0 + timedelta(days=30)}
    again = evaluate(app, org, T0 + timedelta(hours=1))
    assert again.opened == [] and again.closed == []  # idempotent
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Assignment.id))) == 3


def test_not_started_becomes_overdue_and_in_progress(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    add_rule(app, org, due_days=10)
    assert status_of(app, org, person, T0 + timedelta(days=9)).status == "not_started"
    assert status_of(app, org, person, T0 + timedelta(days=10, seconds=1)).status == "overdue"
    with app.app_context():
        learning.start_quiz(person, module["version_id"], T0 + timedelta(days=2))
        db.session.commit()
    assert status_of(app, org, person, T0 + timedelta(days=3)).status == "in_progress"


def test_audience_and_department_change(app, factory, module):
    org = module["organisation_id"]
    ed_nurse = staff(app, factory, department="Emergency", job_role="nurse")
    icu_nurse = staff(app, factory, department="ICU", job_role="nurse")
    ed_other = staff(app, factory, department="Emergency", job_role="pharmacist")
    ed_rule = add_rule(app, org, departments=["Emergency"], job_roles=["nurse"])
    icu_rule = add_rule(app, org, departments=["ICU"], due_days=5)
    assert {(r.user_id, r.rule_id) for r in statuses(app, org, T0)} == {
        (ed_nurse, ed_rule), (icu_nurse, icu_rule)}
    assert ed_other not in {r.user_id for r in statuses(app, org, T0)}
    complete(app, ed_nurse, module["module_id"], module["version_id"], T0 + timedelta(days=1))
    # The ED nurse moves to ICU: the ED assignment closes, the ICU one opens, and the
    # completion earned in the ED still counts.
    update_user(app, ed_nurse, department="ICU")
    moved_at = T0 + timedelta(days=40)
    result = evaluate(app, org, moved_at, user_id=ed_nurse)
    assert len(result.opened) == 1 and len(result.closed) == 1
    row = status_of(app, org, ed_nurse, moved_at)
    assert (row.rule_id, row.status) == (icu_rule, "completed")
    with app.app_context():
        closed = db.session.scalar(select(Assignment).where(Assignment.rule_id == ed_rule,
                                                             Assignment.user_id == ed_nurse))
        assert (closed.closed_at, closed.closed_reason) == (moved_at, "audience")


def test_job_role_must_use_the_content_spelling(app, factory, module):
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        assignments.add_rule(module["organisation_id"],
                             RuleSpec("cpoe-basics", due_days=5, job_roles=["Nurse RN"]),
                             actor=None, now=T0)
    assert refused.value.field == "job_roles"
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        assignments.add_rule(module["organisation_id"], RuleSpec("cpoe-basics"),
                             actor=None, now=T0)
    assert refused.value.field == "due"


def test_completion_before_assignment_counts_while_valid(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    earned = T0 - timedelta(days=300)  # valid 12 months: until about T0 + 65 days
    complete(app, person, module["module_id"], module["version_id"], earned)
    add_rule(app, org, due_days=7)
    valid_until = learning.add_months(earned, 12)
    row = status_of(app, org, person, T0)
    assert (row.status, row.valid_until, row.due_at) == ("completed", valid_until, valid_until)
    assert status_of(app, org, person, valid_until - timedelta(days=29)).status == \
        "expiring_soon"
    lapsed = status_of(app, org, person, valid_until + timedelta(seconds=1))
    assert (lapsed.status, lapsed.due_at, lapsed.valid_until) == ("expired", valid_until,
                                                                  None)


def test_expiring_window_is_per_organisation(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    complete(app, person, module["module_id"], module["version_id"], T0)
    add_rule(app, org)
    near = learning.add_months(T0, 12) - timedelta(days=40)
    assert status_of(app, org, person, near).status == "completed"
    with app.app_context():
        from lms_plugin.accounts.models import Organisation
        db.session.get(Organisation, org).expiring_soon_days = 45
        db.session.commit()
    assert status_of(app, org, person, near).status == "expiring_soon"


def test_recurrence_is_anchored_on_the_last_completion(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    add_rule(app, org, recurrence_months=12)
    first, second = T0 + timedelta(days=3), T0 + timedelta(days=200)
    complete(app, person, module["module_id"], module["version_id"], first, months=None)
    row = status_of(app, org, person, T0 + timedelta(days=10))
    assert (row.status, row.due_at) == ("completed", learning.add_months(first, 12))
    complete(app, person, module["module_id"], module["version_id"], second, months=None)
    row = status_of(app, org, person, T0 + timedelta(days=390))
    assert (row.status, row.due_at) == ("completed", learning.add_months(second, 12))
    after = learning.add_months(second, 12) + timedelta(days=1)
    assert status_of(app, org, person, after).status == "expired"


def test_leaver_is_out_of_the_counts_but_kept(app, factory, module):
    org = module["organisation_id"]
    stays, leaves = staff(app, factory), staff(app, factory)
    add_rule(app, org)
    update_user(app, leaves, active=False, left_at=T0 + timedelta(days=2))
    evaluate(app, org, T0 + timedelta(days=2))
    assert [r.user_id for r in statuses(app, org, T0 + timedelta(days=2))] == [stays]
    with app.app_context():
        history = db.session.scalar(select(Assignment).where(Assignment.user_id == leaves))
        assert history.closed_reason == "left"
        assert db.session.get(User, leaves) is not None


def test_removed_rule_closes_its_assignments_and_is_audited(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    rule_id = add_rule(app, org)
    with app.app_context():
        assignments.remove_rule(org, rule_id, actor=None, now=T0 + timedelta(days=1))
        db.session.commit()
        assert db.session.scalar(select(Assignment.closed_reason).where(
            Assignment.user_id == person)) == "rule_removed"
        actions = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.organisation_id == org)).all()
        assert actions == ["assignment_rule.add", "assignment_rule.remove"]
        with pytest.raises(NotFound):
            assignments.remove_rule(org, rule_id, actor=None, now=T0)
    assert statuses(app, org, T0 + timedelta(days=1)) == []
    assert evaluate(app, org, T0 + timedelta(days=2)).opened == []


def test_retired_module_closes_its_assignments(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    add_rule(app, org)
    with app.app_context():
        db.session.get(ModuleVersion, module["version_id"]).status = "retired"
        db.session.commit()
    evaluate(app, org, T0 + timedelta(days=1))
    with app.app_context():
        assert db.session.scalar(select(Assignment.closed_reason).where(
            Assignment.user_id == person)) == "module_retired"


def test_retraining_version_before_and_after_go_live(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    complete(app, person, module["module_id"], module["version_id"], T0 - timedelta(days=10))
    add_rule(app, org)
    go_live = T0 + timedelta(days=60)
    v2 = add_version(app, module["module_id"], number=2, retraining_required=True,
                     validity_months=12, published_at=T0, go_live_at=go_live)
    before = status_of(app, org, person, T0 + timedelta(days=1))
    assert (before.status, before.due_at) == ("completed", go_live)
    assert status_of(app, org, person, go_live - timedelta(days=5)).status == "expiring_soon"
    after = status_of(app, org, person, go_live + timedelta(days=1))
    assert (after.status, after.due_at) == ("overdue", go_live)
    complete(app, person, module["module_id"], v2, go_live + timedelta(days=2))
    assert status_of(app, org, person, go_live + timedelta(days=3)).status == "completed"


def test_rule_that_ignores_retraining(app, factory, module):
    org = module["organisation_id"]
    person = staff(app, factory)
    complete(app, person, module["module_id"], module["version_id"], T0 - timedelta(days=10))
    add_rule(app, org, reopen_on_retraining=False)
    add_version(app, module["module_id"], number=2, retraining_required=True,
                published_at=T0)
    assert status_of(app, org, person, T0 + timedelta(days=5)).status == "completed"


def test_failed_then_extra_attempt_granted(app, factory):
    module = build_module(app, questions=ONE, attempt_limit=1)
    org = module["organisation_id"]
    person = staff(app, factory)
    add_rule(app, org)
    sit(app, person, module["version_id"], right=False, at=T0 + timedelta(days=1))
    row = status_of(app, org, person, T0 + timedelta(days=2))
    assert (row.status, row.attempts_used, row.attempts_allowed) == ("failed", 1, 1)
    with app.app_context(), pytest.raises(Conflict):
        learning.start_quiz(person, module["version_id"], T0 + timedelta(days=2))
    with app.app_context():
        admin = db.session.get(User, factory.user("admin", org="General Hospital"))
        assignments.grant_attempts(org, person, "cpoe-basics", 1, reason="Retake agreed",
                                   actor=admin, now=T0 + timedelta(days=3))
        db.session.commit()
        assert db.session.scalar(select(AuditEvent.action).where(
            AuditEvent.action == "attempts.grant")) == "attempts.grant"
    row = status_of(app, org, person, T0 + timedelta(days=4))
    assert (row.status, row.attempts_allowed) == ("in_progress", 2)
    sit(app, person, module["version_id"], right=True, at=T0 + timedelta(days=4))
    assert status_of(app, org, person, T0 + timedelta(days=5)).status == "completed"


def test_grant_refuses_bad_input(app, factory, module):
    person = staff(app, factory)
    other_org = factory.organisation("Other Hospital")
    with app.app_context():
        with pytest.raises(ValidationFailed):
            assignments.grant_attempts(module["organisation_id"], person, "cpoe-basics", 0,
                                       reason="", actor=None, now=T0)
        with pytest.raises(NotFound):
            assignments.grant_attempts(other_org, person, "cpoe-basics", 1, reason="",
                                       actor=None, now=T0)


def test_fixed_due_date_and_organisation_isolation(app, factory, module):
    org = module["organisation_id"]
    mine = staff(app, factory)
    staff(app, factory, org="Other Hospital")
    add_rule(app, org, due_on=date(2026, 3, 1))
    rows = statuses(app, org, T0)
    assert [(r.user_id, r.due_at) for r in rows] == [(mine, datetime(2026, 3, 1, tzinfo=UTC))]
    with app.app_context(), pytest.raises(NotFound):
        assignments.add_rule(factory.organisation("Other Hospital"),
                             RuleSpec("cpoe-basics", due_days=3), actor=None, now=T0)


def test_incremental_evaluation_touches_one_person(app, factory, module):
    org = module["organisation_id"]
    first = staff(app, factory)
    add_rule(app, org)
    second, third = staff(app, factory), staff(app, factory)
    result = evaluate(app, org, T0 + timedelta(days=1), user_id=second)
    assert len(result.opened) == 1
    assert {r.user_id for r in statuses(app, org, T0 + timedelta(days=1))} == {first, second}
    assert third not in {r.user_id for r in statuses(app, org, T0 + timedelta(days=1))}
