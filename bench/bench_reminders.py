"""Reminders at hospital size (issue 14): time one organisation's reminder run on PostgreSQL.

    .venv/bin/python bench/bench_reminders.py [--people 10000] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep]

Creates its own database (dropped afterwards unless --keep), one organisation with
``--people`` staff (every 20th the manager of the next 19), one published module and one
rule for everyone (due 30 days after T0), generated with set-based INSERT … SELECT
generate_series. Then times, beside baselines measured in the same run (a ``SELECT 1``
round trip, and ``assignments.status_rows``, the read every run starts with):

* the 14-day run (every person gets one mail: ``--people`` ledger rows and outbox rows);
* the same run again (the ledger says everything was sent: nothing is queued);
* the overdue run (every person again, plus one weekly digest per manager).

Statement counts show the run is set-based: the reads do not grow with the number of
people; one INSERT per mail remains (the outbox's ``enqueue``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_scale import fresh_database, log, make_app  # noqa: E402

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
DUE = T0 + timedelta(days=30)


def populate(app, people: int) -> int:
    from sqlalchemy import text

    from lms_plugin.accounts.services import create_organisation
    from lms_plugin.catalog.models import ClinicalSystem, Module, ModuleVersion
    from lms_plugin.extensions import db
    from lms_plugin.learning import assignments

    with app.app_context():
        db.create_all()
        org = create_organisation("Bench Health", "America/New_York")
        system = ClinicalSystem(organisation_id=org.id, slug="ehr", name="EHR")
        db.session.add(system)
        db.session.flush()
        module = Module(organisation_id=org.id, system_id=system.id, slug="privacy")
        db.session.add(module)
        db.session.flush()
        db.session.add(ModuleVersion(
            module_id=module.id, number=1, status="published", content_hash="0" * 64,
            title="Privacy and security", summary="Yearly.", objectives=["Protect PHI"],
            audience=["RN"], pass_mark=80, validity_months=12, estimated_minutes=20,
            published_at=T0 - timedelta(days=1)))
        db.session.execute(text(
            "INSERT INTO user_account (organisation_id, name, email, job_role, department, "
            "facility, active, session_token, created_at) "
            "SELECT :org, 'Person ' || n, 'person' || n || '@bench.example', 'RN', 'ED', "
            "'Main', true, md5(n::text), now() FROM generate_series(1, :n) AS n"),
            {"org": org.id, "n": people})
        # Every 20th person (by id) manages the next 19.
        db.session.execute(text(
            "UPDATE user_account u SET manager_id = m.id FROM user_account m "
            "WHERE u.organisation_id = :org AND m.organisation_id = :org "
            "AND m.id = u.id - ((u.id - 1) % 20) AND m.id <> u.id"), {"org": org.id})
        db.session.commit()
        assignments.add_rule(org.id, assignments.RuleSpec(module_slug="privacy", due_days=30),
                             actor=None, now=T0)
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        return org.id


def timed(app, label: str, func) -> tuple[float, object, int]:
    from lms_plugin.extensions import db
    from tests.statements import counted

    with app.app_context(), counted() as seen:
        started = time.perf_counter()
        result = func()
        db.session.commit()
        elapsed = time.perf_counter() - started
    selects = sum(s.lstrip().lower().startswith("select") for s in seen)
    log(f"{label}: {elapsed * 1000:,.0f} ms, {len(seen)} statements ({selects} SELECT) "
        f"-> {result}")
    return elapsed, result, selects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url, drop = fresh_database(args.database_url)
    try:
        app = make_app(url)
        log(f"generating {args.people:,} people")
        org_id = populate(app, args.people)

        from sqlalchemy import text

        from lms_plugin.extensions import db
        from lms_plugin.learning import assignments, reminders

        with app.app_context():
            rounds = []
            for _ in range(50):
                started = time.perf_counter()
                db.session.execute(text("SELECT 1"))
                rounds.append(time.perf_counter() - started)
            db.session.rollback()
        log(f"baseline SELECT 1: median {statistics.median(rounds) * 1000:.2f} ms")
        at14 = DUE - timedelta(days=10)
        timed(app, "baseline status_rows (what each run reads)",
              lambda: len(assignments.status_rows(org_id, now=at14)))

        def run(at):
            report = reminders.send_reminders(org_id, at)
            return (f"{report.learner_mails} learner mails, {report.digests} digests, "
                    f"{report.by_kind}")

        timed(app, "14-day run (a mail each)", lambda: run(at14))
        timed(app, "same run again (ledger: nothing to send)", lambda: run(at14))
        timed(app, "overdue run (a mail each + weekly digests)",
              lambda: run(DUE + timedelta(hours=1)))
        timed(app, "overdue run again", lambda: run(DUE + timedelta(hours=2)))
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        if args.keep:
            log(f"kept {url}")
        else:
            drop()


if __name__ == "__main__":
    main()
