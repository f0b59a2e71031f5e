"""The ``lms-plugin`` console script: Flask's CLI (run, db, shell) plus every domain's group."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, OperationalError

from lms_plugin.config import ConfigError


def _create_cli_app() -> Flask:
    from lms_plugin import create_app

    app = create_app()
    _check_database(app)  # fail fast with one line, before any command touches the database
    return app


def _check_database(app: Flask) -> None:
    from lms_plugin.extensions import db

    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError(f"database is unreachable ({reason})") from None


cli = FlaskGroup(create_app=_create_cli_app,
                 help="lms_plugin: clinical-systems training over LTI 1.3.")


def setup_admin(email: str, organisation: str = "Default Health System",
                ) -> tuple[str | None, str | None]:
    """Create a local admin when none exists; (email, one-time password), or (None, None)
    when an admin exists already. Commits (a CLI edge)."""
    from lms_plugin.accounts import services
    from lms_plugin.errors import DomainError
    from lms_plugin.extensions import db

    if services.any_admin_exists():
        return None, None
    try:
        result = services.create_admin(email, organisation)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    return result.user.email, result.password


def setup_content() -> str:
    """Import the shipped ``content/`` (idempotent: unchanged modules are left alone); one
    line per module as it goes, then the summary line returned. Commits."""
    from lms_plugin.catalog.cli import SHIPPED_CONTENT, import_directory
    from lms_plugin.catalog.services import DEFAULT_ORGANISATION

    if not (SHIPPED_CONTENT / "modules").is_dir():
        return f"no shipped content in {SHIPPED_CONTENT}"
    summary = import_directory(str(SHIPPED_CONTENT), DEFAULT_ORGANISATION)
    if summary is None:
        raise click.ClickException("the shipped content has problems (listed above)")
    return f"{summary.line()}."


@cli.command("setup")
@click.option("--admin-email", default="admin@example.org", show_default=True)
@with_appcontext
def setup(admin_email: str) -> None:
    """First-run setup: create a local admin if none exists, then import the shipped
    ``content/``. ``make run`` does this (and migrating) through ``lms-plugin run --setup``."""
    from flask import current_app

    email, password = setup_admin(admin_email)  # first: a bad address writes nothing
    try:
        click.echo("Importing the shipped training content:")
        click.echo(f"Shipped content: {setup_content()}")
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


def main() -> None:
    """Entry point: configuration problems print one clear line and exit non-zero."""
    try:
        cli.main(standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"lms-plugin: error: {exc}", err=True)
        sys.exit(2)
    except (ArgumentError, OperationalError) as exc:
        click.echo(f"lms-plugin: error: database: {str(exc).splitlines()[0]}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
