"""Reports at hospital scale (issue 16): each dashboard's server time and the streamed
export's rows/s and peak memory, beside a baseline measured in the same run.

    .venv/bin/python bench/bench_reports.py [--scale 1.0] [--completions 2000000] \
        [--repeat 20] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Generates into its own fresh PostgreSQL database (dropped afterwards) with
bench/bench_scale.py's generator (50,000 staff, 70 modules, 575,000 attempts at --scale 1),
then tops the completions up to --completions (default 2 million whatever the scale; 3 years
of history, 12-month validity) and imports a 20-competency framework whose competencies are
evidenced by 2-4 modules each.

Baseline: ``SELECT count(*) FROM completion``. Dashboards are requested through Flask's
test client (view + queries + template, no HTTP server). The export is run in a separate
process (``--export-child``) so its peak RSS (``ru_maxrss``) is the export's alone: the
completion records table (one row per completion) streamed to CSV, and to XLSX for
--xlsx-rows rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import (  # noqa: E402
    ADMIN_EMAIL,
    fresh_database,
    generate,
    log,
    login,
    make_app,
    page,
    timed,
)

COMPETENCIES = 20


def top_up(app, ids: dict, completions: int) -> None:
    """Add completions (no attempt) until the table holds ``completions`` rows."""
    from sqlalchemy import text

    from lms_plugin.extensions import db

    with app.app_context():
        have = db.session.scalar(text("SELECT count(*) FROM completion"))
        extra = max(completions - have, 0)
        started = time.perf_counter()
        db.session.execute(text(f"""
            INSERT INTO completion (user_id, module_id, module_version_id, attempt_id, score,
                passed, completed_at, expires_at)
            SELECT u.first + i % {ids['staff']}, v.module_id, v.id, NULL, 80 + i % 21, true,
                   now() - (i % 1095) * interval '1 day',
                   now() - (i % 1095) * interval '1 day' + interval '12 months'
            FROM generate_series(0, {extra - 1}) AS i
            CROSS JOIN (SELECT min(id) AS first FROM user_account
                        WHERE email LIKE 'staff%') AS u
            JOIN (SELECT id, module_id, row_number() OVER (ORDER BY id) - 1 AS k
                  FROM module_version) AS v ON v.k = (i / 7) % 70"""))
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE completion"))
        log(f"  +{extra} completions in {time.perf_counter() - started:.1f} s")


def framework(app, org: int) -> int:
    """A framework of COMPETENCIES competencies, each evidenced by 2-4 bench modules."""
    from sqlalchemy import select

    from lms_plugin.catalog.models import Module
    from lms_plugin.extensions import db
    from lms_plugin.reports import frameworks

    with app.app_context():
        slugs = list(db.session.scalars(select(Module.slug).where(
            Module.organisation_id == org).order_by(Module.slug)))
        head = ",".join(frameworks.MOODLE_HEADERS)
        lines = [head, ",BENCH,Bench framework,,1,\"No,Yes\",,,,,,,1,competency"]
        evidence = ["Competency ID number,Module"]
        for c in range(COMPETENCIES):
            lines.append(f",C{c:02d},Competency {c:02d},,1,,,,,null,,,,")
            for k in range(2 + c % 3):
                evidence.append(f"C{c:02d},{slugs[(c * 3 + k) % len(slugs)]}")
        result = frameworks.import_framework(org, "\n".join(lines) + "\n",
                                             "\n".join(evidence) + "\n", actor=None)
        db.session.commit()
        return result.framework.id


def export_child(url: str, org: int, fmt: str, limit: int | None) -> None:
    """Run in a fresh process: stream the completion records export, print JSON figures."""
    import os

    from lms_plugin.db import utcnow
    from lms_plugin.reports import exports, records

    app = make_app(url)
    with app.app_context():
        table = records.completions_table(org, {}, utcnow())
        if limit is not None:
            table = exports.Table(report=table.report, title=table.title,
                                  headers=table.headers, query=table.query.limit(limit),
                                  format=table.format)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        size = 0
        for chunk in exports.chunks(table, fmt):
            size += len(chunk)
        seconds = time.perf_counter() - started
        rows = exports.count_rows(table)
    print(json.dumps({"format": fmt, "rows": rows, "seconds": seconds, "bytes": size,
                      "rows_per_s": rows / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mb": before,
                      "pid": os.getpid()}))


def run_export(url: str, org: int, fmt: str, limit: int | None) -> dict:
    command = [sys.executable, __file__, "--export-child", url, str(org), fmt]
    if limit is not None:
        command.append(str(limit))
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--export-child":
        _, _, url, org, fmt, *limit = sys.argv
        export_child(url, int(org), fmt, int(limit[0]) if limit else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--completions", type=int, default=2_000_000,
                        help="completions in the table (not scaled: the export's size)")
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-export", action="store_true", help="measure the pages only")
    parser.add_argument("--reuse", metavar="URL",
                        help="measure a database an earlier --keep run generated (no generation)")
    args = parser.parse_args()
    if args.reuse:
        url, drop = args.reuse, (lambda: None)
    else:
        url, drop = fresh_database(args.database_url)
    try:
        app = make_app(url)
        ids, framework_id = reused(app) if args.reuse else build(app, args)
        build_holdings(app, framework_id)
        measure(app, url, ids, framework_id, args)
    finally:
        if args.keep or args.reuse:
            log(f"kept {url}")
        else:
            drop()


def build_holdings(app, framework_id: int) -> None:
    """What the ``reports.holdings`` job does after an import: build the table (timed)."""
    from lms_plugin.db import utcnow
    from lms_plugin.extensions import db
    from lms_plugin.reports import holdings

    with app.app_context():
        started = time.perf_counter()
        rows = holdings.rebuild(framework_id, utcnow())
        db.session.commit()
        log(f"  holdings built: {rows} rows in {time.perf_counter() - started:.1f} s")


def reused(app) -> tuple[dict, int]:
    from sqlalchemy import text

    from lms_plugin.extensions import db

    with app.app_context():
        db.create_all()  # tables of a newer 0021_reports than the kept database's (bench only)
        org = db.session.scalar(text("SELECT id FROM organisation WHERE slug = 'bench-health'"))
        framework_id = db.session.scalar(text("SELECT max(id) FROM competency_framework"))
        return {"org": org}, framework_id


def build(app, args) -> tuple[dict, int]:
    from flask_migrate import upgrade

    from lms_plugin.accounts.services import create_organisation
    from lms_plugin.extensions import db

    with app.app_context():
        upgrade(directory=str(ROOT / "lms_plugin" / "migrations"))
        # Organisations are created only by `org create` (bench_scale's generate predates
        # that rule and expects the organisation to exist).
        create_organisation("Bench Health")
        db.session.commit()
    log(f"generating at scale {args.scale}")
    ids = generate(app, args.scale)
    top_up(app, ids, args.completions)
    return ids, framework(app, ids["org"])


PAGES = [
    ("competency matrix: departments x 20 competencies", "/reports/competencies"),
    ("competency matrix by facility, one clinical system",
     "/reports/competencies?group=facility&system=ehr"),
    ("people x competencies (ICU, first 200 rows)",
     "/reports/competencies?view=people&department=ICU"),
    ("people x competencies (everyone, first 200 rows)", "/reports/competencies?view=people"),
    ("item analysis: module-000 (11 questions)", "/reports/items/module-000"),
    ("completions (first 200 rows, newest first)", "/reports/completions"),
    ("framework page", "/reports/frameworks/{framework_id}"),
]


def measure(app, url: str, ids: dict, framework_id: int, args) -> None:
    from sqlalchemy import text

    from lms_plugin.extensions import db

    rows = []
    with app.app_context():
        completions = db.session.scalar(text("SELECT count(*) FROM completion"))

        def baseline():
            db.session.scalar(text("SELECT count(*) FROM completion"))
            db.session.rollback()

        rows.append((f"baseline: SELECT count(*) FROM completion ({completions} rows)",
                     *timed(baseline, args.repeat)))
    client = login(app, ADMIN_EMAIL)
    for name, path in PAGES:
        log(f"measuring {name}")
        rows.append((name, *timed(page(client, path.format(framework_id=framework_id)),
                                  args.repeat)))
    print()
    print("| measurement | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    if args.no_export:
        return
    log("export: CSV of every completion (child process)")
    csv_figures = run_export(url, ids["org"], "csv", None)
    log(f"export: XLSX of {args.xlsx_rows} completions (child process)")
    xlsx_figures = run_export(url, ids["org"], "xlsx", args.xlsx_rows)
    print()
    print("| export | rows | seconds | rows/s | MB written | RSS before MB | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f in (csv_figures, xlsx_figures):
        print(f"| {f['format']} | {f['rows']} | {f['seconds']:.1f} | "
              f"{f['rows_per_s']:.0f} | {f['bytes'] / 1e6:.0f} | {f['rss_before_mb']:.0f} | "
              f"{f['peak_rss_mb']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"pages": rows, "exports": [csv_figures,
                                                                    xlsx_figures]}))


if __name__ == "__main__":
    main()
