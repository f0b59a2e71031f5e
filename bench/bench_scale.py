"""Hospital scale (issue 18): generate a health system in a fresh PostgreSQL database and time
the pages and commands that must hold at that size.

    .venv/bin/python bench/bench_scale.py [--scale 1.0] [--repeat 30] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep] \
        [--code DIR]   # measure another checkout's code (e.g. main, exported with git archive)

At --scale 1: 50,000 staff, 200 LMS courses (one with 5,000 members), 70 modules, 575,000
quiz attempts with 6.2 million answers, 416,000 completions, a million audit events and a
million outbox jobs (15,000 failed), generated with set-based INSERT … SELECT
generate_series (a few minutes). Every figure is printed beside a baseline measured in the
same run (``SELECT 1`` and a primary-key read) so runs on a busy machine stay comparable.

Pages are requested through Flask's test client in this process (no HTTP server: the
figures are the application's own time, view + queries + template). The roster sync's
HTTP fetch is replaced by the member list in memory: what is timed is applying 5,000
members, the part that took 19–21 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123456"
ADMIN_EMAIL = "admin@bench.example"
LEARNER_EMAIL = "learner@bench.example"
ISSUER = "https://moodle.bench.example"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- database


def fresh_database(url: str) -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"lms_bench_scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def make_app(db_url: str):
    from lms_plugin import create_app

    return create_app({
        "TESTING": True, "LMS_ENV": "testing",
        "SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": db_url, "LMS_BASE_URL": "http://tool.bench",
        "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://", "SERVER_NAME": None,
    })


# --------------------------------------------------------------------------- generation

FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
         "Keiko", "Liam", "Maria", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Samuel", "Tomas"]
LAST = ["Smith", "Garcia", "Nguyen", "Okafor", "Kowalski", "Haddad", "Tanaka", "Silva",
        "Müller", "Johnson", "Patel", "Rossi", "Dubois", "Cohen", "Larsen", "Ivanova",
        "Mensah", "O'Brien", "Lopez", "Chen", "Novak", "Ahmed", "Brown", "Kim", "Hughes"]
ROLES = ["RN", "LPN", "Physician", "Pharmacist", "Unit clerk", "Respiratory therapist",
         "Nurse informaticist", "CNA"]
DEPARTMENTS = ["Emergency", "ICU", "Oncology", "Cardiology", "Pharmacy", "Pediatrics",
               "Surgery", "Radiology", "Labor and delivery", "Medicine"]
FACILITIES = ["Main campus", "North hospital", "South hospital", "Children's", "Clinic east"]


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate(app, scale: float) -> dict:
    """Fill the database; returns the ids the measurements need."""
    from sqlalchemy import text

    from lms_plugin.accounts import services as accounts
    from lms_plugin.catalog.models import ClinicalSystem, Lesson, Module, ModuleVersion, Question
    from lms_plugin.extensions import db
    from lms_plugin.lti.models import LtiDeployment, LtiPlatform

    staff = max(int(50_000 * scale), 200)
    attempts = int(575_000 * scale)
    completions = int(416_000 * scale)
    audits = int(1_000_000 * scale)
    jobs = int(1_000_000 * scale)
    failed = int(15_000 * scale)
    big_course = min(5_000, staff)
    modules = 70
    out: dict = {"staff": staff}
    with app.app_context():
        # Organisations are made only explicitly (issue 12.1).
        accounts.create_organisation("Bench Health", "America/New_York")
        admin = accounts.create_admin(ADMIN_EMAIL, "Bench Health", PASSWORD).user
        org = admin.organisation_id
        learner = accounts.create_local_user(admin.organisation, LEARNER_EMAIL,
                                             "Bench Learner", PASSWORD, roles=("learner",))
        platform = LtiPlatform(organisation_id=org, name="Moodle", issuer=ISSUER,
                               client_id="bench", auth_login_url=ISSUER + "/auth",
                               auth_token_url=ISSUER + "/token",
                               key_set_url=ISSUER + "/jwks")
        db.session.add(platform)
        db.session.flush()
        db.session.add(LtiDeployment(platform_id=platform.id, deployment_id="1"))
        system = ClinicalSystem(organisation_id=org, slug="ehr", name="EHR")
        db.session.add(system)
        db.session.flush()
        for i in range(modules):
            module = Module(organisation_id=org, system_id=system.id, slug=f"module-{i:03d}")
            db.session.add(module)
            db.session.flush()
            version = ModuleVersion(
                module_id=module.id, number=1, status="published", content_hash=f"{i:064d}",
                title=f"Module {i:03d}: safe ordering in the EHR", summary="Bench module.",
                objectives=["Place a safe order"], audience=[ROLES[i % len(ROLES)]],
                estimated_minutes=15 + i % 30, validity_months=12,
                attempt_limit=3 if i % 2 else None, pass_mark=80)
            db.session.add(version)
            db.session.flush()
            for p in range(1, 4):
                db.session.add(Lesson(version_id=version.id, position=p, slug=f"l{p}",
                                      title=f"Lesson {p}", body_markdown=f"# Lesson {p}\n\nText."))
            for p in range(1, 12):
                db.session.add(Question(
                    version_id=version.id, key=f"q{p}", position=p, type="single_choice",
                    prompt=f"Question {p}?", data={"options": [{"id": "a", "text": "A"},
                                                               {"id": "b", "text": "B"}],
                                                   "answer": "a"}))
        db.session.commit()
        out.update(org=org, admin=admin.id, learner=learner.id, platform=platform.id)
        steps = [
            ("staff", f"""
                INSERT INTO user_account (organisation_id, name, email, job_role, department,
                    facility, active, session_token, created_at)
                SELECT {org},
                    ({sql_array(FIRST)})[1 + i % {len(FIRST)}] || ' ' ||
                    ({sql_array(LAST)})[1 + (i / {len(FIRST)}) % {len(LAST)}] || ' ' || i,
                    'staff' || i || '@bench.example',
                    ({sql_array(ROLES)})[1 + i % {len(ROLES)}],
                    ({sql_array(DEPARTMENTS)})[1 + (i / 7) % {len(DEPARTMENTS)}],
                    ({sql_array(FACILITIES)})[1 + (i / 3) % {len(FACILITIES)}],
                    true, md5(i::text), now() - (i % 1000) * interval '1 day'
                FROM generate_series(1, {staff}) AS i"""),
            ("role grants", f"""
                INSERT INTO role_grant (user_id, organisation_id, role, created_at)
                SELECT id, {org}, CASE WHEN id % 100 = 0 THEN 'author' ELSE 'learner' END, now()
                FROM user_account WHERE email LIKE 'staff%'"""),
            ("identities", f"""
                INSERT INTO lti_identity (organisation_id, issuer, sub, user_id, platform_id,
                    created_at)
                SELECT {org}, '{ISSUER}', 'sub-' || substr(email, 6, strpos(email, '@') - 6),
                    id, {platform.id}, now()
                FROM user_account WHERE email LIKE 'staff%'"""),
            ("courses", f"""
                INSERT INTO lti_context (platform_id, context_id, title, label, memberships_url,
                    created_at, updated_at)
                SELECT {platform.id}, 'course-' || i, 'Course ' || i, 'C' || i,
                    '{ISSUER}/nrps/' || i, now(), now()
                FROM generate_series(1, 200) AS i"""),
            ("memberships", f"""
                INSERT INTO lti_membership (user_id, context_id, roles, created_at,
                    last_launch_at, active)
                SELECT u.id, c.id, '["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]',
                    now(), CASE WHEN u.id % 3 = 0 THEN NULL ELSE now() END, true
                FROM user_account u JOIN lti_context c ON c.context_id =
                    CASE WHEN u.id - {learner.id} <= {big_course} THEN 'course-1'
                         ELSE 'course-' || (2 + u.id % 199) END
                WHERE u.email LIKE 'staff%'"""),
            ("attempts", f"""
                INSERT INTO quiz_attempt (user_id, module_version_id, number, preview, status,
                    seed, question_ids, option_orders, started_at, submitted_at, score, passed)
                SELECT (SELECT min(id) FROM user_account WHERE email LIKE 'staff%')
                        + i % {staff},
                    (SELECT min(id) FROM module_version) + (i / {staff}) % {modules},
                    1 + i / ({staff} * {modules}), false, 'submitted', i, '[]', '{{}}',
                    now() - (i % 1095) * interval '1 day',
                    now() - (i % 1095) * interval '1 day' + interval '20 minutes',
                    CASE WHEN i % 4 = 0 THEN 50 ELSE 90 END, i % 4 <> 0
                FROM generate_series(0, {attempts - 1}) AS i"""),
            ("answers", """
                INSERT INTO quiz_attempt_answer (attempt_id, question_id, response, fraction,
                    correct, feedback)
                SELECT a.id, q.id, '"a"', 1, true, ''
                FROM quiz_attempt a JOIN question q ON q.version_id = a.module_version_id
                WHERE q.position <= 11 - (a.id % 2)"""),
            ("completions", f"""
                INSERT INTO completion (user_id, module_id, module_version_id, attempt_id,
                    score, passed, completed_at, expires_at)
                SELECT a.user_id, v.module_id, v.id, a.id, a.score, true, a.submitted_at,
                    a.submitted_at + interval '12 months'
                FROM quiz_attempt a JOIN module_version v ON v.id = a.module_version_id
                WHERE a.passed ORDER BY a.id LIMIT {completions}"""),
            ("audit events", f"""
                INSERT INTO audit_event (organisation_id, actor_id, action, target_type,
                    target_id, details, created_at)
                SELECT {org},
                    CASE WHEN i % 10 = 0
                         THEN (SELECT min(id) FROM user_account) + i % {min(500, staff)} END,
                    (ARRAY['attempt.graded', 'user.grant_role', 'lti.platform.update',
                           'module.publish', 'audit.export'])[1 + (i % 50 = 0)::int
                                                             + (i % 200 = 0)::int * 2
                                                             + (i % 1000 = 0)::int],
                    'attempt', i::text, '{{}}',
                    now() - (i % 1095) * interval '1 day' - i * interval '1 millisecond'
                FROM generate_series(1, {audits}) AS i"""),
            ("outbox jobs", f"""
                INSERT INTO outbox_job (organisation_id, kind, payload, coalesce_key, event_at,
                    status, attempts, next_attempt_at, last_error, created_at, updated_at,
                    finished_at, give_up_at)
                SELECT {org}, 'ags.score',
                    json_build_object('platform_id', {platform.id}, 'link_id', 1, 'sub',
                                      'sub-' || i),
                    'ags:' || i, t, s, 1, t,
                    CASE WHEN s IN ('failed', 'rejected') THEN 'HTTP 503 from Moodle' END,
                    t, t + interval '1 minute',
                    CASE WHEN s = 'pending' THEN NULL ELSE t + interval '1 minute' END,
                    t + interval '1 day'
                FROM (SELECT i, now() - (i % 1095) * interval '1 day'
                                     - (i % 86400) * interval '1 second' AS t,
                        CASE WHEN i <= {failed} THEN 'failed'
                             WHEN i <= {failed} + 500 THEN 'rejected'
                             WHEN i <= {failed} + 600 THEN 'pending'
                             WHEN i % 30 = 0 THEN 'superseded'
                             ELSE 'succeeded' END AS s
                      FROM generate_series(1, {jobs}) AS i) AS g"""),
        ]
        # The bench learner has a history on every module (the home lists all 70).
        steps.append(("bench learner history", f"""
            INSERT INTO lesson_progress (user_id, module_version_id, last_position,
                viewed_positions, updated_at)
            SELECT {learner.id}, id, 1, '[1]', now() FROM module_version"""))
        steps.append(("bench learner attempts", f"""
            INSERT INTO quiz_attempt (user_id, module_version_id, number, preview, status,
                seed, question_ids, option_orders, started_at, submitted_at, score, passed)
            SELECT {learner.id}, id, 1, false, 'submitted', 1, '[]', '{{}}', now(), now(),
                90, true FROM module_version"""))
        for name, statement in steps:
            started = time.perf_counter()
            db.session.execute(text(statement))
            db.session.commit()
            log(f"  {name}: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        log(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
        out["big_context"] = db.session.scalar(text(
            "SELECT id FROM lti_context WHERE context_id = 'course-1'"))
        out["some_user"] = db.session.scalar(text(
            "SELECT id FROM user_account WHERE email LIKE 'staff%' ORDER BY id LIMIT 1"))
    return out


# --------------------------------------------------------------------------- measuring


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(p50, p95) in milliseconds over ``repeat`` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(round(0.95 * len(samples))) - 1)]


def count_statements(fn: Callable[[], object]) -> int:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = []

    def record(*args):
        seen.append(1)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return len(seen)


def login(app, email: str):
    client = app.test_client()
    response = client.post("/auth/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def page(client, path: str, status: int = 200) -> Callable[[], object]:
    def get():
        response = client.get(path)
        assert response.status_code == status, (path, response.status_code)
        return response
    return get


def measure(app, ids: dict, repeat: int) -> list[tuple[str, float, float, int | str]]:
    """Every measurement: (name, p50 ms, p95 ms, statements)."""
    import re

    from sqlalchemy import text

    from lms_plugin.extensions import db

    rows: list[tuple[str, float, float, int | str]] = []

    def add(name: str, fn: Callable[[], object], statements: bool = True,
            times: int = repeat) -> None:
        p50, p95 = timed(fn, times)
        count = count_statements(fn) if statements else "-"
        rows.append((name, p50, p95, count))
        log(f"  {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, {count} statements")

    with app.app_context():
        add("baseline: SELECT 1", lambda: db.session.execute(text("SELECT 1")).scalar())
        add("baseline: primary-key read", lambda: db.session.execute(text(
            "SELECT name FROM user_account WHERE id = :i"), {"i": ids["some_user"]}).scalar())
        db.session.remove()

    admin = login(app, ADMIN_EMAIL)
    learner = login(app, LEARNER_EMAIL)
    for status in ("attention", "all", "succeeded", "failed"):
        add(f"/admin/jobs?status={status}", page(admin, f"/admin/jobs?status={status}"))
    # A deep page: follow "Older" links 20 times, then time that page (keyset only).
    html = admin.get("/admin/jobs?status=all").get_data(as_text=True)
    older = None
    for _ in range(20):
        found = re.search(r'href="([^"]+)">Older jobs</a>', html)
        if not found:
            break
        older = found.group(1).replace("&amp;", "&")
        html = admin.get(older).get_data(as_text=True)
    if older:
        add("/admin/jobs?status=all, 21st page", page(admin, older))

    add("/admin/users (first page)", page(admin, "/admin/users"))
    last = (ids["staff"] + 1) // 50 + 1
    add(f"/admin/users?page={last} (old: OFFSET to the last page)",
        page(admin, f"/admin/users?page={last}"))
    for query in ("q=okafor", "q=smith+icu", "q=staff4999%40", "q=pharmacist+north",
                  "q=zzz-nobody", "role=author", "q=grace+tanaka&role=learner"):
        add(f"/admin/users?{query}", page(admin, f"/admin/users?{query}"))
    html = admin.get("/admin/users?q=nguyen").get_data(as_text=True)
    for _ in range(10):
        found = re.search(r'href="([^"]+)">Next</a>', html)
        if not found:
            break
        nxt = found.group(1).replace("&amp;", "&")
        html = admin.get(nxt).get_data(as_text=True)
    else:
        add("/admin/users?q=nguyen, 11th page", page(admin, nxt))

    add("/home (learner, 70 modules)", page(learner, "/home"))
    add("/lti/courses (200 courses)", page(admin, "/lti/courses"))

    from lms_plugin.lti import deep_linking
    with app.app_context():
        org = ids["org"]
        add("deep-linking picker (70 modules)",
            lambda: (deep_linking.picker_modules(org), deep_linking.picker_audiences(org)))
        db.session.remove()
    return rows


def measure_commands(app, ids: dict) -> list[tuple[str, float, float, int | str]]:
    """Roster sync, the periodic fan-out, retry all failed, pruning: timed once each."""
    from sqlalchemy import func, select, text

    from lms_plugin.extensions import db
    from lms_plugin.jobs import services as jobs
    from lms_plugin.jobs.models import OutboxJob
    from lms_plugin.lti import nrps

    rows: list[tuple[str, float, float, int | str]] = []

    def once(name: str, fn: Callable[[], object]) -> object:
        seen: list[int] = []
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def record(*args):
            seen.append(1)

        event.listen(Engine, "before_cursor_execute", record)
        started = time.perf_counter()
        try:
            result = fn()
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        ms = (time.perf_counter() - started) * 1000
        rows.append((name, ms, ms, len(seen)))
        log(f"  {name}: {ms:.0f} ms, {len(seen)} statements")
        return result

    lis = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
    with app.app_context():
        context = ids["big_context"]
        subs = list(db.session.scalars(text(
            "SELECT i.sub FROM lti_identity i JOIN lti_membership m ON m.user_id = i.user_id "
            "WHERE m.context_id = :c ORDER BY i.sub"), {"c": context}))
        members = [{"user_id": s, "status": "Active", "roles": [lis + "Learner"],
                    "name": f"Person {s}", "email": f"{s}@bench.example"} for s in subs]
        original = nrps.fetch_members
        try:
            nrps.fetch_members = lambda platform, url: (members, None)

            def sync():
                nrps.sync_context(context)
                db.session.commit()

            once(f"roster sync, {len(members):,} known members, nothing changed", sync)
            fresh = [{**m, "user_id": "new-" + m["user_id"]} for m in members]
            nrps.fetch_members = lambda platform, url: (fresh, None)
            once(f"roster sync, {len(fresh):,} members never seen (creates people), "
                 "the old ones leave", sync)
        finally:
            nrps.fetch_members = original

        def fan_out():
            nrps.enqueue_all()
            db.session.commit()

        once("periodic roster fan-out, 200 courses", fan_out)
        db.session.remove()

    admin = login(app, ADMIN_EMAIL)

    def retry_request():
        response = admin.post("/admin/jobs/retry-failed")
        assert response.status_code == 302, response.status_code

    with app.app_context():
        failed = db.session.scalar(select(func.count()).select_from(OutboxJob).where(
            OutboxJob.status == "failed"))
        db.session.remove()
    once(f"POST /admin/jobs/retry-failed ({failed:,} failed jobs): the request", retry_request)
    with app.app_context():
        if hasattr(jobs, "RETRY_ALL_KIND"):
            def background():
                runs = 0
                while True:
                    job = db.session.scalar(select(OutboxJob.id).where(
                        OutboxJob.kind == jobs.RETRY_ALL_KIND, OutboxJob.status == "pending"))
                    if job is None:
                        return runs
                    jobs.run_job(job, "bench")
                    runs += 1
            runs = once("retry all failed: the background job, every run", background)
            log(f"    ({runs} runs of the background job)")
        audit = db.session.scalar(text(
            "SELECT length(details::text) FROM audit_event "
            "WHERE action = 'job.retry_all_failed' ORDER BY id DESC LIMIT 1"))
        log(f"    audit entry: {audit} characters of details")
        rows.append(("retry all failed: audit entry size (characters)", audit or 0,
                     audit or 0, "-"))
        if hasattr(jobs, "prune_batch"):
            def prune():
                deleted = 0
                for _ in range(20):
                    deleted += jobs.prune_batch()
                    db.session.commit()
                return deleted
            deleted = once("outbox prune: 20 batches", prune)
            log(f"    ({deleted:,} finished jobs deleted)")
        db.session.remove()
    return rows


def measure_audit(app, ids: dict, repeat: int) -> list[tuple[str, float, float, int | str]]:
    """The audit log page (issue 13) at a million events: unfiltered, each filter, a date
    range, a deep keyset page, and the CSV export (whole stream) of a rare action."""
    import re

    from sqlalchemy import text

    from lms_plugin.extensions import db

    rows: list[tuple[str, float, float, int | str]] = []
    admin = login(app, ADMIN_EMAIL)
    with app.app_context():
        actor = db.session.execute(text(
            "SELECT actor_id FROM audit_event WHERE actor_id IS NOT NULL LIMIT 1")).scalar()
        db.session.remove()
    paths = ["/admin/audit", "/admin/audit?action=user.grant_role",
             "/admin/audit?action=module.", f"/admin/audit?actor={actor}",
             "/admin/audit?target_type=attempt&target_id=4242",
             "/admin/audit?since=2026-01-01&until=2026-01-31",
             "/admin/audit?action=attempt.graded&since=2025-06-01&until=2025-06-30"]
    html = admin.get("/admin/audit").get_data(as_text=True)
    older = None
    for _ in range(20):
        found = re.search(r'href="([^"]+)">Older</a>', html)
        if not found:
            break
        older = found.group(1).replace("&amp;", "&")
        html = admin.get(older).get_data(as_text=True)
    if older:
        paths.append(older)
    for path in paths:
        p50, p95 = timed(page(admin, path), repeat)
        count = count_statements(page(admin, path))
        name = path if "before=" not in path else "/admin/audit, 21st page (keyset)"
        rows.append((name, p50, p95, count))
        log(f"  {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, {count} statements")
    if admin.get("/admin/audit.csv").status_code == 404:  # a checkout before the export
        return rows
    export = page(admin, "/admin/audit.csv?action=audit.export")
    p50, p95 = timed(lambda: export().get_data(), max(repeat // 5, 3))
    rows.append(("/admin/audit.csv?action=audit.export (whole stream)", p50, p95, "-"))
    log(f"  audit CSV: p50 {p50:.1f} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose lms_plugin and migrations are measured")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--only", choices=["audit"], help="measure only the audit log pages")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import lms_plugin

    log(f"code: {Path(lms_plugin.__file__).parent}")
    url, drop = fresh_database(args.database_url)
    try:
        app = make_app(url)
        from flask_migrate import upgrade

        with app.app_context():
            upgrade(directory=str(args.code.resolve() / "lms_plugin" / "migrations"))
        log(f"generating at scale {args.scale} into {url.rsplit('/', 1)[-1]}")
        started = time.perf_counter()
        ids = generate(app, args.scale)
        log(f"generated in {time.perf_counter() - started:.0f} s; measuring pages")
        if args.only == "audit":
            rows = measure_audit(app, ids, args.repeat)
        else:
            rows = measure(app, ids, args.repeat) + measure_audit(app, ids, args.repeat)
            log("measuring commands")
            rows += measure_commands(app, ids)
        print()
        print("| measurement | p50 ms | p95 ms | statements |")
        print("|---|---:|---:|---:|")
        for name, p50, p95, count in rows:
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {count} |")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        if args.keep:
            log(f"kept {url}")
        else:
            drop()


if __name__ == "__main__":
    main()
