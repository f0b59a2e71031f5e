"""``lms-plugin run``: Flask's development server plus the outbox worker, stopped together.

Issue 12: under ``make run`` no worker ran, so grades stayed pending forever; and the
first run printed minutes of installer and migration noise with the admin's one-time
password somewhere in the middle. This command

- starts the outbox worker in a thread of the serving process (``--no-worker`` to skip;
  never under ``LMS_ENV=production``, where ``lms-plugin worker`` runs on its own). Under
  Flask's reloader only the child that serves starts one, so there is never a second;
- with ``--setup`` (what ``make run`` uses) first migrates, creates the admin and imports
  the shipped content, one numbered step each, and prints the password and the next steps
  *last*, once the server listens.

Production serves with gunicorn (README), not this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo, get_debug_flag
from flask.cli import run_command as flask_run_command
from werkzeug.serving import is_running_from_reloader


@dataclass
class FirstRun:
    """What ``--setup`` did, for the closing message."""

    admin_email: str | None = None
    password: str | None = None  # one-time password, when the admin was created now
    notes: list[str] = field(default_factory=list)


class Steps:
    """Numbered progress lines: ``[2/5] Migrating the database … 12 migrations applied``."""

    def __init__(self, total: int, first: int = 1) -> None:
        self.total = total
        self.number = first - 1

    def start(self, text: str, *, inline: bool = True) -> None:
        """Announce a step; ``inline=False`` when the step prints lines of its own."""
        self.number += 1
        self._inline = inline
        click.echo(f"[{self.number}/{self.total}] {text}" + (" … " if inline else ""),
                   nl=not inline)

    def done(self, text: str) -> None:
        click.echo(text if self._inline else f"  {text}")


def migrate_quietly() -> str:
    """Upgrade the database to the newest migration without Alembic's log lines; a summary
    ("12 migrations applied", "up to date"). Raises what Alembic raises."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask import current_app

    from lms_plugin import health
    from lms_plugin.extensions import db

    config = current_app.extensions["migrate"].migrate.get_config(str(health.MIGRATIONS_DIR))
    config.attributes["configure_logger"] = False  # migrations/env.py: keep our output
    script = ScriptDirectory.from_config(config)
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    pending = list(script.iterate_revisions("heads", current or "base"))
    if current and not pending:
        return "up to date"
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        command.upgrade(config, "heads")
    finally:
        quiet.setLevel(level)
    db.engine.dispose()  # migrations ran on their own connection; start the app afresh
    return f"{len(pending)} migration(s) applied"


def first_run(steps: Steps, admin_email: str = "admin@example.org") -> FirstRun:
    """Migrate, make sure an admin exists, import the shipped content: ``make run``'s setup.

    Commits (a CLI edge). ``click.ClickException`` when the shipped content has problems.
    """
    from flask import current_app

    from lms_plugin.cli import setup_admin, setup_content

    result = FirstRun()
    steps.start("Migrating the database")
    steps.done(migrate_quietly())
    steps.start("Setting up the admin account")
    result.admin_email, result.password = setup_admin(admin_email)
    steps.done(f"created {result.admin_email}" if result.password
               else "an admin account exists already")
    steps.start("Importing the shipped training content", inline=False)
    try:
        steps.done(setup_content())
        if current_app.config.get("LMS_DEMO"):
            steps.start("Preparing the demo LMS")
            steps.done(prepare_demo())
    except BaseException:
        if result.password:  # never lose the only copy of the one-time password
            click.echo(f"Admin {result.admin_email}, one-time password: {result.password}")
        raise
    return result


def prepare_demo() -> str:
    """Set up the built-in demo LMS (``lms_plugin.demo``: its organisation, registration and
    published modules) so its first page opens at once; one line saying what was done.
    Commits (a CLI edge); ``click.ClickException`` when it cannot be set up."""
    from lms_plugin.demo.services import ensure_demo
    from lms_plugin.errors import DomainError
    from lms_plugin.extensions import db

    try:
        setup = ensure_demo()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"the demo LMS: {exc.message}") from None
    db.session.commit()
    made = ", ".join(setup.created)
    return f"created its {made}" if made else "ready"


def setup_steps(app: Flask, do_setup: bool) -> int:
    """How many numbered steps ``run --setup`` prints after make's install step: migrate,
    admin, content, (the demo LMS when ``LMS_DEMO`` is on), serve."""
    return (4 + bool(app.config.get("LMS_DEMO"))) if do_setup else 4


def welcome(url: str, base_url: str, setup: FirstRun | None, *, worker: bool,
            demo: bool = False) -> str:
    """The closing message: where to sign in, the one-time password, what to do next.

    ``url``: where this server listens; ``base_url``: ``LMS_BASE_URL``, what LMSs are given;
    ``demo``: the built-in demo LMS is on (``LMS_DEMO``), served under ``base_url``.
    """
    lines = ["", f"lms_plugin is running at {url}  (Ctrl-C stops it"
             + (" and its background worker)" if worker else ")"), ""]
    if setup is not None:
        lines.append(f"  Sign in at         {url}/auth/login")
        if setup.password:
            lines += [f"  Email              {setup.admin_email}",
                      f"  One-time password  {setup.password}",
                      "                     (you choose your own password at first sign-in)"]
        else:
            lines.append("  with the admin account you set up earlier.")
        lines.append("")
    if demo:
        lines += [f"  Try it now         {base_url}/demo/",
                  "                     (the built-in demo LMS: launch as a nurse, an "
                  "instructor or an officer)", ""]
    lines += ["  Next: connect Moodle or Canvas: docs/moodle.md, docs/canvas.md",
              f"        (the LMS registers the tool at {base_url}/lti/register)"]
    if worker:
        lines.append("  Grades reach the LMS through the background worker running beside "
                     "this server.")
    else:
        lines.append("  No background worker here: run `lms-plugin worker` so grades reach "
                     "the LMS.")
    lines.append("")
    return "\n".join(lines)


def wants_worker(app: Flask, option: bool | None) -> bool:
    """``--worker/--no-worker``, else on except under ``LMS_ENV=production``."""
    if option is not None:
        return option
    return app.config.get("LMS_ENV") != "production"


def serving_process(reload: bool) -> bool:
    """True in the process that serves requests: not the reloader's watching parent."""
    from werkzeug.serving import is_running_from_reloader

    return not reload or is_running_from_reloader()


def serve(app: Flask, host: str, port: int, *, threaded: bool,
          ready: Callable[[], None]) -> None:
    """Bind, call ``ready`` (the worker and the closing message), serve until Ctrl-C.

    A port in use ends the command with werkzeug's one-line message, before any worker
    starts or any message claims the tool is running.
    """
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=threaded)
    ready()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("run", short_help="Run a development server with the background worker.")
@click.option("--worker/--no-worker", "worker_option", default=None,
              help="Run the outbox worker (grades to the LMS) in this process "
                   "[default: on, except LMS_ENV=production].")
@click.option("--setup", "do_setup", is_flag=True,
              help="First migrate, create the admin if none exists and import the shipped "
                   "content (what `make run` does); the password is printed last.")
@click.option("--first-step", default=1, hidden=True, type=click.IntRange(1, 9),
              help="Number of the first progress step (make run's install is step 1).")
@click.pass_context
def run_command(ctx: click.Context, worker_option: bool | None, do_setup: bool,
                first_step: int, **options: Any) -> None:
    """Run the development server and, beside it, the background worker that sends grades
    and rosters (Ctrl-C stops both). Production: gunicorn plus `lms-plugin worker`."""
    info = ctx.ensure_object(ScriptInfo)
    app = info.load_app()
    reload = options["reload"] if options["reload"] is not None else get_debug_flag()
    debugger = options["debugger"] if options["debugger"] is not None else get_debug_flag()
    serving = serving_process(reload)
    with_worker = wants_worker(app, worker_option)
    steps = Steps(first_step - 1 + setup_steps(app, do_setup), first_step)
    setup = None
    if do_setup and not is_running_from_reloader():
        with app.app_context():
            setup = first_run(steps)
    base_url = app.config["LMS_BASE_URL"]
    url = f"{'https' if options.get('cert') else 'http'}://{options['host']}:{options['port']}"
    embedded = None

    def start_worker() -> None:
        nonlocal embedded
        if with_worker and serving:
            from lms_plugin.jobs import worker

            embedded = worker.start_embedded(app)

    def announce() -> None:
        if do_setup:
            steps.start("Starting the server" + (" and the background worker"
                                                 if with_worker else ""))
            steps.done(f"listening on {url}")
        click.echo(welcome(url, base_url, setup, worker=with_worker,
                           demo=bool(app.config.get("LMS_DEMO"))))

    try:
        if reload or debugger or options.get("cert"):
            # Flask's own path (reloader, debugger, TLS): the message comes first, from the
            # process that ran the setup (the reloader's parent), the worker runs in the
            # serving child.
            start_worker()
            if not is_running_from_reloader():
                announce()
            ctx.invoke(flask_run_command, **options)
        else:
            serve(app, options["host"], options["port"], threaded=options["with_threads"],
                  ready=lambda: (start_worker(), announce()))
    finally:
        if embedded is not None:
            embedded.stop()


# Flask's options (host, port, reload, debugger, threads, cert, key…) stay as they were.
run_command.params[:0] = list(flask_run_command.params)
