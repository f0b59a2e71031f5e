"""The ``lms-plugin`` console script: Flask's CLI (run, db, shell) plus every domain's group.

Start-up cost matters here: a person types ``lms-plugin --help`` and expects an answer at
once. So the domain groups are listed in :data:`COMMANDS` with their one-line help and are
imported only when one is run (``bench/bench_cli.py`` measures it); the application (and with
it SQLAlchemy, Alembic, every blueprint) is created only by a command that needs it.
"""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, entry_points, version

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from lms_plugin.config import ConfigError

#: Every command group of the tool: name -> ("module:attribute", one-line help shown by
#: ``--help`` without importing the module). ``create_app`` registers the same objects on
#: ``app.cli``; tests/test_cli.py checks that the help texts match the commands'.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("flask_migrate.cli:db", "Perform database migrations."),
    "users": ("lms_plugin.accounts.cli:users_cli", "Manage people and local accounts."),
    "org": ("lms_plugin.accounts.cli:org_cli", "Organisations: create, list, settings."),
    "content": ("lms_plugin.catalog.cli:content_cli",
                "Validate, import and export training content files."),
    "signoff": ("lms_plugin.catalog.signoff_cli:signoff_cli",
                "Clinical sign-off: required reviewers and their approvals."),
    "outbox": ("lms_plugin.jobs.cli:outbox_cli",
               "Inspect and retry background jobs (grades, rosters…)."),
    "worker": ("lms_plugin.jobs.cli:worker_command",
               "Run background jobs: RQ on Redis when REDIS_URL is set, else an in-process "
               "loop."),
    "platform": ("lms_plugin.lti.cli:platform_cli",
                 "Register LMS platforms (Moodle, Canvas) for LTI 1.3."),
    "keys": ("lms_plugin.lti.cli:keys_cli", "The tool's LTI signing keys."),
    "assignments": ("lms_plugin.learning.cli:assignments_cli",
                    "Assignment rules: who must complete which module, by when."),
    "attempts": ("lms_plugin.learning.cli:attempts_cli",
                 "Extra quiz attempts for a person (audited)."),
    "staff": ("lms_plugin.learning.cli:staff_cli",
              "Staff profiles: import the HR roster (CSV or Excel)."),
    "credits": ("lms_plugin.credits.cli:credits_cli",
                "Continuing-education credit: records and people."),
    "reports": ("lms_plugin.reports.cli:reports_cli",
                "Competency frameworks (Moodle CSV) and report exports."),
}


def load_command(name: str) -> click.Command:
    """Import the command ``name`` of :data:`COMMANDS` (KeyError for an unknown name)."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    return getattr(import_module(module), attribute)


def tool_version() -> str:
    """The installed distribution's version (pyproject ``version``)."""
    try:
        return version("lms_plugin")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


class LazyFlaskGroup(FlaskGroup):
    """Flask's group, but listing and resolving commands without creating the app.

    Flask's own ``FlaskGroup`` loads the application to list ``app.cli``'s commands and
    imports every ``flask.commands`` plugin up front; here both are looked up by name and
    imported only when that command runs (or its own ``--help`` is asked for).
    """

    def _load_plugin_commands(self) -> None:
        if self._loaded_plugin_commands:
            return
        self._plugins = {ep.name: ep for ep in entry_points(group="flask.commands")}
        self._loaded_plugin_commands = True

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(self.commands) | set(COMMANDS) | set(self._plugins))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugin_commands()
        if name in self.commands:
            return self.commands[name]
        if name in COMMANDS:
            command = load_command(name)
        elif name in self._plugins:
            command = self._plugins[name].load()
        else:
            return super().get_command(ctx, name)  # a command only the app knows
        self.add_command(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)  # as click's
        rows = []
        for name in names:
            if name in COMMANDS and name not in self.commands:
                help_text = click.utils.make_default_short_help(COMMANDS[name][1], limit)
            else:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                help_text = command.get_short_help_str(limit)
            rows.append((name, help_text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"lms-plugin {tool_version()}")
    ctx.exit()


def _create_cli_app() -> Flask:
    from lms_plugin import create_app

    app = create_app()
    _check_database(app)  # fail fast with one line, before any command touches the database
    return app


def _check_database(app: Flask) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from lms_plugin.extensions import db

    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError(f"database is unreachable ({reason})") from None


cli = LazyFlaskGroup(
    create_app=_create_cli_app, add_version_option=False,
    help="lms_plugin: clinical-systems training over LTI 1.3.",
    params=[click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True,
                         callback=_show_version, help="Show the tool's version and exit.")])


def setup_admin(email: str, organisation: str | None = None,
                ) -> tuple[str | None, str | None]:
    """Create a local admin when none exists (on a fresh install also the first
    organisation: ``accounts.services.ensure_first_admin``); (email, one-time password), or
    (None, None) when an admin exists already. Commits (a CLI edge)."""
    from lms_plugin.accounts.cli import first_admin

    result = first_admin(email, organisation)
    if result is None:
        return None, None
    return result.user.email, result.password


def setup_content(organisation: str | None = None) -> str:
    """Import the shipped ``lms_plugin/content/`` into the setup's organisation
    (``accounts.services.setup_organisation``: the one named, else the first admin's),
    idempotent: modules the organisation has are left as they are (the hospital edits and
    publishes them); one line per module as it goes, then the summary line returned.
    Commits."""
    from lms_plugin.accounts.services import setup_organisation
    from lms_plugin.catalog.cli import SHIPPED_CONTENT, import_directory
    from lms_plugin.errors import DomainError

    if not (SHIPPED_CONTENT / "modules").is_dir():
        return f"no shipped content in {SHIPPED_CONTENT}"
    try:
        org = setup_organisation(organisation)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    # Drafts: clinical content reaches staff only after the hospital's own sign-off (issue
    # 17). The demo organisation publishes its own copy (demo.services.ensure_demo).
    # Existing modules are kept as they are: `make run` runs this at every start, and the
    # hospital edits, approves and publishes these drafts (tests/catalog/test_signoff.py).
    summary = import_directory(str(SHIPPED_CONTENT), org.slug, publish=False,
                               keep_existing=True)
    if summary is None:
        raise click.ClickException("the shipped content has problems (listed above)")
    text = f"{summary.line()} (into {org.name})."
    drafts = summary.awaiting_signoff
    if drafts:
        text += (f"\n{len(drafts)} module(s) are drafts awaiting your organisation's clinical "
                 "sign-off; staff see none of them yet. Next: review each against your local "
                 "policy and resolve its [[local: …]] markers; name the reviewers "
                 "('lms-plugin signoff reviewers set --role \"nurse educator\" --role "
                 "pharmacist'); each approves ('lms-plugin signoff approve <module> --email "
                 "…'); then 'lms-plugin content publish <module>'.")
    return text


@cli.command("setup")
@click.option("--admin-email", default="admin@example.org", show_default=True)
@click.option("--organisation",
              help="Organisation for the admin and the shipped content (default: the one the "
                   "first admin belongs to; a fresh install creates \"Default Health System\").")
@with_appcontext
def setup(admin_email: str, organisation: str | None) -> None:
    """First-run setup: create a local admin if none exists (and, on a fresh install, the
    first organisation), then import the shipped ``lms_plugin/content/`` into that
    organisation. ``make run`` does this (and migrating) through ``lms-plugin run --setup``."""
    from flask import current_app

    # first: a bad address writes nothing
    email, password = setup_admin(admin_email, organisation)
    try:
        click.echo("Importing the shipped training content:")
        click.echo(f"Shipped content: {setup_content(organisation)}")
    finally:  # the password last, so it is not lost above the import's lines
        base = current_app.config["LMS_BASE_URL"]
        if password:
            click.echo(f"Created admin {email}; sign in at {base}/auth/login")
            click.echo(f"One-time password (change it at first sign-in): {password}")
        else:
            click.echo("An admin account exists already.")


def _register_run() -> None:
    from lms_plugin.serve import run_command

    cli.add_command(run_command)  # replaces Flask's: the worker runs beside the server


_register_run()


def _operator_message(exc: Exception) -> str | None:
    """One line for a failure of the machine around the tool (database, Redis, files), or
    None for anything else (a bug keeps its traceback). Checked by class name through the
    modules already imported, so the CLI never imports SQLAlchemy or redis just for this."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(
            exc, (sqlalchemy_exc.ArgumentError, sqlalchemy_exc.OperationalError)):
        return f"database: {str(exc).splitlines()[0]}"
    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(
            exc, (redis_exc.ConnectionError, redis_exc.TimeoutError)):
        return f"Redis is unreachable ({str(exc).splitlines()[0] if str(exc) else exc!r})"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def main() -> None:
    """Entry point: configuration problems, unreachable services and unwritable files print
    one clear line (``lms-plugin: error: …``) and exit non-zero, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"lms-plugin: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        message = _operator_message(exc)
        if message is None:
            raise
        click.echo(f"lms-plugin: error: {message}", err=True)
        sys.exit(2)
