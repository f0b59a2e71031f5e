"""The worker against a local platform that fails 30% of requests and times out 10%.

The platform (an HTTP server on 127.0.0.1) applies each score at most once per idempotency
key, like a careful LMS, and refuses an older event for a user after a newer one (as Moodle
does with 409). Once the faults stop, every user's newest score is delivered exactly once,
nothing older is ever applied, and no job is left failed. The worker's clock is fake, so
retry delays cost no real time; only the injected timeouts (0.05 s each) do.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.jobs import services
from lms_plugin.jobs.models import OutboxJob
from tests.hangup import wait_until_client_leaves
from tests.jobs import kinds
from tests.jobs.conftest import T0

USERS = 100
EVENTS_PER_USER = 3


class Platform:
    """State of the fake LMS gradebook, shared by the server's handler threads."""

    def __init__(self, seed: int) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.faults_on = True
        self.applied: dict[str, tuple[str, int]] = {}  # idempotency key -> (user, event)
        self.latest: dict[str, int] = {}  # user -> newest applied event
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.out_of_order: list[tuple[str, int]] = []

    def draw(self) -> str:
        with self.lock:
            self.requests += 1
            if not self.faults_on:
                return "ok"
            roll = self.rng.random()
        if roll < 0.10:
            return "timeout"
        if roll < 0.40:  # 30% failures of the three kinds
            return ("reset", "500", "429")[int((roll - 0.10) / 0.10)]
        return "ok"

    def apply(self, key: str, user: str, event: int) -> int:
        """Apply once per key; refuse an older event than the newest applied (409)."""
        with self.lock:
            if key in self.applied:
                return 200  # a retry of something already applied: idempotent
            if event < self.latest.get(user, -1):
                self.out_of_order.append((user, event))
                return 409
            self.applied[key] = (user, event)
            self.latest[user] = event
            return 200


def make_server(platform: Platform) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stall

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            fault = platform.draw()
            platform.faults[fault] += 1
            if fault in {"timeout", "reset"} and platform.rng.random() < 0.5:
                # The platform applied it but the answer never arrived: only the
                # idempotency key keeps the retry from applying it twice.
                platform.apply(key, body["user"], body["event"])
            if fault == "timeout":
                wait_until_client_leaves(self.connection)  # it gives up after 0.05 s
                return self._answer(504, {})
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return None
            if fault == "500":
                return self._answer(500, {"error": "internal"})
            if fault == "429":
                return self._answer(429, {"error": "slow down"}, {"Retry-After": "30"})
            status = platform.apply(key, body["user"], body["event"])
            return self._answer(status, {"applied": status == 200})

        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client has gone (it timed out)

        def finish(self) -> None:
            with contextlib.suppress(OSError, ValueError):  # the client reset it
                super().finish()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            pass  # resets are injected on purpose

    return Server(("127.0.0.1", 0), Handler)


def test_faulty_platform_gets_every_newest_score_exactly_once(app):
    platform = Platform(seed=5)
    server = make_server(platform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/scores"
    try:
        # Events arrive out of order: some users' older scores are enqueued last.
        events = [(f"user-{u}", e) for u in range(USERS) for e in range(EVENTS_PER_USER)]
        random.Random(1).shuffle(events)
        with app.app_context():
            for user, event in events:
                services.enqueue("test.http_post",
                                 {"url": url, "user": user, "event": event, "score": event * 10},
                                 coalesce_key=f"score:{user}",
                                 event_at=T0 + timedelta(seconds=event), now=T0)
            db.session.commit()

        now = T0
        retry_after_seen = False
        with app.app_context():
            for round_no in range(200):
                if round_no == 8:
                    platform.faults_on = False  # the outage ends
                services.run_due_jobs("w1", limit=500, now=now, rng=random.Random(round_no))
                pending = db.session.scalar(select(func.count()).select_from(OutboxJob).where(
                    OutboxJob.status.in_(("pending", "running"))))
                waiting_429 = db.session.scalar(select(func.count()).select_from(OutboxJob).where(
                    OutboxJob.last_error == "429 Too Many Requests",
                    OutboxJob.next_attempt_at == now + timedelta(seconds=30)))
                db.session.rollback()
                retry_after_seen = retry_after_seen or waiting_429 > 0
                if not pending and not platform.faults_on:
                    break
                now += timedelta(seconds=max(31, 2 * 2 ** min(round_no, 9)))  # past any delay
    finally:
        server.shutdown()
        server.server_close()

    assert platform.faults["timeout"] > 0 and platform.faults["reset"] > 0
    assert platform.faults["500"] > 0 and platform.faults["429"] > 0
    assert retry_after_seen  # 429 answers were retried after their Retry-After, not sooner
    # Exactly the newest score per user was applied, once; nothing older, nothing twice.
    assert len(platform.applied) == USERS
    assert sorted(platform.latest.items()) == sorted(
        (f"user-{u}", EVENTS_PER_USER - 1) for u in range(USERS))
    assert Counter(user for user, _ in platform.applied.values()) == Counter(
        {f"user-{u}": 1 for u in range(USERS)})
    assert platform.out_of_order == []
    with app.app_context():
        statuses = dict(db.session.execute(
            select(OutboxJob.status, func.count()).group_by(OutboxJob.status)).all())
        # The failed-delivery page is empty once the faults stop.
        assert services.list_jobs(services.ALL_ORGANISATIONS, ("failed", "rejected")) == []
    assert statuses == {"succeeded": USERS, "superseded": USERS * (EVENTS_PER_USER - 1)}
    assert sum(kinds.calls.values()) == platform.requests  # superseded scores never sent
    assert len(kinds.calls) == USERS
