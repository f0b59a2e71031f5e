"""Catalog: what there is to learn.

A ``Module`` is the stable identity (slug) that LMS links and completions point at; all the
content lives on ``ModuleVersion`` rows, immutable once published, so a completion can say
exactly which version it was earned on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    or_,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.db import utcnow
from lms_plugin.extensions import db

VERSION_STATUSES = ("draft", "published", "retired")
ITEM_TYPES = (
    "single_choice",
    "multiple_response",
    "true_false",
    "ordering",
    "matching",
    "numeric",
    "short_text",
)


class ClinicalSystem(db.Model):
    """A clinical IT system staff are trained on (the EHR, BCMA, PACS, downtime toolkit…)."""

    __tablename__ = "clinical_system"
    __table_args__ = (UniqueConstraint("organisation_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class Module(db.Model):
    """The stable identity of a training module within an organisation."""

    __tablename__ = "module"
    __table_args__ = (UniqueConstraint("organisation_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    system_id: Mapped[int] = mapped_column(ForeignKey("clinical_system.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    system: Mapped[ClinicalSystem] = relationship(lazy="joined")
    versions: Mapped[list[ModuleVersion]] = relationship(
        back_populates="module", order_by="ModuleVersion.number", cascade="all, delete-orphan"
    )


class ModuleVersion(db.Model):
    """One version of a module's content and quiz settings; immutable once published."""

    __tablename__ = "module_version"
    __table_args__ = (
        UniqueConstraint("module_id", "number"),
        CheckConstraint("status IN ('draft', 'published', 'retired')", name="status_known"),
        CheckConstraint("pass_mark >= 0 AND pass_mark <= 100", name="pass_mark_percent"),
        Index("ix_module_version_module_status", "module_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="draft")
    retraining_required: Mapped[bool] = mapped_column(default=False)
    # When learners start on this version (an EHR upgrade's go-live, set at publishing);
    # None = at publication. Until then the previous version is the live one and earlier
    # completions still count (issues 13, 14; ``live_version``).
    go_live_at: Mapped[datetime | None]
    change_notes: Mapped[str] = mapped_column(Text, default="")
    # sha256 of the normalised source (files or editor): an unchanged import makes no version.
    content_hash: Mapped[str] = mapped_column(String(64))

    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    objectives: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Objectives a quiz cannot show (``observed: true`` in module.yaml, issue 17): a
    # subset of ``objectives``, kept for the skills-checklist feature (an observed check).
    observed_objectives: Mapped[list[str]] = mapped_column(JSON, default=list)
    audience: Mapped[list[str]] = mapped_column(JSON, default=list)  # job roles
    estimated_minutes: Mapped[int] = mapped_column(default=15)
    validity_months: Mapped[int | None]  # None = never expires

    pass_mark: Mapped[int] = mapped_column(default=80)  # percent
    attempt_limit: Mapped[int | None]  # None = unlimited
    time_limit_minutes: Mapped[int | None]
    draw_count: Mapped[int | None]  # None = every question in the pool
    shuffle_questions: Mapped[bool] = mapped_column(default=True)
    shuffle_options: Mapped[bool] = mapped_column(default=True)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # Optimistic locking of the web editor: every saved edit of a draft adds one, and a save
    # from a form that read an older value is refused as a conflict (catalog.authoring).
    lock_version: Mapped[int] = mapped_column(default=0, server_default="0")

    module: Mapped[Module] = relationship(back_populates="versions")
    lessons: Mapped[list[Lesson]] = relationship(
        back_populates="version", order_by="Lesson.position", cascade="all, delete-orphan"
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="version", order_by="Question.position", cascade="all, delete-orphan"
    )


class Lesson(db.Model):
    """An ordered Markdown page of a module version (sanitized when rendered)."""

    __tablename__ = "lesson"
    __table_args__ = (UniqueConstraint("version_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("module_version.id", ondelete="CASCADE"))
    position: Mapped[int]
    slug: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    body_markdown: Mapped[str] = mapped_column(Text)

    version: Mapped[ModuleVersion] = relationship(back_populates="lessons")


class Question(db.Model):
    """A pool item. ``data`` holds the type-specific shape (options, answer key, tolerance…)
    exactly as validated from the content format; grading lives in ``quizzes.services``."""

    __tablename__ = "question"
    __table_args__ = (
        UniqueConstraint("version_id", "key"),
        CheckConstraint(
            "type IN ('single_choice', 'multiple_response', 'true_false', 'ordering', "
            "'matching', 'numeric', 'short_text')",
            name="type_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("module_version.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))  # the author's id, stable across versions
    position: Mapped[int]
    type: Mapped[str] = mapped_column(String(30))
    prompt: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A critical question answered wrong fails the attempt whatever its score (issue 17).
    critical: Mapped[bool] = mapped_column(default=False, server_default=false())

    version: Mapped[ModuleVersion] = relationship(back_populates="questions")


class ContentAsset(db.Model):
    """An image shipped beside lesson files, stored in the database so every web process can
    serve it locally (hospital networks block CDNs); deduplicated by hash per module."""

    __tablename__ = "content_asset"
    __table_args__ = (UniqueConstraint("module_id", "path", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(300))  # e.g. images/scanner.png
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignoffReviewer(db.Model):
    """A reviewer an organisation requires before a module version may be published (issue
    17): a role name held by people (``SignoffRoleHolder``: "pharmacist", "privacy officer")
    or one named person (``user_id``; ``role_name`` is then the label the person signs as).
    ``module_id`` None = every module of the organisation; else that module only."""

    __tablename__ = "signoff_reviewer"
    __table_args__ = (
        UniqueConstraint("organisation_id", "module_id", "role_name", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    module_id: Mapped[int | None] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    role_name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignoffRoleHolder(db.Model):
    """A person who holds a reviewer role name (lower-cased) in the organisation. Kept apart
    from ``User.job_role``, which an LMS launch may set: only an admin designates reviewers."""

    __tablename__ = "signoff_role_holder"
    __table_args__ = (UniqueConstraint("organisation_id", "role_name", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    role_name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignoffApproval(db.Model):
    """One required reviewer's approval of one exact version: who (name and role as signed,
    copied so a later rename does not rewrite history), when, and the version's
    ``content_hash`` at that moment. An approval whose hash is no longer the version's does
    not count, and a change to the version deletes it (``catalog.signoff``)."""

    __tablename__ = "signoff_approval"
    __table_args__ = (UniqueConstraint("version_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("module_version.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(
        ForeignKey("signoff_reviewer.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    role_name: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)
def live_version(now: datetime | None = None) -> ColumnElement[bool]:
    """SQL condition: the version is published and has gone live (no ``go_live_at``, or
    one at or before ``now``, default the current UTC time). What learners may take and
    what counts for retraining; a version published with a later go-live date waits."""
    moment = now or utcnow()
    return and_(ModuleVersion.status == "published",
                or_(ModuleVersion.go_live_at.is_(None), ModuleVersion.go_live_at <= moment))
