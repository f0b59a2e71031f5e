"""Reminders (issue 14): learners mailed 14 and 3 days before a due date and once it has
passed, managers a weekly digest of their people's overdue items; each reminder once per
threshold (the ledger), through the outbox to a real SMTP server on loopback."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.jobs.schedule import enqueue_due
from lms_plugin.learning import reminders
from lms_plugin.learning.models import ReminderSent
from tests.learning.builders import build_module
from tests.learning.test_assignments import ONE, add_rule, complete, staff, update_user
from tests.smtp_server import Inbox, parts, smtp_backend

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday; the rule makes everyone due T0 + 30d
DUE = T0 + timedelta(days=30)


@pytest.fixture
def module(app):
    return build_module(app, questions=ONE)


@pytest.fixture
def inbox(app) -> Iterator[Inbox]:
    with smtp_backend(app) as server:
        yield server


def run(app, org_id: int, at: datetime) -> reminders.ReminderReport:
    with app.app_context():
        report = reminders.send_reminders(org_id, at)
        db.session.commit()
        return report


def ledger(app) -> list[tuple[str, int]]:
    with app.app_context():
        return [(r.kind, r.recipient_id) for r in db.session.scalars(
            select(ReminderSent).order_by(ReminderSent.id))]


def mail_jobs(app) -> list[dict]:
    with app.app_context():
        return [j.payload for j in db.session.scalars(
            select(OutboxJob).where(OutboxJob.kind == "mail.send").order_by(OutboxJob.id))]


def team(app, factory, org_id: int) -> tuple[int, int, int]:
    """Two nurses with a manager (who is not assigned: a manager of another department)."""
    manager = staff(app, factory, department="Management", job_role="manager")
    nurse_a, nurse_b = staff(app, factory), staff(app, factory)
    update_user(app, nurse_a, manager_id=manager, name="Ana Núñez")
    update_user(app, nurse_b, manager_id=manager, name="Ben Okafor")
    update_user(app, manager, name="Maria Manager")
    add_rule(app, org_id, departments=["Emergency"])
    return manager, nurse_a, nurse_b


def test_thresholds_are_each_sent_once(app, factory, module):
    org = module["organisation_id"]
    manager, nurse_a, nurse_b = team(app, factory, org)

    assert run(app, org, T0).learner_mails == 0  # due in 30 days: nothing yet
    first = run(app, org, DUE - timedelta(days=13))
    assert (first.learner_mails, first.by_kind) == (2, {"due_14": 2})
    assert run(app, org, DUE - timedelta(days=12)).learner_mails == 0  # re-run: nothing
    assert run(app, org, DUE - timedelta(days=4)).learner_mails == 0  # still the 14-day one
    soon = run(app, org, DUE - timedelta(days=2))
    assert soon.by_kind == {"due_3": 2}
    assert run(app, org, DUE - timedelta(hours=1)).learner_mails == 0
    late = run(app, org, DUE + timedelta(hours=1))
    assert late.by_kind == {"overdue": 2} and late.digests == 1 and late.digest_items == 2
    again = run(app, org, DUE + timedelta(days=2))  # same ISO week
    assert (again.learner_mails, again.digests) == (0, 0)
    next_week = run(app, org, DUE + timedelta(days=7))
    assert (next_week.learner_mails, next_week.digests) == (0, 1)  # weekly while overdue

    kinds = [k for k, _ in ledger(app)]
    assert sorted(kinds) == sorted(["due_14"] * 2 + ["due_3"] * 2 + ["overdue"] * 2
                                   + ["digest"] * 2)
    payloads = mail_jobs(app)
    assert len(payloads) == 8
    digest = [p for p in payloads if p["subject"].startswith("Weekly training digest")]
    assert len(digest) == 2 and {p["to"] for p in digest} == {
        factory.email_of(manager)}
    assert "Ana Núñez" in digest[0]["text"] and "Ben Okafor" in digest[0]["html"]


def test_completed_and_late_joiners(app, factory, module):
    org = module["organisation_id"]
    _, nurse_a, nurse_b = team(app, factory, org)
    complete(app, nurse_a, module["module_id"], module["version_id"], T0 + timedelta(days=1))
    report = run(app, org, DUE - timedelta(days=2))  # first look only 2 days before
    assert report.by_kind == {"due_3": 1}  # the nearest threshold only, not a late due_14
    assert [r for _, r in ledger(app)] == [nurse_b]


def test_a_lapsed_completion_is_a_new_due_date_and_reminded_again(app, factory, module):
    org = module["organisation_id"]
    _, nurse_a, _ = team(app, factory, org)
    complete(app, nurse_a, module["module_id"], module["version_id"], T0 - timedelta(days=700),
             months=12)  # valid until T0 - 335 days: already expired at T0
    at = T0 + timedelta(hours=1)
    assert run(app, org, at).by_kind.get("overdue") == 1
    assert run(app, org, at + timedelta(hours=1)).learner_mails == 0


def test_people_without_a_valid_email_are_skipped_and_reminded_later(app, factory,
                                                                           module):
    org = module["organisation_id"]
    _, nurse_a, nurse_b = team(app, factory, org)
    update_user(app, nurse_a, email=None)
    update_user(app, nurse_b, email="not an address")  # an LMS profile may carry anything
    report = run(app, org, DUE - timedelta(days=10))
    assert report.learner_mails == 0 and ledger(app) == []
    update_user(app, nurse_b, email="ben@example.org")
    report = run(app, org, DUE - timedelta(days=10))
    assert report.learner_mails == 1
    update_user(app, nurse_a, email="ana@example.org")
    later = run(app, org, DUE - timedelta(days=9))
    assert later.learner_mails == 1
    assert mail_jobs(app)[-1]["to"] == "ana@example.org"


def test_reminders_arrive_by_the_worker_with_a_link_to_the_course(app, factory, module,
                                                                  inbox):
    org = module["organisation_id"]
    manager, nurse_a, nurse_b = team(app, factory, org)
    at = DUE + timedelta(hours=1)
    with app.app_context():
        assert "learning.reminders" in enqueue_due(at)
        for _ in range(2):  # the fan-out, then the organisation's job
            jobs.run_due_jobs("w1", now=at)
        jobs.run_due_jobs("w1")  # the mails, queued at the real clock's time
        assert db.session.scalar(select(func.count()).select_from(OutboxJob).where(
            OutboxJob.status != "succeeded")) == 0
    assert len(inbox.received) == 3  # two learners, one manager's digest
    by_rcpt = {rcpt[0]: message for rcpt, message in inbox.received}
    learner = by_rcpt[factory.email_of(nurse_a)]
    assert learner["Subject"] == "Training overdue"
    text, html = parts(learner)
    link = "http://tool.test/modules/cpoe-basics"
    assert f"Open it: {link}" in text and f'href="{link}"' in html
    assert "EHR order entry (CPOE): safe ordering basics" in text
    assert "OVERDUE since 4 Feb 2026" in text  # the organisation's time zone
    digest = by_rcpt[factory.email_of(manager)]
    assert digest["Subject"] == "Weekly training digest: 2 overdue items in your team"
    d_text, d_html = parts(digest)
    assert re.search(r"Ana Núñez: EHR order entry .*\(Overdue, due 4 Feb 2026\)", d_text)
    assert "<th scope=\"col\">Person</th>" in d_html
    with app.app_context():  # the next look sends nothing more
        enqueue_due(at + timedelta(hours=7))
        for _ in range(2):
            jobs.run_due_jobs("w1", now=at + timedelta(hours=7))
        jobs.run_due_jobs("w1")
    assert len(inbox.received) == 3


def test_a_course_link_provider_wins_over_the_tools_page(app, factory, module):
    org = module["organisation_id"]
    _, nurse_a, _ = team(app, factory, org)
    url = "https://moodle.example.org/mod/lti/view.php?id=42"
    app.extensions[reminders.COURSE_LINK_PROVIDER] = lambda org_id, pairs: {
        pair: url for pair in pairs if pair[0] == nurse_a}
    try:
        run(app, org, DUE - timedelta(days=10))
    finally:
        del app.extensions[reminders.COURSE_LINK_PROVIDER]
    texts = {p["to"]: p["text"] for p in mail_jobs(app)}
    assert url in texts[factory.email_of(nurse_a)]
    assert "http://tool.test/modules/cpoe-basics" in "".join(texts.values())


def test_concurrent_runs_send_each_reminder_once(app, factory, module):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    org = module["organisation_id"]
    team(app, factory, org)
    at = DUE + timedelta(hours=1)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                reminders.send_reminders(org, at)
                db.session.commit()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(k for k, _ in ledger(app)) == ["digest", "overdue", "overdue"]
    assert len(mail_jobs(app)) == 3


def test_the_ledger_key_names_threshold_assignment_and_due_date(app, factory, module):
    org = module["organisation_id"]
    team(app, factory, org)
    run(app, org, DUE - timedelta(days=2))
    with app.app_context():
        keys = db.session.scalars(select(ReminderSent.key)).all()
        users = db.session.scalars(select(User.id)).all()
    assert users
    assert all(re.fullmatch(r"due_3:\d+:2026-02-04", k) for k in keys), keys


def test_reads_do_not_grow_with_the_number_of_people(app, factory, module):
    """Set-based: the same statements for 2 people as for 6 (the ledger rows and the mails'
    outbox rows are one statement each, an executemany for the outbox)."""
    from tests.statements import counted

    org = module["organisation_id"]
    manager, *_ = team(app, factory, org)

    def selects(at: datetime) -> tuple[int, int]:
        with app.app_context(), counted() as seen:
            report = reminders.send_reminders(org, at)
            db.session.commit()
        return len(seen), report.learner_mails

    few = selects(DUE - timedelta(days=10))
    for _ in range(4):
        update_user(app, staff(app, factory), manager_id=manager)
    with app.app_context():
        from lms_plugin.learning import assignments

        assignments.evaluate(org, T0)
        db.session.commit()
    many = selects(DUE - timedelta(days=2))
    assert few[1] == 2 and many[1] == 6
    assert many[0] == few[0], (few, many)


def test_a_manager_in_another_organisation_gets_no_digest(app, factory, module):
    org = module["organisation_id"]
    manager, nurse_a, nurse_b = team(app, factory, org)
    outsider = factory.user("admin", org="Other Health")
    update_user(app, nurse_b, manager_id=outsider)
    report = run(app, org, DUE + timedelta(hours=1))
    assert (report.digests, report.digest_items) == (1, 1)  # only the home manager's
    to = {p["to"] for p in mail_jobs(app) if p["subject"].startswith("Weekly")}
    assert to == {factory.email_of(manager)}
