"""What a learner has done: completions (the record reports and the LMS gradebook rely on)
and lesson progress (so a learner resumes where they left off)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, UniqueConstraint
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
