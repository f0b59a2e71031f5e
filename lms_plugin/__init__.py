"""lms_plugin: an LTI 1.3 training and continuing-education tool for hospitals."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from lms_plugin.config import load_config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: environment config, then ``config`` overrides (tests, CLI)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config(app.instance_path))
    app.config.update(config or {})

    if app.config["LMS_PROXY_FIX"] and app.config.get("LMS_TRUSTED_PROXIES"):
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, app.config["LMS_TRUSTED_PROXIES"], app.config["LMS_PROXY_FIX"])

    register_extensions(app)
    from lms_plugin.routing import register_converters

    register_converters(app)  # before the blueprints: ids beyond the database's range 404
    register_blueprints(app)
    register_commands(app)
    register_subscribers(app)
    register_template_helpers(app)

    from lms_plugin.errors import register_error_handlers

    register_error_handlers(app)

    from lms_plugin.authz import check_policies

    check_policies(app)
    return app


class TrustedProxyFix:
    """Werkzeug's ProxyFix, applied only to requests that come from a configured proxy.

    A client that reaches the tool directly (bypassing the load balancer) would otherwise
    choose its own address with ``X-Forwarded-For`` - and with it its login throttling
    bucket and what the logs say. ``networks``: ``LMS_TRUSTED_PROXIES``; ``hops``:
    ``LMS_PROXY_FIX`` (how many proxies append to the headers).
    """

    def __init__(self, wsgi_app: Any, networks: tuple[Any, ...], hops: int) -> None:
        self.direct = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        self.networks = networks

    def _trusted(self, remote: str | None) -> bool:
        try:
            address = ip_address(remote or "")
        except ValueError:
            return False
        if getattr(address, "ipv4_mapped", None):
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._trusted(environ.get("REMOTE_ADDR")):
            return self.proxied(environ, start_response)
        return self.direct(environ, start_response)


def register_extensions(app: Flask) -> None:
    from lms_plugin import (
        health,
        models,  # noqa: F401  (register every table on the metadata)
    )
    from lms_plugin.accounts.signin import load_user
    from lms_plugin.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(health.MIGRATIONS_DIR), render_as_batch=True)
    csrf.init_app(app)
    from lms_plugin.accounts import limits_storage  # noqa: F401  (registers lmsdb://)

    # Shared by every process: Redis when configured, else the database (never per process).
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "lmsdb://")
    # Moving window: a burst straddling a minute boundary cannot double the allowance.
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # Evaluate every tier of a limit, so "try again in N minutes" names the longest wait.
    app.config.setdefault("RATELIMIT_FAIL_ON_FIRST_BREACH", False)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)

    @login_manager.unauthorized_handler
    def _unauthorized():
        from flask import redirect, request, url_for

        from lms_plugin.errors import error_response, wants_json

        if wants_json() or request.method != "GET":
            return error_response(401)
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))


def register_blueprints(app: Flask) -> None:
    from lms_plugin import core
    from lms_plugin.accounts import views as accounts_views
    from lms_plugin.admin import views as admin_views
    from lms_plugin.catalog import authoring_views as catalog_authoring_views
    from lms_plugin.catalog import signoff_views as catalog_signoff_views
    from lms_plugin.catalog import views as catalog_views
    from lms_plugin.credits import views as credits_views
    from lms_plugin.jobs import views as jobs_views
    from lms_plugin.learning import admin_views as learning_admin_views
    from lms_plugin.learning import views as learning_views
    from lms_plugin.lti import admin_views as lti_admin_views
    from lms_plugin.lti import deep_linking_views as lti_deep_linking_views
    from lms_plugin.lti import registration_views as lti_registration_views
    from lms_plugin.lti import roster_views as lti_roster_views
    from lms_plugin.lti import views as lti_views
    from lms_plugin.reports import views as reports_views

    for blueprint in (
        core.bp,
        accounts_views.bp,
        catalog_views.bp,
        catalog_authoring_views.bp,
        learning_views.bp,
        learning_admin_views.bp,
        jobs_views.bp,
        lti_registration_views.bp,
        lti_views.bp,
        lti_deep_linking_views.bp,
        lti_roster_views.bp,
        lti_admin_views.bp,
        admin_views.bp,
        credits_views.bp,
        reports_views.bp,
        catalog_signoff_views.bp,
    ):
        app.register_blueprint(blueprint)
    if app.config.get("LMS_DEMO"):  # the built-in demo LMS (issue 12.3), off by default
        from lms_plugin.demo import views as demo_views

        app.register_blueprint(demo_views.bp)

    from lms_plugin.authz import COURSE_ROLES_PROVIDER
    from lms_plugin.lti.course_scope import current_course_roles

    app.extensions[COURSE_ROLES_PROVIDER] = current_course_roles


def register_commands(app: Flask) -> None:
    # One list (lms_plugin.cli.COMMANDS) for app.cli and the lazily loading console script.
    from lms_plugin.cli import COMMANDS, load_command

    for name in COMMANDS:
        if name != "db":  # Flask-Migrate adds its own group in migrate.init_app
            app.cli.add_command(load_command(name), name)


def register_subscribers(app: Flask) -> None:
    """Connect each package's receivers of the domain events (lms_plugin/events.py)."""
    from lms_plugin import credits, events, jobs, lti
    from lms_plugin.learning import tasks as learning_tasks

    jobs.subscribe(app)  # mail.queue -> a mail.send outbox job
    lti.subscribe(app)
    events.version_published.connect(learning_tasks.enqueue_evaluation, sender=app)
    credits.subscribe(app)


def register_template_helpers(app: Flask) -> None:
    from lms_plugin.headers import register_security_headers

    # Clickjacking, CSP, HSTS: frame-ancestors only for the organisation's own platforms.
    register_security_headers(app)
    from lms_plugin import layout

    layout.register(app)  # navigation, homes, "Back to the course", the localtime filter
