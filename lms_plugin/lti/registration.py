"""Registering this tool with an LMS: Canvas JSON configuration and LTI Dynamic Registration.

Two ways an LMS admin connects a platform without typing the tool's URLs by hand:

* **Canvas developer key JSON** (:func:`canvas_config`): Canvas reads our configuration from
  ``/lti/config/canvas.json`` ("Enter URL" in the developer-key form); the admin then copies
  the developer key's client id and deployment id into ``lms-plugin platform add``.
* **LTI Dynamic Registration** (:func:`register_dynamically`, 1EdTech LTI-DR 1.0): the admin
  pastes one URL (``/lti/register``) into Moodle 4.1+ or Canvas. The LMS opens it in an iframe
  with ``openid_configuration`` (where its OpenID configuration lives) and
  ``registration_token``. We fetch and validate that configuration, POST our registration to
  the platform's ``registration_endpoint``, and store the client id and deployment id the
  platform returns as an :class:`~lms_plugin.lti.models.LtiPlatform`.

Services take plain values, ``flush()`` and never commit: the view commits once, so any
failure (network, bad JSON, issuer mismatch, platform refusal) leaves the database unchanged.

The page is public, so it must not become a port scanner (issue 10.2): both requests go
through :mod:`lms_plugin.outbound` (no private addresses when blocked, https in production,
no redirects, total deadline, size cap), the registration endpoint must be on the
configuration's own origin, and every failure after the URL's syntax was checked gives the
same message (:data:`FAILED_MESSAGE`) no sooner than the outbound deadline after the start,
whatever went wrong; the reason goes to the tool's log for its administrator.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from lms_plugin import outbound
from lms_plugin.accounts.models import Organisation, User
from lms_plugin.accounts.services import record_audit
from lms_plugin.db import check_fits
from lms_plugin.errors import Conflict, DomainError
from lms_plugin.extensions import db
from lms_plugin.lti import keys as lti_keys
from lms_plugin.lti import services as lti_services
from lms_plugin.lti.models import LtiDeployment, LtiPlatform

log = logging.getLogger(__name__)

TOOL_TITLE = "Clinical systems training"
TOOL_DESCRIPTION = (
    "Training modules, quizzes and CE credit for the clinical IT systems staff use every "
    "shift (EHR order entry, barcode medication administration, downtime procedures)."
)

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
CANVAS_ACCOUNT_NAME = "https://canvas.instructure.com/lti/account_name"

#: AGS (grades) and NRPS (roster) scopes the tool asks for, in Canvas JSON and in DR.
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)

#: Identity claims the tool needs: a name to show and an email for certificates (optional).
CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")

#: Canvas variable substitutions mapped onto the custom parameters the launch reads.
#: Canvas has no job-title variable, so ``job_role`` is left to the course or link
#: (``job_role=Registered Nurse``); the sub-account a course lives in is how most health
#: systems model a department in Canvas, and the SIS id ties the person to HR records.
CANVAS_CUSTOM_FIELDS = {
    "department": "$Canvas.account.name",
    "department_sis_id": "$Canvas.account.sisSourceId",
    "person_sis_id": "$Person.sourcedId",
    "canvas_user_id": "$Canvas.user.id",
    "canvas_course_id": "$Canvas.course.id",
}

#: Required members of a platform's OpenID configuration (LTI-DR 1.0 section 3.4).
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri",
                      "registration_endpoint")

MAX_RESPONSE_BYTES = 512 * 1024
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class RegistrationFailed(DomainError):
    """Dynamic registration could not be completed; the message names the step and cause.

    Always a 4xx: the URL or token the LMS handed us, or the LMS's answer, was unusable.
    Nothing has been written when this is raised.
    """

    status_code = 400
    title = "Registration failed"


class PlatformConfigurationInvalid(RegistrationFailed):
    status_code = 422
    title = "Platform configuration not valid"


#: The one answer to a caller whose registration failed after its URL was accepted
#: (unreachable, timed out, refused address, HTTP error, not JSON, invalid, refused by the
#: platform): different answers would tell an anonymous caller what listens where.
FAILED_MESSAGE = (
    "The LMS's registration details could not be fetched or were not usable. Start the "
    "registration again from the LMS; if it fails again, a tool administrator finds the "
    "reason in the tool's log."
)


@dataclass(frozen=True)
class PlatformConfiguration:
    """The parts of a platform's OpenID configuration the tool uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    product_family_code: str
    version: str
    account_name: str | None
    scopes_supported: tuple[str, ...]
    messages_supported: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_canvas(self) -> bool:
        return self.product_family_code == "canvas"

    @property
    def is_moodle(self) -> bool:
        return self.product_family_code == "moodle"


@dataclass(frozen=True)
class RegistrationOutcome:
    """What the view shows on the closing page."""

    platform: LtiPlatform
    configuration: PlatformConfiguration
    deployment_id: str | None
    pending_approval: bool
    #: True when the platform registered again (same issuer and client id, e.g. Moodle's
    #: "Update"): the existing registration was brought up to date instead of refused.
    updated: bool = False
    #: What the update changed: ``{field: {"from": old, "to": new}}`` (empty: it was current).
    changes: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- Canvas JSON


def canvas_config(base_url: str, *, title: str = TOOL_TITLE) -> dict[str, Any]:
    """A Canvas LTI 1.3 developer-key configuration ("Paste JSON" or "Enter URL").

    Shape as documented by Instructure for ``tool_configuration`` (title, description,
    oidc_initiation_url, target_link_uri, public_jwk_url, scopes, extensions[].settings
    .placements, custom_fields). Deep linking is offered where a teacher picks content
    (link_selection, assignment_selection); course navigation opens the learner home.
    """
    urls = lti_services.tool_urls(base_url)
    domain = urlsplit(base_url).netloc
    deep_link = urls["deep_linking_url"]
    return {
        "title": title,
        "description": TOOL_DESCRIPTION,
        "oidc_initiation_url": urls["login_url"],
        "target_link_uri": urls["target_link_uri"],
        "public_jwk_url": urls["jwks_url"],
        "scopes": list(SCOPES),
        "extensions": [
            {
                "platform": "canvas.instructure.com",
                "domain": domain,
                "tool_id": "lms_plugin",
                "privacy_level": "public",
                "settings": {
                    "text": title,
                    "placements": [
                        {
                            "placement": "course_navigation",
                            "message_type": "LtiResourceLinkRequest",
                            "target_link_uri": urls["target_link_uri"],
                            "text": title,
                            "default": "enabled",
                            "visibility": "members",
                        },
                        {
                            "placement": "link_selection",
                            "message_type": "LtiDeepLinkingRequest",
                            "target_link_uri": deep_link,
                            "text": f"{title}: add a module",
                        },
                        {
                            "placement": "assignment_selection",
                            "message_type": "LtiDeepLinkingRequest",
                            "target_link_uri": deep_link,
                            "text": f"{title}: graded module",
                        },
                    ],
                },
            }
        ],
        "custom_fields": dict(CANVAS_CUSTOM_FIELDS),
    }


# ------------------------------------------------------------------ Dynamic Registration


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_platform_url(url: str | None, what: str, *, allow_http_localhost: bool) -> str:
    """An absolute https URL (http only for localhost in development), without credentials.

    Plain http would let anyone on the path rewrite the platform's keys and endpoints; local
    development platforms (a Moodle in Docker on localhost) are the one exception.
    """
    url = (url or "").strip()
    if not url:
        raise RegistrationFailed(f"{what} is missing", field=what)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise RegistrationFailed(f"{what} is not a valid URL: {url!r}", field=what) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RegistrationFailed(f"{what} must be an absolute https URL, not {url!r}",
                                 field=what)
    if parts.username or parts.password:
        raise RegistrationFailed(f"{what} must not contain credentials", field=what)
    local_dev = allow_http_localhost and _is_local(parts.hostname.lower())
    if parts.scheme == "http" and not local_dev:
        raise RegistrationFailed(
            f"{what} must use https (plain http is accepted only for localhost "
            f"in development): {url!r}", field=what)
    return url


def _read_json(response: outbound.Response, what: str) -> Any:
    """The (size-capped) response body as JSON."""
    try:
        return response.json()
    except (UnicodeDecodeError, ValueError):
        raise PlatformConfigurationInvalid(f"{what} is not valid JSON") from None


def _policy(url: str) -> outbound.OutboundPolicy:
    """Registration calls reach only the configuration URL's own host."""
    return outbound.policy_for([url], max_bytes=MAX_RESPONSE_BYTES)


def _http(method: str, url: str, what: str, token: str | None,
          payload: dict[str, Any] | None = None) -> outbound.Response:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        # No redirects (the outbound client never follows them): a redirect could carry the
        # registration token to another host.
        return outbound.request(method, url, _policy(url), headers=headers,
                                json_body=payload)
    except outbound.OutboundError as exc:
        raise RegistrationFailed(f"{what} at {url}: {exc.reason}") from None


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            out.append(item["type"])  # Canvas lists messages as {"type": ..., "placements"}
    return tuple(out)


def parse_platform_configuration(doc: Any, configuration_url: str, *,
                                 allow_http_localhost: bool) -> PlatformConfiguration:
    """Validate a platform's OpenID configuration against the URL it was fetched from.

    The issuer must have the same origin as the configuration URL: otherwise a page anyone
    can host could claim to be ``https://canvas.instructure.com`` and have us trust its keys.
    Every endpoint the tool will call must be present, absolute and https.
    """
    if not isinstance(doc, dict):
        raise PlatformConfigurationInvalid("the OpenID configuration is not a JSON object")
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or not issuer.strip():
        raise PlatformConfigurationInvalid("the OpenID configuration has no issuer",
                                           field="issuer")
    issuer = check_platform_url(issuer, "issuer", allow_http_localhost=allow_http_localhost)
    if _origin(issuer) != _origin(configuration_url):
        raise PlatformConfigurationInvalid(
            f"issuer {issuer} does not match the origin of the configuration URL "
            f"{configuration_url}", field="issuer")
    endpoints: dict[str, str] = {}
    for name in REQUIRED_ENDPOINTS:
        value = doc.get(name)
        if not isinstance(value, str) or not value.strip():
            raise PlatformConfigurationInvalid(
                f"the OpenID configuration has no {name}", field=name)
        try:
            endpoints[name] = check_platform_url(value, name,
                                                 allow_http_localhost=allow_http_localhost)
        except RegistrationFailed as exc:
            raise PlatformConfigurationInvalid(exc.message, field=name) from None
    if _origin(endpoints["registration_endpoint"]) != _origin(configuration_url):
        # We POST the registration token there: only to the origin the LMS sent us to.
        raise PlatformConfigurationInvalid(
            f"registration_endpoint {endpoints['registration_endpoint']} is not on the origin "
            f"of the configuration URL {configuration_url}", field="registration_endpoint")
    lti = doc.get(PLATFORM_CONFIGURATION)
    if not isinstance(lti, dict):
        raise PlatformConfigurationInvalid(
            f"the OpenID configuration has no {PLATFORM_CONFIGURATION} object: this is not "
            "an LTI 1.3 platform", field=PLATFORM_CONFIGURATION)
    family = lti.get("product_family_code")
    if not isinstance(family, str) or not family.strip():
        raise PlatformConfigurationInvalid(
            f"{PLATFORM_CONFIGURATION} has no product_family_code",
            field="product_family_code")
    version = lti.get("version")
    account_name = lti.get(CANVAS_ACCOUNT_NAME)
    return PlatformConfiguration(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        registration_endpoint=endpoints["registration_endpoint"],
        product_family_code=family.strip().lower(),
        version=str(version) if version is not None else "",
        account_name=account_name if isinstance(account_name, str) else None,
        scopes_supported=_str_list(doc.get("scopes_supported")),
        messages_supported=_str_list(lti.get("messages_supported")),
        raw=doc,
    )


def fetch_platform_configuration(url: str, registration_token: str | None, *,
                                 allow_http_localhost: bool) -> PlatformConfiguration:
    """GET and validate the platform's OpenID configuration (Canvas wants the token too)."""
    url = check_platform_url(url, "openid_configuration",
                             allow_http_localhost=allow_http_localhost)
    response = _http("GET", url, "the platform's OpenID configuration", registration_token)
    if response.status != 200:
        raise RegistrationFailed(
            f"the platform's OpenID configuration at {url} answered HTTP "
            f"{response.status} (the registration link may have expired: start "
            "the registration again in the LMS)")
    doc = _read_json(response, "the platform's OpenID configuration")
    return parse_platform_configuration(doc, url, allow_http_localhost=allow_http_localhost)


def tool_registration_request(base_url: str, config: PlatformConfiguration,
                              *, client_name: str = TOOL_TITLE) -> dict[str, Any]:
    """The OpenID Connect client registration (LTI-DR 1.0 section 3.5) the tool POSTs.

    Canvas reads its own extensions (placements, privacy level); Moodle ignores them. Scopes
    are limited to those the platform says it supports, when it says.
    """
    urls = lti_services.tool_urls(base_url)
    domain = urlsplit(base_url).netloc
    scopes = [s for s in SCOPES if not config.scopes_supported or s in config.scopes_supported]
    resource_link: dict[str, Any] = {
        "type": "LtiResourceLinkRequest",
        "target_link_uri": urls["target_link_uri"],
        "label": client_name,
    }
    deep_linking: dict[str, Any] = {
        "type": "LtiDeepLinkingRequest",
        "target_link_uri": urls["deep_linking_url"],
        "label": f"{client_name}: add a module",
    }
    tool_config: dict[str, Any] = {
        "domain": domain,
        "target_link_uri": urls["target_link_uri"],
        "description": TOOL_DESCRIPTION,
        "claims": list(CLAIMS),
        "messages": [resource_link, deep_linking],
    }
    if config.is_canvas:
        resource_link["placements"] = ["course_navigation"]
        deep_linking["placements"] = ["link_selection", "assignment_selection"]
        tool_config["custom_parameters"] = dict(CANVAS_CUSTOM_FIELDS)
        tool_config[CANVAS_PRIVACY_LEVEL] = "public"
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls["login_url"],
        "redirect_uris": sorted({urls["redirect_url"], urls["launch_url"]}),
        "client_name": client_name,
        "jwks_uri": urls["jwks_url"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIGURATION: tool_config,
    }


def _error_detail(response: outbound.Response) -> str:
    """A short, printable reason from a platform's error answer (OAuth error JSON or text)."""
    try:
        doc = _read_json(response, "the platform's answer")
    except RegistrationFailed:
        return ""
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("error", "error_description", "message")
                 if isinstance(doc.get(k), str | int)]
        return ": " + "; ".join(parts)[:300] if parts else ""
    return ""


def post_registration(config: PlatformConfiguration, registration_token: str | None,
                      body: dict[str, Any]) -> tuple[str, str | None]:
    """POST the registration; return the (client_id, deployment_id) the platform assigned."""
    response = _http("POST", config.registration_endpoint, "the platform's registration "
                     "endpoint", registration_token, payload=body)
    if response.status not in (200, 201):
        detail = _error_detail(response) if 400 <= response.status < 500 else ""
        raise RegistrationFailed(
            f"the platform refused the registration (HTTP {response.status}"
            f"{detail}). If the registration link is old, start again in the LMS.")
    doc = _read_json(response, "the platform's registration answer")
    if not isinstance(doc, dict):
        raise PlatformConfigurationInvalid("the platform's registration answer is not a "
                                           "JSON object")
    client_id = doc.get("client_id")
    if isinstance(client_id, int):
        client_id = str(client_id)
    if not isinstance(client_id, str) or not client_id.strip():
        raise PlatformConfigurationInvalid("the platform's registration answer has no "
                                           "client_id", field="client_id")
    deployment_id = None
    tool_conf = doc.get(TOOL_CONFIGURATION)
    if isinstance(tool_conf, dict):
        dep = tool_conf.get("deployment_id")
        if isinstance(dep, int):
            dep = str(dep)
        if isinstance(dep, str) and dep.strip():
            deployment_id = dep.strip()
    return client_id.strip(), deployment_id


NO_ORGANISATION_MESSAGE = (
    "The tool has no organisation yet. Its administrator creates one first (lms-plugin setup, "
    "or lms-plugin org create NAME); then start the registration again from the LMS.")
SEVERAL_ORGANISATIONS_MESSAGE = (
    "The tool serves several organisations and cannot tell which one this LMS belongs to. "
    "Sign in to the tool as an administrator of your organisation in this browser, then "
    "start the registration again from the LMS: it then joins your organisation.")


class RegistrationRefused(DomainError):
    """The tool cannot take this registration in its present state (no organisation, or
    several and none chosen); raised before the platform is asked to register anything."""

    status_code = 409
    title = "Registration not possible yet"


def registration_organisation(actor: User | None, issuer: str) -> tuple[Organisation, bool]:
    """(organisation, approved) for a Dynamic Registration (issue 12.1).

    A signed-in admin's registration joins their own organisation, approved at once. Anyone
    else's is pending approval and joins the one organisation there is, or, with several,
    the organisation that already holds every registration of this ``issuer`` (the same LMS
    registering again). Otherwise RegistrationRefused: never a guess, never a new
    organisation.
    """
    if actor is not None and actor.has_role("admin"):
        return actor.organisation, True
    orgs = db.session.scalars(select(Organisation).where(Organisation.is_demo.is_(False))
                              .order_by(Organisation.id).limit(2)).all()
    if not orgs:
        raise RegistrationRefused(NO_ORGANISATION_MESSAGE, field="organisation")
    if len(orgs) == 1:
        return orgs[0], False
    holders = set(db.session.scalars(select(LtiPlatform.organisation_id).join(
        Organisation, Organisation.id == LtiPlatform.organisation_id).where(
        LtiPlatform.issuer == issuer, Organisation.is_demo.is_(False))))
    if len(holders) == 1:
        return db.session.get(Organisation, holders.pop()), False
    raise RegistrationRefused(SEVERAL_ORGANISATIONS_MESSAGE, field="organisation")


def _platform_name(config: PlatformConfiguration) -> str:
    name = config.account_name or urlsplit(config.issuer).netloc
    if config.product_family_code:
        name = f"{name} ({config.product_family_code})"
    return name[:200]


def _update_registration(platform: LtiPlatform, config: PlatformConfiguration,
                         deployment_id: str | None, actor: User | None) -> RegistrationOutcome:
    """The platform registered again under the same (issuer, client_id): Moodle's "Update"
    on a tool registration sends the existing type's client id and type id (deployment id)
    again (mod/lti/openid-registration.php updates the type when the token names one).
    Bring the registration's endpoints, name and deployment ids up to date, keep its
    organisation and enabled state, audit what changed (also when nothing did).

    A signed-in admin of *another* organisation cannot change it (Conflict, nothing written).
    The caller is the platform itself: the configuration came from the issuer's own origin
    (:func:`parse_platform_configuration`) and its registration endpoint accepted the token.
    """
    if actor is not None and actor.has_role("admin") and \
            actor.organisation_id != platform.organisation_id:
        raise Conflict("This LMS registration belongs to another organisation of the tool; "
                       "an administrator of that organisation can register it again.",
                       field="client_id")
    wanted = {
        "name": _platform_name(config),
        "auth_login_url": config.authorization_endpoint,
        "auth_token_url": config.token_endpoint,
        "key_set_url": config.jwks_uri,
    }
    for attribute, value in wanted.items():
        check_fits(value, getattr(LtiPlatform, attribute), f"The {attribute.replace('_', ' ')}")
    if deployment_id:
        check_fits(deployment_id, LtiDeployment.deployment_id, "The deployment id")
    changes: dict[str, Any] = {}
    for attribute, value in wanted.items():
        old = getattr(platform, attribute)
        if old != value:
            changes[attribute] = {"from": old, "to": value}
            setattr(platform, attribute, value)
    if deployment_id and deployment_id not in platform.deployment_ids:
        changes["deployment_ids"] = {"from": list(platform.deployment_ids),
                                     "to": [*platform.deployment_ids, deployment_id]}
        platform.deployments.append(LtiDeployment(deployment_id=deployment_id))
    db.session.flush()
    lti_keys.ensure_key()
    record_audit(
        "lti.platform.dynamic_reregistration", actor=actor,
        organisation_id=platform.organisation_id, target=("lti_platform", platform.id),
        details={"issuer": config.issuer, "client_id": platform.client_id,
                 "deployment_id": deployment_id, "changes": changes,
                 "product_family_code": config.product_family_code,
                 "version": config.version},
    )
    return RegistrationOutcome(platform=platform, configuration=config,
                               deployment_id=deployment_id or next(
                                   iter(platform.deployment_ids), None),
                               pending_approval=not platform.enabled, updated=True,
                               changes=changes)


def register_dynamically(openid_configuration: str | None, registration_token: str | None,
                         *, base_url: str, actor: User | None,
                         allow_http_localhost: bool) -> RegistrationOutcome:
    """Run LTI Dynamic Registration end to end and store the platform (flushed, not committed).

    Why this may run for anyone (the view is PUBLIC): the LMS administrator opens it inside
    the LMS, where our session cookie is usually absent (third-party cookies are blocked
    in iframes), and the platform's registration token is the credential for the only thing
    that is written: a *new* registration keyed by the (issuer, client_id) the platform
    itself issues. The same platform registering again (same issuer and client id: Moodle's
    "Update") brings its own registration up to date (:func:`_update_registration`); the
    configuration must come from the issuer's own origin and the platform's registration
    endpoint must accept the token, so nobody else can change it. A registration made
    without a signed-in admin is stored **disabled** (pending approval,
    ``lms-plugin platform enable ID``), so nobody can make the tool trust an unknown LMS
    just by running a registration. An admin signed in to the tool in the
    same browser (``actor``) gets it enabled in their own organisation at once; the view
    only passes an actor from a CSRF-protected POST, so a foreign page embedding the URL
    cannot borrow an admin's session.

    Every network step happens before anything is written, so a failure writes nothing.
    Once the URL's syntax is accepted, any failure raises :class:`RegistrationFailed` with
    :data:`FAILED_MESSAGE`, no sooner than the outbound deadline after the start (same
    words and timing whether a port is closed, silent or serving something else); the
    reason is logged.
    """
    url = check_platform_url(openid_configuration, "openid_configuration",
                             allow_http_localhost=allow_http_localhost)
    started = time.monotonic()
    try:
        config = fetch_platform_configuration(url, registration_token,
                                              allow_http_localhost=allow_http_localhost)
        body = tool_registration_request(base_url, config)
        # Before the platform is asked to register anything: where the registration goes.
        organisation, approved = registration_organisation(actor, config.issuer)
        client_id, deployment_id = post_registration(config, registration_token, body)
    except RegistrationFailed as exc:
        log.warning("dynamic registration with %s failed: %s", url, exc.message)
        time.sleep(max(0.0, started + _policy(url).deadline - time.monotonic()))
        raise RegistrationFailed(FAILED_MESSAGE) from None
    existing = lti_services.find_platform(config.issuer, client_id)
    if existing is not None:
        return _update_registration(existing, config, deployment_id, actor)
    name = _platform_name(config)
    platform = lti_services.register_platform(
        issuer=config.issuer,
        client_id=client_id,
        auth_login_url=config.authorization_endpoint,
        auth_token_url=config.token_endpoint,
        key_set_url=config.jwks_uri,
        deployment_ids=[deployment_id] if deployment_id else [],
        name=name,
        organisation_id=organisation.id,
        enabled=approved,
    )
    lti_keys.ensure_key()  # the platform may fetch our JWKS straight away, as after CLI add
    record_audit(
        "lti.platform.dynamic_registration", actor=actor, organisation_id=organisation.id,
        target=("lti_platform", platform.id),
        details={
            "issuer": config.issuer, "client_id": client_id, "deployment_id": deployment_id,
            "product_family_code": config.product_family_code, "version": config.version,
            "registration_endpoint": config.registration_endpoint,
            "enabled": approved,
        },
    )
    return RegistrationOutcome(platform=platform, configuration=config,
                               deployment_id=deployment_id, pending_approval=not approved)
