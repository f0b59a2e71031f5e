"""Full LTI launches per second vs a bare pylti1p3 handler, both under gunicorn, same run.

A "full launch" is what a learner's browser does: GET /lti/login (registration lookup, signed
nonce, 302 to the platform) then POST /lti/launch (state, RS256 signature with the platform
key from its JWKS, aud/azp, nonce claimed once, deployment, claims, user + identity + roles +
course + link + enrolment upserted, session, 302 to the module). The bare handler is
pylti1p3's Flask login + ``get_launch_data()`` only (bench/bare_lti_app.py). The platform
(this script) signs each id_token with its own RSA key and serves its JWKS on 127.0.0.1.

    .venv/bin/python bench/bench_launch.py [--seconds 20] [--rounds 2] [--workers 4]
        [--clients 6] [--learners 500] [--stale]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--profile]

Each side is warmed up first (every learner launches once, so the measured launches are
returning learners), then the two sides are measured in alternating windows (--rounds), since
the shared machine's speed drifts; the printed rates are the means. --stale ages every
last-launch time before each window and takes learners in turn, so every measured launch
writes (the first launch of a shift) instead of mostly finding nothing changed.

It creates and drops its own PostgreSQL database. The load generator runs on the same
machine, so both figures include its cost (it signs one RSA token per launch); each side
also prints CPU milliseconds per launch of its gunicorn workers, the PostgreSQL backends of
the bench database, Redis and the clients, read from /proc over the measured window.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
ISSUER = "https://moodle.bench.example"
CLIENT_ID = "bench-client"
DEPLOYMENT = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def platform_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="bench-kid", alg="RS256", use="sig")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, jwk


def serve_jwks(jwk: dict) -> str:
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/jwks"


def fresh_database(url: str) -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url).set(drivername="postgresql+psycopg")
    name = f"lms_bench_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))

    return base.set(database=name).render_as_string(hide_password=False), drop


def prepare_tool(db_url: str, redis_url: str | None, key_set_url: str, base_url: str) -> dict:
    from lms_plugin import create_app
    from lms_plugin.accounts.services import create_organisation
    from lms_plugin.extensions import db
    from lms_plugin.lti import keys, services

    env = tool_env(db_url, redis_url, base_url)
    os.environ.update(env)
    app = create_app()
    with app.app_context():
        db.create_all()
        create_organisation("Bench Health")  # organisations are made only explicitly
        services.register_platform(ISSUER, CLIENT_ID, "https://moodle.bench.example/auth",
                                   "https://moodle.bench.example/token", key_set_url,
                                   [DEPLOYMENT], organisation_name="Bench Health")
        keys.ensure_key()
        db.session.commit()
        db.engine.dispose()
    return env


def tool_env(db_url: str, redis_url: str | None, base_url: str) -> dict:
    env = {"DATABASE_URL": db_url, "SECRET_KEY": "bench-secret-key-" + "x" * 32,
           "LMS_BASE_URL": base_url, "LMS_ENV": "development"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def start_gunicorn(target: str, port: int, workers: int, env: dict, chdir: Path):
    cmd = [str(ROOT / ".venv/bin/gunicorn"), "--workers", str(workers), "--bind",
           f"127.0.0.1:{port}", "--chdir", str(chdir), "--log-level", "warning", target]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn {target} did not start")


def stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


_KEYS: dict[bytes, object] = {}


def signing_key(pem: bytes):
    """Parse the PEM once per process: loading an RSA private key validates it (~50 ms)."""
    if pem not in _KEYS:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        _KEYS[pem] = load_pem_private_key(pem, password=None)
    return _KEYS[pem]


def one_launch(port: int, key_pem: bytes, sub: str, expect: int) -> None:
    import jwt

    params = urlencode({"iss": ISSUER, "login_hint": sub, "client_id": CLIENT_ID,
                        "target_link_uri": f"http://127.0.0.1:{port}/lti/launch",
                        "lti_deployment_id": DEPLOYMENT, "lti1p3_new_window": "1"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/lti/login?" + params)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 302:
        raise RuntimeError(f"login answered {resp.status}")
    query = parse_qs(urlsplit(resp.getheader("Location")).query)
    cookies = "; ".join(c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or [])
    conn.close()
    now = int(time.time())
    body = {
        "iss": ISSUER, "aud": CLIENT_ID, "sub": sub, "exp": now + 300, "iat": now,
        "nonce": query["nonce"][0], "name": f"Bench User {sub}", "email": f"{sub}@bench.example",
        CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "version": "1.3.0",
        CLAIM + "deployment_id": DEPLOYMENT,
        CLAIM + "target_link_uri": f"http://127.0.0.1:{port}/lti/launch",
        CLAIM + "resource_link": {"id": "link-1", "title": "BCMA basics"},
        CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
        CLAIM + "context": {"id": "course-1", "label": "BCMA", "title": "BCMA training"},
        CLAIM + "custom": {"module": "bcma-basics", "job_role": "RN", "department": "ICU"},
    }
    token = jwt.encode(body, signing_key(key_pem), algorithm="RS256",
                       headers={"kid": "bench-kid"})
    form = urlencode({"id_token": token, "state": query["state"][0]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/lti/launch", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies})
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    if resp.status != expect:
        raise RuntimeError(f"launch answered {resp.status}: {text[:300]!r}")


def warm_up(args) -> int:
    """Launch each of these learners once, so the measured launches are returning people."""
    port, key_pem, expect, subs = args
    for sub in subs:
        one_launch(port, key_pem, f"user-{sub}", expect)
    return len(subs)


def client_loop(args) -> tuple[int, int, float]:
    port, key_pem, seconds, expect, seed, learners, in_turn = args
    rng = random.Random(seed)
    done = errors = 0
    cpu_started = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # in_turn: each client walks its own slice of the learners, so no learner launches
        # twice in the window while there are more learners than launches.
        sub = (seed + done * 97) % learners if in_turn else rng.randrange(learners)
        try:
            one_launch(port, key_pem, f"user-{sub}", expect)
            done += 1
        except Exception as exc:  # noqa: BLE001  (a benchmark counts failures)
            errors += 1
            if errors <= 3:
                print("  error:", exc, file=sys.stderr)
    return done, errors, time.process_time() - cpu_started


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_by_group(server_pgid: int, db_name: str) -> dict[str, float]:
    """CPU seconds (user + system) so far of the server's process group, the PostgreSQL
    backends serving the bench database, and the Redis server, read from /proc."""
    totals = {"server": 0.0, "postgres": 0.0, "redis": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2:].split()
        comm = stat[stat.index("(") + 1:comm_end]
        cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        if int(fields[2]) == server_pgid:  # pgrp
            totals["server"] += cpu
        elif comm == "postgres" and f" {db_name} " in cmdline:
            totals["postgres"] += cpu
        elif comm.startswith("redis-server"):
            totals["redis"] += cpu
    return totals


def age_launch_times(db_url: str) -> None:
    """Make every learner's last launch two hours old, as at the start of a shift."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as conn:
        for table, column in (("lti_identity", "last_launch_at"),
                              ("user_account", "last_login_at"),
                              ("lti_membership", "last_launch_at")):
            conn.execute(text(f"UPDATE {table} SET {column} = now() - interval '2 hours'"))
    engine.dispose()


def measure(port: int, key_pem: bytes, seconds: float, clients: int, expect: int,
            server_pgid: int = 0, db_name: str = "", learners: int = 500,
            before_measuring: t.Callable[[], None] | None = None,
            in_turn: bool = False, warm: bool = True) -> float:
    with multiprocessing.Pool(clients) as pool:
        # Warm-up: every learner launches once (their first launch creates them), then the
        # measured window is returning learners picked at random.
        if warm:
            pool.map(warm_up, [(port, key_pem, expect, range(i, learners, clients))
                               for i in range(clients)])
        if before_measuring is not None:
            before_measuring()
        cpu_before = _cpu_by_group(server_pgid, db_name)
        started = time.monotonic()
        results = pool.map(client_loop, [(port, key_pem, seconds, expect, 100 + i, learners,
                                           in_turn) for i in range(clients)])
        elapsed = time.monotonic() - started
        cpu_after = _cpu_by_group(server_pgid, db_name)
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    if errors:
        print(f"  {errors} failed launches", file=sys.stderr)
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    cpu["clients"] = sum(r[2] for r in results)
    per_launch = "  ".join(f"{k} {v / max(done, 1) * 1000:.2f}" for k, v in cpu.items())
    busy = sum(cpu.values()) / elapsed
    print(f"  CPU ms per launch: {per_launch}  (these use {busy:.2f} of "
          f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f})")
    return done / elapsed


def profile(env: dict, key_pem: bytes, n: int = 300) -> None:
    """In-process cProfile of n full launches through the test client (no gunicorn)."""
    import cProfile
    import pstats

    import jwt

    from lms_plugin import create_app

    os.environ.update(env)
    app = create_app()
    prof = cProfile.Profile()
    for i in range(n):
        # A fresh browser each time: one test client would pile up every login's state
        # cookie and send them all, which then dominates the profile.
        client = app.test_client()
        resp = client.get("/lti/login?" + urlencode({
            "iss": ISSUER, "login_hint": "x", "client_id": CLIENT_ID,
            "lti1p3_new_window": "1"}))
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        now = int(time.time())
        body = {"iss": ISSUER, "aud": CLIENT_ID, "sub": f"p-{i % 50}", "exp": now + 300,
                "iat": now, "nonce": query["nonce"][0],
                CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "version": "1.3.0",
                CLAIM + "deployment_id": DEPLOYMENT,
                CLAIM + "target_link_uri": "http://x/lti/launch",
                CLAIM + "resource_link": {"id": "link-1"},
                CLAIM + "roles": ["Learner"], CLAIM + "context": {"id": "course-1"}}
        token = jwt.encode(body, signing_key(key_pem), algorithm="RS256",
                           headers={"kid": "bench-kid"})
        prof.enable()
        client.post("/lti/launch", data={"id_token": token, "state": query["state"][0]})
        prof.disable()
    lines = int(os.environ.get("BENCH_LINES", "30"))
    pstats.Stats(prof).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                        help="empty string: LTI state in the database instead")
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--stale", action="store_true",
                        help="age every last-launch time before each window and take "
                             "learners in turn: each launch then writes (the first launch "
                             "of a shift), instead of mostly unchanged returning launches")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    key_pem, jwk = platform_key()
    key_set_url = serve_jwks(jwk)
    db_url, drop = fresh_database(args.database_url)
    full_port, bare_port = free_port(), free_port()
    procs = []
    try:
        env = prepare_tool(db_url, args.redis_url or None, key_set_url,
                           f"http://127.0.0.1:{full_port}")
        env["LTI_STORE_PREFIX"] = f"lms-bench:{uuid.uuid4().hex[:8]}:"
        if args.profile:
            profile(env, key_pem)
            return
        bare_env = {"BARE_LTI_CONFIG": json.dumps({
            "issuer": ISSUER, "client_id": CLIENT_ID,
            "auth_login_url": "https://moodle.bench.example/auth",
            "auth_token_url": "https://moodle.bench.example/token",
            "key_set_url": key_set_url, "deployment_id": DEPLOYMENT,
            "launch_url": f"http://127.0.0.1:{bare_port}/lti/launch"})}
        procs.append(start_gunicorn("lms_plugin:create_app()", full_port, args.workers, env,
                                    ROOT))
        procs.append(start_gunicorn("bare_lti_app:create_app()", bare_port, args.workers,
                                    bare_env, ROOT / "bench"))
        mode = (f"{args.learners} learners in turn, last-launch times aged before each "
                "window (every launch writes)" if args.stale
                else f"{args.learners} returning learners at random")
        print(f"gunicorn --workers {args.workers}, {args.clients} client processes, "
              f"{args.seconds:.0f} s windows x {args.rounds} rounds, PostgreSQL"
              f"{' + Redis' if args.redis_url else ' (LTI state in the database)'}; {mode}")
        db_name = db_url.rsplit("/", 1)[-1]
        age = (lambda: age_launch_times(db_url)) if args.stale else None
        sides = [("bare pylti1p3 (login + validate)", bare_port, 200, procs[1].pid, None),
                 ("lms_plugin full launch (+ user, redirect)", full_port, 302, procs[0].pid,
                  age)]
        totals = {port: [] for _, port, *_ in sides}
        for rnd in range(args.rounds):
            # Alternate the sides so a noisy spell on the shared machine hits both.
            for label, port, expect, pgid, before in (sides if rnd % 2 == 0 else sides[::-1]):
                rate = measure(port, key_pem, args.seconds, args.clients, expect, pgid,
                               db_name, args.learners, before, args.stale,
                               warm=not totals[port])
                totals[port].append(rate)
                print(f"  round {rnd + 1}: {label}: {rate:7.1f} launches/s")
        bare = sum(totals[bare_port]) / len(totals[bare_port])
        full = sum(totals[full_port]) / len(totals[full_port])
        print(f"bare pylti1p3 (login + validate):          {bare:7.1f} launches/s (mean)")
        print(f"lms_plugin full launch (+ user, redirect): {full:7.1f} launches/s (mean)")
        print(f"ratio full / bare:                         {full / bare:7.1%}")
    finally:
        for proc in procs:
            stop(proc)
        drop()


if __name__ == "__main__":
    main()
