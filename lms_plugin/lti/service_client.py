"""OAuth2 client-credentials for LTI Advantage services (AGS, NRPS) and the calls themselves.

The tool proves who it is with a JWT assertion signed by its current signing key (RS256,
``kid`` header), ``iss`` = ``sub`` = the platform's client_id, ``aud`` = the platform's token
audience (or its token URL). Access tokens are cached until shortly before they expire,
keyed by (issuer, client_id, sorted scopes): hosted Canvas tenants share an issuer, so a
token is never reused across client_ids. The cache is Redis when ``REDIS_URL`` is set (all
workers share tokens), else this process's memory.

Every call goes through :mod:`lms_plugin.outbound` under the registration's policy
(:func:`platform_policy`): only the registration's own hosts (issuer, token, key set, plus
the hosts an admin allowed), https only in production, no private addresses when blocked,
no redirects, a total deadline and a size cap (issue 10.1).

Errors are translated into three outcomes the job handlers map to the outbox:
:class:`TransientServiceError` (network, deadline, 5xx, 429 — try later),
:class:`ServiceRefused` (a definitive 4xx answer with the platform's message, trimmed) and
:class:`ServiceUrlRefused` (the outbound rule forbids the URL: nothing was sent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import jwt
from flask import current_app

from lms_plugin import outbound
from lms_plugin.lti.keys import current_signing_key
from lms_plugin.lti.models import LtiPlatform

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Tokens are dropped this long before the platform says they expire (clock skew, latency).
EXPIRY_MARGIN = 60
ASSERTION_LIFETIME = 300


class TransientServiceError(Exception):
    """Trying again later may succeed: network error, timeout, 5xx, 429, persistent 401."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ServiceRefused(Exception):
    """The platform answered definitively (a 4xx): retrying the same request cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class ServiceUrlRefused(Exception):
    """The outbound rule forbids this service URL (another host, plain http in production,
    a private address): nothing was sent, and retrying cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float  # epoch seconds, margin already taken off


class _MemoryCache:
    """Per-process token cache, used when there is no Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, CachedToken] = {}

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and token.expires_at <= time.time():
            self.delete(key)
            return None
        return token

    def set(self, key: str, token: CachedToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def delete(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


class _RedisCache:
    def __init__(self, url: str, prefix: str) -> None:
        from lms_plugin.lti.store import _redis

        self._redis = _redis(url)
        self._prefix = prefix

    def get(self, key: str) -> CachedToken | None:
        raw = self._redis.get(self._prefix + key)
        if raw is None:
            return None
        data = json.loads(raw)
        token = CachedToken(data["access_token"], float(data["expires_at"]))
        return token if token.expires_at > time.time() else None

    def set(self, key: str, token: CachedToken) -> None:
        ttl = max(int(token.expires_at - time.time()), 1)
        self._redis.set(self._prefix + key, json.dumps(
            {"access_token": token.access_token, "expires_at": token.expires_at}), ex=ttl)

    def delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)


memory_cache = _MemoryCache()


def _cache() -> _MemoryCache | _RedisCache:
    url = current_app.config.get("REDIS_URL")
    if url:
        prefix = current_app.config["LTI_STORE_PREFIX"] + "token:"
        return _RedisCache(url, prefix)
    return memory_cache


def cache_key(platform: LtiPlatform, scopes: Iterable[str]) -> str:
    """Issuer AND client_id AND scopes: hosted Canvas tenants share one issuer."""
    raw = json.dumps([platform.issuer, platform.client_id, sorted(set(scopes))])
    return hashlib.sha256(raw.encode()).hexdigest()


#: How much of a platform's error answer is kept (shown on /admin/jobs, escaped there).
MESSAGE_CHARS = 200


def platform_policy(platform: LtiPlatform) -> outbound.OutboundPolicy:
    """The outbound policy for this registration's service calls (its own hosts only)."""
    return outbound.policy_for(platform.service_hosts)


def _call(platform: LtiPlatform, method: str, url: str, what: str,
          **kwargs: Any) -> outbound.Response:
    try:
        return outbound.request(method, url, platform_policy(platform), **kwargs)
    except outbound.OutboundRefused as exc:
        raise ServiceUrlRefused(f"{what}: not sent: {exc.reason}") from None
    except outbound.OutboundFailed as exc:
        raise TransientServiceError(f"{what} failed: {exc.reason}") from None


def client_assertion(platform: LtiPlatform) -> str:
    """The signed JWT that authenticates the tool at the platform's token endpoint."""
    key = current_signing_key()
    now = int(time.time())
    claims = {
        "iss": platform.client_id,
        "sub": platform.client_id,
        "aud": platform.token_audience or platform.auth_token_url,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


def _retry_after(response: outbound.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _trimmed(text: str) -> str:
    """One line of printable text, at most MESSAGE_CHARS characters (issue 10.1)."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 1] + "…"


def _message(response: outbound.Response) -> str:
    """The platform's own words (JSON ``message``/``reason``/``errors`` or the body text),
    trimmed to one printable line. Only platform hosts are ever called, so this is always
    the registration's own answer (templates escape it)."""
    try:
        data = response.json()
    except ValueError:
        return _trimmed(response.text) or response.reason or ""
    if isinstance(data, dict):
        for key in ("message", "reason", "error_description", "error", "errors"):
            if data.get(key):
                value = data[key]
                return _trimmed(value if isinstance(value, str) else json.dumps(value))
    return _trimmed(json.dumps(data))


def raise_for_outcome(response: outbound.Response, what: str) -> None:
    """Turn a non-2xx answer into a transient or a definitive error."""
    status = response.status
    if 300 <= status < 400:
        raise ServiceRefused(status, f"{what}: the platform answered with a redirect, "
                                     "which the tool does not follow")
    if status < 400:
        return
    if status == 429:
        raise TransientServiceError(f"{what}: HTTP 429 rate limited", _retry_after(response))
    if status >= 500:
        raise TransientServiceError(f"{what}: HTTP {status} {_message(response)}".strip(),
                                    _retry_after(response) if status == 503 else None)
    raise ServiceRefused(status, f"{what}: {_message(response)}")


def fetch_token(platform: LtiPlatform, scopes: list[str]) -> CachedToken:
    """Ask the platform's token endpoint for an access token (no cache)."""
    response = _call(platform, "POST", platform.auth_token_url, "token request", data={
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(platform),
        "scope": " ".join(sorted(set(scopes))),
    }, headers={"Accept": "application/json"})
    if response.status == 401:
        # Usually our key is not (yet) known to the platform: a person must look.
        raise TransientServiceError(f"token refused: HTTP 401 {_message(response)}")
    raise_for_outcome(response, "token request")
    try:
        data = response.json()
        access_token = str(data["access_token"])
        expires_in = float(data.get("expires_in") or 3600)
    except (ValueError, KeyError, TypeError):
        raise TransientServiceError("token endpoint answered without an access_token") from None
    return CachedToken(access_token, time.time() + max(expires_in - EXPIRY_MARGIN, 1))


def get_token(platform: LtiPlatform, scopes: list[str]) -> str:
    """A cached access token for (platform, scopes), fetched when missing or about to expire."""
    cache = _cache()
    key = cache_key(platform, scopes)
    token = cache.get(key)
    if token is None:
        token = fetch_token(platform, scopes)
        cache.set(key, token)
    return token.access_token


def drop_token(platform: LtiPlatform, scopes: list[str]) -> None:
    _cache().delete(cache_key(platform, scopes))


def service_request(platform: LtiPlatform, method: str, url: str, scopes: list[str], *,
                    body: Any = None, content_type: str | None = None,
                    accept: str | None = None,
                    params: dict[str, str] | None = None) -> outbound.Response:
    """One authorised service call; a 401 drops the cached token and retries once.

    Returns the 2xx response; raises :class:`TransientServiceError`,
    :class:`ServiceRefused` or :class:`ServiceUrlRefused` otherwise. The URL is checked
    before any token is asked for.
    """
    try:
        outbound.check_url(url, platform_policy(platform))
    except outbound.OutboundRefused as exc:
        raise ServiceUrlRefused(f"{method} {url}: not sent: {exc.reason}") from None
    for attempt in (1, 2):
        headers = {"Authorization": f"Bearer {get_token(platform, scopes)}"}
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = json.dumps(body)
        response = _call(platform, method, url, f"{method} {url}", data=data,
                         headers=headers, params=params)
        if response.status == 401:
            drop_token(platform, scopes)
            if attempt == 1:
                continue
            raise TransientServiceError(f"{method} {url}: HTTP 401 even with a fresh token")
        raise_for_outcome(response, f"{method} {url}")
        return response
    raise AssertionError("unreachable")  # pragma: no cover
