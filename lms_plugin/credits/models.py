"""Continuing-education (CE) credit: activities, evaluations, claims, certificates, CE profiles.

Retention (DESIGN "Continuing-education credit"; ACCME, ANCC and ACPE all require the
provider to keep attendance/credit records for at least six years): no foreign key here
cascades from a person or a module. The database refuses to delete a person or module that
still has credit records (``RESTRICT``); removing a person goes through
``credits.services.anonymise_person``, which blanks what the six-year record does not need.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.catalog.credit_block import CREDIT_TYPES  # noqa: F401  (re-exported)
from lms_plugin.db import utcnow
from lms_plugin.extensions import db

#: Professions a learner declares on their CE profile (code -> label).
PROFESSIONS: dict[str, str] = {
    "physician": "Physician (MD/DO)",
    "nurse": "Nurse",
    "pharmacist": "Pharmacist",
    "pharmacy_technician": "Pharmacy technician",
    "other": "Other health professional",
}
#: Which credit types each profession may claim. AMA PRA Category 1 is for physicians
#: (ACCME/AMA PRA booklet); ANCC contact hours for nurses; ACPE for pharmacists and
#: technicians (the UAN's last letter, P or T, says which); CAHIMS/CPHIMS CE hours (HIMSS)
#: are open to every profession; "other" carries the provider's own designation.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "physician": frozenset({"ama_pra_1", "cphims", "other"}),
    "nurse": frozenset({"ancc", "cphims", "other"}),
    "pharmacist": frozenset({"acpe", "cphims", "other"}),
    "pharmacy_technician": frozenset({"acpe", "cphims", "other"}),
    "other": frozenset({"cphims", "other"}),
}
ACPE_AUDIENCES = ("pharmacist", "technician")
QUESTION_KINDS = ("likert", "text", "change_practice")
CLAIM_STATUSES = ("active", "revoked")


class CreditActivity(db.Model):
    """A CE activity on one module ("enduring material"), covering some of its versions.

    ``versions``: the module version numbers a completion must be on to count (empty list =
    every version). Dates are calendar dates in the organisation's time zone; claims are
    accepted from ``release_date`` to ``termination_date`` inclusive. ``faculty``: a list of
    ``{"name", "credentials", "disclosure"}`` (disclosure "none" when there is none).
    """

    __tablename__ = "credit_activity"
    __table_args__ = (
        UniqueConstraint("organisation_id", "module_id"),
        CheckConstraint("acpe_audience IS NULL OR acpe_audience IN ('pharmacist', "
                        "'technician')", name="acpe_audience_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="RESTRICT"),
                                           index=True)
    versions: Mapped[list[int]] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(String(300))
    provider_name: Mapped[str] = mapped_column(String(200))
    provider_address: Mapped[str] = mapped_column(Text, default="")
    accreditation_statement: Mapped[str] = mapped_column(Text, default="")
    designation_statement: Mapped[str] = mapped_column(Text, default="")
    objectives: Mapped[list[str]] = mapped_column(JSON, default=list)
    faculty: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    format: Mapped[str] = mapped_column(String(50), default="enduring material")
    acpe_uan: Mapped[str | None] = mapped_column(String(30))
    acpe_audience: Mapped[str | None] = mapped_column(String(20))
    release_date: Mapped[date]
    last_review_date: Mapped[date]
    termination_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    offers: Mapped[list[CreditOffer]] = relationship(
        back_populates="activity", order_by="CreditOffer.id", cascade="all, delete-orphan",
        lazy="selectin")
    questions: Mapped[list[EvaluationQuestion]] = relationship(
        back_populates="activity", order_by="EvaluationQuestion.position",
        cascade="all, delete-orphan")


class CreditOffer(db.Model):
    """One credit type an activity designates, with its maximum (hours/credits, 0.25 grid)."""

    __tablename__ = "credit_offer"
    __table_args__ = (
        UniqueConstraint("activity_id", "credit_type"),
        CheckConstraint("credit_type IN ('ama_pra_1', 'ancc', 'acpe', 'cphims', 'other')",
                        name="credit_type_known"),
        CheckConstraint("max_credits > 0", name="max_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("credit_activity.id"))
    credit_type: Mapped[str] = mapped_column(String(20))
    max_credits: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    designation: Mapped[str] = mapped_column(String(200), default="")  # "other" only

    activity: Mapped[CreditActivity] = relationship(back_populates="offers")


class EvaluationQuestion(db.Model):
    """An evaluation item: a Likert statement (1-5), free text, or "will you change your
    practice?" (yes / no / unsure, with an optional comment)."""

    __tablename__ = "evaluation_question"
    __table_args__ = (
        UniqueConstraint("activity_id", "position"),
        CheckConstraint("kind IN ('likert', 'text', 'change_practice')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("credit_activity.id"))
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(default=True)

    activity: Mapped[CreditActivity] = relationship(back_populates="questions")


class EvaluationResponse(db.Model):
    """A learner's submitted evaluation. ``answers``: ``{str(question_id): value}``.

    ``user_id`` only records that the person evaluated (the claim rule); outcome reports
    read ``answers`` without it, and anonymising a person sets it to NULL.
    """

    __tablename__ = "evaluation_response"
    __table_args__ = (UniqueConstraint("activity_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("credit_activity.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="RESTRICT"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class CeProfile(db.Model):
    """The learner's CE identifiers, stored only when they give them (at a claim).

    ``npi``: 10 digits (CMS NPPES); ``nabp_eprofile_id``: NABP e-Profile ID (CPE Monitor);
    ``birth_month``/``birth_day``: MMDD the registries use to match a person;
    ``consent_to_report``: the learner agreed that their credits are sent to the registries.
    """

    __tablename__ = "ce_profile"
    __table_args__ = (
        CheckConstraint("profession IN ('physician', 'nurse', 'pharmacist', "
                        "'pharmacy_technician', 'other')", name="profession_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"),
                                         unique=True)
    profession: Mapped[str] = mapped_column(String(30))
    npi: Mapped[str | None] = mapped_column(String(10))
    licence_state: Mapped[str | None] = mapped_column(String(2))
    licence_number: Mapped[str | None] = mapped_column(String(40))
    nabp_eprofile_id: Mapped[str | None] = mapped_column(String(20))
    birth_month: Mapped[int | None]
    birth_day: Mapped[int | None]
    consent_to_report: Mapped[bool] = mapped_column(default=False)
    consent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CreditClaim(db.Model):
    """Credit a learner claimed for an activity (the six-year record).

    ``current`` is True for the claim in force and NULL once revoked: the unique constraint
    on (activity, user, type, current) then allows one claim in force per person, activity
    and credit type, and any number of revoked ones (NULLs are distinct in SQL), on SQLite
    and PostgreSQL alike. ``learner_name`` is a snapshot: the record keeps the name the
    credit was issued to even if the account is anonymised. ``completed_on``: the date of the
    completion (post-test pass) the claim rests on.
    """

    __tablename__ = "credit_claim"
    __table_args__ = (
        UniqueConstraint("activity_id", "user_id", "credit_type", "current"),
        CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
        CheckConstraint("credit_type IN ('ama_pra_1', 'ancc', 'acpe', 'cphims', 'other')",
                        name="credit_type_known"),
        CheckConstraint("credits > 0", name="credits_positive"),
        Index("ix_credit_claim_org_claimed", "organisation_id", "claimed_at"),
        Index("ix_credit_claim_user", "user_id", "completed_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("credit_activity.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    completion_id: Mapped[int | None] = mapped_column(
        ForeignKey("completion.id", ondelete="RESTRICT"))
    credit_type: Mapped[str] = mapped_column(String(20))
    credits: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    learner_name: Mapped[str] = mapped_column(String(200))
    profession: Mapped[str] = mapped_column(String(30))
    completed_on: Mapped[date]
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="active")
    current: Mapped[bool | None] = mapped_column(default=True)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("credit_claim.id"))

    activity: Mapped[CreditActivity] = relationship(lazy="joined")
    certificate: Mapped[Certificate | None] = relationship(back_populates="claim",
                                                           uselist=False)


class Certificate(db.Model):
    """The issued PDF of a claim: immutable bytes and their SHA-256, found by ``code``.

    Revocation is the claim's status; the stored bytes never change.
    """

    __tablename__ = "certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("credit_claim.id"), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded on download
    sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)

    claim: Mapped[CreditClaim] = relationship(back_populates="certificate", lazy="joined")
