"""The tool's RSA signing keys: generation, encryption at rest, rotation, the public JWKS.

Private keys are stored in the database encrypted with AES-256-GCM under a key derived from
``SECRET_KEY`` by HKDF-SHA256 (salt-less, ``info`` names the purpose), so a leaked database
dump does not leak the signing key, and no key files need to be shared between web workers.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiToolKey

#: How long a replaced key stays published so platforms that cached our JWKS keep verifying.
DEFAULT_GRACE = timedelta(days=7)
_INFO = b"lms_plugin lti tool private key v1"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    public_pem: str


def _aead(secret_key: str | None = None) -> AESGCM:
    secret = (secret_key or current_app.config["SECRET_KEY"]).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return AESGCM(key)


def encrypt_private_pem(pem: str, kid: str, secret_key: str | None = None) -> str:
    nonce = os.urandom(12)
    sealed = _aead(secret_key).encrypt(nonce, pem.encode(), kid.encode())
    return base64.b64encode(nonce + sealed).decode()


def decrypt_private_pem(token: str, kid: str, secret_key: str | None = None) -> str:
    raw = base64.b64decode(token)
    return _aead(secret_key).decrypt(raw[:12], raw[12:], kid.encode()).decode()


def _new_key_row() -> LtiToolKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    kid = uuid.uuid4().hex
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return LtiToolKey(kid=kid, public_jwk=jwk, public_pem=public_pem,
                      private_key_encrypted=encrypt_private_pem(private_pem, kid),
                      status="active", created_at=utcnow())


def retire_expired() -> None:
    """Mark retiring keys past their grace period as retired."""
    now = utcnow()
    for key in db.session.scalars(select(LtiToolKey).where(LtiToolKey.status == "retiring")):
        if key.retire_after is not None and key.retire_after <= now:
            key.status = "retired"


def ensure_key() -> LtiToolKey:
    """The newest active key, generating the first one on demand (flushes, no commit)."""
    key = db.session.scalar(
        select(LtiToolKey).where(LtiToolKey.status == "active")
        .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc()).limit(1)
    )
    if key is None:
        key = _new_key_row()
        db.session.add(key)
        db.session.flush()
    return key


def rotate(grace: timedelta = DEFAULT_GRACE, *, actor: Any = None) -> LtiToolKey:
    """Add a new signing key; older active keys stay published until ``now + grace``.
    Audited (``lti.keys.rotate``: the new kid, the retiring kids and until when)."""
    from lms_plugin.accounts.services import record_audit

    retire_expired()
    now = utcnow()
    retiring = []
    for old in db.session.scalars(select(LtiToolKey).where(LtiToolKey.status == "active")):
        old.status = "retiring"
        old.retire_after = now + grace
        retiring.append(old.kid)
    key = _new_key_row()
    db.session.add(key)
    db.session.flush()
    record_audit("lti.keys.rotate", actor=actor,
                 target=("lti_tool_key", key.kid),
                 details={"new_kid": key.kid, "retiring": retiring,
                          "published_until": (now + grace).isoformat()})
    return key


def current_signing_key() -> SigningKey:
    """The key to sign with now (the newest active one, created if none exists yet)."""
    key = ensure_key()
    return SigningKey(key.kid, decrypt_private_pem(key.private_key_encrypted, key.kid),
                      key.public_pem)


def published_keys() -> list[LtiToolKey]:
    """Active keys and retiring keys still inside their grace period."""
    now = utcnow()
    rows = db.session.scalars(
        select(LtiToolKey).where(LtiToolKey.status.in_(("active", "retiring")))
        .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
    )
    return [k for k in rows if k.status == "active" or (k.retire_after and k.retire_after > now)]


def public_jwks() -> dict[str, Any]:
    """The JWKS served at ``/lti/jwks``: every published public key with its ``kid``."""
    return {"keys": [dict(k.public_jwk) for k in published_keys()]}


def all_keys() -> list[LtiToolKey]:
    return list(db.session.scalars(select(LtiToolKey).order_by(LtiToolKey.created_at,
                                                               LtiToolKey.id)))
