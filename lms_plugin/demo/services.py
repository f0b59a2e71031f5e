"""The built-in demo LMS (issue 12.3): a small LTI 1.3 platform served by the tool itself.

A team evaluating the tool has no Moodle at hand. The demo plays the platform's side of
every LTI exchange, over real HTTP, so the tool's own code runs unchanged:

* **launch** (1EdTech LTI 1.3 core, "OpenID Connect Launch Flow"): the demo course page
  sends the browser to the tool's ``/lti/login`` (third-party initiated login); the tool
  redirects to the demo's auth endpoint (:func:`authorize`), which answers with a form that
  posts an id_token signed with the demo's own RSA key to the tool's launch URL. The tool
  fetches the demo's key set from ``/demo/jwks`` like any platform's.
* **deep linking** (Deep Linking 2.0): the instructor's launch is an
  ``LtiDeepLinkingRequest``; the tool's signed ``LtiDeepLinkingResponse`` comes back to
  :func:`accept_deep_link_response`, which verifies it against the tool's published keys
  and adds the links (and their line items) to the demo course.
* **grades** (AGS 2.0) and **roster** (NRPS 2.0): the tool's worker asks the demo's token
  endpoint for an access token with a signed client assertion (:func:`issue_token`, RFC 7523
  ``private_key_jwt``), then reads and creates line items and posts scores
  (:func:`post_score`), and reads the roster (:func:`memberships`).

It lives in its own organisation (``Organisation.is_demo``), created here and never chosen
by commands that name no organisation. It is served only when ``LMS_DEMO`` is on.
Services flush and never commit; the views commit.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from lms_plugin.accounts.models import Organisation
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog import services as catalog
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import Module
from lms_plugin.demo.models import DemoKey, DemoLineItem, DemoLink, DemoScore
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.lti import keys as tool_keys
from lms_plugin.lti import services as lti_services
from lms_plugin.lti.models import LtiContext, LtiPlatform

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
AGS_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = AGS_SCOPE + "lineitem"
SCOPE_LINEITEM_READONLY = AGS_SCOPE + "lineitem.readonly"
SCOPE_RESULT = AGS_SCOPE + "result.readonly"
SCOPE_SCORE = AGS_SCOPE + "score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ALL_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT, SCOPE_SCORE, SCOPE_NRPS)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

ORGANISATION_SLUG = "demo-lms"
ORGANISATION_NAME = "Demo Hospital (demo LMS)"
CLIENT_ID = "lms-plugin-demo"
DEPLOYMENT_ID = "demo-1"
CONTEXT = {"id": "demo-course", "label": "DEMO-101", "title": "Demo course: EHR go-live training",
           "type": [LIS + "course#CourseOffering"]}
#: The first link of the demo course, so a learner can launch before anyone adds modules.
FIRST_MODULE = "bcma-medication-administration"
ID_TOKEN_LIFETIME = 300
ACCESS_TOKEN_LIFETIME = 3600
LAUNCH_HINT_AGE = 600  # seconds a course page's launch link stays usable


@dataclass(frozen=True)
class Persona:
    """A person of the demo course: their LMS user id and the LTI roles they launch with."""

    key: str
    sub: str
    name: str
    given_name: str
    family_name: str
    email: str
    roles: tuple[str, ...]
    what: str  # what launching as this person shows


PERSONAS: dict[str, Persona] = {p.key: p for p in (
    Persona("nurse", "demo-nurse", "Nia Okafor", "Nia", "Okafor", "nia.okafor@demo.invalid",
            (LIS + "membership#Learner", LIS + "institution/person#Student"),
            "a learner: opens a module, takes its quiz; the grade comes back here"),
    Persona("instructor", "demo-instructor", "Sam Reyes", "Sam", "Reyes",
            "sam.reyes@demo.invalid", (LIS + "membership#Instructor",),
            "an instructor: adds training modules to this course (deep-linking picker)"),
    Persona("officer", "demo-officer", "Lee Chen", "Lee", "Chen", "lee.chen@demo.invalid",
            (LIS + "institution/person#Administrator", LIS + "membership#Learner"),
            "a compliance officer: sees the organisation's training records"),
)}


def base_url() -> str:
    return current_app.config["LMS_BASE_URL"].rstrip("/")


def urls() -> dict[str, str]:
    """The demo platform's endpoints (all under ``/demo/``, see ``outbound.DEMO_PATH``)."""
    base = base_url() + "/demo"
    return {"issuer": base, "auth": base + "/auth", "token": base + "/token",
            "jwks": base + "/jwks", "lineitems": base + "/lineitems",
            "memberships": base + "/memberships", "deep_link_return": base + "/deep-link-return",
            "course": base + "/"}


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"lms-demo-{purpose}")


# ------------------------------------------------------------------------------ setup


def demo_organisation() -> Organisation | None:
    return db.session.scalar(select(Organisation).where(Organisation.is_demo.is_(True))
                             .order_by(Organisation.id).limit(1))


def _signing_key() -> tuple[str, str]:
    """(kid, private PEM) of the demo platform, created on first use."""
    row = db.session.scalar(select(DemoKey).order_by(DemoKey.id.desc()).limit(1))
    if row is None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        kid = "demo-" + uuid.uuid4().hex
        row = DemoKey(kid=kid, private_pem=tool_keys.encrypt_private_pem(pem, kid))
        db.session.add(row)
        db.session.flush()
    return row.kid, tool_keys.decrypt_private_pem(row.private_pem, row.kid)


def public_jwks() -> dict[str, Any]:
    """The demo platform's key set (served at ``/demo/jwks``)."""
    kid, pem = _signing_key()
    public = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update(kid=kid, alg="RS256", use="sig")
    return {"keys": [jwk]}


@dataclass
class DemoSetup:
    organisation: Organisation
    platform: LtiPlatform
    created: list[str]


def ensure_demo() -> DemoSetup:
    """Make sure the demo exists for the current ``LMS_BASE_URL``: its organisation (the
    only organisation created outside ``lms-plugin org create``, clearly labelled), its key,
    its registration in the tool (issuer ``<base>/demo``, client ``lms-plugin-demo``), the
    shipped modules published in it, and a first course link. Idempotent; audited; flushes.

    ``created`` names what was made now (empty when everything existed).
    """
    created: list[str] = []
    org = demo_organisation()
    if org is None:
        if db.session.scalar(select(Organisation.id).where(
                Organisation.slug == ORGANISATION_SLUG)) is not None:
            raise Conflict(f"an organisation with the slug {ORGANISATION_SLUG!r} exists and is "
                           "not the demo's; rename it to use the demo LMS",
                           field="organisation")
        org = Organisation(slug=ORGANISATION_SLUG, name=ORGANISATION_NAME, is_demo=True,
                           timezone=current_app.config.get("LMS_DEFAULT_TIMEZONE",
                                                           "America/New_York"))
        db.session.add(org)
        db.session.flush()
        record_audit("demo.organisation.create", actor=None, organisation_id=org.id,
                     target=("organisation", org.id), details={"name": org.name})
        created.append("organisation")
    _signing_key()
    # The tool's own key too: its assertions and deep-linking answers are verified against
    # the published keys, which must be committed before the first job signs with them.
    tool_keys.ensure_key()
    endpoints = urls()
    platform = lti_services.find_platform(endpoints["issuer"], CLIENT_ID)
    if platform is None:
        platform = lti_services.register_platform(
            issuer=endpoints["issuer"], client_id=CLIENT_ID, auth_login_url=endpoints["auth"],
            auth_token_url=endpoints["token"], key_set_url=endpoints["jwks"],
            deployment_ids=[DEPLOYMENT_ID], name="Demo LMS (built in)",
            organisation_id=org.id,
            # The demo's roles are its own: its institution Administrator is an officer of
            # the demo organisation (org-wide grants, as an LMS admin may choose).
            grant_org_roles=True)
        created.append("registration")
    elif platform.organisation_id != org.id:
        raise Conflict("the demo LMS's issuer is registered in another organisation",
                       field="issuer")
    has_modules = db.session.scalar(select(Module.id).where(
        Module.organisation_id == org.id).limit(1)) is not None
    if not has_modules:
        from lms_plugin.catalog.cli import SHIPPED_CONTENT

        bundle = load_content(SHIPPED_CONTENT)
        # The shipped modules are published as written: the demo organisation shows the
        # suggested wording of each [[local: …]] marker (issue 17), never the brackets.
        catalog.import_content(bundle, org, local_markers_ok=True)
        created.append("content")
    if db.session.scalar(select(DemoLink.id).limit(1)) is None:
        module = db.session.scalar(select(Module).where(
            Module.organisation_id == org.id, Module.slug == FIRST_MODULE))
        version = catalog.current_version(module) if module is not None else None
        if version is not None:
            launch_url = lti_services.tool_urls(base_url())["launch_url"]
            db.session.add(DemoLink(title=version.title, custom={"module": module.slug},
                                    url=f"{launch_url}?module={module.slug}"))
            db.session.flush()
            created.append("course link")
    return DemoSetup(org, platform, created)


# ----------------------------------------------------------------------------- launch


def login_url(persona_key: str, link_id: int | None) -> str:
    """Where the course page sends the browser to launch as ``persona_key``: the tool's
    OIDC login initiation URL (third-party initiated login), as an LMS builds it.
    ``link_id``: the course link to open (a resource link launch); None for the
    instructor's "Add training" (a deep-linking request). NotFound for unknown ones."""
    persona = PERSONAS.get(persona_key)
    if persona is None:
        raise NotFound(f"there is no demo person {persona_key!r}", field="person")
    if link_id is not None and db.session.get(DemoLink, link_id) is None:
        raise NotFound(f"the demo course has no link {link_id}", field="link")
    tool = lti_services.tool_urls(base_url())
    hint = _serializer("launch").dumps({"as": persona.key, "link": link_id})
    query = {"iss": urls()["issuer"], "login_hint": persona.sub, "client_id": CLIENT_ID,
             "target_link_uri": tool["target_link_uri"], "lti_message_hint": hint,
             "lti_deployment_id": DEPLOYMENT_ID,
             # The demo opens launches in the top window, where first-party cookies work.
             "lti1p3_new_window": "1"}
    return tool["login_url"] + "?" + urlencode(query)


def authorize(params: dict[str, str]) -> tuple[str, str, str]:
    """The auth endpoint (OIDC authentication request, LTI 1.3 core 5.1.1.2): check the
    request the tool redirected to, and return (redirect_uri, id_token, state) for the
    form post. ValidationFailed (naming the parameter) when anything does not match what
    the demo registered or issued; nothing is written but the demo key on first use."""
    tool = lti_services.tool_urls(base_url())
    expected = {"scope": "openid", "response_type": "id_token", "client_id": CLIENT_ID,
                "response_mode": "form_post", "prompt": "none"}
    for name, value in expected.items():
        if params.get(name) != value:
            raise ValidationFailed(f"{name} must be {value!r} (got {params.get(name)!r})",
                                   field=name)
    if params.get("redirect_uri") != tool["launch_url"]:
        raise ValidationFailed("redirect_uri is not the tool's registered launch URL",
                               field="redirect_uri")
    for name in ("nonce", "state"):
        if not params.get(name):
            raise ValidationFailed(f"{name} is missing", field=name)
    try:
        hint = _serializer("launch").loads(params.get("lti_message_hint") or "",
                                           max_age=LAUNCH_HINT_AGE)
    except BadSignature:
        raise ValidationFailed("lti_message_hint is not one the demo course issued (or it "
                               "is older than 10 minutes): launch again from the course page",
                               field="lti_message_hint") from None
    persona = PERSONAS.get(hint.get("as"))
    if persona is None or params.get("login_hint") != persona.sub:
        raise ValidationFailed("login_hint does not match the launch", field="login_hint")
    claims = _claims(persona, hint.get("link"), params["nonce"], tool)
    kid, pem = _signing_key()
    token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})
    return tool["launch_url"], token, params["state"]


def _claims(persona: Persona, link_id: int | None, nonce: str,
            tool: dict[str, str]) -> dict[str, Any]:
    endpoints = urls()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": endpoints["issuer"], "aud": CLIENT_ID, "azp": CLIENT_ID, "sub": persona.sub,
        "exp": now + ID_TOKEN_LIFETIME, "iat": now, "nonce": nonce,
        "name": persona.name, "given_name": persona.given_name,
        "family_name": persona.family_name, "email": persona.email,
        CLAIM + "version": "1.3.0",
        CLAIM + "deployment_id": DEPLOYMENT_ID,
        CLAIM + "roles": list(persona.roles),
        CLAIM + "context": CONTEXT,
        CLAIM + "tool_platform": {"guid": "lms-plugin-demo", "name": "Demo LMS",
                                  "product_family_code": "lms-plugin-demo"},
        CLAIM + "launch_presentation": {"document_target": "window",
                                        "return_url": endpoints["course"]},
        AGS_CLAIM: {"scope": [SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT,
                              SCOPE_SCORE], "lineitems": endpoints["lineitems"]},
        NRPS_CLAIM: {"context_memberships_url": endpoints["memberships"],
                     "service_versions": ["2.0"]},
    }
    if link_id is None:
        claims.update({
            CLAIM + "message_type": "LtiDeepLinkingRequest",
            CLAIM + "target_link_uri": tool["deep_linking_url"],
            DL_CLAIM + "deep_linking_settings": {
                "deep_link_return_url": endpoints["deep_link_return"],
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": True, "auto_create": True,
                "title": "Add training to the demo course",
                "data": _serializer("deep-link").dumps({"by": persona.sub})},
        })
        return claims
    link = db.session.get(DemoLink, link_id)
    if link is None:
        raise ValidationFailed(f"the demo course has no link {link_id}", field="link")
    slug = (link.custom or {}).get("module")
    claims.update({
        CLAIM + "message_type": "LtiResourceLinkRequest",
        # The tool's launch URL as it is now (LMS_BASE_URL may have changed since the link
        # was added, e.g. another port), with the module the link carries.
        CLAIM + "target_link_uri": f"{tool['launch_url']}?module={slug}" if slug else link.url,
        CLAIM + "resource_link": {"id": link.resource_link_id, "title": link.title},
        CLAIM + "custom": dict(link.custom or {}) or {"module": ""},
    })
    lineitem = db.session.scalar(select(DemoLineItem).where(
        DemoLineItem.resource_link_id == link.resource_link_id).order_by(DemoLineItem.id)
        .limit(1))
    if lineitem is not None:
        claims[AGS_CLAIM]["lineitem"] = lineitem_url(lineitem.id)
    return claims


# ------------------------------------------------------------------------ deep linking


def _tool_verified(token: str, *, audience: str) -> dict[str, Any]:
    """Claims of a JWT the tool signed, checked against the tool's published keys (the
    demo runs inside the tool, so it reads the key set directly instead of over HTTP)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise ValidationFailed("the token is not a JWT", field="JWT") from None
    jwk = next((k for k in tool_keys.public_jwks()["keys"] if k.get("kid") == kid), None)
    if jwk is None:
        raise ValidationFailed("the token's kid is not one of the tool's published keys",
                               field="JWT")
    try:
        return jwt.decode(token, RSAAlgorithm.from_jwk(json.dumps(jwk)), algorithms=["RS256"],
                          audience=audience, issuer=CLIENT_ID, leeway=60,
                          options={"require": ["exp", "iat", "iss", "aud"]})
    except jwt.PyJWTError as exc:
        raise ValidationFailed(f"the token was refused: {exc}", field="JWT") from None


def accept_deep_link_response(token: str) -> list[DemoLink]:
    """The platform's side of Deep Linking 2.0: verify the tool's signed
    ``LtiDeepLinkingResponse`` (issuer = our client id, audience = the demo's issuer, the
    ``data`` the request carried) and add each ``ltiResourceLink`` to the course, with a
    line item when the item asks for one. Returns the new links (possibly none: the
    instructor cancelled). ValidationFailed and nothing written otherwise. Flushes."""
    claims = _tool_verified(token, audience=urls()["issuer"])
    if claims.get(CLAIM + "message_type") != "LtiDeepLinkingResponse":
        raise ValidationFailed("the token is not a deep-linking response", field="JWT")
    if claims.get(CLAIM + "deployment_id") != DEPLOYMENT_ID:
        raise ValidationFailed("the response names another deployment", field="JWT")
    try:
        _serializer("deep-link").loads(claims.get(DL_CLAIM + "data") or "",
                                       max_age=3600)
    except BadSignature:
        raise ValidationFailed("the response does not carry the data of a request the demo "
                               "made (or it is older than an hour)", field="JWT") from None
    items = claims.get(DL_CLAIM + "content_items") or []
    if not isinstance(items, list):
        raise ValidationFailed("content_items must be a list", field="JWT")
    links = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
            continue
        line = item.get("lineItem") if isinstance(item.get("lineItem"), dict) else None
        custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
        link = DemoLink(title=str(item.get("title") or "Training module")[:250],
                        url=str(item.get("url") or lti_services.tool_urls(base_url())
                                ["launch_url"])[:500],
                        custom={str(k): str(v) for k, v in custom.items()},
                        lineitem_label=str(line.get("label") or "")[:250] if line else None)
        db.session.add(link)
        db.session.flush()
        if line is not None:
            db.session.add(DemoLineItem(
                label=str(line.get("label") or link.title)[:250],
                score_maximum=_positive(line.get("scoreMaximum"), 100.0),
                resource_id=_text(line.get("resourceId")), tag=_text(line.get("tag")),
                resource_link_id=link.resource_link_id))
        links.append(link)
    db.session.flush()
    return links


def _positive(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def _text(value: Any) -> str | None:
    return str(value)[:255] if value not in (None, "") else None


# ------------------------------------------------------------------- services (AGS/NRPS)


class ServiceDenied(Exception):
    """An AGS/NRPS/token request the demo refuses: ``status`` (400/401/403) and an
    OAuth2-style ``error`` code with a one-line description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def issue_token(form: dict[str, str]) -> dict[str, Any]:
    """The token endpoint (OAuth2 client credentials with a JWT client assertion, RFC 7523
    as the LTI security framework 4.1 uses it): the tool's assertion must be signed by one
    of its published keys, ``iss`` = ``sub`` = our client id, ``aud`` = this token URL.
    Returns the RFC 6749 token answer; ServiceDenied (400/401) otherwise."""
    if form.get("grant_type") != "client_credentials":
        raise ServiceDenied(400, "unsupported_grant_type", "grant_type must be "
                                                           "client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise ServiceDenied(400, "invalid_request", "client_assertion_type must be "
                                                    + ASSERTION_TYPE)
    try:
        claims = _tool_verified(form.get("client_assertion") or "", audience=urls()["token"])
    except ValidationFailed as exc:
        raise ServiceDenied(401, "invalid_client", exc.message) from None
    if claims.get("sub") != CLIENT_ID:
        raise ServiceDenied(401, "invalid_client", "sub must be the client id")
    asked = [s for s in (form.get("scope") or "").split() if s]
    scopes = [s for s in asked if s in ALL_SCOPES]
    if not scopes:
        raise ServiceDenied(400, "invalid_scope", "ask for at least one AGS or NRPS scope")
    token = _serializer("token").dumps({"scopes": scopes})
    return {"access_token": token, "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME, "scope": " ".join(scopes)}


def check_bearer(header: str | None, *needed: str) -> None:
    """An ``Authorization: Bearer`` token this demo issued, carrying one of ``needed``."""
    value = (header or "").strip()
    if not value.lower().startswith("bearer "):
        raise ServiceDenied(401, "invalid_token", "no bearer token")
    try:
        data = _serializer("token").loads(value[7:].strip(), max_age=ACCESS_TOKEN_LIFETIME)
    except BadSignature:
        raise ServiceDenied(401, "invalid_token", "the access token is unknown or expired"
                            ) from None
    if not set(needed) & set(data.get("scopes") or []):
        raise ServiceDenied(403, "insufficient_scope", "the token lacks the scope "
                                                       + " or ".join(needed))


def lineitem_url(lineitem_id: int) -> str:
    return f"{urls()['lineitems']}/{lineitem_id}"


def lineitem_json(item: DemoLineItem) -> dict[str, Any]:
    data: dict[str, Any] = {"id": lineitem_url(item.id), "label": item.label,
                            "scoreMaximum": item.score_maximum}
    for key, value in (("resourceId", item.resource_id),
                       ("resourceLinkId", item.resource_link_id), ("tag", item.tag)):
        if value is not None:
            data[key] = value
    return data


def list_lineitems(resource_id: str | None = None,
                   resource_link_id: str | None = None) -> list[dict[str, Any]]:
    """The line item container (AGS 2.0), filtered by ``resource_id`` /
    ``resource_link_id`` as the specification's query parameters say."""
    query = select(DemoLineItem).order_by(DemoLineItem.id)
    if resource_id:
        query = query.where(DemoLineItem.resource_id == resource_id)
    if resource_link_id:
        query = query.where(DemoLineItem.resource_link_id == resource_link_id)
    return [lineitem_json(item) for item in db.session.scalars(query)]


def create_lineitem(body: Any) -> dict[str, Any]:
    """POST to the container: a new line item (``label`` and a positive ``scoreMaximum``
    required). ServiceDenied (400) naming the missing field otherwise. Flushes."""
    if not isinstance(body, dict):
        raise ServiceDenied(400, "invalid_request", "the body must be a JSON object")
    label = str(body.get("label") or "").strip()
    if not label:
        raise ServiceDenied(400, "invalid_request", "label is required")
    try:
        maximum = float(body.get("scoreMaximum"))
    except (TypeError, ValueError):
        raise ServiceDenied(400, "invalid_request", "scoreMaximum must be a number") from None
    if maximum <= 0:
        raise ServiceDenied(400, "invalid_request", "scoreMaximum must be positive")
    item = DemoLineItem(label=label[:250], score_maximum=maximum,
                        resource_id=_text(body.get("resourceId")),
                        resource_link_id=_text(body.get("resourceLinkId")),
                        tag=_text(body.get("tag")))
    db.session.add(item)
    db.session.flush()
    return lineitem_json(item)


def get_lineitem(lineitem_id: int) -> DemoLineItem:
    item = db.session.get(DemoLineItem, lineitem_id)
    if item is None:
        raise ServiceDenied(404, "not_found", f"no line item {lineitem_id}")
    return item


ACTIVITY = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")


def post_score(lineitem_id: int, body: Any) -> DemoScore:
    """The score service (AGS 2.0 "Score publish service"): ``userId``, ``timestamp``,
    ``activityProgress`` and ``gradingProgress`` required; ``scoreGiven`` needs
    ``scoreMaximum``. The demo keeps every score as received (the gradebook shows the
    latest per person). ServiceDenied (400/404) otherwise. Flushes."""
    item = get_lineitem(lineitem_id)
    if not isinstance(body, dict):
        raise ServiceDenied(400, "invalid_request", "the body must be a JSON object")
    missing = [f for f in ("userId", "timestamp", "activityProgress", "gradingProgress")
               if not body.get(f)]
    if missing:
        raise ServiceDenied(400, "invalid_request", "missing " + ", ".join(missing))
    if body["activityProgress"] not in ACTIVITY or body["gradingProgress"] not in GRADING:
        raise ServiceDenied(400, "invalid_request", "unknown activityProgress or "
                                                    "gradingProgress")
    given = body.get("scoreGiven")
    maximum = body.get("scoreMaximum")
    if given is not None:
        try:
            given, maximum = float(given), float(maximum)
        except (TypeError, ValueError):
            raise ServiceDenied(400, "invalid_request", "scoreGiven needs a numeric "
                                                        "scoreMaximum") from None
        if given < 0 or maximum <= 0:
            raise ServiceDenied(400, "invalid_request", "scores must not be negative")
    score = DemoScore(lineitem_id=item.id, user_id=str(body["userId"])[:255],
                      score_given=given, score_maximum=maximum if given is not None else None,
                      activity_progress=body["activityProgress"],
                      grading_progress=body["gradingProgress"],
                      timestamp=str(body["timestamp"])[:64])
    db.session.add(score)
    db.session.flush()
    return score


def memberships() -> dict[str, Any]:
    """The course roster (NRPS 2.0 membership container): the demo's three people."""
    return {"id": urls()["memberships"],
            "context": {k: CONTEXT[k] for k in ("id", "label", "title")},
            "members": [{"status": "Active", "user_id": p.sub, "name": p.name,
                         "given_name": p.given_name, "family_name": p.family_name,
                         "email": p.email, "roles": list(p.roles)}
                        for p in PERSONAS.values()]}


# ----------------------------------------------------------------------- course page


@dataclass
class GradebookRow:
    label: str
    resource_id: str | None
    scores: dict[str, DemoScore]  # persona key -> latest score


@dataclass
class CoursePage:
    links: list[DemoLink]
    gradebook: list[GradebookRow]
    roster_synced_at: Any  # when the tool last read the roster (None: not yet)
    organisation: Organisation | None


def course_page() -> CoursePage:
    """What the demo course page shows: its links, its gradebook (the latest score per
    person and column, two queries) and when the tool last read the roster."""
    links = list(db.session.scalars(select(DemoLink).order_by(DemoLink.id)))
    items = list(db.session.scalars(select(DemoLineItem).order_by(DemoLineItem.id)))
    by_sub = {p.sub: p.key for p in PERSONAS.values()}
    latest: dict[tuple[int, str], DemoScore] = {}
    for score in db.session.scalars(select(DemoScore).order_by(DemoScore.id)):
        if score.user_id in by_sub:
            latest[(score.lineitem_id, by_sub[score.user_id])] = score
    rows = [GradebookRow(i.label, i.resource_id,
                         {k: s for (item_id, k), s in latest.items() if item_id == i.id})
            for i in items]
    org = demo_organisation()
    synced = None
    if org is not None:
        synced = db.session.scalar(
            select(LtiContext.roster_synced_at).join(
                LtiPlatform, LtiPlatform.id == LtiContext.platform_id).where(
                LtiPlatform.organisation_id == org.id,
                LtiContext.context_id == CONTEXT["id"]).limit(1))
    return CoursePage(links, rows, synced, org)
