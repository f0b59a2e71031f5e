"""The demo LMS's own data: its signing key, its course's links, its gradebook.

One demo platform per installation (``lms_plugin.demo``), so these rows belong to the demo
organisation (``Organisation.is_demo``) as a whole and carry no organisation id of their
own. They play the LMS's side: what Moodle would store in its database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lms_plugin.db import utcnow
from lms_plugin.extensions import db


class DemoKey(db.Model):
    """The demo platform's RSA key (it signs id_tokens). The private key is encrypted at
    rest like the tool's own keys (:func:`lms_plugin.lti.keys.encrypt_private_pem`)."""

    __tablename__ = "demo_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DemoLink(db.Model):
    """A link in the demo course (a resource link): one per module the instructor added
    through the deep-linking picker (the content item the tool signed)."""

    __tablename__ = "demo_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(250))
    url: Mapped[str] = mapped_column(String(500))
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lineitem_label: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def resource_link_id(self) -> str:
        return f"demo-link-{self.id}"


class DemoLineItem(db.Model):
    """A gradebook column of the demo course (AGS line item)."""

    __tablename__ = "demo_lineitem"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(250))
    score_maximum: Mapped[float] = mapped_column(default=100.0)
    resource_id: Mapped[str | None] = mapped_column(String(255))
    resource_link_id: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DemoScore(db.Model):
    """One score the tool posted to a line item (AGS score service), kept as received."""

    __tablename__ = "demo_score"

    id: Mapped[int] = mapped_column(primary_key=True)
    lineitem_id: Mapped[int] = mapped_column(
        ForeignKey("demo_lineitem.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    score_given: Mapped[float | None]
    score_maximum: Mapped[float | None]
    activity_progress: Mapped[str] = mapped_column(String(32))
    grading_progress: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
