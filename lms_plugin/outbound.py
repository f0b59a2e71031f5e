"""The one outbound HTTP client: every request the tool makes to another server goes here.

Platform key sets, OAuth2 tokens, AGS line items and scores, NRPS rosters and Dynamic
Registration all carry URLs that came from somewhere else (an LMS's configuration, an
id_token's claims, a ``Link`` header), so each call is checked against one rule
(issue 10.1-10.3, DESIGN "Outbound HTTP"):

* **hosts**: a URL is used only when its host is one of the caller's allowed hosts
  (:class:`OutboundPolicy`; for a platform: its issuer, token and key-set hosts plus the
  hosts an admin allowed for that registration). Nothing is sent otherwise.
* **scheme**: ``https`` only in production (``LMS_ENV=production``); no credentials in URLs.
* **addresses**: when ``LMS_OUTBOUND_BLOCK_PRIVATE`` is on (always in production), a host
  that resolves to a loopback, private, link-local, multicast, reserved or otherwise
  non-global address is refused, except the networks listed in
  ``LMS_OUTBOUND_PRIVATE_NETWORKS`` (an intranet LMS). The check runs on the address
  actually connected to, at connect time (DNS rebinding cannot swap the address after the
  check), IPv4-mapped IPv6 addresses included.
* **the demo LMS** (``LMS_DEMO``, issue 12.3): the one exception to the address rule. The
  demo platform is served by the tool itself, so its key set, token, AGS and NRPS URLs sit
  under ``<LMS_BASE_URL>/demo/``, usually on a loopback or intranet address. When the demo
  is on, a URL with exactly the base URL's scheme, host and port and a path under
  ``/demo/`` may connect to whatever that host resolves to (:attr:`OutboundPolicy.
  demo_origin`); every other URL, the same host on another port or path included, is
  checked as usual, and with the demo off nothing changes. The host rule still applies:
  only the demo platform's registration lists the tool's own host.
* **no redirects**, no proxies or ``.netrc`` from the environment, no retries.
* **a total deadline** (``LMS_OUTBOUND_DEADLINE``, default 10 s) for DNS, connect, TLS,
  headers and body together: a server that drips one byte at a time is cut when it runs out (a
  watchdog shuts the socket down), not after each read's timeout.
* **a size cap** (``LMS_OUTBOUND_MAX_BYTES``, default 2 MiB) on the decoded body, read
  streamed: a larger answer is abandoned, never held in memory.

Two errors: :class:`OutboundRefused` (the rule forbids the URL or its address; nothing
was sent and retrying cannot help) and :class:`OutboundFailed` (network error, deadline,
size cap; trying later may help). Their ``reason`` never contains a response body.

A test (tests/lti/test_outbound.py) fails when any other module imports an HTTP library
or opens sockets itself, so the rule cannot be forgotten.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
import urllib3
from flask import current_app, has_app_context
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

DEFAULT_DEADLINE = 10.0
#: Where the demo LMS (``lms_plugin.demo``) serves its platform endpoints.
DEMO_PATH = "/demo/"
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
CHUNK = 16384

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundError(Exception):
    """Base of the client's errors; ``reason`` is one line safe to show and store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboundRefused(OutboundError):
    """The outbound rule forbids this URL or the address its host resolves to.

    Nothing was sent; the same request will be refused again.
    """


class OutboundFailed(OutboundError):
    """The request was allowed but did not produce a complete answer.

    ``kind`` is ``"network"`` (unreachable, reset, TLS), ``"deadline"`` (no complete answer
    within the total deadline) or ``"too_large"`` (the body exceeded the size cap).
    """

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class OutboundPolicy:
    """What one outbound call may do. Build it with :func:`policy_for`.

    ``hosts``: lower-case host names a URL may use. ``deadline``: seconds for the whole
    call. ``max_bytes``: cap on the decoded body. ``https_only``: refuse ``http``.
    ``block_private``: refuse non-global addresses except ``private_networks``.
    """

    hosts: frozenset[str]
    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = DEFAULT_MAX_BYTES
    https_only: bool = False
    block_private: bool = False
    private_networks: tuple[IpNetwork, ...] = ()
    #: (scheme, host, port) of ``LMS_BASE_URL`` when the demo LMS is on, else None.
    demo_origin: tuple[str, str, int] | None = None

    def is_demo_url(self, parts: SplitResult) -> bool:
        """Whether the URL is the demo LMS's own (same origin as the tool, under /demo/)."""
        if self.demo_origin is None or not parts.hostname:
            return False
        origin = (parts.scheme, parts.hostname.lower().rstrip("."), _port(parts))
        path = parts.path
        # No dot segments (urllib3 removes them, so /demo/../x would be sent as /x).
        dotted = "/." in path or "%2e" in path.lower() or "\\" in path
        return origin == self.demo_origin and path.startswith(DEMO_PATH) and not dotted

    def address_allowed(self, address: IpAddress) -> bool:
        """Whether a connection to ``address`` is allowed (see the module docstring)."""
        if not self.block_private:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.private_networks):
            return True
        return not is_non_public(address)


def is_non_public(address: IpAddress) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified or not global.

    ``is_global`` alone is not enough: IPv4 multicast (224.0.0.0/4) counts as global.
    """
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


def host_of(url: str | None) -> str | None:
    """The lower-case host name of an absolute URL, or None when it has none."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def demo_origin() -> tuple[str, str, int] | None:
    """(scheme, host, port) of ``LMS_BASE_URL`` when ``LMS_DEMO`` is on; None otherwise."""
    if not _config("LMS_DEMO", False):
        return None
    base = urlsplit(str(_config("LMS_BASE_URL", "")))
    if not base.hostname:
        return None
    return base.scheme, base.hostname.lower().rstrip("."), _port(base)


def _config(name: str, default: Any) -> Any:
    if not has_app_context():
        return default
    value = current_app.config.get(name)
    return default if value is None else value


def policy_for(hosts: Iterable[str | None], *, deadline: float | None = None,
               max_bytes: int | None = None) -> OutboundPolicy:
    """The policy for calls to ``hosts`` (host names or URLs) under the app's settings.

    ``deadline`` (seconds) and ``max_bytes`` may only tighten the configured values.
    """
    names = set()
    for item in hosts:
        if not item:
            continue
        name = host_of(item) if "/" in item else item.strip().lower().rstrip(".")
        if name:
            names.add(name)
    configured_deadline = float(_config("LMS_OUTBOUND_DEADLINE", DEFAULT_DEADLINE))
    configured_bytes = int(_config("LMS_OUTBOUND_MAX_BYTES", DEFAULT_MAX_BYTES))
    production = _config("LMS_ENV", "development") == "production"
    return OutboundPolicy(
        hosts=frozenset(names),
        deadline=min(configured_deadline, deadline) if deadline else configured_deadline,
        max_bytes=min(configured_bytes, max_bytes) if max_bytes else configured_bytes,
        https_only=production,
        block_private=production or bool(_config("LMS_OUTBOUND_BLOCK_PRIVATE", False)),
        private_networks=tuple(_config("LMS_OUTBOUND_PRIVATE_NETWORKS", ())),
        demo_origin=demo_origin(),
    )


def check_url(url: str, policy: OutboundPolicy) -> SplitResult:
    """Refuse (:class:`OutboundRefused`) a URL the policy does not allow; return its parts.

    Only the URL is checked here; the address is checked when connecting.
    """
    try:
        parts = urlsplit((url or "").strip())
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise OutboundRefused("the URL is not valid") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OutboundRefused("only absolute http(s) URLs are used")
    if parts.scheme != "https" and policy.https_only:
        raise OutboundRefused(f"{parts.hostname}: only https is used in production")
    if parts.username or parts.password:
        raise OutboundRefused("URLs with credentials are not used")
    host = host_of(url)
    if host not in policy.hosts:
        raise OutboundRefused(f"{host} is not one of this registration's hosts")
    return parts


@dataclass
class Response:
    """A complete answer: status, headers and the whole (capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.body.decode("utf-8"))


# ----------------------------------------------------------------- connect-time checks


@dataclass
class _Call:
    """One call in progress: its policy, its deadline and the sockets the watchdog cuts."""

    policy: OutboundPolicy
    ends_at: float
    demo: bool = False  # the URL is the demo LMS's own: its address is not checked
    expired: bool = False
    sockets: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("outbound deadline reached")
        return left

    def expire(self) -> None:
        """The watchdog: at the deadline, shut every socket of this call down.

        ``shutdown`` acts on the connection, so shutting a ``dup`` of the socket down also
        ends a read blocked in another thread, whether in TLS, headers or body.
        """
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self.lock:
            for sock in self.sockets:
                sock.close()
            self.sockets.clear()

    def connect(self, host: str, port: int, options: Any) -> socket.socket:
        """Resolve, refuse forbidden addresses, connect to an allowed one (not re-resolved)."""
        # The resolver cannot be interrupted: it runs in a pool thread so that a slow DNS
        # answer costs this call no more than its deadline.
        lookup = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout=self.remaining())
        except concurrent.futures.TimeoutError:
            self.expired = True
            raise TimeoutError("outbound deadline reached") from None
        except socket.gaierror as exc:
            raise OSError(f"{host} could not be resolved") from exc
        allowed = []
        for family, kind, proto, _, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if self.demo or self.policy.address_allowed(address):
                allowed.append((family, kind, proto, sockaddr))
        if not allowed:
            raise OutboundRefused(f"{host} resolves to a loopback, private or reserved "
                                  "address, which outbound calls do not reach")
        last: OSError | None = None
        for family, kind, proto, sockaddr in allowed:
            sock = socket.socket(family, kind, proto)
            try:
                for option in options or ():
                    sock.setsockopt(*option)
                sock.settimeout(self.remaining())
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            with self.lock:
                self.sockets.append(sock.dup())
                if self.expired:
                    sock.close()
                    raise TimeoutError("outbound deadline reached")
            return sock
        raise last or OSError(f"could not connect to {host}")


_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                  thread_name_prefix="lms-outbound-dns")
_current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "lms_outbound_call", default=None)


class _GuardedConnectionMixin:
    """urllib3 connection whose socket comes from :meth:`_Call.connect` (checked address)."""

    def _new_conn(self) -> socket.socket:
        call = _current.get()
        if call is None:
            raise OutboundRefused("connections are made only by lms_plugin.outbound.request")
        try:
            return call.connect(self._dns_host, self.port, self.socket_options)  # type: ignore[attr-defined]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc  # type: ignore[attr-defined]
        except OutboundRefused:
            raise
        except OSError as exc:
            raise NewConnectionError(self, f"failed to connect: {exc}") from exc  # type: ignore[arg-type]


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections check the address they connect to."""

    def __init__(self) -> None:
        super().__init__(max_retries=urllib3.Retry(total=0, redirect=False, read=False))

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool,
                                                   "https": _GuardedHTTPSPool}


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment
    adapter = GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def request(method: str, url: str, policy: OutboundPolicy, *,
            headers: Mapping[str, str] | None = None,
            params: Mapping[str, str] | None = None,
            data: Any = None, json_body: Any = None) -> Response:
    """Send one request under ``policy`` and return the complete answer (any status).

    Raises :class:`OutboundRefused` before sending anything when the URL or its address
    is not allowed, :class:`OutboundFailed` on network errors, at the total deadline and
    when the body exceeds ``policy.max_bytes``. Redirects are returned, never followed.
    """
    parts = check_url(url, policy)
    call = _Call(policy, time.monotonic() + policy.deadline, demo=policy.is_demo_url(parts))
    token = _current.set(call)
    watchdog = threading.Timer(policy.deadline, call.expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        with _session() as session:
            try:
                response = session.request(
                    method, url, headers=dict(headers or {}), params=params, data=data,
                    json=json_body, allow_redirects=False, stream=True,
                    timeout=(policy.deadline, policy.deadline))
                with response:
                    length = response.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) > policy.max_bytes:
                        raise _TooLarge
                    body = bytearray()
                    for chunk in response.raw.stream(CHUNK, decode_content=True):
                        body += chunk
                        if len(body) > policy.max_bytes:
                            raise _TooLarge
                        if call.expired:
                            raise TimeoutError("outbound deadline reached")
                    if call.expired:
                        raise TimeoutError("outbound deadline reached")
                    return Response(response.status_code, response.headers, bytes(body),
                                    url, response.reason or "")
            except _TooLarge:
                raise OutboundFailed(f"the answer from {host_of(url)} is larger than "
                                     f"{policy.max_bytes} bytes", "too_large") from None
            except OutboundRefused:
                raise
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                    ValueError) as exc:
                if call.expired or time.monotonic() >= call.ends_at:
                    raise OutboundFailed(f"{host_of(url)} gave no complete answer within "
                                         f"{policy.deadline:g} s", "deadline") from None
                raise OutboundFailed(f"{host_of(url)} could not be reached "
                                     f"({type(exc).__name__})", "network") from None
    finally:
        watchdog.cancel()
        _current.reset(token)
        call.close()


class _TooLarge(Exception):
    pass
