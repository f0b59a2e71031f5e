"""A test LTI 1.3 platform: its own RSA keys, its JWKS served over HTTP on 127.0.0.1.

PyPI's ``lti1p3platform`` was evaluated (0.1.8): it is built around Django/FastAPI request
and config classes and only produces well-formed messages, while these tests must also forge
bad ones (alg none, HS256 with the public key, wrong aud, expired…). So this small fixture
signs id_tokens itself with PyJWT and serves its key set from a real HTTP server thread, so
the tool fetches keys over the network exactly as it does from Moodle or Canvas.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"


@dataclass
class PlatformKey:
    kid: str
    private_pem: bytes
    public_pem: bytes
    jwk: dict[str, Any]


def new_key() -> PlatformKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid=kid, alg="RS256", use="sig")
    return PlatformKey(
        kid,
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        private.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo),
        jwk,
    )


class KeyServer:
    """One HTTP server thread serving the JWKS of every test platform at /<name>/jwks."""

    def __init__(self) -> None:
        self.keysets: dict[str, list[dict[str, Any]]] = {}
        self.fetches: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                name = self.path.strip("/").split("/")[0]
                if self.path.endswith("/jwks") and name in server.keysets:
                    server.fetches[name] = server.fetches.get(name, 0) + 1
                    body = json.dumps({"keys": server.keysets[name]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = b"not found"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class TestPlatform:
    """One LMS registration: issuer + client_id, its keys and deployment ids."""

    __test__ = False  # not a pytest test class

    server: KeyServer
    name: str
    issuer: str
    client_id: str
    deployment_id: str = "1"
    keys: list[PlatformKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(new_key())
        self.publish()

    @property
    def key(self) -> PlatformKey:
        return self.keys[-1]

    @property
    def key_set_url(self) -> str:
        return self.server.url(f"/{self.name}/jwks")

    @property
    def auth_login_url(self) -> str:
        return self.server.url(f"/{self.name}/auth")

    @property
    def auth_token_url(self) -> str:
        return self.server.url(f"/{self.name}/token")

    @property
    def fetches(self) -> int:
        return self.server.fetches.get(self.name, 0)

    def publish(self) -> None:
        self.server.keysets[self.name] = [k.jwk for k in self.keys]

    def rotate_key(self) -> PlatformKey:
        """The platform adds a new key, signs with it, and publishes both."""
        self.keys.append(new_key())
        self.publish()
        return self.key

    def register(self, organisation: str = "General Hospital", **kwargs: Any) -> int:
        from lms_plugin.accounts.services import get_or_create_organisation
        from lms_plugin.extensions import db
        from lms_plugin.lti.services import register_platform

        get_or_create_organisation(organisation)  # platforms join existing ones only (12.1)
        platform = register_platform(
            issuer=self.issuer, client_id=self.client_id, auth_login_url=self.auth_login_url,
            auth_token_url=self.auth_token_url, key_set_url=kwargs.pop(
                "key_set_url", self.key_set_url),
            deployment_ids=kwargs.pop("deployment_ids", [self.deployment_id]),
            name=self.name, organisation_name=organisation, **kwargs,
        )
        db.session.commit()
        return platform.id

    # -- messages -----------------------------------------------------------------------
    def claims(self, nonce: str, *, sub: str = "user-1", roles: list[str] | None = None,
               **extra: Any) -> dict[str, Any]:
        """A Moodle-shaped resource link launch (full role URIs, name and email given)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": sub,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "name": "Jane Nurse",
            "given_name": "Jane",
            "family_name": "Nurse",
            "email": "jane.nurse@example.org",
            CLAIM + "message_type": "LtiResourceLinkRequest",
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "target_link_uri": "http://tool.test/lti/launch",
            CLAIM + "resource_link": {"id": "link-1", "title": "Barcode medication admin"},
            CLAIM + "roles": roles if roles is not None else [LIS + "membership#Learner"],
            CLAIM + "context": {"id": "course-1", "label": "BCMA", "title": "BCMA training",
                                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]},
            CLAIM + "tool_platform": {"guid": self.name, "product_family_code": "moodle"},
            CLAIM + "custom": {},
        }
        body.update(extra)
        return body

    def sign(self, body: dict[str, Any], *, key: PlatformKey | None = None,
             alg: str = "RS256", headers: dict[str, Any] | None = None,
             secret: Any = None) -> str:
        key = key or self.key
        head = {"kid": key.kid, **(headers or {})}
        if alg == "none":
            return jwt.encode(body, None, algorithm="none", headers=head)
        if alg == "HS256":
            # The classic confusion attack: HMAC with the platform's *public* key as secret.
            return _hs256(body, secret if secret is not None else key.public_pem, head)
        return jwt.encode(body, key.private_pem, algorithm=alg, headers=head)


def _hs256(body: dict[str, Any], secret: bytes, header: dict[str, Any]) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode()) + "."
                     + b64(json.dumps(body).encode()))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@dataclass
class LoginResult:
    state: str
    nonce: str
    redirect: str


def oidc_login(client, platform: TestPlatform, *, method: str = "GET",
               new_window: bool = True, **params: str):
    """Start a third-party-initiated login as the platform would (browser = ``client``)."""
    data = {"iss": platform.issuer, "login_hint": "hint-1", "client_id": platform.client_id,
            "target_link_uri": "http://tool.test/lti/launch",
            "lti_message_hint": "msg-1", "lti_deployment_id": platform.deployment_id}
    if new_window:
        data["lti1p3_new_window"] = "1"
    data.update(params)
    if method == "GET":
        return client.get("/lti/login?" + urlencode(data))
    return client.post("/lti/login", data=data)


def login_state(response) -> LoginResult:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return LoginResult(query["state"], query["nonce"], location)
