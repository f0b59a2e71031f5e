# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""The one outbound HTTP client (issue 10.1, 10.3): hosts, schemes, addresses at connect
time, redirects, total deadline, size cap, error text, duplicate kids, and a check that no
other module makes HTTP calls itself."""

from __future__ import annotations

import ast
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from lms_plugin import outbound
from lms_plugin.config import ConfigError, load_config
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.lti import ags_jobs
from lms_plugin.lti.models import LtiPlatform
from tests.conftest import login
from tests.lti.ags_helpers import fake_lms, services  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
C0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


# ------------------------------------------------------------------ a configurable server


class Server:
    """A loopback HTTP server whose one answer each test sets (status, body, drip, headers)."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.drip: float | None = None  # seconds between body bytes
        self.send_length = True
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                server.hits.append(self.command + " " + self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(server.status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                if server.send_length:
                    self.send_header("Content-Length", str(len(server.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if server.drip is None:
                        self.wfile.write(server.body)
                        return
                    for i in range(len(server.body)):
                        self.wfile.write(server.body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(server.drip)
                except OSError:
                    pass  # the client hung up (as it should, at its deadline)

            do_GET = do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/x", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def settings(app) -> Iterator[dict[str, Any]]:
    """Flip outbound settings for one test (the app is shared by the session)."""
    names = ("LMS_OUTBOUND_DEADLINE", "LMS_OUTBOUND_MAX_BYTES", "LMS_OUTBOUND_BLOCK_PRIVATE",
             "LMS_OUTBOUND_PRIVATE_NETWORKS", "LMS_ENV")
    saved = {name: app.config.get(name) for name in names}
    yield app.config
    app.config.update(saved)


def _run(app, now=C0):
    with app.app_context():
        report = jobs.run_due_jobs("test-worker", limit=100, now=now)
        db.session.remove()
        return report


def _jobs(app) -> list[OutboxJob]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxJob).order_by(OutboxJob.id)).all()
        db.session.expunge_all()
        return list(rows)


def _score(app, user_sub: str = "u") -> int:
    with app.app_context():
        user_id = db.session.scalar(select(ags_jobs.LtiIdentity.user_id).where(
            ags_jobs.LtiIdentity.sub == user_sub))
        link = db.session.scalar(select(ags_jobs.LtiResourceLink))
        job = ags_jobs.enqueue_score(link_id=link.id, user_id=user_id, score_given=90,
                                     event_at=T0)
        db.session.commit()
        return job.id


# --------------------------------------------------------------- SSRF from claims (10.1)


def test_ags_lineitem_on_a_foreign_host_is_never_called(app, client, launcher, services):
    """The lineitem claim names another host (here: ``localhost``, the same fake LMS under
    a name that is not the registration's): the score is not sent, the job is rejected."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    foreign = lms.lineitem_url(item).replace("127.0.0.1", "localhost")
    services.launch(launcher, client, sub="u", module="m1", lineitem=foreign)
    job_id = _score(app)

    _run(app)

    job = next(j for j in _jobs(app) if j.id == job_id)
    assert job.status == "rejected", job.last_error
    assert "localhost is not one of this registration's hosts" in job.last_error
    assert lms.requests["POST scores"] == 0
    assert lms.token_requests == 0  # refused before any token was asked for
    assert lms.final(item, "u") is None


def test_admin_allowed_host_is_called(app, client, launcher, services):
    """``lms-plugin platform allow-host ID HOST``: that host's service URLs are used."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1",
                    lineitem=lms.lineitem_url(item).replace("127.0.0.1", "localhost"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["platform", "allow-host", str(services.platform_id),
                                 "LOCALHOST"])
    assert result.exit_code == 0, result.output
    assert "localhost" in result.output
    with app.app_context():
        assert db.session.get(LtiPlatform, services.platform_id).allowed_hosts == ["localhost"]
    _score(app)

    _run(app)

    assert lms.final(item, "u").score_given == 90


@pytest.mark.parametrize("bad", ["https://x.example/path", "host:8080", "", "a b"])
def test_allow_host_refuses_what_is_not_a_host_name(app, services, bad):
    result = app.test_cli_runner().invoke(args=["platform", "allow-host",
                                                str(services.platform_id), bad])
    assert result.exit_code != 0
    assert "host" in result.output
    with app.app_context():
        assert db.session.get(LtiPlatform, services.platform_id).allowed_hosts == []


def test_platform_add_takes_allowed_hosts(app, factory):
    factory.organisation("General Hospital")
    result = app.test_cli_runner().invoke(args=[
        "platform", "add", "--issuer", "https://canvas.instructure.com",
        "--client-id", "1000", "--auth-login-url", "https://sso.canvaslms.com/auth",
        "--auth-token-url", "https://sso.canvaslms.com/login/oauth2/token",
        "--key-set-url", "https://sso.canvaslms.com/api/lti/security/jwks",
        "--deployment-id", "1", "--allow-host", "hospital.instructure.com"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        platform = db.session.scalars(select(LtiPlatform)).one()
        assert platform.service_hosts == ["canvas.instructure.com", "sso.canvaslms.com",
                                          "hospital.instructure.com"]
    shown = app.test_cli_runner().invoke(args=["platform", "show", str(platform.id)])
    assert "hospital.instructure.com" in shown.output


def test_nrps_next_link_to_a_foreign_host_is_not_followed(app, client, launcher, services):
    lms = services.lms
    lms.members["course-1"] = [{"user_id": f"n{i}", "status": "Active",
                                "roles": ["Learner"]} for i in range(4)]
    services.launch(launcher, client, sub="teacher", module="m1", nrps=True)
    foreign = lms.base.replace("127.0.0.1", "localhost")  # the same server, another name
    lms.memberships_url = lambda context="course-1": f"{foreign}/{context}/memberships"
    with app.app_context():
        from lms_plugin.lti import nrps
        from lms_plugin.lti.models import LtiContext

        context = db.session.scalars(select(LtiContext)).one()
        nrps.request_sync(context.id, db.session.get(LtiPlatform,
                                                     context.platform_id).organisation_id)
        db.session.commit()

    _run(app)

    job = [j for j in _jobs(app) if j.kind == "nrps.sync"][-1]
    assert job.status == "rejected", job.last_error
    assert "localhost is not one of this registration's hosts" in job.last_error
    assert lms.requests["GET memberships"] == 1  # the first page, on the registration's host


def test_nrps_memberships_url_on_a_foreign_host_is_refused(app, client, launcher, services):
    lms = services.lms
    foreign = lms.base.replace("127.0.0.1", "localhost")  # the same server, another name
    lms.memberships_url = lambda context="course-1": f"{foreign}/{context}/memberships"
    services.launch(launcher, client, sub="teacher", module="m1", nrps=True)
    with app.app_context():
        from lms_plugin.lti import nrps
        from lms_plugin.lti.models import LtiContext

        context = db.session.scalars(select(LtiContext)).one()
        assert "localhost" in context.memberships_url
        nrps.request_sync(context.id, db.session.get(LtiPlatform,
                                                     context.platform_id).organisation_id)
        db.session.commit()

    _run(app)

    job = [j for j in _jobs(app) if j.kind == "nrps.sync"][-1]
    assert job.status == "rejected" and "not one of this registration's hosts" in \
        job.last_error
    assert lms.requests["GET memberships"] == 0


def test_plain_http_service_url_is_refused_in_production(app, client, launcher, services,
                                                         settings):
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    _score(app)
    settings["LMS_ENV"] = "production"

    _run(app)

    job = _jobs(app)[-1]
    assert job.status == "rejected" and "only https is used in production" in job.last_error
    assert lms.requests["POST scores"] == 0


def test_private_addresses_are_refused_when_blocked(app, client, launcher, services,
                                                    settings):
    """The fake LMS is on 127.0.0.1: with the production rule on, nothing reaches it."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    _score(app)
    settings["LMS_OUTBOUND_BLOCK_PRIVATE"] = True

    _run(app)

    job = _jobs(app)[-1]
    assert job.status == "rejected", job.last_error
    assert "loopback, private or reserved" in job.last_error
    assert lms.token_requests == 0 and lms.requests["POST scores"] == 0

    # An intranet LMS: its network is listed, so it is reached.
    settings["LMS_OUTBOUND_PRIVATE_NETWORKS"] = (ipaddress.ip_network("127.0.0.0/8"),)
    _score(app)
    _run(app, C0 + timedelta(minutes=1))
    assert lms.final(item, "u").score_given == 90


# ---------------------------------------------------------------- the client itself


def _policy(app, *hosts: str, **overrides: Any) -> outbound.OutboundPolicy:
    with app.app_context():
        return outbound.policy_for(hosts or ("127.0.0.1",), **overrides)


def test_connect_time_check_uses_the_resolved_address(app, server, settings, monkeypatch):
    """A registration host name that resolves to loopback (DNS rebinding: public when
    someone looked, 127.0.0.1 when we connect) is refused at connect time."""
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        if host == "lms.rebind.test":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert socket.getaddrinfo("lms.rebind.test", 80)[0][4][0] == "93.184.216.34"  # "checked"
    settings["LMS_OUTBOUND_BLOCK_PRIVATE"] = True
    policy = _policy(app, "lms.rebind.test")
    with pytest.raises(outbound.OutboundRefused, match="loopback, private or reserved"):
        outbound.request("GET", server.url(host="lms.rebind.test"), policy)
    assert server.hits == []

    settings["LMS_OUTBOUND_BLOCK_PRIVATE"] = False  # development: the same name is reached
    answer = outbound.request("GET", server.url(host="lms.rebind.test"),
                              _policy(app, "lms.rebind.test"))
    assert answer.status == 200 and server.hits == ["GET /x"]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "224.0.0.1", "0.0.0.0",  # noqa: S104
                                     "100.64.0.1",
                                     "240.0.0.1", "::1", "fe80::1", "fd00::1", "ff02::1",
                                     "::ffff:127.0.0.1", "::ffff:10.0.0.1"])
def test_non_public_addresses_are_refused(address):
    policy = outbound.OutboundPolicy(hosts=frozenset(), block_private=True)
    assert not policy.address_allowed(ipaddress.ip_address(address))


def test_public_addresses_are_allowed():
    policy = outbound.OutboundPolicy(hosts=frozenset(), block_private=True)
    assert policy.address_allowed(ipaddress.ip_address("93.184.216.34"))
    assert policy.address_allowed(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_redirects_are_returned_not_followed(app, server):
    server.status = 302
    server.headers["Location"] = "http://169.254.169.254/latest/meta-data/"
    answer = outbound.request("GET", server.url(), _policy(app))
    assert answer.status == 302
    assert server.hits == ["GET /x"]


def test_drip_fed_answer_is_cut_at_the_total_deadline(app, server):
    server.body = json.dumps({"keys": ["x" * 200]}).encode()
    server.drip = 0.05  # each read returns within its timeout; the whole takes 10+ s
    started = time.monotonic()
    with pytest.raises(outbound.OutboundFailed, match="no complete answer within 0.3 s") as exc:
        outbound.request("GET", server.url(), _policy(app, deadline=0.3))
    assert exc.value.kind == "deadline"
    assert time.monotonic() - started < 1.5


def test_drip_fed_headers_are_cut_at_the_total_deadline(app):
    """A server that sends its status line one byte at a time is cut too."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(outbound.OutboundFailed) as exc:
            outbound.request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/",
                             _policy(app, deadline=0.3))
    finally:
        stop.set()
        listener.close()
    assert exc.value.kind == "deadline"
    assert time.monotonic() - started < 1.5


def test_slow_name_resolution_is_cut_at_the_total_deadline(app, monkeypatch):
    real = socket.getaddrinfo
    release = threading.Event()

    def slow(host, *args, **kwargs):
        if host == "slow-dns.test":
            release.wait(10)  # a resolver that does not answer
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    try:
        with pytest.raises(outbound.OutboundFailed) as exc:
            outbound.request("GET", "http://slow-dns.test/x",
                             _policy(app, "slow-dns.test", deadline=0.3))
    finally:
        release.set()
    assert exc.value.kind == "deadline"
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("send_length", [True, False])
def test_answer_over_the_size_cap_is_abandoned(app, server, send_length):
    server.body = b"[" + b"1," * 4000 + b"1]"
    server.send_length = send_length
    with pytest.raises(outbound.OutboundFailed, match="larger than 4096 bytes") as exc:
        outbound.request("GET", server.url(), _policy(app, max_bytes=4096))
    assert exc.value.kind == "too_large"


def test_urls_are_checked_before_anything_is_sent(app, server, settings):
    policy = _policy(app)
    for url, words in [(server.url(host="localhost"), "not one of this registration's hosts"),
                       ("ftp://127.0.0.1/x", "absolute http"),
                       (f"http://u:p@127.0.0.1:{server.port}/x", "credentials"),
                       ("http://127.0.0.1:99999/x", "not valid")]:
        with pytest.raises(outbound.OutboundRefused, match=words):
            outbound.request("GET", url, policy)
    settings["LMS_ENV"] = "production"
    with pytest.raises(outbound.OutboundRefused, match="only https"):
        outbound.request("GET", server.url(), _policy(app))
    assert server.hits == []


def test_platform_error_text_is_trimmed_and_escaped_on_admin_jobs(app, client, launcher,
                                                                  services, server, factory):
    """A platform's refusal is shown in its own words, one line, at most 200 characters,
    escaped; never its whole body."""
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    with app.app_context():  # the token endpoint: a server answering with hostile text
        db.session.get(LtiPlatform, services.platform_id).auth_token_url = server.url("/token")
        db.session.commit()
    server.status = 400
    server.body = json.dumps({"error": "<script>alert(1)</script>\n" + "z" * 5000}).encode()
    _score(app)

    _run(app)

    job = _jobs(app)[-1]
    assert job.status == "rejected"
    assert "<script>alert(1)</script> zzz" in job.last_error
    assert "z" * 300 not in job.last_error and "\n" not in job.last_error
    admin = app.test_client()
    assert login(admin, factory.email_of(factory.user("admin"))).status_code == 302
    page = admin.get("/admin/jobs").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page


# ---------------------------------------------------------------- platform key set (10.3)


def test_drip_fed_key_set_is_cut_at_the_deadline(app, client, make_platform, launcher,
                                                 server, settings, count_rows):
    """The reviewer's key set dripped one byte every 4 s and held a launch for 40 s."""
    platform = make_platform()
    server.body = json.dumps({"keys": [platform.key.jwk]}).encode()
    server.drip = 0.05
    with app.app_context():
        db.session.get(LtiPlatform, platform.platform_id).key_set_url = server.url("/jwks")
        db.session.commit()
    settings["LMS_OUTBOUND_DEADLINE"] = 0.4
    before = count_rows()
    started = time.monotonic()

    response = launcher.launch(client, platform)

    assert time.monotonic() - started < 2.5
    assert response.status_code == 401
    assert "no complete answer within 0.4 s" in response.get_data(as_text=True)
    assert count_rows() == before


def test_oversized_key_set_is_refused(app, client, make_platform, launcher, server, settings):
    platform = make_platform()
    server.body = json.dumps({"keys": [platform.key.jwk], "padding": "p" * 5000}).encode()
    with app.app_context():
        db.session.get(LtiPlatform, platform.platform_id).key_set_url = server.url("/jwks")
        db.session.commit()
    settings["LMS_OUTBOUND_MAX_BYTES"] = 4096

    response = launcher.launch(client, platform)

    assert response.status_code == 401
    assert "larger than 4096 bytes" in response.get_data(as_text=True)


def test_key_set_with_two_keys_of_one_kid_is_refused(app, client, make_platform, launcher,
                                                     count_rows):
    """Order must not decide which key verifies: the ambiguous set is refused, even when
    the first key would verify the id_token."""
    from tests.lti.platform import new_key

    platform = make_platform()
    twin = new_key()
    twin.jwk["kid"] = platform.key.kid
    platform.server.keysets[platform.name] = [platform.key.jwk, twin.jwk]
    before = count_rows()

    response = launcher.launch(client, platform)

    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "several keys with kid" in page and "ambiguous" in page
    assert count_rows() == before


# ------------------------------------------------------------- the rule cannot be forgotten

#: Modules that make network connections; only lms_plugin/outbound.py may use them.
NETWORK_MODULES = {"requests", "urllib3", "urllib.request", "http.client", "httpx",
                   "aiohttp", "pycurl", "httplib2", "pylti1p3.service_connector",
                   "pylti1p3.assignments_grades", "pylti1p3.names_roles"}
SOCKET_CALLS = {"socket", "create_connection", "getaddrinfo", "socketpair", "fromfd"}


def _network_uses(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES):
                found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
                break
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "socket" and node.attr in SOCKET_CALLS):
            found.append(f"{path.relative_to(root)}:{node.lineno} calls socket.{node.attr}")
    return found


def test_no_module_but_the_outbound_client_makes_http_calls():
    offenders = []
    for path in sorted((ROOT / "lms_plugin").rglob("*.py")):
        if path == ROOT / "lms_plugin" / "outbound.py":
            continue
        offenders += _network_uses(path)
    assert offenders == [], "\n".join(offenders)


def test_the_check_finds_a_direct_call(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import requests\nfrom urllib.request import urlopen\nimport socket\n"
                      "socket.create_connection(('x', 1))\n")
    assert len(_network_uses(sample, tmp_path)) == 3


def test_launch_and_services_use_only_the_guarded_adapter(app, client, launcher, services,
                                                          monkeypatch):
    """At run time too: pylti1p3's own ``requests`` key fetch is never used."""
    original = requests.adapters.HTTPAdapter.send
    used = []

    def send(self, request, *args, **kwargs):
        assert isinstance(self, outbound.GuardedAdapter), f"unguarded call to {request.url}"
        used.append(request.url)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    lms = services.lms
    item = lms.add_lineitem("course-1", "m1")
    services.launch(launcher, client, sub="u", module="m1", lineitem=lms.lineitem_url(item))
    _score(app)
    _run(app)
    assert lms.final(item, "u").score_given == 90
    assert any(url.endswith("/jwks") for url in used)
    assert any(url.endswith("/token") for url in used)


# ---------------------------------------------------------------------------- settings


def test_outbound_settings_are_parsed(tmp_path):
    config = load_config(tmp_path, {"LMS_OUTBOUND_DEADLINE": "500ms",
                                    "LMS_OUTBOUND_MAX_BYTES": "65536",
                                    "LMS_OUTBOUND_BLOCK_PRIVATE": "1",
                                    "LMS_OUTBOUND_PRIVATE_NETWORKS": "10.20.0.0/16, 192.168.5.7"})
    assert config["LMS_OUTBOUND_DEADLINE"] == 0.5
    assert config["LMS_OUTBOUND_MAX_BYTES"] == 65536
    assert config["LMS_OUTBOUND_BLOCK_PRIVATE"] is True
    assert [str(n) for n in config["LMS_OUTBOUND_PRIVATE_NETWORKS"]] == ["10.20.0.0/16",
                                                                         "192.168.5.7/32"]
    defaults = load_config(tmp_path, {})
    assert defaults["LMS_OUTBOUND_DEADLINE"] == 10.0
    assert defaults["LMS_OUTBOUND_BLOCK_PRIVATE"] is False


@pytest.mark.parametrize("env, words", [
    ({"LMS_OUTBOUND_DEADLINE": "soon"}, "LMS_OUTBOUND_DEADLINE"),
    ({"LMS_OUTBOUND_DEADLINE": "0"}, "LMS_OUTBOUND_DEADLINE"),
    ({"LMS_OUTBOUND_MAX_BYTES": "12"}, "LMS_OUTBOUND_MAX_BYTES"),
    ({"LMS_OUTBOUND_BLOCK_PRIVATE": "maybe"}, "LMS_OUTBOUND_BLOCK_PRIVATE"),
    ({"LMS_OUTBOUND_PRIVATE_NETWORKS": "intranet"}, "not a network"),
    ({"LMS_ENV": "production", "SECRET_KEY": "s" * 40,
      "DATABASE_URL": "postgresql://db/x", "LMS_BASE_URL": "https://tool.example",
      "LMS_OUTBOUND_BLOCK_PRIVATE": "0"}, "cannot be turned off"),
])
def test_bad_outbound_settings_name_the_problem(tmp_path, env, words):
    with pytest.raises(ConfigError, match=words):
        load_config(tmp_path, env)


def test_production_always_blocks_private_addresses(tmp_path):
    config = load_config(tmp_path, {"LMS_ENV": "production", "SECRET_KEY": "s" * 40,
                                    "DATABASE_URL": "postgresql://db/x",
                                    "LMS_BASE_URL": "https://tool.example"})
    assert config["LMS_OUTBOUND_BLOCK_PRIVATE"] is True


def test_pylti1p3s_own_key_fetch_goes_through_the_client(app, server, settings):
    """pylti1p3's ``fetch_public_key`` (``requests``, no timeout at all) is replaced: any
    library path that still calls it gets the deadline and the duplicate-kid rule."""
    from lms_plugin.lti.tool import LaunchRejected, LaunchValidator

    server.body = json.dumps({"keys": [{"kid": "a", "kty": "RSA"}] * 2}).encode()
    with app.app_context(), pytest.raises(LaunchRejected, match="ambiguous"):
        LaunchValidator.fetch_public_key(None, server.url("/jwks"))  # type: ignore[arg-type]
    server.body = json.dumps({"keys": [{"kid": "a", "kty": "RSA"}]}).encode()
    server.drip = 0.05
    settings["LMS_OUTBOUND_DEADLINE"] = 0.3
    started = time.monotonic()
    with app.app_context(), pytest.raises(LaunchRejected, match="no complete answer"):
        LaunchValidator.fetch_public_key(None, server.url("/jwks"))  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.5
