"""``lms-plugin assignments …`` / ``attempts grant`` and the triggers of evaluation
(publish event -> outbox job, the nightly schedule) (issue 14)."""

from __future__ import annotations

from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.learning import tasks
from lms_plugin.learning.models import Assignment, AssignmentRule, AttemptGrant
from tests.catalog.helpers import import_valid
from tests.learning.builders import build_module
from tests.learning.test_assignments import staff


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_rule_add_list_evaluate_remove(app, factory):
    build_module(app)
    ed = staff(app, factory, department="Emergency")
    staff(app, factory, department="ICU")
    added = run(app, "assignments", "rule", "add", "cpoe-basics", "--due-days", "30",
                "--every-months", "12", "--departments", "Emergency", "--job-roles", "nurse")
    assert added.exit_code == 0, added.output
    assert "1 person(s) assigned" in added.output
    listed = run(app, "assignments", "rule", "list")
    assert "cpoe-basics\tdue 30 days\tevery 12 months\tdepartments: Emergency; " \
           "job_roles: nurse\t1 open" in listed.output
    assert "Opened 0, closed 0" in run(app, "assignments", "evaluate").output
    assert "not_started\t1" in run(app, "assignments", "status").output
    with app.app_context():
        rule_id = db.session.scalar(select(AssignmentRule.id))
    removed = run(app, "assignments", "rule", "remove", str(rule_id))
    assert removed.exit_code == 0, removed.output
    with app.app_context():
        assert db.session.scalar(select(Assignment.closed_reason).where(
            Assignment.user_id == ed)) == "rule_removed"


def test_bad_rule_writes_nothing(app, factory):
    build_module(app)
    for args, message in [
            (["--due-days", "3", "--job-roles", "Nurse RN"], "Unknown job role"),
            ([], "either a number of days or a fixed due date"),
            (["--due-days", "3", "--due-on", "2026-01-01"], "either a number of days")]:
        result = run(app, "assignments", "rule", "add", "cpoe-basics", *args)
        assert result.exit_code != 0 and message in result.output, result.output
    result = run(app, "assignments", "rule", "add", "no-such-module", "--due-days", "3")
    assert result.exit_code != 0 and "No module" in result.output
    with app.app_context():
        assert db.session.scalar(select(AssignmentRule.id)) is None
        assert db.session.scalar(select(AuditEvent.id)) is None


def test_attempts_grant(app, factory):
    build_module(app)
    person = staff(app, factory)
    email = factory.email_of(person)
    result = run(app, "attempts", "grant", "--email", email, "--module", "cpoe-basics",
                 "--extra", "2", "--reason", "Retake agreed with manager")
    assert result.exit_code == 0, result.output
    with app.app_context():
        grant = db.session.scalar(select(AttemptGrant))
        assert (grant.user_id, grant.extra) == (person, 2)
        audit = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "attempts.grant"))
        assert audit.details["after"]["extra"] == 2
    bad = run(app, "attempts", "grant", "--email", "nobody@example.org", "--module",
              "cpoe-basics")
    assert bad.exit_code != 0 and "No person" in bad.output


def test_publishing_queues_an_evaluation_that_assigns(app, factory):
    from lms_plugin.jobs.registry import JobContext  # noqa: F401  (the handler's contract)
    person = staff(app, factory)
    summary = import_valid(app)  # publishes the fixture's modules
    with app.app_context():
        jobs = db.session.scalars(select(OutboxJob).where(
            OutboxJob.kind == tasks.EVALUATE)).all()
        assert [job.payload for job in jobs] == [{"organisation_id": summary.organisation_id}]
        slug = db.session.scalar(
            select(Module.slug).join(ModuleVersion, ModuleVersion.module_id == Module.id)
            .where(Module.organisation_id == summary.organisation_id,
                   ModuleVersion.status == "published").order_by(Module.slug).limit(1))
    assert run(app, "assignments", "rule", "add", slug, "--due-days", "5").exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(Assignment.user_id)) == person


def test_nightly_evaluation_is_scheduled():
    assert tasks.EVALUATE_ALL in {p.kind for p in schedule.periodic_jobs()}


def test_expiring_window_setting(app, factory):
    from lms_plugin.accounts.models import Organisation
    build_module(app)
    result = run(app, "org", "set-expiring-window", "general-hospital", "45")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(Organisation.expiring_soon_days)) == 45
        audit = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "organisation.set_expiring_window"))
        assert audit.details == {"before": {"expiring_soon_days": 30},
                                 "after": {"expiring_soon_days": 45}}
    assert run(app, "org", "set-expiring-window", "general-hospital", "400").exit_code != 0
