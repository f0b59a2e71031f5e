"""Deep Linking 2.0: an instructor picks modules in the tool; the LMS receives resource links.

The launch (``lti/views.py``) hands a validated ``LtiDeepLinkingRequest`` to
:func:`start_request`, which checks the role and the platform's settings and returns a plain
dict kept in the session for the picker. :func:`build_response` turns the chosen modules into
the signed ``LtiDeepLinkingResponse`` JWT that the browser form-posts to the platform's
``deep_link_return_url``.

Each item is an ``ltiResourceLink`` carrying ``custom: {"module": slug}`` (never an empty
``custom`` object: Moodle 4.5 fails with a server error on ``"custom": {}``, which pylti1p3's
resource class sends by default) and the module on the launch URL too, and a ``lineItem``
when the platform offers AGS, so grades have a column from the start.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from sqlalchemy import select

from lms_plugin.catalog import services as catalog
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.lti.ags import SCORE_MAXIMUM, TAG
from lms_plugin.lti.keys import current_signing_key
from lms_plugin.lti.launch import AGS_CLAIM, CLAIM, course_rights
from lms_plugin.lti.models import LtiPlatform
from lms_plugin.lti.tool import LaunchRejected

DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
SETTINGS_CLAIM = DL_CLAIM + "deep_linking_settings"
RESOURCE_LINK = "ltiResourceLink"
RESPONSE_LIFETIME = 600


def may_place_content(roles: Iterable[Any], role_mapping: Mapping[str, Any] | None = None
                      ) -> bool:
    """Whether these LTI roles make the person an author of the course they came from
    (the one mapping, :func:`lti_rights`: Instructor, ContentDeveloper, Faculty, a course
    Administrator; never a TeachingAssistant or Mentor)."""
    return "author" in course_rights(roles, role_mapping)


def start_request(platform_id: int, claims: Mapping[str, Any],
                  role_mapping: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a validated deep-linking launch; the request to keep until the response.

    ``role_mapping``: the registration's overrides. Raises :class:`LaunchRejected`: 403
    for anyone not an author of the course, 400 when the platform accepts no resource links
    or gave no return URL. Writes nothing.
    """
    if not may_place_content(claims.get(CLAIM + "roles") or [], role_mapping):
        raise LaunchRejected("only instructors and content developers can add training "
                             "modules to a course", 403)
    settings = claims.get(SETTINGS_CLAIM)
    if not isinstance(settings, Mapping) or not settings.get("deep_link_return_url"):
        raise LaunchRejected("the deep-linking request has no deep_link_return_url", 400)
    accept_types = [t for t in settings.get("accept_types") or [] if isinstance(t, str)]
    if RESOURCE_LINK not in accept_types:
        raise LaunchRejected("the LMS does not accept LTI resource links here "
                             f"(accept_types: {', '.join(accept_types) or 'none'})", 400)
    ags = claims.get(AGS_CLAIM)
    return {
        "platform_id": platform_id,
        "deployment_id": str(claims.get(CLAIM + "deployment_id") or ""),
        "return_url": str(settings["deep_link_return_url"]),
        "accept_multiple": settings.get("accept_multiple") is not False,
        "data": settings.get("data"),
        "ags": isinstance(ags, Mapping) and bool(ags.get("scope") or ags.get("lineitems")),
        "title": str(settings.get("title") or ""),
    }


def picker_modules(organisation_id: int, *, system: str | None = None,
                   audience: str | None = None, max_minutes: int | None = None,
                   q: str | None = None) -> list[tuple[Module, ModuleVersion]]:
    """Published modules matching the picker's filters, with the version a link would open
    (one statement whatever the size of the catalogue)."""
    return catalog.list_modules_with_versions(organisation_id, system=system,
                                              audience=audience, max_minutes=max_minutes, q=q)


def picker_audiences(organisation_id: int) -> list[str]:
    """Every job role some published module lists (the audience filter's choices)."""
    seen: set[str] = set()
    for _, version in picker_modules(organisation_id):
        seen.update(a for a in version.audience or [] if isinstance(a, str))
    return sorted(seen)


def content_item(module: Module, version: ModuleVersion, launch_url: str,
                 with_line_item: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": RESOURCE_LINK,
        "title": version.title,
        "text": version.summary or "",
        "url": f"{launch_url}?module={module.slug}",
        "custom": {"module": module.slug},  # never empty: Moodle 4.5 fails on {}
    }
    if with_line_item:
        item["lineItem"] = {"scoreMaximum": SCORE_MAXIMUM, "label": version.title[:250],
                            "resourceId": module.slug, "tag": TAG}
    return item


def build_response(request: Mapping[str, Any], organisation_id: int, slugs: list[str],
                   launch_url: str) -> tuple[str, str]:
    """(return URL, signed response JWT) for the chosen modules, in the order chosen.

    An empty choice is a valid answer (the instructor cancelled). Unknown or unpublished
    slugs, or several when the platform accepts one, are refused with nothing signed.
    """
    platform = db.session.get(LtiPlatform, request["platform_id"])
    if platform is None or platform.organisation_id != organisation_id:
        raise ValidationFailed("this deep-linking request belongs to another organisation",
                               field="module")
    chosen = list(dict.fromkeys(s.strip() for s in slugs if s and s.strip()))
    if len(chosen) > 1 and not request.get("accept_multiple", True):
        raise ValidationFailed("the LMS accepts only one module here; choose one",
                               field="module")
    items = []
    for slug in chosen:
        module = db.session.scalar(select(Module).where(
            Module.organisation_id == organisation_id, Module.slug == slug))
        version = catalog.current_version(module) if module is not None else None
        if module is None or version is None:
            raise ValidationFailed(f"there is no published module {slug!r}", field="module")
        items.append(content_item(module, version, launch_url, bool(request.get("ags"))))
    key = current_signing_key()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": platform.client_id,
        "aud": platform.issuer,
        "azp": platform.client_id,
        "iat": now,
        "exp": now + RESPONSE_LIFETIME,
        "nonce": uuid.uuid4().hex,
        CLAIM + "message_type": "LtiDeepLinkingResponse",
        CLAIM + "version": "1.3.0",
        CLAIM + "deployment_id": request["deployment_id"],
        DL_CLAIM + "content_items": items,
    }
    if request.get("data") is not None:
        claims[DL_CLAIM + "data"] = request["data"]
    if items:
        claims[DL_CLAIM + "msg"] = (f"Added {len(items)} training module"
                                    f"{'s' if len(items) != 1 else ''}.")
    token = jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})
    return request["return_url"], token
