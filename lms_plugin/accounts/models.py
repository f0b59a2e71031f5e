"""Organisations, users, role grants, local credentials and audit events."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.db import utcnow
from lms_plugin.extensions import db

#: Which graded attempt the LMS gradebook shows (see ``learning.services.policy_score``).
#: "highest": the highest graded attempt of the current validity period (Moodle's quiz
#: default, "Highest grade"); "most_recent": the latest graded attempt (Moodle's "Last attempt").
GRADE_POLICY_HIGHEST = "highest"
GRADE_POLICY_MOST_RECENT = "most_recent"
GRADE_POLICIES = (GRADE_POLICY_HIGHEST, GRADE_POLICY_MOST_RECENT)


class Organisation(db.Model):
    """A health system (tenant). Every record a person sees belongs to exactly one."""

    __tablename__ = "organisation"
    __table_args__ = (
        CheckConstraint("grade_policy IN ('highest', 'most_recent')",
                        name="grade_policy_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    grade_policy: Mapped[str] = mapped_column(String(20), default=GRADE_POLICY_HIGHEST,
                                              server_default=GRADE_POLICY_HIGHEST)
    #: The built-in demo LMS's own organisation (``lms_plugin.demo``, issue 12.3): never
    #: chosen when a command or a registration names no organisation.
    is_demo: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: An assignment is "expiring soon" this many days before its completion lapses (issue 14).
    expiring_soon_days: Mapped[int] = mapped_column(default=30, server_default="30")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


def login_id(user_id: int, session_token: str) -> str:
    """The Flask-Login id: it carries the session token so stale sessions are refused."""
    return f"{user_id}:{session_token}"


class SignedInUser(UserMixin):
    """Enough of a :class:`User` for ``login_user`` when the row was read without the ORM
    (the LTI launch's fast path). Only the request that signs the person in sees it; every
    later request loads the real :class:`User` through the user loader."""

    def __init__(self, user_id: int, session_token: str, active: bool) -> None:
        self.id = user_id
        self.session_token = session_token
        self.active = active

    def get_id(self) -> str:
        return login_id(self.id, self.session_token)

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active


class User(UserMixin, db.Model):
    """A person: staff arriving by LTI, or a local account (admin, officer)."""

    __tablename__ = "user_account"  # "user" is reserved in PostgreSQL
    # The people list: one organisation's people by name, keyset-paginated on (name, id).
    __table_args__ = (Index("ix_user_account_org_name", "organisation_id", "name", "id"),
                      UniqueConstraint("organisation_id", "employee_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    job_role: Mapped[str | None] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(100))
    facility: Mapped[str | None] = mapped_column(String(100))
    # Staff profile (issue 14): HR's id (unique per organisation), hire date, line manager.
    # CE identifiers (profession, NPI, licence…) are not here: ``credits`` asks at claim time.
    employee_id: Mapped[str | None] = mapped_column(String(64))
    hire_date: Mapped[date | None]
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    # A leaver: inactive since then, never deleted (their records stay in history).
    left_at: Mapped[datetime | None]
    # Part of the Flask-Login id: changing it (password change, "sign out everywhere")
    # invalidates every existing session of this user.
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", lazy="selectin", cascade="all, delete-orphan"
    )
    credential: Mapped[LocalCredential | None] = relationship(
        back_populates="user", uselist=False, cascade="all, delete-orphan"
    )

    def get_id(self) -> str:
        return login_id(self.id, self.session_token)

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    @property
    def role_names(self) -> frozenset[str]:
        """Roles held in the user's own organisation."""
        return frozenset(g.role for g in self.grants if g.organisation_id == self.organisation_id)

    def has_role(self, role: str) -> bool:
        return role in self.role_names


#: Where a grant came from: ``local`` (an admin, the CLI) or ``lti`` (derived from a
#: launch's roles; the next launch refreshes it, adding and removing).
GRANT_SOURCES = ("local", "lti")


class RoleGrant(db.Model):
    """A role a person holds in one organisation (several per person are normal).

    Organisation-wide. Rights an LTI launch gives in one course are not grants: they are
    read from the course enrolment at every request (``lti.course_scope``)."""

    __tablename__ = "role_grant"
    __table_args__ = (
        UniqueConstraint("user_id", "organisation_id", "role"),
        # The people list filtered by role reads that role's holders from here (few authors
        # or admins among 50,000 learners); the unique constraint leads with user_id.
        Index("ix_role_grant_org_role", "organisation_id", "role", "user_id"),
        CheckConstraint("role IN ('learner', 'author', 'officer', 'admin')", name="role_known"),
        CheckConstraint("source IN ('local', 'lti')", name="source_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    role: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants")


class LocalCredential(db.Model):
    """Email + password for local login (admins, officers); LTI users usually have none."""

    __tablename__ = "local_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), unique=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="credential")


class UserSession(db.Model):
    """One signed-in browser (server-side session record; ``accounts.sessions``).

    The cookie carries a random session id; this row is keyed by its SHA-256, so a copy of
    the table gives no usable cookie. Deleting the row ends the session at once (logout,
    an admin's sign-out, a password change); idle and absolute expiry are checked on every
    request and expired rows are pruned by a scheduled job. Used when Redis is not set.
    """

    __tablename__ = "user_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the sid
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RateLimitHit(db.Model):
    """One counted event of a rate limit (a failed sign-in…) when Redis is not configured,
    so every web process shares the counts (``accounts.limits_storage``). Epoch seconds, as
    the ``limits`` library counts; rows are deleted once past ``expires_at``."""

    __tablename__ = "rate_limit_hit"
    __table_args__ = (Index("ix_rate_limit_hit_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    at: Mapped[float]
    expires_at: Mapped[float] = mapped_column(index=True)


class AuditEvent(db.Model):
    """Who changed what, when: kept for officers and for credit-record retention.

    Append-only: no route edits or deletes an entry, and on PostgreSQL a trigger refuses
    UPDATE and DELETE on the table (:data:`AUDIT_APPEND_ONLY_DDL`, migration 0018_admin).
    The audit page filters by person, action or target and pages newest first on
    (created_at, id): each filter has an index leading with the organisation and ending
    with (created_at, id), so a page at a million events reads only its own rows.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_org_created", "organisation_id", "created_at"),
        Index("ix_audit_event_org_actor", "organisation_id", "actor_id", "created_at", "id"),
        Index("ix_audit_event_org_action", "organisation_id", "action", "created_at", "id"),
        Index("ix_audit_event_org_target", "organisation_id", "target_type", "target_id",
              "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(lazy="joined")


class PasswordResetToken(db.Model):
    """One emailed "reset your password" link (issue 12 item 7).

    Only the SHA-256 of the token is stored (a copy of the table resets nobody's password).
    Single use: ``used_at`` is set by one conditional UPDATE, so two tabs submitting the same
    link change the password once. Expires ``accounts.password_reset.TOKEN_LIFETIME`` after
    it was issued; asking again replaces every earlier unused link of the person.
    """

    __tablename__ = "password_reset_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
#: PostgreSQL: the audit table refuses UPDATE and DELETE (issue 13, "Audit log page"). A
#: row-level BEFORE trigger raising an exception aborts the statement (PostgreSQL manual,
#: "Trigger Functions" in PL/pgSQL: raising an error aborts the operation). TRUNCATE is
#: not refused: removing the whole log is a database owner's act, not an application one.
AUDIT_APPEND_ONLY_DDL = (
    """CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = 'audit_event is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()""",
)


def _audit_append_only(target, connection, **kw) -> None:
    """Create the trigger with the table (``create_all``: tests, first install by models)."""
    if connection.dialect.name == "postgresql":
        for statement in AUDIT_APPEND_ONLY_DDL:
            connection.exec_driver_sql(statement)


event.listen(AuditEvent.__table__, "after_create", _audit_append_only)
