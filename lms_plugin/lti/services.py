"""LTI registration rules: platforms, deployments, the tool's URLs.

Services take plain values, ``flush()`` and never commit (the CLI command or view commits).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from lms_plugin.accounts.models import Organisation
from lms_plugin.accounts.services import record_audit, resolve_organisation
from lms_plugin.db import check_fits
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiDeployment, LtiPlatform


def _check_url(value: str | None, field: str, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValidationFailed(f"{field} is required", field=field)
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed(f"{field} must be an http(s) URL, not {value!r}", field=field)
    return value


def tool_urls(base_url: str) -> dict[str, str]:
    """The tool-side values an LMS admin pastes into Moodle/Canvas (also used by the config)."""
    base = base_url.rstrip("/")
    return {
        "login_url": f"{base}/lti/login",
        "launch_url": f"{base}/lti/launch",
        "redirect_url": f"{base}/lti/launch",
        "target_link_uri": f"{base}/lti/launch",
        "jwks_url": f"{base}/lti/jwks",
        "deep_linking_url": f"{base}/lti/launch",
    }


def find_platform(issuer: str, client_id: str) -> LtiPlatform | None:
    return db.session.scalar(
        select(LtiPlatform).where(LtiPlatform.issuer == issuer, LtiPlatform.client_id == client_id)
    )


def get_platform(platform_id: int, organisation_id: int | None = None) -> LtiPlatform:
    """The registration with this id; with ``organisation_id``, only that organisation's
    (another organisation's registration is NotFound, as an unknown id is)."""
    platform = db.session.get(LtiPlatform, platform_id)
    if platform is None or (organisation_id is not None
                            and platform.organisation_id != organisation_id):
        raise NotFound(f"no platform registration with id {platform_id}")
    return platform


def last_launches(organisation_id: int) -> dict[int, Any]:
    """``{platform id: the latest launch time (UTC)}`` of the organisation's registrations
    (one grouped query over the people's identities; platforms never launched are absent)."""
    from sqlalchemy import func

    from lms_plugin.lti.models import LtiIdentity

    return dict(db.session.execute(
        select(LtiIdentity.platform_id, func.max(LtiIdentity.last_launch_at))
        .where(LtiIdentity.organisation_id == organisation_id,
               LtiIdentity.platform_id.is_not(None))
        .group_by(LtiIdentity.platform_id)).all())


def check_role_mapping(mapping: Any) -> dict[str, list[str]]:
    """A registration's role mapping: a JSON object of LTI role -> list of tool roles
    (``{"Mentor": ["learner"]}``). Raises ValidationFailed (field ``role_mapping``) naming
    the first bad entry."""
    from lms_plugin.authz import ROLES

    if not isinstance(mapping, dict):
        raise ValidationFailed("role mapping must be a JSON object", field="role_mapping")
    for lti_role, tool_roles in mapping.items():
        if (not isinstance(tool_roles, list)
                or not all(isinstance(r, str) and r in ROLES for r in tool_roles)):
            raise ValidationFailed(
                f"{lti_role!r} must map to a list of tool roles ({', '.join(ROLES)})",
                field="role_mapping")
    return mapping


#: What an admin may change on a registration (the page's edit form). Issuer and client id
#: identify it and stay: a different pair is a new registration.
EDITABLE = ("name", "auth_login_url", "auth_token_url", "key_set_url", "token_audience",
            "role_mapping")


def update_platform(platform_id: int, organisation_id: int, *, actor: Any = None,
                    **values: Any) -> LtiPlatform:
    """Change the :data:`EDITABLE` fields of a registration by the same rules as
    :func:`register_platform` (URLs http(s), sizes of the columns, a key set URL or a
    static key, role mapping a JSON object of LTI role -> list of tool roles). Raises
    NotFound for another organisation's registration and ValidationFailed naming the
    field; nothing changes then. Audited with before/after of what changed; flushes."""
    from lms_plugin.accounts.services import changes

    platform = get_platform(platform_id, organisation_id)
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(sorted(unknown))}", field="name")
    new: dict[str, Any] = {}
    if "name" in values:
        new["name"] = (values["name"] or "").strip() or urlsplit(platform.issuer).netloc
        check_fits(new["name"], LtiPlatform.name, "The platform name", "name")
    for field, required in (("auth_login_url", True), ("auth_token_url", True),
                            ("key_set_url", False)):
        if field in values:
            new[field] = _check_url(values[field], field, required=required)
            check_fits(new[field], getattr(LtiPlatform, field), f"The {field}", field)
    if "token_audience" in values:
        new["token_audience"] = (values["token_audience"] or "").strip() or None
        check_fits(new["token_audience"], LtiPlatform.token_audience, "The token audience",
                   "token_audience")
    if new.get("key_set_url", platform.key_set_url) is None and not platform.public_key_pem:
        raise ValidationFailed("give a key set URL (this registration has no static key)",
                               field="key_set_url")
    if "role_mapping" in values:
        new["role_mapping"] = check_role_mapping(values["role_mapping"] or {})
    changed = changes(platform, new)
    if changed:
        db.session.flush()
        record_audit("lti.platform.update", actor=actor, organisation_id=organisation_id,
                     target=("lti_platform", platform.id), details=changed)
    return platform


def list_platforms(organisation_id: int | None = None) -> list[LtiPlatform]:
    query = select(LtiPlatform).order_by(LtiPlatform.id)
    if organisation_id is not None:
        query = query.where(LtiPlatform.organisation_id == organisation_id)
    return list(db.session.scalars(query))


def register_platform(
    issuer: str,
    client_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str | None = None,
    deployment_ids: Iterable[str] = (),
    name: str | None = None,
    organisation_name: str | None = None,
    organisation_id: int | None = None,
    public_key_pem: str | None = None,
    token_audience: str | None = None,
    role_mapping: dict[str, Any] | None = None,
    enabled: bool = True,
    grant_org_roles: bool = False,
    allowed_hosts: Iterable[str] = (),
    actor: Any = None,
) -> LtiPlatform:
    """Register a platform (unique by issuer + client_id) in one organisation.

    ``grant_org_roles``: the roles its launches carry become organisation-wide grants (an
    Instructor an author of every course); off by default, rights stay in their course.

    Give the organisation by id or by name or slug (an existing one; with neither, the only
    one there is: :func:`~lms_plugin.accounts.services.resolve_organisation`, which raises
    NotFound / ValidationFailed listing the known ones and never creates one). A
    registration needs a way to verify id_tokens: a key set URL (normal) or a static public
    key. Every value longer than its column is refused (ValidationFailed naming it), never cut.
    """
    issuer = _check_url(issuer, "issuer") or ""
    client_id = (client_id or "").strip()
    if not client_id:
        raise ValidationFailed("client_id is required", field="client_id")
    auth_login_url = _check_url(auth_login_url, "auth_login_url") or ""
    auth_token_url = _check_url(auth_token_url, "auth_token_url") or ""
    key_set_url = _check_url(key_set_url, "key_set_url", required=False)
    token_audience = (token_audience or "").strip() or None
    public_key_pem = (public_key_pem or "").strip() or None
    if key_set_url is None and public_key_pem is None:
        raise ValidationFailed("give a key set URL or a static public key", field="key_set_url")
    if public_key_pem is not None and "BEGIN PUBLIC KEY" not in public_key_pem:
        raise ValidationFailed("public key must be a PEM 'PUBLIC KEY'", field="public_key_pem")
    deployments = []
    for dep in deployment_ids:
        dep = (dep or "").strip()
        if not dep:
            raise ValidationFailed("deployment id must not be empty", field="deployment_id")
        if dep not in deployments:
            deployments.append(dep)
    if role_mapping is not None:
        check_role_mapping(role_mapping)
    name = (name or "").strip() or urlsplit(issuer).netloc
    for value, column, what in (
            (name, LtiPlatform.name, "The platform name"),
            (issuer, LtiPlatform.issuer, "The issuer"),
            (client_id, LtiPlatform.client_id, "The client id"),
            (auth_login_url, LtiPlatform.auth_login_url, "The login URL"),
            (auth_token_url, LtiPlatform.auth_token_url, "The token URL"),
            (key_set_url, LtiPlatform.key_set_url, "The key set URL"),
            (token_audience, LtiPlatform.token_audience, "The token audience"),
            *((d, LtiDeployment.deployment_id, "A deployment id") for d in deployments)):
        check_fits(value, column, what)
    hosts = []
    for host in allowed_hosts:
        host = check_host(host)
        if host not in hosts:
            hosts.append(host)
    existing = find_platform(issuer, client_id)
    if existing is not None:
        raise Conflict(f"a platform with issuer {issuer} and client id {client_id} exists "
                       f"already (platform {existing.id}, {existing.name}: lms-plugin platform "
                       f"show {existing.id})", field="client_id")

    if organisation_id is not None:
        org = db.session.get(Organisation, organisation_id)
        if org is None:
            raise NotFound(f"no organisation with id {organisation_id}")
    else:
        org = resolve_organisation(organisation_name)

    platform = LtiPlatform(
        organisation_id=org.id, name=name,
        issuer=issuer, client_id=client_id, auth_login_url=auth_login_url,
        auth_token_url=auth_token_url, key_set_url=key_set_url,
        public_key_pem=public_key_pem, token_audience=token_audience,
        enabled=enabled, role_mapping=role_mapping or {},
        grant_org_roles=bool(grant_org_roles), allowed_hosts=hosts,
    )
    platform.deployments = [LtiDeployment(deployment_id=d) for d in deployments]
    db.session.add(platform)
    db.session.flush()
    record_audit("lti.platform.add", actor=actor, organisation_id=org.id,
                 target=("lti_platform", platform.id),
                 details={"issuer": issuer, "client_id": client_id, "deployments": deployments})
    return platform


_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)"
                   r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def check_host(value: str | None) -> str:
    """A bare host name or IP address (no scheme, port or path), lower-cased.

    Raises :class:`ValidationFailed` naming the problem otherwise.
    """
    host = (value or "").strip().lower().rstrip(".")
    if not host:
        raise ValidationFailed("a host name is required", field="allowed_host")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise ValidationFailed(f"{value!r} is not a host name (give the host only, e.g. "
                               "hospital.instructure.com: no scheme, port or path)",
                               field="allowed_host")
    return host


def set_allowed_host(platform_id: int, host: str, allowed: bool) -> LtiPlatform:
    """Allow (or stop allowing) service URLs on ``host`` for this registration.

    AGS and NRPS URLs are called only on the registration's issuer, token and key-set hosts
    and these (issue 10.1). Audited; flushes, the caller commits.
    """
    platform = get_platform(platform_id)
    host = check_host(host)
    hosts = list(platform.allowed_hosts or [])
    if allowed and host not in hosts:
        hosts.append(host)
    elif not allowed:
        if host not in hosts:
            raise NotFound(f"{host} is not an allowed host of platform {platform_id}")
        hosts.remove(host)
    platform.allowed_hosts = hosts
    db.session.flush()
    record_audit("lti.platform.allow_host" if allowed else "lti.platform.revoke_host",
                 actor=None, organisation_id=platform.organisation_id,
                 target=("lti_platform", platform.id), details={"host": host})
    return platform


def add_deployment(platform_id: int, deployment_id: str, *, organisation_id: int | None = None,
                   actor: Any = None) -> LtiDeployment:
    """Add a deployment id to a registration (Moodle: the tool type id). Raises
    ValidationFailed / Conflict (field ``deployment_id``), NotFound. Audited; flushes."""
    platform = get_platform(platform_id, organisation_id)
    deployment_id = (deployment_id or "").strip()
    if not deployment_id:
        raise ValidationFailed("deployment id must not be empty", field="deployment_id")
    check_fits(deployment_id, LtiDeployment.deployment_id, "The deployment id")
    if deployment_id in platform.deployment_ids:
        raise Conflict(f"deployment {deployment_id} is already registered", field="deployment_id")
    deployment = LtiDeployment(deployment_id=deployment_id)
    platform.deployments.append(deployment)
    db.session.flush()
    record_audit("lti.platform.add_deployment", actor=actor,
                 organisation_id=platform.organisation_id,
                 target=("lti_platform", platform.id), details={"deployment_id": deployment_id})
    return deployment


def set_enabled(platform_id: int, enabled: bool, *, organisation_id: int | None = None,
                actor: Any = None) -> LtiPlatform:
    """Disable (or re-enable) a registration: its id_tokens are refused while disabled.
    Audited with before/after."""
    platform = get_platform(platform_id, organisation_id)
    before = platform.enabled
    platform.enabled = enabled
    db.session.flush()
    record_audit("lti.platform.enable" if enabled else "lti.platform.disable", actor=actor,
                 organisation_id=platform.organisation_id,
                 target=("lti_platform", platform.id),
                 details={"enabled": {"before": before, "after": enabled}})
    return platform


def set_grant_org_roles(platform_id: int, grant: bool) -> LtiPlatform:
    """Turn the registration's ``grant_org_roles`` on or off (audited). On: the roles its
    launches carry become organisation-wide grants (an Instructor authors every course);
    off (the default): rights stay in their course, and each person's next launch removes
    the organisation-wide roles an earlier launch gave. Raises NotFound."""
    platform = get_platform(platform_id)
    platform.grant_org_roles = grant
    db.session.flush()
    record_audit("lti.platform.grant_org_roles", actor=None,
                 organisation_id=platform.organisation_id,
                 target=("lti_platform", platform.id), details={"grant_org_roles": grant})
    return platform
