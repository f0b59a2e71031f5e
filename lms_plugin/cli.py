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


@cli.command("setup")
@click.option("--admin-email", default="admin@example.org", show_default=True)
@click.option("--organisation",
              help="Organisation for the admin and the shipped content (default: the one the "
                   "first admin belongs to; a fresh install creates \"Default Health System\").")
@with_appcontext
def setup(admin_email: str, organisation: str | None) -> None:
    """First-run setup used by ``make run``: create a local admin if none exists (and, on a
    fresh install, the first organisation), then import the shipped ``content/`` into that
    organisation (idempotent: unchanged modules are left alone)."""
    from lms_plugin.accounts.cli import ensure_admin
    from lms_plugin.accounts.services import setup_organisation
    from lms_plugin.catalog.cli import SHIPPED_CONTENT, import_directory
    from lms_plugin.errors import DomainError

    click.get_current_context().invoke(ensure_admin, email=admin_email,
                                       organisation=organisation)
    if (SHIPPED_CONTENT / "modules").is_dir():
        try:
            org = setup_organisation(organisation)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"Importing the shipped content from {SHIPPED_CONTENT} into {org.name}:")
        summary = import_directory(str(SHIPPED_CONTENT), org.slug)
        if summary is None:
            raise click.ClickException("the shipped content has problems (listed above)")
        click.echo(f"Shipped content: {summary.line()}.")


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
