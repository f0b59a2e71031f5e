"""A local fake LMS for LTI Advantage services: token endpoint, line items, scores, rosters.

It runs an HTTP server on 127.0.0.1 and plays one platform registration. It verifies the
tool's client-credentials assertion against the tool's published keys, checks bearer tokens
and scopes, and answers scores like Moodle or like Canvas:

* Moodle (mod/lti/service/gradebookservices/.../scores.php): 400 when userId, timestamp,
  gradingProgress or activityProgress is missing, or for a user without a gradebook role;
  409 when the timestamp is not newer than the stored one at one-second granularity;
  ``scoreGiven`` set to null unless ``FullyGraded`` and the null *saved*, so a Pending score
  erases the recorded grade (:meth:`FakeLms.gradebook` shows "-" as None).
* Canvas: 422 for ``scoreGiven`` without ``scoreMaximum``; 400 for a timestamp older than the
  last result; 422 for a user who is not a student (an instructor previewing);
  ``scoreGiven`` ignored (the previous grade kept) for NotReady, Failed and Pending.

Faults are injected per request with a seeded RNG: timeouts (the answer never comes, with or
without the request applied), connection resets, 500, 429 with Retry-After, and 401 for a
token the platform has just expired.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

from tests.hangup import wait_until_client_leaves

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


@dataclass
class Accepted:
    """One score the gradebook accepted."""

    user: str
    score_given: float | None
    score_maximum: float | None
    activity: str
    grading: str
    timestamp: datetime
    comment: str | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineItem:
    id: int
    context: str
    label: str
    resource_id: str
    resource_link_id: str
    score_maximum: float
    tag: str


@dataclass
class FakeLms:
    """The gradebook's state and fault settings, shared by the server's handler threads."""

    client_id: str = "fake-client"
    flavour: str = "moodle"  # or "canvas"
    fault_rate: float = 0.0  # 500 / reset / 429 / 401, in equal shares
    timeout_rate: float = 0.0
    hang: float = 30.0  # a "timeout" holds the request until the client hangs up, at most
    retry_after: int = 7
    token_lifetime: int = 3600
    seed: int = 1
    tool_keys: dict[str, str] = field(default_factory=dict)  # kid -> public PEM
    no_gradebook: set[str] = field(default_factory=set)  # Moodle 400 users
    non_students: set[str] = field(default_factory=set)  # Canvas 422 users
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # context -> list
    page_size: int = 2
    #: When set, the roster's last page links rel="differences"; that URL returns these.
    differences: dict[str, list[dict[str, Any]]] | None = None
    #: Whether line items can be bound to a resource link (AGS 2.0: a created line item
    #: keeps its ``resourceLinkId`` and the container filters on ``resource_link_id``), as
    #: Moodle and Canvas do. False plays a platform that keeps no link on a line item (it
    #: drops ``resourceLinkId`` and ignores the filter).
    binds_links: bool = True

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(self.seed)
        self.tokens: dict[str, tuple[float, set[str]]] = {}
        self.token_requests = 0
        self.assertion_jtis: set[str] = set()
        self.lineitems: dict[int, LineItem] = {}
        self.scores: dict[tuple[int, str], list[Accepted]] = {}
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.refusals: Counter[int] = Counter()
        self.log: list[tuple[str, str]] = []
        self.base = ""
        self.forced: list[str] = []  # faults for the next requests, in order, before the RNG

    # -- helpers for tests -------------------------------------------------------------
    @property
    def token_url(self) -> str:
        return self.base + "/token"

    def lineitems_url(self, context: str = "course-1") -> str:
        return f"{self.base}/{context}/lineitems"

    def lineitem_url(self, item_id: int) -> str:
        item = self.lineitems[item_id]
        return f"{self.base}/{item.context}/lineitems/{item.id}/lineitem?type_id=1"

    def memberships_url(self, context: str = "course-1") -> str:
        return f"{self.base}/{context}/memberships"

    def add_lineitem(self, context: str, resource_id: str, label: str = "",
                     resource_link_id: str = "") -> int:
        with self.lock:
            item_id = len(self.lineitems) + 1
            self.lineitems[item_id] = LineItem(item_id, context, label or resource_id,
                                               resource_id, resource_link_id, 100, "")
            return item_id

    def final(self, item_id: int, user: str) -> Accepted | None:
        accepted = self.scores.get((item_id, user))
        return accepted[-1] if accepted else None

    def gradebook(self, item_id: int, user: str) -> float | None:
        """The grade the gradebook cell shows now (None: empty, Moodle's "-")."""
        accepted = self.final(item_id, user)
        return accepted.score_given if accepted else None

    def gradebook_history(self, item_id: int, user: str) -> list[float | None]:
        """The cell's value after each accepted score, oldest first."""
        return [a.score_given for a in self.scores.get((item_id, user), [])]

    def draw(self) -> str:
        with self.lock:
            if self.forced:
                return self.forced.pop(0)
            roll = self.rng.random()
        if roll < self.timeout_rate:
            return "hang-after" if roll < self.timeout_rate / 2 else "hang-before"
        roll -= self.timeout_rate
        if roll < self.fault_rate:
            return ("500", "reset", "429", "401")[min(int(roll / self.fault_rate * 4), 3)]
        return "ok"


class FakeLmsServer:
    """Serves one :class:`FakeLms` on 127.0.0.1 (a thread per request)."""

    def __init__(self, lms: FakeLms) -> None:
        self.lms = lms
        handler = _make_handler(lms)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        lms.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(lms: FakeLms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        # -- plumbing --------------------------------------------------------------------
        def _send(self, status: int, body: Any = None, *, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            raw = b"" if body is None else (body if isinstance(body, bytes)
                                            else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self._body()
            with lms.lock:
                lms.requests[method + " " + url.path.split("/")[-1]] += 1
            fault = lms.draw()
            if fault != "ok":
                with lms.lock:
                    lms.faults[fault] += 1
            if fault == "hang-before":
                wait_until_client_leaves(self.connection, lms.hang)
                self._reset()
                return
            if fault == "reset":
                self._reset()
                return
            if fault == "500":
                self._send(500, {"message": "internal error"})
                return
            if fault == "429":
                self._send(429, {"message": "slow down"},
                           headers={"Retry-After": str(lms.retry_after)})
                return
            if fault == "401" and url.path != "/token":
                token = (self.headers.get("Authorization") or "")[7:]
                with lms.lock:
                    lms.tokens.pop(token, None)  # the platform expired it just now
            status, answer, headers, ctype = self._route(method, url, body)
            if fault == "hang-after":
                wait_until_client_leaves(self.connection, lms.hang)
                self._reset()
                return
            self._send(status, answer, headers=headers, content_type=ctype)

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        # -- endpoints -----------------------------------------------------------------------
        def _route(self, method: str, url, body: bytes):
            parts = url.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if parts == ["token"] and method == "POST":
                return self._token(body)
            scopes = self._authorised()
            if scopes is None:
                return 401, {"message": "invalid or expired access token"}, None, "application/json"
            if len(parts) == 2 and parts[1] == "lineitems":
                if method == "GET":
                    return self._list_lineitems(parts[0], query)
                return self._create_lineitem(parts[0], body, scopes)
            if len(parts) == 5 and parts[1] == "lineitems" and parts[4] == "scores":
                if "https://purl.imsglobal.org/spec/lti-ags/scope/score" not in scopes:
                    return 403, {"message": "score scope missing"}, None, "application/json"
                if self.headers.get("Content-Type") != SCORE_TYPE:
                    return 415, {"message": "wrong content type"}, None, "application/json"
                return self._score(int(parts[2]), json.loads(body or b"{}"))
            if len(parts) == 2 and parts[1] == "memberships" and method == "GET":
                return self._memberships(parts[0], query)
            return 404, {"message": "not found"}, None, "application/json"

        def _token(self, body: bytes):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with lms.lock:
                lms.token_requests += 1
            assertion = form.get("client_assertion", "")
            try:
                kid = jwt.get_unverified_header(assertion)["kid"]
                claims = jwt.decode(assertion, lms.tool_keys[kid], algorithms=["RS256"],
                                    audience=lms.token_url)
            except (KeyError, jwt.PyJWTError) as exc:
                return 400, {"error": "invalid_client", "error_description": str(exc)}, None, \
                    "application/json"
            ok = (form.get("grant_type") == "client_credentials"
                  and form.get("client_assertion_type")
                  == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                  and claims.get("iss") == claims.get("sub") == lms.client_id
                  and claims.get("jti") and claims["jti"] not in lms.assertion_jtis)
            if not ok:
                return 400, {"error": "invalid_grant"}, None, "application/json"
            token = uuid.uuid4().hex
            scopes = set(form.get("scope", "").split())
            with lms.lock:
                lms.assertion_jtis.add(claims["jti"])
                lms.tokens[token] = (time.time() + lms.token_lifetime, scopes)
            return 200, {"access_token": token, "token_type": "Bearer",
                         "expires_in": lms.token_lifetime,
                         "scope": " ".join(sorted(scopes))}, None, "application/json"

        def _authorised(self) -> set[str] | None:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Bearer "):
                return None
            with lms.lock:
                entry = lms.tokens.get(header[7:])
            if entry is None or entry[0] <= time.time():
                return None
            return entry[1]

        def _item_json(self, item: LineItem) -> dict[str, Any]:
            body = {"id": lms.lineitem_url(item.id), "label": item.label,
                    "resourceId": item.resource_id, "scoreMaximum": item.score_maximum,
                    "tag": item.tag}
            if item.resource_link_id:  # only a bound line item has one
                body["resourceLinkId"] = item.resource_link_id
            return body

        def _list_lineitems(self, context: str, query: dict[str, str]):
            """AGS 2.0 container filters: ``resource_id``, ``resource_link_id``, ``tag``."""
            link = query.get("resource_link_id") if lms.binds_links else None
            with lms.lock:
                items = [i for i in lms.lineitems.values() if i.context == context
                         and (not query.get("resource_id")
                              or i.resource_id == query["resource_id"])
                         and (not link or i.resource_link_id == link)
                         and (not query.get("tag") or i.tag == query["tag"])]
            return 200, [self._item_json(i) for i in items], None, \
                "application/vnd.ims.lis.v2.lineitemcontainer+json"

        def _create_lineitem(self, context: str, body: bytes, scopes: set[str]):
            if "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem" not in scopes:
                return 403, {"message": "lineitem scope missing"}, None, "application/json"
            data = json.loads(body or b"{}")
            with lms.lock:
                item_id = len(lms.lineitems) + 1
                item = LineItem(item_id, context, data.get("label", ""),
                                data.get("resourceId", ""),
                                data.get("resourceLinkId", "") if lms.binds_links else "",
                                float(data.get("scoreMaximum") or 0), data.get("tag", ""))
                lms.lineitems[item_id] = item
            return 201, self._item_json(item), None, \
                "application/vnd.ims.lis.v2.lineitem+json"

        def _refuse(self, status: int, message: str):
            with lms.lock:
                lms.refusals[status] += 1
            return status, {"status": status, "message": message}, None, "application/json"

        def _score(self, item_id: int, data: dict[str, Any]):
            user = str(data.get("userId"))
            stamp = datetime.fromisoformat(str(data.get("timestamp")))
            with lms.lock:
                if item_id not in lms.lineitems:
                    return self._refuse(404, "line item not found")
                history = lms.scores.setdefault((item_id, user), [])
                last = history[-1].timestamp if history else None
                if lms.flavour == "moodle":
                    if any(data.get(name) in (None, "") for name in (
                            "userId", "timestamp", "gradingProgress", "activityProgress")):
                        return self._refuse(400, "Incorrect score received")
                    if user in lms.no_gradebook:
                        return self._refuse(400, "User is not enrolled with a gradebook role")
                    if last is not None and int(stamp.timestamp()) <= int(last.timestamp()):
                        return self._refuse(409, "Refusing score with an earlier timestamp "
                                                 "for item and user")
                    given = data.get("scoreGiven") if data.get("gradingProgress") == \
                        "FullyGraded" else None
                else:
                    if "scoreGiven" in data and "scoreMaximum" not in data:
                        return self._refuse(422, "ScoreMaximum must be present when "
                                                 "ScoreGiven is present")
                    if user in lms.non_students:
                        return self._refuse(422, "User not found in course or is not a "
                                                 "student")
                    if last is not None and stamp < last:
                        return self._refuse(400, "score timestamp not valid")
                    given = data.get("scoreGiven")
                    if data.get("gradingProgress") in ("NotReady", "Failed", "Pending"):
                        given = history[-1].score_given if history else None  # ignored
                history.append(Accepted(user, given, data.get("scoreMaximum"),
                                        data.get("activityProgress", ""),
                                        data.get("gradingProgress", ""), stamp,
                                        data.get("comment"), dict(data)))
            return 200, {}, None, "application/json"

        def _memberships(self, context: str, query: dict[str, str]):
            base = lms.memberships_url(context)
            if query.get("since"):
                changes = (lms.differences or {}).get(context, [])
                return 200, {"id": base, "context": {"id": context}, "members": changes}, {
                    "Link": f'<{base}?since=2>; rel="differences"'}, MEMBERSHIP_TYPE
            members = lms.members.get(context, [])
            start = int(query.get("page") or 0)
            chunk = members[start:start + lms.page_size]
            headers = {}
            links = []
            if start + lms.page_size < len(members):
                links.append(f'<{base}?{urlencode({"page": start + lms.page_size})}>; '
                             'rel="next"')
            elif lms.differences is not None:
                links.append(f'<{base}?since=1>; rel="differences"')
            if links:
                headers["Link"] = ", ".join(links)
            return 200, {"id": base, "context": {"id": context}, "members": chunk}, headers, \
                MEMBERSHIP_TYPE

    return Handler
