"""LTI 1.3 data: platform registrations, deployments, tool keys, identities, courses, links.

Registrations live in the database (not pylti1p3's JSON file) and are keyed by
(issuer, client_id): hosted Canvas uses the one issuer ``https://canvas.instructure.com`` for
every customer, so the issuer alone never identifies a platform. Each platform belongs to one
organisation; people launched from it live in that organisation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.accounts.models import Organisation, User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db


class LtiPlatform(db.Model):
    """One registration of this tool in one LMS (Moodle site, Canvas developer key).

    ``key_set_url`` (the platform's JWKS) is the normal way to verify id_tokens; a static
    ``public_key_pem`` is the alternative for platforms configured with a pasted key.
    ``token_audience`` is the ``aud`` for client-credentials JWTs when the platform wants
    something other than its token URL (Moodle and Canvas do not; some others do).
    ``role_mapping`` overrides the default LTI-role → tool-role table, e.g.
    ``{"Mentor": ["learner"], "urn:lti:role:ims/lis/Staff": ["author", "learner"]}``.
    What a launch's roles give is scoped to the course (context) they came from and taken
    from the enrolment's roles at every request (:mod:`lms_plugin.lti.course_scope`); only
    ``grant_org_roles`` (off by default, set by an LMS administrator who trusts this
    platform's role assignments organisation-wide) turns mapped roles into organisation-wide
    grants, which every launch then refreshes (added and removed).

    ``allowed_hosts`` lists host names, besides the issuer, token and key-set hosts, whose
    service URLs (AGS, NRPS) the tool may call for this registration (hosted Canvas serves
    them from the tenant's own host); see :mod:`lms_plugin.outbound`.
    """

    __tablename__ = "lti_platform"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(500))
    auth_token_url: Mapped[str] = mapped_column(String(500))
    key_set_url: Mapped[str | None] = mapped_column(String(500))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    token_audience: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    role_mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    grant_org_roles: Mapped[bool] = mapped_column(default=False, server_default=false())
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    deployments: Mapped[list[LtiDeployment]] = relationship(
        back_populates="platform", lazy="selectin", cascade="all, delete-orphan",
        order_by="LtiDeployment.id",
    )

    @property
    def deployment_ids(self) -> list[str]:
        return [d.deployment_id for d in self.deployments]

    @property
    def service_hosts(self) -> list[str]:
        """Host names this registration's service URLs may use: issuer, token and key-set
        hosts, then the admin's ``allowed_hosts`` (issue 10.1)."""
        hosts: list[str] = []
        for url in (self.issuer, self.auth_token_url, self.key_set_url):
            try:
                host = urlsplit(url or "").hostname
            except ValueError:
                host = None
            if host and host.lower() not in hosts:
                hosts.append(host.lower())
        hosts += [h for h in self.allowed_hosts or [] if h not in hosts]
        return hosts


class LtiDeployment(db.Model):
    """A deployment of the tool inside a platform (Moodle: the tool type id)."""

    __tablename__ = "lti_deployment"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    platform: Mapped[LtiPlatform] = relationship(back_populates="deployments")


class LtiToolKey(db.Model):
    """An RSA key pair the tool signs with (deep-linking responses, service tokens).

    The private key is stored encrypted at rest: AES-256-GCM under a key derived from the
    app's ``SECRET_KEY`` with HKDF-SHA256 (see :mod:`lms_plugin.lti.keys`). A database dump
    alone therefore does not reveal it; keep ``SECRET_KEY`` stable or the keys become
    unusable (rotate with ``lms-plugin keys rotate`` after changing it).

    Lifecycle: ``active`` (the newest signs and is published), ``retiring`` (still published
    in the JWKS until ``retire_after`` so platforms that cached it keep verifying), then
    ``retired`` (no longer published nor used).
    """

    __tablename__ = "lti_tool_key"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'retiring', 'retired')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    public_pem: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retire_after: Mapped[datetime | None]


class LtiIdentity(db.Model):
    """Who a person is on one platform: (organisation, issuer, sub) → our user.

    The organisation is part of the key because hosted Canvas tenants share an issuer and
    ``sub`` values are only unique within one platform: two tenants never share a user.
    """

    __tablename__ = "lti_identity"
    __table_args__ = (UniqueConstraint("organisation_id", "issuer", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    issuer: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    platform_id: Mapped[int | None] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_launch_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class LtiContext(db.Model):
    """A course (LTI context) on a platform; kept for roster (NRPS) and grade (AGS) calls."""

    __tablename__ = "lti_context"
    __table_args__ = (UniqueConstraint("platform_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id", ondelete="CASCADE"))
    context_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    label: Mapped[str] = mapped_column(String(255), default="")
    memberships_url: Mapped[str | None] = mapped_column(String(1000))
    # NRPS roster sync (lti/nrps.py): when it last ran, and the platform's "differences"
    # link from that run (only changes since then), where the platform offers one.
    roster_synced_at: Mapped[datetime | None]
    roster_differences_url: Mapped[str | None] = mapped_column(String(1000))
    # Set when the last full roster looked truncated (fewer than LMS_ROSTER_MIN_SHARE of the
    # active members): nobody was removed, and the course page shows this text.
    roster_warning: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    platform: Mapped[LtiPlatform] = relationship()


class LtiResourceLink(db.Model):
    """A placement of the tool in a course; carries the module it opens and AGS endpoints."""

    __tablename__ = "lti_resource_link"
    __table_args__ = (UniqueConstraint("context_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    context_id: Mapped[int] = mapped_column(ForeignKey("lti_context.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    module_slug: Mapped[str | None] = mapped_column(String(64))
    lineitem_url: Mapped[str | None] = mapped_column(String(1000))
    lineitems_url: Mapped[str | None] = mapped_column(String(1000))
    ags_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    context: Mapped[LtiContext] = relationship()


class LtiMembership(db.Model):
    """A person's enrolment in a course as last seen at launch or roster sync (roles as the
    LMS sent them). ``last_launch_at`` is empty for people the roster listed who never
    launched; people removed from the course are marked inactive, never deleted."""

    __tablename__ = "lti_membership"
    __table_args__ = (UniqueConstraint("user_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    context_id: Mapped[int] = mapped_column(
        ForeignKey("lti_context.id", ondelete="CASCADE"), index=True
    )
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_launch_at: Mapped[datetime | None]  # set by the launch; empty: never launched
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    removed_at: Mapped[datetime | None]


class LtiStoredValue(db.Model):
    """Short-lived LTI state (OIDC state, nonces, launch data) when Redis is not configured.

    Rows expire; a used nonce stays until its expiry so a replayed id_token is refused.
    """

    __tablename__ = "lti_stored_value"
    __table_args__ = (Index("ix_lti_stored_value_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
