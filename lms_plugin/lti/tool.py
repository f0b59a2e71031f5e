"""pylti1p3 glue: a database ``ToolConfAbstract`` and a launch validator that closes 2.0.0's gaps.

pylti1p3 2.0.0 (not forked; subclassed here) leaves these to the tool:

- ``aud``: it compares only ``aud[0]`` and never looks at ``azp``. We accept ``aud`` as a
  string equal to a registered client_id, or an array containing it; a multi-valued array
  must carry ``azp`` naming the client_id, and an ``azp`` present must always match.
- nonce: it only checks the nonce exists. Ours are signed and expire
  (:mod:`lms_plugin.lti.nonces`: the login stores nothing) and the launch claims each one
  atomically (:meth:`LtiStore.claim`), so a replayed id_token is refused.
- clock skew: it gives PyJWT no leeway; we give ``LTI_CLOCK_SKEW`` seconds (default 60) and
  require ``exp`` and ``iat``.
- key rotation: with caching it never refetches the platform JWKS on an unknown ``kid``. We
  cache per key set URL in-process and refetch once when the ``kid`` is not in the cache.
- key set fetch: it calls ``requests`` itself with a per-read timeout only. Ours goes
  through :mod:`lms_plugin.outbound` (total deadline, size cap, no redirects, address
  rule) and refuses a key set in which two keys share a ``kid`` (issue 10.3).
- algorithms: it trusts the header's ``alg``. We accept RS256 only (so ``none`` and HS256
  signed with the public key as secret are refused before any key is looked up).
- disabled registrations are refused (403) at login and at launch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import typing as t

import jwt
from flask import current_app
from jwt.algorithms import RSAAlgorithm
from pylti1p3.actions import Action
from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskSessionService
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.registration import Registration
from pylti1p3.tool_config import ToolConfAbstract
from sqlalchemy import event, select
from sqlalchemy.orm import lazyload

from lms_plugin import outbound
from lms_plugin.extensions import db
from lms_plugin.lti import claims as claim_rules
from lms_plugin.lti import launch, nonces
from lms_plugin.lti.models import LtiDeployment, LtiPlatform
from lms_plugin.lti.store import LtiStore

log = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
ALLOWED_ALG = "RS256"


class LaunchRejected(Exception):
    """An LTI login or launch refused for a stated reason; becomes a 400/401/403 page."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class LtiRegistration(Registration):
    """A pylti1p3 Registration that knows its database row and loads our private key lazily.

    Decrypting the signing key costs time on every launch and is only needed for service
    calls and deep-linking responses, so it happens on first use.
    """

    platform_id: int
    organisation_id: int
    role_mapping: dict[str, t.Any]
    public_key_pem: str | None

    def get_tool_private_key(self) -> str | None:
        if self._tool_private_key is None:
            from lms_plugin.lti.keys import current_signing_key

            key = current_signing_key()
            self._tool_private_key = key.private_pem
            self._kid = key.kid
        return self._tool_private_key

    def get_kid(self) -> str | None:
        self.get_tool_private_key()
        return self._kid


def platform_snapshot(platform: LtiPlatform) -> dict[str, t.Any]:
    """The registration's column values, detached from the row (what the login caches and
    what the launch's lookup reads)."""
    snapshot = {c: getattr(platform, c) for c in launch.PLATFORM_COLUMNS}
    snapshot["role_mapping"] = dict(platform.role_mapping or {})
    snapshot["grant_org_roles"] = bool(platform.grant_org_roles)
    return snapshot


def registration_from(platform: LtiPlatform) -> LtiRegistration:
    return registration_from_snapshot(platform_snapshot(platform))


#: Bumped whenever a platform row is inserted, updated or deleted in this process, so the
#: login cache below drops what it holds at once (other worker processes follow within
#: ``LTI_REGISTRATION_CACHE_SECONDS``; the launch never uses the cache).
_registration_generation = 0


@event.listens_for(LtiPlatform, "after_insert")
@event.listens_for(LtiPlatform, "after_update")
@event.listens_for(LtiPlatform, "after_delete")
def _platform_changed(mapper, connection, target) -> None:  # noqa: ARG001
    global _registration_generation
    _registration_generation += 1


class LoginRegistrationCache:
    """Registrations the OIDC login found, per (issuer, client_id), for a few seconds.

    The login only reads the registration (its auth URL, whether it is enabled) and writes
    nothing to the database, so with this cache a login costs no database round trip at
    all. Only found registrations are cached (a new registration works at once). A disabled
    registration is still refused at once at launch, which always reads its row; this
    worker's login refuses it at once too (the generation bump above), other workers within
    the TTL.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[float, int, dict[str, t.Any]]] = {}

    @classmethod
    def for_app(cls) -> LoginRegistrationCache:
        cache = current_app.extensions.get("lti_login_registrations")
        if cache is None:
            ttl = float(current_app.config["LTI_REGISTRATION_CACHE_SECONDS"])
            cache = current_app.extensions["lti_login_registrations"] = cls(ttl)
        return cache

    def get(self, iss: str, client_id: str) -> dict[str, t.Any] | None:
        with self._lock:
            item = self._items.get((iss, client_id))
        if item is None or item[1] != _registration_generation or time.monotonic() > item[0]:
            return None
        return item[2]

    def put(self, iss: str, client_id: str, platform: LtiPlatform) -> None:
        if self.ttl <= 0:
            return
        snapshot = platform_snapshot(platform)
        with self._lock:
            self._items[(iss, client_id)] = (time.monotonic() + self.ttl,
                                             _registration_generation, snapshot)


def registration_from_snapshot(row: dict[str, t.Any]) -> LtiRegistration:
    """A registration built from column values (the login cache's, the launch's lookup's,
    or a row's through :func:`registration_from`)."""
    reg = LtiRegistration()
    reg.set_issuer(row["issuer"]).set_client_id(row["client_id"])
    reg.set_auth_login_url(row["auth_login_url"]).set_auth_token_url(row["auth_token_url"])
    reg.set_key_set_url(row["key_set_url"])
    if row["token_audience"]:
        reg.set_auth_audience(row["token_audience"])
    reg.platform_id = row["id"]
    reg.organisation_id = row["organisation_id"]
    reg.role_mapping = dict(row["role_mapping"] or {})
    reg.public_key_pem = row["public_key_pem"]
    reg.enabled = row["enabled"]  # type: ignore[attr-defined]
    reg.ref = launch.PlatformRef(row["id"], row["organisation_id"], row["issuer"],
                                 reg.role_mapping, bool(row.get("grant_org_roles")))
    return reg


class DbToolConf(ToolConfAbstract):
    """Registrations from ``lti_platform`` keyed by (issuer, client_id), never issuer alone."""

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def __init__(self) -> None:
        super().__init__()
        # (iss, client_id, deployment_id) answered by the launch's lookup, so the launch
        # checks its deployment without a second query.
        self._known_deployments: dict[tuple[str, str, str], bool] = {}

    def find_launch(self, iss: str, client_id: str, body: dict[str, t.Any]
                    ) -> tuple[LtiRegistration, launch.LaunchLookup] | None:
        """The launch's registration, read fresh every time (a disabled registration or a
        removed deployment is refused at once, whatever a login cache holds), together with
        the returning learner's rows in the same statement (:func:`launch.lookup`)."""
        deployment_id = body.get(CLAIM + "deployment_id")
        deployment_id = deployment_id if isinstance(deployment_id, str) else None
        sub = body.get("sub")
        context_key, link_id = launch.claim_keys(body)
        found = launch.lookup(iss, client_id, deployment_id,
                              sub if isinstance(sub, str) and len(sub) <= 255 else None,
                              context_key if context_key and len(context_key) <= 255 else None,
                              link_id if link_id and len(link_id) <= 255 else None)
        if found is None:
            return None
        if deployment_id is not None:
            self._known_deployments[(iss, client_id, deployment_id)] = found.deployment_known
        return registration_from_snapshot(found.platform), found

    def _platform(self, iss: str, client_id: str | None) -> LtiPlatform | None:
        # Deployments are checked by a targeted query: do not load them all.
        query = select(LtiPlatform).options(
            lazyload(LtiPlatform.deployments), lazyload(LtiPlatform.organisation)).where(
            LtiPlatform.issuer == iss)
        if client_id:
            return db.session.scalar(query.where(LtiPlatform.client_id == client_id))
        # A login without client_id (allowed by the spec) is unambiguous only when the
        # issuer has exactly one registration.
        rows = db.session.scalars(query.limit(2)).all()
        return rows[0] if len(rows) == 1 else None

    def find_registration_by_issuer(self, iss: str, *args, **kwargs) -> Registration:
        raise LtiException("registrations are found by issuer and client_id")

    def find_registration_by_params(self, iss: str, client_id: str, *args,
                                    deployment_id: str | None = None, **kwargs):
        if kwargs.get("action") == Action.OIDC_LOGIN and deployment_id is None:
            return self.find_login_registration(iss, client_id)
        platform = self._platform(iss, client_id)
        return registration_from(platform) if platform else None

    def find_login_registration(self, iss: str, client_id: str | None):
        """The OIDC login's lookup, through :class:`LoginRegistrationCache` (see there)."""
        if not client_id:
            platform = self._platform(iss, client_id)
            return registration_from(platform) if platform else None
        cache = LoginRegistrationCache.for_app()
        cached = cache.get(iss, client_id)
        if cached is not None:
            return registration_from_snapshot(cached)
        platform = self._platform(iss, client_id)
        if platform is None:
            return None
        cache.put(iss, client_id, platform)
        return registration_from(platform)

    def find_deployment(self, iss: str, deployment_id: str):
        raise LtiException("deployments are found by issuer, client_id and deployment id")

    def find_deployment_by_params(self, iss: str, deployment_id: str, client_id: str,
                                  *args, **kwargs):
        if not isinstance(deployment_id, str):
            return None
        known = self._known_deployments.get((iss, client_id, deployment_id))
        if known is None:
            known = db.session.scalar(
                select(LtiDeployment.id).join(LtiPlatform)
                .where(LtiPlatform.issuer == iss, LtiPlatform.client_id == client_id,
                       LtiDeployment.deployment_id == deployment_id)
            ) is not None
        return Deployment().set_deployment_id(deployment_id) if known else None

    def get_jwks(self, iss: str | None = None, client_id: str | None = None, **kwargs):
        from lms_plugin.lti.keys import public_jwks

        return public_jwks()


def fetch_key_set(url: str) -> list[dict[str, t.Any]]:
    """GET a platform's key set through the outbound client; return its JWKs (dicts).

    Raises :class:`LaunchRejected` (401) when the set cannot be fetched within the
    outbound deadline and size cap, is not a JSON key set, or is ambiguous: two keys with
    the same ``kid`` would let their order decide which key verifies (RFC 7517 section 4.5
    asks for distinct kids within a set).
    """
    try:
        response = outbound.request("GET", url, outbound.policy_for([url]),
                                    headers={"Accept": "application/json"})
    except outbound.OutboundError as exc:
        raise LaunchRejected(f"could not fetch the platform key set {url}: {exc.reason}",
                             401) from None
    if response.status != 200:
        raise LaunchRejected(f"could not fetch the platform key set {url}: HTTP "
                             f"{response.status}", 401)
    try:
        keyset = response.json()
    except ValueError:
        raise LaunchRejected(f"the platform key set {url} is not JSON", 401) from None
    jwks = keyset.get("keys") if isinstance(keyset, dict) else None
    jwks = [jwk for jwk in jwks if isinstance(jwk, dict)] if isinstance(jwks, list) else []
    kids = [jwk.get("kid") for jwk in jwks]
    duplicates = sorted({str(k) for k in kids if k is not None and kids.count(k) > 1})
    if duplicates:
        raise LaunchRejected(f"the platform key set {url} has several keys with kid "
                             f"{', '.join(duplicates)}: refusing the ambiguous set", 401)
    return jwks


class PlatformKeyCache:
    """Platform public keys per key set URL, parsed once, shared by the worker's threads."""

    def __init__(self, lifetime: int = 3600) -> None:
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, dict[str, t.Any]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def _fetch(self, url: str) -> dict[str, t.Any]:
        """The usable RS256 keys of the set at ``url`` by kid (see :func:`fetch_key_set`)."""
        jwks = fetch_key_set(url)
        keys: dict[str, t.Any] = {}
        for jwk in jwks:
            kid = jwk.get("kid")
            if (not isinstance(kid, str) or not kid or jwk.get("kty") != "RSA"
                    or jwk.get("alg", ALLOWED_ALG) != ALLOWED_ALG):
                continue
            try:
                keys[kid] = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except (ValueError, TypeError, KeyError, jwt.InvalidKeyError):
                log.warning("ignoring malformed key %s in %s", kid, url)
        with self._lock:
            self._sets[url] = (time.monotonic(), keys)
        return keys

    def key_for(self, url: str, kid: str) -> t.Any:
        with self._lock:
            cached = self._sets.get(url)
        fresh = cached is None or time.monotonic() - cached[0] > self.lifetime
        keys = self._fetch(url) if fresh else cached[1]  # type: ignore[index]
        if kid not in keys and not fresh:
            # Unknown kid with a cached set: the platform may have rotated; refetch once.
            keys = self._fetch(url)
        if kid not in keys:
            raise LaunchRejected(f"unknown key id (kid) {kid!r} for this platform", 401)
        return keys[kid]


platform_keys = PlatformKeyCache()


class _SignedNonceSessionService(FlaskSessionService):
    """pylti1p3's session service, minus storing the nonce: ours are signed (see nonces)."""

    def save_nonce(self, nonce: str) -> None:
        return None


class ToolLogin(FlaskOIDCLogin):
    """OIDC third-party-initiated login that refuses disabled registrations and issues
    signed nonces (so the login itself writes nothing anywhere)."""

    def __init__(self, request, tool_config, launch_data_storage=None) -> None:
        super().__init__(request, tool_config,
                         session_service=_SignedNonceSessionService(request),
                         launch_data_storage=launch_data_storage)

    def _generate_nonce(self) -> str:
        return nonces.issue(current_app.config["SECRET_KEY"])

    def validate_oidc_login(self) -> Registration:
        try:
            registration = super().validate_oidc_login()
        except OIDCException as exc:
            raise LaunchRejected(f"login refused: {exc}", 400) from exc
        if not getattr(registration, "enabled", True):
            raise LaunchRejected("this platform registration is disabled", 403)
        return registration


class LaunchValidator(FlaskMessageLaunch):
    """pylti1p3's message launch with the checks 2.0.0 leaves out (see module docstring)."""

    _registration: LtiRegistration | None
    #: What the registration lookup also found of the person and course (used only once
    #: the id_token has validated).
    lookup: launch.LaunchLookup | None = None
    #: Set by the view when the state was verified in the platform's postMessage storage
    #: (the launch arrived without our state cookie because third-party cookies are blocked).
    state_verified: bool = False

    def validate_state(self) -> LaunchValidator:
        """The posted state must equal our state cookie (or be verified via postMessage)."""
        state = self._get_request_param("state")
        if not state:
            raise LtiException("missing state")
        if self.state_verified:
            return self
        if self._cookie_service.get_cookie(state) != state:
            raise LtiException("state does not match this browser (missing or wrong state "
                               "cookie; if cookies are blocked, open the tool in a new tab)")
        return self

    def validate(self) -> LaunchValidator:
        if self._restored:
            raise LtiException("Can't validate restored launch")
        self._validated = True
        try:
            self._run(self.validate_state, "state")
            self._run(self.validate_jwt_format, "id_token format")
            self.validate_header()
            self.validate_registration()
            self.validate_jwt_signature()
            self.validate_nonce()
            self._run(self.validate_deployment, "deployment", 403)
            self._run(self.validate_message, "message", 400)
            self.validate_required_claims()
        except Exception:
            self._validated = False
            raise
        return self

    def _run(self, step: t.Callable[[], t.Any], what: str, status: int = 401) -> None:
        try:
            step()
        except LtiException as exc:
            raise LaunchRejected(f"{what}: {exc}", status) from exc

    def validate_header(self) -> None:
        header = self._jwt.get("header", {})
        alg = header.get("alg")
        if alg != ALLOWED_ALG:
            raise LaunchRejected(f"id_token algorithm {alg!r} is not allowed (RS256 only)", 401)

    def _client_id(self) -> str:
        body = self._jwt.get("body", {})
        aud = body.get("aud")
        azp = body.get("azp")
        if isinstance(aud, str) and aud:
            auds = [aud]
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            auds = aud
        else:
            raise LaunchRejected("id_token has no audience (aud)", 401)
        if len(auds) > 1 and not azp:
            raise LaunchRejected("id_token aud has several values but no azp", 401)
        client_id = azp or auds[0]
        if client_id not in auds:
            raise LaunchRejected("id_token azp is not one of its audiences", 401)
        return client_id

    def get_client_id(self) -> str:
        return self._client_id()

    def validate_registration(self) -> LaunchValidator:
        iss = self._jwt.get("body", {}).get("iss")
        if not iss or not isinstance(iss, str):
            raise LaunchRejected("id_token has no issuer (iss)", 401)
        client_id = self._client_id()
        assert isinstance(self._tool_config, DbToolConf)
        found = self._tool_config.find_launch(iss, client_id, self._jwt.get("body", {}))
        if found is None:
            raise LaunchRejected(
                f"no registration for issuer {iss} and client id {client_id} (unknown issuer "
                "or audience)", 401)
        registration, self.lookup = found
        if not registration.enabled:
            raise LaunchRejected("this platform registration is disabled", 403)
        self._registration = registration
        return self

    def fetch_public_key(self, key_set_url: str) -> dict[str, t.Any]:
        """pylti1p3's own fetch uses ``requests`` with no timeout at all; ours goes through
        the outbound client (unused by our validation, kept safe for any library path)."""
        return {"keys": fetch_key_set(key_set_url)}

    def validate_jwt_signature(self) -> LaunchValidator:
        assert self._registration is not None
        reg = self._registration
        if reg.public_key_pem:
            key: t.Any = reg.public_key_pem
        else:
            kid = self._jwt.get("header", {}).get("kid")
            if not kid:
                raise LaunchRejected("id_token header has no key id (kid)", 401)
            if not reg.get_key_set_url():
                raise LaunchRejected("registration has no key set URL nor public key", 401)
            key = platform_keys.key_for(reg.get_key_set_url(), kid)
        try:
            jwt.decode(
                self._get_id_token(), key, algorithms=[ALLOWED_ALG],
                audience=reg.get_client_id(), issuer=reg.get_issuer(),
                leeway=current_app.config["LTI_CLOCK_SKEW"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise LaunchRejected("id_token has expired (exp)", 401) from exc
        except jwt.ImmatureSignatureError as exc:
            raise LaunchRejected("id_token issued in the future (iat/nbf)", 401) from exc
        except jwt.InvalidTokenError as exc:
            raise LaunchRejected(f"id_token rejected: {exc}", 401) from exc
        return self

    def validate_nonce(self) -> LaunchValidator:
        nonce = self._jwt.get("body", {}).get("nonce")
        if not nonce or not isinstance(nonce, str):
            raise LaunchRejected("id_token has no nonce", 401)
        expires = nonces.expiry(current_app.config["SECRET_KEY"], nonce)
        store = self._session_service.data_storage
        if expires is None or not isinstance(store, LtiStore) or not store.claim(
                "nonce-used-" + nonce, expires - int(time.time()) + 1):
            raise LaunchRejected("nonce unknown, expired or already used (replay)", 401)
        return self

    def validate_required_claims(self) -> None:
        """Every claim the tool reads, by the one rule of :mod:`lms_plugin.lti.claims`
        (types, sizes; refused with 400 naming the claim, or normalised). The launch then
        reads the normalised body."""
        try:
            self._jwt["body"] = claim_rules.check(self._jwt.get("body", {}))
        except claim_rules.ClaimError as exc:
            raise LaunchRejected(exc.reason, 400) from exc

    @property
    def registration(self) -> LtiRegistration:
        assert self._registration is not None
        return self._registration

    def claims(self) -> dict[str, t.Any]:
        return dict(self._jwt.get("body", {}))
