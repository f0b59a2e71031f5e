"""``lms-plugin worker`` and ``lms-plugin outbox list|retry|prune``: thin commands."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from lms_plugin.config import ConfigError, parse_duration
from lms_plugin.db import DB_INT_MAX, utcnow
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db
from lms_plugin.jobs import heartbeat, queries, worker
from lms_plugin.jobs.models import STATUSES


@click.command("worker")
@click.option("--once", is_flag=True, help="Run every due job, then exit (no polling).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="Jobs claimed per poll.")
@click.option("--in-process", "in_process", is_flag=True,
              help="Poll the outbox table in this process even when REDIS_URL is set.")
@click.option("--queue", "queue_name", default=None,
              help=f"RQ queue (default: LMS_JOB_QUEUE, else {worker.DEFAULT_QUEUE}).")
@with_appcontext
def worker_command(once: bool, limit: int, in_process: bool, queue_name: str | None) -> None:
    """Run background jobs: RQ on Redis when REDIS_URL is set, else an in-process loop."""
    worker_id = worker.make_worker_id()
    redis_url = current_app.config.get("REDIS_URL")
    stop = threading.Event()
    if redis_url and not in_process:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        where = redis_url.split("@")[-1]  # never echo a password
        click.echo(f"worker {worker_id}: RQ on {where}")
        queue_name = queue_name or worker.queue_name()
        try:
            worker.run_rq(redis_url, stop, once=once, queue_name=queue_name)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            reason = str(exc).strip().strip("'\"") or type(exc).__name__
            raise click.ClickException(
                f"Redis at {where} is unreachable ({reason}). Check REDIS_URL, or run "
                "'lms-plugin worker --in-process' to poll the outbox without Redis.") from None
        return
    if once:
        worker.Pulse(worker_id, "once")()
        totals = worker.drain(worker_id, limit=limit)
        click.echo(_summary(totals))
        return

    def _stop(signum, _frame) -> None:
        click.echo(f"worker {worker_id}: {signal.Signals(signum).name}, stopping after the "
                   "current job")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"worker {worker_id}: polling the outbox (Ctrl-C to stop)")
    totals = worker.run_loop(worker_id, stop, limit=limit)
    click.echo(_summary(totals))


def _warn_if_no_worker() -> None:
    """The jobs page's warning, for operators: jobs are due and nothing will send them."""
    workers = heartbeat.status()
    if workers.warning:
        seen = f"for {workers.silence}" if workers.last_seen else "yet"
        click.echo(f"Warning: {workers.due} job(s) are due but no worker has been seen {seen}; "
                   "start one with `lms-plugin worker` (make run starts one itself).",
                   err=True)


def _summary(totals) -> str:
    if not totals:
        return "No jobs were due."
    return "Ran jobs: " + ", ".join(f"{n} {status}" for status, n in sorted(totals.items()))


outbox_cli = AppGroup("outbox", help="Inspect and retry background jobs (grades, rosters…).")


@outbox_cli.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this status.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10000))
def list_command(status: str | None, limit: int) -> None:
    """List jobs of every organisation, most recently changed first."""
    jobs = queries.list_jobs(queries.ALL_ORGANISATIONS, status, limit=limit)
    _warn_if_no_worker()
    if not jobs:
        click.echo("No jobs" + (f" with status {status}." if status else "."))
        return
    click.echo("id\tstatus\tkind\torganisation\tattempts\tupdated (UTC)\tlast error")
    for job in jobs:
        error = (job.last_error or "").replace("\n", " ")[:120]
        click.echo(f"{job.id}\t{job.status}\t{job.kind}\t{job.organisation_id or '-'}\t"
                   f"{job.attempts}\t{job.updated_at:%Y-%m-%d %H:%M:%S}\t{error}")


@outbox_cli.command("retry")
@click.argument("job_id", required=False, type=click.IntRange(1, DB_INT_MAX))
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
def retry_command(job_id: int | None, all_failed: bool) -> None:
    """Send a failed or rejected job again now (or every failed job with --all-failed)."""
    if (job_id is None) == (not all_failed):
        raise click.UsageError("give a job ID or --all-failed (not both)")
    try:
        if all_failed:
            count = queries.retry_all_failed(queries.ALL_ORGANISATIONS)
            db.session.commit()
            click.echo(f"Queued again: {count} failed job(s), paced per LMS." if count
                       else "No failed jobs.")
            _warn_if_no_worker()
            return
        job = queries.retry_job(job_id, queries.ALL_ORGANISATIONS)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Queued again: #{job.id}")
    _warn_if_no_worker()


@outbox_cli.command("prune")
@click.option("--older-than", "older_than", default=None,
              help="Keep finished jobs younger than this (30d, 12h…; default LMS_JOB_KEEP).")
@click.option("--batch", default=queries.PRUNE_BATCH, show_default=True,
              type=click.IntRange(1, 100_000), help="Rows deleted per transaction.")
def prune_command(older_than: str | None, batch: int) -> None:
    """Delete succeeded and superseded jobs that finished long ago (failed and rejected
    jobs stay). The worker does the same every hour; this is for operators."""
    try:
        keep = (parse_duration("--older-than", older_than, allow_zero=True).total_seconds()
                if older_than is not None else None)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--older-than: "),
                                 param_hint="--older-than") from None
    now = utcnow()
    total, _ = queries.run_in_batches(
        lambda: queries.prune_batch(now, keep_seconds=keep, limit=batch), batch_size=batch)
    click.echo(f"Deleted {total} finished job(s).")
