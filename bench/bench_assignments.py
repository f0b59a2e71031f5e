"""Assignments at hospital scale (issue 14): full evaluation, one person's incremental
evaluation and the "My training" page, each beside baselines measured in the same run.

    .venv/bin/python bench/bench_assignments.py [--people 50000] [--rules 40] [--repeat 30] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep]

Creates its own PostgreSQL database (``bench_scale.fresh_database``) and drops it afterwards.
Data: one organisation, 40 published modules (12-month validity), ``--people`` staff in 20
departments, 5 facilities and 8 job roles, ``--rules`` rules (a quarter for everyone, a
quarter by department, a quarter by job role, a quarter by facility and job role; half
recurring every 12 months), and 3 years of completions (every person completed 10 modules
once a year). Generated with set-based INSERT … SELECT generate_series.

Baselines: a bare ``SELECT 1`` round trip, and the learner home as it was before issue 14
(``learning.services.home_modules``: the modules the learner launched or started, with
their overviews) timed as a service call and as the page before any rule exists.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import fresh_database, log, make_app, timed  # noqa: E402

PASSWORD = "bench-password-123456"
LEARNER = "learner@bench.example"
DEPARTMENTS = [f"Dept {i:02d}" for i in range(20)]
FACILITIES = [f"Facility {i}" for i in range(5)]
ROLES = ["nurse", "physician", "pharmacist", "unit clerk", "respiratory therapist",
         "nurse informaticist", "cna", "lpn"]


def generate(app, people: int, rules: int) -> dict:
    from sqlalchemy import text

    from lms_plugin.accounts import services as accounts
    from lms_plugin.accounts.models import User
    from lms_plugin.catalog.models import ClinicalSystem, Module, ModuleVersion
    from lms_plugin.db import utcnow
    from lms_plugin.extensions import db
    from lms_plugin.learning.models import AssignmentRule, RuleAudience

    with app.app_context():
        org = accounts.create_organisation("Bench Health", "America/New_York")
        db.session.flush()
        system = ClinicalSystem(organisation_id=org.id, slug="ehr", name="EHR")
        db.session.add(system)
        db.session.flush()
        now = utcnow()
        module_ids = []
        for i in range(40):
            module = Module(organisation_id=org.id, system_id=system.id, slug=f"module-{i:02d}")
            db.session.add(module)
            db.session.flush()
            db.session.add(ModuleVersion(
                module_id=module.id, number=1, status="published", content_hash="0" * 64,
                title=f"Module {i:02d}", audience=ROLES, validity_months=12,
                attempt_limit=3, published_at=now))
            module_ids.append(module.id)
        learner = accounts.create_local_user(org, LEARNER, "Bench Learner", PASSWORD,
                                             roles=("learner",))
        learner.department, learner.job_role, learner.facility = (
            DEPARTMENTS[0], ROLES[0], FACILITIES[0])
        db.session.flush()
        params = {"org": org.id, "n": people - 1, "depts": DEPARTMENTS, "facs": FACILITIES,
                  "roles": ROLES, "now": now}
        db.session.execute(text("""
            INSERT INTO user_account (organisation_id, name, email, job_role, department,
                                      facility, employee_id, active, session_token, created_at)
            SELECT :org, 'Person ' || g, 'person' || g || '@bench.example',
                   (CAST(:roles AS text[]))[1 + g % 8], (CAST(:depts AS text[]))[1 + g % 20],
                   (CAST(:facs AS text[]))[1 + g % 5],
                   'E' || g, true, md5(g::text), :now
            FROM generate_series(1, :n) AS g"""), params)
        db.session.execute(text("""
            INSERT INTO role_grant (user_id, organisation_id, role, source, created_at)
            SELECT id, :org, 'learner', 'local', :now FROM user_account
            WHERE organisation_id = :org AND id <> :learner"""),
                           {**params, "learner": learner.id})
        # 3 years of completions: 10 modules a person, once a year
        db.session.execute(text("""
            INSERT INTO completion (user_id, module_id, module_version_id, score, passed,
                                    completed_at, expires_at)
            SELECT u.id, v.module_id, v.id, 100, true, c.at, c.at + interval '12 months'
            FROM user_account u
            JOIN module_version v ON v.module_id = ANY(CAST(:modules AS integer[]))
              AND (v.module_id + u.id) % 4 = 0
            CROSS JOIN LATERAL (
              SELECT :now - make_interval(days => y * 365 + (u.id * 7 + v.module_id) % 300)
                     AS at FROM generate_series(0, 2) AS y) c
            WHERE u.organisation_id = :org"""), {**params, "modules": module_ids})
        for i in range(rules):
            rule = AssignmentRule(organisation_id=org.id, module_id=module_ids[i % 40],
                                  due_days=30,
                                  recurrence_months=12 if i % 2 else None, created_at=now)
            db.session.add(rule)
            db.session.flush()
            kind = i % 4
            if kind == 1:
                audience = [("department", DEPARTMENTS[i % 20]),
                            ("department", DEPARTMENTS[(i + 1) % 20])]
            elif kind == 2:
                audience = [("job_role", ROLES[i % 8])]
            elif kind == 3:
                audience = [("facility", FACILITIES[i % 5]), ("job_role", ROLES[i % 8]),
                            ("job_role", ROLES[(i + 3) % 8])]
            else:
                audience = []
            db.session.add_all(RuleAudience(rule_id=rule.id, kind=k, value=v)
                               for k, v in audience)
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()  # statistics are transactional: a rollback would forget them
        counts = {name: db.session.scalar(text(f"SELECT count(*) FROM {name}"))
                  for name in ("user_account", "completion", "assignment_rule")}
        log(f"generated {counts}")
        return {"org": org.id, "learner": learner.id, "other": db.session.scalar(
            text("SELECT max(id) FROM user_account")), "user_model": User}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--rules", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--generate-only", action="store_true",
                        help="generate, then stop (with --keep: a database to EXPLAIN on)")
    args = parser.parse_args()
    url, drop = fresh_database(args.database_url)
    try:
        app = make_app(url)
        from flask_migrate import upgrade
        from sqlalchemy import func, select, text

        from lms_plugin.accounts.models import User
        from lms_plugin.db import utcnow
        from lms_plugin.extensions import db
        from lms_plugin.learning import assignments
        from lms_plugin.learning import services as learning
        from lms_plugin.learning.models import Assignment

        with app.app_context():
            upgrade(directory=str(ROOT / "lms_plugin" / "migrations"))
        started = time.perf_counter()
        ids = generate(app, args.people, args.rules)
        log(f"generated in {time.perf_counter() - started:.0f} s")
        if args.generate_only:
            return
        org, learner = ids["org"], ids["learner"]
        rows = []

        with app.app_context():
            rows.append(("baseline: SELECT 1", *timed(
                lambda: db.session.execute(text("SELECT 1")).scalar(), args.repeat)))
            rows.append(("baseline: pre-issue learner home data (home_modules)", *timed(
                lambda: learning.home_modules(learner, org, utcnow()), args.repeat)))
            db.session.rollback()

        client = app.test_client()
        response = client.post("/auth/login", data={"email": LEARNER, "password": PASSWORD})
        assert response.status_code == 302, response.status_code

        def home():
            response = client.get("/home")
            assert response.status_code == 200
            return response

        rows.append(("baseline: GET /home before any assignment exists",
                     *timed(home, args.repeat)))

        with app.app_context():
            began = time.perf_counter()
            result = assignments.evaluate(org, utcnow())
            db.session.commit()
            full = (time.perf_counter() - began) * 1000
            rows.append((f"full evaluation, first run ({len(result.opened):,} opened)",
                         full, full))
            # What autovacuum does after a bulk insert: statistics for the new rows, so the
            # per-person queries below are planned on the real table size.
            db.session.execute(text("ANALYZE assignment"))
            db.session.commit()
            began = time.perf_counter()
            again = assignments.evaluate(org, utcnow())
            db.session.commit()
            idle = (time.perf_counter() - began) * 1000
            rows.append((f"full evaluation, nothing to change ({len(again.opened)} opened, "
                         f"{len(again.closed)} closed)", idle, idle))
            other = ids["other"]
            departments = iter(DEPARTMENTS * (args.repeat + 2))

            def incremental():
                db.session.execute(User.__table__.update().where(User.id == other)
                                   .values(department=next(departments)))
                assignments.evaluate(org, utcnow(), user_id=other)
                db.session.commit()
            rows.append(("one person's incremental evaluation (department changed)",
                         *timed(incremental, args.repeat)))
            rows.append(("status_rows of one person", *timed(
                lambda: assignments.status_rows(org, user_id=learner, now=utcnow()),
                args.repeat)))
            began = time.perf_counter()
            everything = assignments.status_rows(org, now=utcnow())
            whole = (time.perf_counter() - began) * 1000
            rows.append((f"status_rows of the organisation ({len(everything):,} rows)",
                         whole, whole))
            opened = db.session.scalar(select(func.count(Assignment.id)).where(
                Assignment.user_id == learner, Assignment.closed_at.is_(None)))
            db.session.rollback()
        rows.append((f"GET /home (My training, {opened} assignments)",
                     *timed(home, args.repeat)))
        print()
        print("| measurement | p50 ms | p95 ms |")
        print("|---|---:|---:|")
        for name, p50, p95 in rows:
            print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    finally:
        if args.keep:
            log(f"kept {url}")
        else:
            drop()


if __name__ == "__main__":
    main()
