"""Quiz attempts and their graded answers.

An ``Attempt`` freezes everything random about a quiz sitting (the seed, the drawn question
ids in order, each question's option order) so a reload, a second tab or the result page
shows exactly the same quiz; it is graded at most once (see ``quizzes.services``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.db import utcnow
from lms_plugin.extensions import db

ATTEMPT_STATUSES = ("in_progress", "submitted", "expired")


class Attempt(db.Model):
    """One sitting of a module version's quiz by one person."""

    __tablename__ = "quiz_attempt"
    __table_args__ = (
        UniqueConstraint("user_id", "module_version_id", "number"),
        CheckConstraint("status IN ('in_progress', 'submitted', 'expired')",
                        name="status_known"),
        Index("ix_quiz_attempt_user_version_status", "user_id", "module_version_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    module_version_id: Mapped[int] = mapped_column(
        ForeignKey("module_version.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]  # 1, 2, … per person and version (preview sittings included)
    # An author's "preview as learner": never counts against the limit, never a completion.
    preview: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="in_progress")
    seed: Mapped[int]
    question_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # drawn, in shown order
    # str(question id) -> option/item/choice ids (or match texts) in the order shown.
    option_orders: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime | None]  # server-side time limit; None = untimed
    submitted_at: Mapped[datetime | None]
    score: Mapped[float | None] = mapped_column(Float)  # percent, 2 decimals
    passed: Mapped[bool | None]
    # Key of the submission that graded the attempt: a replay carrying it gets the same result.
    submission_key: Mapped[str | None] = mapped_column(String(64))

    answers: Mapped[list[AttemptAnswer]] = relationship(
        back_populates="attempt", cascade="all, delete-orphan", order_by="AttemptAnswer.id"
    )


class AttemptAnswer(db.Model):
    """The graded response to one drawn question of an attempt."""

    __tablename__ = "quiz_attempt_answer"
    __table_args__ = (UniqueConstraint("attempt_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("quiz_attempt.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("question.id", ondelete="CASCADE"),
                                             index=True)
    response: Mapped[Any] = mapped_column(JSON, nullable=True)
    fraction: Mapped[float] = mapped_column(Float)  # 0..1 of the question's points
    correct: Mapped[bool]
    feedback: Mapped[str] = mapped_column(String(4000), default="")

    attempt: Mapped[Attempt] = relationship(back_populates="answers")
