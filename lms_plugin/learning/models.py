"""What a learner has done: completions (the record reports and the LMS gradebook rely on)
and lesson progress (so a learner resumes where they left off); what a learner must do:
assignment rules, the assignments they open, and extra attempts an admin granted (issue 14)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lms_plugin.db import utcnow
from lms_plugin.extensions import db


class Completion(db.Model):
    """A passed quiz attempt on one module version, valid until ``expires_at`` (None = never).

    Recorded in the same transaction as the grading, one per passing attempt; preview
    attempts never make one.
    """

    __tablename__ = "completion"
    __table_args__ = (Index("ix_completion_user_module", "user_id", "module_id"),)

    # RESTRICT, not CASCADE (issue 15, migration 0016_credits): a completion is the evidence
    # CE credit rests on and is kept six years, so the database refuses to delete a person,
    # module or version that still has one; people are anonymised instead
    # (credits.services.anonymise_person). SET NULL would keep rows nobody can attribute.
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="RESTRICT"),
                                           index=True)
    module_version_id: Mapped[int] = mapped_column(
        ForeignKey("module_version.id", ondelete="RESTRICT"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("quiz_attempt.id", ondelete="SET NULL"), unique=True)
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool]
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]


class LessonProgress(db.Model):
    """Which lessons of a module version a person has opened, and the last one (to resume)."""

    __tablename__ = "lesson_progress"
    __table_args__ = (UniqueConstraint("user_id", "module_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    module_version_id: Mapped[int] = mapped_column(
        ForeignKey("module_version.id", ondelete="CASCADE"), index=True)
    last_position: Mapped[int] = mapped_column(default=1)
    viewed_positions: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


#: Audience dimensions of a rule, each matched against the same-named ``User`` column.
AUDIENCE_KINDS = ("facility", "department", "job_role")
#: Why an assignment was closed (history is kept: an assignment is never deleted).
CLOSE_REASONS = ("rule_removed", "module_retired", "left", "audience")


class AssignmentRule(db.Model):
    """Who must complete a module, by when, and how often (issue 14).

    Audience: :class:`RuleAudience` rows; within one kind any value matches, across kinds
    all must match; no rows = everyone in the organisation. Due: ``due_days`` after the rule
    starts to apply to the person, or the fixed ``due_on`` (exactly one is set). Recurrence:
    every ``recurrence_months`` after the person's last completion, or None (once).
    ``reopen_on_retraining``: a published *retraining required* version reopens it at its
    go-live date. Removing a rule sets ``removed_at`` (the row stays for history).
    """

    __tablename__ = "assignment_rule"
    __table_args__ = (
        CheckConstraint("(due_days IS NULL) <> (due_on IS NULL)", name="one_due"),
        CheckConstraint("due_days IS NULL OR due_days >= 0", name="due_days_positive"),
        CheckConstraint("recurrence_months IS NULL OR recurrence_months > 0",
                        name="recurrence_positive"),
        Index("ix_assignment_rule_org_removed", "organisation_id", "removed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"),
                                           index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    due_days: Mapped[int | None]
    due_on: Mapped[datetime | None]
    recurrence_months: Mapped[int | None]
    reopen_on_retraining: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class RuleAudience(db.Model):
    """One value of a rule's audience: ``kind`` is a :data:`AUDIENCE_KINDS` column name and
    ``value`` its spelling as the content's ``audience`` and the roster use."""

    __tablename__ = "rule_audience"
    __table_args__ = (
        UniqueConstraint("rule_id", "kind", "value"),
        CheckConstraint("kind IN ('facility', 'department', 'job_role')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("assignment_rule.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(100))


class Assignment(db.Model):
    """A rule applying to one person, from ``assigned_at`` (first due ``due_at``) until
    ``closed_at`` (None = open). At most one open assignment per rule and person; a person
    who leaves the audience and comes back gets a new row. Status is never stored: it is
    derived by ``learning.assignments.status_rows``."""

    __tablename__ = "assignment"
    __table_args__ = (
        Index("ix_assignment_open_rule_user", "rule_id", "user_id", unique=True,
              sqlite_where=text("closed_at IS NULL"),
              postgresql_where=text("closed_at IS NULL")),
        Index("ix_assignment_user_module", "user_id", "module_id"),
        Index("ix_assignment_org_closed", "organisation_id", "closed_at"),
        CheckConstraint("closed_reason IS NULL OR closed_reason IN "
                        "('rule_removed', 'module_retired', 'left', 'audience')",
                        name="closed_reason_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("assignment_rule.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    assigned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(20))


class AttemptGrant(db.Model):
    """Extra quiz attempts an admin granted one person on one module (audited). Counted in
    the validity period / assignment cycle they were granted in (``granted_at`` onwards)."""

    __tablename__ = "attempt_grant"
    __table_args__ = (
        Index("ix_attempt_grant_user_module", "user_id", "module_id"),
        CheckConstraint("extra > 0", name="extra_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    extra: Mapped[int]
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


#: Reminder thresholds (issue 14 "Reminders"): learners 14 and 3 days before the due date
#: and once it has passed; managers a weekly digest of their people's overdue items.
REMINDER_KINDS = ("due_14", "due_3", "overdue", "digest")


class ReminderSent(db.Model):
    """The reminder ledger: one row per reminder decided, keyed so it is sent once.

    ``key`` names the reminder exactly: ``<kind>:<assignment id>:<due date>`` for a learner
    (a new due date, after a lapse or a retraining, is a new reminder) and
    ``digest:<manager id>:<ISO year-week>`` for a manager. Rows are written with
    ``INSERT … ON CONFLICT (key) DO NOTHING RETURNING key`` in the transaction that queues
    the mail (``learning.reminders``), so re-runs and concurrent workers never send one twice.
    """

    __tablename__ = "reminder_sent"
    __table_args__ = (
        CheckConstraint("kind IN ('due_14', 'due_3', 'overdue', 'digest')", name="kind_known"),
        Index("ix_reminder_sent_org_sent", "organisation_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    kind: Mapped[str] = mapped_column(String(10))
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), index=True)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
