"""Shared set-up for the LTI Advantage service tests: a fake LMS wired to a test platform.

Import the fixtures into a test module with ``from tests.lti.ags_helpers import *``-style
explicit names (pytest finds fixtures imported into a module).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from lms_plugin.extensions import db
from lms_plugin.lti.keys import current_signing_key
from lms_plugin.lti.launch import AGS_CLAIM, NRPS_CLAIM
from lms_plugin.lti.models import LtiPlatform, LtiResourceLink
from tests.lti.fake_services import FakeLms, FakeLmsServer
from tests.lti.platform import LIS, TestPlatform

AGS_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]
LEARNER = [LIS + "membership#Learner"]
INSTRUCTOR = [LIS + "membership#Instructor"]


@dataclass
class Services:
    """A registered test platform whose service endpoints are the fake LMS."""

    app: Any
    platform: TestPlatform
    lms: FakeLms

    @property
    def platform_id(self) -> int:
        return self.platform.platform_id

    def launch(self, launcher, client, *, sub: str, module: str, link: str = "link-1",
               context: str = "course-1", lineitem: str | None = None,
               with_lineitems: bool = True, roles: list[str] | None = None,
               nrps: bool = False):
        """An LTI launch offering AGS (and optionally NRPS) for ``module`` on ``link``."""
        ags: dict[str, Any] = {"scope": AGS_SCOPES}
        if with_lineitems:
            ags["lineitems"] = self.lms.lineitems_url(context)
        if lineitem:
            ags["lineitem"] = lineitem
        claims: dict[str, Any] = {
            AGS_CLAIM: ags,
            "lti:custom": {"module": module},
            "lti:resource_link": {"id": link, "title": f"Module {module}"},
            "lti:context": {"id": context, "label": context, "title": f"Course {context}"},
        }
        if nrps:
            claims[NRPS_CLAIM] = {"context_memberships_url": self.lms.memberships_url(context),
                                  "service_versions": ["2.0"]}
        response = launcher.launch(client, self.platform, claims, sub=sub,
                                   roles=roles or LEARNER)
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def link(self, link: str = "link-1") -> LtiResourceLink:
        return db.session.scalar(select(LtiResourceLink).where(
            LtiResourceLink.resource_link_id == link))


@pytest.fixture
def fake_lms() -> Iterator[FakeLms]:
    lms = FakeLms()
    server = FakeLmsServer(lms)
    yield lms
    server.close()


@pytest.fixture
def services(app, make_platform, fake_lms) -> Iterator[Services]:
    """A platform whose token endpoint is the fake LMS, which trusts the tool's key."""
    platform = make_platform()
    saved = {name: app.config.get(name) for name in ("LMS_OUTBOUND_DEADLINE",
                                                      "LMS_JOB_GIVE_UP_AFTER")}
    with app.app_context():
        row = db.session.get(LtiPlatform, platform.platform_id)
        row.auth_token_url = fake_lms.token_url
        key = current_signing_key()
        db.session.commit()
        fake_lms.tool_keys[key.kid] = key.public_pem
    fake_lms.client_id = platform.client_id
    yield Services(app, platform, fake_lms)
    app.config.update(saved)


def sample_context(app, organisation: str = "General Hospital") -> int:
    """A committed LMS course (offering NRPS) of ``organisation``: for URL-map walks."""
    from lms_plugin.accounts.services import get_or_create_organisation
    from lms_plugin.lti.models import LtiContext
    from lms_plugin.lti.services import register_platform

    with app.app_context():
        get_or_create_organisation(organisation)  # platforms join existing ones only
        platform = register_platform(
            issuer="https://sample-lms.example", client_id="sample-client",
            auth_login_url="https://sample-lms.example/auth",
            auth_token_url="https://sample-lms.example/token",
            key_set_url="https://sample-lms.example/jwks", deployment_ids=["1"],
            organisation_name=organisation)
        context = LtiContext(platform_id=platform.id, context_id="sample-course",
                             title="Sample course",
                             memberships_url="https://sample-lms.example/memberships")
        db.session.add(context)
        db.session.commit()
        return context.id
