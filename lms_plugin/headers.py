"""Security headers on every response: who may frame a page (clickjacking), CSP, HSTS.

Framing (issue 10 item 7). The tool runs inside LMS iframes, so it cannot simply refuse to be
framed - but only its own LMSs may frame it:

- a page with an LTI context (the session came from a launch, or the LTI login/launch pages
  themselves, rendered inside the LMS frame before any session exists; Dynamic
  Registration, framed by the registering LMS: the origin of its configuration URL) gets
  ``frame-ancestors 'self' <origins>``: the origins (issuer and OIDC login URL) of the
  *enabled* platforms of the launching organisation, plus ``LMS_FRAME_ANCESTORS`` (e.g. a
  hosted Canvas' own domain, which is not its issuer). No ``X-Frame-Options``: it cannot
  name an origin, and browsers follow CSP ``frame-ancestors`` when both are present.
- every other page (sign-in, password, admin, the landing page) gets ``frame-ancestors
  'none'`` and ``X-Frame-Options: DENY`` (for browsers without CSP level 2). Sign-in and
  admin pages are never framed, even in an LTI session.

Platform origins are read once and cached per process (they change rarely): the cache is
dropped at once when this process changes a platform (ORM events), and at most
``ORIGINS_TTL`` later in the other processes.

HSTS (``Strict-Transport-Security``) is sent in production only (``LMS_ENV=production``
requires an https base URL, so every production response is served over TLS).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session
from sqlalchemy import event, select
from sqlalchemy.orm import Session as OrmSession

from lms_plugin.extensions import db

#: Seconds a process may serve platform origins read earlier (another process changed them).
ORIGINS_TTL = 60.0
#: Pages never framed, even in an LTI session (path prefixes).
NEVER_FRAMED = ("/auth/", "/account/", "/admin/")
#: Endpoints shown inside the LMS frame before any session exists (cookie check, storage
#: check, a refused launch's message): framed by the platform that sent the browser.
LTI_ENTRY_ENDPOINTS = frozenset({"lti.login", "lti.launch"})
REGISTRATION_ENDPOINT = "lti_registration.dynamic_registration"
BASE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self' https: http:")
HSTS = "max-age=31536000"


def origin_of(url: str | None, *, https_only: bool = False) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased; None for anything else
    (including URLs with characters that would break out of a CSP source expression)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    allowed = ("https",) if https_only else ("https", "http")
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in allowed or not host:
        return None
    if any(c in host for c in " ;,'\"*"):
        return None
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{netloc}" + (f":{port}" if port else "")


@dataclass(frozen=True)
class _Platform:
    id: int
    organisation_id: int
    issuer: str
    origins: tuple[str, ...]


class PlatformOrigins:
    """The enabled platforms' frame origins, cached per process (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = -ORIGINS_TTL
        self._platforms: tuple[_Platform, ...] = ()

    def invalidate(self, *_: object) -> None:
        self._loaded_at = -ORIGINS_TTL

    def changed(self, *_: object) -> None:
        """A platform row was flushed: drop the cache now and again at the commit (a read
        between the two would see the old row and keep it)."""
        self._pending = True
        self.invalidate()

    def committed(self, *_: object) -> None:
        if getattr(self, "_pending", False):
            self._pending = False
            self.invalidate()

    def _load(self, https_only: bool) -> tuple[_Platform, ...]:
        from lms_plugin.lti.models import LtiPlatform

        now = time.monotonic()
        if now - self._loaded_at < ORIGINS_TTL:
            return self._platforms
        with self._lock, db.engine.connect() as conn:
            rows = conn.execute(select(
                LtiPlatform.id, LtiPlatform.organisation_id, LtiPlatform.issuer,
                LtiPlatform.auth_login_url).where(LtiPlatform.enabled.is_(True))).all()
        platforms = []
        for row in rows:
            found = (origin_of(row.issuer, https_only=https_only),
                     origin_of(row.auth_login_url, https_only=https_only))
            platforms.append(_Platform(row.id, row.organisation_id, row.issuer,
                                       tuple(dict.fromkeys(o for o in found if o))))
        self._platforms, self._loaded_at = tuple(platforms), now
        return self._platforms

    def for_platform(self, platform_id: int, *, https_only: bool = False) -> list[str]:
        """Origins of every enabled platform of the organisation that ``platform_id`` (the
        session's launch) belongs to; none when that platform is unknown or disabled."""
        platforms = self._load(https_only)
        orgs = {p.organisation_id for p in platforms if p.id == platform_id}
        return _flatten(p.origins for p in platforms if p.organisation_id in orgs)

    def for_issuer(self, issuer: str, *, https_only: bool = False) -> list[str]:
        """Origins of the organisations having an enabled platform with this issuer."""
        platforms = self._load(https_only)
        orgs = {p.organisation_id for p in platforms if p.issuer == issuer}
        return _flatten(p.origins for p in platforms if p.organisation_id in orgs)


def _flatten(groups: Iterable[tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(o for group in groups for o in group))


platform_origins = PlatformOrigins()


def _unverified_issuer() -> str | None:
    """The issuer a launching browser claims: the ``iss`` of the OIDC login, or of the
    posted id_token (not verified here: it only chooses which *registered* platforms'
    origins may frame the launch's own refusal or cookie-check page)."""
    iss = request.values.get("iss")
    if iss:
        return iss
    token = request.form.get("id_token") or ""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16384:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def frame_ancestors() -> list[str] | None:
    """The origins allowed to frame this response, or None when it may not be framed."""
    if request.path.startswith(NEVER_FRAMED):
        return None
    https_only = current_app.config.get("LMS_ENV") == "production"
    extra = list(current_app.config.get("LMS_FRAME_ANCESTORS", ()))
    if request.endpoint == REGISTRATION_ENDPOINT:
        # Dynamic Registration runs in the registering LMS's frame, before the tool knows it:
        # only the origin of the configuration URL it was opened with (the LMS itself).
        found = origin_of(request.values.get("openid_configuration"), https_only=https_only)
        return ([found] if found else []) + extra
    if request.endpoint in LTI_ENTRY_ENDPOINTS:
        issuer = _unverified_issuer()
        return (platform_origins.for_issuer(issuer, https_only=https_only) if issuer
                else []) + extra
    lti = session.get("lti")
    platform_id = lti.get("platform_id") if isinstance(lti, dict) else None
    if isinstance(platform_id, int):
        return platform_origins.for_platform(platform_id, https_only=https_only) + extra
    return None


def _apply(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    origins = frame_ancestors()
    ancestors = "'none'" if origins is None else " ".join(["'self'", *dict.fromkeys(origins)])
    csp = headers.get("Content-Security-Policy") or BASE_CSP
    if "frame-ancestors" not in csp:  # a view's own policy (asset sandbox) gets it too
        csp = f"{csp}; frame-ancestors {ancestors}"
    headers["Content-Security-Policy"] = csp
    if origins is None:
        headers["X-Frame-Options"] = "DENY"
    if current_app.config.get("LMS_ENV") == "production":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def register_security_headers(app: Flask) -> None:
    """Add the headers to every response; drop the origin cache when a platform changes."""
    from lms_plugin.lti.models import LtiPlatform

    if not event.contains(LtiPlatform, "after_insert", platform_origins.changed):
        for name in ("after_insert", "after_update", "after_delete"):
            event.listen(LtiPlatform, name, platform_origins.changed)
        event.listen(OrmSession, "after_commit", platform_origins.committed)
    app.after_request(_apply)
