"""OIDC nonces that cost nothing to issue and can be used once.

A nonce is ``<expiry>.<random>.<mac>``: an expiry (unix seconds, hex), 128 random bits, and
an HMAC-SHA256 over both under a key derived from ``SECRET_KEY`` (HKDF, its own ``info``).
The login therefore stores nothing (no Redis or database round trip at all); the launch
checks the MAC (a nonce we never issued is refused), the expiry, and then *claims* the nonce
in the LTI store (Redis ``SET NX``, else an ``INSERT … ON CONFLICT DO NOTHING``) until that
expiry, so a second launch with the same id_token is refused as a replay.

This is what pylti1p3's stored nonce gives (issued by us, unexpired, single-use) with one
store write per launch instead of a write at login and a delete at launch. Written here
rather than taken from a library because the check is three lines of ``hmac`` and no LTI
library offers a stateless nonce with a single-use claim.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: How long the browser has between our login redirect and posting the id_token back.
NONCE_TTL = 600
_INFO = b"lms_plugin lti oidc nonce v1"
_MAC_HEX = 32  # 128 bits of HMAC-SHA256


@functools.lru_cache(maxsize=8)
def _mac_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO).derive(secret_key.encode())


def _mac(secret_key: str, body: str) -> str:
    digest = hmac.new(_mac_key(secret_key), body.encode(), hashlib.sha256).hexdigest()
    return digest[:_MAC_HEX]


def issue(secret_key: str, now: float | None = None, ttl: int = NONCE_TTL) -> str:
    """A fresh nonce valid for ``ttl`` seconds."""
    body = f"{int(now if now is not None else time.time()) + ttl:x}.{secrets.token_hex(16)}"
    return f"{body}.{_mac(secret_key, body)}"


def expiry(secret_key: str, nonce: str, now: float | None = None) -> int | None:
    """The nonce's expiry (unix seconds) when we issued it and it has not expired, else None."""
    parts = nonce.split(".") if isinstance(nonce, str) and len(nonce) <= 128 else []
    if len(parts) != 3:
        return None
    expires_hex, _, mac = parts
    body = nonce[: -len(mac) - 1]
    if not hmac.compare_digest(_mac(secret_key, body).encode(), mac.encode()):
        return None
    try:
        expires = int(expires_hex, 16)
    except ValueError:
        return None
    return expires if expires > (now if now is not None else time.time()) else None
